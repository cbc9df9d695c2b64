//! `drain-node`: cordon and drain nodes with `kubectl drain`'s filters and flags, a pre-flight
//! plan that refuses drains that cannot succeed before anything is cordoned, PDB-aware eviction
//! with backoff, a Lease per node so two drains never overlap, and node annotations that let a
//! retried Argo step resume where it stopped.
//!
//! Where it differs from `kubectl drain`, on purpose:
//! - a plan first: unsatisfiable budgets, pods under two budgets, opt-out annotations, missing
//!   capacity and kubectl's own refusals (unreplicated, emptyDir, DaemonSet) stop the run with
//!   exit 4 before the first cordon, instead of after a partial drain;
//! - pods already terminating are waited for, not evicted again; evictions carry the pod's UID
//!   as a precondition so a same-name replacement is never evicted;
//! - critical pods (`system-*-critical`) go last; evictions in flight are bounded;
//! - `--timeout` has a finite default (1h) because an Argo step must end inside its deadline.

pub mod args;
pub mod budgets;
pub mod capacity;
pub mod drain;
pub mod lease;
pub mod node_state;
pub mod plan;
pub mod reads;
pub mod replacements;
pub mod report;
pub mod shared;
pub mod targets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use opsteps::exit::StepError;
use opsteps::step::{Context, Report};
use serde_json::json;
use tracing::Instrument;

pub use crate::args::Args;
use crate::plan::NodePlan;
use crate::report::{NodeResult, NodeStatus};
use crate::shared::Shared;

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "drain-node";
/// The label EKS puts on the nodes of a managed node group.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";
/// Node annotation: who is draining it.
pub const ANN_OWNER: &str = "opsteps.io/drain-owner";
/// Node annotation: when the drain started (RFC 3339).
pub const ANN_STARTED: &str = "opsteps.io/drain-started-at";
/// Node annotation: `draining`, `drained`, `blocked`, `failed`.
pub const ANN_STATE: &str = "opsteps.io/drain-state";
/// Node annotation: whether the node was cordoned before the first drain touched it.
pub const ANN_PRIOR: &str = "opsteps.io/drain-prior-unschedulable";

/// SIGTERM before a mutation: the run stops with exit 3, nothing (more) written to the cluster.
fn interrupted(what: &str) -> StepError {
    StepError::transient(format!("SIGTERM {what}; nothing was changed after it"))
}

/// Runs the step.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    args::validate(&args)?;
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let client = conn.client.clone();
    let dry = args.dry_run;
    if ctx.shutdown.is_requested() {
        return Err(interrupted("while connecting"));
    }
    let reads = reads::Reads::new(&ctx.shutdown);
    // Every missing permission named up front (exit 2), not a 403 half-way through.
    opsteps::access::require(&client, &args.permissions(), &reads.retry()).await?;
    let targets = targets::resolve_targets(&client, &args, &reads).await?;
    let names: Vec<String> = targets.iter().map(ResourceExt::name_any).collect();
    tracing::info!(nodes = ?names, dry_run = ?dry, "draining");

    let plans = match plan::plan_all(&client, &args, &targets, &reads).await {
        Ok(p) => p,
        Err(e) => return report::stopped(&ctx, dry, &names, &[], &e),
    };
    plan::log_plan(&plans);
    ctx.output
        .write_json("plan", &json!(plans))
        .map_err(|e| StepError::failed("cannot write outputs").with_source(e))?;
    if let Some(report) = report::refusal(&ctx, dry, &plans)? {
        return Ok(report);
    }
    if ctx.shutdown.is_requested() {
        return report::stopped(&ctx, dry, &names, &plans, &interrupted("while planning"));
    }
    let me = lease::holder_identity();
    let held = match take_leases(&client, &args, &names, &me, &ctx).await {
        Ok(h) => h,
        Err(e) => return report::stopped(&ctx, dry, &names, &plans, &e),
    };
    let (cordoned, mut results) = node_state::cordon_all(&client, &ctx, &names, &me, dry).await;
    let shared = Arc::new(Shared {
        client: client.clone(),
        settings: args.settings(),
        audit: ctx.audit.clone(),
        shutdown: ctx.shutdown.clone(),
        output: ctx.output.clone(),
        me,
        leases: names
            .iter()
            .cloned()
            .zip(held.iter().map(lease::Held::guard))
            .collect(),
        done: AtomicU64::new(0),
        total: AtomicU64::new(plans.iter().map(|p| p.to_remove().count() as u64).sum()),
        blockers: std::sync::Mutex::new(BTreeMap::new()),
        budgets: budgets::Budgets::start(client.clone()),
    });
    let to_drain: Vec<&NodePlan> = plans
        .iter()
        .filter(|p| cordoned.contains_key(&p.node))
        .collect();
    for r in drain_all(
        &shared,
        args.parallel_nodes as usize,
        args.progress_interval.into(),
        &to_drain,
    )
    .await
    {
        results.insert(r.node.clone(), r);
    }
    let blocked = shared.blocker_report().await;
    if !dry.is_dry() {
        node_state::record_outcomes(
            &client,
            &ctx,
            args.uncordon_on_failure,
            &cordoned,
            &results,
            |node| shared.leases.get(node).is_some_and(|g| g.lost().is_some()),
        )
        .await;
    }
    // No write after SIGTERM: the leases stay, and a retry of this workflow takes them over.
    if !ctx.shutdown.is_requested() {
        for h in held {
            h.release(&ctx.audit).await;
        }
    }
    report::finish(
        &ctx,
        dry,
        cordoned.len(),
        &results.into_values().collect::<Vec<_>>(),
        &plans,
        &blocked,
    )
}

/// The drain leases of every node (none in a dry run).
async fn take_leases(
    client: &kube::Client,
    args: &Args,
    names: &[String],
    me: &str,
    ctx: &Context,
) -> Result<Vec<lease::Held>, StepError> {
    if args.dry_run.is_dry() {
        return Ok(Vec::new());
    }
    lease::take_all(
        client,
        &args.lease_namespace,
        names,
        me,
        args.lease_duration.into(),
        &ctx.audit,
        &ctx.shutdown,
    )
    .await
}

/// Drains up to `parallel` nodes at once. With replacement gating, a node whose owners do not
/// recover stops the nodes not yet started.
async fn drain_all(
    shared: &Arc<Shared>,
    parallel: usize,
    progress_interval: Duration,
    plans: &[&NodePlan],
) -> Vec<NodeResult> {
    shared.progress();
    let reporter = tokio::spawn(report::progress(shared.clone(), progress_interval));
    let sem = tokio::sync::Semaphore::new(parallel.max(1));
    let stop_new = AtomicBool::new(false);
    let runs = plans.iter().map(|plan| async {
        let _permit = sem.acquire().await;
        if stop_new.load(Ordering::Relaxed) || shared.stop(&plan.node).is_some() {
            let mut r = NodeResult::new(&plan.node, NodeStatus::NotStarted);
            r.not_evicted(
                "node",
                "not started: an earlier node did not finish, or SIGTERM",
            );
            return r;
        }
        tracing::info!(node = %plan.node, pods = plan.to_remove().count(), "draining node");
        let mut r = drain::drain_node(shared, plan).await;
        if let Some(t) = shared.settings.wait_for_replacements {
            let span = tracing::info_span!("replacements", node = %plan.node);
            if r.status == NodeStatus::Drained {
                let evicted: Vec<&Pod> = plan.to_remove().map(|p| &p.object).collect();
                let short = async {
                    let owners = replacements::owners_of(&shared.client, &evicted).await;
                    replacements::wait_for_replacements(
                        &shared.client,
                        &owners,
                        t,
                        &shared.shutdown,
                    )
                    .await
                }
                .instrument(span)
                .await;
                if !short.is_empty() {
                    r.status = NodeStatus::Blocked;
                    r.not_evicted(
                        "replacements",
                        format!("not back to their available replicas: {}", short.join("; ")),
                    );
                }
            }
            // A dry run evicts nothing, so there is nothing to wait for: it plans every node.
            if !matches!(r.status, NodeStatus::Drained | NodeStatus::DryRun) {
                stop_new.store(true, Ordering::Relaxed);
            }
        }
        r
    });
    let out = futures::future::join_all(runs).await;
    reporter.abort();
    out
}
