//! The drift report (`--report-only`, the weekly CronWorkflow): for every installed add-on, the
//! current version; the default and latest for this Kubernetes version and the next; whether
//! the current one runs on the next; how many versions behind the latest it is and how many
//! days since it was last changed. Read-only: only Describe/List calls.

use opsteps::exit::StepError;
use serde::Serialize;
use std::fmt::Write as _;

use crate::api::Eks;
use crate::plan::order;
use crate::versions::{self, Offered};

/// One add-on's drift.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// Add-on.
    pub name: String,
    /// Installed version.
    pub current: String,
    /// Add-on status.
    pub status: String,
    /// Default for the cluster's Kubernetes version.
    pub default: Option<String>,
    /// Latest for the cluster's Kubernetes version.
    pub latest: Option<String>,
    /// Default for the next Kubernetes version.
    pub next_default: Option<String>,
    /// Latest for the next Kubernetes version.
    pub next_latest: Option<String>,
    /// Whether the installed version is offered for the next Kubernetes version.
    pub compatible_with_next: bool,
    /// Offered versions newer than the installed one (this Kubernetes version).
    pub versions_behind: usize,
    /// Days since the add-on was last changed (DescribeAddon `modifiedAt`; EKS publishes no
    /// release dates for add-on versions).
    pub days_since_modified: Option<i64>,
}

/// The report for the cluster at `kubernetes`, with `next` as the next Kubernetes version.
pub async fn report(
    eks: &Eks,
    kubernetes: &str,
    next: &str,
    now_epoch: i64,
) -> Result<Vec<Drift>, StepError> {
    let mut out = Vec::new();
    for name in order(eks.list_addons().await?) {
        let Some(a) = eks.describe_addon(&name).await? else {
            continue;
        };
        let now = eks.versions(&name, kubernetes).await?;
        let later = eks.versions(&name, next).await?;
        let (default, latest) = default_latest(&now);
        let (next_default, next_latest) = default_latest(&later);
        out.push(Drift {
            versions_behind: now
                .iter()
                .filter(|o| versions::cmp(&o.version, &a.version).is_gt())
                .count(),
            compatible_with_next: later.iter().any(|o| o.version == a.version),
            days_since_modified: a.modified_at.map(|m| (now_epoch - m).max(0) / 86_400),
            name,
            current: a.version,
            status: a.status,
            default,
            latest,
            next_default,
            next_latest,
        });
    }
    Ok(out)
}

fn default_latest(v: &[Offered]) -> (Option<String>, Option<String>) {
    let latest = v
        .iter()
        .max_by(|a, b| versions::cmp(&a.version, &b.version))
        .map(|o| o.version.clone());
    let default = v.iter().find(|o| o.default).map(|o| o.version.clone());
    (default, latest)
}

/// The report as Markdown: a table, then what to do about each add-on that needs it.
#[must_use]
pub fn markdown(cluster: &str, kubernetes: &str, next: &str, rows: &[Drift]) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let mut s = format!(
        "# EKS add-on drift: {cluster}\n\nKubernetes {kubernetes}; next: {next}.\n\n\
         | Add-on | Current | Status | Default {kubernetes} | Latest {kubernetes} | Default {next} | Latest {next} | Runs on {next} | Behind |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let days = r
            .days_since_modified
            .map_or(String::new(), |d| format!(", unchanged for {d} days"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} versions{days} |",
            r.name,
            r.current,
            r.status,
            o(&r.default),
            o(&r.latest),
            o(&r.next_default),
            o(&r.next_latest),
            if r.compatible_with_next {
                "yes"
            } else {
                "**no**"
            },
            r.versions_behind,
        );
    }
    let blocking: Vec<&Drift> = rows.iter().filter(|r| !r.compatible_with_next).collect();
    if blocking.is_empty() {
        let _ = write!(s, "\nEvery installed add-on runs on Kubernetes {next}.\n");
    } else {
        let _ = write!(s, "\n## Before upgrading to {next}\n\n");
        for r in blocking {
            let _ = writeln!(
                s,
                "- {}: {} is not offered for Kubernetes {next}; move it first (`bump-addon --addon {} --addon-version next-safe --target-kubernetes {next}`).",
                r.name, r.current, r.name
            );
        }
    }
    s
}
