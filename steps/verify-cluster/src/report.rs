//! The report: a versioned JSON document (stdout result and `report.json`) and its Markdown
//! rendering (`report.md`). The schema is documented in the README; a field's meaning never
//! changes within a `schemaVersion`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::finding::{CheckStatus, Finding, Severity};
use crate::registry::Profile;
use crate::version::Minor;

/// The schema of this report; bumped on any incompatible change.
pub const SCHEMA_VERSION: &str = "opsteps.io/verify-cluster/v1";

/// At most this many findings go into the stdout result (Argo keeps `outputs.result` small);
/// `report.json` has them all.
pub const STDOUT_FINDINGS: usize = 100;

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Stable id.
    pub id: &'static str,
    /// Family (`nodes`, `pods`, ...).
    pub family: &'static str,
    /// What it verifies.
    pub title: &'static str,
    /// Outcome.
    pub status: CheckStatus,
    /// Findings it made.
    pub findings: usize,
    /// Why it was skipped or could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `pass` (nothing at or above --fail-on), `fail`, or `error` (a check could not read).
    pub result: &'static str,
    /// Checks run or attempted.
    pub checks: usize,
    /// By status.
    pub by_status: BTreeMap<&'static str, usize>,
    /// Findings by severity.
    pub findings: BTreeMap<&'static str, usize>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// [`SCHEMA_VERSION`].
    pub schema_version: &'static str,
    /// Profile run.
    pub profile: Profile,
    /// When the report was made (the `--now` instant).
    pub generated_at: String,
    /// The API server's `gitVersion`, if read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The EKS cluster, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eks_cluster: Option<String>,
    /// pre-upgrade target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_kubernetes: Option<Minor>,
    /// post-upgrade expectation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_kubernetes: Option<Minor>,
    /// Severity that fails the run.
    pub fail_on: Severity,
    /// Counts.
    pub summary: Summary,
    /// Every check attempted, in catalogue order.
    pub checks: Vec<CheckResult>,
    /// Findings, worst first, then in catalogue order.
    pub findings: Vec<Finding>,
    /// Findings left out of this copy (stdout only).
    #[serde(skip_serializing_if = "is_zero")]
    pub findings_omitted: usize,
    /// Objects read, by kind.
    pub inventory: BTreeMap<&'static str, usize>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Document {
    /// Orders findings and fills the summary.
    pub fn finish(&mut self) {
        let order: BTreeMap<&str, usize> = self
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        self.findings.sort_by_key(|f| {
            (
                std::cmp::Reverse(f.severity),
                order.get(f.check).copied().unwrap_or(usize::MAX),
            )
        });
        let mut s = Summary {
            checks: self.checks.len(),
            ..Summary::default()
        };
        for c in &self.checks {
            *s.by_status.entry(c.status.as_str()).or_default() += 1;
        }
        for f in &self.findings {
            *s.findings.entry(f.severity.as_str()).or_default() += 1;
        }
        let failing = self.checks.iter().any(|c| match c.status {
            CheckStatus::Fail => true,
            CheckStatus::Warn => self.fail_on == Severity::Warn,
            _ => false,
        });
        s.result = if failing {
            "fail"
        } else if self.checks.iter().any(|c| c.status == CheckStatus::Error) {
            "error"
        } else {
            "pass"
        };
        self.summary = s;
    }

    /// A copy with at most [`STDOUT_FINDINGS`] findings.
    #[must_use]
    pub fn for_stdout(&self) -> Self {
        let mut d = self.clone();
        if d.findings.len() > STDOUT_FINDINGS {
            d.findings_omitted = d.findings.len() - STDOUT_FINDINGS;
            d.findings.truncate(STDOUT_FINDINGS);
        }
        d
    }

    /// The one-line summary (termination message, `summary` output, Markdown's first line).
    #[must_use]
    pub fn summary_line(&self) -> String {
        let st = |k| self.summary.by_status.get(k).copied().unwrap_or(0);
        let fd = |k| self.summary.findings.get(k).copied().unwrap_or(0);
        format!(
            "verify-cluster {}: {} — {} checks: {} passed, {} failed, {} warned, {} info, {} skipped, {} errors; findings: {} fail, {} warn, {} info",
            profile_name(self.profile),
            self.summary.result.to_uppercase(),
            self.summary.checks,
            st("pass"),
            st("fail"),
            st("warn"),
            st("info"),
            st("skipped"),
            st("error"),
            fd("fail"),
            fd("warn"),
            fd("info"),
        )
    }
}

/// The profile's flag value.
#[must_use]
pub fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::PreUpgrade => "pre-upgrade",
        Profile::PostUpgrade => "post-upgrade",
        Profile::Cutover => "cutover",
        Profile::Health => "health",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, ObjectRef};

    fn doc(statuses: &[CheckStatus], fail_on: Severity) -> Document {
        let ids = ["a.one", "b.two", "c.three"];
        let mut d = Document {
            schema_version: SCHEMA_VERSION,
            profile: Profile::Health,
            generated_at: "2026-11-26T10:00:00Z".into(),
            server_version: None,
            eks_cluster: None,
            target_kubernetes: None,
            expect_kubernetes: None,
            fail_on,
            summary: Summary::default(),
            checks: statuses
                .iter()
                .zip(ids)
                .map(|(s, id)| CheckResult {
                    id,
                    family: "x",
                    title: "t",
                    status: *s,
                    findings: 0,
                    reason: None,
                })
                .collect(),
            findings: vec![
                Finding {
                    check: "b.two",
                    severity: Severity::Info,
                    message: "i".into(),
                    objects: vec![ObjectRef::cluster("Node", "n")],
                    remediation: "r.".into(),
                },
                Finding {
                    check: "c.three",
                    severity: Severity::Fail,
                    message: "f".into(),
                    objects: vec![],
                    remediation: "r.".into(),
                },
                Finding {
                    check: "a.one",
                    severity: Severity::Warn,
                    message: "w".into(),
                    objects: vec![],
                    remediation: "r.".into(),
                },
            ],
            findings_omitted: 0,
            inventory: BTreeMap::new(),
        };
        d.finish();
        d
    }

    #[test]
    fn result_follows_the_worst_check_and_fail_on() {
        use CheckStatus::{Error, Fail, Pass, Skipped, Warn};
        assert_eq!(
            doc(&[Pass, Warn, Skipped], Severity::Fail).summary.result,
            "pass"
        );
        assert_eq!(
            doc(&[Pass, Warn, Skipped], Severity::Warn).summary.result,
            "fail"
        );
        assert_eq!(
            doc(&[Pass, Fail, Error], Severity::Fail).summary.result,
            "fail"
        );
        assert_eq!(
            doc(&[Pass, Pass, Error], Severity::Fail).summary.result,
            "error"
        );
    }

    #[test]
    fn findings_are_worst_first_and_stdout_is_capped() {
        let d = doc(&[CheckStatus::Fail; 3], Severity::Fail);
        let order: Vec<&str> = d.findings.iter().map(|f| f.check).collect();
        assert_eq!(order, ["c.three", "a.one", "b.two"]);
        assert!(
            d.summary_line()
                .contains("findings: 1 fail, 1 warn, 1 info"),
            "{}",
            d.summary_line()
        );
        let mut big = d.clone();
        big.findings = std::iter::repeat_n(d.findings[0].clone(), STDOUT_FINDINGS + 7).collect();
        let out = big.for_stdout();
        assert_eq!(out.findings.len(), STDOUT_FINDINGS);
        assert_eq!(out.findings_omitted, 7);
    }
}
