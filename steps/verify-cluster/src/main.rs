//! `verify-cluster`: Check cluster health and upgrade readiness; report as JSON and Markdown.

use std::process::ExitCode;

fn main() -> ExitCode {
    opsteps::step::main(verify_cluster::STEP, verify_cluster::run)
}
