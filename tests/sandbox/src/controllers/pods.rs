//! Pod helpers of the workload controllers: building pods from templates as the apiserver's
//! admission would leave them, graceful deletion, and indexes over the pod table.

use std::collections::HashMap;
use std::sync::Arc;

use super::util::Ptr as _;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::util;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::{ResourceInfo, well_known};
use crate::store::Store;

/// Pods by the UID of their controller.
#[must_use]
pub fn by_owner(store: &Store) -> HashMap<String, Vec<Arc<Value>>> {
    let mut idx: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
    for p in store.list(well_known::pods(), None) {
        if let Some(uid) = podutil::controller_ref(p).and_then(|r| r["uid"].as_str()) {
            idx.entry(uid.to_owned()).or_default().push(p.clone());
        }
    }
    idx
}

/// Active in the ReplicaSet controller's sense: not terminating, not Succeeded/Failed.
#[must_use]
pub fn is_active(pod: &Value) -> bool {
    !podutil::is_terminating(pod) && !matches!(podutil::phase(pod), "Succeeded" | "Failed")
}

/// Available: Ready (and not terminating) for at least `min_ready` seconds. When it will be
/// available later, that time is returned in `Err`.
pub fn available(pod: &Value, min_ready: i64, now: Timestamp) -> Result<bool, Timestamp> {
    if !podutil::is_healthy(pod) {
        return Ok(false);
    }
    if min_ready <= 0 {
        return Ok(true);
    }
    let since = pod
        .ptr("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(crate::clock::parse)
        .unwrap_or(now);
    let at = util::plus(since, std::time::Duration::from_secs(min_ready as u64));
    if at <= now { Ok(true) } else { Err(at) }
}

/// An owner reference with `controller: true`.
#[must_use]
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// A pod as a controller creates it from `template` and the apiserver's admission completes it
/// (defaults, `spec.priority` from the PriorityClass, the default NoExecute tolerations).
#[must_use]
pub fn from_template(
    store: &Store,
    template: &Value,
    namespace: &str,
    name: &str,
    owner: Option<&Value>,
) -> Value {
    let mut meta = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["namespace"] = json!(namespace);
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([owner_ref(o)]);
        meta["generateName"] = json!(format!("{}-", o["metadata"]["name"].as_str().unwrap_or("")));
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    default_spec(store, &mut spec);
    json!({"metadata": meta, "spec": spec, "status": {"phase": "Pending"}})
}

/// Fills what admission and defaulting add to a pod spec.
pub fn default_spec(store: &Store, spec: &mut Value) {
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ];
    for (k, v) in defaults {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    if spec.get("priority").is_none() {
        let class = spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let prio = store
            .get(
                crate::store::res("scheduling.k8s.io", "priorityclasses"),
                "",
                class,
            )
            .and_then(|pc| pc["value"].as_i64())
            .unwrap_or(0);
        spec["priority"] = json!(prio);
    }
    let mut tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerations
            .iter()
            .any(|t| t["key"] == key && (t["effect"] == "NoExecute" || t.get("effect").is_none()))
        {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(tolerations);
    for c in spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if c.get("imagePullPolicy").is_none() {
            c["imagePullPolicy"] = json!("IfNotPresent");
        }
        if c.get("terminationMessagePath").is_none() {
            c["terminationMessagePath"] = json!("/dev/termination-log");
            c["terminationMessagePolicy"] = json!("File");
        }
    }
}

/// Creates a pod named `<base>-<suffix>` with a fresh suffix. Returns the stored pod.
pub fn create_with_suffix(
    cluster: &mut Cluster,
    mut pod: Value,
    base: &str,
    now: &str,
) -> Option<Arc<Value>> {
    for _ in 0..16 {
        let name = format!("{base}-{}", cluster.world.name_suffix());
        pod["metadata"]["name"] = json!(name);
        if let Ok(p) = cluster.store.create(well_known::pods(), pod.clone(), now) {
            super::recorder::created(cluster, &p, now);
            return Some(p);
        }
    }
    None
}

/// Deletes an object as a controller's DELETE would: pods get a grace period (removed at once
/// when unscheduled, finished or with grace 0), other kinds go at once unless finalizers hold
/// them. Returns whether anything changed.
pub fn delete(
    store: &mut Store,
    resource: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> bool {
    let Some(obj) = store.get(resource, namespace, name) else {
        return false;
    };
    if obj
        .ptr("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return false;
    }
    let finalizers = obj
        .ptr("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let grace = if resource.key() == well_known::pods().key() {
        let finished = matches!(podutil::phase(&obj), "Succeeded" | "Failed");
        if podutil::node_name(&obj).is_none() || finished {
            0
        } else {
            obj.ptr("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
                .max(0)
        }
    } else {
        0
    };
    if grace == 0 && !finalizers {
        store.remove(resource, namespace, name);
        return true;
    }
    let mut o = (*obj).clone();
    let at = util::plus(now, std::time::Duration::from_secs(grace as u64));
    o["metadata"]["deletionTimestamp"] = json!(crate::clock::rfc3339(at));
    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    store.put(resource, o);
    true
}
