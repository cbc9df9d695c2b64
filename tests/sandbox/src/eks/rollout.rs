//! Node replacement as EKS runs it for managed node groups: a scale-down (UpdateNodegroupConfig
//! to a smaller `desiredSize`) and a version update (UpdateNodegroupVersion).
//!
//! - Scale-down: the nodes to remove (highest index first) are cordoned together, then drained
//!   in parallel; once a node has no pods left but DaemonSet and mirror pods, its instance is
//!   terminated (the Node is deleted; the pod garbage collector removes what ran on it).
//! - Version update (the AWS guide's scale-up, upgrade and scale-down phases): new nodes at the
//!   new version are launched first (max(`maxUnavailable`, 2 × the old nodes' zones), at most
//!   as many as there are old nodes), every old node is cordoned, then up to `maxUnavailable`
//!   old nodes at a time are drained, left 60 s, and terminated; a terminated node is replaced
//!   by another new one while the group has fewer new nodes than `desiredSize`.
//! - Draining evicts every pod through the eviction subresource's own rules (PDBs honoured, as
//!   user `eks:node-manager`), retrying refused evictions every 5 virtual seconds. After the pod
//!   eviction timeout (`eks.timings.podEvictionTimeout`, 15 min like EKS, virtual time) a
//!   scale-down deletes what is left (the instance is terminated anyway) and so does a version
//!   update with `force`; without `force` the version update fails with `PodEvictionFailure`,
//!   the version stays, and the nodes stay as they are (old ones cordoned).
//!
//! Every step is recorded in [`EksState::drain_events`](super::EksState::drain_events).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::eviction;
use crate::api::{Ctx, ResourcePath, crud};
use crate::api_state::Identity;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;

/// The Kubernetes user EKS drains nodes as.
pub const NODE_MANAGER: &str = "eks:node-manager";
/// Between two eviction attempts of a pod that was refused (virtual time).
pub const EVICTION_RETRY: Duration = Duration::from_secs(5);
/// How long a drained node stays before its instance is terminated (version updates).
pub const SETTLE: Duration = Duration::from_mins(1);

/// What the rollout does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Remove nodes (scale-down).
    ScaleDown,
    /// Replace every old node by one at `version` / `release`.
    Replace {
        /// Kubernetes minor.
        version: String,
        /// AMI release.
        release: String,
    },
}

/// One node being drained.
#[derive(Clone, Debug)]
pub struct Drain {
    /// Node name.
    pub node: String,
    /// When draining began.
    pub started: Timestamp,
    /// When the last pod left.
    pub drained_at: Option<Timestamp>,
    /// Next eviction attempt.
    pub retry_at: Timestamp,
}

/// A node group rollout in progress (held by its update).
#[derive(Clone, Debug)]
pub struct Rollout {
    /// What it does.
    pub kind: Kind,
    /// `force` of UpdateNodegroupVersion (scale-downs always force after the timeout).
    pub force: bool,
    /// Nodes to drain, in order.
    pub queue: Vec<String>,
    /// Nodes draining.
    pub draining: Vec<Drain>,
    /// How many nodes drain at once.
    pub parallel: usize,
    /// The pod eviction timeout.
    pub timeout: Duration,
}

/// One step of a drain, for tests and the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainEvent {
    /// Node group.
    pub nodegroup: String,
    /// Node.
    pub node: String,
    /// `namespace/name` of the pod, when about a pod.
    pub pod: Option<String>,
    /// `launched`, `cordoned`, `evicted`, `refused` (429), `forced` (deleted after the
    /// timeout), `terminated`, `timedOut` (the update fails).
    pub action: String,
    /// Virtual time.
    pub virtual_time: String,
}

/// How a step left the rollout.
pub enum Progress {
    /// Still going.
    Running,
    /// Done; `Err` carries the update's `errors[]` entry.
    Done(Result<(), Value>),
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn event(c: &mut Cluster, group: &str, node: &str, pod: Option<String>, action: &str) {
    let virtual_time = crate::clock::rfc3339(c.clock.now());
    tracing::debug!(nodegroup = group, node, pod = ?pod, action, "node group rollout");
    c.eks.drain_events.push(DrainEvent {
        nodegroup: group.to_owned(),
        node: node.to_owned(),
        pod,
        action: action.to_owned(),
        virtual_time,
    });
}

/// Sets `spec.unschedulable` (the node controller adds the taint).
pub fn cordon(c: &mut Cluster, group: &str, node: &str) {
    let Some(n) = c.store.get(well_known::nodes(), "", node) else {
        return;
    };
    if n.pointer("/spec/unschedulable") == Some(&json!(true)) {
        return;
    }
    let mut n = (*n).clone();
    n["spec"]["unschedulable"] = json!(true);
    if let Err(e) = c.store.update(well_known::nodes(), n) {
        tracing::warn!(node, error = %e, "could not cordon a node");
        return;
    }
    c.world.wake();
    event(c, group, node, None, "cordoned");
}

/// Pods a drain must remove from `node`: all but DaemonSet and mirror pods.
fn drainable(c: &Cluster, node: &str) -> Vec<Arc<Value>> {
    c.store
        .list(well_known::pods(), None)
        .filter(|p| podutil::node_name(p) == Some(node))
        .filter(|p| {
            podutil::controller_ref(p).and_then(|r| r["kind"].as_str()) != Some("DaemonSet")
                && p.pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                    .is_none()
        })
        .cloned()
        .collect()
}

/// Evicts `pod` as the eviction subresource would for `eks:node-manager`: `true` when it went.
fn evict(c: &mut Cluster, pod: &Value) -> bool {
    let (ns, name) = podutil::ns_name(pod);
    let (ns, name) = (ns.to_owned(), name.to_owned());
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}});
    let path = ResourcePath {
        res: well_known::pods(),
        namespace: Some(ns.clone()),
        name: Some(name.clone()),
        sub: Some("eviction".into()),
        watch_path: false,
    };
    let ctx = Ctx {
        identity: node_manager(),
        query: crate::api::Query::new(),
        accept: "application/json".into(),
        content_type: "application/json".into(),
        dry_run: false,
        body: Bytes::from(body.to_string()),
        user_agent: "eks-node-manager".into(),
    };
    match eviction::evict(c, &path, &ctx) {
        Ok(_) => true,
        Err(e) if e.code == 404 => true,
        Err(e) => {
            tracing::debug!(namespace = %ns, pod = %name, code = e.code, "eviction refused");
            false
        }
    }
}

fn node_manager() -> Identity {
    Identity {
        user: NODE_MANAGER.into(),
        groups: vec!["system:authenticated".into()],
        dry_run: false,
    }
}

/// Deletes `pod` at once, as terminating its instance does (recorded against PDBs by the
/// invariant checks, like any removal).
fn force_delete(c: &mut Cluster, pod: &Arc<Value>) {
    let opts = crud::DeleteOptions {
        grace: Some(0),
        ..crud::DeleteOptions::default()
    };
    if let Err(e) = crud::delete_pod(c, pod, &opts, false, NODE_MANAGER, "delete") {
        tracing::warn!(pod = %podutil::ns_name(pod).1, error = ?e.body, "forced pod deletion failed");
    }
}

/// Terminates the instance of `node`: the Node goes, and with it (garbage collector) its pods.
fn terminate(c: &mut Cluster, group: &str, node: &str) {
    c.store.remove(well_known::nodes(), "", node);
    c.world.wake();
    event(c, group, node, None, "terminated");
}

/// Records a launched node.
pub fn launched(c: &mut Cluster, group: &str, nodes: &[String]) {
    for n in nodes {
        event(c, group, n, None, "launched");
    }
}

/// Moves rollout `r` of node group `group` along at `now`; `replace` launches one new node
/// (version updates) and says whether it did.
pub fn step(
    c: &mut Cluster,
    group: &str,
    r: &mut Rollout,
    now: Timestamp,
    replace: &mut dyn FnMut(&mut Cluster) -> bool,
) -> Progress {
    while r.draining.len() < r.parallel && !r.queue.is_empty() {
        let node = r.queue.remove(0);
        cordon(c, group, &node);
        r.draining.push(Drain {
            node,
            started: now,
            drained_at: None,
            retry_at: now,
        });
    }
    let mut keep = Vec::new();
    for mut d in std::mem::take(&mut r.draining) {
        let pods = drainable(c, &d.node);
        if pods.is_empty() {
            let drained = *d.drained_at.get_or_insert(now);
            let settle = if r.kind == Kind::ScaleDown {
                Duration::ZERO
            } else {
                SETTLE
            };
            if now >= drained + signed(settle) {
                terminate(c, group, &d.node);
                replace(c);
            } else {
                keep.push(d);
            }
            continue;
        }
        if now >= d.started + signed(r.timeout) {
            if r.force || r.kind == Kind::ScaleDown {
                for p in pods.iter().filter(|p| !podutil::is_terminating(p)) {
                    let (ns, name) = podutil::ns_name(p);
                    let id = format!("{ns}/{name}");
                    force_delete(c, p);
                    event(c, group, &d.node, Some(id), "forced");
                }
                // Terminating pods die with the instance.
                terminate(c, group, &d.node);
                replace(c);
                continue;
            }
            for p in &pods {
                let (ns, name) = podutil::ns_name(p);
                let id = format!("{ns}/{name}");
                event(c, group, &d.node, Some(id), "timedOut");
            }
            return Progress::Done(Err(json!({
                "errorCode": "PodEvictionFailure",
                "errorMessage": format!(
                    "Reached max retries while trying to evict pods from nodes in node group {group}"
                ),
                "resourceIds": [d.node],
            })));
        }
        if now >= d.retry_at {
            for p in pods.iter().filter(|p| !podutil::is_terminating(p)) {
                let (ns, name) = podutil::ns_name(p);
                let id = format!("{ns}/{name}");
                let action = if evict(c, p) { "evicted" } else { "refused" };
                event(c, group, &d.node, Some(id), action);
            }
            d.retry_at = now + signed(EVICTION_RETRY);
            c.world.wake();
        }
        keep.push(d);
    }
    r.draining = keep;
    if r.draining.is_empty() && r.queue.is_empty() {
        Progress::Done(Ok(()))
    } else {
        Progress::Running
    }
}
