//! `verify-cluster`: Check cluster health and upgrade readiness; report as JSON and Markdown.
//!
//! Gates blue/green cut-overs and produces the daily health report.

use clap::Parser;
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::exit::StepError;
use opsteps::step::{Context, Report, StepArgs};

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "verify-cluster";

/// Check cluster health and upgrade readiness; report as JSON and Markdown.
#[derive(Parser, Debug, Clone)]
#[command(name = STEP, version, about, long_about = None)]
pub struct Args {
    /// Show what would be done without changing anything (client: plan only; server: also ask
    /// the API server with dryRun=All).
    #[arg(long, env = opsteps::env::DRY_RUN, value_enum, default_value_t)]
    pub dry_run: DryRun,

    /// Flags shared by every step.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StepArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Runs the step.
// Async is the step contract (opsteps::step::main); the behaviour that awaits lands later.
#[allow(clippy::unused_async)]
pub async fn run(_args: Args, _ctx: Context) -> Result<Report, StepError> {
    Err(opsteps::step::not_implemented(STEP, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fails_with_exit_1_until_implemented() {
        let args = Args::try_parse_from([STEP]).unwrap();
        let ctx = Context::new(STEP, &args.common).unwrap();
        let e = run(args, ctx).await.unwrap_err();
        assert_eq!(e.status(), opsteps::exit::ExitStatus::Failed);
        assert!(e.to_string().contains("not implemented"), "{e}");
    }
}
