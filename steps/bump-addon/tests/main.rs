//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p bump-addon --test integration <file>::`.

mod common;

mod cli;
mod contract;
mod flag_values;
mod resilience;
mod versions;
