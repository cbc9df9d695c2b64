//! The drain's record on each node: the cordon with its annotations (who drains, since when,
//! whether the node was cordoned before), and the outcome (state annotation, Event, uncordon on
//! failure when the node was schedulable before the first drain).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use opsteps::cli::DryRun;
use opsteps::events::{self, EventType};
use opsteps::exit::StepError;
use opsteps::step::Context;
use serde_json::json;

use crate::report::{NodeResult, NodeStatus};
use crate::{ANN_OWNER, ANN_PRIOR, ANN_STARTED, ANN_STATE, STEP};

/// States an unfinished drain leaves in [`ANN_STATE`]: its [`ANN_PRIOR`] is still the truth.
const UNFINISHED: [&str; 4] = ["draining", "blocked", "interrupted", "failed"];

/// Whether `node` (as it is now, before our cordon) was cordoned before the first drain touched
/// it. A schedulable node was not; a cordoned one was, unless an unfinished drain recorded
/// otherwise. Unsure means "cordoned": a failed drain must never uncordon an operator's cordon.
#[must_use]
pub fn prior_unschedulable(node: &Node) -> bool {
    if !opsteps::nodes::is_unschedulable(node) {
        return false;
    }
    let ann = node.annotations();
    let unfinished = ann
        .get(ANN_STATE)
        .is_some_and(|s| UNFINISHED.contains(&s.as_str()));
    match ann.get(ANN_PRIOR) {
        Some(p) if unfinished => p != "false",
        _ => true,
    }
}

/// Cordons `name` and records the drain in its annotations. Reads the node fresh and patches
/// with its resourceVersion, so an operator's cordon in between is never recorded as ours.
#[tracing::instrument(skip_all, fields(node = %name), err)]
async fn cordon(
    client: &Client,
    ctx: &Context,
    name: &str,
    me: &str,
    dry: DryRun,
) -> Result<Cordoned, StepError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut attempt = 0;
    loop {
        let node = api
            .get(name)
            .await
            .map_err(|e| StepError::kube(format!("get node {name}"), e))?;
        let prior = prior_unschedulable(&node);
        let ann = node.annotations();
        // Keep the first run's start time when the same holder resumes.
        let started = ann
            .get(ANN_STARTED)
            .filter(|_| ann.get(ANN_OWNER).is_some_and(|o| o == me))
            .cloned()
            .unwrap_or_else(|| jiff::Timestamp::now().to_string());
        let patch = json!({
            "spec": { "unschedulable": true },
            "metadata": {
                "resourceVersion": node.resource_version(),
                "annotations": { ANN_OWNER: me, ANN_STARTED: started, ANN_STATE: "draining", ANN_PRIOR: prior.to_string() },
            },
        });
        match annotate(client, ctx, name, "cordon", &patch, dry).await {
            Ok(()) => {
                tracing::info!(prior_unschedulable = prior, "cordoned");
                return Ok(Cordoned { prior, node });
            }
            // The node changed between our read and the patch: read it again.
            Err(Conflict::Yes(_)) if attempt < 3 => attempt += 1,
            Err(Conflict::Yes(e) | Conflict::No(e)) => return Err(e),
        }
    }
}

/// A node this run cordoned.
#[derive(Clone, Debug)]
pub struct Cordoned {
    /// Whether it was cordoned before the first drain touched it.
    pub prior: bool,
    /// The node as read before our cordon (for its Events).
    pub node: Node,
}

enum Conflict {
    Yes(StepError),
    No(StepError),
}

impl From<Conflict> for StepError {
    fn from(c: Conflict) -> Self {
        match c {
            Conflict::Yes(e) | Conflict::No(e) => e,
        }
    }
}

/// One audited merge patch of a node.
async fn annotate(
    client: &Client,
    ctx: &Context,
    node: &str,
    action: &str,
    patch: &serde_json::Value,
    dry: DryRun,
) -> Result<(), Conflict> {
    if dry == DryRun::Client {
        return Ok(());
    }
    let api: Api<Node> = Api::all(client.clone());
    let pp = PatchParams {
        dry_run: dry == DryRun::Server,
        ..PatchParams::default()
    };
    let target = opsteps::audit::Target::cluster("Node", node);
    ctx.audit.sent(action, &target, pp.dry_run);
    let r = api.patch(node, &pp, &Patch::Merge(patch)).await;
    match r {
        Ok(_) => {
            ctx.audit.record(action, target, pp.dry_run, Ok(200));
            Ok(())
        }
        Err(e) => {
            let code = match &e {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            };
            ctx.audit
                .record(action, target, pp.dry_run, Err((code, e.to_string())));
            let err = StepError::kube(format!("{action} node {node}"), e);
            Err(if code == Some(409) {
                Conflict::Yes(err)
            } else {
                Conflict::No(err)
            })
        }
    }
}

/// Cordons every target first, as kubectl does; a failed cordon fails that node only, and
/// SIGTERM leaves the rest not started. Returns the cordoned nodes with whether each was
/// cordoned before the first drain, and the results of the others.
pub async fn cordon_all(
    client: &Client,
    ctx: &Context,
    names: &[String],
    me: &str,
    dry: DryRun,
) -> (BTreeMap<String, Cordoned>, BTreeMap<String, NodeResult>) {
    let mut cordoned = BTreeMap::new();
    let mut results = BTreeMap::new();
    for name in names {
        if ctx.shutdown.is_requested() {
            let mut r = NodeResult::new(name, NodeStatus::NotStarted);
            r.not_evicted("node", "SIGTERM before the cordon");
            results.insert(name.clone(), r);
            continue;
        }
        match cordon(client, ctx, name, me, dry).await {
            Ok(c) => {
                if !dry.is_dry() && !ctx.shutdown.is_requested() {
                    let message = format!("Cordoned by {me}; draining");
                    events::record(
                        client,
                        &ctx.audit,
                        STEP,
                        &c.node,
                        EventType::Normal,
                        "DrainStarted",
                        &message,
                    )
                    .await;
                }
                cordoned.insert(name.clone(), c);
            }
            Err(e) => {
                tracing::error!(node = %name, error = %e.chain(), "cannot cordon");
                let mut r = NodeResult::new(name, NodeStatus::Failed);
                r.not_evicted("node", e.chain());
                results.insert(name.clone(), r);
            }
        }
    }
    (cordoned, results)
}

/// Writes the outcome on each cordoned node (annotation, Event) and uncordons on failure when
/// asked and when the node was schedulable before the first drain. Writes nothing after
/// SIGTERM, nor on a node whose lease `lost` says is no longer ours (another drain owns it now).
pub async fn record_outcomes(
    client: &Client,
    ctx: &Context,
    uncordon_on_failure: bool,
    cordoned: &BTreeMap<String, Cordoned>,
    results: &BTreeMap<String, NodeResult>,
    lost: impl Fn(&str) -> bool,
) {
    for r in results.values() {
        let Some(c) = cordoned.get(&r.node) else {
            continue;
        };
        if ctx.shutdown.is_requested() {
            tracing::warn!(node = %r.node, "SIGTERM: the drain outcome is not recorded on the node");
            continue;
        }
        if lost(&r.node) {
            tracing::warn!(node = %r.node, "lease lost: the node is left to its new holder");
            continue;
        }
        let (state, etype, reason) = match r.status {
            NodeStatus::Drained | NodeStatus::DryRun => ("drained", EventType::Normal, "Drained"),
            NodeStatus::Refused | NodeStatus::Blocked | NodeStatus::TimedOut => {
                ("blocked", EventType::Warning, "DrainBlocked")
            }
            NodeStatus::Interrupted | NodeStatus::NotStarted | NodeStatus::Transient => {
                ("interrupted", EventType::Warning, "DrainInterrupted")
            }
            NodeStatus::Failed => ("failed", EventType::Warning, "DrainFailed"),
        };
        let detail = if r.not_evicted.is_empty() {
            format!(
                "{} pods evicted: {}; {} awaited",
                r.evicted.len(),
                r.evicted.join(", "),
                r.awaited.len()
            )
        } else {
            let rest: Vec<String> = r
                .not_evicted
                .iter()
                .map(|n| format!("{} ({})", n.pod, n.reason))
                .collect();
            format!(
                "{} pods evicted, {} remain: {}",
                r.evicted.len(),
                r.not_evicted.len(),
                rest.join(", ")
            )
        };
        let uncordon = uncordon_on_failure && r.status != NodeStatus::Drained && !c.prior;
        let patch = if uncordon {
            json!({ "spec": { "unschedulable": false }, "metadata": { "annotations": { ANN_STATE: state, ANN_OWNER: null, ANN_STARTED: null, ANN_PRIOR: null } } })
        } else {
            json!({ "metadata": { "annotations": { ANN_STATE: state } } })
        };
        let action = if uncordon { "uncordon" } else { "annotate" };
        if let Err(e) = annotate(client, ctx, &r.node, action, &patch, DryRun::None).await {
            let e = StepError::from(e);
            tracing::warn!(node = %r.node, error = %e.chain(), "cannot record the drain outcome on the node");
        }
        events::record(client, &ctx.audit, STEP, &c.node, etype, reason, &detail).await;
    }
}
