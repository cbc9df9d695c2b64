//! The StatefulSet controller: pods `<name>-0` .. `<name>-<N-1>` created in order (OrderedReady:
//! the next only once the previous is Running and Ready; Parallel: all at once), recreated with
//! the same name and a new UID after deletion, scaled down from the highest ordinal, rolling
//! updates from the highest ordinal one pod at a time (honouring `partition`), PVCs from
//! `volumeClaimTemplates`, ControllerRevisions, and status with currentRevision/updateRevision.

use std::collections::BTreeMap;
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
    let sets: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::statefulsets(), None)
        .cloned()
        .collect();
    if sets.is_empty() {
        return;
    }
    let index = ctx.pods_by_owner(&cluster.store);
    for sts in sets {
        if !ctx.in_scope(podutil::ns_name(&sts).0) {
            continue;
        }
        if sts
            .ptr("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            continue;
        }
        let uid = sts
            .ptr("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let owned: &[Arc<Value>] = index.get(uid).map_or(&[], Vec::as_slice);
        sync(cluster, ctx, &sts, owned);
    }
}

/// The revision name of a template: `<owner>-<hash>`.
#[must_use]
pub fn revision_name(owner: &str, template: &Value) -> String {
    format!("{owner}-{}", util::template_hash(template))
}

/// Ensures a ControllerRevision for `template` exists (what `kubectl rollout history` lists).
pub fn ensure_revision(
    cluster: &mut Cluster,
    owner: &Value,
    rev_name: &str,
    template: &Value,
    now: &str,
) {
    let res = crate::store::res("apps", "controllerrevisions");
    let (ns, _) = podutil::ns_name(owner);
    if cluster.store.get(res, ns, rev_name).is_some() {
        return;
    }
    let number = cluster
        .store
        .list(res, Some(ns))
        .filter(|r| {
            podutil::controller_ref(r).and_then(|o| o["uid"].as_str())
                == owner.ptr("/metadata/uid").and_then(Value::as_str)
        })
        .count()
        + 1;
    let labels = template
        .ptr("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let cr = json!({
        "metadata": {"name": rev_name, "namespace": ns, "labels": labels, "ownerReferences": [pods::owner_ref(owner)]},
        "data": {"spec": {"template": template}},
        "revision": number,
    });
    let _ = cluster.store.create(res, cr, now);
}

fn ordinal(sts_name: &str, pod: &Value) -> Option<i64> {
    podutil::ns_name(pod)
        .1
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn pod_revision(p: &Value) -> &str {
    p.ptr("/metadata/labels/controller-revision-hash")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[allow(clippy::too_many_lines)]
fn sync(cluster: &mut Cluster, ctx: &mut Ctx, sts: &Value, owned: &[Arc<Value>]) {
    let (ns, name) = podutil::ns_name(sts);
    let want = sts
        .ptr("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let parallel = sts.ptr("/spec/podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
    let on_delete =
        sts.ptr("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
    let partition = sts
        .ptr("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let min_ready = sts
        .ptr("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let template = sts.ptr("/spec/template").cloned().unwrap_or(Value::Null);
    let update_rev = revision_name(name, &template);
    ensure_revision(cluster, sts, &update_rev, &template, &ctx.now_str);
    if sts.ptr("/spec/volumeClaimTemplates").is_some() {
        ensure_pvcs(cluster, sts, &ctx.now_str);
    }
    let current_rev = sts
        .ptr("/status/currentRevision")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&update_rev)
        .to_owned();

    let mut by_ord: BTreeMap<i64, &Arc<Value>> = BTreeMap::new();
    for p in owned {
        if let Some(i) = ordinal(name, p) {
            by_ord.insert(i, p);
        }
    }
    let healthy = |p: &Value| podutil::phase(p) == "Running" && podutil::is_healthy(p);

    // Create missing pods, in order.
    let mut blocked = false;
    for i in 0..want {
        match by_ord.get(&i) {
            None => {
                if blocked {
                    break;
                }
                let pod = sts_pod(cluster, sts, &template, i, &update_rev);
                match cluster.store.create(well_known::pods(), pod, &ctx.now_str) {
                    Ok(p) => tracing::debug!(
                        namespace = ns,
                        statefulset = name,
                        pod = podutil::ns_name(&p).1,
                        "created pod"
                    ),
                    Err(e) => {
                        tracing::warn!(namespace = ns, statefulset = name, error = %e, "cannot create pod");
                    }
                }
                if !parallel {
                    blocked = true;
                }
            }
            Some(p) => {
                if !parallel && !healthy(p) {
                    blocked = true;
                }
            }
        }
    }
    // Scale down from the highest ordinal; OrderedReady waits for the rest to be healthy and
    // deletes one at a time.
    let condemned: Vec<&&Arc<Value>> = by_ord.range(want..).map(|(_, p)| p).rev().collect();
    if !condemned.is_empty() {
        let terminating = condemned.iter().any(|p| podutil::is_terminating(p));
        let all_healthy = by_ord.range(..want).all(|(_, p)| healthy(p));
        for p in &condemned {
            if !parallel && (terminating || !all_healthy) {
                break;
            }
            let (pns, pname) = podutil::ns_name(p);
            pods::delete(&mut cluster.store, well_known::pods(), pns, pname, ctx.now);
            if !parallel {
                break;
            }
        }
    }
    // Rolling update: the highest ordinal not at the update revision, once all are healthy.
    let present: Vec<&Arc<Value>> = by_ord.range(..want).map(|(_, p)| *p).collect();
    if !on_delete
        && present.len() as i64 == want
        && present.iter().all(|p| healthy(p))
        && let Some(p) = present
            .iter()
            .rev()
            .find(|p| ordinal(name, p).unwrap_or(0) >= partition && pod_revision(p) != update_rev)
    {
        let (pns, pname) = podutil::ns_name(p);
        tracing::debug!(namespace = ns, statefulset = name, pod = pname, revision = %update_rev, "updating pod");
        pods::delete(&mut cluster.store, well_known::pods(), pns, pname, ctx.now);
    }

    // Status.
    let active: Vec<&Arc<Value>> = owned.iter().filter(|p| pods::is_active(p)).collect();
    let ready = active.iter().filter(|p| podutil::is_ready(p)).count() as i64;
    let mut available = 0i64;
    for p in &active {
        match pods::available(p, min_ready, ctx.now) {
            Ok(true) => available += 1,
            Ok(false) => {}
            Err(at) => ctx.wake_ns(at, ns),
        }
    }
    let updated = active
        .iter()
        .filter(|p| pod_revision(p) == update_rev)
        .count() as i64;
    let current_count = active
        .iter()
        .filter(|p| pod_revision(p) == current_rev)
        .count() as i64;
    // The update is complete when every replica runs the update revision and is Ready.
    let (current_rev, current_count) =
        if updated == want && ready == want && active.len() as i64 == want {
            (update_rev.clone(), updated)
        } else {
            (current_rev, current_count)
        };
    let generation = sts.ptr("/metadata/generation").cloned().unwrap_or(json!(1));
    util::mutate_parts(
        &mut cluster.store,
        well_known::statefulsets(),
        ns,
        name,
        &["status"],
        |o| {
            o["status"] = json!({
                "observedGeneration": generation,
                "replicas": active.len(),
                "readyReplicas": ready,
                "currentReplicas": current_count,
                "updatedReplicas": updated,
                "availableReplicas": available,
                "currentRevision": current_rev,
                "updateRevision": update_rev,
                "collisionCount": 0,
            });
        },
    );
}

pub(crate) fn sts_pod(
    cluster: &Cluster,
    sts: &Value,
    template: &Value,
    i: i64,
    rev: &str,
) -> Value {
    let (ns, name) = podutil::ns_name(sts);
    let pod_name = format!("{name}-{i}");
    let mut pod = pods::from_template(&cluster.store, template, ns, &pod_name, Some(sts));
    let labels = &mut pod["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["controller-revision-hash"] = json!(rev);
    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    labels["apps.kubernetes.io/pod-index"] = json!(i.to_string());
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("generateName");
    }
    pod["metadata"]["generateName"] = json!(format!("{name}-"));
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = sts.ptr("/spec/serviceName").and_then(Value::as_str) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    for vct in sts
        .ptr("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let claim = vct
            .ptr("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("data");
        let claim_name = format!("{claim}-{pod_name}");
        if !pod["spec"]["volumes"].is_array() {
            pod["spec"]["volumes"] = json!([]);
        }
        let vols = pod["spec"]["volumes"].as_array_mut().expect("array");
        if !vols.iter().any(|v| v["name"] == claim) {
            vols.push(json!({"name": claim, "persistentVolumeClaim": {"claimName": claim_name}}));
        }
    }
    pod
}

/// Creates the PVCs of `volumeClaimTemplates` for every ordinal below replicas (kept on scale
/// down, as upstream's default retention policy does).
pub fn ensure_pvcs(cluster: &mut Cluster, sts: &Value, now: &str) {
    let (ns, name) = podutil::ns_name(sts);
    let want = sts
        .ptr("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let res = crate::store::res("", "persistentvolumeclaims");
    for vct in sts
        .ptr("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let claim = vct
            .ptr("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("data");
        for i in 0..want {
            let claim_name = format!("{claim}-{name}-{i}");
            if cluster.store.get(res, ns, &claim_name).is_some() {
                continue;
            }
            let mut pvc = json!({"metadata": {"name": claim_name, "namespace": ns}, "spec": vct.get("spec").cloned().unwrap_or_else(|| json!({})), "status": {"phase": "Bound"}});
            if let Some(l) = sts.ptr("/spec/selector/matchLabels") {
                pvc["metadata"]["labels"] = l.clone();
            }
            let _ = cluster.store.create(res, pvc, now);
        }
    }
}
