//! The disruption controller: PodDisruptionBudget status exactly as upstream computes it
//! (reference: drain.md §4).
//!
//! - `expectedPods`: integer `minAvailable` → number of matching pods; percentage `minAvailable`
//!   or any `maxUnavailable` → sum of the owning controllers' replicas (a ReplicaSet owned by a
//!   Deployment counts the Deployment's); a pod without a scalable controller → `SyncFailed`.
//! - `desiredHealthy`: minAvailable (percentages round up), or expected − maxUnavailable
//!   (percentages round up), floor 0.
//! - `currentHealthy`: matching pods Ready, not terminating, not in `disruptedPods`.
//! - `disruptionsAllowed = max(0, currentHealthy − desiredHealthy)`, 0 when `expectedPods ≤ 0`.
//! - `disruptedPods` entries stay until the pod is gone or terminating, or 2 minutes pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::util::Ptr as _;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::util::{self, int_or_percent};
use crate::cluster::Cluster;
use crate::labels;
use crate::podutil;
use crate::resources::well_known;

/// How long an eviction's `disruptedPods` entry holds a pod out of currentHealthy.
pub const DELETION_TIMEOUT: Duration = Duration::from_mins(2);

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let pdbs: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::pdbs(), None)
        .cloned()
        .collect();
    if pdbs.is_empty() {
        return;
    }
    let pdbs: Vec<Arc<Value>> = pdbs
        .into_iter()
        .filter(|p| ctx.in_scope(podutil::ns_name(p).0))
        .collect();
    let namespaces: HashSet<&str> = pdbs.iter().map(|p| podutil::ns_name(p).0).collect();
    let mut all: Vec<Arc<Value>> = Vec::new();
    for ns in &namespaces {
        all.extend(cluster.store.list(well_known::pods(), Some(ns)).cloned());
    }
    // Pods by (namespace, label, value): most selectors are matchLabels, and the first pair
    // narrows the candidates to the workload's own pods. Keys borrow from `all`.
    let mut by_label: HashMap<(&str, &str, &str), Vec<&Arc<Value>>> = HashMap::new();
    let mut by_ns: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    for p in &all {
        let ns = podutil::ns_name(p).0;
        for (k, v) in labels::labels(p) {
            if let Some(v) = v.as_str() {
                by_label.entry((ns, k.as_str(), v)).or_default().push(p);
            }
        }
        by_ns.entry(ns).or_default().push(p);
    }
    let mut cache = ScaleCache::new();
    let empty = Vec::new();
    for pdb in &pdbs {
        let (ns, _) = podutil::ns_name(pdb);
        let selector = pdb.ptr("/spec/selector");
        let first = selector
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_object)
            .and_then(|m| m.iter().next());
        let candidates = match first {
            Some((k, v)) => by_label
                .get(&(ns, k.as_str(), v.as_str().unwrap_or("")))
                .unwrap_or(&empty),
            None => by_ns.get(ns).unwrap_or(&empty),
        };
        let pods: Vec<&Arc<Value>> = candidates
            .iter()
            .copied()
            .filter(|p| labels::selector_matches(selector, labels::labels(p)))
            .collect();
        sync(cluster, ctx, &mut cache, pdb, &pods);
    }
}

/// The scale of the controller of `pod`: a Deployment's through its ReplicaSet, a ReplicaSet's
/// or a StatefulSet's replicas. `Err` names what is missing.
fn controller_scale(cluster: &Cluster, pod: &Value) -> Result<(String, i64), String> {
    let (ns, name) = podutil::ns_name(pod);
    let Some(r) = podutil::controller_ref(pod) else {
        return Err(format!("found no controller ref for pod \"{name}\""));
    };
    let kind = r["kind"].as_str().unwrap_or("");
    let owner = r["name"].as_str().unwrap_or("");
    let uid = r["uid"].as_str().unwrap_or("");
    let replicas = |o: &Value| o.ptr("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    match kind {
        "ReplicaSet" => {
            let rs = cluster
                .store
                .get(well_known::replicasets(), ns, owner)
                .filter(|o| o["metadata"]["uid"] == uid);
            let Some(rs) = rs else {
                return Err(format!("replicasets.apps \"{owner}\" not found"));
            };
            if let Some(d) = podutil::controller_ref(&rs).filter(|d| d["kind"] == "Deployment") {
                let dn = d["name"].as_str().unwrap_or("");
                if let Some(dep) = cluster
                    .store
                    .get(well_known::deployments(), ns, dn)
                    .filter(|o| o["metadata"]["uid"] == d["uid"])
                {
                    return Ok((
                        dep["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
                        replicas(&dep),
                    ));
                }
            }
            Ok((uid.to_owned(), replicas(&rs)))
        }
        "StatefulSet" => cluster
            .store
            .get(well_known::statefulsets(), ns, owner)
            .filter(|o| o["metadata"]["uid"] == uid)
            .map(|o| (uid.to_owned(), replicas(&o)))
            .ok_or_else(|| format!("statefulsets.apps \"{owner}\" not found")),
        _ => Err(format!("found no controllers for pod \"{name}\"")),
    }
}

/// Controller scales by the controller UID of pods, shared by the budgets of one pass.
type ScaleCache = HashMap<String, Result<(String, i64), String>>;

fn expected_and_desired(
    cluster: &Cluster,
    cache: &mut ScaleCache,
    pdb: &Value,
    pods: &[&Arc<Value>],
) -> Result<(i64, i64), String> {
    let spec = &pdb["spec"];
    if let Some(min) = spec.get("minAvailable").filter(|v| !v.is_null()) {
        if let Some(n) = min.as_i64() {
            return Ok((pods.len() as i64, n));
        }
        if let Some(n) = min.as_str().and_then(|s| s.parse::<i64>().ok()) {
            return Ok((pods.len() as i64, n));
        }
        let expected = scale_sum(cluster, cache, pods)?;
        let desired = int_or_percent(min, expected, true)
            .ok_or_else(|| format!("invalid minAvailable {min}"))?;
        return Ok((expected, desired));
    }
    if let Some(max) = spec.get("maxUnavailable").filter(|v| !v.is_null()) {
        let expected = scale_sum(cluster, cache, pods)?;
        let mu = int_or_percent(max, expected, true)
            .ok_or_else(|| format!("invalid maxUnavailable {max}"))?;
        return Ok((expected, (expected - mu).max(0)));
    }
    // Neither set: upstream defaults minAvailable to 1 at admission.
    Ok((pods.len() as i64, 1))
}

fn scale_sum(
    cluster: &Cluster,
    cache: &mut ScaleCache,
    pods: &[&Arc<Value>],
) -> Result<i64, String> {
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    for p in pods {
        let key = podutil::controller_ref(p)
            .and_then(|r| r["uid"].as_str())
            .unwrap_or("");
        let r = if key.is_empty() {
            controller_scale(cluster, p)
        } else {
            cache
                .entry(key.to_owned())
                .or_insert_with(|| controller_scale(cluster, p))
                .clone()
        };
        let (uid, n) = r?;
        seen.insert(uid, n);
    }
    Ok(seen.values().sum())
}

#[allow(clippy::too_many_lines)]
fn sync(
    cluster: &mut Cluster,
    ctx: &mut Ctx,
    cache: &mut ScaleCache,
    pdb: &Value,
    pods: &[&Arc<Value>],
) {
    let (ns, name) = podutil::ns_name(pdb);
    let generation = pdb.ptr("/metadata/generation").cloned().unwrap_or(json!(1));
    let now = ctx.now;
    let now_str = ctx.now_str.clone();
    // disruptedPods: keep entries of pods that exist, are not terminating, and are younger than
    // the deletion timeout.
    let old: Map<String, Value> = pdb
        .ptr("/status/disruptedPods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut disrupted = Map::new();
    for p in pods {
        let pname = podutil::ns_name(p).1;
        let Some(t) = old.get(pname) else { continue };
        if podutil::is_terminating(p) {
            continue;
        }
        let Some(at) = t.as_str().and_then(crate::clock::parse) else {
            continue;
        };
        let expires = util::plus(at, DELETION_TIMEOUT);
        if expires > now {
            ctx.wake_ns(expires, ns);
            disrupted.insert(pname.to_owned(), t.clone());
        } else {
            tracing::info!(
                namespace = ns,
                pdb = name,
                pod = pname,
                "disrupted pod was not deleted in time"
            );
        }
    }
    let current_healthy = pods
        .iter()
        .filter(|p| podutil::is_healthy(p) && !disrupted.contains_key(podutil::ns_name(p).1))
        .count() as i64;
    let computed = expected_and_desired(cluster, cache, pdb, pods);
    util::mutate_parts(
        &mut cluster.store,
        well_known::pdbs(),
        ns,
        name,
        &["status"],
        |o| {
            let st = &mut o["status"];
            if !st.is_object() {
                *st = json!({});
            }
            st["observedGeneration"] = generation.clone();
            st["currentHealthy"] = json!(current_healthy);
            match &computed {
                Ok((expected, desired)) => {
                    let allowed = if *expected <= 0 {
                        0
                    } else {
                        (current_healthy - desired).max(0)
                    };
                    st["expectedPods"] = json!(expected);
                    st["desiredHealthy"] = json!(desired);
                    st["disruptionsAllowed"] = json!(allowed);
                    if disrupted.is_empty() {
                        st.as_object_mut().expect("status").remove("disruptedPods");
                    } else {
                        st["disruptedPods"] = Value::Object(disrupted);
                    }
                    if allowed > 0 {
                        util::set_condition(
                            o,
                            "DisruptionAllowed",
                            "True",
                            "SufficientPods",
                            "",
                            &now_str,
                            false,
                        );
                    } else {
                        util::set_condition(
                            o,
                            "DisruptionAllowed",
                            "False",
                            "InsufficientPods",
                            "",
                            &now_str,
                            false,
                        );
                    }
                }
                Err(message) => {
                    // Upstream's failSafe: no disruptions until the budget can be computed.
                    st["disruptionsAllowed"] = json!(0);
                    for k in ["expectedPods", "desiredHealthy"] {
                        if st.get(k).is_none() {
                            st[k] = json!(0);
                        }
                    }
                    util::set_condition(
                        o,
                        "DisruptionAllowed",
                        "False",
                        "SyncFailed",
                        message,
                        &now_str,
                        false,
                    );
                }
            }
            if let Some(c) = o
                .ptr_mut("/status/conditions")
                .and_then(Value::as_array_mut)
                .and_then(|cs| cs.iter_mut().find(|c| c["type"] == "DisruptionAllowed"))
            {
                c["observedGeneration"] = generation.clone();
                // metav1.Condition requires reason and message, even when empty.
                if c.get("message").is_none() {
                    c["message"] = json!("");
                }
            }
        },
    );
}
