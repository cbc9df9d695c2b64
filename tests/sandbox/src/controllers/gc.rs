//! The garbage collector and pod GC: dependents whose owners (by ownerReference UID) are all
//! gone are deleted in the background (pods gracefully), and pods bound to a node that no longer
//! exists are removed. Owners being deleted with the `orphan` finalizer (propagationPolicy
//! Orphan) release their dependents (owner reference removed); with `foregroundDeletion` their
//! dependents are deleted (owners among them in the foreground too) and they go once the
//! dependents with `blockOwnerDeletion` are gone.

use std::collections::HashSet;
use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::Value;

use super::Ctx;
use super::pods;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::{ResourceInfo, well_known};

/// Kinds that own objects in the sandbox, with their tables.
fn owner_tables() -> [(&'static str, &'static ResourceInfo); 6] {
    [
        ("Deployment", well_known::deployments()),
        ("ReplicaSet", well_known::replicasets()),
        ("StatefulSet", well_known::statefulsets()),
        ("DaemonSet", well_known::daemonsets()),
        ("Node", well_known::nodes()),
        (
            "ControllerRevision",
            crate::store::res("apps", "controllerrevisions"),
        ),
    ]
}

/// Whether the collector handles owners of this kind (so the `orphan` and `foregroundDeletion`
/// finalizers the apiserver adds on delete will be acted on).
#[must_use]
pub fn is_owner_kind(res: &ResourceInfo) -> bool {
    owner_tables().iter().any(|(_, r)| r.key() == res.key())
}

/// Whether `dependent` blocks the foreground deletion of the owner with `uid`.
fn blocks(dependent: &Value, uid: &str) -> bool {
    dependent["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true)
        })
}

/// Tables whose objects can have owners.
fn dependent_tables() -> [&'static ResourceInfo; 4] {
    [
        well_known::pods(),
        well_known::replicasets(),
        crate::store::res("apps", "controllerrevisions"),
        crate::store::res("", "persistentvolumeclaims"),
    ]
}

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    deletion_finalizers(cluster, ctx);
    let mut live: HashSet<&str> = HashSet::new();
    let mut kinds: HashSet<&'static str> = HashSet::new();
    for (kind, res) in owner_tables() {
        kinds.insert(kind);
        live.extend(
            cluster
                .store
                .list(res, None)
                .filter_map(|o| o["metadata"]["uid"].as_str()),
        );
    }
    let nodes: HashSet<&str> = cluster
        .store
        .list(well_known::nodes(), None)
        .map(|n| podutil::ns_name(n).1)
        .collect();
    let mut doomed: Vec<(&'static ResourceInfo, Arc<Value>)> = Vec::new();
    let mut orphaned_pods: Vec<Arc<Value>> = Vec::new();
    let scope: Vec<Option<&str>> = match &ctx.dirty {
        None => vec![None],
        Some(d) => d.iter().map(|ns| Some(ns.as_str())).collect(),
    };
    for res in dependent_tables() {
        for o in scope.iter().flat_map(|ns| cluster.store.list(res, *ns)) {
            if let Some(refs) = o
                .ptr("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .filter(|r| !r.is_empty())
            {
                // Owners of kinds the sandbox does not model are assumed alive.
                let all_gone = refs.iter().all(|r| {
                    kinds.contains(r["kind"].as_str().unwrap_or(""))
                        && !live.contains(r["uid"].as_str().unwrap_or(""))
                });
                if all_gone
                    && o.ptr("/metadata/deletionTimestamp")
                        .is_none_or(Value::is_null)
                {
                    doomed.push((res, o.clone()));
                    continue;
                }
            }
            if res.key() == well_known::pods().key()
                && podutil::node_name(o).is_some_and(|n| !nodes.contains(n))
            {
                orphaned_pods.push(o.clone());
            }
        }
    }
    drop(live);
    drop(nodes);
    for (res, o) in doomed {
        let (ns, name) = podutil::ns_name(&o);
        tracing::debug!(
            resource = res.plural,
            namespace = ns,
            name,
            "garbage collecting dependent"
        );
        pods::delete(&mut cluster.store, res, ns, name, ctx.now);
    }
    for p in orphaned_pods {
        let (ns, name) = podutil::ns_name(&p);
        tracing::debug!(namespace = ns, pod = name, "removing pod of a deleted node");
        cluster.store.remove(well_known::pods(), ns, name);
    }
}

/// Handles owners being deleted with the `orphan` or `foregroundDeletion` finalizer, which the
/// apiserver adds for `propagationPolicy` Orphan and Foreground.
fn deletion_finalizers(cluster: &mut Cluster, ctx: &Ctx) {
    let mut pending: Vec<(&'static ResourceInfo, Arc<Value>)> = Vec::new();
    for (_, res) in owner_tables() {
        for o in cluster.store.list(res, None) {
            let deleting = !o["metadata"]["deletionTimestamp"].is_null();
            let special = o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "orphan" || x == "foregroundDeletion"));
            if deleting && special {
                pending.push((res, o.clone()));
            }
        }
    }
    for (res, owner) in pending {
        let uid = owner["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let dependents: Vec<(&'static ResourceInfo, Arc<Value>)> = dependent_tables()
            .into_iter()
            .flat_map(|r| {
                cluster
                    .store
                    .list(r, None)
                    .filter(|d| {
                        d["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|refs| refs.iter().any(|x| x["uid"] == uid.as_str()))
                    })
                    .map(move |d| (r, d.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let finalizers: Vec<Value> = owner["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let orphan = finalizers.iter().any(|x| x == "orphan");
        if orphan {
            for (r, d) in &dependents {
                let mut d = (**d).clone();
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|x| x["uid"] != uid.as_str());
                }
                cluster.store.put(r, d);
            }
        } else if !dependents.is_empty() {
            // Foreground: dependents go first, themselves in the foreground when they own
            // others; the owner waits only for those with blockOwnerDeletion.
            for (r, d) in &dependents {
                if !d["metadata"]["deletionTimestamp"].is_null() {
                    continue;
                }
                let (ns, name) = podutil::ns_name(d);
                if is_owner_kind(r) && blocks(d, &uid) {
                    let mut o = (**d).clone();
                    let list = o["metadata"]
                        .as_object_mut()
                        .expect("objects are JSON objects")
                        .entry("finalizers")
                        .or_insert_with(|| serde_json::json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(serde_json::json!("foregroundDeletion"));
                    }
                    o["metadata"]["deletionTimestamp"] =
                        serde_json::json!(crate::clock::rfc3339(ctx.now));
                    o["metadata"]["deletionGracePeriodSeconds"] = serde_json::json!(0);
                    cluster.store.put(r, o);
                } else {
                    pods::delete(&mut cluster.store, r, ns, name, ctx.now);
                }
            }
            if dependents.iter().any(|(_, d)| blocks(d, &uid)) {
                continue;
            }
        }
        let remaining: Vec<Value> = finalizers
            .into_iter()
            .filter(|x| x != "orphan" && x != "foregroundDeletion")
            .collect();
        let (ns, name) = podutil::ns_name(&owner);
        if remaining.is_empty() {
            tracing::debug!(
                resource = res.plural,
                namespace = ns,
                name,
                orphan,
                "owner deleted"
            );
            cluster.store.remove(res, ns, name);
        } else {
            let mut o = (*owner).clone();
            o["metadata"]["finalizers"] = Value::Array(remaining);
            cluster.store.put(res, o);
        }
    }
}
