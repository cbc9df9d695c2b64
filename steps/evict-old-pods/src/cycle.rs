//! One eviction cycle, in the descheduler's order: Ready nodes (fewer than 2: no cycle), pods
//! listed page by page and reduced at once to the few past their lifetime ([`scan`]), oldest
//! first, limits checked total → node → namespace before each call, failures not counted
//! ([`attempt`]). Then the safety additions: per-owner cap and waiting for the owner to be
//! fully available ([`owners`]), rollout restart for unsafe owners ([`restart`]), a second
//! pass over PDB-refused pods within the retry budget.

mod attempt;
mod owners;
mod restart;
mod scan;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::exit::{ExitStatus, StepError};
use opsteps::list::{ListError, ListStats, Lister, Page};
use opsteps::step::{Context, Report};
use serde_json::json;
use tokio::time::Instant;
use tracing::instrument;

use crate::classify::Skip;
use crate::config::Config;
use crate::report::{MAX_RESULT_PODS, RunReport};

pub use attempt::EVENT_REASON;
pub use restart::RESTARTED_AT;

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
    owners: owners::Cache,
    restarted: HashSet<String>,
    /// Server dry run: disruptions each PDB still allows after the evictions we simulated.
    pdb_allowance: HashMap<String, i32>,
    report: RunReport,
    evicted: Vec<String>,
    worst: ExitStatus,
}

/// `now + d`, saturating at a distant instant instead of overflowing on an absurd duration.
fn instant_after(d: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_hours(100 * 365 * 24))
}

/// Runs one cycle and builds the step's report.
pub async fn run(client: &Client, cfg: &Config, ctx: &Context) -> Result<Report, StepError> {
    let now = cfg.now.unwrap_or_else(jiff::Timestamp::now);
    let deadline = instant_after(cfg.timeout);
    let mut run = Run {
        client,
        cfg,
        ctx,
        now,
        deadline,
        requests: AtomicU64::new(0),
        counts: Counts::default(),
        owners: owners::Cache::new(client, deadline, &ctx.shutdown),
        restarted: HashSet::new(),
        pdb_allowance: HashMap::new(),
        report: RunReport::new(cfg, now),
        evicted: Vec::new(),
        worst: ExitStatus::Done,
    };
    // An error after connecting still writes the outputs, with the error in the result: a
    // workflow reads one shape whatever happened, and SIGTERM during a list exits 3 like any
    // other phase.
    if let Err(e) = run.cycle().await {
        tracing::error!(error = %e.chain(), "the cycle stopped");
        run.worst = run.worst.worst(e.status());
        run.report.error = Some(e.chain());
    }
    run.finish()
}

/// The report of a run that has nothing to do (a policy whose PodLifeTime is disabled): no
/// request is sent, the outputs have their usual shape.
pub fn nothing_to_do(cfg: &Config, ctx: &Context, why: &str) -> Result<Report, StepError> {
    let now = cfg.now.unwrap_or_else(jiff::Timestamp::now);
    let mut report = RunReport::new(cfg, now);
    report.cycle_skipped = Some(why.to_owned());
    tracing::info!("no eviction cycle: {why}");
    write_outputs(&report, &[], ctx, ExitStatus::Done)
}

impl Run<'_> {
    /// Ready nodes, PDBs, the scan, then the evictions.
    async fn cycle(&mut self) -> Result<(), StepError> {
        let threshold = self.priority_threshold().await?;
        let mut ready_nodes = HashSet::new();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let listed = self
            .lister("nodes")
            .for_each_page(&nodes, &ListParams::default(), |page| match page {
                Page::Items(items) => ready_nodes.extend(
                    items
                        .iter()
                        .filter(|n| opsteps::nodes::is_ready(n))
                        .map(ResourceExt::name_any),
                ),
                Page::Restart => ready_nodes.clear(),
            })
            .await;
        self.listed(listed)?;
        self.report.ready_nodes = ready_nodes.len();
        if ready_nodes.len() < 2 {
            // The descheduler's guard: evicting on a one-node cluster only moves pods back.
            let why = format!(
                "{} Ready node(s); at least 2 are needed, as in the descheduler",
                ready_nodes.len()
            );
            tracing::warn!(ready_nodes = ready_nodes.len(), "no eviction cycle: {why}");
            self.report.cycle_skipped = Some(why);
            return Ok(());
        }
        let pdbs = self.list_pdbs().await?;
        let candidates = self.scan(&ready_nodes, &pdbs, threshold).await?;
        drop(ready_nodes);
        tracing::info!(
            scanned = self.report.totals.scanned,
            in_scope = self.report.totals.in_scope,
            past_lifetime = self.report.totals.past_lifetime,
            candidates = candidates.len(),
            "scan done"
        );
        self.evict_all(candidates).await;
        Ok(())
    }

    /// A paged lister for `what`, bounded by the run's deadline and ended by SIGTERM.
    fn lister(&self, what: &str) -> Lister {
        Lister::new(what)
            .deadline(self.deadline)
            .shutdown(&self.ctx.shutdown)
    }

    /// Counts a finished list's requests; its error becomes the step's.
    fn listed(&self, r: Result<ListStats, ListError>) -> Result<(), StepError> {
        let stats = r?;
        self.requests
            .fetch_add(stats.requests as u64, Ordering::Relaxed);
        Ok(())
    }

    fn audit(&self) -> &opsteps::audit::Auditor {
        &self.ctx.audit
    }

    #[instrument(skip_all, fields(class = self.cfg.evictor.priority_threshold_class), err)]
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

    #[instrument(skip_all, err)]
    async fn list_pdbs(&mut self) -> Result<Vec<PodDisruptionBudget>, StepError> {
        let mut out = Vec::new();
        let cfg = self.cfg;
        let wanted = |p: &PodDisruptionBudget| {
            let ns = p.namespace().unwrap_or_default();
            (cfg.namespaces.is_empty() || cfg.namespaces.contains(&ns))
                && !cfg.exclude_namespaces.contains(&ns)
        };
        let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        let listed = self
            .lister("poddisruptionbudgets")
            .for_each_page(&api, &ListParams::default(), |page| match page {
                Page::Items(items) => out.extend(items.into_iter().filter(wanted)),
                Page::Restart => out.clear(),
            })
            .await;
        self.listed(listed)?;
        for p in &out {
            let allowed = p.status.as_ref().map_or(0, |s| s.disruptions_allowed);
            self.pdb_allowance.insert(
                format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                allowed,
            );
        }
        Ok(out)
    }

    /// Marks the run failed: transient (exit 3) when a retry may succeed, else exit 1.
    fn failed(&mut self, transient: bool) {
        self.worst = self.worst.worst(if transient {
            ExitStatus::Transient
        } else {
            ExitStatus::Failed
        });
    }

    fn set(&mut self, c: &Candidate, verdict: String, message: Option<String>) {
        let e = &mut self.report.pods[c.entry];
        e.verdict = verdict;
        e.message = message;
    }

    fn finish(mut self) -> Result<Report, StepError> {
        self.report.api_requests = self.requests.load(Ordering::Relaxed) + self.owners.requests();
        write_outputs(&self.report, &self.evicted, self.ctx, self.worst)
    }
}

/// Tallies the report, writes the output files and builds the step's result: `worst` raised
/// to exit 4 when pods remain blocked, and exit 3 after SIGTERM whatever the phase.
fn write_outputs(
    report: &RunReport,
    evicted: &[String],
    ctx: &Context,
    worst: ExitStatus,
) -> Result<Report, StepError> {
    let mut report = report.clone();
    report.tally();
    let mut status = worst;
    if report.totals.blocked > 0 {
        status = status.worst(ExitStatus::Blocked);
    }
    // SIGTERM ends every phase with "transient", so Argo's retry rule runs the rest: a budget
    // still refusing when the signal came is not why the run stopped.
    if ctx.shutdown.is_requested() {
        status = ExitStatus::interrupted();
    }
    let out = &ctx.output;
    let write = |r: Result<(), opsteps::output::OutputError>| {
        r.map_err(|e| StepError::failed("cannot write the outputs").with_source(e))
    };
    let mut lines = evicted.join("\n");
    if !lines.is_empty() {
        lines.push('\n');
    }
    write(out.write("evicted-pods", &lines))?;
    // A bare number for Argo's metrics (a dry run counts what it would evict).
    write(out.write("evicted-count", &format!("{}\n", report.totals.evicted)))?;
    write(out.write_json(
        "summary",
        &json!({
            "totals": report.totals,
            "skippedByReason": report.skipped_by_reason,
            "nextEvictionDue": report.next_eviction_due,
            "cycleSkipped": report.cycle_skipped,
            "dryRun": report.dry_run,
        }),
    ))?;
    write(out.write_json("report", &report))?;
    let summary = report.summary();
    let result = serde_json::to_value(report.capped(MAX_RESULT_PODS))
        .map_err(|e| StepError::failed("cannot serialise the report").with_source(e))?;
    Ok(Report {
        status,
        summary,
        result,
    })
}

fn skip(s: Skip) -> attempt::Attempt {
    attempt::Attempt::Done {
        verdict: s.verdict(),
        message: None,
    }
}

/// The controller reference as shown in the report: a ReplicaSet named `<deploy>-<hash>`
/// whose pods carry `pod-template-hash=<hash>` is shown as its Deployment, without a request.
fn display_owner(pod: &Pod) -> Option<(String, String)> {
    let c = opsteps::evict::controller(pod)?;
    if c.kind == "ReplicaSet"
        && let Some(hash) = pod.labels().get("pod-template-hash")
        && let Some(dep) = c.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(("Deployment".into(), dep.to_owned()));
    }
    Some((c.kind.clone(), c.name.clone()))
}
