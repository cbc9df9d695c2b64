//! `argo get`'s rendering of a workflow: a `%-20s` header, then STEP / TEMPLATE / PODNAME /
//! DURATION / MESSAGE columns separated by at least two spaces. As in Argo, step groups and
//! single-attempt retry nodes are not printed themselves (their children take their place, a
//! step group's children with ┬─/├─/└─), nor are a DAG fan-out's TaskGroup nodes (their children
//! sit in the DAG), Omitted nodes are hidden, only pods show a pod name and a duration, and the
//! exit handler's tree follows the main one after an empty row. Progress, durations and the
//! order of siblings (by start second, then item index or name) are Argo's. Unlike `argo get`:
//! no ServiceAccount, Created, Started or Finished lines, no colours, no trailing blanks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::workflow::{Node, NodeKind, Phase, Workflow};

fn glyph(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "◷",
        Phase::Running => "●",
        Phase::Succeeded => "✔",
        Phase::Failed => "✖",
        Phase::Error => "⚠",
        Phase::Skipped | Phase::Omitted => "○",
    }
}

/// "5s", "3m", "2h", "1d": the largest unit, as the STEP table's DURATION column shows it
/// (Argo's humanize.RelativeDurationShort).
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The largest unit alone: "1 second", "5 minutes", "2 days" (Argo's TruncatedDuration).
fn truncated(s: u64) -> String {
    let (n, unit) = match s {
        0..60 => (s, "second"),
        60..3600 => (s / 60, "minute"),
        3600..86_400 => (s / 3600, "hour"),
        86_400..604_800 => (s / 86_400, "day"),
        _ => (s / 604_800, "week"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// "11 seconds", "1 minute 5 seconds", "2 hours 1 minutes", "1 day 3 hours", as the header's
/// Duration shows it (Argo's humanize.Duration: the second unit is always plural).
pub(crate) fn long_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => truncated(s),
        60..3600 => format!("{} {} seconds", truncated(s), s % 60),
        3600..86_400 => format!("{} {} minutes", truncated(s), s / 60 % 60),
        _ => format!("{} {} hours", truncated(s), s / 3600 % 24),
    }
}

/// Argo's workflow progress: over pods and suspends, each its own reported `N/M` (else 0/1),
/// complete (`M/M`) once Succeeded, Skipped or Omitted.
fn progress(wf: &Workflow) -> String {
    let (mut done, mut total) = (0u64, 0u64);
    for n in wf
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Pod | NodeKind::Suspend))
    {
        let (d, t) = n
            .progress
            .as_deref()
            .and_then(|p| p.split_once('/'))
            .and_then(|(d, t)| Some((d.trim().parse::<u64>().ok()?, t.trim().parse::<u64>().ok()?)))
            .filter(|(d, t)| d <= t && *t > 0)
            .unwrap_or((0, 1));
        let complete = matches!(n.phase, Phase::Succeeded | Phase::Skipped | Phase::Omitted);
        done += if complete { t } else { d };
        total += t;
    }
    format!("{done}/{total}")
}

/// `argo get`'s sibling order: by start second; within one second, list items by their
/// index, anything else by name (a stable insertion sort, as Argo's insertSorted).
fn sorted(nodes: Vec<&Node>) -> Vec<&Node> {
    let index = |n: &Node| -> Option<u64> {
        let (_, rest) = n.display_name.split_once('(')?;
        rest.split_once(':')?.0.parse().ok()
    };
    let mut out: Vec<&Node> = Vec::with_capacity(nodes.len());
    for item in nodes {
        let second = item.started_ms.map(|ms| ms / 1000);
        let at = out
            .iter()
            .position(|e| {
                let other = e.started_ms.map(|ms| ms / 1000);
                match second.cmp(&other) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => match (index(item), index(e)) {
                        (Some(a), Some(b)) => a < b,
                        _ => item.display_name < e.display_name,
                    },
                }
            })
            .unwrap_or(out.len());
        out.insert(at, item);
    }
    out
}

struct Printer<'a> {
    by_id: HashMap<&'a str, &'a Node>,
    rows: Vec<[String; 5]>,
}

impl<'a> Printer<'a> {
    fn hidden(node: &Node) -> (bool, bool) {
        match node.kind {
            NodeKind::Retry if node.children.len() == 1 => (true, false),
            NodeKind::StepGroup => (true, true),
            _ if node.phase == Phase::Omitted => (true, false),
            _ => (false, false),
        }
    }

    fn row(&mut self, node: &Node, prefix: &str) {
        let pod = node.kind == NodeKind::Pod;
        self.rows.push([
            format!("{prefix}{} {}", glyph(node.phase), node.display_name),
            node.template.clone(),
            if pod {
                node.pod_name.clone().unwrap_or_default()
            } else {
                String::new()
            },
            if pod {
                short_duration(node.duration)
            } else {
                String::new()
            },
            node.message.clone().unwrap_or_default().replace('\n', " "),
        ]);
    }

    fn render(&mut self, node: &'a Node, node_prefix: &str, child_prefix: &str) {
        let (hidden, indent) = Self::hidden(node);
        if !hidden {
            self.row(node, node_prefix);
        }
        // Argo does not render a DAG fan-out's TaskGroup node: its children sit in the DAG.
        let children: Vec<&Node> = node
            .children
            .iter()
            .filter_map(|c| self.by_id.get(c.as_str()).copied())
            .flat_map(|c| {
                if c.kind == NodeKind::Task {
                    c.children
                        .iter()
                        .filter_map(|g| self.by_id.get(g.as_str()).copied())
                        .collect()
                } else {
                    vec![c]
                }
            })
            .collect();
        let children = sorted(children);
        let last = children.len().saturating_sub(1);
        for (i, child) in children.into_iter().enumerate() {
            let (part, sub) = match (hidden, indent, last, i) {
                // A hidden single-attempt retry: its child takes its place and prefix.
                (true, false, _, _) => ("", ""),
                (true, true, 0, _) => ("──", "  "),
                (true, true, _, 0) => ("┬─", "│ "),
                (_, _, _, i) if i == last => ("└─", "  "),
                _ => ("├─", "│ "),
            };
            let (np, cp) = if hidden {
                let head = if i == 0 { node_prefix } else { child_prefix };
                (format!("{head}{part}"), format!("{child_prefix}{sub}"))
            } else {
                (
                    format!("{child_prefix}{part}"),
                    format!("{child_prefix}{sub}"),
                )
            };
            self.render(child, &np, &cp);
        }
    }
}

pub(crate) fn render(wf: &Workflow) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        let text = format!("{k:<20} {v}");
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line("Name:", &wf.name);
    line("Namespace:", &wf.namespace);
    line("Status:", wf.phase.as_str());
    if let Some(m) = &wf.message {
        line("Message:", m);
    }
    line("Duration:", &long_duration(wf.duration));
    line("Progress:", &progress(wf));
    if !wf.parameters.is_empty() {
        line("Parameters:", "");
        for (k, v) in &wf.parameters {
            line(&format!("  {k}:"), v);
        }
    }
    if !wf.outputs.is_empty() {
        line("Output Parameters:", "");
        for (k, v) in &wf.outputs {
            line(&format!("  {k}:"), v);
        }
    }
    let mut p = Printer {
        by_id: wf.nodes.iter().map(|n| (n.id.as_str(), n)).collect(),
        rows: vec![[
            "STEP".into(),
            "TEMPLATE".into(),
            "PODNAME".into(),
            "DURATION".into(),
            "MESSAGE".into(),
        ]],
    };
    for (i, root) in wf.nodes.iter().filter(|n| n.parent.is_none()).enumerate() {
        if i > 0 {
            p.rows.push(Default::default());
        }
        p.render(root, " ", " ");
    }
    let mut widths = [0usize; 5];
    for r in &p.rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    out.push('\n');
    for r in &p.rows {
        let mut l = String::new();
        for (i, c) in r.iter().enumerate() {
            l.push_str(c);
            if i < 4 {
                let pad = widths[i] - c.chars().count() + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, started_ms: u64) -> Node {
        Node {
            id: name.to_owned(),
            display_name: name.to_owned(),
            template: String::new(),
            kind: NodeKind::Pod,
            phase: Phase::Succeeded,
            message: None,
            parent: None,
            children: Vec::new(),
            inputs: std::collections::BTreeMap::new(),
            outputs: std::collections::BTreeMap::new(),
            result: None,
            exit_code: None,
            dir: None,
            progress: None,
            duration: Duration::ZERO,
            pod_name: None,
            started_ms: Some(started_ms),
        }
    }

    /// insertSorted: start second first, then the item index (10 after 9), else the name.
    #[test]
    fn siblings_sort_as_argo_get_sorts_them() {
        let nodes = [
            node("zeta", 1_500),
            node("late", 2_000),
            node("fan(10:k)", 1_100),
            node("fan(9:j)", 1_900),
            node("alpha", 1_999),
            node("early", 999),
        ];
        let names: Vec<&str> = sorted(nodes.iter().collect())
            .iter()
            .map(|n| n.display_name.as_str())
            .collect();
        assert_eq!(
            names,
            ["early", "alpha", "fan(9:j)", "fan(10:k)", "zeta", "late"]
        );
    }

    /// Argo's humanize package: the second unit stays plural, days and weeks exist.
    #[test]
    fn durations_read_as_argo_prints_them() {
        let d = Duration::from_secs;
        assert_eq!(long_duration(d(0)), "0 seconds");
        assert_eq!(long_duration(d(1)), "1 second");
        assert_eq!(long_duration(d(61)), "1 minute 1 seconds");
        assert_eq!(long_duration(d(150)), "2 minutes 30 seconds");
        assert_eq!(long_duration(d(3660)), "1 hour 1 minutes");
        assert_eq!(long_duration(d(90_000)), "1 day 1 hours");
        assert_eq!(short_duration(d(59)), "59s");
        assert_eq!(short_duration(d(7200)), "2h");
        assert_eq!(short_duration(d(90_000)), "1d");
    }
}
