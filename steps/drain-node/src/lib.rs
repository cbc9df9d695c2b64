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

pub mod budgets;
pub mod drain;
pub mod lease;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{ArgAction, Parser};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::duration::GoDuration;
use opsteps::events::{self, EventType};
use opsteps::exit::{ExitStatus, StepError};
use opsteps::step::{Context, Report, StepArgs};
use serde_json::json;

use crate::drain::{NodeResult, NodeStatus, Settings, Shared};
use crate::plan::{Filters, Lookups, NodePlan, Verdict};

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

mod env {
    pub const NODE: &str = "OPSTEPS_DRAIN_NODE";
    pub const SELECTOR: &str = "OPSTEPS_DRAIN_SELECTOR";
    pub const NODEGROUP: &str = "OPSTEPS_DRAIN_NODEGROUP";
    pub const MAX_NODES: &str = "OPSTEPS_DRAIN_MAX_NODES";
    pub const GRACE_PERIOD: &str = "OPSTEPS_DRAIN_GRACE_PERIOD";
    pub const TIMEOUT: &str = "OPSTEPS_DRAIN_TIMEOUT";
    pub const FORCE: &str = "OPSTEPS_DRAIN_FORCE";
    pub const IGNORE_DAEMONSETS: &str = "OPSTEPS_DRAIN_IGNORE_DAEMONSETS";
    pub const DELETE_EMPTYDIR_DATA: &str = "OPSTEPS_DRAIN_DELETE_EMPTYDIR_DATA";
    pub const POD_SELECTOR: &str = "OPSTEPS_DRAIN_POD_SELECTOR";
    pub const DISABLE_EVICTION: &str = "OPSTEPS_DRAIN_DISABLE_EVICTION";
    pub const SKIP_WAIT: &str = "OPSTEPS_DRAIN_SKIP_WAIT_FOR_DELETE_TIMEOUT";
    pub const PARALLEL_NODES: &str = "OPSTEPS_DRAIN_PARALLEL_NODES";
    pub const MAX_IN_FLIGHT: &str = "OPSTEPS_DRAIN_MAX_IN_FLIGHT";
    pub const WAIT_FOR_REPLACEMENTS: &str = "OPSTEPS_DRAIN_WAIT_FOR_REPLACEMENTS";
    pub const REPLACEMENT_TIMEOUT: &str = "OPSTEPS_DRAIN_REPLACEMENT_TIMEOUT";
    pub const UNCORDON_ON_FAILURE: &str = "OPSTEPS_DRAIN_UNCORDON_ON_FAILURE";
    pub const IGNORE_DO_NOT_DISRUPT: &str = "OPSTEPS_DRAIN_IGNORE_DO_NOT_DISRUPT";
    pub const SKIP_CAPACITY_CHECK: &str = "OPSTEPS_DRAIN_SKIP_CAPACITY_CHECK";
    pub const LEASE_NAMESPACE: &str = "OPSTEPS_DRAIN_LEASE_NAMESPACE";
    pub const LEASE_DURATION: &str = "OPSTEPS_DRAIN_LEASE_DURATION";
    pub const PROGRESS_INTERVAL: &str = "OPSTEPS_DRAIN_PROGRESS_INTERVAL";
}

/// Cordon and drain nodes: kubectl drain parity, PodDisruptionBudget-aware, resumable.
#[derive(Parser, Debug, Clone)]
#[command(name = STEP, version, about, long_about = None)]
pub struct Args {
    /// Node to drain; repeat or comma-separate for several.
    #[arg(long = "node", value_name = "NAME", env = env::NODE, value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// Drain the nodes matching this label selector.
    #[arg(long, short = 'l', value_name = "SELECTOR", env = env::SELECTOR, conflicts_with = "nodes")]
    pub selector: Option<String>,

    /// Drain the nodes of this EKS managed node group (label eks.amazonaws.com/nodegroup).
    #[arg(long, value_name = "NAME", env = env::NODEGROUP, conflicts_with = "nodes")]
    pub nodegroup: Option<String>,

    /// Refuse to drain more nodes than this, so a selector typo cannot drain a cluster.
    #[arg(long, value_name = "N", default_value_t = 5, env = env::MAX_NODES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_nodes: u32,

    /// Seconds each pod gets to terminate; -1 uses the pod's own terminationGracePeriodSeconds.
    #[arg(long, value_name = "SECONDS", default_value_t = -1, allow_negative_numbers = true, env = env::GRACE_PERIOD, value_parser = clap::value_parser!(i64).range(-1..))]
    pub grace_period: i64,

    /// How long to keep draining one node before giving up (0: no limit, as in kubectl).
    #[arg(long, value_name = "DURATION", default_value = "1h", env = env::TIMEOUT)]
    pub timeout: GoDuration,

    /// Also delete pods that declare no controller, and orphaned DaemonSet pods.
    #[arg(long, env = env::FORCE)]
    pub force: bool,

    /// Leave DaemonSet-managed pods in place (default: on; --ignore-daemonsets=false refuses
    /// nodes that run DaemonSet pods, like kubectl without the flag).
    #[arg(long, env = env::IGNORE_DAEMONSETS, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_daemonsets: bool,

    /// Evict pods that use emptyDir volumes (their data is lost).
    #[arg(long, env = env::DELETE_EMPTYDIR_DATA)]
    pub delete_emptydir_data: bool,

    /// Only consider pods matching this label selector.
    #[arg(long, value_name = "SELECTOR", env = env::POD_SELECTOR)]
    pub pod_selector: Option<String>,

    /// Delete pods instead of evicting them: bypasses PodDisruptionBudgets. Use with care.
    #[arg(long, env = env::DISABLE_EVICTION)]
    pub disable_eviction: bool,

    /// Treat pods terminating for longer than this many seconds as gone (0: wait for all).
    #[arg(long, value_name = "SECONDS", default_value_t = 0, env = env::SKIP_WAIT)]
    pub skip_wait_for_delete_timeout: u64,

    /// none: drain; client: print the plan only; server: also ask the API server (dryRun=All),
    /// so each PodDisruptionBudget verdict is real.
    #[arg(long, value_enum, default_value_t, env = opsteps::env::DRY_RUN)]
    pub dry_run: DryRun,

    /// Nodes drained at the same time.
    #[arg(long, value_name = "N", default_value_t = 1, env = env::PARALLEL_NODES, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel_nodes: u32,

    /// Eviction requests in flight at once, per node.
    #[arg(long, value_name = "N", default_value_t = 10, env = env::MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Before the next node, wait until the evicted pods' Deployments and StatefulSets have
    /// their available replica count back.
    #[arg(long, env = env::WAIT_FOR_REPLACEMENTS)]
    pub wait_for_replacements: bool,

    /// How long to wait for replacements (with --wait-for-replacements).
    #[arg(long, value_name = "DURATION", default_value = "10m", env = env::REPLACEMENT_TIMEOUT)]
    pub replacement_timeout: GoDuration,

    /// Uncordon the nodes this run cordoned when the drain does not finish (off, like kubectl).
    #[arg(long, env = env::UNCORDON_ON_FAILURE)]
    pub uncordon_on_failure: bool,

    /// Evict pods annotated karpenter.sh/do-not-disrupt=true or
    /// cluster-autoscaler.kubernetes.io/safe-to-evict=false (they block the drain otherwise).
    #[arg(long, env = env::IGNORE_DO_NOT_DISRUPT)]
    pub ignore_do_not_disrupt: bool,

    /// Skip the check that the remaining schedulable nodes can hold the evicted pods.
    #[arg(long, env = env::SKIP_CAPACITY_CHECK)]
    pub skip_capacity_check: bool,

    /// Namespace of the per-node drain Leases.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system", env = env::LEASE_NAMESPACE)]
    pub lease_namespace: String,

    /// How long a drain Lease stays valid without renewal (a crashed drain frees the node after
    /// this; a retry of the same Argo workflow takes it over at once).
    #[arg(long, value_name = "DURATION", default_value = "60s", env = env::LEASE_DURATION)]
    pub lease_duration: GoDuration,

    /// How often to log what is still blocking.
    #[arg(long, value_name = "DURATION", default_value = "30s", env = env::PROGRESS_INTERVAL)]
    pub progress_interval: GoDuration,

    /// Flags shared by every step.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StepArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Checks what can be checked before any request.
fn validate(args: &Args) -> Result<(), StepError> {
    let given = usize::from(!args.nodes.is_empty())
        + usize::from(args.selector.is_some())
        + usize::from(args.nodegroup.is_some());
    if given == 0 {
        return Err(StepError::bad_input(
            "no nodes selected; give --node NAME, --selector LABELS or --nodegroup NAME",
        ));
    }
    if args.selector.is_some() && args.nodegroup.is_some() {
        return Err(StepError::bad_input(
            "--selector and --nodegroup both select nodes; give one",
        ));
    }
    if args.nodes.iter().any(String::is_empty) {
        return Err(StepError::bad_input("--node needs a node name"));
    }
    for (flag, sel) in [
        ("--selector", &args.selector),
        ("--pod-selector", &args.pod_selector),
    ] {
        if let Some(s) = sel {
            opsteps::selector::validate(s)
                .map_err(|e| StepError::bad_input(format!("{flag}: {e}")))?;
        }
    }
    if args.nodegroup.as_deref().is_some_and(|n| {
        !n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }) {
        return Err(StepError::bad_input(
            "--nodegroup: a node group name has only letters, digits, '-', '_' and '.'",
        ));
    }
    if args.lease_duration.is_zero() {
        return Err(StepError::bad_input(
            "--lease-duration must be more than 0s",
        ));
    }
    if args.progress_interval.is_zero() {
        return Err(StepError::bad_input(
            "--progress-interval must be more than 0s",
        ));
    }
    Ok(())
}

/// The nodes the flags select, refusing empty and oversized selections.
async fn resolve_targets(client: &Client, args: &Args) -> Result<Vec<Node>, StepError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = Vec::new();
    if args.nodes.is_empty() {
        let sel = match (&args.selector, &args.nodegroup) {
            (Some(s), _) => s.clone(),
            (None, Some(ng)) => format!("{NODEGROUP_LABEL}={ng}"),
            (None, None) => String::new(),
        };
        let list = api
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 400 => StepError::bad_input(format!(
                    "the API server refused the node selector {sel:?}"
                ))
                .with_source(e),
                _ => StepError::kube("list nodes", e),
            })?;
        if list.items.is_empty() {
            return Err(StepError::bad_input(format!(
                "no node matches {sel:?}; nothing to drain"
            )));
        }
        nodes = list.items;
    } else {
        let mut seen = std::collections::BTreeSet::new();
        for name in &args.nodes {
            if !seen.insert(name.clone()) {
                continue;
            }
            match api
                .get_opt(name)
                .await
                .map_err(|e| StepError::kube(format!("get node {name}"), e))?
            {
                Some(n) => nodes.push(n),
                None => return Err(StepError::bad_input(format!("node {name:?} not found"))),
            }
        }
    }
    if nodes.len() > args.max_nodes as usize {
        return Err(StepError::bad_input(format!(
            "the selection matches {} nodes, more than --max-nodes {}; refusing (raise --max-nodes if that is meant)",
            nodes.len(),
            args.max_nodes
        )));
    }
    nodes.sort_by_key(ResourceExt::name_any);
    Ok(nodes)
}

async fn plan_all(
    client: &Client,
    args: &Args,
    targets: &[Node],
) -> Result<Vec<NodePlan>, StepError> {
    let filters = Filters {
        force: args.force,
        ignore_daemonsets: args.ignore_daemonsets,
        delete_emptydir_data: args.delete_emptydir_data,
        skip_wait_for_delete_timeout: args.skip_wait_for_delete_timeout,
        ignore_do_not_disrupt: args.ignore_do_not_disrupt,
        disable_eviction: args.disable_eviction,
    };
    let mut lookups = Lookups::new(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let mut plans = Vec::new();
    for node in targets {
        let name = node.name_any();
        let mut lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
        if let Some(s) = &args.pod_selector {
            lp = lp.labels(s);
        }
        let list = opsteps::evict::list_pods(&pods, &lp)
            .await
            .map_err(|e| StepError::kube(format!("list pods on {name}"), e))?;
        plans.push(plan::plan_node(&name, list, &filters, &mut lookups).await?);
    }
    if !args.skip_capacity_check {
        let names: Vec<String> = targets.iter().map(ResourceExt::name_any).collect();
        let misfits = plan::capacity_check(client, &names, &plans).await?;
        for (pod, reason) in misfits {
            if let Some(p) = plans
                .iter_mut()
                .flat_map(|n| n.pods.iter_mut())
                .find(|p| p.pod == pod)
            {
                p.verdict = Verdict::Block { reason };
            }
        }
    }
    Ok(plans)
}

fn log_plan(plans: &[NodePlan]) {
    for n in plans {
        let evict = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Evict { .. }))
            .count();
        let wait = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Wait))
            .count();
        let skip = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Skip { .. }))
            .count();
        let block = n.blocking().count();
        tracing::info!(node = %n.node, evict, wait, skip, block, "plan");
        for p in &n.pods {
            match &p.verdict {
                Verdict::Block { reason } => {
                    tracing::warn!(node = %n.node, pod = %p.pod, reason = %reason, "blocking");
                }
                Verdict::Skip { reason } => {
                    tracing::info!(node = %n.node, pod = %p.pod, reason = %reason, "skip");
                }
                Verdict::Evict { warning: Some(w) } => {
                    tracing::warn!(node = %n.node, pod = %p.pod, warning = %w, "evict");
                }
                _ => {}
            }
        }
    }
}

/// Cordons `node` and records the drain in its annotations.
async fn cordon(
    client: &Client,
    ctx: &Context,
    node: &Node,
    me: &str,
    dry: DryRun,
) -> Result<(), StepError> {
    let name = node.name_any();
    let ann = node.annotations();
    let was_unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    // Keep the first run's record: a resumed drain must not forget that we did the cordoning.
    let prior = ann
        .get(ANN_PRIOR)
        .cloned()
        .unwrap_or_else(|| was_unschedulable.to_string());
    let started = ann
        .get(ANN_STARTED)
        .filter(|_| ann.get(ANN_OWNER).is_some_and(|o| o == me))
        .cloned()
        .unwrap_or_else(|| jiff::Timestamp::now().to_string());
    let patch = json!({
        "spec": { "unschedulable": true },
        "metadata": { "annotations": { ANN_OWNER: me, ANN_STARTED: started, ANN_STATE: "draining", ANN_PRIOR: prior } },
    });
    annotate(client, ctx, &name, "cordon", &patch, dry).await?;
    tracing::info!(node = %name, "cordoned");
    Ok(())
}

async fn annotate(
    client: &Client,
    ctx: &Context,
    node: &str,
    action: &str,
    patch: &serde_json::Value,
    dry: DryRun,
) -> Result<(), StepError> {
    if dry == DryRun::Client {
        return Ok(());
    }
    let api: Api<Node> = Api::all(client.clone());
    let pp = PatchParams {
        dry_run: dry == DryRun::Server,
        ..PatchParams::default()
    };
    let r = api.patch(node, &pp, &Patch::Merge(patch)).await;
    let target = opsteps::audit::Target::cluster("Node", node);
    match r {
        Ok(_) => {
            ctx.audit.record(action, target, pp.dry_run, Ok(200));
            Ok(())
        }
        Err(e) => {
            ctx.audit
                .record(action, target, pp.dry_run, Err((None, e.to_string())));
            Err(StepError::kube(format!("{action} node {node}"), e))
        }
    }
}

/// Runs the step.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    validate(&args)?;
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let client = conn.client.clone();
    let dry = args.dry_run;
    let targets = resolve_targets(&client, &args).await?;
    let names: Vec<String> = targets.iter().map(ResourceExt::name_any).collect();
    tracing::info!(nodes = ?names, dry_run = ?dry, "draining");

    let plans = plan_all(&client, &args, &targets).await?;
    log_plan(&plans);
    write(&ctx, "plan", &json!(plans))?;
    if let Some(report) = refuse_if_blocked(&ctx, dry, &names, &plans)? {
        return Ok(report);
    }
    let me = lease::holder_identity();
    let held = if dry.is_dry() {
        Vec::new()
    } else {
        take_leases(&client, &args, &names, &me, &ctx).await?
    };
    let (cordoned, mut results) = cordon_all(&client, &ctx, &targets, &me, dry).await;
    let shared = Arc::new(Shared {
        client: client.clone(),
        settings: Settings {
            grace_period: (args.grace_period >= 0).then_some(args.grace_period),
            timeout: (!args.timeout.is_zero()).then(|| args.timeout.into()),
            skip_wait: (args.skip_wait_for_delete_timeout > 0)
                .then(|| Duration::from_secs(args.skip_wait_for_delete_timeout)),
            max_in_flight: args.max_in_flight as usize,
            disable_eviction: args.disable_eviction,
            dry_run: dry,
            wait_for_replacements: args
                .wait_for_replacements
                .then(|| args.replacement_timeout.into()),
        },
        audit: ctx.audit.clone(),
        shutdown: ctx.shutdown.clone(),
        output: ctx.output.clone(),
        done: AtomicU64::new(0),
        total: AtomicU64::new(plans.iter().map(|p| p.to_remove().count() as u64).sum()),
        blockers: std::sync::Mutex::new(BTreeMap::new()),
        budgets: budgets::Budgets::start(client.clone()),
    });
    let to_drain: Vec<&NodePlan> = plans
        .iter()
        .filter(|p| cordoned.contains(&p.node))
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
        record_outcomes(
            &client,
            &ctx,
            args.uncordon_on_failure,
            &targets,
            &cordoned,
            &results,
        )
        .await;
    }
    for h in held {
        h.release(&ctx.audit).await;
    }
    finish(
        &ctx,
        dry,
        &names,
        cordoned.len(),
        &results.into_values().collect::<Vec<_>>(),
        &plans,
        &blocked,
    )
}

fn write(ctx: &Context, name: &str, v: &serde_json::Value) -> Result<(), StepError> {
    ctx.output
        .write_json(name, v)
        .map_err(|e| StepError::failed("cannot write outputs").with_source(e))
}

/// When the plan has blocking pods: the report (exit 4), with nothing cordoned.
fn refuse_if_blocked(
    ctx: &Context,
    dry: DryRun,
    names: &[String],
    plans: &[NodePlan],
) -> Result<Option<Report>, StepError> {
    let blocking: Vec<serde_json::Value> = plans
        .iter()
        .flat_map(|n| n.blocking().map(move |p| (n, p)))
        .map(|(n, p)| {
            let reason = match &p.verdict {
                Verdict::Block { reason } => reason.as_str(),
                _ => "",
            };
            json!({ "node": n.node, "pod": p.pod, "owner": p.owner, "pdb": p.pdb, "reason": reason })
        })
        .collect();
    let Some(first) = blocking.first() else {
        return Ok(None);
    };
    let first = format!(
        "{} on {}: {}",
        first["pod"].as_str().unwrap_or(""),
        first["node"].as_str().unwrap_or(""),
        first["reason"].as_str().unwrap_or("")
    );
    let summary =
        json!({ "nodes": names.len(), "drained": 0, "blocking": blocking.len(), "cordoned": 0 });
    write(ctx, "blocked-pods", &json!(blocking))?;
    write(ctx, "drained-nodes", &json!([]))?;
    write(ctx, "summary", &summary)?;
    Ok(Some(Report {
        status: ExitStatus::Blocked,
        summary: format!(
            "the drain cannot succeed; nothing was cordoned. {} blocking pod(s), first: {first}",
            blocking.len()
        ),
        result: json!({ "dryRun": dry, "nodes": [], "plan": plans, "blocked": blocking, "summary": summary }),
    }))
}

/// One Lease per node; all or nothing.
async fn take_leases(
    client: &Client,
    args: &Args,
    names: &[String],
    me: &str,
    ctx: &Context,
) -> Result<Vec<lease::Held>, StepError> {
    let mut held = Vec::new();
    for n in names {
        match lease::acquire(
            client,
            &args.lease_namespace,
            n,
            me,
            args.lease_duration.into(),
            &ctx.audit,
        )
        .await
        {
            Ok(Ok(h)) => held.push(h),
            other => {
                for h in held {
                    h.release(&ctx.audit).await;
                }
                return Err(match other {
                    Ok(Err(busy)) => StepError::blocked(format!(
                        "node {n} is being drained by {} (lease renewed {}s ago); not touching it",
                        busy.holder, busy.renewed_secs_ago
                    )),
                    Err(e) => e,
                    Ok(Ok(_)) => unreachable!("handled above"),
                });
            }
        }
    }
    Ok(held)
}

/// Cordons every target first, as kubectl does; a failed cordon fails that node only.
async fn cordon_all(
    client: &Client,
    ctx: &Context,
    targets: &[Node],
    me: &str,
    dry: DryRun,
) -> (Vec<String>, BTreeMap<String, NodeResult>) {
    let mut cordoned = Vec::new();
    let mut results = BTreeMap::new();
    for node in targets {
        let name = node.name_any();
        match cordon(client, ctx, node, me, dry).await {
            Ok(()) => {
                if !dry.is_dry() {
                    events::record(
                        client,
                        &ctx.audit,
                        STEP,
                        node,
                        EventType::Normal,
                        "DrainStarted",
                        &format!("Cordoned by {me}; draining"),
                    )
                    .await;
                }
                cordoned.push(name);
            }
            Err(e) => {
                tracing::error!(node = %name, error = %e.chain(), "cannot cordon");
                results.insert(
                    name.clone(),
                    NodeResult {
                        node: name,
                        status: NodeStatus::Failed,
                        evicted: vec![],
                        not_evicted: vec![("node".into(), e.chain())],
                        dry_run: BTreeMap::new(),
                    },
                );
            }
        }
    }
    (cordoned, results)
}

/// Drains up to `parallel` nodes at once. With replacement gating, a node whose owners do not
/// recover stops the nodes not yet started.
async fn drain_all(
    shared: &Arc<Shared>,
    parallel: usize,
    progress_interval: Duration,
    plans: &[&NodePlan],
) -> Vec<NodeResult> {
    shared
        .output
        .progress(0, shared.total.load(Ordering::Relaxed));
    let reporter = tokio::spawn(report_progress(shared.clone(), progress_interval));
    let sem = tokio::sync::Semaphore::new(parallel.max(1));
    let stop_new = std::sync::atomic::AtomicBool::new(false);
    let runs = plans.iter().map(|plan| async {
        let _permit = sem.acquire().await;
        if stop_new.load(Ordering::Relaxed) || shared.shutdown.is_requested() {
            return NodeResult {
                node: plan.node.clone(),
                status: NodeStatus::NotStarted,
                evicted: vec![],
                not_evicted: vec![],
                dry_run: BTreeMap::new(),
            };
        }
        tracing::info!(node = %plan.node, pods = plan.to_remove().count(), "draining node");
        let mut r = drain::drain_node(shared, plan).await;
        if let Some(t) = shared.settings.wait_for_replacements {
            if r.status == NodeStatus::Drained {
                let evicted: Vec<&Pod> = plan.to_remove().map(|p| &p.object).collect();
                let owners = drain::owners_of(&shared.client, &evicted).await;
                let short =
                    drain::wait_for_replacements(&shared.client, &owners, t, &shared.shutdown)
                        .await;
                if !short.is_empty() {
                    r.status = NodeStatus::Blocked;
                    r.not_evicted.push((
                        "replacements".into(),
                        format!("not back to their available replicas: {}", short.join("; ")),
                    ));
                }
            }
            if r.status != NodeStatus::Drained {
                stop_new.store(true, Ordering::Relaxed);
            }
        }
        r
    });
    let out = futures::future::join_all(runs).await;
    reporter.abort();
    out
}

/// Writes the outcome on each cordoned node (annotation, Event) and uncordons on failure when
/// asked and when the node was schedulable before the first drain.
async fn record_outcomes(
    client: &Client,
    ctx: &Context,
    uncordon_on_failure: bool,
    targets: &[Node],
    cordoned: &[String],
    results: &BTreeMap<String, NodeResult>,
) {
    for r in results.values().filter(|r| cordoned.contains(&r.node)) {
        let Some(node) = targets.iter().find(|n| n.name_any() == r.node) else {
            continue;
        };
        let (state, etype, reason) = match r.status {
            NodeStatus::Drained | NodeStatus::DryRun => ("drained", EventType::Normal, "Drained"),
            NodeStatus::Blocked | NodeStatus::TimedOut => {
                ("blocked", EventType::Warning, "DrainBlocked")
            }
            NodeStatus::Interrupted | NodeStatus::NotStarted | NodeStatus::Transient => {
                ("interrupted", EventType::Warning, "DrainInterrupted")
            }
            NodeStatus::Failed => ("failed", EventType::Warning, "DrainFailed"),
        };
        let detail = if r.not_evicted.is_empty() {
            format!("{} pods evicted: {}", r.evicted.len(), r.evicted.join(", "))
        } else {
            let rest: Vec<String> = r
                .not_evicted
                .iter()
                .map(|(p, w)| format!("{p} ({w})"))
                .collect();
            format!(
                "{} pods evicted, {} remain: {}",
                r.evicted.len(),
                r.not_evicted.len(),
                rest.join(", ")
            )
        };
        let uncordon = uncordon_on_failure
            && r.status != NodeStatus::Drained
            && node
                .annotations()
                .get(ANN_PRIOR)
                .is_none_or(|p| p == "false");
        let patch = if uncordon {
            json!({ "spec": { "unschedulable": false }, "metadata": { "annotations": { ANN_STATE: state, ANN_OWNER: null, ANN_STARTED: null, ANN_PRIOR: null } } })
        } else {
            json!({ "metadata": { "annotations": { ANN_STATE: state } } })
        };
        if let Err(e) = annotate(
            client,
            ctx,
            &r.node,
            if uncordon { "uncordon" } else { "annotate" },
            &patch,
            DryRun::None,
        )
        .await
        {
            tracing::warn!(node = %r.node, error = %e.chain(), "cannot record the drain outcome on the node");
        }
        events::record(client, &ctx.audit, STEP, node, etype, reason, &detail).await;
    }
}

/// The exit status, outputs and result of a run that got past the plan.
fn finish(
    ctx: &Context,
    dry: DryRun,
    names: &[String],
    cordoned: usize,
    results: &[NodeResult],
    plans: &[NodePlan],
    blocked: &[drain::BlockedPod],
) -> Result<Report, StepError> {
    let drained: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.status, NodeStatus::Drained | NodeStatus::DryRun))
        .map(|r| r.node.as_str())
        .collect();
    let evicted: usize = results.iter().map(|r| r.evicted.len()).sum();
    let mut status = results.iter().fold(ExitStatus::Done, |acc, r| {
        acc.worst(match r.status {
            NodeStatus::Drained | NodeStatus::DryRun => ExitStatus::Done,
            NodeStatus::Blocked | NodeStatus::TimedOut => ExitStatus::Blocked,
            NodeStatus::Failed => ExitStatus::Failed,
            NodeStatus::Transient | NodeStatus::Interrupted | NodeStatus::NotStarted => {
                ExitStatus::Transient
            }
        })
    });
    if ctx.shutdown.is_requested() && drained.len() < names.len() {
        status = status.worst(ExitStatus::Transient);
    }
    let summary = json!({ "nodes": names.len(), "cordoned": cordoned, "drained": drained.len(), "evicted": evicted, "blocked": blocked.len(), "dryRun": dry });
    write(ctx, "drained-nodes", &json!(drained))?;
    write(ctx, "blocked-pods", &json!(blocked))?;
    write(ctx, "summary", &summary)?;
    let line = match status {
        ExitStatus::Done if dry.is_dry() => format!(
            "dry run: {} node(s) would drain, {evicted} pod(s) would be evicted",
            drained.len()
        ),
        ExitStatus::Done => format!(
            "drained {} node(s), {evicted} pod(s) evicted",
            drained.len()
        ),
        _ => {
            let stuck: Vec<String> = results
                .iter()
                .flat_map(|r| {
                    r.not_evicted
                        .iter()
                        .map(move |(p, w)| format!("{p} on {}: {w}", r.node))
                })
                .take(5)
                .collect();
            format!(
                "drained {} of {} node(s); remaining: {}",
                drained.len(),
                names.len(),
                stuck.join("; ")
            )
        }
    };
    Ok(Report {
        status,
        summary: line,
        result: json!({ "dryRun": dry, "nodes": results, "plan": plans, "blocked": blocked, "summary": summary }),
    })
}

/// Every `interval`, logs each pod still blocking: pod, owner, PDB, its current/desired healthy,
/// seconds blocked and the API server's last message.
async fn report_progress(shared: Arc<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let done = shared.done.load(Ordering::Relaxed);
        let total = shared.total.load(Ordering::Relaxed);
        let blockers = shared.blocker_report().await;
        tracing::info!(done, total, blocked = blockers.len(), "progress");
        for b in blockers {
            tracing::warn!(
                pod = %b.pod,
                node = %b.node,
                owner = b.owner.as_deref().unwrap_or(""),
                pdb = b.pdb.as_deref().unwrap_or(""),
                current_healthy = b.current_healthy.unwrap_or(-1),
                desired_healthy = b.desired_healthy.unwrap_or(-1),
                seconds_blocked = b.seconds_blocked,
                last_message = %b.last_message,
                "still blocked"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec![STEP];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn kubectl_defaults() {
        let a = args(&["--node", "a"]);
        assert_eq!(a.grace_period, -1);
        assert!(a.ignore_daemonsets, "default on");
        assert!(
            !a.force && !a.delete_emptydir_data && !a.disable_eviction && !a.uncordon_on_failure
        );
        assert_eq!(a.dry_run, DryRun::None);
        let a = args(&[
            "--node",
            "a",
            "--ignore-daemonsets=false",
            "--grace-period",
            "0",
            "--dry-run",
            "server",
        ]);
        assert!(!a.ignore_daemonsets);
        assert_eq!(a.grace_period, 0);
        assert_eq!(a.dry_run, DryRun::Server);
        let a = args(&["--node", "a,b", "--node", "c"]);
        assert_eq!(a.nodes, ["a", "b", "c"]);
    }

    #[test]
    fn bad_inputs_are_refused_before_any_request() {
        let bad = |extra: &[&str]| validate(&args(extra)).unwrap_err();
        assert!(bad(&[]).to_string().contains("no nodes selected"));
        assert!(
            bad(&["--selector", "app=we b"])
                .to_string()
                .contains("--selector")
        );
        assert!(
            bad(&["--nodegroup", "x", "--pod-selector", "=x"])
                .to_string()
                .contains("--pod-selector")
        );
        assert!(
            bad(&["--selector", "a=b", "--nodegroup", "x"])
                .to_string()
                .contains("give one")
        );
        assert_eq!(bad(&[]).status(), ExitStatus::BadInput);
        // Conflicts and ranges are clap's (exit 2).
        for extra in [
            &["--node", "a", "--selector", "x=y"][..],
            &["--node", "a", "--grace-period", "-2"],
            &["--node", "a", "--parallel-nodes", "0"],
            &["--node", "a", "--timeout", "5"],
        ] {
            let mut v = vec![STEP];
            v.extend_from_slice(extra);
            assert_eq!(
                Args::try_parse_from(v).unwrap_err().exit_code(),
                2,
                "{extra:?}"
            );
        }
    }
}
