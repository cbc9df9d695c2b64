//! The integration tests, one module per file, linked into one test binary: one link of
//! the dependency graph per crate instead of one per file (link time, and the disk
//! of a clean CI build). One file: `cargo test -p drain-node --test integration <file>::`.

mod common;

mod binary;
mod cli;
mod connection;
mod contract;
mod drain;
mod eks_token_refresh;
mod flag_values;
mod kubectl_parity;
mod safety;
mod snapshots;
