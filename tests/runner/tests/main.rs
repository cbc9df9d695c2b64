//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p opsteps-runner --test integration <file>::`.

mod common;

mod argo;
mod cli;
mod control;
mod lifecycle;
mod load;
mod real_pipelines;
mod retry;
mod semantics;
mod stop;
