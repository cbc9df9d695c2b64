//! What a run reports, in one shape whatever the outcome (a plan refusal, SIGTERM before the
//! first cordon, a finished drain): per-node results, the plan, the blocked pods and a summary,
//! on stdout and in the output files. The README documents every field.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opsteps::cli::DryRun;
use opsteps::exit::{ExitStatus, StepError};
use opsteps::step::{Context, Report};
use serde::Serialize;
use serde_json::json;

use crate::plan::{NodePlan, Verdict};
use crate::shared::{BlockedPod, Shared};

/// How one node ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Every pod is gone.
    Drained,
    /// A dry run finished: the drain would succeed.
    DryRun,
    /// The plan refused the drain; nothing was done.
    Refused,
    /// Budgets kept pods on the node until the deadline, or another drain holds it.
    Blocked,
    /// Evicted pods did not terminate before the deadline.
    TimedOut,
    /// Some pod failed for good.
    Failed,
    /// Transient errors persisted.
    Transient,
    /// Interrupted by SIGTERM.
    Interrupted,
    /// Not attempted (SIGTERM, another node's refusal, replacements not back).
    NotStarted,
}

impl NodeStatus {
    /// The step's exit status for a node that ended so.
    #[must_use]
    pub fn exit_status(self) -> ExitStatus {
        match self {
            Self::Drained | Self::DryRun => ExitStatus::Done,
            Self::Refused | Self::Blocked | Self::TimedOut => ExitStatus::Blocked,
            Self::Failed => ExitStatus::Failed,
            Self::Transient | Self::Interrupted | Self::NotStarted => ExitStatus::Transient,
        }
    }

    /// The worse of two node outcomes, ranked by their exit status (the library's ranking); on a
    /// tie the first stays.
    #[must_use]
    pub fn worse(self, other: Self) -> Self {
        let (a, b) = (self.exit_status(), other.exit_status());
        if a != b && a.worst(b) == b {
            other
        } else {
            self
        }
    }
}

/// A pod that did not leave, with why.
#[derive(Clone, Debug, Serialize)]
pub struct NotEvicted {
    /// `namespace/name`, or `node`/`replacements` for what concerns the whole node.
    pub pod: String,
    /// Why.
    pub reason: String,
}

/// One node's result.
#[derive(Clone, Debug, Serialize)]
pub struct NodeResult {
    /// Node name.
    pub node: String,
    /// Outcome.
    pub status: NodeStatus,
    /// Pods this run evicted (the server accepted the eviction or deletion), or that a dry run
    /// would evict.
    pub evicted: Vec<String>,
    /// Pods that left without an eviction from this run: already terminating, evicted by an
    /// earlier run, deleted by someone else, or replaced.
    pub awaited: Vec<String>,
    /// Pods that did not go, with why.
    pub not_evicted: Vec<NotEvicted>,
    /// A dry run's verdict per pod.
    pub dry_run: BTreeMap<String, String>,
}

impl NodeResult {
    /// A node with nothing done yet.
    #[must_use]
    pub fn new(node: &str, status: NodeStatus) -> Self {
        Self {
            node: node.to_owned(),
            status,
            evicted: Vec::new(),
            awaited: Vec::new(),
            not_evicted: Vec::new(),
            dry_run: BTreeMap::new(),
        }
    }

    /// Adds a pod that did not go.
    pub fn not_evicted(&mut self, pod: impl Into<String>, reason: impl Into<String>) {
        self.not_evicted.push(NotEvicted {
            pod: pod.into(),
            reason: reason.into(),
        });
    }
}

/// The `summary` output and result field.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Nodes selected.
    pub nodes: usize,
    /// Nodes this run cordoned (or found cordoned by an earlier drain).
    pub cordoned: usize,
    /// Nodes drained (or that a dry run would drain).
    pub drained: usize,
    /// Pods this run evicted.
    pub evicted: usize,
    /// Pods waited for without an eviction from this run.
    pub awaited: usize,
    /// Pods blocking the drain (plan refusals or pods still blocked at the end).
    pub blocked: usize,
    /// The dry-run mode.
    pub dry_run: DryRun,
}

fn write(ctx: &Context, name: &str, v: &serde_json::Value) -> Result<(), StepError> {
    ctx.output
        .write_json(name, v)
        .map_err(|e| StepError::failed("cannot write outputs").with_source(e))
}

/// Writes the outputs and builds the report; every outcome goes through here.
fn report(
    ctx: &Context,
    dry: DryRun,
    results: &[NodeResult],
    cordoned: usize,
    plans: &[NodePlan],
    blocked: &[BlockedPod],
    (status, line): (ExitStatus, String),
) -> Result<Report, StepError> {
    let drained: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.status, NodeStatus::Drained | NodeStatus::DryRun))
        .map(|r| r.node.as_str())
        .collect();
    let summary = Summary {
        nodes: results.len(),
        cordoned,
        drained: drained.len(),
        evicted: results.iter().map(|r| r.evicted.len()).sum(),
        awaited: results.iter().map(|r| r.awaited.len()).sum(),
        blocked: blocked.len(),
        dry_run: dry,
    };
    write(ctx, "drained-nodes", &json!(drained))?;
    write(ctx, "blocked-pods", &json!(blocked))?;
    write(ctx, "summary", &json!(summary))?;
    // A bare number for Argo's metrics (a dry run counts what it would evict).
    write(ctx, "evicted-count", &json!(summary.evicted))?;
    Ok(Report {
        status,
        summary: line,
        result: json!({ "dryRun": dry, "nodes": results, "plan": plans, "blocked": blocked, "summary": summary }),
    })
}

/// When the plan has blocking pods: the report (exit 4), with nothing cordoned.
pub fn refusal(
    ctx: &Context,
    dry: DryRun,
    plans: &[NodePlan],
) -> Result<Option<Report>, StepError> {
    let mut blocked = Vec::new();
    let mut results = Vec::new();
    for n in plans {
        let mut r = NodeResult::new(&n.node, NodeStatus::NotStarted);
        for p in n.blocking() {
            let reason = match &p.verdict {
                Verdict::Block { reason } => reason.as_str(),
                _ => "",
            };
            r.status = NodeStatus::Refused;
            r.not_evicted(&p.pod, reason);
            blocked.push(BlockedPod::refused(&n.node, p, reason));
        }
        results.push(r);
    }
    let Some(first) = blocked.first() else {
        return Ok(None);
    };
    let line = format!(
        "the drain cannot succeed; nothing was cordoned. {} blocking pod(s), first: {} on {}: {}",
        blocked.len(),
        first.pod,
        first.node,
        first.last_message
    );
    report(
        ctx,
        dry,
        &results,
        0,
        plans,
        &blocked,
        (ExitStatus::Blocked, line),
    )
    .map(Some)
}

/// The run stopped after selecting the nodes and before draining them (a planning error,
/// SIGTERM, another drain holds a node): every node not started, the error's status and message.
pub fn stopped(
    ctx: &Context,
    dry: DryRun,
    names: &[String],
    plans: &[NodePlan],
    err: &StepError,
) -> Result<Report, StepError> {
    let results: Vec<NodeResult> = names
        .iter()
        .map(|n| {
            let mut r = NodeResult::new(n, NodeStatus::NotStarted);
            r.not_evicted("node", err.chain());
            r
        })
        .collect();
    report(
        ctx,
        dry,
        &results,
        0,
        plans,
        &[],
        (err.status(), err.chain()),
    )
}

/// The exit status, outputs and result of a run that got past the plan.
pub fn finish(
    ctx: &Context,
    dry: DryRun,
    cordoned: usize,
    results: &[NodeResult],
    plans: &[NodePlan],
    blocked: &[BlockedPod],
) -> Result<Report, StepError> {
    let drained = results
        .iter()
        .filter(|r| matches!(r.status, NodeStatus::Drained | NodeStatus::DryRun))
        .count();
    let evicted: usize = results.iter().map(|r| r.evicted.len()).sum();
    let awaited: usize = results.iter().map(|r| r.awaited.len()).sum();
    let mut status = results
        .iter()
        .fold(ExitStatus::Done, |acc, r| acc.worst(r.status.exit_status()));
    if ctx.shutdown.is_requested() && drained < results.len() {
        status = status.worst(ExitStatus::Transient);
    }
    let line = match status {
        ExitStatus::Done if dry.is_dry() => {
            format!("dry run: {drained} node(s) would drain, {evicted} pod(s) would be evicted")
        }
        ExitStatus::Done => {
            format!("drained {drained} node(s), {evicted} pod(s) evicted, {awaited} awaited")
        }
        _ => {
            let stuck: Vec<String> = results
                .iter()
                .flat_map(|r| {
                    r.not_evicted
                        .iter()
                        .map(move |n| format!("{} on {}: {}", n.pod, r.node, n.reason))
                })
                .take(5)
                .collect();
            format!(
                "drained {drained} of {} node(s); remaining: {}",
                results.len(),
                stuck.join("; ")
            )
        }
    };
    report(ctx, dry, results, cordoned, plans, blocked, (status, line))
}

/// Every `interval`, logs each pod still blocking: pod, owner, PDB, its current/desired healthy,
/// seconds blocked and the API server's last message.
pub async fn progress(shared: Arc<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let done = shared.done.load(Ordering::Relaxed);
        let total = shared.total.load(Ordering::Relaxed);
        let blockers = shared.blocker_report().await;
        tracing::info!(done, total, blocked = blockers.len(), "progress");
        for b in blockers {
            tracing::warn!(
                pod = %b.pod,
                node = %b.node,
                owner = b.owner.as_deref().unwrap_or(""),
                pdb = b.pdb.as_deref().unwrap_or(""),
                current_healthy = b.current_healthy.unwrap_or(-1),
                desired_healthy = b.desired_healthy.unwrap_or(-1),
                seconds_blocked = b.seconds_blocked,
                last_message = %b.last_message,
                "still blocked"
            );
        }
    }
}
