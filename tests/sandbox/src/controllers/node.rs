//! Node lifecycle: applies the world's node health schedule, keeps each node's Ready condition
//! as its (simulated) kubelet reports it, and derives the taints the real controllers add:
//! `node.kubernetes.io/unschedulable:NoSchedule` exactly while `spec.unschedulable`, and
//! `not-ready` / `unreachable` with NoSchedule and NoExecute while the node is down. Nodes created
//! through the API without a status get a default one (Ready, an InternalIP, capacity).

use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::util;
use crate::cluster::Cluster;
use crate::resources::well_known;
use crate::world::NodeDownReason;

const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    apply_schedule(cluster, ctx);
    reconcile_nodes(cluster, ctx);
    taint_eviction(cluster, ctx);
}

fn reconcile_nodes(cluster: &mut Cluster, ctx: &mut Ctx) {
    let nodes: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::nodes(), None)
        .cloned()
        .collect();
    for node in nodes {
        let name = node
            .ptr("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let down = cluster.world.nodes_down.get(&name).copied();
        let needs_ip = node
            .ptr("/status/addresses")
            .and_then(Value::as_array)
            .is_none_or(|a| !a.iter().any(|x| x["type"] == "InternalIP"));
        if !needs_ip && consistent(&node, down) {
            continue;
        }
        let ip = if needs_ip {
            Some(cluster.world.alloc_node_ip())
        } else {
            None
        };
        let now = ctx.now_str.clone();
        let was_ready = node
            .ptr("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        util::mutate(&mut cluster.store, well_known::nodes(), "", &name, |n| {
            reconcile(n, down, ip.as_deref(), &now);
        });
        // Readiness transitions, reported as the node lifecycle controller and kubelet do.
        let (kind, reason, source) = match (was_ready, down.is_some()) {
            (true, true) => (
                "Normal",
                "NodeNotReady",
                crate::events::Source::component("node-controller"),
            ),
            (false, false) => ("Normal", "NodeReady", crate::events::Source::kubelet(&name)),
            _ => continue,
        };
        let message = format!("Node {name} status is now: {reason}");
        let event = crate::events::Event {
            object: &node,
            resource: well_known::nodes(),
            field_path: None,
            kind,
            reason,
            message: &message,
            source,
        };
        crate::events::record(cluster, &event, &now, false);
    }
}

fn apply_schedule(cluster: &mut Cluster, ctx: &mut Ctx) {
    let world = &mut cluster.world;
    if world.node_events.is_empty() {
        return;
    }
    world.node_events.sort_by_key(|e| e.at);
    let due: Vec<_> = world
        .node_events
        .iter()
        .filter(|e| e.at <= ctx.now)
        .cloned()
        .collect();
    world.node_events.retain(|e| e.at > ctx.now);
    for e in due {
        tracing::info!(node = %e.node, ready = e.ready, "node health changes on schedule");
        if e.ready {
            world.nodes_down.remove(&e.node);
        } else {
            world.nodes_down.insert(e.node.clone(), e.reason);
        }
    }
    if let Some(next) = world.node_events.first() {
        ctx.wake_at(next.at);
    }
}

/// A cheap check that [`reconcile`] would change nothing (it clones the node).
fn consistent(n: &Value, down: Option<NodeDownReason>) -> bool {
    let st = &n["status"];
    if st.get("capacity").is_none()
        || st.get("allocatable").is_none()
        || st.get("nodeInfo").is_none()
        || st.get("conditions").is_none()
    {
        return false;
    }
    let want_ready = match down {
        None => "True",
        Some(NodeDownReason::NotReady) => "False",
        Some(NodeDownReason::Unreachable) => "Unknown",
    };
    let ready = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    if ready.is_none_or(|c| c["status"] != want_ready || c.get("lastHeartbeatTime").is_none()) {
        return false;
    }
    let managed = |key: &str| matches!(key, UNSCHEDULABLE | NOT_READY | UNREACHABLE);
    let have: Vec<(&str, &str)> = n["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["key"].as_str()?, t["effect"].as_str().unwrap_or(""))))
        .filter(|(k, _)| managed(k))
        .collect();
    let unschedulable = n["spec"]["unschedulable"].as_bool() == Some(true);
    let want = usize::from(unschedulable) + if down.is_some() { 2 } else { 0 };
    have.len() == want
        && (!unschedulable || have.contains(&(UNSCHEDULABLE, "NoSchedule")))
        && match down {
            None => true,
            Some(NodeDownReason::NotReady) => {
                have.contains(&(NOT_READY, "NoSchedule"))
                    && have.contains(&(NOT_READY, "NoExecute"))
            }
            Some(NodeDownReason::Unreachable) => {
                have.contains(&(UNREACHABLE, "NoSchedule"))
                    && have.contains(&(UNREACHABLE, "NoExecute"))
            }
        }
        && !(n["spec"]
            .get("taints")
            .is_some_and(|t| t.as_array().is_some_and(Vec::is_empty)))
}

/// The node as the kubelet and the node controllers would leave it.
fn reconcile(n: &mut Value, down: Option<NodeDownReason>, ip: Option<&str>, now: &str) {
    let name = n
        .ptr("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !n["status"].is_object() {
        n["status"] = json!({});
    }
    let st = &mut n["status"];
    if st.get("capacity").is_none() {
        st["capacity"] =
            json!({"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "20Gi"});
    }
    if st.get("allocatable").is_none() {
        st["allocatable"] = st["capacity"].clone();
    }
    if let Some(ip) = ip {
        st["addresses"] =
            json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]);
    }
    if st.get("nodeInfo").is_none() {
        st["nodeInfo"] = json!({"kubeletVersion": "v1.33.0-eks-sandbox", "operatingSystem": "linux", "architecture": "amd64",
            "containerRuntimeVersion": "containerd://1.7.27", "osImage": "Amazon Linux 2023", "kernelVersion": "6.1.0"});
    }
    if st.get("conditions").is_none() {
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            util::set_condition(
                n,
                t,
                "False",
                &format!(
                    "KubeletHas{}",
                    if t == "PIDPressure" {
                        "SufficientPID".to_owned()
                    } else {
                        format!("No{t}")
                    }
                ),
                "",
                now,
                false,
            );
        }
    }
    let (status, reason, message) = match down {
        None => ("True", "KubeletReady", "kubelet is posting ready status"),
        Some(NodeDownReason::NotReady) => (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false",
        ),
        Some(NodeDownReason::Unreachable) => (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        ),
    };
    util::set_condition(n, "Ready", status, reason, message, now, false);
    if let Some(c) = n
        .ptr_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == "Ready"))
    {
        // Heartbeats would rewrite every node constantly; one timestamp per transition is enough.
        if c.get("lastHeartbeatTime").is_none() {
            c["lastHeartbeatTime"] = c["lastTransitionTime"].clone();
        }
    }
    let unschedulable = n["spec"]["unschedulable"].as_bool() == Some(true);
    let want: Vec<(&str, &str)> = [
        unschedulable.then_some((UNSCHEDULABLE, "NoSchedule")),
        (down == Some(NodeDownReason::NotReady)).then_some((NOT_READY, "NoSchedule")),
        (down == Some(NodeDownReason::NotReady)).then_some((NOT_READY, "NoExecute")),
        (down == Some(NodeDownReason::Unreachable)).then_some((UNREACHABLE, "NoSchedule")),
        (down == Some(NodeDownReason::Unreachable)).then_some((UNREACHABLE, "NoExecute")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let managed = [UNSCHEDULABLE, NOT_READY, UNREACHABLE];
    let mut taints: Vec<Value> = n
        .ptr("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    taints.retain(|t| {
        let key = t["key"].as_str().unwrap_or("");
        !managed.contains(&key) || want.iter().any(|(k, e)| *k == key && t["effect"] == *e)
    });
    for (k, e) in want {
        if !taints.iter().any(|t| t["key"] == k && t["effect"] == e) {
            taints.push(json!({"key": k, "effect": e, "timeAdded": now}));
        }
    }
    if taints.is_empty() {
        if let Some(spec) = n.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("taints");
        }
    } else {
        n["spec"]["taints"] = Value::Array(taints);
    }
}

/// The taint manager: pods on a node with a NoExecute taint they do not tolerate are deleted at
/// once; pods tolerating it for `tolerationSeconds` (the default 300 s for not-ready and
/// unreachable) are deleted when that time has passed since the taint's `timeAdded`.
fn taint_eviction(cluster: &mut Cluster, ctx: &mut Ctx) {
    let tainted: std::collections::HashMap<String, Vec<Value>> = cluster
        .store
        .list(well_known::nodes(), None)
        .filter_map(|n| {
            let ts: Vec<Value> = n["spec"]["taints"]
                .as_array()?
                .iter()
                .filter(|t| t["effect"] == "NoExecute")
                .cloned()
                .collect();
            (!ts.is_empty()).then(|| (crate::podutil::ns_name(n).1.to_owned(), ts))
        })
        .collect();
    if tainted.is_empty() {
        return;
    }
    let mut doomed = Vec::new();
    for p in &ctx.pods_in_scope(&cluster.store) {
        let Some(taints) = crate::podutil::node_name(p).and_then(|n| tainted.get(n)) else {
            continue;
        };
        if crate::podutil::is_terminating(p) {
            continue;
        }
        // The earliest time any taint's toleration runs out; now for an untolerated taint.
        let mut evict_at = None;
        for t in taints {
            let tolerations = p["spec"]["tolerations"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let matching: Vec<&Value> = tolerations
                .iter()
                .filter(|tol| util::tolerates(Some(&Value::Array(vec![(*tol).clone()])), t))
                .collect();
            let at = if matching.is_empty() {
                Some(ctx.now)
            } else if matching
                .iter()
                .any(|tol| tol.get("tolerationSeconds").is_none_or(Value::is_null))
            {
                None
            } else {
                let secs = matching
                    .iter()
                    .filter_map(|tol| tol["tolerationSeconds"].as_i64())
                    .max()
                    .unwrap_or(0);
                let added = t["timeAdded"]
                    .as_str()
                    .and_then(crate::clock::parse)
                    .unwrap_or(ctx.now);
                Some(util::plus(
                    added,
                    std::time::Duration::from_secs(secs.max(0) as u64),
                ))
            };
            if let Some(at) = at {
                util::earliest(&mut evict_at, at);
            }
        }
        match evict_at {
            Some(at) if at <= ctx.now => doomed.push(p.clone()),
            Some(at) => ctx.wake_ns(at, crate::podutil::ns_name(p).0),
            None => {}
        }
    }
    for p in doomed {
        let (ns, name) = crate::podutil::ns_name(&p);
        tracing::info!(namespace = ns, pod = name, "taint manager deleting pod");
        super::pods::delete(&mut cluster.store, well_known::pods(), ns, name, ctx.now);
    }
}
