//! `evict-old-pods`: Evict pods older than a lifetime, like the descheduler's PodLifeTime, more safely.

use std::process::ExitCode;

fn main() -> ExitCode {
    opsteps::step::main(evict_old_pods::STEP, evict_old_pods::run)
}
