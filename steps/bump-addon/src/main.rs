//! `bump-addon`: Move EKS managed add-ons to a compatible version and wait until they are healthy.

use std::process::ExitCode;

fn main() -> ExitCode {
    opsteps::step::main(bump_addon::STEP, bump_addon::run)
}
