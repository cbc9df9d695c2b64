//! `evict-old-pods`: Evict pods older than a lifetime, like the descheduler's PodLifeTime, more safely.
//!
//! Restarts leaky long-lived pods (for example every 8 h) without breaking budgets. One run is
//! one descheduler cycle: list Ready nodes and pods (paged), keep the pods past their lifetime
//! that the DefaultEvictor rules allow, sort them oldest first, and evict them within the
//! per-node/namespace/total limits. On top of the descheduler: a per-owner cap, waiting for the
//! replacement before the next pod of the same owner, a stable per-pod spread, rollout restart
//! for owners that cannot be evicted safely, 429 retries within a budget, and a server-side
//! dry run whose PDB verdicts are real.

pub mod classify;
pub mod config;
pub mod cycle;
pub mod env;
pub mod policy;
pub mod rbac;
pub mod report;

use clap::{ArgAction, Parser, ValueEnum};
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;
use opsteps::step::{Context, Report, StepArgs};

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "evict-old-pods";

/// What to do with a pod past its lifetime.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Evict every candidate through the Eviction API (the descheduler's behaviour).
    #[default]
    Evict,
    /// Evict, except for pods whose Deployment/StatefulSet cannot lose a pod safely (one
    /// replica, or no PDB): patch the owner's pod template (`kubectl.kubernetes.io/restartedAt`)
    /// so the rollout starts the new pod before the old one goes.
    Restart,
}

/// Evict pods older than a lifetime, like the descheduler's PodLifeTime, more safely.
#[derive(Parser, Debug, Clone)]
#[command(name = STEP, version, about, long_about = None)]
#[allow(clippy::struct_field_names)]
pub struct Args {
    /// Evict pods whose age (from creationTimestamp, in whole seconds) is strictly greater
    /// than this Go duration, e.g. 8h. Required unless --max-pod-lifetime-seconds, --states or
    /// --policy gives it.
    #[arg(long, env = env::MAX_POD_LIFETIME, value_name = "DURATION")]
    pub max_pod_lifetime: Option<GoDuration>,

    /// The same lifetime in seconds, as the descheduler's maxPodLifeTimeSeconds.
    #[arg(long, env = env::MAX_POD_LIFETIME_SECONDS, value_name = "SECONDS")]
    pub max_pod_lifetime_seconds: Option<u64>,

    /// Only pods in one of these states (comma-separated descheduler names: phases such as
    /// Running, pod reasons such as NodeLost, container reasons such as CrashLoopBackOff or
    /// OOMKilled). Default: every state.
    #[arg(long, env = env::STATES, value_delimiter = ',', value_name = "STATE,...")]
    pub states: Vec<String>,

    /// Also match --states against init container statuses.
    #[arg(long, env = env::INCLUDING_INIT_CONTAINERS)]
    pub including_init_containers: bool,

    /// Also match --states against ephemeral container statuses.
    #[arg(long, env = env::INCLUDING_EPHEMERAL_CONTAINERS)]
    pub including_ephemeral_containers: bool,

    /// Only pods in these namespaces (comma-separated). Not with --exclude-namespaces.
    #[arg(long, env = env::NAMESPACES, value_delimiter = ',', value_name = "NS,...")]
    pub namespaces: Vec<String>,

    /// Pods in every namespace but these (comma-separated). Not with --namespaces.
    #[arg(long, env = env::EXCLUDE_NAMESPACES, value_delimiter = ',', value_name = "NS,...")]
    pub exclude_namespaces: Vec<String>,

    /// Only pods matching this label selector (kubectl syntax: app=web,tier in (fe,be),!canary).
    #[arg(long, short = 'l', env = env::SELECTOR, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Evict at most this many pods per node in one run (maxNoOfPodsToEvictPerNode).
    #[arg(long, env = env::MAX_PER_NODE, value_name = "N")]
    pub max_per_node: Option<u32>,

    /// Evict at most this many pods per namespace in one run (maxNoOfPodsToEvictPerNamespace).
    #[arg(long, env = env::MAX_PER_NAMESPACE, value_name = "N")]
    pub max_per_namespace: Option<u32>,

    /// Evict at most this many pods in one run (maxNoOfPodsToEvictTotal).
    #[arg(long, env = env::MAX_TOTAL, value_name = "N")]
    pub max_total: Option<u32>,

    /// Evict at most this many pods of one owner (Deployment, StatefulSet, ReplicaSet, ...) in
    /// one run; 0 means no cap (--wait-for-replacement still takes them one at a time).
    #[arg(long, env = env::MAX_PER_OWNER, value_name = "N", default_value_t = 0)]
    pub max_per_owner: u32,

    /// Also evict pods with emptyDir or hostPath volumes (protected by default, as in the
    /// descheduler; Rails-style apps with an emptyDir /tmp usually want this).
    #[arg(long, env = env::EVICT_LOCAL_STORAGE_PODS)]
    pub evict_local_storage_pods: bool,

    /// Also evict DaemonSet pods.
    #[arg(long, env = env::EVICT_DAEMONSET_PODS)]
    pub evict_daemonset_pods: bool,

    /// Also evict system-critical pods (priority 2e9 or more); disables --priority-threshold.
    #[arg(long, env = env::EVICT_SYSTEM_CRITICAL_PODS)]
    pub evict_system_critical_pods: bool,

    /// Also evict bare pods (no owner) whose phase is Failed.
    #[arg(long, env = env::EVICT_FAILED_BARE_PODS)]
    pub evict_failed_bare_pods: bool,

    /// Never evict pods that mount a PersistentVolumeClaim.
    #[arg(long, env = env::IGNORE_PVC_PODS)]
    pub ignore_pvc_pods: bool,

    /// Never evict pods that no PodDisruptionBudget selects.
    #[arg(long, env = env::IGNORE_PODS_WITHOUT_PDB)]
    pub ignore_pods_without_pdb: bool,

    /// Never evict a pod whose owner has fewer than N pods (counted by the first owner UID).
    #[arg(long, env = env::MIN_REPLICAS, value_name = "N")]
    pub min_replicas: Option<u32>,

    /// Never evict a pod started (status.startTime) less than this long ago; pods without a
    /// start time are not evicted when this is set.
    #[arg(long, env = env::MIN_POD_AGE, value_name = "DURATION")]
    pub min_pod_age: Option<GoDuration>,

    /// Only evict pods whose priority is below this value (pods without a priority pass).
    #[arg(long, env = env::PRIORITY_THRESHOLD, value_name = "PRIORITY", allow_negative_numbers = true)]
    pub priority_threshold: Option<i32>,

    /// Like --priority-threshold, with the value of this PriorityClass.
    #[arg(long, env = env::PRIORITY_THRESHOLD_CLASS, value_name = "NAME")]
    pub priority_threshold_class: Option<String>,

    /// Honour per-pod opt-outs (karpenter.sh/do-not-disrupt: "true",
    /// cluster-autoscaler.kubernetes.io/safe-to-evict: "false"), which the descheduler ignores.
    /// The descheduler.alpha.kubernetes.io/evict annotation still overrides them.
    #[arg(long, env = env::HONOR_OPT_OUT, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    pub honor_opt_out: bool,

    /// A descheduler policy (v1alpha1 strategies.PodLifeTime, or v1alpha2 profiles with
    /// PodLifeTime and DefaultEvictor args). Fields it does not support are refused (exit 2).
    /// Flags given as well override the policy's values; boolean flags can only turn a switch on.
    #[arg(long, env = env::POLICY, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,

    /// Evict a pod of a Deployment/StatefulSet/ReplicaSet only while the owner has all its
    /// replicas available; after evicting one, wait (up to --replacement-timeout) for its
    /// replacement before the next pod of the same owner, while other owners go on. Pods of
    /// owners that stay short are skipped (skipped-owner-unavailable).
    #[arg(long, env = env::WAIT_FOR_REPLACEMENT, action = ArgAction::Set, default_value_t = true, value_name = "BOOL")]
    pub wait_for_replacement: bool,

    /// How long to wait for an owner to be fully available again.
    #[arg(long, env = env::REPLACEMENT_TIMEOUT, value_name = "DURATION", default_value = "5m")]
    pub replacement_timeout: GoDuration,

    /// Spread expiries: a pod's lifetime is the maximum minus (hash of its UID mod SPREAD),
    /// in whole seconds, so replicas created together expire at different times. 0 = off.
    #[arg(long, env = env::SPREAD, value_name = "DURATION", default_value = "0s")]
    pub spread: GoDuration,

    /// evict: the Eviction API for every pod; restart: rollout-restart owners that cannot lose a
    /// pod safely (one replica, no PDB) and evict the rest.
    #[arg(long, env = env::MODE, value_enum, default_value_t)]
    pub mode: Mode,

    /// How long to keep retrying evictions a PodDisruptionBudget refused (429), after the first
    /// pass over the candidates. 0 = the descheduler's behaviour (no retry).
    #[arg(long, env = env::PDB_RETRY_BUDGET, value_name = "DURATION", default_value = "2m")]
    pub pdb_retry_budget: GoDuration,

    /// Give up starting new evictions after this long (the run then exits 3).
    #[arg(long, env = env::TIMEOUT, value_name = "DURATION", default_value = "30m")]
    pub timeout: GoDuration,

    /// Measure ages at this instant (RFC 3339) instead of the local clock: for replaying a
    /// decision, or clusters whose clock differs from ours.
    #[arg(long, env = env::NOW, value_name = "TIME")]
    pub now: Option<jiff::Timestamp>,

    /// Show what would be done without changing anything (client: plan only, PDBs not asked,
    /// like the descheduler; server: also send each eviction with dryRun=All so PDB verdicts
    /// are real).
    #[arg(long, env = opsteps::env::DRY_RUN, value_enum, default_value_t)]
    pub dry_run: DryRun,

    /// Flags shared by every step.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StepArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Runs the step: validates everything it can before connecting (bad input is exit 2 with no
/// request sent), checks the permissions the run needs (exit 2 naming the missing ones), then
/// runs one cycle.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    let cfg = config::Config::from_args(&args)?;
    for w in &cfg.warnings {
        tracing::warn!(policy = cfg.policy.as_deref().unwrap_or_default(), "{w}");
    }
    if let Some(why) = &cfg.disabled {
        return cycle::nothing_to_do(&cfg, &ctx, why);
    }
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let retry = opsteps::retry::RetryPolicy::default().with_shutdown(&ctx.shutdown);
    opsteps::access::require(&conn.client, &rbac::needed(&cfg), &retry).await?;
    cycle::run(&conn.client, &cfg, &ctx).await
}
