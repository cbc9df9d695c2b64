//! What a check reports: findings with a severity, the objects involved and a one-line
//! remediation, and each check's outcome.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Warn < Fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a run.
    Info,
    /// Needs attention; fails the run only with `--fail-on warn`.
    Warn,
    /// Unhealthy or unsafe to proceed; fails the run (exit 1).
    Fail,
}

impl Severity {
    /// The lowercase name used in the report.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// A Kubernetes or AWS object a finding names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kind (`Node`, `Deployment`, `Addon`, `Subnet`, `HelmRelease`, ...).
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name (or AWS id).
    pub name: String,
}

impl ObjectRef {
    /// A namespaced object.
    #[must_use]
    pub fn ns(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A cluster-scoped object (or an AWS resource).
    #[must_use]
    pub fn cluster(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: None,
            name: name.to_owned(),
        }
    }
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One problem a check found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The check's stable id.
    pub check: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// The objects involved.
    pub objects: Vec<ObjectRef>,
    /// What to do about it, in one line.
    pub remediation: String,
}

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Ran, found nothing.
    Pass,
    /// Ran; its worst finding is info.
    Info,
    /// Ran; its worst finding is a warning.
    Warn,
    /// Ran; at least one finding fails.
    Fail,
    /// Not run: a permission is missing (403), or what it reads is not configured.
    Skipped,
    /// Not run: what it reads could not be read (transient or unexpected error).
    Error,
}

impl CheckStatus {
    /// The status for a check that ran and found `findings`.
    #[must_use]
    pub fn from_findings(findings: &[Finding]) -> Self {
        match findings.iter().map(|f| f.severity).max() {
            None => Self::Pass,
            Some(Severity::Info) => Self::Info,
            Some(Severity::Warn) => Self::Warn,
            Some(Severity::Fail) => Self::Fail,
        }
    }

    /// The lowercase name used in the report.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Skipped => "skipped",
            Self::Error => "error",
        }
    }
}

/// Builds the findings of one check with its id and default remediation.
#[derive(Debug)]
pub struct Findings {
    check: &'static str,
    severity: Severity,
    remediation: &'static str,
    /// The findings so far.
    pub items: Vec<Finding>,
}

impl Findings {
    /// Findings of `check`, by default of `severity` with `remediation`.
    #[must_use]
    pub fn new(check: &'static str, severity: Severity, remediation: &'static str) -> Self {
        Self {
            check,
            severity,
            remediation,
            items: Vec::new(),
        }
    }

    /// Adds a finding with the check's default severity and remediation.
    pub fn add(&mut self, message: impl Into<String>, objects: Vec<ObjectRef>) {
        self.add_with(self.severity, message, objects, None);
    }

    /// Adds a finding with its own severity and, when given, its own remediation.
    pub fn add_with(
        &mut self,
        severity: Severity,
        message: impl Into<String>,
        objects: Vec<ObjectRef>,
        remediation: Option<String>,
    ) {
        self.items.push(Finding {
            check: self.check,
            severity,
            message: message.into(),
            objects,
            remediation: remediation.unwrap_or_else(|| self.remediation.to_owned()),
        });
    }
}
