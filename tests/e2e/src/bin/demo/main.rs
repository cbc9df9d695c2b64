//! `cargo demo`: the blue/green node-group upgrade, end to end, on the sandbox. Builds the step
//! binaries if needed, starts the sandbox with `tests/scenarios/demo.yaml` (RBAC enforced from
//! `workflows/rbac/`, one EKS identity per step), runs the pipelines of `workflows/` with the
//! local runner, shows live progress and ends with one screen of results.

mod progress;
mod results;
mod stages;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use opsteps_e2e::{Harness, Setup, binaries};
use progress::{Progress, say};

const USAGE: &str = "\
usage: cargo demo [-- --work-dir DIR]

Runs the blue/green node-group upgrade with opsteps' pipelines (workflows/) on a simulated EKS
cluster (tests/scenarios/demo.yaml): pre-upgrade check, add-ons after the control plane, node-group
rotation, lifetime eviction, GPU stats to S3, post-upgrade health. Reports go to DIR (default
target/demo, emptied first).";

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut work_dir = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--work-dir" => {
                work_dir = Some(PathBuf::from(
                    args.next().ok_or("--work-dir needs a directory")?,
                ));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(work_dir)
}

fn main() -> ExitCode {
    let work_dir = match parse_args() {
        Ok(d) => d.unwrap_or_else(|| opsteps_e2e::workspace_root().join("target/demo")),
        Err(e) if e.is_empty() => {
            say(USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(work_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(work_dir: PathBuf) -> Result<()> {
    say("opsteps demo: a blue/green node-group upgrade on a simulated EKS cluster\n");
    say("  building the five step binaries (cargo build -p …; quick when up to date)");
    binaries::build(&binaries::bin_dir(), true).context("building the step binaries")?;
    let started = Instant::now();

    if work_dir.exists() {
        std::fs::remove_dir_all(&work_dir)
            .with_context(|| format!("emptying {}", work_dir.display()))?;
    }
    std::fs::create_dir_all(&work_dir)?;
    let tty = std::io::stdout().is_terminal();
    let progress = Arc::new(Progress::new(tty));
    let observer = Arc::clone(&progress);
    let mut setup = Setup::scenario("demo.yaml");
    setup.work_dir = Some(work_dir.join("runs"));
    setup.s3_dir = Some(work_dir.join("s3"));
    setup.observer = Some(Arc::new(move |e| observer.on_event(e)));
    // Retries wait as written, scaled down: the demo is about the story, not the backoff.
    setup.backoff_scale = 0.01;
    let h = Harness::start(setup)
        .await
        .context("starting the sandbox with tests/scenarios/demo.yaml")?;
    say(&format!(
        "  sandbox: EKS cluster {:?} in {}, Kubernetes API {} (RBAC on: each step acts as its own \
         EKS access entry, group opsteps:<step>, bound to its role in workflows/rbac/)",
        h.cluster,
        h.region,
        h.sandbox.url()
    ));
    say(&format!(
        "  runner: the pipelines of workflows/ run locally as Argo would run them; work dir {}\n",
        work_dir.display()
    ));

    let before = results::Snapshot::take(&h);
    // Ctrl-C: the steps lead their own process groups, so the signal reaches only the demo. It
    // stops the runner as `argo terminate` does (SIGTERM to the running steps, SIGKILL after the
    // grace period) and waits for the stage to wind down, so no step outlives the demo.
    let runner = h.runner.clone();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            say(
                "\n  Ctrl-C: terminating the running steps (SIGTERM, then SIGKILL after the grace period)",
            );
            runner.terminate();
        }
    });
    let runs = stages::run_all(&h).await;
    let interrupted = interrupt.is_finished();
    interrupt.abort();
    if interrupted {
        anyhow::bail!(
            "interrupted (Ctrl-C); the steps were stopped. Run `cargo demo` again to start over"
        );
    }
    let runs = runs?;
    let after = results::Snapshot::take(&h);
    results::print(&h, &before, &after, &runs, &work_dir, started.elapsed())?;
    Ok(())
}
