//! Exit codes, the step error type, and the termination message.
//!
//! | Code | Meaning |
//! |---|---|
//! | 0 | Done |
//! | 1 | Failed; retrying will not help |
//! | 2 | Bad usage or input; nothing was changed |
//! | 3 | Transient error, safe to retry |
//! | 4 | Blocked: a disruption budget or guard stopped progress before the deadline |
//!
//! Never 64, which argoexec reserves for its own failures. Templates retry only on 3.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// How a step ended. The discriminant is the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatus {
    /// 0: the step did what was asked (or, in a dry run, showed it).
    Done = 0,
    /// 1: the step failed and retrying will not help.
    Failed = 1,
    /// 2: bad flags or input; nothing was changed.
    BadInput = 2,
    /// 3: a transient error (API unavailable, throttled, interrupted); safe to retry.
    Transient = 3,
    /// 4: a budget or guard (PDB, do-not-disrupt, capacity, deadline) blocked progress.
    Blocked = 4,
}

impl ExitStatus {
    /// The process exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        self as u8
    }

    /// One word for logs and results.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::BadInput => "bad-input",
            Self::Transient => "transient",
            Self::Blocked => "blocked",
        }
    }

    /// The status for a step that was asked to stop (SIGTERM): the work is unfinished, and a
    /// retry resumes it.
    #[must_use]
    pub fn interrupted() -> Self {
        Self::Transient
    }

    /// The worse of two statuses, for steps that act on several targets: bad input and
    /// failures dominate blocks, which dominate transient errors.
    #[must_use]
    pub fn worst(self, other: Self) -> Self {
        fn rank(s: ExitStatus) -> u8 {
            match s {
                ExitStatus::Done => 0,
                ExitStatus::Transient => 1,
                ExitStatus::Blocked => 2,
                ExitStatus::Failed => 3,
                ExitStatus::BadInput => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        Self::from(s.code())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a step stopped early: an exit status, a one-line message for operators, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    status: ExitStatus,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl StepError {
    /// An error with `status` and `message`.
    #[must_use]
    pub fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            source: None,
        }
    }

    /// Bad flags or input (exit 2). Say what was wrong and what is accepted.
    #[must_use]
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::BadInput, message)
    }

    /// A failure that a retry will not fix (exit 1).
    #[must_use]
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Failed, message)
    }

    /// A transient failure (exit 3).
    #[must_use]
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Transient, message)
    }

    /// Blocked by a budget or guard (exit 4).
    #[must_use]
    pub fn blocked(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Blocked, message)
    }

    /// Attaches the underlying cause (printed after the message in the error chain).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Wraps a Kubernetes client error with `context`, classifying it: throttling, 5xx and
    /// connection failures are transient; everything else (403 RBAC, 404, 422) is a failure.
    #[must_use]
    pub fn kube(context: impl Into<String>, err: kube::Error) -> Self {
        let status = if crate::retry::is_transient_kube(&err) {
            ExitStatus::Transient
        } else {
            ExitStatus::Failed
        };
        Self::new(status, context).with_source(err)
    }

    /// The exit status.
    #[must_use]
    pub fn status(&self) -> ExitStatus {
        self.status
    }

    /// The message with its causes, on one line: `message: cause: cause`.
    #[must_use]
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !s.is_empty() && !out.ends_with(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_LOG_MAX: usize = 4096;

/// Writes `message` as one line to the termination log (Argo shows it as the node message).
/// Newlines become spaces and the text is cut to Kubernetes' 4 KiB limit on a char boundary.
pub fn write_termination_log(path: &Path, message: &str) -> std::io::Result<()> {
    let mut line: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if line.len() > TERMINATION_LOG_MAX - 1 {
        let mut cut = TERMINATION_LOG_MAX - 1;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    writeln!(f, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let all = [
            (ExitStatus::Done, 0),
            (ExitStatus::Failed, 1),
            (ExitStatus::BadInput, 2),
            (ExitStatus::Transient, 3),
            (ExitStatus::Blocked, 4),
        ];
        for (s, c) in all {
            assert_eq!(s.code(), c, "{s:?}");
            assert_ne!(s.code(), 64, "64 is argoexec's");
        }
        assert_eq!(ExitStatus::interrupted(), ExitStatus::Transient);
    }

    #[test]
    fn worst_prefers_the_more_serious_status() {
        use ExitStatus::{BadInput, Blocked, Done, Failed, Transient};
        assert_eq!(Done.worst(Transient), Transient);
        assert_eq!(Transient.worst(Blocked), Blocked);
        assert_eq!(Blocked.worst(Transient), Blocked);
        assert_eq!(Blocked.worst(Failed), Failed);
        assert_eq!(Failed.worst(BadInput), BadInput);
        assert_eq!(Failed.worst(Done), Failed);
    }

    #[test]
    fn error_constructors_map_to_statuses() {
        assert_eq!(StepError::bad_input("x").status(), ExitStatus::BadInput);
        assert_eq!(StepError::failed("x").status(), ExitStatus::Failed);
        assert_eq!(StepError::transient("x").status(), ExitStatus::Transient);
        assert_eq!(StepError::blocked("x").status(), ExitStatus::Blocked);
    }

    #[test]
    fn kube_errors_are_classified() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("m", "R")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert_eq!(
            StepError::kube("list", api(429)).status(),
            ExitStatus::Transient
        );
        assert_eq!(
            StepError::kube("list", api(503)).status(),
            ExitStatus::Transient
        );
        assert_eq!(
            StepError::kube("list", api(500)).status(),
            ExitStatus::Transient
        );
        assert_eq!(
            StepError::kube("list", api(403)).status(),
            ExitStatus::Failed
        );
        assert_eq!(
            StepError::kube("list", api(404)).status(),
            ExitStatus::Failed
        );
    }

    #[test]
    fn chain_prints_each_cause_once() {
        let e = StepError::failed("cordon node/a")
            .with_source(std::io::Error::other("connection reset"));
        assert_eq!(e.chain(), "cordon node/a: connection reset");
        assert_eq!(e.to_string(), "cordon node/a", "Display is this layer only");
    }

    #[test]
    fn termination_log_is_one_bounded_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("termination-log");
        write_termination_log(&p, "blocked:\nnode a\r\nnode b").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "blocked: node a  node b\n"
        );
        let long = "é".repeat(5000);
        write_termination_log(&p, &long).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.len() <= TERMINATION_LOG_MAX, "{}", s.len());
        assert_eq!(s.lines().count(), 1);
    }
}
