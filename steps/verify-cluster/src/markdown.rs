//! The Markdown report (`report.md`), for people reading it in the Argo UI: a summary line,
//! findings grouped by severity with counts, then a table of every check.

use std::fmt::Write as _;

use crate::finding::{CheckStatus, Severity};
use crate::report::{Document, profile_name};

/// Table cells cannot hold `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn icon(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Info => "info",
        CheckStatus::Warn => "**warn**",
        CheckStatus::Fail => "**FAIL**",
        CheckStatus::Skipped => "skipped",
        CheckStatus::Error => "**error**",
    }
}

/// Renders `doc`.
#[must_use]
pub fn render(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# verify-cluster: {}\n", profile_name(doc.profile));
    let _ = writeln!(out, "{}\n", doc.summary_line());
    let mut context = Vec::new();
    if let Some(v) = &doc.server_version {
        context.push(format!("API server {v}"));
    }
    if let Some(c) = &doc.eks_cluster {
        context.push(format!("EKS cluster {c}"));
    }
    if let Some(t) = doc.target_kubernetes {
        context.push(format!("target {t}"));
    }
    if let Some(e) = doc.expect_kubernetes {
        context.push(format!("expected {e}"));
    }
    context.push(format!("generated {}", doc.generated_at));
    let _ = writeln!(out, "{}\n", context.join(" · "));
    let _ = writeln!(out, "## Findings\n");
    if doc.findings.is_empty() {
        let _ = writeln!(out, "None.\n");
    }
    for sev in [Severity::Fail, Severity::Warn, Severity::Info] {
        let list: Vec<_> = doc.findings.iter().filter(|f| f.severity == sev).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {} ({})\n", sev.as_str(), list.len());
        for f in list {
            let objects: Vec<String> = f.objects.iter().map(|o| format!("`{o}`")).collect();
            let _ = writeln!(out, "- **{}**: {}", f.check, f.message);
            if !objects.is_empty() {
                let _ = writeln!(out, "  - objects: {}", objects.join(", "));
            }
            let _ = writeln!(out, "  - fix: {}", f.remediation);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Checks\n");
    let _ = writeln!(out, "| Check | Status | Findings | What it verifies |");
    let _ = writeln!(out, "|---|---|---|---|");
    for c in &doc.checks {
        let what = match &c.reason {
            Some(r) => format!("{} ({})", c.title, r),
            None => c.title.to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            c.id,
            icon(c.status),
            c.findings,
            cell(&what)
        );
    }
    out
}
