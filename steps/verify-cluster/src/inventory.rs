//! The snapshot every check reads: each source is read once (lists paged, all sources at
//! once), and only the sources the selected checks need. A source that cannot be read is
//! recorded with why (403 → the checks that need it are skipped with the API server's message),
//! never a crash.

mod kube_lists;
mod pods;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;

pub use kube_lists::{KubeParts, ListOpts, load_kube, version};
pub use pods::{ContainerIssue, OomKill, PodInfo};

use crate::aws::EksData;
use crate::finding::ObjectRef;
use crate::helm::Release;
use crate::version::Minor;

/// Something the checks read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// `GET /version`.
    Version,
    /// Nodes.
    Nodes,
    /// Pods (kept compact).
    Pods,
    /// Deployments.
    Deployments,
    /// StatefulSets.
    StatefulSets,
    /// DaemonSets.
    DaemonSets,
    /// PodDisruptionBudgets.
    Pdbs,
    /// HorizontalPodAutoscalers (autoscaling/v2).
    Hpas,
    /// Roles, ClusterRoles and their bindings.
    Rbac,
    /// Helm release Secrets.
    HelmReleases,
    /// The API server's `/metrics`.
    Metrics,
    /// EKS DescribeCluster and ListUpdates.
    EksCluster,
    /// EKS node groups.
    EksNodegroups,
    /// EKS add-ons and their compatible versions.
    EksAddons,
    /// EKS upgrade insights.
    EksInsights,
    /// EC2 DescribeSubnets of the cluster's subnets.
    Subnets,
    /// The chart indexes of --helm-index.
    HelmIndex,
}

impl Source {
    /// The permission (or setting) it needs, for skip messages and the README.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Version => "version",
            Self::Nodes => "nodes",
            Self::Pods => "pods",
            Self::Deployments => "deployments",
            Self::StatefulSets => "statefulsets",
            Self::DaemonSets => "daemonsets",
            Self::Pdbs => "poddisruptionbudgets",
            Self::Hpas => "horizontalpodautoscalers",
            Self::Rbac => "rbac",
            Self::HelmReleases => "helm release secrets",
            Self::Metrics => "apiserver /metrics",
            Self::EksCluster => "eks cluster",
            Self::EksNodegroups => "eks node groups",
            Self::EksAddons => "eks add-ons",
            Self::EksInsights => "eks insights",
            Self::Subnets => "ec2 subnets",
            Self::HelmIndex => "helm indexes",
        }
    }
}

/// Why a source could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unavailable {
    /// Forbidden and not configured skip the checks; errors make them `error`.
    pub kind: UnavailableKind,
    /// The API's message or what is missing.
    pub message: String,
}

/// The kinds of [`Unavailable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnavailableKind {
    /// 403 / AccessDenied: the identity lacks a permission.
    Forbidden,
    /// The run has no way to read it (no EKS cluster name, the API server does not serve it).
    NotConfigured,
    /// A transient failure that outlasted the retries (5xx, throttling, timeout, SIGTERM).
    Transient,
    /// Any other failure.
    Failed,
}

impl Unavailable {
    /// An [`Unavailable`] of `kind`.
    #[must_use]
    pub fn new(kind: UnavailableKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A source's content, or why it is missing.
pub type Loaded<T> = Result<T, Unavailable>;

/// The API server's version.
#[derive(Clone, Debug)]
pub struct ServerVersion {
    /// `major.minor`.
    pub minor: Minor,
    /// `gitVersion` as reported.
    pub git_version: String,
}

/// RBAC objects.
#[derive(Clone, Debug, Default)]
pub struct Rbac {
    /// Roles.
    pub roles: Vec<Role>,
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// An object whose last-applied configuration or managed fields name an API version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUsage {
    /// The object as stored.
    pub object: ObjectRef,
    /// `group/version` as applied.
    pub api_version: String,
    /// The kind as applied.
    pub kind: String,
    /// `last-applied-configuration` or `managedFields`.
    pub via: &'static str,
}

/// A deprecated API request counted by the API server (`apiserver_requested_deprecated_apis`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeprecatedRequest {
    /// API group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource plural.
    pub resource: String,
    /// The release that removes it (`1.32`), if announced.
    pub removed_release: Option<Minor>,
}

/// A chart repository index: chart name → versions with their creation time.
pub type ChartIndex = BTreeMap<String, Vec<(String, Option<String>)>>;

/// Everything read, per source.
#[derive(Debug)]
pub struct Inventory {
    /// `/version`.
    pub version: Loaded<ServerVersion>,
    /// Nodes.
    pub nodes: Loaded<Vec<Node>>,
    /// Pods.
    pub pods: Loaded<Vec<PodInfo>>,
    /// Deployments (managed fields and last-applied removed).
    pub deployments: Loaded<Vec<Deployment>>,
    /// StatefulSets.
    pub statefulsets: Loaded<Vec<StatefulSet>>,
    /// DaemonSets.
    pub daemonsets: Loaded<Vec<DaemonSet>>,
    /// PDBs.
    pub pdbs: Loaded<Vec<PodDisruptionBudget>>,
    /// HPAs.
    pub hpas: Loaded<Vec<HorizontalPodAutoscaler>>,
    /// RBAC.
    pub rbac: Loaded<Rbac>,
    /// Helm releases, latest revision of each.
    pub helm: Loaded<Vec<Release>>,
    /// Deprecated API requests from `/metrics`.
    pub metrics: Loaded<Vec<DeprecatedRequest>>,
    /// API versions applied, from the listed objects.
    pub api_usage: Vec<ApiUsage>,
    /// EKS and EC2.
    pub eks: EksData,
    /// --helm-index contents, by index name.
    pub helm_index: Loaded<BTreeMap<String, ChartIndex>>,
}

fn slice<T>(l: &Loaded<Vec<T>>) -> &[T] {
    l.as_ref().map_or(&[], Vec::as_slice)
}

impl Inventory {
    /// Nodes (empty when unread).
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        slice(&self.nodes)
    }
    /// Pods.
    #[must_use]
    pub fn pods(&self) -> &[PodInfo] {
        slice(&self.pods)
    }
    /// Deployments.
    #[must_use]
    pub fn deployments(&self) -> &[Deployment] {
        slice(&self.deployments)
    }
    /// StatefulSets.
    #[must_use]
    pub fn statefulsets(&self) -> &[StatefulSet] {
        slice(&self.statefulsets)
    }
    /// DaemonSets.
    #[must_use]
    pub fn daemonsets(&self) -> &[DaemonSet] {
        slice(&self.daemonsets)
    }
    /// PDBs.
    #[must_use]
    pub fn pdbs(&self) -> &[PodDisruptionBudget] {
        slice(&self.pdbs)
    }
    /// HPAs.
    #[must_use]
    pub fn hpas(&self) -> &[HorizontalPodAutoscaler] {
        slice(&self.hpas)
    }
    /// Helm releases.
    #[must_use]
    pub fn helm(&self) -> &[Release] {
        slice(&self.helm)
    }
    /// The API server's minor, if read.
    #[must_use]
    pub fn server_minor(&self) -> Option<Minor> {
        self.version.as_ref().ok().map(|v| v.minor)
    }

    /// Whether `source` was read, or why not.
    pub fn status(&self, source: Source) -> Result<(), &Unavailable> {
        fn st<T>(l: &Loaded<T>) -> Result<(), &Unavailable> {
            l.as_ref().map(|_| ())
        }
        match source {
            Source::Version => st(&self.version),
            Source::Nodes => st(&self.nodes),
            Source::Pods => st(&self.pods),
            Source::Deployments => st(&self.deployments),
            Source::StatefulSets => st(&self.statefulsets),
            Source::DaemonSets => st(&self.daemonsets),
            Source::Pdbs => st(&self.pdbs),
            Source::Hpas => st(&self.hpas),
            Source::Rbac => st(&self.rbac),
            Source::HelmReleases => st(&self.helm),
            Source::Metrics => st(&self.metrics),
            Source::EksCluster => st(&self.eks.cluster),
            Source::EksNodegroups => st(&self.eks.nodegroups),
            Source::EksAddons => st(&self.eks.addons),
            Source::EksInsights => st(&self.eks.insights),
            Source::Subnets => st(&self.eks.subnets),
            Source::HelmIndex => st(&self.helm_index),
        }
    }

    /// Object counts for the report.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        let mut put = |k, n: Option<usize>| {
            if let Some(n) = n {
                m.insert(k, n);
            }
        };
        put("nodes", self.nodes.as_ref().ok().map(Vec::len));
        put("pods", self.pods.as_ref().ok().map(Vec::len));
        put("deployments", self.deployments.as_ref().ok().map(Vec::len));
        put(
            "statefulsets",
            self.statefulsets.as_ref().ok().map(Vec::len),
        );
        put("daemonsets", self.daemonsets.as_ref().ok().map(Vec::len));
        put(
            "poddisruptionbudgets",
            self.pdbs.as_ref().ok().map(Vec::len),
        );
        put(
            "horizontalpodautoscalers",
            self.hpas.as_ref().ok().map(Vec::len),
        );
        put("helmReleases", self.helm.as_ref().ok().map(Vec::len));
        m
    }
}
