//! Spending disruption budgets deliberately. One watch on every PodDisruptionBudget tells how
//! many disruptions each allows now; an eviction of a healthy pod waits for room in its budget
//! instead of probing the eviction endpoint and collecting 429s, and pods of one budget take
//! turns. The API server still decides: a 429 that slips through (a stale view) is retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

#[derive(Debug, Default)]
struct State {
    rooms: HashMap<String, Room>,
    /// Set when the API server refuses the watch for good (401/403).
    failed: Option<String>,
}

/// The budgets' room, kept current by a watch.
#[derive(Debug)]
pub struct Budgets {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Budgets {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }
}

/// Waiting for room ended without it.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// The deadline came first.
    Deadline,
    /// The step is shutting down.
    Shutdown,
    /// The budgets cannot be watched (credentials or RBAC).
    Failed(String),
}

/// One reserved disruption; given back on drop unless the eviction was accepted.
#[derive(Debug)]
pub struct Reservation {
    budgets: Arc<Budgets>,
    pdb: Option<String>,
}

impl Reservation {
    /// The eviction was accepted: the room stays spent until the budget's next status.
    pub fn spend(mut self) {
        self.pdb = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(pdb) = self.pdb.take() {
            let mut st = self.budgets.lock();
            if let Some(r) = st.rooms.get_mut(&pdb) {
                r.spent = (r.spent - 1).max(0);
            }
            drop(st);
            self.budgets.changed.send_modify(|v| *v += 1);
        }
    }
}

impl Budgets {
    /// Starts watching every PodDisruptionBudget.
    #[must_use]
    pub fn start(client: Client) -> Arc<Self> {
        let (tx, _) = watch::channel(0u64);
        let me = Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: tx,
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&me);
        let api: Api<PodDisruptionBudget> = Api::all(client);
        let task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            let mut refusals = 0;
            while let Some(ev) = stream.next().await {
                let Some(me) = weak.upgrade() else { return };
                match ev {
                    Ok(watcher::Event::Apply(pdb) | watcher::Event::InitApply(pdb)) => {
                        refusals = 0;
                        me.update(&pdb);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(msg) = opsteps::evict::fatal_watch_error(&e) {
                            refusals += 1;
                            if refusals >= 3 {
                                me.lock().failed = Some(msg);
                                me.changed.send_modify(|v| *v += 1);
                                return;
                            }
                        }
                    }
                }
            }
        });
        *me.task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.lock().rooms.insert(key, Room { allowed, spent: 0 });
        self.changed.send_modify(|v| *v += 1);
    }

    /// Disruptions `pdb` allows now, as last seen (None before the first list).
    #[must_use]
    pub fn allowed(&self, pdb: &str) -> Option<i32> {
        self.lock().rooms.get(pdb).map(|r| r.allowed - r.spent)
    }

    /// Waits until `pdb` has room for one more disruption and reserves it. `on_wait` runs once
    /// if the budget has no room at first.
    pub async fn reserve(
        self: &Arc<Self>,
        pdb: &str,
        deadline: Instant,
        shutdown: &opsteps::shutdown::Shutdown,
        on_wait: impl FnOnce(),
    ) -> Result<Reservation, NoRoom> {
        let mut rx = self.changed.subscribe();
        let mut on_wait = Some(on_wait);
        loop {
            {
                let mut st = self.lock();
                if let Some(e) = &st.failed {
                    return Err(NoRoom::Failed(e.clone()));
                }
                match st.rooms.get_mut(pdb) {
                    Some(r) if r.allowed - r.spent > 0 => {
                        r.spent += 1;
                        return Ok(Reservation {
                            budgets: self.clone(),
                            pdb: Some(pdb.to_owned()),
                        });
                    }
                    // Unknown budget (not listed yet, or deleted): let the API server decide.
                    None if *rx.borrow() > 0 => {
                        return Ok(Reservation {
                            budgets: self.clone(),
                            pdb: None,
                        });
                    }
                    _ => {}
                }
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Ok(Reservation { budgets: self.clone(), pdb: None }) },
                () = tokio::time::sleep_until(deadline) => return Err(NoRoom::Deadline),
                () = shutdown.requested() => return Err(NoRoom::Shutdown),
            }
        }
    }
}
