//! Watching a set of pods until given UIDs are gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::key;

/// The pods a watch currently sees: `namespace/name` → (UID, deletion time).
pub type PodSet = HashMap<String, (String, Option<jiff::Timestamp>)>;

/// Why a [`PodWatch`] cannot answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The API server refuses the watch for good (401/403): waiting would only hang.
    #[error("the API server refuses the pod watch: {0}")]
    Refused(String),
    /// The first list did not arrive before the deadline (the API server is unhealthy).
    #[error("the pods were not listed before the deadline")]
    NotListed,
}

/// A watch over a set of pods (one node's, for example) that answers "are these UIDs gone?"
/// without polling each pod. Stops when dropped.
#[derive(Debug)]
pub struct PodWatch {
    rx: watch::Receiver<WatchState>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`PodWatch`] knows.
#[derive(Clone, Debug)]
enum WatchState {
    /// The first list has not arrived.
    Pending,
    /// The pods seen now.
    Ready(Arc<PodSet>),
    /// The API server refuses the watch for good (401/403).
    Failed(String),
}

/// A watcher error that retrying will not fix: the credentials or RBAC are wrong.
#[must_use]
pub fn fatal_watch_error(e: &watcher::Error) -> Option<String> {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s.code,
        _ => return None,
    };
    matches!(code, 401 | 403).then(|| e.to_string())
}

/// The watch request itself was answered 410 Gone: its resourceVersion is too old. kube's
/// watcher re-lists only on an in-stream 410 and would retry this one with the same version
/// forever, so the caller starts a fresh watcher (which lists first).
#[must_use]
pub fn is_gone(e: &watcher::Error) -> bool {
    matches!(
        e,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s)) if s.code == 410
    )
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Starts watching the pods `api` and `config` select (re-listing on 410 with backoff).
    #[must_use]
    pub fn start(api: Api<Pod>, config: watcher::Config) -> Self {
        let (tx, rx) = watch::channel(WatchState::Pending);
        let task = tokio::spawn(async move {
            let mut refusals = 0;
            loop {
                if let Some(msg) = Self::follow(&api, &config, &tx, &mut refusals).await {
                    let _ = tx.send(WatchState::Failed(msg));
                    return;
                }
                tracing::debug!("pod watch answered 410; re-listing");
            }
        });
        Self { rx, task }
    }

    /// Follows one watcher until it needs replacing (a 410 on the watch request: `None`) or
    /// is refused for good (`Some(why)`).
    async fn follow(
        api: &Api<Pod>,
        config: &watcher::Config,
        tx: &watch::Sender<WatchState>,
        refusals: &mut u32,
    ) -> Option<String> {
        let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()).default_backoff());
        let mut current: Option<PodSet> = None;
        let mut relist: Option<PodSet> = None;
        let entry = |p: &Pod| {
            let ts = p.metadata.deletion_timestamp.as_ref().map(|t| t.0);
            (key(p), (p.uid().unwrap_or_default(), ts))
        };
        let publish = |set: &PodSet| {
            let _ = tx.send(WatchState::Ready(Arc::new(set.clone())));
        };
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => relist = Some(PodSet::new()),
                Ok(watcher::Event::InitApply(p)) => {
                    let (k, v) = entry(&p);
                    relist.get_or_insert_with(PodSet::new).insert(k, v);
                }
                Ok(watcher::Event::InitDone) => {
                    let set = relist.take().unwrap_or_default();
                    *refusals = 0;
                    publish(&set);
                    current = Some(set);
                }
                Ok(watcher::Event::Apply(p)) => {
                    if let Some(set) = current.as_mut() {
                        let (k, v) = entry(&p);
                        set.insert(k, v);
                        publish(set);
                    }
                }
                Ok(watcher::Event::Delete(p)) => {
                    // Only the deleted UID goes: a same-name replacement may already be there.
                    if let Some(set) = current.as_mut() {
                        let (k, (uid, _)) = entry(&p);
                        if set.get(&k).is_some_and(|(u, _)| *u == uid) {
                            set.remove(&k);
                        }
                        publish(set);
                    }
                }
                Err(e) if is_gone(&e) => return None,
                Err(e) => match fatal_watch_error(&e) {
                    // A refreshed token may race one refusal; three in a row are for real.
                    Some(msg) if *refusals >= 2 => return Some(msg),
                    Some(_) => *refusals += 1,
                    None => {
                        tracing::debug!(error = %e, "pod watch error; re-listing with backoff");
                    }
                },
            }
        }
        None
    }

    /// The pods seen now, once the first list has arrived; `Err` when the API server refuses
    /// the watch (401/403) or no list arrives before `deadline`.
    pub async fn snapshot(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<PodSet>, WatchError> {
        let mut rx = self.rx.clone();
        loop {
            match rx.borrow_and_update().clone() {
                WatchState::Ready(s) => return Ok(s),
                WatchState::Failed(e) => return Err(WatchError::Refused(e)),
                WatchState::Pending => {}
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(WatchError::NotListed) },
                () = tokio::time::sleep_until(deadline) => return Err(WatchError::NotListed),
            }
        }
    }

    /// Waits until none of `uids` is present (a pod whose deletion started more than `skip_after`
    /// ago counts as gone, like kubectl's `--skip-wait-for-delete-timeout`), or until `deadline`.
    /// Returns the UIDs still present, or `Err` when the API server refuses the watch or never
    /// lists the pods before `deadline`.
    pub async fn wait_gone(
        &self,
        uids: &HashSet<String>,
        skip_after: Option<Duration>,
        deadline: tokio::time::Instant,
    ) -> Result<HashSet<String>, WatchError> {
        let mut rx = self.rx.clone();
        loop {
            rx.mark_unchanged();
            let remaining = self.present(uids, skip_after, deadline).await?;
            if remaining.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(remaining);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Ok(remaining) },
                () = tokio::time::sleep_until(deadline) => {}
                // Re-check now and then: skip-after depends on time passing, not on events.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Which of `uids` are still present (waiting for the first list until `deadline`).
    pub async fn present(
        &self,
        uids: &HashSet<String>,
        skip_after: Option<Duration>,
        deadline: tokio::time::Instant,
    ) -> Result<HashSet<String>, WatchError> {
        let snap = self.snapshot(deadline).await?;
        let now = jiff::Timestamp::now();
        let skip = skip_after.and_then(|s| jiff::SignedDuration::try_from(s).ok());
        Ok(snap
            .values()
            .filter(|(uid, deleting)| {
                uids.contains(uid)
                    && !matches!((deleting, skip), (Some(t), Some(skip)) if now.duration_since(*t) > skip)
            })
            .map(|(uid, _)| uid.clone())
            .collect())
    }
}
