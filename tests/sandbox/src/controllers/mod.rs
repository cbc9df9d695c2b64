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
pub mod kubelet;
pub mod namespace;
pub mod node;
pub mod pdb;
pub mod pods;
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

/// One controller pass's context: virtual now, the earliest timer any controller set, and
/// indexes valid while the store's resourceVersion stays the same.
pub struct Ctx {
    /// Virtual now.
    pub now: Timestamp,
    /// Virtual now, RFC 3339 (whole seconds).
    pub now_str: String,
    /// Earliest time some controller must run again even if nothing changes.
    pub due: Option<Timestamp>,
    owner_index: Option<(u64, std::sync::Arc<OwnerIndex>)>,
}

impl Ctx {
    /// A context at `now`.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            now_str: crate::clock::rfc3339(now),
            due: None,
            owner_index: None,
        }
    }

    /// Pods by controller UID, rebuilt only when the store changed since the last call.
    pub fn pods_by_owner(&mut self, store: &crate::store::Store) -> std::sync::Arc<OwnerIndex> {
        let rv = store.resource_version();
        if let Some((at, idx)) = &self.owner_index
            && *at == rv
        {
            return idx.clone();
        }
        let idx = std::sync::Arc::new(pods::by_owner(store));
        self.owner_index = Some((rv, idx.clone()));
        idx
    }

    /// Asks for another pass at `t` (if it is the earliest so far).
    pub fn wake_at(&mut self, t: Timestamp) {
        util::earliest(&mut self.due, t);
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
    if before == cluster.world.seen_rv && cluster.world.next_due.is_none_or(|d| now < d) {
        return true;
    }
    let mut ctx = Ctx::new(now);
    pass(cluster, &mut ctx);
    let after = cluster.store.resource_version();
    cluster.world.next_due = ctx.due;
    if after == before {
        cluster.world.seen_rv = after;
        true
    } else {
        // Something changed: the next step must run even if nothing else does.
        cluster.world.seen_rv = 0;
        false
    }
}

/// One pass of every controller, in an order that lets most changes settle in one pass.
fn pass(cluster: &mut Cluster, ctx: &mut Ctx) {
    namespace::run(cluster, ctx);
    node::run(cluster, ctx);
    kubelet::run_static_pods(cluster, ctx);
    gc::run(cluster, ctx);
    deployment::run(cluster, ctx);
    replicaset::run(cluster, ctx);
    statefulset::run(cluster, ctx);
    daemonset::run(cluster, ctx);
    scheduler::run(cluster, ctx);
    kubelet::run(cluster, ctx);
    pdb::run(cluster, ctx);
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
                        step(&mut cluster);
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
