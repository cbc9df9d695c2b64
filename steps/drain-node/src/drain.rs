//! Draining one node: evict its pods (non-critical first, `system-*-critical` last) with a bound
//! on in-flight eviction requests, retry PDB refusals (429) with jittered backoff that honours
//! Retry-After, and await each deletion by UID through one watch on the node's pods.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use opsteps::audit::Auditor;
use opsteps::cli::DryRun;
use opsteps::events::{self, EventType};
use opsteps::evict::{self, EvictOptions, EvictResult, PodWatch};
use opsteps::output::Output;
use opsteps::shutdown::Shutdown;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::plan::{NodePlan, PodPlan, Verdict};

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

/// A pod that a budget (or a stuck deletion) keeps on the node.
#[derive(Clone, Debug, Serialize)]
pub struct BlockedPod {
    /// `namespace/name`.
    pub pod: String,
    /// Its node.
    pub node: String,
    /// Its controller `Kind/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The budget refusing the eviction, `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    /// The budget's currentHealthy when last read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_healthy: Option<i32>,
    /// The budget's desiredHealthy when last read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_healthy: Option<i32>,
    /// Seconds since the first refusal.
    pub seconds_blocked: u64,
    /// The API server's last answer.
    pub last_message: String,
    #[serde(skip)]
    since: Option<Instant>,
}

/// State shared by the node drains of one run.
pub struct Shared {
    /// Client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// Audit trail.
    pub audit: Arc<Auditor>,
    /// SIGTERM.
    pub shutdown: Shutdown,
    /// Progress output.
    pub output: Output,
    /// Pods removed so far.
    pub done: AtomicU64,
    /// Pods to remove in all.
    pub total: AtomicU64,
    /// Pods currently blocked, by `namespace/name`.
    pub blockers: std::sync::Mutex<BTreeMap<String, BlockedPod>>,
    /// The budgets' room, from a watch.
    pub budgets: Arc<crate::budgets::Budgets>,
}

impl Shared {
    fn progress(&self) {
        self.output.progress(
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
    }

    fn blocked(&self, p: &PodPlan, node: &str, pdb: Option<String>, message: &str) {
        let mut b = self
            .blockers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = b.entry(p.pod.clone()).or_insert_with(|| BlockedPod {
            pod: p.pod.clone(),
            node: node.to_owned(),
            owner: p.owner.clone(),
            pdb: None,
            current_healthy: None,
            desired_healthy: None,
            seconds_blocked: 0,
            last_message: String::new(),
            since: Some(Instant::now()),
        });
        entry.pdb = pdb.or_else(|| p.pdb.clone()).or(entry.pdb.take());
        message.clone_into(&mut entry.last_message);
    }

    fn last_message(&self, pod: &str) -> Option<String> {
        self.blockers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(pod)
            .map(|b| b.last_message.clone())
    }

    fn unblocked(&self, pod: &str) {
        self.blockers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(pod);
    }

    /// The current blockers, with their budgets' health read fresh.
    pub async fn blocker_report(&self) -> Vec<BlockedPod> {
        let mut list: Vec<BlockedPod> = self
            .blockers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for b in &mut list {
            b.seconds_blocked = b.since.map_or(0, |s| s.elapsed().as_secs());
            if let Some((ns, name)) = b.pdb.as_deref().and_then(|p| p.split_once('/')) {
                let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
                if let Ok(Some(pdb)) = api.get_opt(name).await
                    && let Some(st) = pdb.status
                {
                    b.current_healthy = Some(st.current_healthy);
                    b.desired_healthy = Some(st.desired_healthy);
                }
            }
        }
        list
    }
}

/// How one pod ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodOutcome {
    /// Gone from the node (evicted and deleted, or already gone).
    Removed,
    /// A dry run's verdict.
    DryRun(String),
    /// Refused by a budget until the deadline.
    Blocked(String),
    /// Evicted but still terminating at the deadline.
    StuckTerminating(String),
    /// Refused for good (two PDBs, an error that retrying will not fix).
    Failed(String),
    /// A transient error persisted.
    Transient(String),
    /// SIGTERM.
    Interrupted,
}

/// How one node ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Every pod is gone.
    Drained,
    /// A dry run finished.
    DryRun,
    /// Budgets kept pods on the node until the deadline.
    Blocked,
    /// Evicted pods did not terminate before the deadline.
    TimedOut,
    /// Some pod failed for good.
    Failed,
    /// Transient errors persisted.
    Transient,
    /// Interrupted by SIGTERM.
    Interrupted,
    /// Not attempted (an earlier node's replacements were not ready, or SIGTERM).
    NotStarted,
}

/// One node's result.
#[derive(Clone, Debug, Serialize)]
pub struct NodeResult {
    /// Node name.
    pub node: String,
    /// Outcome.
    pub status: NodeStatus,
    /// Pods removed (or, in a dry run, that would be).
    pub evicted: Vec<String>,
    /// Pods that did not go, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_evicted: Vec<(String, String)>,
    /// Dry-run verdicts per pod.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dry_run: BTreeMap<String, String>,
}

/// Drains one node according to its plan.
pub async fn drain_node(shared: &Arc<Shared>, plan: &NodePlan) -> NodeResult {
    let node = plan.node.as_str();
    let deadline = shared
        .settings
        .timeout
        .map_or_else(far_future, |t| Instant::now() + t);
    let watch = PodWatch::start(
        Api::all(shared.client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
    );
    let sem = Semaphore::new(shared.settings.max_in_flight.max(1));
    let (normal, critical): (Vec<&PodPlan>, Vec<&PodPlan>) =
        plan.to_remove().partition(|p| !p.critical);
    let mut result = NodeResult {
        node: node.to_owned(),
        status: NodeStatus::Drained,
        evicted: Vec::new(),
        not_evicted: Vec::new(),
        dry_run: BTreeMap::new(),
    };
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
            match o {
                PodOutcome::Removed => result.evicted.push(p.pod.clone()),
                PodOutcome::DryRun(v) => {
                    if v == "evicted" {
                        result.evicted.push(p.pod.clone());
                    }
                    result.dry_run.insert(p.pod.clone(), v);
                }
                other => {
                    let (status, why) = match other {
                        PodOutcome::Blocked(m) => (NodeStatus::Blocked, m),
                        PodOutcome::StuckTerminating(m) => (NodeStatus::TimedOut, m),
                        PodOutcome::Failed(m) => (NodeStatus::Failed, m),
                        PodOutcome::Transient(m) => (NodeStatus::Transient, m),
                        _ => (NodeStatus::Interrupted, "interrupted by SIGTERM".to_owned()),
                    };
                    result.status = worse(result.status, status);
                    result.not_evicted.push((p.pod.clone(), why));
                }
            }
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
        for (pod, v) in &result.dry_run {
            if v != "evicted" {
                result.not_evicted.push((pod.clone(), v.clone()));
            }
        }
    }
    result
}

/// How often a wait for a deletion double-checks with a GET.
const RECHECK: Duration = Duration::from_secs(10);

/// kubectl's `--timeout 0`: no deadline (a century is as good as none, and keeps `Instant` math
/// simple).
fn far_future() -> Instant {
    Instant::now() + Duration::from_hours(24 * 365 * 100)
}

fn rank(s: NodeStatus) -> u8 {
    match s {
        NodeStatus::Drained | NodeStatus::DryRun => 0,
        NodeStatus::NotStarted => 1,
        NodeStatus::Interrupted => 2,
        NodeStatus::Transient => 3,
        NodeStatus::TimedOut => 4,
        NodeStatus::Blocked => 5,
        NodeStatus::Failed => 6,
    }
}

fn worse(a: NodeStatus, b: NodeStatus) -> NodeStatus {
    if rank(b) > rank(a) { b } else { a }
}

/// Jittered exponential backoff for PDB refusals: 1 s doubling to 10 s, ±50%, at least the
/// server's Retry-After.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1 << attempt.min(4))
        .min(Duration::from_secs(10));
    let jittered = base.mul_f64(rand::rng().random_range(0.5..1.5));
    retry_after.map_or(jittered, |ra| jittered.max(ra))
}

async fn remove_pod(
    shared: &Arc<Shared>,
    watch: &PodWatch,
    sem: &Semaphore,
    node: &str,
    p: &PodPlan,
    deadline: Instant,
) -> PodOutcome {
    let uid = p.object.uid().unwrap_or_default();
    if !matches!(p.verdict, Verdict::Wait)
        && let Err(outcome) =
            evict_until_accepted(shared, watch, sem, node, p, &uid, deadline).await
    {
        if outcome == PodOutcome::Removed {
            shared.done.fetch_add(1, Ordering::Relaxed);
            shared.progress();
        }
        return outcome;
    }
    let wanted = HashSet::from([uid.clone()]);
    let (ns, name) = p.pod.split_once('/').unwrap_or(("", &p.pod));
    let pods: kube::Api<Pod> = kube::Api::namespaced(shared.client.clone(), ns);
    let remaining = loop {
        // The watch is the signal; a GET every 10 s is the safety net, so a missed DELETED
        // event (a watch resumed across a gap) costs seconds, not the whole --timeout.
        let slice = deadline.min(Instant::now() + RECHECK);
        let remaining = tokio::select! {
            r = watch.wait_gone(&wanted, shared.settings.skip_wait, slice) => match r {
                Ok(r) => r,
                Err(e) => return PodOutcome::Failed(format!("cannot watch the pods of node {node}: {e}")),
            },
            () = shared.shutdown.requested() => return PodOutcome::Interrupted,
        };
        if remaining.is_empty() || Instant::now() >= deadline {
            break remaining;
        }
        match pods.get_opt(name).await {
            Ok(None) => break HashSet::new(),
            Ok(Some(current)) if current.uid().as_deref() != Some(uid.as_str()) => {
                break HashSet::new();
            }
            _ => {}
        }
    };
    if remaining.is_empty() {
        shared.done.fetch_add(1, Ordering::Relaxed);
        shared.progress();
        tracing::info!(pod = %p.pod, node, "pod evicted");
        PodOutcome::Removed
    } else {
        PodOutcome::StuckTerminating("evicted but still terminating at the deadline".into())
    }
}

/// Sends the eviction (or deletion) until the server accepts it: `Ok(())` means "now wait for
/// the pod to go"; `Err` is the pod's final outcome (gone already, refused until the deadline,
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
) -> Result<(), PodOutcome> {
    let (ns, name) = p.pod.split_once('/').unwrap_or(("", &p.pod));
    let settings = &shared.settings;
    if settings.dry_run == DryRun::Client {
        return Err(PodOutcome::DryRun("evicted".into()));
    }
    let opts = EvictOptions {
        grace_period_seconds: settings.grace_period,
        dry_run: settings.dry_run == DryRun::Server,
        uid: Some(uid.to_owned()).filter(|u| !u.is_empty()),
    };
    let mut attempt = 0u32;
    loop {
        if shared.shutdown.is_requested() {
            return Err(PodOutcome::Interrupted);
        }
        // A healthy pod under a budget waits for room instead of collecting 429s. Unhealthy
        // pods may be evictable without room (unhealthyPodEvictionPolicy), so they just try.
        let mut reservation = None;
        if let Some(pdb) = p
            .pdb
            .as_deref()
            .filter(|_| !settings.disable_eviction && !opts.dry_run && evict::is_ready(&p.object))
        {
            let waiting = || {
                shared.blocked(
                    p,
                    node,
                    Some(pdb.to_owned()),
                    &format!("waiting for PodDisruptionBudget {pdb} to allow a disruption"),
                );
            };
            match shared
                .budgets
                .reserve(pdb, deadline, &shared.shutdown, waiting)
                .await
            {
                Ok(r) => reservation = Some(r),
                Err(crate::budgets::NoRoom::Shutdown) => return Err(PodOutcome::Interrupted),
                Err(crate::budgets::NoRoom::Failed(e)) => {
                    return Err(PodOutcome::Failed(format!(
                        "cannot watch PodDisruptionBudgets: {e}"
                    )));
                }
                Err(crate::budgets::NoRoom::Deadline) => {
                    let last = shared.last_message(&p.pod).unwrap_or_else(|| {
                        format!("PodDisruptionBudget {pdb} allowed no disruption")
                    });
                    return Err(PodOutcome::Blocked(format!(
                        "still refused at the deadline: {last}"
                    )));
                }
            }
        }
        let permit = sem.acquire().await;
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
                return Ok(());
            }
            EvictResult::Gone | EvictResult::Replaced => {
                shared.unblocked(&p.pod);
                return Err(PodOutcome::Removed);
            }
            EvictResult::Blocked {
                message,
                pdb,
                retry_after,
            } => {
                if attempt == 0 {
                    // One Event per blocked pod, where `kubectl describe pod` shows it; evicted
                    // pods are listed on the node's Drained Event instead (they are gone).
                    events::record(
                        &shared.client,
                        &shared.audit,
                        crate::STEP,
                        &p.object,
                        EventType::Warning,
                        "EvictionBlocked",
                        &format!("drain of node {node}: {message}"),
                    )
                    .await;
                }
                shared.blocked(p, node, pdb.map(|n| format!("{ns}/{n}")), &message);
                let delay = backoff(attempt, retry_after);
                attempt += 1;
                if Instant::now() + delay > deadline {
                    return Err(PodOutcome::Blocked(format!(
                        "still refused at the deadline: {message}"
                    )));
                }
                tracing::info!(pod = %p.pod, node, retry_in_ms = delay.as_millis() as u64, message = %message, "eviction refused by a disruption budget; will retry");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.shutdown.requested() => return Err(PodOutcome::Interrupted),
                }
                // Gone meanwhile (deleted by someone else, or its node lost it)?
                let present = watch.present(&HashSet::from([uid.to_owned()]), None).await;
                if present.as_ref().is_ok_and(|p| !p.contains(uid)) {
                    shared.unblocked(&p.pod);
                    return Err(PodOutcome::Removed);
                }
            }
            EvictResult::NamespaceTerminating => {
                // kubectl: wait if the pod is already being deleted, else retry in 5 s.
                let snap = watch.snapshot().await.unwrap_or_default();
                if snap
                    .get(&p.pod)
                    .is_some_and(|(u, del)| u == uid && del.is_some())
                {
                    return Ok(());
                }
                shared.blocked(p, node, None, "namespace is terminating");
                if Instant::now() + Duration::from_secs(5) > deadline {
                    return Err(PodOutcome::Blocked("namespace terminating".into()));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            EvictResult::MultiplePdbs { message } => return Err(PodOutcome::Failed(message)),
            EvictResult::Error {
                message,
                transient: true,
                ..
            } => {
                let delay = backoff(attempt, None);
                attempt += 1;
                if attempt > 8 || Instant::now() + delay > deadline {
                    return Err(PodOutcome::Transient(message));
                }
                tokio::time::sleep(delay).await;
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

/// A workload whose pods were evicted: `(namespace, kind, name)`.
pub type Owner = (String, String, String);

/// The owners to wait for after draining a node: ReplicaSets resolve to their Deployment.
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

/// Waits until every owner has its available replica count back, or `timeout`. Returns the
/// owners still short.
pub async fn wait_for_replacements(
    client: &Client,
    owners: &BTreeSet<Owner>,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut short = Vec::new();
        for (ns, kind, name) in owners {
            let (want, have) = match kind.as_str() {
                "Deployment" => {
                    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                    api.get_opt(name).await.ok().flatten().map_or((0, 0), |d| {
                        (
                            d.spec.and_then(|s| s.replicas).unwrap_or(1),
                            d.status.and_then(|s| s.available_replicas).unwrap_or(0),
                        )
                    })
                }
                "StatefulSet" => {
                    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                    api.get_opt(name).await.ok().flatten().map_or((0, 0), |s| {
                        let st = s.status.unwrap_or_default();
                        (
                            s.spec.and_then(|sp| sp.replicas).unwrap_or(1),
                            st.available_replicas
                                .unwrap_or(st.ready_replicas.unwrap_or(0)),
                        )
                    })
                }
                _ => {
                    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
                    api.get_opt(name).await.ok().flatten().map_or((0, 0), |r| {
                        (
                            r.spec.and_then(|s| s.replicas).unwrap_or(1),
                            r.status.and_then(|s| s.available_replicas).unwrap_or(0),
                        )
                    })
                }
            };
            if have < want {
                short.push(format!("{kind} {ns}/{name}: {have}/{want} available"));
            }
        }
        if short.is_empty() || Instant::now() >= deadline || shutdown.is_requested() {
            return short;
        }
        tracing::info!(waiting_for = ?short, "waiting for replacements before the next node");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
