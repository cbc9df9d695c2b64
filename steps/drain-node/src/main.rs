//! `drain-node`: Cordon and drain nodes: kubectl drain parity, PodDisruptionBudget-aware, resumable.

use std::process::ExitCode;

fn main() -> ExitCode {
    opsteps::step::main(drain_node::STEP, drain_node::run)
}
