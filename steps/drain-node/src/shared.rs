//! State shared by the node drains of one run: the client, settings, audit trail, SIGTERM, the
//! per-node leases, progress counters and the pods currently blocked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::Api;
use opsteps::audit::Auditor;
use opsteps::output::Output;
use opsteps::shutdown::Shutdown;
use serde::Serialize;
use tokio::time::Instant;

use crate::drain::Settings;
use crate::lease::Guard;
use crate::plan::PodPlan;

/// A pod that a budget (or a stuck deletion, or the plan) keeps on the node.
#[derive(Clone, Debug, Serialize)]
pub struct BlockedPod {
    /// `namespace/name`.
    pub pod: String,
    /// Its node.
    pub node: String,
    /// Its controller `Kind/name`.
    pub owner: Option<String>,
    /// The budget refusing the eviction, `namespace/name`.
    pub pdb: Option<String>,
    /// The budget's currentHealthy when last read.
    pub current_healthy: Option<i32>,
    /// The budget's desiredHealthy when last read.
    pub desired_healthy: Option<i32>,
    /// Seconds since the first refusal (0 for a plan refusal).
    pub seconds_blocked: u64,
    /// The API server's last answer, or the plan's reason.
    pub last_message: String,
    #[serde(skip)]
    since: Option<Instant>,
}

impl BlockedPod {
    /// A pod the plan refuses to evict.
    #[must_use]
    pub fn refused(node: &str, p: &PodPlan, reason: &str) -> Self {
        Self {
            pod: p.pod.clone(),
            node: node.to_owned(),
            owner: p.owner.clone(),
            pdb: p.pdb.clone(),
            current_healthy: None,
            desired_healthy: None,
            seconds_blocked: 0,
            last_message: reason.to_owned(),
            since: None,
        }
    }
}

/// Why a node's drain must stop now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM.
    Shutdown,
    /// The node's lease is no longer ours.
    LeaseLost(String),
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
    /// Who drains (the lease holder), named in Events.
    pub me: String,
    /// The lease of each node (none in a dry run).
    pub leases: BTreeMap<String, Guard>,
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
    /// Why `node`'s drain must stop, if it must: checked before every mutation.
    #[must_use]
    pub fn stop(&self, node: &str) -> Option<Stop> {
        if self.shutdown.is_requested() {
            return Some(Stop::Shutdown);
        }
        self.leases
            .get(node)
            .and_then(Guard::lost)
            .map(Stop::LeaseLost)
    }

    /// Completes when `node`'s drain must stop; for `select!` around waits.
    pub async fn stopped(&self, node: &str) -> Stop {
        let lost = async {
            match self.leases.get(node) {
                Some(g) => g.wait_lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.shutdown.requested() => Stop::Shutdown,
            why = lost => Stop::LeaseLost(why),
        }
    }

    pub fn progress(&self) {
        self.output.progress(
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
    }

    pub(crate) fn removed(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.progress();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BlockedPod>> {
        self.blockers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn blocked(&self, p: &PodPlan, node: &str, pdb: Option<String>, message: &str) {
        let mut b = self.lock();
        let entry = b.entry(p.pod.clone()).or_insert_with(|| BlockedPod {
            since: Some(Instant::now()),
            ..BlockedPod::refused(node, p, "")
        });
        entry.pdb = pdb.or_else(|| p.pdb.clone()).or(entry.pdb.take());
        message.clone_into(&mut entry.last_message);
    }

    pub(crate) fn last_message(&self, pod: &str) -> Option<String> {
        self.lock().get(pod).map(|b| b.last_message.clone())
    }

    pub(crate) fn unblocked(&self, pod: &str) {
        self.lock().remove(pod);
    }

    /// The current blockers, with their budgets' health read fresh.
    pub async fn blocker_report(&self) -> Vec<BlockedPod> {
        let mut list: Vec<BlockedPod> = self.lock().values().cloned().collect();
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
