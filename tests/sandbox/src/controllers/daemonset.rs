//! The DaemonSet controller: one pod per eligible node (nodeSelector, required affinity and
//! taints, with the tolerations the controller adds itself: cordon, not-ready, unreachable and
//! pressure taints), bound through the scheduler by `matchFields metadata.name`, as upstream
//! does; pods on nodes no longer eligible are deleted; RollingUpdate by maxUnavailable; status
//! with desiredNumberScheduled, numberReady, numberAvailable, updatedNumberScheduled, ...

use std::collections::HashMap;
use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::pods;
use super::statefulset::{ensure_revision, revision_name};
use super::util::{self, int_or_percent};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;

/// Tolerations the DaemonSet controller adds to every pod it creates.
#[must_use]
pub fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The pod spec of a daemon pod for `node`: the template's, plus the daemon tolerations and the
/// node affinity that pins it.
#[must_use]
pub fn daemon_spec(template_spec: &Value, node: &str) -> Value {
    let mut spec = template_spec.clone();
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut tol = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Upstream AddOrUpdates these: one with the same key and effect is replaced (so the
    // admission default of 300 s does not limit a daemon pod on a NotReady node).
    for t in daemon_tolerations(host_network) {
        tol.retain(|x| !(x["key"] == t["key"] && x["effect"] == t["effect"]));
        tol.push(t);
    }
    spec["tolerations"] = Value::Array(tol);
    if !node.is_empty() {
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        });
    }
    spec
}

/// Whether a daemon pod with `spec` (from [`daemon_spec`]) should run on `node`.
#[must_use]
pub fn eligible(spec: &Value, node: &Value) -> bool {
    util::node_matches(spec, node) && util::untolerated_taints(spec, node).is_empty()
}

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let sets: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::daemonsets(), None)
        .cloned()
        .collect();
    if sets.is_empty() {
        return;
    }
    let nodes: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::nodes(), None)
        .cloned()
        .collect();
    let index = ctx.pods_by_owner(&cluster.store);
    for ds in sets {
        if !ctx.in_scope(podutil::ns_name(&ds).0) {
            continue;
        }
        if ds
            .ptr("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            continue;
        }
        let uid = ds
            .ptr("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let owned: &[Arc<Value>] = index.get(uid).map_or(&[], Vec::as_slice);
        sync(cluster, ctx, &ds, owned, &nodes);
    }
}

/// The node a daemon pod is for: its nodeName, else its affinity's `metadata.name`.
fn target_node(p: &Value) -> Option<&str> {
    podutil::node_name(p).or_else(|| {
        p.ptr("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
            .and_then(Value::as_str)
    })
}

#[allow(clippy::too_many_lines)]
fn sync(
    cluster: &mut Cluster,
    ctx: &mut Ctx,
    ds: &Value,
    owned: &[Arc<Value>],
    nodes: &[Arc<Value>],
) {
    let (ns, name) = podutil::ns_name(ds);
    let template = ds.ptr("/spec/template").cloned().unwrap_or(Value::Null);
    let tspec = daemon_spec(
        &template.get("spec").cloned().unwrap_or_else(|| json!({})),
        "",
    );
    let rev = revision_name(name, &template);
    let hash = rev.rsplit('-').next().unwrap_or("").to_owned();
    ensure_revision(cluster, ds, &rev, &template, &ctx.now_str);
    let min_ready = ds
        .ptr("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let generation = ds
        .ptr("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);

    let mut by_node: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    for p in owned.iter().filter(|p| pods::is_active(p)) {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let mut desired = 0i64;
    let (mut scheduled, mut ready, mut available, mut updated, mut misscheduled) =
        (0i64, 0i64, 0i64, 0i64, 0i64);
    let mut to_create = Vec::new();
    let mut to_delete: Vec<&Arc<Value>> = Vec::new();
    let mut old_pods: Vec<&Arc<Value>> = Vec::new();
    for node in nodes {
        let node_name = podutil::ns_name(node).1;
        let ok = eligible(&tspec, node);
        let here = by_node.remove(node_name).unwrap_or_default();
        if !ok {
            // Only pods already running there count as misscheduled; the kubelet keeps
            // NoExecute-tolerating pods, and upstream does not delete for NoSchedule taints.
            if !here.is_empty() {
                misscheduled += 1;
                if !util::node_matches(&tspec, node) {
                    to_delete.extend(here);
                }
            }
            continue;
        }
        desired += 1;
        if here.is_empty() {
            to_create.push(node_name.to_owned());
            continue;
        }
        scheduled += 1;
        // Duplicates: keep the oldest.
        let mut here = here;
        here.sort_by_key(|p| {
            p.ptr("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        });
        to_delete.extend(here.iter().skip(1).copied());
        let p = here[0];
        ready += i64::from(podutil::is_ready(p));
        match pods::available(p, min_ready, ctx.now) {
            Ok(true) => available += 1,
            Ok(false) => {}
            Err(at) => ctx.wake_ns(at, ns),
        }
        if p.ptr("/metadata/labels/controller-revision-hash")
            .and_then(Value::as_str)
            == Some(hash.as_str())
        {
            updated += 1;
        } else {
            old_pods.push(p);
        }
    }
    // Pods for nodes that no longer exist.
    for (_, ps) in by_node {
        to_delete.extend(ps);
    }
    for node in to_create {
        let mut pod = pods::from_template(&cluster.store, &template, ns, "", Some(ds));
        pod["spec"] = daemon_spec(&pod["spec"], &node);
        pod["metadata"]["labels"]["controller-revision-hash"] = json!(hash);
        pod["metadata"]["labels"]["pod-template-generation"] = json!(generation.to_string());
        pods::create_with_suffix(cluster, pod, name, &ctx.now_str);
    }
    for p in to_delete {
        let (pns, pname) = podutil::ns_name(p);
        pods::delete(&mut cluster.store, well_known::pods(), pns, pname, ctx.now);
    }
    // RollingUpdate: replace old pods while unavailability stays within maxUnavailable.
    let on_delete = ds.ptr("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
    if !on_delete && !old_pods.is_empty() {
        let mu = ds
            .ptr("/spec/updateStrategy/rollingUpdate/maxUnavailable")
            .cloned()
            .unwrap_or(json!(1));
        let max_unavailable = int_or_percent(&mu, desired, true).unwrap_or(1).max(1);
        let unavailable = desired - available;
        let mut budget = max_unavailable - unavailable;
        // Unavailable old pods cost nothing to replace.
        old_pods.sort_by_key(|p| u8::from(podutil::is_ready(p)));
        for p in old_pods {
            let costs = podutil::is_ready(p);
            if costs && budget <= 0 {
                break;
            }
            let (pns, pname) = podutil::ns_name(p);
            pods::delete(&mut cluster.store, well_known::pods(), pns, pname, ctx.now);
            if costs {
                budget -= 1;
            }
        }
    }
    util::mutate_parts(
        &mut cluster.store,
        well_known::daemonsets(),
        ns,
        name,
        &["status"],
        |o| {
            let mut st = json!({
                "observedGeneration": generation,
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": scheduled,
                "numberMisscheduled": misscheduled,
                "numberReady": ready,
                "numberAvailable": available,
                "numberUnavailable": desired - available,
                "updatedNumberScheduled": updated,
            });
            if let Some(m) = st.as_object_mut() {
                m.retain(|k, v| {
                    !(v.as_i64() == Some(0)
                        && matches!(
                            k.as_str(),
                            "numberAvailable" | "numberUnavailable" | "updatedNumberScheduled"
                        ))
                });
            }
            o["status"] = st;
        },
    );
}
