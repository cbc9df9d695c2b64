//! The step's flags (kubectl drain's, with kubectl's meaning, plus ours) and the checks that need
//! no request.

use std::time::Duration;

use clap::{ArgAction, Parser};
use opsteps::access::Permission;
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;
use opsteps::step::StepArgs;

use crate::STEP;
use crate::drain::Settings;

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
pub fn validate(args: &Args) -> Result<(), StepError> {
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

impl Args {
    /// What this run will ask of the API server, checked with SelfSubjectAccessReview before
    /// the first mutation; the README's RBAC table lists the union over all flags.
    #[must_use]
    pub fn permissions(&self) -> Vec<Permission> {
        let p = Permission::new;
        let mut out = vec![
            p("get", "", "nodes"),
            p("list", "", "nodes"),
            p("get", "", "pods"),
            p("list", "", "pods"),
            p("watch", "", "pods"),
            p("get", "apps", "daemonsets"),
            p("get", "policy", "poddisruptionbudgets"),
            p("list", "policy", "poddisruptionbudgets"),
            p("watch", "policy", "poddisruptionbudgets"),
        ];
        if self.dry_run != DryRun::Client {
            out.push(p("patch", "", "nodes"));
            out.push(if self.disable_eviction {
                p("delete", "", "pods")
            } else {
                p("create", "", "pods").subresource("eviction")
            });
        }
        if self.dry_run == DryRun::None {
            out.push(p("create", "", "events"));
            for verb in ["get", "create", "update", "delete"] {
                out.push(p(verb, "coordination.k8s.io", "leases").namespace(&self.lease_namespace));
            }
        }
        if self.wait_for_replacements {
            for resource in ["replicasets", "deployments", "statefulsets"] {
                out.push(p("get", "apps", resource));
            }
        }
        out
    }

    /// How to drain, from the flags.
    #[must_use]
    pub fn settings(&self) -> Settings {
        Settings {
            grace_period: (self.grace_period >= 0).then_some(self.grace_period),
            timeout: (!self.timeout.is_zero()).then(|| self.timeout.into()),
            skip_wait: (self.skip_wait_for_delete_timeout > 0)
                .then(|| Duration::from_secs(self.skip_wait_for_delete_timeout)),
            max_in_flight: self.max_in_flight as usize,
            disable_eviction: self.disable_eviction,
            dry_run: self.dry_run,
            wait_for_replacements: self
                .wait_for_replacements
                .then(|| self.replacement_timeout.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsteps::cli::DryRun;
    use opsteps::exit::ExitStatus;

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
