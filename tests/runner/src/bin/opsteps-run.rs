//! `opsteps-run`: run a WorkflowTemplate or CronWorkflow from `workflows/` locally, retry a
//! failed run, or check that every file stays inside the local runner's subset.
//! Exit 0 when the workflow Succeeded, 1 when it did not (SIGINT or SIGTERM terminates it, as
//! `argo terminate` does, and it is saved), 2 on bad input.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use opsteps_runner::{
    Catalog, Event, NodeKind, Phase, RetryOptions, RunRequest, Runner, RunnerConfig, Submit,
    Workflow,
};

#[derive(Parser)]
#[command(
    version,
    about = "Run opsteps' Argo WorkflowTemplates locally (tests and the demo; production uses Argo Workflows)",
    after_help = "Exit status: 0 when the workflow Succeeded, 1 when it did not (also after SIGINT or SIGTERM, which terminate it: steps get SIGTERM, then SIGKILL after the grace period), 2 on bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit a WorkflowTemplate (NAME) or a CronWorkflow's workflowSpec (cronwf/NAME), like
    /// `argo submit --from`, and run it to completion.
    Run {
        #[command(flatten)]
        env: EnvArgs,
        /// A workflow parameter override, NAME=VALUE (repeatable), like `argo submit -p`.
        #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE")]
        parameters: Vec<String>,
        /// Workflow name (default: <template or cron name>-<5 random lowercase letters and digits>).
        #[arg(long)]
        name: Option<String>,
        /// NAME (workflowtemplate/NAME also accepted) or cronwf/NAME.
        target: String,
    },
    /// Retry a failed run saved by `run` (Succeeded nodes are kept), like `argo retry`.
    Retry {
        #[command(flatten)]
        env: EnvArgs,
        /// Only retry the failed nodes with this display name (with their ancestors and
        /// descendants); other failed nodes stay failed.
        #[arg(long)]
        node: Option<String>,
        /// The saved workflow JSON.
        state: PathBuf,
    },
    /// Load every WorkflowTemplate and CronWorkflow and report constructs outside the subset.
    Check {
        #[arg(long, default_value = "workflows")]
        workflows: PathBuf,
    },
}

#[derive(Args)]
struct EnvArgs {
    /// Directory of WorkflowTemplates and CronWorkflows (searched recursively).
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    /// Directory holding the step binaries; a container's command[0] maps to DIR/command[0].
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Map one command to a binary, COMMAND=PATH (repeatable; overrides --bin-dir).
    #[arg(long = "bin", value_name = "COMMAND=PATH")]
    bins: Vec<String>,
    /// Where node directories and the saved workflow JSON go.
    #[arg(long, default_value = "target/opsteps-run")]
    work_dir: PathBuf,
    /// Namespace (`workflow.namespace`, fieldRef metadata.namespace).
    #[arg(long, default_value = "argo")]
    namespace: String,
    /// Add NAME=VALUE to every container's environment (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,
    /// Answer a suspend node, NODE.PARAM=VALUE (repeatable), like `argo node set` + `argo resume`.
    #[arg(long = "answer", value_name = "NODE.PARAM=VALUE")]
    answers: Vec<String>,
    /// Multiplies retry backoff durations, a number >= 0 (0 retries at once).
    #[arg(long, default_value_t = 1.0, value_parser = scale)]
    backoff_scale: f64,
    /// Multiplies activeDeadlineSeconds, suspend durations and the grace period before SIGKILL
    /// (30 s), a number >= 0.
    #[arg(long, default_value_t = 1.0, value_parser = scale)]
    deadline_scale: f64,
}

fn scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err(format!(
            "{text:?} is not a number >= 0 (1 = as written, 0 = no waiting)"
        )),
    }
}

/// `--workflows` must name a directory; say so rather than echo the OS error twice.
fn workflows_dir(dir: &Path) -> Result<Catalog, BadInput> {
    if !dir.is_dir() {
        return Err(bad(anyhow::anyhow!(
            "--workflows {}: not a directory (expected the directory of WorkflowTemplate and CronWorkflow YAML files, e.g. workflows)",
            dir.display()
        )));
    }
    Catalog::load_dir(dir).map_err(bad)
}

/// Bad input: exit 2.
struct BadInput(anyhow::Error);

fn bad<E: Into<anyhow::Error>>(e: E) -> BadInput {
    BadInput(e.into())
}

fn split_pair(text: &str, what: &str) -> Result<(String, String), BadInput> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| bad(anyhow::anyhow!("{what} {text:?} is not NAME=VALUE")))
}

fn answers(list: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>, BadInput> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for a in list {
        let (key, value) = split_pair(a, "--answer")?;
        let Some((node, param)) = key.rsplit_once('.') else {
            return Err(bad(anyhow::anyhow!(
                "--answer {a:?} is not NODE.PARAM=VALUE"
            )));
        };
        out.entry(node.to_owned())
            .or_default()
            .insert(param.to_owned(), value);
    }
    Ok(out)
}

fn runner(env: &EnvArgs) -> Result<Runner, BadInput> {
    let catalog = workflows_dir(&env.workflows)?;
    let mut config = RunnerConfig::new(env.work_dir.clone());
    for b in &env.bins {
        let (cmd, path) = split_pair(b, "--bin")?;
        config.binaries.insert(cmd, PathBuf::from(path));
    }
    let unmapped: Vec<String> = catalog
        .commands()
        .into_iter()
        .filter(|c| !config.binaries.contains_key(c))
        .collect();
    if !unmapped.is_empty() && !env.bin_dir.is_dir() {
        return Err(bad(anyhow::anyhow!(
            "--bin-dir {}: not a directory (expected the directory holding the step binaries, e.g. target/debug, or --bin COMMAND=PATH for each of {})",
            env.bin_dir.display(),
            unmapped.join(", ")
        )));
    }
    let mut missing = Vec::new();
    for cmd in unmapped {
        let path = env.bin_dir.join(&cmd);
        if path.is_file() {
            config.binaries.insert(cmd, path);
        } else {
            missing.push(cmd);
        }
    }
    if !missing.is_empty() {
        // Not fatal: a run may not reach those steps; the ones it reaches end as Error nodes.
        eprintln!(
            "opsteps-run: warning: no binary in {} for {} (build them, or map them with --bin COMMAND=PATH)",
            env.bin_dir.display(),
            missing.join(", ")
        );
    }
    for e in &env.envs {
        config.env.push(split_pair(e, "--env")?);
    }
    config.namespace.clone_from(&env.namespace);
    config.backoff_scale = env.backoff_scale;
    config.deadline_scale = env.deadline_scale;
    config.observer = Some(Arc::new(print_event));
    Ok(Runner::new(catalog, config))
}

fn print_event(e: &Event) {
    let line = match e {
        Event::NodeStarted {
            kind: NodeKind::StepGroup | NodeKind::Retry,
            ..
        } => return,
        Event::NodeFinished { display_name, .. } if display_name.starts_with('[') => return,
        Event::NodeStarted {
            display_name,
            template,
            kind,
            ..
        } => {
            format!("● {display_name} ({kind:?} {template})")
        }
        Event::ProcessStarted {
            display_name,
            pid,
            command,
            ..
        } => {
            format!("  {display_name}: {command} started, pid {pid}")
        }
        Event::Progress {
            display_name,
            progress,
            ..
        } => format!("  {display_name}: {progress}"),
        Event::NodeFinished {
            display_name,
            phase,
            exit_code,
            message,
            duration,
            ..
        } => format!(
            "{} {display_name} {phase} in {:.1}s{}{}",
            match phase {
                Phase::Succeeded => "✔",
                Phase::Failed => "✖",
                Phase::Error => "⚠",
                _ => "○",
            },
            duration.as_secs_f64(),
            exit_code.map(|c| format!(", exit {c}")).unwrap_or_default(),
            message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default(),
        ),
        Event::WorkflowFinished { workflow, phase } => format!("workflow {workflow} {phase}"),
    };
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn finish(wf: &Workflow, save_to: &Path) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    writeln!(out)?;
    write!(out, "{}", wf.tree())?;
    if let Some(dir) = save_to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    wf.save(save_to)
        .with_context(|| format!("saving {}", save_to.display()))?;
    let path = save_to.display().to_string();
    let quoted = if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        path.clone()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    };
    eprintln!(
        "saved {path} (retry: opsteps-run retry [the same --workflows/--bin options] {quoted})"
    );
    Ok(if wf.phase == Phase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// On the first SIGINT or SIGTERM, terminates the run: its steps get SIGTERM (SIGKILL after the
/// grace period), the workflow ends Failed and is printed and saved as usual.
fn terminate_on_signal(runner: &Runner) -> Result<tokio::task::JoinHandle<()>, BadInput> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind| {
        signal(kind)
            .context("installing a signal handler")
            .map_err(bad)
    };
    let (mut int, mut term) = (
        listen(SignalKind::interrupt())?,
        listen(SignalKind::terminate())?,
    );
    let runner = runner.clone();
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!(
            "opsteps-run: {name}: terminating the workflow (running steps get SIGTERM, then SIGKILL after the grace period)"
        );
        runner.terminate();
    }))
}

async fn main_inner(cli: Cli) -> Result<ExitCode, BadInput> {
    match cli.command {
        Command::Check { workflows } => {
            let catalog = workflows_dir(&workflows)?;
            let _ = writeln!(
                std::io::stdout(),
                "{}: {} WorkflowTemplates ({}), {} CronWorkflows ({}), all inside the local runner's subset",
                workflows.display(),
                catalog.template_names().len(),
                catalog.template_names().join(", "),
                catalog.cron_names().len(),
                catalog.cron_names().join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            env,
            parameters,
            name,
            target,
        } => {
            let runner = runner(&env)?;
            let submit = match target.split_once('/') {
                Some(("cronwf" | "cronworkflow", n)) => Submit::Cron(n.to_owned()),
                Some(("workflowtemplate", n)) => Submit::Template(n.to_owned()),
                Some(_) => {
                    return Err(bad(anyhow::anyhow!(
                        "{target:?}: expected NAME, workflowtemplate/NAME or cronwf/NAME"
                    )));
                }
                None => Submit::Template(target.clone()),
            };
            let mut req = RunRequest::new(submit);
            for p in &parameters {
                let (k, v) = split_pair(p, "-p")?;
                req.parameters.insert(k, v);
            }
            req.answers = answers(&env.answers)?;
            req.name = name;
            let stop = terminate_on_signal(&runner)?;
            let wf = runner.run(req).await.map_err(bad)?;
            stop.abort();
            let path = env.work_dir.join(format!("{}.json", wf.name));
            finish(&wf, &path).map_err(|e| BadInput(e.context("writing the result")))
        }
        Command::Retry { env, node, state } => {
            let runner = runner(&env)?;
            let wf = Workflow::load(&state)
                .with_context(|| format!("reading {}", state.display()))
                .map_err(bad)?;
            let opts = RetryOptions {
                node,
                answers: answers(&env.answers)?,
            };
            let stop = terminate_on_signal(&runner)?;
            let wf = runner.retry(&wf, opts).await.map_err(bad)?;
            stop.abort();
            finish(&wf, &state).map_err(|e| BadInput(e.context("writing the result")))
        }
    }
}

/// The error and its causes, skipping a cause whose text the message already holds (our
/// errors print their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_inner(cli).await {
        Ok(code) => code,
        Err(BadInput(e)) => {
            eprintln!("opsteps-run: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}
