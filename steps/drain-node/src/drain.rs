//! Draining one node: evict its pods (non-critical first, `system-*-critical` last) with a bound
//! on in-flight eviction requests, retry PDB refusals (429) with jittered backoff that honours
//! Retry-After, and await each deletion by UID through one watch on the node's pods. SIGTERM and
//! a lost lease are checked before every eviction and end every wait.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;
use opsteps::cli::DryRun;
use opsteps::events::{self, EventType};
use opsteps::evict::{self, EvictOptions, EvictResult, PodWatch, WatchError};
use opsteps::retry::{Backoff, RetryPolicy};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::budgets::NoRoom;
use crate::plan::{NodePlan, PodPlan, Verdict};
use crate::report::{NodeResult, NodeStatus};
use crate::shared::{Shared, Stop};

/// How to drain, from the flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--grace-period` (None: the pod's own).
    pub grace_period: Option<i64>,
    /// `--timeout` per node (None: no limit, kubectl's 0).
    pub timeout: Option<Duration>,
    /// `--skip-wait-for-delete-timeout`.
    pub skip_wait: Option<Duration>,
    /// `--max-in-flight`.
    pub max_in_flight: usize,
    /// `--disable-eviction`.
    pub disable_eviction: bool,
    /// `--dry-run`.
    pub dry_run: DryRun,
    /// `--wait-for-replacements` with its timeout.
    pub wait_for_replacements: Option<Duration>,
}

/// How one pod ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodOutcome {
    /// Gone from the node; `evicted` when this run's eviction (or deletion) was accepted,
    /// otherwise it was only waited for.
    Removed {
        /// This run evicted it.
        evicted: bool,
    },
    /// A dry run's verdict.
    DryRun(String),
    /// Refused by a budget until the deadline, or by two budgets.
    Blocked(String),
    /// Evicted but still terminating at the deadline.
    StuckTerminating(String),
    /// Refused for good (an error that retrying will not fix).
    Failed(String),
    /// A transient error persisted.
    Transient(String),
    /// SIGTERM.
    Interrupted,
    /// The node's lease is no longer ours.
    LeaseLost(String),
}

impl From<Stop> for PodOutcome {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Shutdown => Self::Interrupted,
            Stop::LeaseLost(why) => Self::LeaseLost(why),
        }
    }
}

/// How often a wait for a deletion double-checks with a GET.
const RECHECK: Duration = Duration::from_secs(10);

/// kubectl's `--timeout 0` (or one too large to add): no deadline; a century is as good as none.
fn deadline_after(timeout: Option<Duration>) -> Instant {
    let now = Instant::now();
    timeout
        .and_then(|t| now.checked_add(t))
        .or_else(|| now.checked_add(Duration::from_hours(100 * 365 * 24)))
        .unwrap_or(now)
}

/// Drains one node according to its plan.
#[tracing::instrument(skip_all, fields(node = %plan.node))]
pub async fn drain_node(shared: &Arc<Shared>, plan: &NodePlan) -> NodeResult {
    let node = plan.node.as_str();
    let deadline = deadline_after(shared.settings.timeout);
    let watch = PodWatch::start(
        Api::all(shared.client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
    );
    let sem = Semaphore::new(shared.settings.max_in_flight.max(1));
    let (normal, critical): (Vec<&PodPlan>, Vec<&PodPlan>) =
        plan.to_remove().partition(|p| !p.critical);
    let mut result = NodeResult::new(node, NodeStatus::Drained);
    for tier in [normal, critical] {
        if tier.is_empty() {
            continue;
        }
        // A tier starts only when the previous one is gone: critical pods (DNS, CNI helpers)
        // keep serving the others while they leave.
        let outcomes = join_all(
            tier.iter()
                .map(|p| remove_pod(shared, &watch, &sem, node, p, deadline)),
        )
        .await;
        for (p, o) in tier.iter().zip(outcomes) {
            let (status, why) = match o {
                PodOutcome::Removed { evicted: true } => {
                    result.evicted.push(p.pod.clone());
                    continue;
                }
                PodOutcome::Removed { evicted: false } => {
                    result.awaited.push(p.pod.clone());
                    continue;
                }
                PodOutcome::DryRun(v) => {
                    if v == "evicted" {
                        result.evicted.push(p.pod.clone());
                    }
                    result.dry_run.insert(p.pod.clone(), v);
                    continue;
                }
                PodOutcome::Blocked(m) | PodOutcome::LeaseLost(m) => (NodeStatus::Blocked, m),
                PodOutcome::StuckTerminating(m) => (NodeStatus::TimedOut, m),
                PodOutcome::Failed(m) => (NodeStatus::Failed, m),
                PodOutcome::Transient(m) => (NodeStatus::Transient, m),
                PodOutcome::Interrupted => {
                    (NodeStatus::Interrupted, "interrupted by SIGTERM".to_owned())
                }
            };
            result.status = result.status.worse(status);
            result.not_evicted(&p.pod, why);
        }
        if result.status != NodeStatus::Drained {
            break;
        }
    }
    if shared.settings.dry_run.is_dry() && result.status == NodeStatus::Drained {
        result.status = if result.dry_run.values().all(|v| v == "evicted") {
            NodeStatus::DryRun
        } else {
            NodeStatus::Blocked
        };
        let refused: Vec<(String, String)> = result
            .dry_run
            .iter()
            .filter(|(_, v)| *v != "evicted")
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        for (pod, v) in refused {
            result.not_evicted(pod, v);
        }
    }
    result
}

/// Backoff for PDB refusals: 1 s doubling to 10 s, jittered, at least the server's Retry-After,
/// until the node's deadline.
fn budget_backoff(deadline: Instant) -> Backoff {
    RetryPolicy::poll(Duration::from_secs(1), Duration::from_secs(10))
        .with_deadline(deadline)
        .backoff()
}

/// Backoff for transient errors (5xx, connection failures): the same delays, 8 retries.
fn transient_backoff(deadline: Instant) -> Backoff {
    RetryPolicy {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        max_attempts: 9,
        ..RetryPolicy::default()
    }
    .with_deadline(deadline)
    .backoff()
}

/// Sleeps `delay` unless the node's drain must stop first.
async fn pause(shared: &Shared, node: &str, delay: Duration) -> Result<(), PodOutcome> {
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        stop = shared.stopped(node) => Err(stop.into()),
    }
}

#[tracing::instrument(skip_all, fields(node = %node, pod = %p.pod))]
async fn remove_pod(
    shared: &Arc<Shared>,
    watch: &PodWatch,
    sem: &Semaphore,
    node: &str,
    p: &PodPlan,
    deadline: Instant,
) -> PodOutcome {
    let uid = p.object.uid().unwrap_or_default();
    // Pods already terminating (an earlier run's evictions, someone else's delete) are only
    // waited for.
    let mut evicted = false;
    if !matches!(p.verdict, Verdict::Wait) {
        match evict_until_accepted(shared, watch, sem, node, p, &uid, deadline).await {
            Ok(by_us) => evicted = by_us,
            Err(outcome) => {
                if matches!(outcome, PodOutcome::Removed { .. }) {
                    shared.removed();
                }
                return outcome;
            }
        }
    }
    let wanted = HashSet::from([uid.clone()]);
    let (ns, name) = p.pod.split_once('/').unwrap_or(("", &p.pod));
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    let remaining = loop {
        // The watch is the signal; a GET every 10 s is the safety net, so a missed DELETED
        // event (a watch resumed across a gap) costs seconds, not the whole --timeout.
        let slice = deadline.min(Instant::now() + RECHECK);
        let remaining = tokio::select! {
            r = watch.wait_gone(&wanted, shared.settings.skip_wait, slice) => match r {
                Ok(r) => r,
                Err(WatchError::NotListed) => wanted.clone(),
                Err(e @ WatchError::Refused(_)) => {
                    return PodOutcome::Failed(format!("cannot watch the pods of node {node}: {e}"));
                }
            },
            stop = shared.stopped(node) => return stop.into(),
        };
        if remaining.is_empty() {
            break remaining;
        }
        match pods.get_opt(name).await {
            Ok(None) => break HashSet::new(),
            Ok(Some(current)) if current.uid().as_deref() != Some(uid.as_str()) => {
                break HashSet::new();
            }
            _ if Instant::now() >= deadline => break remaining,
            _ => {}
        }
    };
    if remaining.is_empty() {
        shared.removed();
        tracing::info!(evicted, "pod gone");
        PodOutcome::Removed { evicted }
    } else {
        PodOutcome::StuckTerminating(
            "still terminating at the deadline (the pod watch may not have listed it)".into(),
        )
    }
}

/// Waits for room in the pod's budget when it is healthy and under one. `Ok(None)`: no budget to
/// wait for.
async fn room(
    shared: &Arc<Shared>,
    node: &str,
    p: &PodPlan,
    deadline: Instant,
) -> Result<Option<crate::budgets::Reservation>, PodOutcome> {
    let s = &shared.settings;
    // Unhealthy pods may be evictable without room (unhealthyPodEvictionPolicy), so they just
    // try; a server dry run asks the server.
    let Some(pdb) = p
        .pdb
        .as_deref()
        .filter(|_| !s.disable_eviction && s.dry_run == DryRun::None && evict::is_ready(&p.object))
    else {
        return Ok(None);
    };
    let waiting = || {
        shared.blocked(
            p,
            node,
            Some(pdb.to_owned()),
            &format!("waiting for PodDisruptionBudget {pdb} to allow a disruption"),
        );
    };
    let lease_lost = async {
        match shared.stopped(node).await {
            Stop::LeaseLost(why) => why,
            Stop::Shutdown => std::future::pending().await,
        }
    };
    let r = tokio::select! {
        r = shared.budgets.reserve(pdb, deadline, &shared.shutdown, waiting) => r,
        why = lease_lost => return Err(PodOutcome::LeaseLost(why)),
    };
    match r {
        Ok(r) => Ok(Some(r)),
        Err(NoRoom::Shutdown) => Err(PodOutcome::Interrupted),
        Err(NoRoom::Failed(e)) => Err(PodOutcome::Failed(format!(
            "cannot watch PodDisruptionBudgets: {e}"
        ))),
        Err(NoRoom::Deadline) => {
            let last = shared
                .last_message(&p.pod)
                .unwrap_or_else(|| format!("PodDisruptionBudget {pdb} allowed no disruption"));
            Err(PodOutcome::Blocked(format!(
                "still refused at the deadline: {last}"
            )))
        }
    }
}

/// A client dry run's verdict: evicted, unless the pod is healthy and its budget allowed no
/// disruption when planned (what the server would answer with a 429).
fn client_verdict(p: &PodPlan) -> String {
    match (&p.pdb, p.pdb_allowed) {
        (Some(pdb), Some(allowed)) if allowed <= 0 && evict::is_ready(&p.object) => format!(
            "blocked-by-pdb: PodDisruptionBudget {pdb} allows no disruption now ({allowed} allowed)"
        ),
        _ => "evicted".into(),
    }
}

/// Sends the eviction (or deletion) until the server accepts it: `Ok(by_us)` means "now wait for
/// the pod to go" (`by_us`: our eviction was accepted, not someone else's deletion); `Err` is the pod's final outcome (gone already, refused until the deadline,
/// a dry run's verdict, ...).
// One match arm per answer class, in the order of the README's table.
#[allow(clippy::too_many_lines)]
async fn evict_until_accepted(
    shared: &Arc<Shared>,
    watch: &PodWatch,
    sem: &Semaphore,
    node: &str,
    p: &PodPlan,
    uid: &str,
    deadline: Instant,
) -> Result<bool, PodOutcome> {
    let (ns, name) = p.pod.split_once('/').unwrap_or(("", &p.pod));
    let settings = &shared.settings;
    if settings.dry_run == DryRun::Client {
        let verdict = if settings.disable_eviction {
            "evicted".into()
        } else {
            client_verdict(p)
        };
        return Err(PodOutcome::DryRun(verdict));
    }
    let opts = EvictOptions {
        grace_period_seconds: settings.grace_period,
        dry_run: settings.dry_run == DryRun::Server,
        uid: Some(uid.to_owned()).filter(|u| !u.is_empty()),
    };
    let mut refusals = budget_backoff(deadline);
    let mut failures = transient_backoff(deadline);
    let mut announced = false;
    loop {
        let reservation = room(shared, node, p, deadline).await?;
        let permit = sem.acquire().await;
        // Checked right before the request: a wait above may have outlasted the lease.
        if let Some(stop) = shared.stop(node) {
            return Err(stop.into());
        }
        let r = if settings.disable_eviction {
            evict::delete(&shared.client, ns, name, &opts, &shared.audit).await
        } else {
            evict::evict(&shared.client, ns, name, &opts, &shared.audit).await
        };
        drop(permit);
        if settings.dry_run == DryRun::Server {
            // The server's verdict is the answer; a dry run never waits or retries.
            return Err(PodOutcome::DryRun(match r {
                EvictResult::Evicted | EvictResult::Gone | EvictResult::Replaced => {
                    "evicted".into()
                }
                EvictResult::Blocked { message, .. } => format!("blocked-by-pdb: {message}"),
                other => other.verdict().into(),
            }));
        }
        match r {
            EvictResult::Evicted => {
                shared.unblocked(&p.pod);
                // Only an accepted eviction spends the room; any other answer gives it back.
                if let Some(r) = reservation {
                    r.spend();
                }
                if shared.stop(node).is_none() {
                    let how = if settings.disable_eviction {
                        "Deleted"
                    } else {
                        "Evicted"
                    };
                    events::record(
                        &shared.client,
                        &shared.audit,
                        crate::STEP,
                        &p.object,
                        EventType::Normal,
                        "Evicted",
                        &format!("{how} by {} to drain node {node}", shared.me),
                    )
                    .await;
                }
                return Ok(true);
            }
            EvictResult::Gone | EvictResult::Replaced => {
                shared.unblocked(&p.pod);
                return Err(PodOutcome::Removed { evicted: false });
            }
            EvictResult::Blocked {
                message,
                pdb,
                retry_after,
            } => {
                if !announced && shared.stop(node).is_none() {
                    announced = true;
                    // One Event per blocked pod, where `kubectl describe pod` shows it.
                    events::record(
                        &shared.client,
                        &shared.audit,
                        crate::STEP,
                        &p.object,
                        EventType::Warning,
                        "EvictionBlocked",
                        &format!("drain of node {node} by {}: {message}", shared.me),
                    )
                    .await;
                }
                shared.blocked(p, node, pdb.map(|n| format!("{ns}/{n}")), &message);
                let Ok(delay) = refusals.next_delay(retry_after) else {
                    return Err(PodOutcome::Blocked(format!(
                        "still refused at the deadline: {message}"
                    )));
                };
                tracing::info!(retry_in_ms = delay.as_millis() as u64, message = %message, "eviction refused by a disruption budget; will retry");
                pause(shared, node, delay).await?;
                // Gone meanwhile (deleted by someone else, or its node lost it)?
                let present = watch
                    .present(&HashSet::from([uid.to_owned()]), None, Instant::now())
                    .await;
                if present.as_ref().is_ok_and(|p| !p.contains(uid)) {
                    shared.unblocked(&p.pod);
                    return Err(PodOutcome::Removed { evicted: false });
                }
            }
            EvictResult::NamespaceTerminating => {
                // kubectl: wait if the pod is already being deleted, else retry in 5 s.
                let snap = watch.snapshot(Instant::now()).await.unwrap_or_default();
                if snap
                    .get(&p.pod)
                    .is_some_and(|(u, del)| u == uid && del.is_some())
                {
                    return Ok(false);
                }
                shared.blocked(p, node, None, "namespace is terminating");
                if Instant::now() + Duration::from_secs(5) > deadline {
                    return Err(PodOutcome::Blocked("namespace terminating".into()));
                }
                pause(shared, node, Duration::from_secs(5)).await?;
            }
            // The eviction API refuses a pod under two budgets: blocked, as the plan's refusal.
            EvictResult::MultiplePdbs { message } => return Err(PodOutcome::Blocked(message)),
            EvictResult::Error {
                message,
                transient: true,
                ..
            } => {
                let Ok(delay) = failures.next_delay(None) else {
                    return Err(PodOutcome::Transient(message));
                };
                pause(shared, node, delay).await?;
            }
            EvictResult::Error { message, code, .. } => {
                return Err(PodOutcome::Failed(format!(
                    "{} {message}",
                    code.map(|c| c.to_string()).unwrap_or_default()
                )));
            }
        }
    }
}
