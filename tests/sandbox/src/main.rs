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
        /// Write every API request to FILE as JSON lines (time, verb, resource, subresource,
        /// namespace, name, user, dryRun, status, mutating, ...).
        #[arg(long, value_name = "FILE")]
        request_log: Option<PathBuf>,
        /// Write the invariant report (JSON) to FILE on exit; it is also served at
        /// `GET /sandbox/invariants`.
        #[arg(long, value_name = "FILE")]
        invariants_out: Option<PathBuf>,
        /// Directory behind the S3 endpoint (a temporary one by default).
        #[arg(long, value_name = "DIR")]
        s3_dir: Option<PathBuf>,
    },
}

/// `NAME=value` with the value single-quoted when a shell would split or expand it.
fn shell_pair(name: &str, value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/:._-+=,@%".contains(c));
    if plain {
        format!("{name}={value}")
    } else {
        format!("{name}='{}'", value.replace('\'', r"'\''"))
    }
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
        request_log,
        invariants_out,
        s3_dir,
    } = Cli::parse().command;
    let scenario = Scenario::from_file(&scenario)?;
    let mut options = Options::default().scenario(scenario).tls(!http).port(port);
    options.scale = scale;
    options.request_log = request_log;
    let sandbox = Sandbox::start(options).await?;
    std::fs::copy(sandbox.kubeconfig_path(), &kubeconfig_out)
        .with_context(|| format!("writing {}", kubeconfig_out.display()))?;
    let kubeconfig = std::path::absolute(&kubeconfig_out)?;
    let s3_url = match &s3_dir {
        Some(dir) => sandbox.s3_at(dir).await?,
        None => sandbox.s3_url().await?,
    };
    // The one line on stdout: everything a client needs, for `eval "export $(...)"`.
    let env = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("AWS_ENDPOINT_URL_EKS", sandbox.eks_url()),
        ("AWS_ENDPOINT_URL_EC2", sandbox.eks_url()),
        ("AWS_ENDPOINT_URL_S3", s3_url),
        ("AWS_REGION", sandbox.region()),
        // The aws CLI v1 reads only this one.
        ("AWS_DEFAULT_REGION", sandbox.region()),
        (
            "AWS_ACCESS_KEY_ID",
            opsteps_sandbox::s3::ACCESS_KEY.to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            opsteps_sandbox::s3::SECRET_KEY.to_owned(),
        ),
    ];
    let line: Vec<String> = env.iter().map(|(k, v)| shell_pair(k, v)).collect();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.join(" "))?;
        out.flush()?;
    }
    tracing::info!(url = %sandbox.url(), kubeconfig = %kubeconfig.display(), "serving; Ctrl-C to stop");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sandbox.stop();
    if let Some(path) = invariants_out {
        let report = sandbox.invariant_report();
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), ok = %report["ok"], "invariant report written");
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_pairs_quote_only_when_needed() {
        assert_eq!(
            super::shell_pair("A", "http://127.0.0.1:8/x"),
            "A=http://127.0.0.1:8/x"
        );
        assert_eq!(super::shell_pair("A", "/t/a b"), "A='/t/a b'");
        assert_eq!(super::shell_pair("A", "it's"), r"A='it'\''s'");
    }
}
