//! `--wait-for-replacements`: before the next node, wait until the evicted pods' Deployments and
//! StatefulSets have their available replicas back. What cannot be read (an error, a missing
//! object) counts as short: the next node never starts because the API server is unhealthy.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::{Client, ResourceExt};
use opsteps::evict;
use opsteps::retry::RetryPolicy;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;

/// A workload whose pods were evicted: `(namespace, kind, name)`.
pub type Owner = (String, String, String);

/// The owners to wait for after draining a node: ReplicaSets resolve to their Deployment (a
/// ReplicaSet that cannot be read is waited for itself).
#[tracing::instrument(skip_all)]
pub async fn owners_of(client: &Client, pods: &[&Pod]) -> BTreeSet<Owner> {
    let mut out = BTreeSet::new();
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let Some(o) = evict::controller(pod) else {
            continue;
        };
        match o.kind.as_str() {
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
                let dep = api.get_opt(&o.name).await.ok().flatten().and_then(|rs| {
                    rs.metadata
                        .owner_references
                        .unwrap_or_default()
                        .into_iter()
                        .find(|r| r.controller == Some(true) && r.kind == "Deployment")
                });
                match dep {
                    Some(d) => out.insert((ns, "Deployment".into(), d.name)),
                    None => out.insert((ns, "ReplicaSet".into(), o.name.clone())),
                };
            }
            "StatefulSet" => {
                out.insert((ns, "StatefulSet".into(), o.name.clone()));
            }
            _ => {}
        }
    }
    out
}

/// Wanted and available replicas of one owner; `Err` says why they cannot be known.
async fn replicas(client: &Client, (ns, kind, name): &Owner) -> Result<(i32, i32), String> {
    fn read<K>(r: Result<Option<K>, kube::Error>) -> Result<K, String> {
        match r {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err("not found".into()),
            Err(e) => Err(format!("cannot read it: {e}")),
        }
    }
    Ok(match kind.as_str() {
        "Deployment" => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let d = read(api.get_opt(name).await)?;
            (
                d.spec.and_then(|s| s.replicas).unwrap_or(1),
                d.status.and_then(|s| s.available_replicas).unwrap_or(0),
            )
        }
        "StatefulSet" => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let s = read(api.get_opt(name).await)?;
            let st = s.status.unwrap_or_default();
            (
                s.spec.and_then(|sp| sp.replicas).unwrap_or(1),
                st.available_replicas
                    .unwrap_or(st.ready_replicas.unwrap_or(0)),
            )
        }
        _ => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            let r = read(api.get_opt(name).await)?;
            (
                r.spec.and_then(|s| s.replicas).unwrap_or(1),
                r.status.and_then(|s| s.available_replicas).unwrap_or(0),
            )
        }
    })
}

/// The owners still short, each with why.
async fn short_of(client: &Client, owners: &BTreeSet<Owner>) -> Vec<String> {
    let mut short = Vec::new();
    for o in owners {
        let (ns, kind, name) = o;
        match replicas(client, o).await {
            Ok((want, have)) if have >= want => {}
            Ok((want, have)) => short.push(format!("{kind} {ns}/{name}: {have}/{want} available")),
            Err(why) => short.push(format!("{kind} {ns}/{name}: {why}")),
        }
    }
    short
}

/// Waits until every owner has its available replica count back, or `timeout`, or SIGTERM,
/// checking with backoff (1 s doubling to 10 s, jittered). Returns the owners still short.
#[tracing::instrument(skip_all)]
pub async fn wait_for_replacements(
    client: &Client,
    owners: &BTreeSet<Owner>,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Vec<String> {
    let mut policy =
        RetryPolicy::poll(Duration::from_secs(1), Duration::from_secs(10)).with_shutdown(shutdown);
    if let Some(deadline) = Instant::now().checked_add(timeout) {
        policy = policy.with_deadline(deadline);
    }
    let mut backoff = policy.backoff();
    loop {
        let short = short_of(client, owners).await;
        if short.is_empty() {
            return short;
        }
        tracing::info!(waiting_for = ?short, "waiting for replacements before the next node");
        // Past the deadline, or SIGTERM: what is still short stays short.
        if backoff.wait(None).await.is_err() {
            return short;
        }
    }
}
