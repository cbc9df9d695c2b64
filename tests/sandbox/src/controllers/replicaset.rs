//! The ReplicaSet controller: keeps `spec.replicas` active pods (owner reference with
//! `controller: true`), deleting unscheduled, pending, not-ready and then the newest pods first
//! when scaling down, and writes `status` (replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas, observedGeneration) only when it changes.

use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::pods;
use super::util;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::well_known;

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let rs_res = well_known::replicasets();
    let sets: Vec<Arc<Value>> = cluster.store.list(rs_res, None).cloned().collect();
    if sets.is_empty() {
        return;
    }
    let index = ctx.pods_by_owner(&cluster.store);
    for rs in sets {
        if !ctx.in_scope(podutil::ns_name(&rs).0) {
            continue;
        }
        if rs
            .ptr("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            continue;
        }
        let uid = rs
            .ptr("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let owned: &[Arc<Value>] = index.get(uid).map_or(&[], Vec::as_slice);
        sync(cluster, ctx, &rs, owned);
    }
}

fn sync(cluster: &mut Cluster, ctx: &mut Ctx, rs: &Value, owned: &[Arc<Value>]) {
    let (ns, name) = podutil::ns_name(rs);
    let want = rs
        .ptr("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let min_ready = rs
        .ptr("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let active: Vec<&Arc<Value>> = owned.iter().filter(|p| pods::is_active(p)).collect();
    let have = active.len() as i64;
    if have < want {
        let template = rs.ptr("/spec/template").cloned().unwrap_or(Value::Null);
        for _ in have..want {
            let pod = pods::from_template(&cluster.store, &template, ns, "", Some(rs));
            if let Some(p) = pods::create_with_suffix(cluster, pod, name, &ctx.now_str) {
                tracing::debug!(
                    namespace = ns,
                    replicaset = name,
                    pod = podutil::ns_name(&p).1,
                    "created pod"
                );
            }
        }
    } else if have > want {
        let mut victims = active.clone();
        victims.sort_by_key(|p| delete_rank(p));
        for p in victims.iter().take((have - want) as usize) {
            let (pns, pname) = podutil::ns_name(p);
            tracing::debug!(
                namespace = pns,
                replicaset = name,
                pod = pname,
                "deleting surplus pod"
            );
            pods::delete(&mut cluster.store, well_known::pods(), pns, pname, ctx.now);
        }
    }
    let ready = active.iter().filter(|p| podutil::is_ready(p)).count();
    let mut avail = 0;
    for p in &active {
        match pods::available(p, min_ready, ctx.now) {
            Ok(true) => avail += 1,
            Ok(false) => {}
            Err(at) => ctx.wake_ns(at, ns),
        }
    }
    let selector = rs.ptr("/spec/selector").cloned();
    let labelled = active
        .iter()
        .filter(|p| crate::labels::selector_matches(selector.as_ref(), crate::labels::labels(p)))
        .count();
    let generation = rs.ptr("/metadata/generation").cloned().unwrap_or(json!(1));
    util::mutate_parts(
        &mut cluster.store,
        well_known::replicasets(),
        ns,
        name,
        &["status"],
        |o| {
            let st = json!({
                "replicas": have,
                "fullyLabeledReplicas": labelled,
                "readyReplicas": ready,
                "availableReplicas": avail,
                "observedGeneration": generation,
            });
            o["status"] = strip_zero(st);
        },
    );
}

/// Counters the apiserver omits when zero (omitempty), so `kubectl get rs` shows what it would.
fn strip_zero(mut st: Value) -> Value {
    if let Some(m) = st.as_object_mut() {
        m.retain(|k, v| k == "replicas" || v.as_i64() != Some(0));
    }
    st
}

/// Sort key for scale-down: lower goes first (unscheduled < pending < not ready < ready, then
/// newest first), the controller's ActivePods ordering.
fn delete_rank(p: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let scheduled = u8::from(podutil::node_name(p).is_some());
    let running = u8::from(podutil::phase(p) == "Running");
    let ready = u8::from(podutil::is_ready(p));
    let created = p
        .ptr("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    (scheduled, running, ready, std::cmp::Reverse(created))
}
