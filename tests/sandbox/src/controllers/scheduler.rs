//! The scheduler: binds pending pods to a feasible node (requests vs allocatable, extended
//! resources such as `nvidia.com/gpu`, pod count, nodeSelector, required node affinity,
//! NoSchedule/NoExecute taints including the cordon taint), preferring the least allocated node
//! with the fewest pods of the same owner (the default spreading). Pods that fit nowhere get
//! `PodScheduled=False`, reason `Unschedulable`, with the scheduler's message shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::util::{self, quantity_milli};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;

/// Resources a pod requests or a node has left, in milli-units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU (millicores).
    pub cpu: i128,
    /// Memory (milli-bytes, as quantities parse).
    pub memory: i128,
    /// Pods (count).
    pub pods: i128,
    /// Extended resources (e.g. `nvidia.com/gpu`) in milli-units.
    pub extended: BTreeMap<String, i128>,
}

impl Resources {
    fn add(&mut self, o: &Resources) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        self.pods += o.pods;
        for (k, v) in &o.extended {
            *self.extended.entry(k.clone()).or_default() += v;
        }
    }
}

/// What a pod requests: the sum over its containers (requests, else limits), plus one pod.
#[must_use]
pub fn pod_requests(pod: &Value) -> Resources {
    let mut r = Resources {
        pods: 1,
        ..Resources::default()
    };
    for c in pod
        .ptr("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let res = &c["resources"];
        let mut names: Vec<&String> = Vec::new();
        for part in ["requests", "limits"] {
            if let Some(m) = res[part].as_object() {
                names.extend(m.keys());
            }
        }
        names.sort();
        names.dedup();
        for name in names {
            let q = res["requests"]
                .get(name.as_str())
                .or_else(|| res["limits"].get(name.as_str()));
            let Some(v) = q.and_then(quantity_milli) else {
                continue;
            };
            match name.as_str() {
                "cpu" => r.cpu += v,
                "memory" => r.memory += v,
                "ephemeral-storage" => {}
                other => *r.extended.entry(other.to_owned()).or_default() += v,
            }
        }
    }
    r
}

/// A node's allocatable resources (pods default 110; absent cpu/memory count as unlimited).
#[must_use]
pub fn allocatable(node: &Value) -> Resources {
    let a = node
        .ptr("/status/allocatable")
        .or_else(|| node.ptr("/status/capacity"));
    let get = |k: &str| a.and_then(|a| a.get(k)).and_then(quantity_milli);
    let mut r = Resources {
        cpu: get("cpu").unwrap_or(i128::MAX / 4),
        memory: get("memory").unwrap_or(i128::MAX / 4),
        pods: get("pods").map_or(110, |p| p / 1000),
        extended: BTreeMap::new(),
    };
    if let Some(m) = a.and_then(Value::as_object) {
        for (k, v) in m {
            if k.contains('/') {
                r.extended.insert(k.clone(), quantity_milli(v).unwrap_or(0));
            }
        }
    }
    r
}

/// Whether a pod still holds its node's resources (not Succeeded or Failed).
fn holds_resources(pod: &Value) -> bool {
    !matches!(podutil::phase(pod), "Succeeded" | "Failed")
}

/// Why a node does not fit, in the scheduler's words (one reason per node, first failing).
/// The cordon taint, as the scheduler's NodeUnschedulable plugin checks it.
static CORDON_TAINT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
);

/// A node with its allocatable resources parsed once per pass.
pub struct NodeFit {
    /// The node.
    pub node: Arc<Value>,
    /// Its allocatable resources.
    pub alloc: Resources,
}

impl NodeFit {
    /// Parses `node`'s allocatable resources.
    #[must_use]
    pub fn new(node: Arc<Value>) -> Self {
        let alloc = allocatable(&node);
        Self { node, alloc }
    }
}

/// Why `node` cannot take `pod` whatever its free resources: node name, cordon, node
/// selector and affinity, taints.
fn static_misfit(pod: &Value, node: &Value) -> Option<String> {
    let spec = &pod["spec"];
    let name = node
        .ptr("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(wanted) = spec
        .get("nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && wanted != name
    {
        return Some("node(s) didn't match the requested node name".into());
    }
    if node["spec"]["unschedulable"].as_bool() == Some(true)
        && !util::tolerates(spec.get("tolerations"), &CORDON_TAINT)
    {
        return Some("node(s) were unschedulable".into());
    }
    if !util::node_matches(spec, node) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if let Some(t) = node
        .ptr("/spec/taints")
        .and_then(Value::as_array)
        .and_then(|ts| {
            ts.iter().find(|t| {
                matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
                    && !util::tolerates(spec.get("tolerations"), t)
            })
        })
    {
        let key = t["key"].as_str().unwrap_or("");
        let value = t["value"].as_str().unwrap_or("");
        return Some(format!("node(s) had untolerated taint {{{key}: {value}}}"));
    }
    None
}

/// Why a node with `alloc`, of which `used` is taken, has no room for `req`.
fn resource_misfit(req: &Resources, alloc: &Resources, used: Option<&Resources>) -> Option<String> {
    let zero = Resources::default();
    let used = used.unwrap_or(&zero);
    if used.pods + req.pods > alloc.pods {
        return Some("Too many pods".into());
    }
    if req.cpu > 0 && used.cpu + req.cpu > alloc.cpu {
        return Some("Insufficient cpu".into());
    }
    if req.memory > 0 && used.memory + req.memory > alloc.memory {
        return Some("Insufficient memory".into());
    }
    for (k, v) in &req.extended {
        if *v > 0
            && used.extended.get(k).copied().unwrap_or(0) + v
                > alloc.extended.get(k).copied().unwrap_or(0)
        {
            return Some(format!("Insufficient {k}"));
        }
    }
    None
}

/// Resources used per node by the pods bound to it.
#[must_use]
pub fn usage(pods: &[Arc<Value>]) -> HashMap<String, Resources> {
    let mut used: HashMap<String, Resources> = HashMap::new();
    for p in pods {
        if let Some(n) = podutil::node_name(p)
            && holds_resources(p)
        {
            used.entry(n.to_owned()).or_default().add(&pod_requests(p));
        }
    }
    used
}

/// For each node, why it cannot take `pod` whatever its free resources (`None`: it can).
/// Pods with the same scheduling constraints share the result within a pass.
#[must_use]
pub fn static_fit(pod: &Value, nodes: &[NodeFit]) -> Vec<Option<String>> {
    nodes.iter().map(|n| static_misfit(pod, &n.node)).collect()
}

/// Picks a node for `pod` among `nodes` (with `statics` from [`static_fit`]): feasible, least
/// allocated, fewest pods of the same owner; ties by name. `Err` carries the scheduler's
/// "0/N nodes are available" message.
pub fn choose<'a, S: std::hash::BuildHasher>(
    pod: &Value,
    nodes: &'a [NodeFit],
    statics: &[Option<String>],
    used: &HashMap<String, Resources, S>,
    owner_count: &HashMap<(String, String), u32, S>,
) -> Result<&'a Arc<Value>, String> {
    let req = pod_requests(pod);
    let owner = podutil::controller_ref(pod)
        .and_then(|r| r["uid"].as_str())
        .unwrap_or("")
        .to_owned();
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    let mut best: Option<(i128, &Arc<Value>)> = None;
    for (fit, fixed) in nodes.iter().zip(statics) {
        if let Some(why) = fixed {
            *reasons.entry(why.clone()).or_default() += 1;
            continue;
        }
        let node = &fit.node;
        let alloc = &fit.alloc;
        let name = node["metadata"]["name"].as_str().unwrap_or("");
        let u = used.get(name);
        if let Some(why) = resource_misfit(&req, alloc, u) {
            *reasons.entry(why).or_default() += 1;
            continue;
        }
        let zero = Resources::default();
        let u = u.unwrap_or(&zero);
        // Free fraction of cpu and memory in per-mille, minus a spreading penalty per pod of the
        // same owner already there.
        let free = |used: i128, total: i128| {
            if total <= 0 {
                0
            } else {
                (total - used) * 1000 / total
            }
        };
        let same = if owner.is_empty() {
            0
        } else {
            owner_count
                .get(&(owner.clone(), name.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let score = free(u.cpu + req.cpu, alloc.cpu) + free(u.memory + req.memory, alloc.memory)
            - i128::from(same) * 2000;
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, node));
        }
    }
    best.map(|(_, n)| n).ok_or_else(|| {
        let parts: Vec<String> = reasons.iter().map(|(why, n)| format!("{n} {why}")).collect();
        let list = if parts.is_empty() { String::new() } else { format!(" {}", parts.join(", ")) };
        format!(
            "0/{} nodes are available:{list}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
            nodes.len(),
            nodes.len(),
            nodes.len()
        )
    })
}

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let pods_res = well_known::pods();
    let all: Vec<Arc<Value>> = cluster.store.list(pods_res, None).cloned().collect();
    let mut pending: Vec<&Arc<Value>> = all
        .iter()
        .filter(|p| {
            podutil::node_name(p).is_none()
                && !podutil::is_terminating(p)
                && podutil::phase(p) == "Pending"
                && p.ptr("/spec/schedulerName")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "default-scheduler")
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    // Higher priority first, then oldest, as the scheduling queue orders them.
    pending.sort_by_key(|p| {
        (
            -p.ptr("/spec/priority").and_then(Value::as_i64).unwrap_or(0),
            p.ptr("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            p.ptr("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    });
    let nodes: Vec<NodeFit> = cluster
        .store
        .list(well_known::nodes(), None)
        .map(|n| NodeFit::new(n.clone()))
        .collect();
    let mut used = usage(&all);
    let mut owner_count: HashMap<(String, String), u32> = HashMap::new();
    for p in &all {
        if let (Some(n), Some(uid)) = (
            podutil::node_name(p),
            podutil::controller_ref(p).and_then(|r| r["uid"].as_str()),
        ) && !podutil::is_terminating(p)
        {
            *owner_count
                .entry((uid.to_owned(), n.to_owned()))
                .or_default() += 1;
        }
    }
    let mut statics_cache: HashMap<String, Arc<Vec<Option<String>>>> = HashMap::new();
    for pod in pending {
        let (ns, name) = podutil::ns_name(pod);
        let spec = &pod["spec"];
        let signature = format!(
            "{}|{}|{}|{}",
            spec["nodeName"], spec["nodeSelector"], spec["affinity"], spec["tolerations"]
        );
        let statics = statics_cache
            .entry(signature)
            .or_insert_with(|| Arc::new(static_fit(pod, &nodes)))
            .clone();
        match choose(pod, &nodes, &statics, &used, &owner_count) {
            Ok(node) => {
                let node_name = node
                    .ptr("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                tracing::debug!(namespace = ns, pod = name, node = %node_name, "scheduled");
                used.entry(node_name.clone())
                    .or_default()
                    .add(&pod_requests(pod));
                if let Some(uid) = podutil::controller_ref(pod).and_then(|r| r["uid"].as_str()) {
                    *owner_count
                        .entry((uid.to_owned(), node_name.clone()))
                        .or_default() += 1;
                }
                let now = ctx.now_str.clone();
                util::mutate(&mut cluster.store, pods_res, ns, name, |p| {
                    p["spec"]["nodeName"] = json!(node_name);
                    util::set_condition(p, "PodScheduled", "True", "", "", &now, false);
                });
                let message = format!("Successfully assigned {ns}/{name} to {node_name}");
                record(cluster, pod, "Normal", "Scheduled", &message, &now);
            }
            Err(message) => unschedulable(cluster, pod, &message, &ctx.now_str),
        }
    }
}

/// Marks `pod` unschedulable. Only a changed verdict is reported: the real scheduler backs off
/// between attempts, and an unchanged one must not make the idle cluster write.
fn unschedulable(cluster: &mut Cluster, pod: &Value, message: &str, now: &str) {
    let (ns, name) = podutil::ns_name(pod);
    let changed = util::mutate(&mut cluster.store, well_known::pods(), ns, name, |p| {
        p["status"]["phase"] = json!("Pending");
        util::set_condition(
            p,
            "PodScheduled",
            "False",
            "Unschedulable",
            message,
            now,
            false,
        );
    });
    if changed.is_some() {
        record(cluster, pod, "Warning", "FailedScheduling", message, now);
    }
}

fn record(cluster: &mut Cluster, pod: &Value, kind: &str, reason: &str, message: &str, now: &str) {
    let event = crate::events::Event {
        object: pod,
        resource: well_known::pods(),
        field_path: None,
        kind,
        reason,
        message,
        source: crate::events::Source::component("default-scheduler"),
    };
    cluster
        .world
        .event_log
        .record(&mut cluster.store, &event, now, false);
}
