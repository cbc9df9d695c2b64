//! `cargo demo`: the blue/green node-group upgrade pipeline on the sandbox (not there yet).

use std::process::ExitCode;

fn main() -> ExitCode {
    // stderr, like every log line; the exit code says the main job did not run.
    eprintln!("{}", opsteps_runner::DEMO_STATUS);
    ExitCode::FAILURE
}
