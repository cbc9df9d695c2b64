//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file:
//! `cargo test -p opsteps-workflows-check --test integration <file>::`.

mod images;
mod layout;
mod workflows;
