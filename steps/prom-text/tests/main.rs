//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p prom-text --test integration <file>::`.

mod support;

mod differential;
mod edge_cases;
mod fixtures;
mod properties;
