//! The kubelets of all nodes: start scheduled pods after the start-up delay (Running, pod IP,
//! container statuses), make them Ready after the readiness delay, restart containers on the
//! scenario's schedule (`lastState.terminated`, e.g. OOMKilled), mark pods on NotReady nodes not
//! Ready, and finish terminating pods once the grace period has passed (unless the world says
//! the pod hangs). Also keeps the mirror pods of static pods in place.

use std::collections::HashSet;
use std::sync::Arc;

use super::util::Ptr as _;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Ctx;
use super::util::{self, plus, ts};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;
use crate::world::{PodBehaviour, World};

/// Names of nodes whose Ready condition is not True.
#[must_use]
pub fn down_nodes(cluster: &Cluster) -> HashSet<String> {
    cluster
        .store
        .list(well_known::nodes(), None)
        .filter(|n| !podutil::condition_true(n, "Ready"))
        .map(|n| podutil::ns_name(n).1.to_owned())
        .collect()
}

/// Status of a pod whose containers run since `started` on `host_ip`: Running, not yet Ready.
pub fn running_status(
    pod: &mut Value,
    started: &str,
    host_ip: &str,
    pod_ip: &str,
    restarts: Option<&crate::world::Restarts>,
    ready: bool,
) {
    let scheduled = pod
        .ptr("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(started)
        .to_owned();
    let r = if ready { "True" } else { "False" };
    let containers: Vec<Value> = pod
        .ptr("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let name = c["name"].as_str().unwrap_or("main");
            let image = c["image"].as_str().unwrap_or("");
            let mut s = json!({
                "name": name,
                "image": image,
                "imageID": format!("{image}@sha256:{:016x}", util::fnv(image.as_bytes())),
                "containerID": format!("containerd://{:016x}{:016x}", util::fnv(pod_ip.as_bytes()), util::fnv(name.as_bytes())),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
                "lastState": {},
            });
            if let (0, Some(r)) = (i, restarts)
                && r.count > 0
            {
                s["restartCount"] = json!(r.count);
                s["lastState"] = json!({"terminated": {
                    "exitCode": r.exit_code, "reason": r.reason,
                    "startedAt": scheduled, "finishedAt": started,
                    "containerID": format!("containerd://{:016x}", util::fnv(format!("{pod_ip}{}", r.count).as_bytes())),
                }});
            }
            s
        })
        .collect();
    let qos = qos_class(&pod["spec"]);
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    status["phase"] = json!("Running");
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["podIP"] = json!(pod_ip);
    status["podIPs"] = json!([{"ip": pod_ip}]);
    status["startTime"] = json!(scheduled);
    status["qosClass"] = json!(qos);
    pod["status"]["containerStatuses"] = Value::Array(containers);
    for (t, s) in [
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("ContainersReady", r),
        ("Ready", r),
        ("PodScheduled", "True"),
    ] {
        util::set_condition(pod, t, s, "", "", started, false);
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"].as_array().map_or(&[][..], Vec::as_slice);
    let any = containers
        .iter()
        .any(|c| c["resources"]["requests"].is_object() || c["resources"]["limits"].is_object());
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let l = &c["resources"]["limits"];
        let r = &c["resources"]["requests"];
        ["cpu", "memory"]
            .iter()
            .all(|k| l.get(*k).is_some() && (r.get(*k).is_none() || r.get(*k) == l.get(*k)))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Sets the pod's and its containers' readiness.
fn set_ready(pod: &mut Value, ready: bool, now: &str) {
    let s = if ready { "True" } else { "False" };
    for c in pod
        .ptr_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        c["ready"] = json!(ready);
    }
    util::set_condition(pod, "ContainersReady", s, "", "", now, false);
    util::set_condition(pod, "Ready", s, "", "", now, false);
}

fn host_ip(cluster: &Cluster, node: &str) -> String {
    cluster
        .store
        .get(well_known::nodes(), "", node)
        .and_then(|n| {
            n.ptr("/status/addresses")?
                .as_array()?
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str().map(str::to_owned))
        })
        .unwrap_or_default()
}

/// Whether any rule restarts containers periodically (only then do Ready pods need a look).
fn periodic(world: &World) -> bool {
    world.pod_rules.iter().any(|r| {
        r.behaviour
            .restarts
            .as_ref()
            .is_some_and(|x| x.every.is_some())
    })
}

/// One pass over all bound pods.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let down = down_nodes(cluster);
    let periodic = periodic(&cluster.world);
    let pods: Vec<Arc<Value>> = ctx
        .pods_in_scope(&cluster.store)
        .into_iter()
        .filter(|p| podutil::node_name(p).is_some())
        .filter(|p| {
            // Settled pods (Running, Ready, on a Ready node, not terminating) need nothing.
            let settled = podutil::phase(p) == "Running"
                && podutil::is_ready(p)
                && !podutil::is_terminating(p)
                && !down.contains(podutil::node_name(p).unwrap_or(""));
            !settled || periodic
        })
        .collect();
    for pod in pods {
        step(cluster, ctx, &pod, &down);
    }
}

#[allow(clippy::too_many_lines)]
fn step(cluster: &mut Cluster, ctx: &mut Ctx, pod: &Value, down: &HashSet<String>) {
    let pods_res = well_known::pods();
    let (ns, name) = podutil::ns_name(pod);
    let node = podutil::node_name(pod).unwrap_or("");
    let now = ctx.now;
    let now_str = ctx.now_str.clone();
    let phase = podutil::phase(pod);
    if podutil::is_terminating(pod) {
        if podutil::is_ready(pod) {
            util::mutate(&mut cluster.store, pods_res, ns, name, |p| {
                set_ready(p, false, &now_str);
            });
        }
        let b = cluster.world.behaviour(pod);
        let finalizers = pod
            .ptr("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // A kubelet that is down cannot confirm the containers stopped: the pod stays
        // Terminating until the node returns or someone force-deletes it, as in a real cluster.
        if b.hang_on_termination || finalizers || down.contains(node) {
            return;
        }
        // Reported once, when the kubelet starts stopping the containers.
        crate::events::containers(
            cluster,
            pod,
            node,
            &[("Normal", "Killing", |c, _| {
                format!("Stopping container {c}")
            })],
            &now_str,
        );
        let deadline = ts(pod, "/metadata/deletionTimestamp").unwrap_or(now);
        if now >= deadline {
            tracing::debug!(namespace = ns, pod = name, node, "terminated");
            cluster.store.remove(pods_res, ns, name);
        } else {
            ctx.wake_ns(deadline, ns);
        }
        return;
    }
    if matches!(phase, "Succeeded" | "Failed") {
        return;
    }
    let node_down = down.contains(node);
    if phase == "Pending" {
        if node_down {
            return;
        }
        let b = cluster.world.behaviour(pod);
        let delay = b.start_delay.unwrap_or(cluster.world.kubelet.start_delay);
        let scheduled = pod
            .ptr("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "True")
            })
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(crate::clock::parse)
            .unwrap_or(now);
        let start = plus(scheduled, delay);
        if now < start {
            ctx.wake_ns(start, ns);
            return;
        }
        let host = host_ip(cluster, node);
        let ip = if pod.ptr("/spec/hostNetwork").and_then(Value::as_bool) == Some(true) {
            host.clone()
        } else {
            cluster.world.alloc_pod_ip()
        };
        tracing::debug!(namespace = ns, pod = name, node, ip = %ip, "started");
        let restarts = b.restarts.clone();
        // The containers started when the delay ran out, even if the clock jumped past it: a
        // jump means that time passed, and the kubelet did its work meanwhile.
        let started = crate::clock::rfc3339(start);
        util::mutate(&mut cluster.store, pods_res, ns, name, |p| {
            running_status(p, &started, &host, &ip, restarts.as_ref(), false);
        });
        crate::events::containers(
            cluster,
            pod,
            node,
            &[
                ("Normal", "Pulling", |_, i| format!("Pulling image \"{i}\"")),
                ("Normal", "Pulled", |_, i| {
                    format!("Successfully pulled image \"{i}\" in 1s (1s including waiting)")
                }),
                ("Normal", "Created", |c, _| {
                    format!("Created container: {c}")
                }),
                ("Normal", "Started", |c, _| format!("Started container {c}")),
            ],
            &started,
        );
        // Readiness is due after the delay; the next pass sees a Running pod.
        ctx.wake_ns(
            plus(
                start,
                b.ready_delay.unwrap_or(cluster.world.kubelet.ready_delay),
            ),
            ns,
        );
        return;
    }
    // Running.
    if node_down {
        if podutil::is_ready(pod) {
            util::mutate(&mut cluster.store, pods_res, ns, name, |p| {
                set_ready(p, false, &now_str);
            });
        }
        return;
    }
    let b = cluster.world.behaviour(pod);
    if let Some(every) = b.restarts.as_ref().and_then(|r| r.every) {
        let started = ts(pod, "/status/containerStatuses/0/state/running/startedAt").unwrap_or(now);
        let next = plus(started, every);
        if now >= next {
            restart(cluster, ns, name, &b, &now_str);
            ctx.wake_ns(plus(now, every), ns);
            return;
        }
        ctx.wake_ns(next, ns);
    }
    if !podutil::is_ready(pod) && !b.never_ready {
        let started = ts(pod, "/status/containerStatuses/0/state/running/startedAt").unwrap_or(now);
        let ready_at: Timestamp = plus(
            started,
            b.ready_delay.unwrap_or(cluster.world.kubelet.ready_delay),
        );
        if now >= ready_at {
            util::mutate(&mut cluster.store, pods_res, ns, name, |p| {
                set_ready(p, true, &now_str);
            });
        } else {
            ctx.wake_ns(ready_at, ns);
        }
    }
}

/// A container restart: the previous run becomes `lastState.terminated`.
fn restart(cluster: &mut Cluster, ns: &str, name: &str, b: &PodBehaviour, now: &str) {
    let Some(r) = b.restarts.clone() else { return };
    util::mutate(&mut cluster.store, well_known::pods(), ns, name, |p| {
        let Some(c) = p.ptr_mut("/status/containerStatuses/0") else {
            return;
        };
        let started = c
            .ptr("/state/running/startedAt")
            .cloned()
            .unwrap_or(json!(now));
        let count = c["restartCount"].as_i64().unwrap_or(0) + 1;
        c["restartCount"] = json!(count);
        c["lastState"] = json!({"terminated": {"exitCode": r.exit_code, "reason": r.reason, "startedAt": started, "finishedAt": now}});
        c["state"] = json!({"running": {"startedAt": now}});
        set_ready(p, false, now);
    });
}

/// Recreates missing mirror pods of static pods on nodes that exist.
pub fn run_static_pods(cluster: &mut Cluster, ctx: &mut Ctx) {
    if cluster.world.static_pods.is_empty() {
        return;
    }
    let mut missing = Vec::new();
    for sp in &cluster.world.static_pods {
        let ns = sp
            .template
            .ptr("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("kube-system");
        let base = sp
            .template
            .ptr("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("static");
        for node in &sp.nodes {
            let name = format!("{base}-{node}");
            if cluster.store.get(well_known::pods(), ns, &name).is_some() {
                continue;
            }
            if let Some(n) = cluster.store.get(well_known::nodes(), "", node) {
                missing.push(mirror_pod(&sp.template, &n, &ctx.now_str));
            }
        }
    }
    for pod in missing {
        // AlreadyExists cannot happen: we checked under the same lock.
        let _ = cluster.store.create(well_known::pods(), pod, &ctx.now_str);
    }
}

/// The mirror pod of a static pod on `node`, unstarted, created at `created`.
#[must_use]
pub fn mirror_pod(template: &Value, node: &Value, created: &str) -> Value {
    let mut p = template.clone();
    let node_name = node
        .ptr("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let base = p
        .ptr("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("static")
        .to_owned();
    p["metadata"]["name"] = json!(format!("{base}-{node_name}"));
    let hash = format!(
        "{:032x}",
        u128::from(util::fnv(base.as_bytes())) << 64 | u128::from(util::fnv(node_name.as_bytes()))
    );
    p["metadata"]["annotations"]["kubernetes.io/config.hash"] = json!(hash);
    p["metadata"]["annotations"]["kubernetes.io/config.mirror"] = json!(hash);
    p["metadata"]["annotations"]["kubernetes.io/config.source"] = json!("file");
    p["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Node", "name": node_name,
        "uid": node.ptr("/metadata/uid").cloned().unwrap_or(Value::Null), "controller": true,
    }]);
    p["metadata"]["creationTimestamp"] = json!(created);
    p["spec"]["nodeName"] = json!(node_name);
    p["status"] = json!({"phase": "Pending"});
    util::set_condition(&mut p, "PodScheduled", "True", "", "", created, false);
    p
}
