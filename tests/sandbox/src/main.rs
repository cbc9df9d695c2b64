//! `sandbox serve --scenario FILE`: runs the simulated cluster until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "sandbox",
    about = "A simulated EKS/Kubernetes control plane for opsteps"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a scenario until interrupted.
    Serve {
        /// Scenario YAML.
        #[arg(long)]
        scenario: PathBuf,
        /// Where to write the admin kubeconfig.
        #[arg(long, default_value = "sandbox.kubeconfig")]
        kubeconfig_out: PathBuf,
        /// Plain HTTP instead of HTTPS.
        #[arg(long)]
        http: bool,
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Virtual seconds per real second (overrides the scenario).
        #[arg(long)]
        scale: Option<f64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let Cmd::Serve {
        scenario,
        kubeconfig_out,
        http,
        port,
        scale,
    } = Cli::parse().command;
    let scenario = Scenario::from_file(&scenario)?;
    let mut options = Options::default().scenario(scenario).tls(!http).port(port);
    options.scale = scale;
    let sandbox = Sandbox::start(options).await?;
    std::fs::copy(sandbox.kubeconfig_path(), &kubeconfig_out)
        .with_context(|| format!("writing {}", kubeconfig_out.display()))?;
    tracing::info!(url = %sandbox.url(), kubeconfig = %kubeconfig_out.display(), "serving; Ctrl-C to stop");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sandbox.stop();
    tracing::info!("stopped");
    Ok(())
}
