//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p verify-cluster --test integration <file>::`.

mod common;

mod acceptance;
mod checks;
mod cli;
mod eks_pagination;
mod healthy;
mod removed_api_managed_fields;
