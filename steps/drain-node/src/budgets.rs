//! Spending disruption budgets deliberately. One watch on every PodDisruptionBudget tells how
//! many disruptions each allows now; an eviction of a healthy pod waits for room in its budget
//! instead of probing the eviction endpoint and collecting 429s, and pods of one budget take
//! turns. The API server still decides: a 429 that slips through (a stale view) is retried.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Default, Clone, Copy)]
struct Room {
    /// `status.disruptionsAllowed`, or 0 while the controller has not observed the spec.
    allowed: i32,
    /// Disruptions reserved since that status was written.
    spent: i32,
}

/// The budgets' room, kept current by a watch.
#[derive(Debug)]
pub struct Budgets {
    rooms: Mutex<HashMap<String, Room>>,
    changed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Budgets {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waiting for room ended without it.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// The deadline came first.
    Deadline,
    /// The step is shutting down.
    Shutdown,
}

impl Budgets {
    /// Starts watching every PodDisruptionBudget.
    #[must_use]
    pub fn start(client: Client) -> std::sync::Arc<Self> {
        let (tx, _) = watch::channel(0u64);
        std::sync::Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let weak = weak.clone();
            let api: Api<PodDisruptionBudget> = Api::all(client);
            let task = tokio::spawn(async move {
                let mut stream = std::pin::pin!(
                    watcher(api, watcher::Config::default())
                        .default_backoff()
                        .applied_objects()
                );
                while let Some(ev) = stream.next().await {
                    let Ok(pdb) = ev else { continue };
                    let Some(me) = weak.upgrade() else { return };
                    me.update(&pdb);
                }
            });
            Self {
                rooms: Mutex::new(HashMap::new()),
                changed: tx,
                task,
            }
        })
    }

    fn update(&self, pdb: &PodDisruptionBudget) {
        let key = format!("{}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any());
        let observed =
            pdb.status.as_ref().and_then(|s| s.observed_generation) >= pdb.metadata.generation;
        let allowed = if observed {
            pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)
        } else {
            0
        };
        // A new status already counts the evictions that were accepted before it was written.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, Room { allowed, spent: 0 });
        self.changed.send_modify(|v| *v += 1);
    }

    /// Disruptions `pdb` allows now, as last seen (None before the first list).
    #[must_use]
    pub fn allowed(&self, pdb: &str) -> Option<i32> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(pdb)
            .map(|r| r.allowed - r.spent)
    }

    /// Waits until `pdb` has room for one more disruption and reserves it.
    /// `on_wait` runs once if the budget has no room at first.
    pub async fn reserve(
        &self,
        pdb: &str,
        deadline: Instant,
        shutdown: &opsteps::shutdown::Shutdown,
        on_wait: impl FnOnce(),
    ) -> Result<(), NoRoom> {
        let mut rx = self.changed.subscribe();
        let mut on_wait = Some(on_wait);
        loop {
            {
                let mut rooms = self
                    .rooms
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match rooms.get_mut(pdb) {
                    Some(r) if r.allowed - r.spent > 0 => {
                        r.spent += 1;
                        return Ok(());
                    }
                    // Unknown budget (not listed yet, or deleted): let the API server decide.
                    None if *rx.borrow() > 0 => return Ok(()),
                    _ => {}
                }
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Ok(()) },
                () = tokio::time::sleep_until(deadline) => return Err(NoRoom::Deadline),
                () = shutdown.requested() => return Err(NoRoom::Shutdown),
            }
        }
    }
}
