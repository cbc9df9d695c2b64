//! One eviction cycle, in the descheduler's order: Ready nodes (fewer than 2: no cycle), pods
//! listed page by page and reduced at once to the few past their lifetime, oldest first, limits
//! checked total → node → namespace before each call, failures not counted. Then the safety
//! additions: per-owner cap, waiting for the owner to be fully available, rollout restart for
//! unsafe owners, a second pass over PDB-refused pods within the retry budget.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, ObjectList, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use opsteps::audit::Target;
use opsteps::cli::DryRun;
use opsteps::evict::{self, EvictOptions, EvictResult};
use opsteps::exit::{ExitStatus, StepError};
use opsteps::retry::RetryPolicy;
use opsteps::step::{Context, Report};
use serde_json::json;
use tokio::time::Instant;

use crate::classify::{self, Skip};
use crate::config::Config;
use crate::report::{MAX_RESULT_PODS, NextDue, PodEntry, RunReport};
use crate::selector::Selector;
use crate::{Mode, STEP};

/// Page size of every list: memory stays flat however many pods the cluster has.
const PAGE: u32 = 500;
/// The reason of the Event on an evicted pod, as the descheduler's plugin name.
pub const EVENT_REASON: &str = "PodLifeTime";
/// Annotation a rollout restart sets on the pod template, as `kubectl rollout restart`.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// A pod that may be evicted, reduced to what the eviction needs.
#[derive(Clone, Debug)]
struct Candidate {
    /// Index of its entry in the report.
    entry: usize,
    namespace: String,
    name: String,
    uid: String,
    node: String,
    created: jiff::Timestamp,
    /// The controller reference (kind, name).
    controller: Option<(String, String)>,
    /// The PDB selecting it, if exactly one does.
    pdb: Option<String>,
    /// How many PDBs select it.
    pdb_count: usize,
    first_owner_uid: Option<String>,
    overridden: bool,
    age: i64,
    lifetime: Option<u64>,
}

/// What a workload owner looks like for gating and restarts.
#[derive(Clone, Debug)]
struct Owner {
    kind: String,
    name: String,
    /// Desired replicas, for owners whose availability we can judge.
    replicas: Option<i32>,
    /// Their pods' selector.
    selector: Option<Selector>,
    paused: bool,
}

impl Owner {
    fn key(&self, ns: &str) -> String {
        format!("{ns}/{}/{}", self.kind, self.name)
    }
}

/// How one attempt at a candidate ended.
enum Attempt {
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

/// Counters that the limits check.
#[derive(Default)]
struct Counts {
    total: u32,
    node: HashMap<String, u32>,
    namespace: HashMap<String, u32>,
    owner: HashMap<String, u32>,
}

/// The state of one run.
struct Run<'a> {
    client: &'a Client,
    cfg: &'a Config,
    ctx: &'a Context,
    now: jiff::Timestamp,
    deadline: Instant,
    requests: AtomicU64,
    counts: Counts,
    owners: HashMap<String, Option<Owner>>,
    restarted: HashSet<String>,
    /// Owners that were not fully available when we looked (or waited) in this run.
    unavailable: HashSet<String>,
    /// Owners seen fully available (used in dry runs only, where nothing changes).
    available: HashSet<String>,
    /// Server dry run: disruptions each PDB still allows after the evictions we simulated.
    pdb_allowance: HashMap<String, i32>,
    pdbs_with_budget: HashMap<String, i32>,
    report: RunReport,
    evicted: Vec<String>,
    worst: ExitStatus,
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> StepError {
    let what = what.into();
    move |e| StepError::kube(what, e)
}

/// Lists `api` in pages of [`PAGE`], handing each page to `each` and dropping it.
async fn for_each_page<K, F>(
    run: &Run<'_>,
    api: &Api<K>,
    lp: &ListParams,
    what: &str,
    mut each: F,
) -> Result<(), StepError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: FnMut(Vec<K>),
{
    let mut lp = lp.clone().limit(PAGE);
    let policy = RetryPolicy::default().with_deadline(run.deadline);
    loop {
        let page: ObjectList<K> = policy
            .run(what, || {
                run.requests.fetch_add(1, Ordering::Relaxed);
                api.list(&lp)
            })
            .await
            .map_err(kube_err(format!("list {what}")))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        each(page.items);
        match next {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(()),
        }
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The controller reference as shown in the report: a ReplicaSet named `<deploy>-<hash>`
/// whose pods carry `pod-template-hash=<hash>` is shown as its Deployment, without a request.
fn display_owner(pod: &Pod) -> Option<(String, String)> {
    let c = evict::controller(pod)?;
    if c.kind == "ReplicaSet"
        && let Some(hash) = pod.labels().get("pod-template-hash")
        && let Some(dep) = c.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(("Deployment".into(), dep.to_owned()));
    }
    Some((c.kind.clone(), c.name.clone()))
}

/// Runs one cycle and builds the step's report.
pub async fn run(client: &Client, cfg: &Config, ctx: &Context) -> Result<Report, StepError> {
    let now = cfg.now.unwrap_or_else(jiff::Timestamp::now);
    let mut run = Run {
        client,
        cfg,
        ctx,
        now,
        deadline: Instant::now() + cfg.timeout,
        requests: AtomicU64::new(0),
        counts: Counts::default(),
        owners: HashMap::new(),
        restarted: HashSet::new(),
        unavailable: HashSet::new(),
        available: HashSet::new(),
        pdb_allowance: HashMap::new(),
        pdbs_with_budget: HashMap::new(),
        report: RunReport {
            dry_run: serde_json::to_value(cfg.dry_run)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            mode: serde_json::to_value(cfg.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            now: now.to_string(),
            max_pod_lifetime_seconds: cfg.max_lifetime_seconds,
            spread_seconds: cfg.spread_seconds,
            policy: cfg.policy.clone(),
            ..RunReport::default()
        },
        evicted: Vec::new(),
        worst: ExitStatus::Done,
    };
    let threshold = run.priority_threshold().await?;

    let mut ready_nodes = HashSet::new();
    let nodes: Api<Node> = Api::all(client.clone());
    for_each_page(&run, &nodes, &ListParams::default(), "nodes", |page| {
        ready_nodes.extend(
            page.iter()
                .filter(|n| node_ready(n))
                .map(ResourceExt::name_any),
        );
    })
    .await?;
    run.report.ready_nodes = ready_nodes.len();
    if ready_nodes.len() < 2 {
        // The descheduler's guard: evicting on a one-node cluster only moves pods back.
        let why = format!(
            "{} Ready node(s); at least 2 are needed, as in the descheduler",
            ready_nodes.len()
        );
        tracing::warn!(ready_nodes = ready_nodes.len(), "no eviction cycle: {why}");
        run.report.cycle_skipped = Some(why);
        return run.finish();
    }

    let pdbs = run.list_pdbs().await?;
    let candidates = run.scan(&ready_nodes, &pdbs, threshold).await?;
    drop(ready_nodes);
    tracing::info!(
        scanned = run.report.totals.scanned,
        in_scope = run.report.totals.in_scope,
        past_lifetime = run.report.totals.past_lifetime,
        candidates = candidates.len(),
        "scan done"
    );
    run.evict_all(candidates).await;
    run.finish()
}

impl Run<'_> {
    fn audit(&self) -> &opsteps::audit::Auditor {
        &self.ctx.audit
    }

    async fn priority_threshold(&self) -> Result<Option<i32>, StepError> {
        let Some(class) = &self.cfg.evictor.priority_threshold_class else {
            return Ok(self.cfg.evictor.priority_threshold);
        };
        let api: Api<PriorityClass> = Api::all(self.client.clone());
        self.requests.fetch_add(1, Ordering::Relaxed);
        match api.get_opt(class).await {
            Ok(Some(pc)) => Ok(Some(pc.value)),
            Ok(None) => Err(StepError::bad_input(format!(
                "PriorityClass {class:?} (--priority-threshold-class) does not exist"
            ))),
            Err(e) => Err(StepError::kube(format!("get PriorityClass {class}"), e)),
        }
    }

    async fn list_pdbs(&mut self) -> Result<Vec<PodDisruptionBudget>, StepError> {
        let mut out = Vec::new();
        let cfg = self.cfg;
        let wanted = |p: &PodDisruptionBudget| {
            let ns = p.namespace().unwrap_or_default();
            (cfg.namespaces.is_empty() || cfg.namespaces.contains(&ns))
                && !cfg.exclude_namespaces.contains(&ns)
        };
        let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        for_each_page(
            self,
            &api,
            &ListParams::default(),
            "poddisruptionbudgets",
            |page| {
                out.extend(page.into_iter().filter(wanted));
            },
        )
        .await?;
        for p in &out {
            let allowed = p.status.as_ref().map_or(0, |s| s.disruptions_allowed);
            self.pdbs_with_budget.insert(
                format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                allowed,
            );
        }
        self.pdb_allowance.clone_from(&self.pdbs_with_budget);
        Ok(out)
    }

    /// Lists pods page by page and keeps only the candidates (and report entries of pods past
    /// their lifetime).
    #[allow(clippy::too_many_lines)]
    async fn scan(
        &mut self,
        ready_nodes: &HashSet<String>,
        pdbs: &[PodDisruptionBudget],
        threshold: Option<i32>,
    ) -> Result<Vec<Candidate>, StepError> {
        let cfg = self.cfg;
        let now = self.now;
        let mut lp = ListParams::default();
        let sel = cfg.selector.to_string();
        if !sel.is_empty() {
            lp = lp.labels(&sel);
        }
        let targets: Vec<Option<String>> = if cfg.namespaces.is_empty() {
            vec![None]
        } else {
            cfg.namespaces.iter().cloned().map(Some).collect()
        };
        let mut candidates = Vec::new();
        let mut entries: Vec<PodEntry> = Vec::new();
        let mut owner_pods: HashMap<String, u32> = HashMap::new();
        let mut next_due: Option<(jiff::Timestamp, String)> = None;
        let (mut scanned, mut in_scope, mut past) = (0u64, 0u64, 0u64);
        for ns in targets {
            let api: Api<Pod> = match &ns {
                Some(n) => Api::namespaced(self.client.clone(), n),
                None => Api::all(self.client.clone()),
            };
            for_each_page(self, &api, &lp, "pods", |page| {
                for pod in page {
                    scanned += 1;
                    if let Some(u) = classify::first_owner_uid(&pod) {
                        *owner_pods.entry(u.to_owned()).or_default() += 1;
                    }
                    let pns = pod.namespace().unwrap_or_default();
                    if cfg.exclude_namespaces.contains(&pns) || !classify::matches_states(&pod, cfg)
                    {
                        continue;
                    }
                    in_scope += 1;
                    let Some(age) = classify::age_seconds(&pod, now) else {
                        continue;
                    };
                    let uid = pod.uid().unwrap_or_default();
                    let lifetime = cfg
                        .max_lifetime_seconds
                        .map(|m| classify::effective_lifetime(m, cfg.spread_seconds, &uid));
                    let is_past = lifetime.is_none_or(|l| classify::is_past(age, l));
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    let skip = match &node {
                        None => Some(Skip::Unscheduled),
                        Some(n) if !ready_nodes.contains(n) => Some(Skip::NodeNotReady),
                        Some(_) => classify::protection(&pod, &cfg.evictor, threshold, pdbs, now),
                    };
                    let created = pod
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or(now, |t| t.0);
                    if !is_past {
                        if skip.is_none()
                            && let Some(l) = lifetime
                        {
                            let due =
                                created + jiff::SignedDuration::from_secs(l.cast_signed() + 1);
                            if due > now && next_due.as_ref().is_none_or(|(t, _)| due < *t) {
                                next_due = Some((due, evict::key(&pod)));
                            }
                        }
                        continue;
                    }
                    past += 1;
                    let owner = display_owner(&pod);
                    let entry = PodEntry {
                        namespace: pns.clone(),
                        name: pod.name_any(),
                        node: node.clone(),
                        owner_kind: owner.as_ref().map(|o| o.0.clone()),
                        owner_name: owner.as_ref().map(|o| o.1.clone()),
                        created: created.to_string(),
                        age_seconds: age,
                        lifetime_seconds: lifetime,
                        verdict: skip.map_or_else(|| "pending".to_owned(), Skip::verdict),
                        message: None,
                        attempts: 0,
                    };
                    entries.push(entry);
                    if skip.is_some() {
                        continue;
                    }
                    let matching: Vec<&PodDisruptionBudget> = pdbs
                        .iter()
                        .filter(|p| evict::pdb_selects(p, &pod))
                        .collect();
                    candidates.push(Candidate {
                        entry: entries.len() - 1,
                        namespace: pns,
                        name: pod.name_any(),
                        uid,
                        node: node.unwrap_or_default(),
                        created,
                        controller: evict::controller(&pod)
                            .map(|c| (c.kind.clone(), c.name.clone())),
                        pdb: matching.first().map(|p| {
                            format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
                        }),
                        pdb_count: matching.len(),
                        first_owner_uid: classify::first_owner_uid(&pod).map(str::to_owned),
                        overridden: pod.annotations().contains_key(evict::DESCHEDULER_EVICT),
                        age,
                        lifetime,
                    });
                }
            })
            .await?;
        }
        // minReplicas needs the counts of the whole listing, so it is applied after it.
        candidates.retain(|c| {
            let n = c
                .first_owner_uid
                .as_ref()
                .and_then(|u| owner_pods.get(u))
                .copied();
            match classify::min_replicas_skip(cfg.evictor.min_replicas, n, c.overridden) {
                Some(s) => {
                    entries[c.entry].verdict = s.verdict();
                    false
                }
                None => true,
            }
        });
        // Oldest first (ties: by name, for a stable report; the descheduler's order among
        // equal timestamps is unspecified).
        candidates.sort_by(|a, b| {
            (a.created, &a.namespace, &a.name).cmp(&(b.created, &b.namespace, &b.name))
        });
        // The report lists entries in the same order.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            (&x.created, &x.namespace, &x.name).cmp(&(&y.created, &y.namespace, &y.name))
        });
        let mut new_index = vec![0; entries.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        for c in &mut candidates {
            c.entry = new_index[c.entry];
        }
        let mut slots: Vec<Option<PodEntry>> = entries.into_iter().map(Some).collect();
        let entries: Vec<PodEntry> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let t = &mut self.report.totals;
        t.scanned = scanned;
        t.in_scope = in_scope;
        t.past_lifetime = past;
        self.report.next_eviction_due = next_due.map(|(t, pod)| NextDue {
            time: t.to_string(),
            in_seconds: t.duration_since(now).as_secs(),
            pod,
        });
        self.report.pods = entries;
        Ok(candidates)
    }

    async fn evict_all(&mut self, candidates: Vec<Candidate>) {
        let total = candidates.len() as u64;
        let mut done = 0u64;
        let mut blocked: Vec<Candidate> = Vec::new();
        let mut stopped = false;
        let mut retry_after: Option<Duration> = None;
        // Gating waits per owner, not for the whole run: a pod whose owner is still replacing
        // the pod we evicted before is deferred, the other owners go on, and the deferred pods
        // are taken (oldest first, waiting as needed) after the first pass.
        let mut deferred: Vec<Candidate> = Vec::new();
        let mut waiting: HashSet<String> = HashSet::new();
        let mut first_pass = true;
        let mut queue = candidates;
        loop {
            for c in std::mem::take(&mut queue) {
                if stopped {
                    self.set(&c, Skip::LimitTotal.verdict(), None);
                    continue;
                }
                if first_pass && self.should_defer(&c, &mut waiting).await {
                    deferred.push(c);
                    continue;
                }
                match self.attempt(&c).await {
                    Attempt::StopTotal => {
                        stopped = true;
                        self.set(&c, Skip::LimitTotal.verdict(), None);
                    }
                    Attempt::Done { verdict, message } => self.set(&c, verdict, message),
                    Attempt::Blocked {
                        verdict,
                        message,
                        retry_after: ra,
                    } => {
                        self.set(&c, verdict, Some(message));
                        retry_after = retry_after.max(ra);
                        blocked.push(c);
                    }
                }
                done += 1;
                self.ctx.output.progress(done, total);
            }
            if !first_pass || deferred.is_empty() {
                break;
            }
            first_pass = false;
            queue = std::mem::take(&mut deferred);
        }
        if stopped || blocked.is_empty() || self.cfg.pdb_retry_budget.is_zero() {
            return;
        }
        // Retry pass: budgets free up as replacements become Ready. Later pods were already
        // attempted in the first pass, as the descheduler does; this only adds retries.
        let budget_end = (Instant::now() + self.cfg.pdb_retry_budget).min(self.deadline);
        let mut delay = Duration::from_millis(500);
        while !blocked.is_empty() && !stopped {
            let wait = retry_after.take().unwrap_or(delay).max(delay);
            if Instant::now() + wait > budget_end || self.ctx.shutdown.is_requested() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.ctx.shutdown.requested() => break,
            }
            delay = (delay * 2).min(Duration::from_secs(10));
            let mut still = Vec::new();
            for c in blocked {
                if stopped {
                    still.push(c);
                    continue;
                }
                match self.attempt(&c).await {
                    Attempt::StopTotal => {
                        stopped = true;
                        self.set(&c, Skip::LimitTotal.verdict(), None);
                    }
                    Attempt::Done { verdict, message } => self.set(&c, verdict, message),
                    Attempt::Blocked {
                        verdict,
                        message,
                        retry_after: ra,
                    } => {
                        self.set(&c, verdict, Some(message));
                        retry_after = retry_after.max(ra);
                        still.push(c);
                    }
                }
            }
            blocked = still;
        }
    }

    fn set(&mut self, c: &Candidate, verdict: String, message: Option<String>) {
        let e = &mut self.report.pods[c.entry];
        e.verdict = verdict;
        e.message = message;
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

    fn count(&mut self, c: &Candidate, owner: Option<&str>) {
        let n = &mut self.counts;
        n.total += 1;
        *n.node.entry(c.node.clone()).or_default() += 1;
        *n.namespace.entry(c.namespace.clone()).or_default() += 1;
        if let Some(o) = owner {
            *n.owner.entry(o.to_owned()).or_default() += 1;
        }
    }

    /// Whether to defer `c` to after the first pass: gating is on, we already evicted a pod
    /// of its owner in this run, and the owner is not fully available yet (looked at once per
    /// owner and pass; `waiting` remembers the owners found still replacing).
    async fn should_defer(&mut self, c: &Candidate, waiting: &mut HashSet<String>) -> bool {
        if !self.cfg.wait_for_replacement || self.cfg.dry_run.is_dry() {
            return false;
        }
        let Some((kind, name)) = &c.controller else {
            return false;
        };
        let Some(Some(o)) = self
            .owners
            .get(&format!("{}/{kind}/{name}", c.namespace))
            .cloned()
        else {
            return false;
        };
        let key = o.key(&c.namespace);
        if !self.counts.owner.contains_key(&key) {
            return false;
        }
        if waiting.contains(&key) {
            return true;
        }
        if self.wait_available(&c.namespace, &o, Duration::ZERO).await {
            return false;
        }
        waiting.insert(key);
        true
    }

    /// Replacement gating: `Some(skip)` when the owner is not fully available (now, or within
    /// the replacement timeout after one of our evictions of it).
    async fn gate(&mut self, c: &Candidate, o: &Owner) -> Option<Attempt> {
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
        let known_ok = cfg.dry_run.is_dry() && self.available.contains(&key);
        if !known_ok
            && (self.unavailable.contains(&key)
                || !self.wait_available(&c.namespace, o, wait).await)
        {
            self.unavailable.insert(key);
            return Some(Attempt::Done {
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
            });
        }
        self.available.insert(key);
        None
    }

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
            self.owner(c).await
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
        let gated = cfg.wait_for_replacement
            && owner
                .as_ref()
                .is_some_and(|o| o.replicas.is_some() && o.selector.is_some());
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
                if !self.cfg.dry_run.is_dry() {
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
                self.worst = self.worst.worst(if transient {
                    ExitStatus::Transient
                } else {
                    ExitStatus::Failed
                });
                Attempt::Done {
                    verdict: "failed".into(),
                    message: Some(format!("HTTP {}: {message}", code.unwrap_or(0))),
                }
            }
        }
    }

    /// The workload owner of a candidate (a ReplicaSet's Deployment), cached per run. `None`
    /// for bare pods and owners that are gone.
    async fn owner(&mut self, c: &Candidate) -> Option<Owner> {
        let (kind, name) = c.controller.clone()?;
        let key = format!("{}/{kind}/{name}", c.namespace);
        if let Some(o) = self.owners.get(&key) {
            return o.clone();
        }
        let o = self.fetch_owner(&c.namespace, &kind, &name).await;
        self.owners.insert(key, o.clone());
        o
    }

    async fn fetch_owner(&self, ns: &str, kind: &str, name: &str) -> Option<Owner> {
        let sel = |ls: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
            ls.and_then(|l| Selector::from_label_selector(l).ok())
        };
        let plain = Owner {
            kind: kind.to_owned(),
            name: name.to_owned(),
            replicas: None,
            selector: None,
            paused: false,
        };
        match kind {
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                self.requests.fetch_add(1, Ordering::Relaxed);
                let rs = api.get_opt(name).await.ok().flatten()?;
                let dep = rs
                    .metadata
                    .owner_references
                    .as_ref()
                    .and_then(|o| {
                        o.iter()
                            .find(|r| r.controller == Some(true) && r.kind == "Deployment")
                    })
                    .map(|r| r.name.clone());
                if let Some(d) = dep
                    && let Some(o) = self.fetch_deployment(ns, &d).await
                {
                    return Some(o);
                }
                let spec = rs.spec.as_ref();
                Some(Owner {
                    replicas: Some(spec.and_then(|s| s.replicas).unwrap_or(1)),
                    selector: sel(spec.map(|s| &s.selector)),
                    ..plain
                })
            }
            "Deployment" => self.fetch_deployment(ns, name).await,
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                self.requests.fetch_add(1, Ordering::Relaxed);
                let s = api.get_opt(name).await.ok().flatten()?;
                let spec = s.spec.as_ref();
                Some(Owner {
                    replicas: Some(spec.and_then(|s| s.replicas).unwrap_or(1)),
                    selector: sel(spec.map(|s| &s.selector)),
                    ..plain
                })
            }
            _ => Some(plain),
        }
    }

    async fn fetch_deployment(&self, ns: &str, name: &str) -> Option<Owner> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let d = api.get_opt(name).await.ok().flatten()?;
        let spec = d.spec.as_ref();
        Some(Owner {
            kind: "Deployment".into(),
            name: name.to_owned(),
            replicas: Some(spec.and_then(|s| s.replicas).unwrap_or(1)),
            selector: spec.and_then(|s| Selector::from_label_selector(&s.selector).ok()),
            paused: spec.and_then(|s| s.paused).unwrap_or(false),
        })
    }

    /// Whether the owner has all its replicas Ready (not terminating), waiting up to `budget`.
    ///
    /// Polls the owner's status (one small GET) until it reports every replica available, then
    /// confirms with its pods: the status may not yet reflect the pod we just evicted, and a
    /// terminating pod still counts as ready there. Listing the pods only to confirm keeps a
    /// 1,000-replica owner from costing a 1,000-pod list per poll.
    async fn wait_available(&self, ns: &str, o: &Owner, budget: Duration) -> bool {
        let (Some(want), Some(sel)) = (o.replicas, &o.selector) else {
            return true;
        };
        let end = (Instant::now() + budget).min(self.deadline);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let lp = ListParams::default().labels(&sel.to_string());
        let mut delay = Duration::from_millis(50);
        loop {
            if self.status_available(ns, o).await.is_none_or(|n| n >= want) {
                self.requests.fetch_add(1, Ordering::Relaxed);
                if let Ok(list) = api.list(&lp).await {
                    let ready = list
                        .items
                        .iter()
                        .filter(|p| evict::is_ready(p) && !evict::is_terminating(p))
                        .count();
                    if ready as i64 >= i64::from(want) {
                        return true;
                    }
                }
            }
            if Instant::now() + delay > end || self.ctx.shutdown.is_requested() {
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// The owner's `status.availableReplicas` (`readyReplicas` when absent); `None` when it
    /// cannot be read, so the pod list decides.
    async fn status_available(&self, ns: &str, o: &Owner) -> Option<i32> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let pick = |avail: Option<i32>, ready: Option<i32>| avail.or(ready).or(Some(0));
        match o.kind.as_str() {
            "Deployment" => {
                let d = Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .get_opt(&o.name)
                    .await
                    .ok()??;
                let st = d.status.unwrap_or_default();
                pick(st.available_replicas, st.ready_replicas)
            }
            "StatefulSet" => {
                let d = Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                    .get_opt(&o.name)
                    .await
                    .ok()??;
                let st = d.status.unwrap_or_default();
                pick(st.available_replicas, st.ready_replicas)
            }
            "ReplicaSet" => {
                let d = Api::<ReplicaSet>::namespaced(self.client.clone(), ns)
                    .get_opt(&o.name)
                    .await
                    .ok()??;
                let st = d.status.unwrap_or_default();
                pick(st.available_replicas, st.ready_replicas)
            }
            _ => None,
        }
    }

    /// `--mode restart`: patch the owner's pod template once per run, as `kubectl rollout
    /// restart` does; the rollout replaces every pod of the owner, surging first.
    async fn restart(&mut self, c: &Candidate, o: &Owner) -> Attempt {
        let key = o.key(&c.namespace);
        if self.restarted.contains(&key) {
            return Attempt::Done {
                verdict: "restarted-owner".into(),
                message: Some(format!("{} {} restarted in this run", o.kind, o.name)),
            };
        }
        if o.paused {
            return Attempt::Done {
                verdict: Skip::OwnerPaused.verdict(),
                message: Some(format!(
                    "Deployment {} is paused: a restart would not roll out",
                    o.name
                )),
            };
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: self.now.to_string()}}}}});
        let pp = PatchParams {
            field_manager: Some(STEP.to_owned()),
            dry_run: self.cfg.dry_run == DryRun::Server,
            ..PatchParams::default()
        };
        let result: Result<(), kube::Error> = if self.cfg.dry_run == DryRun::Client {
            Ok(())
        } else {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let r = if o.kind == "Deployment" {
                Api::<Deployment>::namespaced(self.client.clone(), &c.namespace)
                    .patch(&o.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            } else {
                Api::<StatefulSet>::namespaced(self.client.clone(), &c.namespace)
                    .patch(&o.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            };
            let audit = match &r {
                Ok(()) => Ok(200),
                Err(kube::Error::Api(s)) => Err((Some(s.code), s.message.clone())),
                Err(e) => Err((None, e.to_string())),
            };
            self.audit().record(
                "rollout-restart",
                Target::namespaced(&o.kind, &c.namespace, &o.name),
                pp.dry_run,
                audit,
            );
            r
        };
        match result {
            Ok(()) => {
                self.restarted.insert(key.clone());
                self.count(c, Some(&key));
                self.report.totals.restarted_owners += 1;
                tracing::info!(namespace = %c.namespace, kind = %o.kind, owner = %o.name, "rollout restart");
                Attempt::Done {
                    verdict: "restarted-owner".into(),
                    message: Some(format!(
                        "{} {} rollout-restarted ({} replica(s){})",
                        o.kind,
                        o.name,
                        o.replicas.unwrap_or(0),
                        if c.pdb.is_none() { ", no PDB" } else { "" }
                    )),
                }
            }
            Err(e) => {
                let transient = opsteps::retry::is_transient_kube(&e);
                self.worst = self.worst.worst(if transient {
                    ExitStatus::Transient
                } else {
                    ExitStatus::Failed
                });
                Attempt::Done {
                    verdict: "failed".into(),
                    message: Some(format!("rollout restart of {} {}: {e}", o.kind, o.name)),
                }
            }
        }
    }

    /// A Normal Event on the evicted pod, as the descheduler records (reason PodLifeTime,
    /// action Descheduled). Best effort: a failed Event never fails the run.
    async fn event(&self, c: &Candidate) {
        let now = jiff::Timestamp::now();
        let lifetime = c
            .lifetime
            .map_or_else(|| "any".to_owned(), |l| format!("{l}s"));
        let ev = json!({
            "metadata": {"name": format!("{}.{:x}", c.name, now.as_nanosecond()), "namespace": c.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": c.namespace, "name": c.name, "uid": c.uid},
            "reason": EVENT_REASON,
            "action": "Descheduled",
            "message": format!("pod evicted by {STEP}: age {}s exceeds its lifetime {lifetime}", c.age),
            "type": "Normal",
            "source": {"component": STEP},
            "reportingComponent": STEP,
            "reportingInstance": STEP,
            "firstTimestamp": now.to_string(),
            "lastTimestamp": now.to_string(),
            "count": 1,
        });
        let Ok(ev) = serde_json::from_value::<Event>(ev) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &c.namespace);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let r = api.create(&PostParams::default(), &ev).await;
        let audit = match &r {
            Ok(_) => Ok(201),
            Err(kube::Error::Api(s)) => Err((Some(s.code), s.message.clone())),
            Err(e) => Err((None, e.to_string())),
        };
        if let Err(e) = &r {
            tracing::warn!(namespace = %c.namespace, pod = %c.name, error = %e, "cannot record the eviction Event");
        }
        self.audit().record(
            "create-event",
            Target::namespaced(
                "Event",
                &c.namespace,
                &ev.metadata.name.clone().unwrap_or_default(),
            ),
            false,
            audit,
        );
    }

    fn finish(mut self) -> Result<Report, StepError> {
        self.report.api_requests = self.requests.load(Ordering::Relaxed);
        self.report.tally();
        let mut status = self.worst;
        if self.report.totals.blocked > 0 {
            status = status.worst(ExitStatus::Blocked);
        }
        let out = &self.ctx.output;
        let write = |r: Result<(), opsteps::output::OutputError>| {
            r.map_err(|e| StepError::failed("cannot write the outputs").with_source(e))
        };
        let mut lines = self.evicted.join("\n");
        if !lines.is_empty() {
            lines.push('\n');
        }
        write(out.write("evicted-pods", &lines))?;
        write(out.write_json(
            "summary",
            &json!({
                "totals": self.report.totals,
                "skippedByReason": self.report.skipped_by_reason,
                "nextEvictionDue": self.report.next_eviction_due,
                "cycleSkipped": self.report.cycle_skipped,
                "dryRun": self.report.dry_run,
            }),
        ))?;
        write(out.write_json("report", &self.report))?;
        let summary = self.report.summary();
        let result = serde_json::to_value(self.report.capped(MAX_RESULT_PODS))
            .map_err(|e| StepError::failed("cannot serialise the report").with_source(e))?;
        Ok(Report {
            status,
            summary,
            result,
        })
    }
}

fn skip(s: Skip) -> Attempt {
    Attempt::Done {
        verdict: s.verdict(),
        message: None,
    }
}
