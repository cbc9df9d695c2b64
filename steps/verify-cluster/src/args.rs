//! Flags, and the run configuration they give once validated (bad input is exit 2 before any
//! request).

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Parser;
use opsteps::cli::CommonArgs;
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;
use opsteps::step::StepArgs;

use crate::env;
use crate::finding::Severity;
use crate::inventory::Source;
use crate::registry::{self, CATALOGUE, Check, Profile};
use crate::version::Minor;

/// Check cluster health and upgrade readiness; report as JSON and Markdown.
#[derive(Parser, Debug, Clone)]
#[command(name = crate::STEP, version, about, long_about = None)]
pub struct Args {
    /// Which set of checks to run.
    #[arg(long, env = env::PROFILE, value_enum, default_value = "health")]
    pub profile: Profile,

    /// Run only these checks (comma-separated ids from the README's catalogue), whatever the
    /// profile.
    #[arg(long, env = env::CHECK, value_delimiter = ',', value_name = "ID,...")]
    pub check: Vec<String>,

    /// Leave out these checks (comma-separated ids).
    #[arg(long, env = env::SKIP, value_delimiter = ',', value_name = "ID,...")]
    pub skip: Vec<String>,

    /// pre-upgrade: the Kubernetes minor the control plane will move to (default: one ahead of
    /// the API server).
    #[arg(long, env = env::TARGET_KUBERNETES, value_name = "MAJOR.MINOR")]
    pub target_kubernetes: Option<Minor>,

    /// post-upgrade: the minor the control plane must be at now (required by that profile).
    #[arg(long, env = env::EXPECT_KUBERNETES, value_name = "MAJOR.MINOR")]
    pub expect_kubernetes: Option<Minor>,

    /// Exit 1 when a check's worst finding is at least this severity.
    #[arg(long, env = env::FAIL_ON, value_enum, default_value = "fail")]
    pub fail_on: FailOn,

    /// EKS cluster name for the EKS and EC2 checks when connecting with a kubeconfig (default:
    /// --eks-cluster).
    #[arg(long, env = env::CLUSTER_NAME, value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Require this node group (label eks.amazonaws.com/nodegroup) to have --min-ready Ready,
    /// schedulable nodes (comma-separated; adds the nodes.required-nodegroup check).
    #[arg(long, env = env::REQUIRE_NODEGROUP, value_delimiter = ',', value_name = "NAME,...")]
    pub require_nodegroup: Vec<String>,

    /// With --require-nodegroup: Ready nodes each group needs.
    #[arg(long, env = env::MIN_READY, value_name = "N", default_value_t = 1)]
    pub min_ready: u32,

    /// A pod Pending longer than this is a finding.
    #[arg(long, env = env::PENDING_THRESHOLD, value_name = "DURATION", default_value = "10m")]
    pub pending_threshold: GoDuration,

    /// OOMKilled containers are reported when killed within this window.
    #[arg(long, env = env::OOM_WINDOW, value_name = "DURATION", default_value = "24h")]
    pub oom_window: GoDuration,

    /// Free IP addresses each cluster subnet needs (EKS needs 5 to upgrade).
    #[arg(long, env = env::MIN_FREE_IPS, value_name = "N", default_value_t = 5)]
    pub min_free_ips: i64,

    /// Subjects allowed pods/exec and pods/attach (comma-separated `Kind:name`, ServiceAccounts
    /// as `ServiceAccount:namespace/name`; a trailing `*` matches a prefix).
    #[arg(long, env = env::EXEC_ALLOW, value_delimiter = ',', value_name = "KIND:NAME,...", default_value = "Group:system:masters")]
    pub exec_allow: Vec<String>,

    /// A chart repository index for helm.outdated: `NAME=URL` (the repository URL or its
    /// index.yaml, http or https) or `NAME=FILE` (repeatable or comma-separated). Releases whose
    /// chart the index lists are compared with its newest version.
    #[arg(long, env = env::HELM_INDEX, value_delimiter = ',', value_name = "NAME=URL|FILE")]
    pub helm_index: Vec<String>,

    /// Judge ages (Pending, OOMKilled) at this instant (RFC 3339) instead of the local clock.
    #[arg(long, env = env::NOW, value_name = "TIME")]
    pub now: Option<jiff::Timestamp>,

    /// Give up reading after this long (exit 3 for the checks that could not read).
    #[arg(long, env = env::TIMEOUT, value_name = "DURATION", default_value = "5m")]
    pub timeout: GoDuration,

    /// Items per list page.
    #[arg(long, env = env::PAGE_SIZE, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub page_size: u32,

    /// Flags shared by every step.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StepArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// `--fail-on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Only failing findings fail the run.
    Fail,
    /// Warnings fail the run too.
    Warn,
}

impl FailOn {
    /// The lowest severity that fails the run.
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            Self::Fail => Severity::Fail,
            Self::Warn => Severity::Warn,
        }
    }
}

/// A validated run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The profile.
    pub profile: Profile,
    /// Checks to run, in catalogue order.
    pub checks: Vec<&'static Check>,
    /// pre-upgrade target (resolved from the API server when not given).
    pub target: Option<Minor>,
    /// post-upgrade expectation.
    pub expect: Option<Minor>,
    /// Severity that fails the run.
    pub fail_on: Severity,
    /// EKS cluster name for the EKS checks.
    pub eks_name: Option<String>,
    /// Node groups that must be up.
    pub require_nodegroups: Vec<String>,
    /// Ready nodes each needs.
    pub min_ready: u32,
    /// Pending threshold.
    pub pending_after: std::time::Duration,
    /// OOM window.
    pub oom_window: std::time::Duration,
    /// Free IPs per subnet.
    pub min_free_ips: i64,
    /// exec/attach allow-list.
    pub exec_allow: Vec<String>,
    /// Chart indexes.
    pub helm_indexes: Vec<(String, IndexSource)>,
    /// "Now".
    pub now: jiff::Timestamp,
    /// Overall read timeout.
    pub timeout: std::time::Duration,
    /// List page size.
    pub page_size: u32,
}

impl Config {
    /// Validates the flags: unknown check ids, profile/flag mismatches and malformed values are
    /// bad input (exit 2), naming what is accepted.
    pub fn from_args(a: &Args) -> Result<Self, StepError> {
        let known = || {
            CATALOGUE
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for id in a.check.iter().chain(&a.skip) {
            if registry::find(id).is_none() {
                return Err(StepError::bad_input(format!(
                    "unknown check id {id:?} in --check/--skip; known ids: {}",
                    known()
                )));
            }
        }
        if a.profile == Profile::PostUpgrade && a.expect_kubernetes.is_none() {
            return Err(StepError::bad_input(
                "--profile post-upgrade needs --expect-kubernetes MAJOR.MINOR (the version the control plane must be at now)",
            ));
        }
        if a.target_kubernetes.is_some() && a.profile != Profile::PreUpgrade {
            return Err(StepError::bad_input(
                "--target-kubernetes is only for --profile pre-upgrade",
            ));
        }
        let mut helm_indexes = Vec::new();
        for spec in &a.helm_index {
            let (name, source) = spec.split_once('=').filter(|(n, f)| !n.is_empty() && !f.is_empty()).ok_or_else(|| {
                StepError::bad_input(format!("--helm-index {spec:?}: expected NAME=URL or NAME=FILE (a chart repository's index.yaml)"))
            })?;
            helm_indexes.push((name.to_owned(), IndexSource::parse(spec, source)?));
        }
        for s in &a.exec_allow {
            if !s.contains(':') {
                return Err(StepError::bad_input(format!(
                    "--exec-allow {s:?}: expected Kind:name (User:alice, Group:ops, ServiceAccount:ns/name)"
                )));
            }
        }
        if a.min_free_ips < 0 {
            return Err(StepError::bad_input("--min-free-ips must be 0 or more"));
        }
        let only: BTreeSet<&str> = a.check.iter().map(String::as_str).collect();
        let skip: BTreeSet<&str> = a.skip.iter().map(String::as_str).collect();
        let on_request = |c: &Check| match c.id {
            "nodes.required-nodegroup" => !a.require_nodegroup.is_empty(),
            "helm.outdated" => !a.helm_index.is_empty(),
            _ => false,
        };
        let checks = CATALOGUE
            .iter()
            .filter(|c| {
                if only.is_empty() {
                    c.profiles.contains(&a.profile) || on_request(c)
                } else {
                    only.contains(c.id)
                }
            })
            .filter(|c| !skip.contains(c.id))
            .collect::<Vec<_>>();
        if checks.is_empty() {
            return Err(StepError::bad_input(
                "no check left to run after --check/--skip",
            ));
        }
        if checks.iter().any(|c| c.id == "nodes.required-nodegroup")
            && a.require_nodegroup.is_empty()
        {
            return Err(StepError::bad_input(
                "nodes.required-nodegroup needs --require-nodegroup NAME",
            ));
        }
        if checks.iter().any(|c| c.id == "helm.outdated") && a.helm_index.is_empty() {
            return Err(StepError::bad_input(
                "helm.outdated needs --helm-index NAME=URL|FILE",
            ));
        }
        Ok(Self {
            profile: a.profile,
            checks,
            target: a.target_kubernetes,
            expect: a.expect_kubernetes,
            fail_on: a.fail_on.severity(),
            eks_name: a
                .cluster_name
                .clone()
                .or_else(|| a.common.cluster.eks_cluster.clone()),
            require_nodegroups: a.require_nodegroup.clone(),
            min_ready: a.min_ready,
            pending_after: a.pending_threshold.0,
            oom_window: a.oom_window.0,
            min_free_ips: a.min_free_ips,
            exec_allow: a.exec_allow.clone(),
            helm_indexes,
            now: a.now.unwrap_or_else(jiff::Timestamp::now),
            timeout: a.timeout.0,
            page_size: a.page_size,
        })
    }

    /// Every source the selected checks read.
    #[must_use]
    pub fn sources(&self) -> BTreeSet<Source> {
        self.checks
            .iter()
            .flat_map(|c| c.needs.iter().copied())
            .collect()
    }
}

/// Where a chart repository's index comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexSource {
    /// A local `index.yaml`.
    File(PathBuf),
    /// `http(s)://…/index.yaml`, or the repository URL (`/index.yaml` is appended, as helm does).
    Url(String),
}

impl IndexSource {
    fn parse(spec: &str, source: &str) -> Result<Self, StepError> {
        let lower = source.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            if lower.contains("://") {
                return Err(StepError::bad_input(format!(
                    "--helm-index {spec:?}: only http:// and https:// URLs (or a file path) are accepted"
                )));
            }
            return Ok(Self::File(PathBuf::from(source)));
        }
        let uri: http::Uri = source
            .parse()
            .map_err(|e| StepError::bad_input(format!("--helm-index {spec:?}: not a URL: {e}")))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(StepError::bad_input(format!(
                "--helm-index {spec:?}: the URL has no host"
            )));
        }
        let is_yaml = std::path::Path::new(uri.path())
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        let url = if is_yaml {
            source.to_owned()
        } else {
            format!("{}/index.yaml", source.trim_end_matches('/'))
        };
        Ok(Self::Url(url))
    }
}
