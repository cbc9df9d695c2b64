//! `argo get`'s rendering of a workflow: a `%-20s` header, then STEP / TEMPLATE / PODNAME /
//! DURATION / MESSAGE columns separated by at least two spaces. As in Argo, step groups and
//! single-attempt retry nodes are not printed themselves (their children take their place, a
//! step group's children with ┬─/├─/└─), Omitted nodes are hidden, only pods show a pod name and
//! a duration, and the exit handler's tree follows the main one after an empty row.

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

/// "5s", "3m", "2h": the largest unit, as the STEP table's DURATION column shows it.
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// "11 seconds", "1 minute 5 seconds", as the header's Duration shows it.
pub(crate) fn long_duration(d: Duration) -> String {
    let s = d.as_secs();
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match s {
        0..60 => unit(s, "second"),
        60..3600 => format!("{} {}", unit(s / 60, "minute"), unit(s % 60, "second")),
        _ => format!(
            "{} {}",
            unit(s / 3600, "hour"),
            unit(s % 3600 / 60, "minute")
        ),
    }
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
        let children: Vec<&Node> = node
            .children
            .iter()
            .filter_map(|c| self.by_id.get(c.as_str()).copied())
            .collect();
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
    let pods: Vec<&Node> = wf.pods().collect();
    let done = pods.iter().filter(|p| p.phase == Phase::Succeeded).count();
    line("Progress:", &format!("{done}/{}", pods.len()));
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
