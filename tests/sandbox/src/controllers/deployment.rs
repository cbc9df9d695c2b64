//! The Deployment controller: one ReplicaSet per pod-template hash (`<name>-<hash>`, label
//! `pod-template-hash`, annotation `deployment.kubernetes.io/revision`), RollingUpdate honouring
//! maxSurge/maxUnavailable (ints or percentages) with the upstream scale-up / cleanup /
//! scale-down steps, Recreate, old ReplicaSet cleanup beyond `revisionHistoryLimit`, and the
//! status `kubectl rollout status` reads (observedGeneration, replicas, updatedReplicas,
//! readyReplicas, availableReplicas, unavailableReplicas, Available and Progressing conditions).

use std::collections::HashMap;
use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::pods;
use super::util::{self, int_or_percent};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let deployments: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::deployments(), None)
        .cloned()
        .collect();
    if deployments.is_empty() {
        return;
    }
    let mut rs_by_owner: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
    for rs in cluster.store.list(well_known::replicasets(), None) {
        if let Some(uid) = podutil::controller_ref(rs).and_then(|r| r["uid"].as_str()) {
            rs_by_owner
                .entry(uid.to_owned())
                .or_default()
                .push(rs.clone());
        }
    }
    let pod_index = ctx.pods_by_owner(&cluster.store);
    for d in deployments {
        if !ctx.in_scope(podutil::ns_name(&d).0) {
            continue;
        }
        if d.ptr("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            continue;
        }
        let uid = d.ptr("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        let owned = rs_by_owner.remove(uid).unwrap_or_default();
        sync(cluster, ctx, &d, &owned, &pod_index);
    }
}

/// Whether a ReplicaSet's template equals the Deployment's but for the `pod-template-hash`
/// label (upstream's `EqualIgnoreHash`). Serialisation noise does not count: a template sent
/// back by a Go client (`kubectl rollout undo`) carries `creationTimestamp: null` and empty
/// structs (`resources: {}`) that the apiserver's typed decoding makes equal to absent.
fn same_template(rs: &Value, d: &Value) -> bool {
    same_template_exact(rs, d) || same_template_exact(&normalize(rs), &normalize(d))
}

/// Without nulls and empty objects, recursively.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// [`same_template`] on the values as they are, without cloning either.
fn same_template_exact(rs: &Value, d: &Value) -> bool {
    let (Some(r), Some(t)) = (rs.as_object(), d.as_object()) else {
        return rs == d;
    };
    let keys: std::collections::BTreeSet<&String> = r.keys().chain(t.keys()).collect();
    keys.into_iter().all(|k| {
        if k != "metadata" {
            return r.get(k) == t.get(k);
        }
        let empty = serde_json::Map::new();
        let rm = r.get(k).and_then(Value::as_object).unwrap_or(&empty);
        let tm = t.get(k).and_then(Value::as_object).unwrap_or(&empty);
        let mkeys: std::collections::BTreeSet<&String> = rm.keys().chain(tm.keys()).collect();
        mkeys.into_iter().all(|mk| {
            if mk != "labels" {
                return rm.get(mk) == tm.get(mk);
            }
            let rl = rm.get(mk).and_then(Value::as_object).unwrap_or(&empty);
            let tl = tm.get(mk).and_then(Value::as_object).unwrap_or(&empty);
            rl.iter()
                .filter(|(lk, _)| *lk != "pod-template-hash")
                .count()
                == tl.len()
                && tl.iter().all(|(lk, lv)| rl.get(lk) == Some(lv))
        })
    })
}

fn revision(rs: &Value) -> i64 {
    rs.ptr("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Per-ReplicaSet numbers the rollout works with.
struct Set {
    name: String,
    replicas: i64,
    active: i64,
    ready: i64,
    available: i64,
    created: String,
}

#[allow(clippy::too_many_lines)]
fn sync(
    cluster: &mut Cluster,
    ctx: &mut Ctx,
    d: &Value,
    owned: &[Arc<Value>],
    pod_index: &HashMap<String, Vec<Arc<Value>>>,
) {
    let (ns, name) = podutil::ns_name(d);
    let template = d.ptr("/spec/template").cloned().unwrap_or(Value::Null);
    let want = d
        .ptr("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let min_ready = d
        .ptr("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let paused = d.ptr("/spec/paused").and_then(Value::as_bool) == Some(true);
    let recreate = d.ptr("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
    let surge = d
        .ptr("/spec/strategy/rollingUpdate/maxSurge")
        .cloned()
        .unwrap_or(json!("25%"));
    let unavail = d
        .ptr("/spec/strategy/rollingUpdate/maxUnavailable")
        .cloned()
        .unwrap_or(json!("25%"));
    let mut max_surge = int_or_percent(&surge, want, true).unwrap_or(1).max(0);
    let mut max_unavailable = int_or_percent(&unavail, want, false).unwrap_or(0).max(0);
    if max_surge == 0 && max_unavailable == 0 {
        // The API rejects both zero; resolved percentages can be, and upstream then allows one.
        max_unavailable = 1;
    }
    if recreate {
        max_surge = 0;
    }
    max_unavailable = max_unavailable.min(want);

    let mut new_rs = owned
        .iter()
        .find(|rs| same_template(&rs["spec"]["template"], &template))
        .cloned();
    let max_old_revision = owned
        .iter()
        .filter(|rs| new_rs.as_ref().is_none_or(|n| !Arc::ptr_eq(n, rs)))
        .map(|rs| revision(rs))
        .max()
        .unwrap_or(0);
    let mut created_new = false;
    if new_rs.is_none() && !paused {
        new_rs = create_rs(
            cluster,
            ctx,
            d,
            &template,
            max_old_revision + 1,
            want,
            max_surge,
            owned,
        );
        created_new = new_rs.is_some();
    }
    let new_name = new_rs.as_ref().map(|rs| podutil::ns_name(rs).1.to_owned());
    // A rollback re-uses an old ReplicaSet: it becomes the newest revision.
    if let Some(rs) = &new_rs
        && revision(rs) <= max_old_revision
    {
        let rev = (max_old_revision + 1).to_string();
        let n = podutil::ns_name(rs).1.to_owned();
        util::mutate(&mut cluster.store, well_known::replicasets(), ns, &n, |o| {
            o["metadata"]["annotations"][REVISION] = json!(rev);
        });
    }

    let mut sets: Vec<Set> = owned
        .iter()
        .chain(new_rs.iter().filter(|_| created_new))
        .map(|rs| {
            let uid = rs
                .ptr("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut s = Set {
                name: podutil::ns_name(rs).1.to_owned(),
                replicas: rs
                    .ptr("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
                active: 0,
                ready: 0,
                available: 0,
                created: rs
                    .ptr("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            };
            for p in pod_index
                .get(uid)
                .into_iter()
                .flatten()
                .filter(|p| pods::is_active(p))
            {
                s.active += 1;
                s.ready += i64::from(podutil::is_ready(p));
                match pods::available(p, min_ready, ctx.now) {
                    Ok(true) => s.available += 1,
                    Ok(false) => {}
                    Err(at) => ctx.wake_ns(at, ns),
                }
            }
            s
        })
        .collect();
    // Oldest first, as the scale-down order.
    sets.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    let is_new = |s: &Set| new_name.as_deref() == Some(s.name.as_str());

    if !paused {
        if recreate {
            for s in sets.iter_mut().filter(|s| !is_new(s)) {
                s.replicas = 0;
            }
            let old_pods: usize = owned
                .iter()
                .filter(|rs| new_name.as_deref() != Some(podutil::ns_name(rs).1))
                .map(|rs| {
                    pod_index
                        .get(
                            rs.ptr("/metadata/uid")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        )
                        .map_or(0, Vec::len)
                })
                .sum();
            if old_pods == 0 {
                for s in sets.iter_mut().filter(|s| is_new(s)) {
                    s.replicas = want;
                }
            }
        } else {
            rolling(&mut sets, &is_new, want, max_surge, max_unavailable);
        }
        for s in &sets {
            let n = s.name.clone();
            let replicas = s.replicas;
            let max_replicas = want + max_surge;
            // Cheap check first: most passes change nothing, and the ReplicaSet holds a template.
            let unchanged = owned
                .iter()
                .find(|rs| podutil::ns_name(rs).1 == n)
                .is_some_and(|rs| {
                    let a = &rs["metadata"]["annotations"];
                    rs["spec"]["replicas"] == json!(replicas)
                        && a["deployment.kubernetes.io/desired-replicas"] == json!(want.to_string())
                        && a["deployment.kubernetes.io/max-replicas"]
                            == json!(max_replicas.to_string())
                });
            if unchanged {
                continue;
            }
            util::mutate(&mut cluster.store, well_known::replicasets(), ns, &n, |o| {
                if o["spec"]["replicas"] != json!(replicas) {
                    o["spec"]["replicas"] = json!(replicas);
                    let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                    o["metadata"]["generation"] = json!(g + 1);
                }
                o["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(want.to_string());
                o["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] =
                    json!(max_replicas.to_string());
            });
        }
        cleanup(cluster, ctx, d, owned, new_name.as_deref(), pod_index);
    }

    // Status.
    let total_spec: i64 = sets.iter().map(|s| s.replicas).sum();
    let active: i64 = sets.iter().map(|s| s.active).sum();
    let ready: i64 = sets.iter().map(|s| s.ready).sum();
    let available: i64 = sets.iter().map(|s| s.available).sum();
    let updated: i64 = sets.iter().filter(|s| is_new(s)).map(|s| s.active).sum();
    let new_available: i64 = sets.iter().filter(|s| is_new(s)).map(|s| s.available).sum();
    let generation = d
        .ptr("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let complete = updated == want && active == want && new_available == want;
    let new_label = new_name.clone().unwrap_or_default();
    let revision_value = new_rs.as_ref().map(|rs| {
        cluster
            .store
            .get(well_known::replicasets(), ns, podutil::ns_name(rs).1)
            .map_or(0, |r| revision(&r))
    });
    // Progress deadline: any change of the counters is progress (upstream bumps the Progressing
    // condition's lastUpdateTime on progress); none for progressDeadlineSeconds is a timeout.
    let st = &d["status"];
    let count = |k: &str| st[k].as_i64().unwrap_or(0);
    let progressed = (
        count("replicas"),
        count("updatedReplicas"),
        count("readyReplicas"),
        count("availableReplicas"),
    ) != (active, updated, ready, available);
    let progressing = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    let rolling_reason = progressing.is_some_and(|c| {
        c["reason"] == "ReplicaSetUpdated" || c["reason"] == "ProgressDeadlineExceeded"
    });
    let deadline = d["spec"]["progressDeadlineSeconds"]
        .as_i64()
        .unwrap_or(600)
        .max(0);
    let deadline_at = progressing
        .and_then(|c| c["lastUpdateTime"].as_str())
        .and_then(crate::clock::parse)
        .map(|t| util::plus(t, std::time::Duration::from_secs(deadline as u64)));
    let already_timed_out = progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded");
    let timed_out = !paused
        && !complete
        && !created_new
        && rolling_reason
        && !progressed
        && (already_timed_out || deadline_at.is_some_and(|t| t <= ctx.now));
    if let Some(t) = deadline_at.filter(|_| !complete && !timed_out) {
        ctx.wake_ns(t, ns);
    }
    let now = ctx.now_str.clone();
    util::mutate_parts(
        &mut cluster.store,
        well_known::deployments(),
        ns,
        name,
        &["metadata", "status"],
        |o| {
            if let Some(rev) = revision_value {
                o["metadata"]["annotations"][REVISION] = json!(rev.to_string());
            }
            let st = &mut o["status"];
            if !st.is_object() {
                *st = json!({});
            }
            st["observedGeneration"] = json!(generation);
            for (k, v) in [
                ("replicas", active),
                ("updatedReplicas", updated),
                ("readyReplicas", ready),
                ("availableReplicas", available),
                ("unavailableReplicas", (total_spec - available).max(0)),
            ] {
                if v == 0 && k != "replicas" {
                    st.as_object_mut().expect("status").remove(k);
                } else {
                    st[k] = json!(v);
                }
            }
            if available >= want - max_unavailable {
                util::set_condition(
                    o,
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    &now,
                    true,
                );
            } else {
                util::set_condition(
                    o,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    &now,
                    true,
                );
            }
            if paused {
                util::set_condition(
                    o,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    &now,
                    true,
                );
            } else if complete {
                let msg = format!("ReplicaSet \"{new_label}\" has successfully progressed.");
                util::set_condition(
                    o,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &msg,
                    &now,
                    true,
                );
            } else if created_new {
                let msg = format!("Created new replica set \"{new_label}\"");
                util::set_condition(
                    o,
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &msg,
                    &now,
                    true,
                );
            } else if timed_out {
                let msg = format!("ReplicaSet \"{new_label}\" has timed out progressing.");
                util::set_condition(
                    o,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &msg,
                    &now,
                    true,
                );
            } else {
                let msg = format!("ReplicaSet \"{new_label}\" is progressing.");
                util::set_condition(
                    o,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &msg,
                    &now,
                    true,
                );
                if (progressed || !rolling_reason)
                    && let Some(c) = o["status"]["conditions"]
                        .as_array_mut()
                        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == "Progressing"))
                {
                    c["lastUpdateTime"] = json!(now);
                }
            }
        },
    );
}

/// One RollingUpdate step over in-memory numbers, as upstream's reconcileNewReplicaSet and
/// reconcileOldReplicaSets: scale the new set up within maxSurge, then remove unhealthy old
/// replicas, then scale old sets down while availability stays at least `want - maxUnavailable`.
fn rolling(
    sets: &mut [Set],
    is_new: &dyn Fn(&Set) -> bool,
    want: i64,
    max_surge: i64,
    max_unavailable: i64,
) {
    let Some(ni) = sets.iter().position(is_new) else {
        return;
    };
    let old_replicas: i64 = sets.iter().filter(|s| !is_new(s)).map(|s| s.replicas).sum();
    // Scale up the new set.
    if old_replicas == 0 || sets[ni].replicas > want {
        sets[ni].replicas = want;
    } else {
        let total: i64 = sets.iter().map(|s| s.replicas).sum();
        let room = want + max_surge - total;
        if room > 0 {
            sets[ni].replicas = (sets[ni].replicas + room).min(want);
        }
    }
    // Scale down old sets.
    let min_available = want - max_unavailable;
    let all: i64 = sets.iter().map(|s| s.replicas).sum();
    let new_unavailable = (sets[ni].replicas - sets[ni].available).max(0);
    let mut max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // Unhealthy old replicas go first: removing them costs no availability.
    for s in sets.iter_mut().filter(|s| !is_new(s)) {
        if max_scaled_down <= 0 {
            break;
        }
        let unhealthy = (s.replicas - s.available).max(0);
        let cut = unhealthy.min(max_scaled_down).min(s.replicas);
        s.replicas -= cut;
        max_scaled_down -= cut;
    }
    let available: i64 = sets.iter().map(|s| s.available.min(s.replicas)).sum();
    let mut budget = available - min_available;
    for s in sets.iter_mut().filter(|s| !is_new(s)) {
        if budget <= 0 {
            break;
        }
        let cut = s.replicas.min(budget);
        s.replicas -= cut;
        budget -= cut;
    }
}

#[allow(clippy::too_many_arguments)]
fn create_rs(
    cluster: &mut Cluster,
    ctx: &Ctx,
    d: &Value,
    template: &Value,
    rev: i64,
    want: i64,
    max_surge: i64,
    owned: &[Arc<Value>],
) -> Option<Arc<Value>> {
    let (ns, name) = podutil::ns_name(d);
    let hash = util::template_hash(template);
    let mut t = template.clone();
    t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = d
        .ptr("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let old: i64 = owned
        .iter()
        .map(|rs| {
            rs.ptr("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        })
        .sum();
    let recreate = d.ptr("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
    // The first step of the rollout happens at creation, as upstream does.
    let initial = if old == 0 {
        want
    } else if recreate {
        0
    } else {
        (want + max_surge - old).clamp(0, want)
    };
    let mut labels = t["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let rs = json!({
        "metadata": {
            "name": format!("{name}-{hash}"),
            "namespace": ns,
            "labels": labels,
            "annotations": {
                REVISION: rev.to_string(),
                "deployment.kubernetes.io/desired-replicas": want.to_string(),
                "deployment.kubernetes.io/max-replicas": (want + max_surge).to_string(),
            },
            "ownerReferences": [pods::owner_ref(d)],
        },
        "spec": {
            "replicas": initial,
            "minReadySeconds": d.ptr("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": t,
        },
        "status": {"replicas": 0},
    });
    match cluster
        .store
        .create(well_known::replicasets(), rs, &ctx.now_str)
    {
        Ok(rs) => {
            tracing::info!(
                namespace = ns,
                deployment = name,
                replicaset = podutil::ns_name(&rs).1,
                revision = rev,
                "created new replica set"
            );
            Some(rs)
        }
        Err(e) => {
            tracing::warn!(namespace = ns, deployment = name, error = %e, "cannot create replica set");
            None
        }
    }
}

/// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit` (default 10), oldest first.
fn cleanup(
    cluster: &mut Cluster,
    ctx: &Ctx,
    d: &Value,
    owned: &[Arc<Value>],
    new_name: Option<&str>,
    pod_index: &HashMap<String, Vec<Arc<Value>>>,
) {
    let limit = d
        .ptr("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10)
        .max(0) as usize;
    let mut old: Vec<&Arc<Value>> = owned
        .iter()
        .filter(|rs| new_name != Some(podutil::ns_name(rs).1))
        .filter(|rs| rs.ptr("/spec/replicas").and_then(Value::as_i64) == Some(0))
        .filter(|rs| {
            pod_index
                .get(
                    rs.ptr("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                )
                .is_none_or(Vec::is_empty)
        })
        .collect();
    if old.len() <= limit {
        return;
    }
    old.sort_by_key(|rs| revision(rs));
    let extra = old.len() - limit;
    for rs in old.into_iter().take(extra) {
        let (ns, n) = podutil::ns_name(rs);
        pods::delete(
            &mut cluster.store,
            well_known::replicasets(),
            ns,
            n,
            ctx.now,
        );
    }
}
