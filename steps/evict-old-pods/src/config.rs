//! The run's settings: flags merged with an optional descheduler policy, validated before any
//! connection so that bad input is exit 2 with no request sent.

use std::time::Duration;

use opsteps::cli::DryRun;
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;

use crate::{Args, Mode};
use opsteps::selector::Selector;

/// Every state name the descheduler's PodLifeTime accepts (v0.36): phases, pod reasons,
/// container waiting reasons, container terminated reasons.
pub const STATES: &[&str] = &[
    "Running",
    "Pending",
    "Succeeded",
    "Failed",
    "Unknown",
    "NodeAffinity",
    "NodeLost",
    "Shutdown",
    "UnexpectedAdmissionError",
    "PodInitializing",
    "ContainerCreating",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "ErrImagePull",
    "CreateContainerError",
    "InvalidImageName",
    "OOMKilled",
    "Error",
    "Completed",
    "DeadlineExceeded",
    "Evicted",
    "ContainerCannotRun",
    "StartError",
];

/// The DefaultEvictor's switches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evictor {
    /// Evict pods with emptyDir/hostPath volumes.
    pub evict_local_storage: bool,
    /// Evict DaemonSet pods.
    pub evict_daemonset: bool,
    /// Evict system-critical pods (and ignore the priority threshold).
    pub evict_system_critical: bool,
    /// Evict bare pods in phase Failed.
    pub evict_failed_bare: bool,
    /// Protect pods with a PVC.
    pub ignore_pvc: bool,
    /// Protect pods no PDB selects.
    pub ignore_without_pdb: bool,
    /// Protect pods whose owner has fewer pods (applies when > 1).
    pub min_replicas: Option<u32>,
    /// Protect pods started less than this many seconds ago.
    pub min_pod_age_seconds: Option<u64>,
    /// Evict only pods whose priority is below this.
    pub priority_threshold: Option<i32>,
    /// A PriorityClass whose value is the threshold (resolved after connecting).
    pub priority_threshold_class: Option<String>,
    /// Honour karpenter/cluster-autoscaler opt-out annotations.
    pub honor_opt_out: bool,
}

/// Per-run eviction limits; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Per node.
    pub per_node: Option<u32>,
    /// Per namespace.
    pub per_namespace: Option<u32>,
    /// In total.
    pub total: Option<u32>,
    /// Per owner.
    pub per_owner: Option<u32>,
}

/// The validated settings of one run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Maximum lifetime in seconds; `None` (only with states) means any age.
    pub max_lifetime_seconds: Option<u64>,
    /// State filter (empty: every state).
    pub states: Vec<String>,
    /// Match states against init containers.
    pub including_init_containers: bool,
    /// Match states against ephemeral containers.
    pub including_ephemeral_containers: bool,
    /// Only these namespaces.
    pub namespaces: Vec<String>,
    /// Not these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Label selector (empty: all pods).
    pub selector: Selector,
    /// Limits.
    pub limits: Limits,
    /// Protections.
    pub evictor: Evictor,
    /// Spread, seconds.
    pub spread_seconds: u64,
    /// Evict or restart.
    pub mode: Mode,
    /// Wait for the owner to be fully available before each eviction.
    pub wait_for_replacement: bool,
    /// Bound of that wait.
    pub replacement_timeout: Duration,
    /// How long to retry PDB-blocked evictions.
    pub pdb_retry_budget: Duration,
    /// Deadline of the whole run.
    pub timeout: Duration,
    /// Dry-run mode.
    pub dry_run: DryRun,
    /// The instant ages are measured at, when given.
    pub now: Option<jiff::Timestamp>,
    /// Where the policy came from, for the report.
    pub policy: Option<String>,
    /// Why there is nothing to do (a policy whose PodLifeTime is not enabled).
    pub disabled: Option<String>,
    /// Policy fields accepted without effect.
    pub warnings: Vec<String>,
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn clean(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Config {
    /// Merges the flags with `--policy` and validates the result.
    // One check per flag, in flag order: splitting it would only scatter the messages.
    #[allow(clippy::too_many_lines)]
    pub fn from_args(a: &Args) -> Result<Self, StepError> {
        let policy = match &a.policy {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    StepError::bad_input(format!("cannot read the policy {}", p.display()))
                        .with_source(e)
                })?;
                Some(
                    crate::policy::parse(&p.display().to_string(), &text)
                        .map_err(|e| StepError::bad_input(e.to_string()))?,
                )
            }
            None => None,
        };
        let p = policy.clone().unwrap_or_default();

        let flag_lifetime = match (a.max_pod_lifetime, a.max_pod_lifetime_seconds) {
            (Some(_), Some(_)) => {
                return Err(StepError::bad_input(
                    "give only one of --max-pod-lifetime and --max-pod-lifetime-seconds",
                ));
            }
            (Some(d), None) => {
                let std: Duration = d.into();
                if std.subsec_nanos() != 0 {
                    return Err(StepError::bad_input(format!(
                        "--max-pod-lifetime {d}: ages are whole seconds; give a whole number of seconds"
                    )));
                }
                Some(d.as_secs())
            }
            (None, s) => s,
        };
        let max_lifetime_seconds = flag_lifetime.or(p.max_pod_lifetime_seconds);
        // The same ceiling as every duration flag (10 years): "now - lifetime" must stay a
        // valid timestamp, and no pod is older than that.
        let max_accepted = GoDuration::MAX.as_secs();
        if let Some(s) = max_lifetime_seconds
            && s > max_accepted
        {
            return Err(StepError::bad_input(format!(
                "pod lifetime {s}s is too long: accepted is 1s to {max_accepted}s (87600h, 10 years)"
            )));
        }

        let states = {
            let f = clean(&a.states);
            if f.is_empty() { p.states.clone() } else { f }
        };
        for s in &states {
            if !STATES.contains(&s.as_str()) {
                return Err(StepError::bad_input(format!(
                    "unknown state {s:?}; accepted: {}",
                    STATES.join(", ")
                )));
            }
        }
        if max_lifetime_seconds.is_none() && states.is_empty() && !p.disabled {
            return Err(StepError::bad_input(
                "no lifetime: give --max-pod-lifetime, --max-pod-lifetime-seconds, --states, or a --policy with maxPodLifeTimeSeconds",
            ));
        }

        let namespaces = {
            let f = clean(&a.namespaces);
            if f.is_empty() {
                p.namespaces.clone()
            } else {
                f
            }
        };
        let exclude_namespaces = {
            let f = clean(&a.exclude_namespaces);
            if f.is_empty() {
                p.exclude_namespaces.clone()
            } else {
                f
            }
        };
        if !namespaces.is_empty() && !exclude_namespaces.is_empty() {
            return Err(StepError::bad_input(
                "namespaces: give only one of --namespaces (include) and --exclude-namespaces (exclude)",
            ));
        }
        for n in namespaces.iter().chain(&exclude_namespaces) {
            if !is_dns_label(n) {
                return Err(StepError::bad_input(format!(
                    "namespace {n:?} is not a valid namespace name (lowercase DNS label)"
                )));
            }
        }

        let selector = match &a.selector {
            Some(s) => s
                .parse::<Selector>()
                .map_err(|e| StepError::bad_input(format!("--selector: {e}")))?,
            None => Selector::default(),
        };
        let selector = match &p.selector {
            Some(ps) if a.selector.is_none() => ps.clone(),
            _ => selector,
        };

        let evictor = Evictor {
            evict_local_storage: a.evict_local_storage_pods || p.evict_local_storage_pods,
            evict_daemonset: a.evict_daemonset_pods || p.evict_daemonset_pods,
            evict_system_critical: a.evict_system_critical_pods || p.evict_system_critical_pods,
            evict_failed_bare: a.evict_failed_bare_pods || p.evict_failed_bare_pods,
            ignore_pvc: a.ignore_pvc_pods || p.ignore_pvc_pods,
            ignore_without_pdb: a.ignore_pods_without_pdb || p.ignore_pods_without_pdb,
            min_replicas: a.min_replicas.or(p.min_replicas),
            min_pod_age_seconds: a
                .min_pod_age
                .map(GoDuration::as_secs)
                .or(p.min_pod_age_seconds),
            priority_threshold: a.priority_threshold.or(p.priority_threshold),
            priority_threshold_class: a
                .priority_threshold_class
                .clone()
                .or(p.priority_threshold_class.clone()),
            honor_opt_out: a.honor_opt_out,
        };
        if evictor.priority_threshold.is_some() && evictor.priority_threshold_class.is_some() {
            return Err(StepError::bad_input(
                "give only one of --priority-threshold and --priority-threshold-class",
            ));
        }
        if let Some(c) = &evictor.priority_threshold_class
            && !c
                .split('.')
                .all(|l| is_dns_label(l) || l.chars().all(|ch| ch.is_ascii_digit()))
        {
            return Err(StepError::bad_input(format!(
                "priority class {c:?} is not a valid name"
            )));
        }

        let spread_seconds = a.spread.as_secs();
        if let Some(max) = max_lifetime_seconds
            && spread_seconds > max
        {
            return Err(StepError::bad_input(format!(
                "--spread {} is longer than the lifetime ({max}s): every pod could expire at once",
                a.spread
            )));
        }

        let zero_none = |v: Option<u32>| v.filter(|n| *n > 0);
        Ok(Self {
            max_lifetime_seconds,
            states,
            including_init_containers: a.including_init_containers || p.including_init_containers,
            including_ephemeral_containers: a.including_ephemeral_containers
                || p.including_ephemeral_containers,
            namespaces,
            exclude_namespaces,
            selector,
            limits: Limits {
                // The descheduler treats 0 (and nil) as "no limit".
                per_node: zero_none(a.max_per_node.or(p.max_per_node)),
                per_namespace: zero_none(a.max_per_namespace.or(p.max_per_namespace)),
                total: zero_none(a.max_total.or(p.max_total)),
                per_owner: zero_none(Some(a.max_per_owner)),
            },
            evictor,
            spread_seconds,
            mode: a.mode,
            wait_for_replacement: a.wait_for_replacement,
            replacement_timeout: a.replacement_timeout.into(),
            pdb_retry_budget: a.pdb_retry_budget.into(),
            timeout: a.timeout.into(),
            dry_run: a.dry_run,
            now: a.now,
            policy: a.policy.as_ref().map(|p| p.display().to_string()),
            disabled: p.disabled.then(|| {
                "the policy's PodLifeTime strategy is not enabled: nothing to do, as in the descheduler".to_owned()
            }),
            warnings: p.warnings.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use opsteps::exit::ExitStatus;

    fn cfg(args: &[&str]) -> Result<Config, StepError> {
        let mut v = vec![crate::STEP];
        v.extend_from_slice(args);
        Config::from_args(&Args::try_parse_from(v).expect("flags parse"))
    }

    fn bad(args: &[&str], needle: &str) {
        let e = cfg(args).expect_err(needle);
        assert_eq!(e.status(), ExitStatus::BadInput, "{e}");
        assert!(e.chain().contains(needle), "{needle}: {}", e.chain());
    }

    #[test]
    fn lifetime_from_either_flag() {
        assert_eq!(
            cfg(&["--max-pod-lifetime", "8h"])
                .unwrap()
                .max_lifetime_seconds,
            Some(28800)
        );
        assert_eq!(
            cfg(&["--max-pod-lifetime-seconds", "28800"])
                .unwrap()
                .max_lifetime_seconds,
            Some(28800)
        );
    }

    #[test]
    fn bad_input_is_exit_2_with_the_reason() {
        bad(&[], "no lifetime");
        bad(
            &[
                "--max-pod-lifetime",
                "1h",
                "--max-pod-lifetime-seconds",
                "5",
            ],
            "only one",
        );
        bad(&["--max-pod-lifetime", "1.5s"], "whole");
        bad(
            &["--max-pod-lifetime", "1h", "--states", "Running,Sleeping"],
            "unknown state \"Sleeping\"; accepted: Running, Pending",
        );
        bad(
            &[
                "--max-pod-lifetime",
                "1h",
                "--namespaces",
                "a",
                "--exclude-namespaces",
                "b",
            ],
            "only one of --namespaces",
        );
        bad(
            &["--max-pod-lifetime", "1h", "--selector", "app in web"],
            "--selector",
        );
        bad(
            &["--max-pod-lifetime", "1h", "--namespaces", "Bad_NS"],
            "Bad_NS",
        );
        bad(&["--max-pod-lifetime", "1h", "--spread", "2h"], "--spread");
        bad(
            &[
                "--max-pod-lifetime",
                "1h",
                "--priority-threshold",
                "5",
                "--priority-threshold-class",
                "x",
            ],
            "only one of --priority-threshold",
        );
        bad(
            &["--policy", "/nonexistent/policy.yaml"],
            "cannot read the policy",
        );
    }

    #[test]
    fn clap_refuses_negative_and_malformed_lifetimes() {
        for args in [
            ["--max-pod-lifetime", "-5s"],
            ["--max-pod-lifetime", "8"],
            ["--max-pod-lifetime-seconds", "-5"],
            ["--max-pod-lifetime-seconds", "8h"],
        ] {
            let mut v = vec![crate::STEP];
            v.extend_from_slice(&args);
            let e = Args::try_parse_from(v).expect_err(args[1]);
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn states_alone_are_enough() {
        let c = cfg(&["--states", "CrashLoopBackOff"]).unwrap();
        assert_eq!(c.max_lifetime_seconds, None);
    }

    #[test]
    fn flags_override_the_policy() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.yaml");
        std::fs::write(&p, crate::policy::tests_seed()).unwrap();
        let path = p.to_str().unwrap();
        let c = cfg(&["--policy", path]).unwrap();
        assert_eq!(c.max_lifetime_seconds, Some(28800));
        assert_eq!(c.namespaces, vec!["shop"]);
        assert_eq!(c.selector.to_string(), "app=web");
        let c = cfg(&[
            "--policy",
            path,
            "--max-pod-lifetime",
            "1h",
            "-l",
            "app=api",
        ])
        .unwrap();
        assert_eq!(c.max_lifetime_seconds, Some(3600));
        assert_eq!(c.selector.to_string(), "app=api");
        bad(
            &["--policy", path, "--exclude-namespaces", "kube-system"],
            "only one",
        );
    }
}
