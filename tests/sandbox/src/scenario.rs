//! Scenarios: a YAML description of a cluster (nodes, node groups, workloads with pod ages, PDBs,
//! static and bare pods, behaviour such as hanging terminations), the clock, users and faults.
//! The format is documented in `tests/scenarios/README.md`.
//!
//! [`load`] builds a settled cluster: workload pods are created already scheduled, Running and
//! Ready with consistent owner references and hashes, and with `creationTimestamp` from the
//! scenario's ages, so a 18,000-pod cluster starts in well under a second and idles.

mod build;
mod large;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::Cluster;

pub use build::{PROTECTED, add_group_nodes, load};
pub use large::{LARGE_NODES, LARGE_PODS, generate_large};

/// A whole scenario file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// The EKS cluster this simulates.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Virtual clock start and speed.
    #[serde(default)]
    pub clock: ClockSpec,
    /// Kubelet timings.
    #[serde(default)]
    pub kubelet: KubeletSpec,
    /// Managed node groups.
    #[serde(default)]
    pub node_groups: Vec<NodeGroupSpec>,
    /// Individual nodes.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// Scheduled node health changes.
    #[serde(default)]
    pub node_events: Vec<NodeEventSpec>,
    /// Namespaces to create besides `default`, `kube-system`, `kube-public`, `kube-node-lease`
    /// and the namespaces workloads name.
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
    /// Priority classes besides the built-in `system-cluster-critical` and
    /// `system-node-critical`.
    #[serde(default)]
    pub priority_classes: Vec<PriorityClassSpec>,
    /// Workloads and their pods.
    #[serde(default)]
    pub workloads: Vec<WorkloadSpec>,
    /// Standalone PodDisruptionBudgets (for overlapping or unusual selectors).
    #[serde(default)]
    pub pdbs: Vec<PdbSpec>,
    /// Raw manifests created as given (any served kind).
    #[serde(default)]
    pub objects: Vec<Value>,
    /// Users and tokens (parsed by the API layer).
    #[serde(default)]
    pub users: Vec<Value>,
    /// Faults (parsed by the API layer).
    #[serde(default)]
    pub faults: Vec<Value>,
    /// dcgm-exporter settings and GPU values (parsed by `crate::dcgm::GpuConfig`).
    #[serde(default)]
    pub gpu: Option<Value>,
    /// The EKS API's view (add-ons, insights, AWS faults, access entries); parsed and used by
    /// [`crate::eks`].
    #[serde(default)]
    pub eks: Option<crate::eks::EksSpec>,
    /// The EC2 view: the cluster's VPC and subnets (DescribeSubnets, see [`crate::ec2`]).
    #[serde(default)]
    pub ec2: Option<crate::ec2::Ec2Spec>,
    /// The API server's `/metrics` state (see [`crate::api::metrics`]).
    #[serde(default)]
    pub api_server: Option<crate::api::metrics::ApiServerSpec>,
    /// Helm 3 releases, written as Helm's release Secrets (see [`crate::helm`]).
    #[serde(default)]
    pub helm_releases: Vec<crate::helm::HelmReleaseSpec>,
    /// Authorize every request with RBAC from the Roles, ClusterRoles and bindings in the
    /// cluster (`objects` can load them); the admin and `system:masters` bypass it.
    #[serde(default)]
    pub rbac: bool,
}

/// The simulated EKS cluster.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// AWS region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Kubernetes minor version, e.g. `1.33`.
    #[serde(default = "default_version")]
    pub version: String,
    /// EKS platform version, e.g. `eks.8`.
    #[serde(default = "default_platform_version")]
    pub platform_version: String,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            name: default_cluster_name(),
            region: default_region(),
            version: default_version(),
            platform_version: default_platform_version(),
        }
    }
}

fn default_cluster_name() -> String {
    "sandbox".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_version() -> String {
    "1.33".into()
}
fn default_platform_version() -> String {
    "eks.8".into()
}

/// Virtual clock.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClockSpec {
    /// Virtual start time (RFC 3339); the real time when absent.
    #[serde(default)]
    pub start: Option<jiff::Timestamp>,
    /// Virtual seconds per real second.
    #[serde(default = "default_scale")]
    pub scale: f64,
}

impl Default for ClockSpec {
    fn default() -> Self {
        Self {
            start: None,
            scale: default_scale(),
        }
    }
}

fn default_scale() -> f64 {
    60.0
}

/// Kubelet timings (Go durations).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeletSpec {
    /// Scheduling to Running (default `2s`).
    #[serde(default)]
    pub start_delay: Option<String>,
    /// Running to Ready (default `3s`).
    #[serde(default)]
    pub ready_delay: Option<String>,
}

/// Node capacity. `allocatable` equals capacity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capacity {
    /// CPU quantity, e.g. `"4"` or `"3920m"`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory quantity, e.g. `16Gi`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Maximum pods.
    #[serde(default)]
    pub pods: Option<u32>,
    /// GPUs (`nvidia.com/gpu`).
    #[serde(default, rename = "nvidia.com/gpu", alias = "gpu")]
    pub gpu: Option<u32>,
    /// Ephemeral storage quantity (default `20Gi`).
    #[serde(default)]
    pub ephemeral_storage: Option<String>,
}

/// A managed node group: `count` nodes named `<name>-0` .. `<name>-<count-1>` (or
/// `<namePrefix>-<i>`), labelled `eks.amazonaws.com/nodegroup=<name>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroupSpec {
    /// Node group name.
    pub name: String,
    /// Number of nodes.
    pub count: u32,
    /// EC2 instance type; sets default capacity for known types.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Capacity (overrides the instance type's).
    #[serde(default)]
    pub capacity: Capacity,
    /// Extra node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node taints (`{key, value, effect}`).
    #[serde(default)]
    pub taints: Vec<Value>,
    /// Kubelet version, e.g. `v1.32.3-eks-473151a` (default from the cluster version).
    #[serde(default)]
    pub version: Option<String>,
    /// Availability zones, assigned round-robin (default `<region>a`, `b`, `c`).
    #[serde(default)]
    pub zones: Vec<String>,
    /// Node name prefix (default: the group name).
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Capacity type label (`ON_DEMAND` or `SPOT`, default `ON_DEMAND`).
    #[serde(default)]
    pub capacity_type: Option<String>,
    /// Nodes start cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Age of the nodes (Go duration, default `30d`).
    #[serde(default)]
    pub age: Option<String>,
}

/// One node outside any node group (or added to one with `nodeGroup`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Node group label value, if any.
    #[serde(default)]
    pub node_group: Option<String>,
    /// EC2 instance type.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Capacity.
    #[serde(default)]
    pub capacity: Capacity,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints.
    #[serde(default)]
    pub taints: Vec<Value>,
    /// Kubelet version.
    #[serde(default)]
    pub version: Option<String>,
    /// Zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// Starts cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Starts NotReady (`NotReady`) or unreachable (`Unreachable`).
    #[serde(default)]
    pub down: Option<String>,
    /// Age (Go duration).
    #[serde(default)]
    pub age: Option<String>,
}

/// A scheduled node health change.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeEventSpec {
    /// Offset from the clock start (Go duration).
    pub after: String,
    /// Node name.
    pub node: String,
    /// `NotReady`, `Unreachable` or `Ready`.
    pub state: String,
}

/// A namespace.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A priority class.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityClassSpec {
    /// Name.
    pub name: String,
    /// Priority value.
    pub value: i64,
    /// `globalDefault`.
    #[serde(default)]
    pub global_default: bool,
    /// `preemptionPolicy`.
    #[serde(default)]
    pub preemption_policy: Option<String>,
}

/// Kinds of workload a scenario can declare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (with its ReplicaSet).
    #[default]
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 ReplicaSet without a Deployment.
    ReplicaSet,
    /// Bare pods (no owner): `<name>` when `replicas` is 1, else `<name>-<i>`.
    Pod,
    /// Static pods: a mirror pod `<name>-<node>` per node (annotation
    /// `kubernetes.io/config.mirror`, owner the Node), recreated by the kubelet when deleted.
    StaticPod,
}

/// Container resource requests (and the same limits).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    /// CPU, e.g. `250m`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory, e.g. `512Mi`.
    #[serde(default)]
    pub memory: Option<String>,
    /// GPUs (`nvidia.com/gpu`, also set as the limit as Kubernetes requires).
    #[serde(default, alias = "nvidia.com/gpu")]
    pub gpu: Option<u32>,
}

/// A PDB attached to a workload (selector: the workload's labels).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPdb {
    /// PDB name (default: the workload's name).
    #[serde(default)]
    pub name: Option<String>,
    /// `minAvailable`: an integer or a percentage string.
    #[serde(default)]
    pub min_available: Option<Value>,
    /// `maxUnavailable`: an integer or a percentage string.
    #[serde(default)]
    pub max_unavailable: Option<Value>,
    /// `IfHealthyBudget` or `AlwaysAllow`.
    #[serde(default)]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

/// A standalone PDB.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PdbSpec {
    /// Name.
    pub name: String,
    /// Namespace (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `matchLabels` of the selector; an absent selector with `selectAll: true` is `{}`.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Use the empty selector `{}` (selects every pod in the namespace).
    #[serde(default)]
    pub select_all: bool,
    /// `minAvailable`.
    #[serde(default)]
    pub min_available: Option<Value>,
    /// `maxUnavailable`.
    #[serde(default)]
    pub max_unavailable: Option<Value>,
    /// `unhealthyPodEvictionPolicy`.
    #[serde(default)]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

/// Container restart history.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartsSpec {
    /// `restartCount` at load.
    #[serde(default)]
    pub count: u32,
    /// `lastState.terminated.reason` (default `OOMKilled`).
    #[serde(default)]
    pub reason: Option<String>,
    /// `lastState.terminated.exitCode` (default 137 for OOMKilled, else 1).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Restart again every this long (Go duration) while running.
    #[serde(default)]
    pub every: Option<String>,
}

/// Where the initial pods go (replacements are scheduled normally).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Only nodes of this node group.
    #[serde(default)]
    pub node_group: Option<String>,
    /// Only these nodes (in turn).
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// A workload and its pods.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Kind.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// Namespace (default `default`); created when missing.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Replicas (default 1; ignored for DaemonSet and StaticPod).
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Pod labels and selector (default `app: <name>`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the workload object.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Annotations of the pods (e.g. `karpenter.sh/do-not-disrupt: "true"`).
    #[serde(default)]
    pub pod_annotations: BTreeMap<String, String>,
    /// Container image (default `registry.example/<name>:1.0`).
    #[serde(default)]
    pub image: Option<String>,
    /// Requests.
    #[serde(default)]
    pub requests: Requests,
    /// Pod volumes, as in a pod spec (`emptyDir`, `persistentVolumeClaim`, ...).
    #[serde(default)]
    pub volumes: Vec<Value>,
    /// `priorityClassName`.
    #[serde(default)]
    pub priority_class_name: Option<String>,
    /// `nodeSelector`.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations`.
    #[serde(default)]
    pub tolerations: Vec<Value>,
    /// `affinity`, as in a pod spec.
    #[serde(default)]
    pub affinity: Option<Value>,
    /// `terminationGracePeriodSeconds` (default 30).
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    /// Deployment `strategy` / StatefulSet and DaemonSet `updateStrategy`, as in the API.
    #[serde(default)]
    pub strategy: Option<Value>,
    /// `minReadySeconds`.
    #[serde(default)]
    pub min_ready_seconds: Option<i64>,
    /// StatefulSet `podManagementPolicy`.
    #[serde(default)]
    pub pod_management_policy: Option<String>,
    /// `hostNetwork`.
    #[serde(default)]
    pub host_network: bool,
    /// Age of every pod (Go duration, default `1h`).
    #[serde(default)]
    pub age: Option<String>,
    /// Ages spread evenly from the first to the second (pod 0 youngest).
    #[serde(default)]
    pub age_range: Option<[String; 2]>,
    /// A PDB selecting the pods.
    #[serde(default)]
    pub pdb: Option<WorkloadPdb>,
    /// Pods never finish terminating.
    #[serde(default)]
    pub hang_on_termination: bool,
    /// Pods never become Ready.
    #[serde(default)]
    pub never_ready: bool,
    /// Restart history.
    #[serde(default)]
    pub restarts: Option<RestartsSpec>,
    /// Overrides the kubelet's start delay for these pods.
    #[serde(default)]
    pub start_delay: Option<String>,
    /// Overrides the kubelet's readiness delay for these pods.
    #[serde(default)]
    pub ready_delay: Option<String>,
    /// Pods get `sandbox.opsteps.io/protected: "true"`: the invariants fail if one is evicted.
    #[serde(default)]
    pub protected: bool,
    /// Initial placement.
    #[serde(default)]
    pub placement: Placement,
    /// Loaded pods start in this phase instead of Running (`Pending` = unscheduled,
    /// `Succeeded`, `Failed`); bare pods only.
    #[serde(default)]
    pub phase: Option<String>,
}

impl Scenario {
    /// Parses a scenario from YAML.
    pub fn from_yaml(yaml: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = serde_saphyr::from_str(yaml).context("parsing scenario YAML")?;
        s.validate()?;
        Ok(s)
    }

    /// Reads and parses a scenario file.
    pub fn from_file(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("in scenario {}", path.display()))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.clock.scale > 0.0, "clock.scale must be positive");
        for w in &self.workloads {
            if let Some(p) = &w.pdb {
                anyhow::ensure!(
                    p.min_available.is_some() != p.max_unavailable.is_some(),
                    "workload {}: pdb needs exactly one of minAvailable and maxUnavailable",
                    w.name
                );
            }
        }
        Ok(())
    }

    /// Number of nodes the scenario declares (node groups and individual nodes).
    #[must_use]
    pub fn total_nodes(&self) -> usize {
        self.node_groups
            .iter()
            .map(|g| g.count as usize)
            .sum::<usize>()
            + self.nodes.len()
    }
}

/// A fresh cluster on the scenario's clock (start, scale) with the scenario loaded: what tests
/// use to drive the controllers with [`crate::controllers::tick`] and no server.
pub fn cluster_from(scenario: &Scenario) -> anyhow::Result<Cluster> {
    let start = scenario.clock.start.unwrap_or_else(jiff::Timestamp::now);
    let clock = std::sync::Arc::new(crate::clock::Clock::new(start, scenario.clock.scale));
    let mut cluster = Cluster::new(clock);
    load(&mut cluster, scenario)?;
    Ok(cluster)
}
