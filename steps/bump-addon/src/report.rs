//! The result: one entry per add-on (from, to, steps, update ids, status, seconds waited,
//! health issues and update errors verbatim), the step's exit status, and the Markdown summary.

use opsteps::exit::ExitStatus;
use serde::Serialize;
use std::fmt::Write as _;

/// How one add-on ended.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Already at the target: nothing sent.
    Unchanged,
    /// Moved and healthy.
    Updated,
    /// Dry run: what would be done.
    Planned,
    /// The mode resolved to an older version; not moved without --allow-downgrade.
    SkippedDowngrade,
    /// next-safe: no version runs on both Kubernetes versions; it moves after the upgrade.
    Kept,
    /// An update failed or the add-on stayed unhealthy (exit 1).
    Failed,
    /// Still progressing at --timeout (exit 4).
    Progressing,
    /// SIGTERM or a transient API error stopped the wait (exit 3).
    Interrupted,
    /// Not reached: an earlier add-on stopped the run.
    NotStarted,
}

impl Status {
    /// The exit status it stands for.
    #[must_use]
    pub fn exit(self) -> ExitStatus {
        match self {
            Self::Failed => ExitStatus::Failed,
            Self::Progressing => ExitStatus::Blocked,
            Self::Interrupted => ExitStatus::Transient,
            _ => ExitStatus::Done,
        }
    }
}

/// One add-on in the result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonResult {
    /// Add-on.
    pub name: String,
    /// Version before.
    pub from: String,
    /// Target version.
    pub to: String,
    /// Versions gone (or to go) through, the target last.
    pub steps: Vec<String>,
    /// Updates started or attached to, in order.
    pub update_ids: Vec<String>,
    /// Updates this run attached to rather than started (already running, or a 409).
    pub attached: Vec<String>,
    /// How it ended.
    pub status: Status,
    /// Seconds spent waiting.
    pub seconds_waited: u64,
    /// Reads that found the add-on DEGRADED after an update, within the grace period.
    pub degraded_reads: u32,
    /// Health issues (`code: message`), verbatim.
    pub health_issues: Vec<String>,
    /// Update errors (`code: message`), verbatim.
    pub errors: Vec<String>,
    /// Why it ended so, when not plainly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The step's exit status over every add-on (the worst).
#[must_use]
pub fn exit(results: &[AddonResult]) -> ExitStatus {
    results
        .iter()
        .fold(ExitStatus::Done, |s, r| s.worst(r.status.exit()))
}

/// A Markdown table of the run.
#[must_use]
pub fn markdown(cluster: &str, kubernetes: &str, results: &[AddonResult]) -> String {
    let mut s = format!(
        "# Add-on bump: {cluster} (Kubernetes {kubernetes})\n\n| Add-on | From | To | Steps | Status | Updates | Waited | Issues |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in results {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let issues: Vec<&String> = r.health_issues.iter().chain(&r.errors).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {}s | {} |",
            r.name,
            r.from,
            r.to,
            r.steps.join(" → "),
            status,
            r.update_ids.join(", "),
            r.seconds_waited,
            issues
                .iter()
                .map(|i| i.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    s
}

impl AddonResult {
    /// The entry of an add-on that was only planned (dry run, not started).
    #[must_use]
    pub fn planned(p: &crate::plan::AddonPlan) -> Self {
        Self {
            name: p.name.clone(),
            from: p.from.clone(),
            to: p.to.clone(),
            steps: p.steps.clone(),
            update_ids: Vec::new(),
            attached: Vec::new(),
            status: match p.action {
                crate::plan::Action::Update => Status::Planned,
                crate::plan::Action::Unchanged => Status::Unchanged,
                crate::plan::Action::SkippedDowngrade => Status::SkippedDowngrade,
                crate::plan::Action::Kept => Status::Kept,
            },
            seconds_waited: 0,
            degraded_reads: 0,
            health_issues: Vec::new(),
            errors: Vec::new(),
            message: None,
        }
    }
}
