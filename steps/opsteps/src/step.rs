//! The shared life cycle of a step binary: parse flags, start logging, build the context,
//! run, then print the result, write the termination message and turn the outcome into an exit
//! code. `main.rs` of each step is one call to [`main`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
use tracing::Instrument;

use crate::audit::{Actor, Auditor};
use crate::cli::{CommonArgs, OutputArgs};
use crate::exit::{ExitStatus, StepError, write_termination_log};
use crate::output::{Output, print_result};
use crate::shutdown::Shutdown;

/// A step's parsed flags, with the shared groups reachable.
pub trait StepArgs: clap::Parser {
    /// The flags every step has.
    fn common(&self) -> &CommonArgs;
}

/// What a step gets besides its flags.
#[derive(Clone, Debug)]
pub struct Context {
    /// The step's name (binary, image and audit actor).
    pub step: &'static str,
    /// Outputs, progress and termination message.
    pub output: Output,
    /// The audit trail of mutating calls.
    pub audit: Arc<Auditor>,
    /// Set on SIGTERM: start no new mutation.
    pub shutdown: Shutdown,
}

impl Context {
    /// The context for `step` from the shared flags. The audit log defaults to
    /// `<output-dir>/audit.jsonl`.
    pub fn new(step: &'static str, common: &CommonArgs) -> Result<Self, StepError> {
        let output = Output::new(&common.output);
        let audit_path = common
            .output
            .audit_log
            .clone()
            .or_else(|| output.dir().map(|d| d.join("audit.jsonl")));
        let audit = Auditor::new(Actor::from_env(step), audit_path.as_deref()).map_err(|e| {
            StepError::bad_input(format!(
                "cannot open the audit log {}",
                audit_path.unwrap_or_default().display()
            ))
            .with_source(e)
        })?;
        Ok(Self {
            step,
            output,
            audit: Arc::new(audit),
            shutdown: Shutdown::new(),
        })
    }
}

/// How a step ended, with its machine-readable result.
#[derive(Clone, Debug)]
pub struct Report {
    /// Exit status: `Done`, or `Blocked`/`Failed`/`Transient` with a result worth printing.
    pub status: ExitStatus,
    /// One line for operators (termination message when not done).
    pub summary: String,
    /// The JSON result (Argo `outputs.result`).
    pub result: Value,
}

impl Report {
    /// A finished step.
    #[must_use]
    pub fn done(summary: impl Into<String>, result: Value) -> Self {
        Self {
            status: ExitStatus::Done,
            summary: summary.into(),
            result,
        }
    }
}

/// The whole life cycle, for `main.rs`: parse, log, run on a tokio runtime, report. A usage
/// error ends like any other bad input (see [`usage_error`]); `--help` and `--version` print
/// and exit 0.
pub fn main<A, F, Fut>(step: &'static str, run: F) -> ExitCode
where
    A: StepArgs,
    F: FnOnce(A, Context) -> Fut,
    Fut: Future<Output = Result<Report, StepError>>,
{
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let env_log = std::env::var_os(crate::env::TERMINATION_LOG);
            let log = termination_log_from(std::env::args_os(), env_log);
            return usage_error(&e, log).into();
        }
    };
    crate::telemetry::init(&args.common().log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitStatus::Failed.into();
        }
    };
    runtime.block_on(execute(step, args, run)).into()
}

/// Ends a step whose flags did not parse. `--help` and `--version` print on stdout and give
/// `Done` (exit 0). Anything else is bad usage, finished as every bad input is: clap's message
/// with the usage on stderr, a JSON result with the error on stdout, a termination-log line at
/// `termination_log`, and `BadInput` (exit 2).
#[must_use]
pub fn usage_error(e: &clap::Error, termination_log: PathBuf) -> ExitStatus {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitStatus::Done;
    }
    let _ = e.print();
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    let message = format!(
        "{}; see --help for the accepted flags and values",
        first.trim().trim_start_matches("error: ")
    );
    let output = Output::new(&OutputArgs {
        termination_log,
        ..OutputArgs::default()
    });
    finish(&output, Err(StepError::bad_input(message)))
}

/// Where the termination message goes when the flags did not parse: `--termination-log PATH`
/// or `--termination-log=PATH` if given (the last one wins, as in clap), else
/// `$OPSTEPS_TERMINATION_LOG`, else `/dev/termination-log`.
#[must_use]
pub fn termination_log_from(
    args: impl IntoIterator<Item = OsString>,
    env: Option<OsString>,
) -> PathBuf {
    let mut found = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--termination-log" {
            found = args.next().or(found);
        } else if let Some(v) = a
            .to_str()
            .and_then(|s| s.strip_prefix("--termination-log="))
        {
            found = Some(OsString::from(v));
        } else if a == "--" {
            break;
        }
    }
    found
        .or(env)
        .filter(|p| !p.is_empty())
        .map_or_else(|| OutputArgs::default().termination_log, PathBuf::from)
}

/// Runs a step with its flags: context, SIGTERM listener, root span, then [`finish`].
pub async fn execute<A, F, Fut>(step: &'static str, args: A, run: F) -> ExitStatus
where
    A: StepArgs,
    F: FnOnce(A, Context) -> Fut,
    Fut: Future<Output = Result<Report, StepError>>,
{
    let ctx = match Context::new(step, args.common()) {
        Ok(c) => c,
        Err(e) => return finish(&Output::new(&args.common().output), Err(e)),
    };
    ctx.shutdown.listen_for_signals();
    let output = ctx.output.clone();
    let outcome = run(args, ctx)
        .instrument(crate::telemetry::step_span(step))
        .await;
    finish(&output, outcome)
}

/// Prints the result on stdout, writes the termination message unless done, logs the outcome,
/// and returns the exit status.
pub fn finish(output: &Output, outcome: Result<Report, StepError>) -> ExitStatus {
    let (status, summary, mut result) = match outcome {
        Ok(r) => (r.status, r.summary, r.result),
        Err(e) => {
            let chain = e.chain();
            (e.status(), chain.clone(), json!({ "error": chain }))
        }
    };
    if let Value::Object(m) = &mut result {
        m.insert("status".into(), json!(status.as_str()));
        m.insert("exitCode".into(), json!(status.code()));
    } else {
        result = json!({ "status": status.as_str(), "exitCode": status.code(), "result": result });
    }
    if let Err(e) = print_result(&result) {
        tracing::error!(error = %e, "cannot write the result to stdout");
    }
    if status == ExitStatus::Done {
        tracing::info!(status = status.as_str(), summary = %summary, "step finished");
    } else {
        tracing::error!(status = status.as_str(), exit_code = status.code(), summary = %summary, "step did not finish");
        if let Err(e) = write_termination_log(
            output.termination_log(),
            &format!("{}: {summary}", status.as_str()),
        ) {
            tracing::debug!(error = %e, path = %output.termination_log().display(), "cannot write termination log");
        }
    }
    status
}

/// The error of a step whose behaviour has not landed yet: exit 1, never a pretend success.
#[must_use]
pub fn not_implemented(step: &str, issue: u32) -> StepError {
    StepError::failed(format!(
        "{step} is not implemented yet (tracked in issue #{issue}); nothing was done"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "t", version)]
    struct T {
        #[arg(long)]
        timeout: crate::duration::GoDuration,
    }

    #[test]
    fn usage_errors_finish_as_bad_input_and_help_is_done() {
        let d = tempfile::tempdir().unwrap();
        let tl = d.path().join("tl");
        let e = T::try_parse_from(["t", "--timeout", "5"]).unwrap_err();
        assert_eq!(usage_error(&e, tl.clone()), ExitStatus::BadInput);
        let line = std::fs::read_to_string(&tl).unwrap();
        assert!(
            line.starts_with("bad-input: invalid value '5' for '--timeout"),
            "{line}"
        );
        assert!(line.contains("expected a Go duration"), "{line}");
        assert_eq!(line.lines().count(), 1);
        let e = T::try_parse_from(["t", "--help"]).unwrap_err();
        assert_eq!(usage_error(&e, d.path().join("none")), ExitStatus::Done);
        let e = T::try_parse_from(["t", "--version"]).unwrap_err();
        assert_eq!(usage_error(&e, d.path().join("none")), ExitStatus::Done);
        assert!(!d.path().join("none").exists());
    }

    #[test]
    fn termination_log_is_found_in_unparsed_flags() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            termination_log_from(a(&["x", "--bad", "--termination-log", "/t/1"]), None),
            PathBuf::from("/t/1")
        );
        assert_eq!(
            termination_log_from(a(&["x", "--termination-log=/t/2"]), Some("/e".into())),
            PathBuf::from("/t/2")
        );
        assert_eq!(
            termination_log_from(a(&["x"]), Some("/e".into())),
            PathBuf::from("/e")
        );
        assert_eq!(
            termination_log_from(a(&["x", "--termination-log"]), None),
            PathBuf::from("/dev/termination-log")
        );
    }

    #[test]
    fn finish_writes_termination_log_only_when_not_done() {
        let d = tempfile::tempdir().unwrap();
        let tl = d.path().join("tl");
        let out = Output::new(&OutputArgs {
            termination_log: tl.clone(),
            ..OutputArgs::default()
        });
        assert_eq!(
            finish(&out, Ok(Report::done("ok", json!({})))),
            ExitStatus::Done
        );
        assert!(!tl.exists());
        let s = finish(
            &out,
            Err(StepError::blocked("PDB web/web-pdb allows 0 disruptions")),
        );
        assert_eq!(s, ExitStatus::Blocked);
        assert_eq!(
            std::fs::read_to_string(&tl).unwrap(),
            "blocked: PDB web/web-pdb allows 0 disruptions\n"
        );
        let s = finish(&out, Err(not_implemented("drain-node", 5)));
        assert_eq!(s, ExitStatus::Failed);
        assert!(
            std::fs::read_to_string(&tl)
                .unwrap()
                .starts_with("failed: drain-node is not implemented yet")
        );
    }
}
