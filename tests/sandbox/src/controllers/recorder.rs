//! Events of the workload controllers, recorded around their passes: what a pass of the
//! Deployment controller did to its ReplicaSets' `spec.replicas` (`ScalingReplicaSet`), and
//! which pods a pass of the ReplicaSet controller deleted (`SuccessfulDelete`). Within a pass
//! nothing else writes (the cluster lock is held), so the difference is the controller's doing.
//! `SuccessfulCreate` is recorded where controllers create pods (`pods::create_with_suffix`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Ctx;
use crate::cluster::Cluster;
use crate::events::{Event, Source, record};
use crate::podutil;
use crate::resources::well_known;

fn owned_by<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    podutil::controller_ref(obj).filter(|r| r["kind"] == kind)
}

fn in_scope(
    cluster: &Cluster,
    ctx: &Ctx,
    res: &'static crate::resources::ResourceInfo,
) -> Vec<Arc<Value>> {
    match &ctx.dirty {
        None => cluster.store.list(res, None).cloned().collect(),
        Some(d) => d
            .iter()
            .flat_map(|ns| cluster.store.list(res, Some(ns)).cloned())
            .collect(),
    }
}

/// `spec.replicas` of the Deployment-owned ReplicaSets in scope, by UID.
pub struct Replicas(HashMap<String, i64>);

/// The [`Replicas`] before a pass.
#[must_use]
pub fn replicas_before(cluster: &Cluster, ctx: &Ctx) -> Replicas {
    Replicas(
        in_scope(cluster, ctx, well_known::replicasets())
            .iter()
            .filter(|rs| owned_by(rs, "Deployment").is_some())
            .map(|rs| {
                (
                    rs["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
                    rs["spec"]["replicas"].as_i64().unwrap_or(1),
                )
            })
            .collect(),
    )
}

/// `ScalingReplicaSet` on each Deployment whose ReplicaSet's replicas changed since `before`
/// (a ReplicaSet created in the pass counts from 0).
pub fn scaling(cluster: &mut Cluster, ctx: &Ctx, before: &Replicas) {
    for rs in in_scope(cluster, ctx, well_known::replicasets()) {
        let Some(owner) = owned_by(&rs, "Deployment") else {
            continue;
        };
        let uid = rs["metadata"]["uid"].as_str().unwrap_or("");
        let now = rs["spec"]["replicas"].as_i64().unwrap_or(1);
        let old = before.0.get(uid).copied().unwrap_or(0);
        if old == now {
            continue;
        }
        let (ns, name) = podutil::ns_name(&rs);
        let Some(d) = cluster.store.get(
            well_known::deployments(),
            ns,
            owner["name"].as_str().unwrap_or(""),
        ) else {
            continue;
        };
        let dir = if now > old { "up" } else { "down" };
        let message = format!("Scaled {dir} replica set {name} from {old} to {now}");
        let event = Event {
            object: &d,
            resource: well_known::deployments(),
            field_path: None,
            kind: "Normal",
            reason: "ScalingReplicaSet",
            message: &message,
            source: Source::component("deployment-controller"),
        };
        record(cluster, &event, &ctx.now_str, false);
    }
}

/// Active ReplicaSet-owned pods in scope: (namespace, name, owner name).
#[must_use]
pub fn rs_pods_before(cluster: &Cluster, ctx: &Ctx) -> Vec<(String, String, String)> {
    ctx.pods_in_scope(&cluster.store)
        .iter()
        .filter(|p| !podutil::is_terminating(p))
        .filter_map(|p| {
            let owner = owned_by(p, "ReplicaSet")?["name"].as_str()?.to_owned();
            let (ns, name) = podutil::ns_name(p);
            Some((ns.to_owned(), name.to_owned(), owner))
        })
        .collect()
}

/// `SuccessfulDelete` on the ReplicaSet of each pod of `before` now deleted or terminating.
pub fn deletions(cluster: &mut Cluster, ctx: &Ctx, before: &[(String, String, String)]) {
    for (ns, name, owner) in before {
        let gone = cluster
            .store
            .get(well_known::pods(), ns, name)
            .is_none_or(|p| podutil::is_terminating(&p));
        if !gone {
            continue;
        }
        let Some(rs) = cluster.store.get(well_known::replicasets(), ns, owner) else {
            continue;
        };
        let message = format!("Deleted pod: {name}");
        let event = Event {
            object: &rs,
            resource: well_known::replicasets(),
            field_path: None,
            kind: "Normal",
            reason: "SuccessfulDelete",
            message: &message,
            source: Source::component("replicaset-controller"),
        };
        record(cluster, &event, &ctx.now_str, false);
    }
}

/// `SuccessfulCreate` on the controller of a pod it just created.
pub fn created(cluster: &mut Cluster, pod: &Value, now: &str) {
    let Some(owner) = podutil::controller_ref(pod) else {
        return;
    };
    let (res, component) = match owner["kind"].as_str().unwrap_or("") {
        "ReplicaSet" => (well_known::replicasets(), "replicaset-controller"),
        "StatefulSet" => (well_known::statefulsets(), "statefulset-controller"),
        "DaemonSet" => (well_known::daemonsets(), "daemonset-controller"),
        _ => return,
    };
    let (ns, name) = podutil::ns_name(pod);
    let Some(obj) = cluster
        .store
        .get(res, ns, owner["name"].as_str().unwrap_or(""))
    else {
        return;
    };
    let message = if res.kind == "StatefulSet" {
        format!(
            "create Pod {name} in StatefulSet {} successful",
            podutil::ns_name(&obj).1
        )
    } else {
        format!("Created pod: {name}")
    };
    let event = Event {
        object: &obj,
        resource: res,
        field_path: None,
        kind: "Normal",
        reason: "SuccessfulCreate",
        message: &message,
        source: Source::component(component),
    };
    record(cluster, &event, now, false);
}
