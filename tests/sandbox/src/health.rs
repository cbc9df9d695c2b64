//! Unhealthy states a scenario can start pods and nodes in, for health checkers to find:
//! containers waiting in `CrashLoopBackOff`, `ImagePullBackOff` and the like
//! (`workloads[].waiting`), and node pressure conditions with their taints (`nodeConditions`).
//! Applied by [`apply`] once the scenario's workloads exist; documented in
//! `tests/scenarios/README.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::controllers::util;
use crate::resources::well_known;
use crate::scenario::{Scenario, WorkloadKind, WorkloadSpec};
use crate::world::{PodBehaviour, PodRule};

/// Waiting reasons a workload's containers can be stuck in.
pub const WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "ContainerCreating",
];

/// A node condition to set (`nodeConditions`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConditionSpec {
    /// One node by name.
    #[serde(default)]
    pub node: Option<String>,
    /// Every node of a node group.
    #[serde(default)]
    pub node_group: Option<String>,
    /// `MemoryPressure`, `DiskPressure`, `PIDPressure` or `NetworkUnavailable`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status (default `"True"`).
    #[serde(default)]
    pub status: Option<String>,
    /// Reason (default the kubelet's, e.g. `KubeletHasInsufficientMemory`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Message (default the kubelet's).
    #[serde(default)]
    pub message: Option<String>,
}

/// Applies `workloads[].waiting` and `nodeConditions`.
pub fn apply(cluster: &mut Cluster, scenario: &Scenario) -> anyhow::Result<()> {
    for w in &scenario.workloads {
        if let Some(reason) = &w.waiting {
            waiting(cluster, w, reason)?;
        }
    }
    for c in &scenario.node_conditions {
        node_condition(cluster, c)?;
    }
    Ok(())
}

fn labels(w: &WorkloadSpec) -> BTreeMap<String, String> {
    if w.labels.is_empty() {
        BTreeMap::from([("app".to_owned(), w.name.clone())])
    } else {
        w.labels.clone()
    }
}

/// The workload's pods stay not Ready (and, for image and config errors, Pending); the loaded
/// ones show the waiting state.
fn waiting(cluster: &mut Cluster, w: &WorkloadSpec, reason: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        WAITING.contains(&reason),
        "workload {}: waiting {reason:?}: expected one of {}",
        w.name,
        WAITING.join(", ")
    );
    anyhow::ensure!(
        w.kind != WorkloadKind::StaticPod,
        "workload {}: static pods cannot wait",
        w.name
    );
    let ns = w.namespace.clone().unwrap_or_else(|| "default".into());
    let labels = labels(w);
    let crash = reason == "CrashLoopBackOff";
    // Replacement pods: never Ready; those that cannot start never leave Pending.
    let at = cluster
        .world
        .pod_rules
        .iter()
        .position(|r| r.namespace == ns && r.match_labels == labels);
    let at = at.unwrap_or_else(|| {
        cluster.world.pod_rules.push(PodRule {
            namespace: ns.clone(),
            match_labels: labels.clone(),
            behaviour: PodBehaviour::default(),
        });
        cluster.world.pod_rules.len() - 1
    });
    let rule = &mut cluster.world.pod_rules[at];
    rule.behaviour.never_ready = true;
    if !crash {
        rule.behaviour.start_delay = Some(Duration::from_hours(100 * 365 * 24));
    }
    let restarts = rule.behaviour.restarts.clone();
    let names: Vec<String> = cluster
        .store
        .list(well_known::pods(), Some(&ns))
        .filter(|p| {
            let have = crate::labels::labels(p);
            labels
                .iter()
                .all(|(k, v)| have.get(k).and_then(Value::as_str) == Some(v))
        })
        .filter_map(|p| Some(p.pointer("/metadata/name")?.as_str()?.to_owned()))
        .collect();
    for name in names {
        util::mutate(&mut cluster.store, well_known::pods(), &ns, &name, |p| {
            set_waiting(p, reason, restarts.as_ref());
        });
    }
    Ok(())
}

/// The kubelet's status for a pod whose first container waits with `reason`.
fn set_waiting(p: &mut Value, reason: &str, restarts: Option<&crate::world::Restarts>) {
    let Some(c) = p.pointer("/status/containerStatuses/0").cloned() else {
        return; // Never scheduled: nothing to wait for.
    };
    let pod = p["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
    let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let name = c["name"].as_str().unwrap_or("").to_owned();
    let image = c["image"].as_str().unwrap_or("").to_owned();
    let started = c
        .pointer("/state/running/startedAt")
        .cloned()
        .unwrap_or(json!(null));
    let message = match reason {
        "CrashLoopBackOff" => {
            format!("back-off 5m0s restarting failed container={name} pod={pod}_{ns}({uid})")
        }
        "ImagePullBackOff" => format!("Back-off pulling image \"{image}\""),
        "ErrImagePull" => format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
        ),
        "CreateContainerConfigError" => "secret \"app-secrets\" not found".to_owned(),
        _ => String::new(),
    };
    let mut waiting = json!({"reason": reason});
    if !message.is_empty() {
        waiting["message"] = json!(message);
    }
    let mut status = json!({"name": name, "image": image, "imageID": "", "ready": false,
        "started": false, "restartCount": 0, "state": {"waiting": waiting}, "lastState": {}});
    if reason == "CrashLoopBackOff" {
        let (count, term_reason, code) = restarts.map_or((5, "Error".to_owned(), 1), |r| {
            (r.count.max(1), r.reason.clone(), r.exit_code)
        });
        status["imageID"] = c["imageID"].clone();
        status["containerID"] = c["containerID"].clone();
        status["restartCount"] = json!(count);
        status["lastState"] = json!({"terminated": {"exitCode": code, "reason": term_reason,
            "startedAt": started, "finishedAt": started, "containerID": c["containerID"]}});
    } else {
        p["status"]["phase"] = json!("Pending");
    }
    p["status"]["containerStatuses"] = json!([status]);
    let now = p["status"]["startTime"].as_str().unwrap_or("").to_owned();
    let message = format!("containers with unready status: [{name}]");
    for t in ["Ready", "ContainersReady"] {
        util::set_condition(p, t, "False", "ContainersNotReady", &message, &now, false);
    }
}

/// The kubelet's wording for a pressure condition: (reason, message, taint key).
fn kubelet_words(
    type_: &str,
    on: bool,
) -> anyhow::Result<(&'static str, &'static str, &'static str)> {
    Ok(match (type_, on) {
        ("MemoryPressure", true) => (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
            "node.kubernetes.io/memory-pressure",
        ),
        ("MemoryPressure", false) => (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            "",
        ),
        ("DiskPressure", true) => (
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
            "node.kubernetes.io/disk-pressure",
        ),
        ("DiskPressure", false) => (
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            "",
        ),
        ("PIDPressure", true) => (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
            "node.kubernetes.io/pid-pressure",
        ),
        ("PIDPressure", false) => (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            "",
        ),
        ("NetworkUnavailable", true) => (
            "NoRouteCreated",
            "Node created without a route",
            "node.kubernetes.io/network-unavailable",
        ),
        ("NetworkUnavailable", false) => ("RouteCreated", "RouteController created a route", ""),
        (other, _) => anyhow::bail!(
            "nodeConditions: type {other:?}: expected MemoryPressure, DiskPressure, PIDPressure or NetworkUnavailable"
        ),
    })
}

/// Sets a condition on the selected nodes, with the taint the node controller adds for it.
fn node_condition(cluster: &mut Cluster, c: &NodeConditionSpec) -> anyhow::Result<()> {
    let status = c.status.clone().unwrap_or_else(|| "True".into());
    anyhow::ensure!(
        matches!(status.as_str(), "True" | "False" | "Unknown"),
        "nodeConditions: status {status:?}: expected True, False or Unknown"
    );
    let (reason, message, taint) = kubelet_words(&c.type_, status == "True")?;
    let nodes: Vec<String> = cluster
        .store
        .list(well_known::nodes(), None)
        .filter(|n| {
            c.node
                .as_deref()
                .is_some_and(|x| n["metadata"]["name"].as_str() == Some(x))
                || c.node_group.as_deref().is_some_and(|g| {
                    n.pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
                        .and_then(Value::as_str)
                        == Some(g)
                })
        })
        .filter_map(|n| Some(n["metadata"]["name"].as_str()?.to_owned()))
        .collect();
    anyhow::ensure!(
        !nodes.is_empty(),
        "nodeConditions: {:?}/{:?} selects no node (give `node` or `nodeGroup`)",
        c.node,
        c.node_group
    );
    let now = cluster.now();
    let (reason, message) = (
        c.reason.as_deref().unwrap_or(reason),
        c.message.as_deref().unwrap_or(message),
    );
    for name in nodes {
        util::mutate(&mut cluster.store, well_known::nodes(), "", &name, |n| {
            util::set_condition(n, &c.type_, &status, reason, message, &now, false);
            if let Some(cond) = n["status"]["conditions"]
                .as_array_mut()
                .and_then(|cs| cs.iter_mut().find(|x| x["type"] == c.type_.as_str()))
            {
                cond["lastHeartbeatTime"] = json!(now);
            }
            if !taint.is_empty() {
                let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                if !taints.iter().any(|t| t["key"] == taint) {
                    taints.push(json!({"key": taint, "effect": "NoSchedule", "timeAdded": now}));
                }
                n["spec"]["taints"] = Value::Array(taints);
            }
        });
    }
    Ok(())
}
