//! `--wait-for-replacements`: before the next node, wait until the evicted pods' Deployments and
//! StatefulSets have their available replicas back. Owners are resolved and read through
//! `opsteps::owners`, which keeps NotFound apart from errors; here both count as short, so the
//! next node never starts because the API server is unhealthy or an owner is gone.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use opsteps::owners::{self, OwnerRef, Owners};
use opsteps::retry::RetryPolicy;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;

/// The controller kinds whose pods come back after an eviction and are waited for.
const WAITED_KINDS: &[&str] = &["ReplicaSet", "StatefulSet"];

/// The owners to wait for after draining a node: ReplicaSets resolve to their Deployment (a
/// ReplicaSet whose Deployment is gone is waited for itself; an owner that cannot be read is
/// waited for, and counts as short until it can be).
#[tracing::instrument(skip_all)]
pub async fn owners_of(client: &Client, pods: &[&Pod]) -> BTreeSet<OwnerRef> {
    // One GET each, no retry here: an owner that cannot be resolved is waited for as it is, and
    // the wait below reads it again with backoff.
    let resolver = Owners::with_retry(
        client.clone(),
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
    );
    let mut out = BTreeSet::new();
    for pod in pods {
        let Some(c) = owners::controller_of(pod) else {
            continue;
        };
        if !WAITED_KINDS.contains(&c.kind.as_str()) {
            continue;
        }
        match resolver.resolve(&c).await {
            Ok(Some(w)) => out.insert(w.owner),
            // The ReplicaSet itself is gone: wait for it, which reads as short.
            Ok(None) => out.insert(c),
            // What could not be read (the ReplicaSet, or its Deployment) is waited for.
            Err(e) => out.insert(e.owner().clone()),
        };
    }
    out
}

/// The owners still short, each with why (an owner that cannot be read is short).
async fn short_of(resolver: &Owners, owners: &BTreeSet<OwnerRef>) -> Vec<String> {
    let mut short = Vec::new();
    for o in owners {
        match resolver.replicas(o).await {
            Ok(Some(r)) if !r.is_short() => {}
            Ok(Some(r)) => short.push(format!("{o}: {}/{} available", r.available, r.desired)),
            Ok(None) => short.push(format!("{o}: not found")),
            Err(e) => short.push(match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }),
        }
    }
    short
}

/// Waits until every owner has its available replica count back, or `timeout`, or SIGTERM,
/// checking with backoff (1 s doubling to 10 s, jittered). Returns the owners still short.
#[tracing::instrument(skip_all)]
pub async fn wait_for_replacements(
    client: &Client,
    owners: &BTreeSet<OwnerRef>,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Vec<String> {
    let mut policy =
        RetryPolicy::poll(Duration::from_secs(1), Duration::from_secs(10)).with_shutdown(shutdown);
    if let Some(deadline) = Instant::now().checked_add(timeout) {
        policy = policy.with_deadline(deadline);
    }
    let mut backoff = policy.backoff();
    // Each read tries once: the backoff below is the retry, bounded by the same deadline.
    let resolver = Owners::with_retry(
        client.clone(),
        RetryPolicy {
            max_attempts: 1,
            ..policy.clone()
        },
    );
    loop {
        let short = short_of(&resolver, owners).await;
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
