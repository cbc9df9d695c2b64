//! Spending disruption budgets deliberately. One watch on every PodDisruptionBudget tells how
//! many disruptions each allows now; an eviction of a healthy pod waits for room in its budget
//! instead of probing the eviction endpoint and collecting 429s, and pods of one budget take
//! turns. The API server still decides: a 429 that slips through (a stale view) is retried.
//! Deleted budgets and relists are followed, so a pod waiting on a budget that is gone proceeds;
//! a watch request answered 410 starts a fresh list.

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
    /// The first list has arrived: a budget missing from `rooms` does not exist.
    listed: bool,
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

/// `namespace/name` and room of a budget: `status.disruptionsAllowed`, or 0 while its controller
/// has not observed its spec.
fn room_of(pdb: &PodDisruptionBudget) -> (String, Room) {
    let key = format!("{}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any());
    let observed =
        pdb.status.as_ref().and_then(|s| s.observed_generation) >= pdb.metadata.generation;
    let allowed = if observed {
        pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)
    } else {
        0
    };
    (key, Room { allowed, spent: 0 })
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
            let mut refusals = 0;
            loop {
                let mut stream = std::pin::pin!(
                    watcher(api.clone(), watcher::Config::default()).default_backoff()
                );
                let mut relist: Option<HashMap<String, Room>> = None;
                while let Some(ev) = stream.next().await {
                    let Some(me) = weak.upgrade() else { return };
                    match ev {
                        Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
                        Ok(watcher::Event::InitApply(pdb)) => {
                            let (k, room) = room_of(&pdb);
                            relist.get_or_insert_with(HashMap::new).insert(k, room);
                        }
                        Ok(watcher::Event::InitDone) => {
                            refusals = 0;
                            // A relist replaces everything: budgets deleted meanwhile are gone.
                            me.replace_all(relist.take().unwrap_or_default());
                        }
                        Ok(watcher::Event::Apply(pdb)) => me.update(&pdb),
                        Ok(watcher::Event::Delete(pdb)) => me.remove(&pdb),
                        Err(e) if opsteps::evict::is_gone(&e) => break,
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
                tracing::debug!("budget watch answered 410; re-listing");
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
        let (key, room) = room_of(pdb);
        // A new status already counts the evictions that were accepted before it was written.
        self.lock().rooms.insert(key, room);
        self.changed.send_modify(|v| *v += 1);
    }

    fn remove(&self, pdb: &PodDisruptionBudget) {
        let (key, _) = room_of(pdb);
        self.lock().rooms.remove(&key);
        self.changed.send_modify(|v| *v += 1);
    }

    fn replace_all(&self, rooms: HashMap<String, Room>) {
        let mut st = self.lock();
        st.rooms = rooms;
        st.listed = true;
        drop(st);
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
                let listed = st.listed;
                match st.rooms.get_mut(pdb) {
                    Some(r) if r.allowed - r.spent > 0 => {
                        r.spent += 1;
                        return Ok(Reservation {
                            budgets: self.clone(),
                            pdb: Some(pdb.to_owned()),
                        });
                    }
                    // A budget that does not exist (deleted since the plan): nothing to wait
                    // for; the API server decides.
                    None if listed => {
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
