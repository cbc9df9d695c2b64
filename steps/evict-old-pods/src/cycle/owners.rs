//! Owners within a run: the workload behind each candidate, looked up once per owner through
//! `opsteps::owners` and cached with NotFound and errors kept apart, and the availability
//! gate (`--wait-for-replacement`).
//!
//! A failed lookup (5xx, 429 after retries, 403) is never read as "no owner": that would
//! switch off replacement gating, `--max-per-owner` and restart mode for the pod. The pod is
//! skipped instead (`skipped-owner-error`, with the reason) and the run ends transient (exit 3),
//! or failed (exit 1) when a retry would not help (403).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use opsteps::evict;
use opsteps::owners::{OwnerError, OwnerRef, Owners, Workload};
use opsteps::retry::RetryPolicy;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;
use tracing::instrument;

use super::attempt::Attempt;
use super::{Candidate, Run};
use crate::classify::Skip;
use opsteps::selector::Selector;

/// What gating and restarts need of a workload owner.
#[derive(Clone, Debug)]
pub(super) struct Owner {
    pub kind: String,
    pub name: String,
    /// Desired replicas, for owners whose availability we can judge.
    pub replicas: Option<i32>,
    /// Their pods' selector.
    pub selector: Option<Selector>,
    pub paused: bool,
}

impl Owner {
    pub fn key(&self, ns: &str) -> String {
        format!("{ns}/{}/{}", self.kind, self.name)
    }

    fn from_workload(w: Workload) -> Self {
        Self {
            replicas: w.desired(),
            selector: w
                .selector
                .as_ref()
                .and_then(|s| Selector::from_label_selector(s).ok()),
            paused: w.paused,
            kind: w.owner.kind,
            name: w.owner.name,
        }
    }

    fn owner_ref(&self, ns: &str) -> OwnerRef {
        OwnerRef::new(&self.kind, ns, &self.name)
    }
}

/// A looked-up controller reference.
#[derive(Clone, Debug)]
enum Entry {
    Found(Owner),
    /// NotFound: the controller is gone, the pod is an orphan.
    Gone,
    /// The lookup failed; the pods of this owner are skipped for the rest of the run.
    Failed {
        message: String,
        transient: bool,
    },
}

/// The run's owner lookups and what the gate learnt about each owner.
pub(super) struct Cache {
    api: Owners,
    /// By the controller reference `ns/kind/name`.
    entries: HashMap<String, Entry>,
    /// Owners that were not fully available when we looked (or waited) in this run.
    unavailable: HashSet<String>,
    /// Owners seen fully available (used in dry runs only, where nothing changes).
    available: HashSet<String>,
}

impl Cache {
    pub fn new(client: &Client, deadline: Instant, shutdown: &Shutdown) -> Self {
        Self {
            api: Owners::with_retry(
                client.clone(),
                RetryPolicy::default()
                    .with_deadline(deadline)
                    .with_shutdown(shutdown),
            ),
            entries: HashMap::new(),
            unavailable: HashSet::new(),
            available: HashSet::new(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.api.requests()
    }

    /// The owner of `c` if it was looked up and found.
    fn found(&self, c: &Candidate) -> Option<Owner> {
        match self.entries.get(&controller_key(c)?) {
            Some(Entry::Found(o)) => Some(o.clone()),
            _ => None,
        }
    }
}

fn controller_key(c: &Candidate) -> Option<String> {
    let (kind, name) = c.controller.as_ref()?;
    Some(format!("{}/{kind}/{name}", c.namespace))
}

/// What a look at an owner's availability found.
enum Availability {
    Full,
    Short,
    Unknown { message: String, transient: bool },
}

fn describe(e: &OwnerError) -> (String, bool) {
    (chain(e), e.is_transient())
}

/// `error: cause: cause` on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl Run<'_> {
    /// The workload owner of a candidate (a ReplicaSet's Deployment), cached per run.
    /// `Ok(None)` for bare pods and owners that are gone (NotFound); `Err` with the pod's
    /// verdict when the owner cannot be read.
    pub(super) async fn owner(&mut self, c: &Candidate) -> Result<Option<Owner>, Attempt> {
        let Some(key) = controller_key(c) else {
            return Ok(None);
        };
        let entry = if let Some(e) = self.owners.entries.get(&key) {
            e.clone()
        } else {
            let (kind, name) = c.controller.clone().unwrap_or_default();
            let e = match self
                .owners
                .api
                .resolve(&OwnerRef::new(&kind, &c.namespace, &name))
                .await
            {
                Ok(Some(w)) => Entry::Found(Owner::from_workload(w)),
                Ok(None) => Entry::Gone,
                Err(e) => {
                    let (message, transient) = describe(&e);
                    Entry::Failed { message, transient }
                }
            };
            self.owners.entries.insert(key, e.clone());
            e
        };
        match entry {
            Entry::Found(o) => Ok(Some(o)),
            Entry::Gone => Ok(None),
            Entry::Failed { message, transient } => Err(self.owner_error(c, &message, transient)),
        }
    }

    /// The verdict of a pod whose owner cannot be read, and the run's status it implies.
    fn owner_error(&mut self, c: &Candidate, message: &str, transient: bool) -> Attempt {
        tracing::warn!(namespace = %c.namespace, pod = %c.name, error = %message, transient, "owner unreadable: pod not evicted");
        self.failed(transient);
        Attempt::Done {
            verdict: Skip::OwnerError.verdict(),
            message: Some(format!(
                "{message}; not evicted: its replacement gating and per-owner limit cannot be checked"
            )),
        }
    }

    /// Whether to defer `c` to after the first pass: gating is on, we already evicted a pod
    /// of its owner in this run, and the owner is not fully available yet (looked at once per
    /// owner and pass; `waiting` remembers the owners found still replacing).
    pub(super) async fn should_defer(
        &mut self,
        c: &Candidate,
        waiting: &mut HashSet<String>,
    ) -> bool {
        if !self.cfg.wait_for_replacement || self.cfg.dry_run.is_dry() {
            return false;
        }
        let Some(o) = self.owners.found(c) else {
            return false;
        };
        let key = o.key(&c.namespace);
        if !self.counts.owner.contains_key(&key) {
            return false;
        }
        if waiting.contains(&key) {
            return true;
        }
        if matches!(
            self.wait_available(&c.namespace, &o, Duration::ZERO).await,
            Availability::Full
        ) {
            return false;
        }
        waiting.insert(key);
        true
    }

    /// Replacement gating: `Some(verdict)` when the owner is not fully available (now, or
    /// within the replacement timeout after one of our evictions of it), or cannot be read.
    pub(super) async fn gate(&mut self, c: &Candidate, o: &Owner) -> Option<Attempt> {
        let cfg = self.cfg;
        let key = o.key(&c.namespace);
        // Only while the owner is fully available: before our first eviction of this owner
        // it must already be (no wait); after one, we wait for that replacement. An owner
        // that timed out once is not waited for again in this run.
        let wait = if cfg.dry_run.is_dry() || !self.counts.owner.contains_key(&key) {
            Duration::ZERO
        } else {
            cfg.replacement_timeout
        };
        // In a dry run nothing changes, so one look per owner is enough.
        if cfg.dry_run.is_dry() && self.owners.available.contains(&key) {
            return None;
        }
        let seen = if self.owners.unavailable.contains(&key) {
            Availability::Short
        } else {
            self.wait_available(&c.namespace, o, wait).await
        };
        match seen {
            Availability::Full => {
                self.owners.available.insert(key);
                None
            }
            Availability::Short => {
                self.owners.unavailable.insert(key);
                Some(Attempt::Done {
                    verdict: Skip::OwnerUnavailable.verdict(),
                    message: Some(format!(
                        "{} {} did not have all {} replicas available{}",
                        o.kind,
                        o.name,
                        o.replicas.unwrap_or(0),
                        if wait.is_zero() {
                            String::new()
                        } else {
                            format!(" within {}s", wait.as_secs())
                        }
                    )),
                })
            }
            Availability::Unknown { message, transient } => {
                // The other pods of this owner are skipped without asking again.
                if let Some(k) = controller_key(c) {
                    self.owners.entries.insert(
                        k,
                        Entry::Failed {
                            message: message.clone(),
                            transient,
                        },
                    );
                }
                Some(self.owner_error(c, &message, transient))
            }
        }
    }

    /// Whether the owner has all its replicas Ready (not terminating), waiting up to `budget`.
    ///
    /// Polls the owner's status (one small GET) until it reports every replica available, then
    /// confirms with its pods: the status may not yet reflect the pod we just evicted, and a
    /// terminating pod still counts as ready there. Listing the pods only to confirm keeps a
    /// 1,000-replica owner from costing a 1,000-pod list per poll. An error counts as short;
    /// when the last look failed, the answer is `Unknown` with the error.
    #[instrument(skip_all, fields(namespace = ns, owner = %o.name))]
    async fn wait_available(&self, ns: &str, o: &Owner, budget: Duration) -> Availability {
        let Some(mut want) = o.replicas else {
            return Availability::Full;
        };
        // Replacements are counted through the owner's pods; a selector we cannot read would
        // switch gating off, so the pod is skipped and reported instead.
        let Some(sel) = &o.selector else {
            return Availability::Unknown {
                message: format!(
                    "{} {}/{}: its pod selector cannot be read, so replacements cannot be counted",
                    o.kind, ns, o.name
                ),
                transient: false,
            };
        };
        let end = super::instant_after(budget).min(self.deadline);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let lp = ListParams::default().labels(&sel.to_string());
        let mut backoff = RetryPolicy::poll(Duration::from_millis(50), Duration::from_secs(1))
            .with_deadline(end)
            .with_shutdown(&self.ctx.shutdown)
            .backoff();
        loop {
            let mut error = None;
            let status_full = match self.owners.api.replicas(&o.owner_ref(ns)).await {
                Ok(Some(r)) => {
                    want = r.desired;
                    !r.is_short()
                }
                // Gone: its pods decide.
                Ok(None) => true,
                Err(e) => {
                    error = Some(describe(&e));
                    false
                }
            };
            if status_full {
                self.requests.fetch_add(1, Ordering::Relaxed);
                match api.list(&lp).await {
                    Ok(list) => {
                        let ready = list
                            .items
                            .iter()
                            .filter(|p| evict::is_ready(p) && !evict::is_terminating(p))
                            .count();
                        if i64::try_from(ready).unwrap_or(i64::MAX) >= i64::from(want) {
                            return Availability::Full;
                        }
                    }
                    Err(e) => {
                        let transient = opsteps::retry::is_transient_kube(&e);
                        error = Some((
                            format!("cannot list the pods of {} {ns}/{}: {e}", o.kind, o.name),
                            transient,
                        ));
                    }
                }
            }
            if backoff.wait(None).await.is_err() {
                return match error {
                    Some((message, transient)) => Availability::Unknown { message, transient },
                    None => Availability::Short,
                };
            }
        }
    }
}
