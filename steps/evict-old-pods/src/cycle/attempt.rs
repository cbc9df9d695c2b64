//! Attempts: the first pass over the candidates (oldest first, owners still replacing a pod
//! deferred to after it), the retry pass over PDB-refused pods within `--pdb-retry-budget`,
//! and one attempt at a pod: limits, owner, restart or gate, then the eviction and its Event.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use opsteps::cli::DryRun;
use opsteps::events::{self, EventType};
use opsteps::evict::{self, EvictOptions, EvictResult};
use opsteps::exit::ExitStatus;
use opsteps::retry::RetryPolicy;
use tokio::time::Instant;
use tracing::instrument;

use super::{Candidate, Run, skip};
use crate::classify::Skip;
use crate::{Mode, STEP};

/// The reason of the Event on an evicted pod, as the descheduler's plugin name.
pub const EVENT_REASON: &str = "PodLifeTime";

/// How one attempt at a candidate ended.
pub(super) enum Attempt {
    /// A final verdict.
    Done {
        verdict: String,
        message: Option<String>,
    },
    /// A PDB (or throttling) refused it; may be retried.
    Blocked {
        verdict: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The total limit is reached: stop, like the descheduler.
    StopTotal,
}

/// What a pass leaves for the next: whether the total limit stopped the run, the pods a
/// budget refused, and the longest Retry-After the server asked for.
#[derive(Default)]
struct Pass {
    stopped: bool,
    blocked: Vec<Candidate>,
    retry_after: Option<Duration>,
}

impl Run<'_> {
    pub(super) async fn evict_all(&mut self, candidates: Vec<Candidate>) {
        let total = candidates.len() as u64;
        let mut done = 0u64;
        let mut pass = Pass::default();
        // Gating waits per owner, not for the whole run: a pod whose owner is still replacing
        // the pod we evicted before is deferred, the other owners go on, and the deferred pods
        // are taken (oldest first, waiting as needed) after the first pass.
        let mut deferred: Vec<Candidate> = Vec::new();
        let mut waiting: HashSet<String> = HashSet::new();
        let mut first_pass = true;
        let mut queue = candidates;
        loop {
            for c in std::mem::take(&mut queue) {
                if pass.stopped {
                    self.set(&c, Skip::LimitTotal.verdict(), None);
                    continue;
                }
                if first_pass && self.should_defer(&c, &mut waiting).await {
                    deferred.push(c);
                    continue;
                }
                self.try_one(c, &mut pass).await;
                done += 1;
                self.ctx.output.progress(done, total);
            }
            if !first_pass || deferred.is_empty() {
                break;
            }
            first_pass = false;
            queue = std::mem::take(&mut deferred);
        }
        if pass.stopped || pass.blocked.is_empty() || self.cfg.pdb_retry_budget.is_zero() {
            return;
        }
        // Retry pass: budgets free up as replacements become Ready. Later pods were already
        // attempted in the first pass, as the descheduler does; this only adds retries.
        let budget_end = super::instant_after(self.cfg.pdb_retry_budget).min(self.deadline);
        let mut backoff = RetryPolicy::poll(Duration::from_millis(500), Duration::from_secs(10))
            .with_deadline(budget_end)
            .with_shutdown(&self.ctx.shutdown)
            .backoff();
        while !pass.blocked.is_empty() && !pass.stopped {
            // Ends when the budget would run out before the next round, or on SIGTERM.
            if backoff.wait(pass.retry_after.take()).await.is_err() {
                break;
            }
            for c in std::mem::take(&mut pass.blocked) {
                if pass.stopped {
                    // Keeps its blocked verdict.
                    pass.blocked.push(c);
                    continue;
                }
                self.try_one(c, &mut pass).await;
            }
        }
    }

    /// Attempts `c` once and files the outcome: its verdict, and back into `pass.blocked`
    /// when a budget refused it.
    async fn try_one(&mut self, c: Candidate, pass: &mut Pass) {
        match self.attempt(&c).await {
            Attempt::StopTotal => {
                pass.stopped = true;
                self.set(&c, Skip::LimitTotal.verdict(), None);
            }
            Attempt::Done { verdict, message } => self.set(&c, verdict, message),
            Attempt::Blocked {
                verdict,
                message,
                retry_after,
            } => {
                self.set(&c, verdict, Some(message));
                pass.retry_after = pass.retry_after.max(retry_after);
                pass.blocked.push(c);
            }
        }
    }

    fn limit_hit(&self, c: &Candidate) -> Option<Attempt> {
        let l = &self.cfg.limits;
        let n = &self.counts;
        if l.total.is_some_and(|m| n.total >= m) {
            return Some(Attempt::StopTotal);
        }
        if l.per_node
            .is_some_and(|m| n.node.get(&c.node).copied().unwrap_or(0) >= m)
        {
            return Some(skip(Skip::LimitNode));
        }
        if l.per_namespace
            .is_some_and(|m| n.namespace.get(&c.namespace).copied().unwrap_or(0) >= m)
        {
            return Some(skip(Skip::LimitNamespace));
        }
        None
    }

    pub(super) fn count(&mut self, c: &Candidate, owner: Option<&str>) {
        let n = &mut self.counts;
        n.total += 1;
        *n.node.entry(c.node.clone()).or_default() += 1;
        *n.namespace.entry(c.namespace.clone()).or_default() += 1;
        if let Some(o) = owner {
            *n.owner.entry(o.to_owned()).or_default() += 1;
        }
    }

    #[instrument(skip_all, fields(namespace = %c.namespace, pod = %c.name))]
    async fn attempt(&mut self, c: &Candidate) -> Attempt {
        if self.ctx.shutdown.is_requested() {
            self.worst = self.worst.worst(ExitStatus::interrupted());
            return skip(Skip::Shutdown);
        }
        if Instant::now() >= self.deadline {
            self.worst = self.worst.worst(ExitStatus::Transient);
            return skip(Skip::Deadline);
        }
        if let Some(a) = self.limit_hit(c) {
            return a;
        }
        let cfg = self.cfg;
        let need_owner =
            cfg.wait_for_replacement || cfg.limits.per_owner.is_some() || cfg.mode == Mode::Restart;
        let owner = if need_owner {
            match self.owner(c).await {
                Ok(o) => o,
                Err(verdict) => return verdict,
            }
        } else {
            None
        };
        let owner_key = owner.as_ref().map(|o| o.key(&c.namespace));
        if let (Some(max), Some(k)) = (cfg.limits.per_owner, &owner_key)
            && self.counts.owner.get(k).copied().unwrap_or(0) >= max
        {
            return skip(Skip::LimitOwner);
        }
        if cfg.mode == Mode::Restart
            && let Some(o) = &owner
            && matches!(o.kind.as_str(), "Deployment" | "StatefulSet")
            && (o.replicas.unwrap_or(0) <= 1 || c.pdb.is_none())
        {
            return self.restart(c, o).await;
        }
        let gated =
            cfg.wait_for_replacement && owner.as_ref().is_some_and(|o| o.replicas.is_some());
        if gated
            && let Some(o) = &owner
            && let Some(skipped) = self.gate(c, o).await
        {
            return skipped;
        }
        // Server dry run: the server does not remember our earlier dry-run evictions, so a
        // budget they would have used up is accounted for here. With gating the real run waits
        // for each replacement, which gives the budget back.
        if cfg.dry_run == DryRun::Server
            && !gated
            && let Some(p) = &c.pdb
            && c.pdb_count == 1
            && self.pdb_allowance.get(p).is_some_and(|a| *a <= 0)
        {
            return Attempt::Blocked {
                verdict: format!("blocked-by-{}", p.rsplit('/').next().unwrap_or(p)),
                message: format!(
                    "PDB {p} would allow no more disruptions after the evictions before this one (simulated in the dry run)"
                ),
                retry_after: None,
            };
        }
        self.report.pods[c.entry].attempts += 1;
        let result = if cfg.dry_run == DryRun::Client {
            EvictResult::Evicted
        } else {
            self.requests.fetch_add(1, Ordering::Relaxed);
            evict::evict(
                self.client,
                &c.namespace,
                &c.name,
                &EvictOptions {
                    grace_period_seconds: None,
                    dry_run: cfg.dry_run == DryRun::Server,
                    uid: Some(c.uid.clone()),
                },
                self.audit(),
            )
            .await
        };
        self.outcome(c, result, owner_key.as_deref()).await
    }

    async fn outcome(
        &mut self,
        c: &Candidate,
        result: EvictResult,
        owner_key: Option<&str>,
    ) -> Attempt {
        match result {
            EvictResult::Evicted => {
                self.count(c, owner_key);
                if let Some(p) = &c.pdb
                    && let Some(a) = self.pdb_allowance.get_mut(p)
                {
                    *a -= 1;
                }
                self.evicted.push(format!("{}/{}", c.namespace, c.name));
                tracing::info!(namespace = %c.namespace, pod = %c.name, node = %c.node, age_seconds = c.age, dry_run = ?self.cfg.dry_run, "evicted");
                // No Event in a dry run, nor after SIGTERM (no new write once asked to stop).
                if !self.cfg.dry_run.is_dry() && !self.ctx.shutdown.is_requested() {
                    self.event(c).await;
                }
                Attempt::Done {
                    verdict: "evicted".into(),
                    message: None,
                }
            }
            EvictResult::Gone | EvictResult::Replaced => Attempt::Done {
                verdict: "gone".into(),
                message: Some("the pod was deleted or replaced before its eviction".into()),
            },
            EvictResult::Blocked {
                message,
                pdb,
                retry_after,
            } => {
                let name = pdb
                    .or_else(|| {
                        c.pdb
                            .as_ref()
                            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
                    })
                    .unwrap_or_else(|| "pdb".into());
                tracing::info!(namespace = %c.namespace, pod = %c.name, pdb = %name, "eviction refused by a disruption budget");
                Attempt::Blocked {
                    verdict: format!("blocked-by-{name}"),
                    message,
                    retry_after,
                }
            }
            EvictResult::MultiplePdbs { message } => {
                self.worst = self.worst.worst(ExitStatus::Blocked);
                Attempt::Done {
                    verdict: "blocked-by-multiple-pdbs".into(),
                    message: Some(message),
                }
            }
            EvictResult::NamespaceTerminating => Attempt::Done {
                verdict: "gone".into(),
                message: Some("namespace terminating".into()),
            },
            EvictResult::Error {
                code,
                message,
                transient,
            } => {
                tracing::warn!(namespace = %c.namespace, pod = %c.name, code = ?code, transient, error = %message, "eviction failed");
                self.failed(transient);
                Attempt::Done {
                    verdict: "failed".into(),
                    message: Some(format!("HTTP {}: {message}", code.unwrap_or(0))),
                }
            }
        }
    }

    /// A Normal Event on the evicted pod, as the descheduler records (reason PodLifeTime,
    /// action Descheduled), through the library's one Event writer. Best effort: a failed
    /// Event never fails the run.
    async fn event(&self, c: &Candidate) {
        let lifetime = c
            .lifetime
            .map_or_else(|| "any".to_owned(), |l| format!("{l}s"));
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(c.name.clone()),
                namespace: Some(c.namespace.clone()),
                uid: Some(c.uid.clone()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        events::record_action(
            self.client,
            self.audit(),
            STEP,
            &pod,
            EventType::Normal,
            EVENT_REASON,
            "Descheduled",
            &format!(
                "pod evicted by {STEP}: age {}s exceeds its lifetime {lifetime}",
                c.age
            ),
        )
        .await;
    }
}
