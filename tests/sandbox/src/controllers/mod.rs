//! The controllers of the simulated cluster, each a function over `&mut Cluster` run on the
//! virtual clock: node lifecycle, kubelet (incl. static pods), scheduler, ReplicaSet, Deployment,
//! StatefulSet, DaemonSet, PodDisruptionBudget, garbage collector and namespace lifecycle.
//!
//! [`step`] runs one pass of all of them; [`tick`] runs passes until the store stops changing.
//! Both return at once when nothing changed since the last pass and no timer (start-up,
//! readiness, grace period, PDB `disruptedPods` expiry, node schedule) is due, so an idle cluster
//! of any size costs nothing. The background loop ([`spawn`]) runs one step per tick.

pub mod daemonset;
pub mod deployment;
pub mod gc;
pub mod hpa;
pub mod kubelet;
pub mod namespace;
pub mod node;
pub mod pdb;
pub mod pods;
pub mod recorder;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;
pub mod util;

use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, Shared};

/// Real time between ticks of the background loop.
pub const TICK: Duration = Duration::from_millis(5);

/// Passes per [`tick`] before giving up on settling (the next tick continues).
const MAX_PASSES: usize = 12;

/// Pods by the UID of their controller.
pub type OwnerIndex = std::collections::HashMap<String, Vec<std::sync::Arc<serde_json::Value>>>;

/// One controller pass's context: virtual now, the namespaces whose objects changed (the
/// pass's scope), timers the controllers set, and indexes valid while the store's
/// resourceVersion stays the same.
pub struct Ctx {
    /// Virtual now.
    pub now: Timestamp,
    /// Virtual now, RFC 3339 (whole seconds).
    pub now_str: String,
    /// Namespaces to reconcile; `None` means all (cluster-scoped changes, due global timers,
    /// the first pass, or a watch lag).
    pub dirty: Option<std::collections::HashSet<String>>,
    /// Timers set in this pass: at the time, reconcile the namespace (`None`: everything).
    pub timers: Vec<(Timestamp, Option<String>)>,
    owner_index: Option<(u64, std::sync::Arc<OwnerIndex>)>,
}

impl Ctx {
    /// A context at `now` reconciling everything.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            now_str: crate::clock::rfc3339(now),
            dirty: None,
            timers: Vec::new(),
            owner_index: None,
        }
    }

    /// Whether objects of namespace `ns` are reconciled in this pass.
    #[must_use]
    pub fn in_scope(&self, ns: &str) -> bool {
        self.dirty.as_ref().is_none_or(|d| d.contains(ns))
    }

    /// The pods of the namespaces in scope.
    #[must_use]
    pub fn pods_in_scope(
        &self,
        store: &crate::store::Store,
    ) -> Vec<std::sync::Arc<serde_json::Value>> {
        let pods = crate::resources::well_known::pods();
        match &self.dirty {
            None => store.list(pods, None).cloned().collect(),
            Some(d) => d
                .iter()
                .flat_map(|ns| store.list(pods, Some(ns)).cloned())
                .collect(),
        }
    }

    /// Pods (of the namespaces in scope) by controller UID, rebuilt only when the store changed
    /// since the last call.
    pub fn pods_by_owner(&mut self, store: &crate::store::Store) -> std::sync::Arc<OwnerIndex> {
        let rv = store.resource_version();
        if let Some((at, idx)) = &self.owner_index
            && *at == rv
        {
            return idx.clone();
        }
        let mut idx = OwnerIndex::new();
        for p in self.pods_in_scope(store) {
            if let Some(uid) = crate::podutil::controller_ref(&p).and_then(|r| r["uid"].as_str()) {
                idx.entry(uid.to_owned()).or_default().push(p.clone());
            }
        }
        let idx = std::sync::Arc::new(idx);
        self.owner_index = Some((rv, idx.clone()));
        idx
    }

    /// Asks for a pass over everything at `t`.
    pub fn wake_at(&mut self, t: Timestamp) {
        self.timers.push((t, None));
    }

    /// Asks for a pass over namespace `ns` at `t`.
    pub fn wake_ns(&mut self, t: Timestamp, ns: &str) {
        self.timers.push((t, Some(ns.to_owned())));
    }
}

/// Runs every controller until the store settles. Deterministic: tests call it directly after
/// `clock.advance(..)`, without a server.
pub fn tick(cluster: &mut Cluster) {
    for _ in 0..MAX_PASSES {
        if step(cluster) {
            break;
        }
    }
}

/// One pass of every controller, unless nothing changed and no timer is due. Returns whether
/// the cluster is settled (the pass wrote nothing). The background loop runs one step per tick
/// and releases the lock in between, so API requests wait for at most one pass.
pub fn step(cluster: &mut Cluster) -> bool {
    if cluster.world.controllers_disabled {
        return true;
    }
    let now = cluster.clock.now();
    let before = cluster.store.resource_version();
    let world = &mut cluster.world;
    let due = world
        .timers
        .first_key_value()
        .is_some_and(|(t, _)| *t <= now);
    if before == world.seen_rv && !due && !world.force_full {
        return true;
    }
    // The pass's scope: namespaces of the objects that changed since the last pass, and of the
    // timers now due; everything after cluster-scoped changes or when events were missed.
    let mut all = std::mem::take(&mut world.force_full);
    let mut dirty = std::collections::HashSet::new();
    match &mut world.events {
        None => {
            world.events = Some(cluster.store.subscribe());
            all = true;
        }
        Some(rx) => loop {
            match rx.try_recv() {
                Ok(ev) => classify(&ev, &mut dirty, &mut all),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => all = true,
                Err(_) => break,
            }
        },
    }
    while let Some(entry) = world.timers.first_entry() {
        if *entry.key() > now {
            break;
        }
        for ns in entry.remove() {
            match ns {
                None => all = true,
                Some(ns) => {
                    dirty.insert(ns);
                }
            }
        }
    }
    let mut ctx = Ctx::new(now);
    ctx.dirty = if all { None } else { Some(dirty) };
    pass(cluster, &mut ctx);
    for (t, ns) in ctx.timers {
        cluster.world.timers.entry(t).or_default().insert(ns);
    }
    let after = cluster.store.resource_version();
    if after == before {
        cluster.world.seen_rv = after;
        true
    } else {
        // Our own writes are events too: the next step reconciles what they touched.
        cluster.world.seen_rv = 0;
        false
    }
}

/// Which namespaces (or everything) a store event makes dirty.
fn classify(
    ev: &crate::store::WatchEvent,
    dirty: &mut std::collections::HashSet<String>,
    all: &mut bool,
) {
    match ev.resource.key() {
        "pods"
        | "persistentvolumeclaims"
        | "replicasets.apps"
        | "deployments.apps"
        | "statefulsets.apps"
        | "daemonsets.apps"
        | "controllerrevisions.apps"
        | "poddisruptionbudgets.policy"
        | "horizontalpodautoscalers.autoscaling" => {
            let ns = ev.object["metadata"]["namespace"].as_str().unwrap_or("");
            if !dirty.contains(ns) {
                dirty.insert(ns.to_owned());
            }
        }
        "nodes" | "namespaces" | "priorityclasses.scheduling.k8s.io" => *all = true,
        // Leases, events, config and RBAC objects do not affect the controllers.
        _ => {}
    }
}

/// One pass of every controller, in an order that lets most changes settle in one pass.
fn pass(cluster: &mut Cluster, ctx: &mut Ctx) {
    namespace::run(cluster, ctx);
    node::run(cluster, ctx);
    kubelet::run_static_pods(cluster, ctx);
    gc::run(cluster, ctx);
    let replicas = recorder::replicas_before(cluster, ctx);
    deployment::run(cluster, ctx);
    recorder::scaling(cluster, ctx, &replicas);
    let rs_pods = recorder::rs_pods_before(cluster, ctx);
    replicaset::run(cluster, ctx);
    recorder::deletions(cluster, ctx, &rs_pods);
    statefulset::run(cluster, ctx);
    daemonset::run(cluster, ctx);
    scheduler::run(cluster, ctx);
    kubelet::run(cluster, ctx);
    pdb::run(cluster, ctx);
    hpa::run(cluster, ctx);
}

/// The background loop: a tick every [`TICK`] of real time until `shutdown`.
#[must_use]
pub fn spawn(shared: Shared, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {
                    let started = std::time::Instant::now();
                    {
                        let mut cluster = shared.lock();
                        // A controller bug on an odd object must not stop the world silently:
                        // log it and keep ticking (the next pass retries).
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&mut cluster)));
                        if let Err(panic) = result {
                            let what = panic
                                .downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| panic.downcast_ref::<&str>().copied())
                                .unwrap_or("unknown panic");
                            tracing::error!(panic = what, "controller pass panicked");
                        }
                    }
                    // A full pass over a very large cluster holds the lock for a while; leave the
                    // API at least as much time as the pass took.
                    let took = started.elapsed();
                    if took > TICK {
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(took) => {}
                        }
                    }
                }
            }
        }
    })
}
