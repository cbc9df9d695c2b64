//! The EKS API of the sandbox (issue 4): a restJson1 server that aws-sdk-eks talks to (through
//! `AWS_ENDPOINT_URL_EKS` or `endpoint_url`), backed by the simulated cluster, plus EKS token
//! authentication for the Kubernetes API.
//!
//! - [`EksState`] (in [`Cluster::eks`]) holds the EKS view: the cluster, managed node groups,
//!   add-ons, updates, insights, AWS faults and IAM access entries. [`load`] builds it from a
//!   scenario (its `cluster`, `nodeGroups` and optional `eks:` section, see [`spec::EksSpec`]).
//! - [`start`] serves the API on its own loopback port (plain HTTP); [`tick`] moves updates along
//!   on the virtual clock (a background task calls it, and so does every EKS request).
//!   `Sandbox::start` does both and exposes the URL as `Sandbox::eks_url()`.
//! - Linked behaviour: scaling a node group adds or removes Kubernetes nodes labelled
//!   `eks.amazonaws.com/nodegroup`; an add-on update sets the image of its workload (vpc-cni →
//!   DaemonSet `aws-node`, kube-proxy → DaemonSet `kube-proxy`, coredns → Deployment `coredns`,
//!   aws-ebs-csi-driver → Deployment `ebs-csi-controller` + DaemonSet `ebs-csi-node`, all in
//!   kube-system), which the controllers roll out; a finished UpdateClusterVersion changes the
//!   Kubernetes `/version`.
//! - [`authenticate`] accepts `k8s-aws-v1.` tokens on the Kubernetes API ([`token`] says what is
//!   checked) and maps the signing access key to a Kubernetes identity.

pub mod catalog;
mod http;
mod ops;
pub mod rollout;
pub mod spec;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api_state::Identity;
use crate::cluster::{Cluster, Shared};
use crate::controllers::util::{fnv, parse_duration};
use crate::scenario::{NodeGroupSpec, Scenario};

pub use http::EksServer;
pub use spec::{AwsFaultSpec, EksSpec};

/// Default AWS account id in ARNs.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The Kubernetes user of access keys without an access entry (when `defaultAdmin`).
pub const DEFAULT_ADMIN_USER: &str = "kubernetes-admin";

/// What an update does when it completes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Successful, ACTIVE.
    #[default]
    Succeed,
    /// Failed; the add-on is UPDATE_FAILED with the issue (node groups: ACTIVE, old version).
    Fail,
    /// Successful, but the add-on is DEGRADED with the issue until its next update.
    Degrade,
    /// Successful; the add-on is DEGRADED for a while, then ACTIVE.
    Flap,
}

/// Scripted outcome of updates.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// What happens.
    pub outcome: Outcome,
    /// Issue or error code.
    pub code: String,
    /// Message.
    pub message: String,
    /// For [`Outcome::Flap`].
    pub degraded_for: Duration,
    /// Updates left that behave so (`None`: all).
    pub times: Option<u32>,
}

impl Behaviour {
    fn from_spec(s: &spec::OnUpdateSpec, default_code: &str) -> anyhow::Result<Self> {
        let outcome = match s.result.as_deref().unwrap_or("Fail") {
            "Succeed" => Outcome::Succeed,
            "Fail" => Outcome::Fail,
            "Degrade" => Outcome::Degrade,
            "Flap" => Outcome::Flap,
            other => {
                anyhow::bail!("onUpdate.result {other:?}: expected Succeed, Fail, Degrade or Flap")
            }
        };
        let code = s.code.clone().unwrap_or_else(|| default_code.to_owned());
        let message = s.message.clone().unwrap_or_else(|| match code.as_str() {
            "InsufficientNumberOfReplicas" => "The add-on is unhealthy because it doesn't have the desired number of replicas.".to_owned(),
            "ConfigurationConflict" => "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode.".to_owned(),
            "PodEvictionFailure" => "Reached max retries while trying to evict pods from nodes in node group".to_owned(),
            other => other.to_owned(),
        });
        Ok(Self {
            outcome,
            code,
            message,
            degraded_for: parse_duration(s.degraded_for.as_deref().unwrap_or("2m"))?,
            times: s.times,
        })
    }

    /// The outcome of the next update, consuming one of `times`.
    fn take(&mut self) -> Option<Behaviour> {
        match &mut self.times {
            Some(0) => None,
            Some(n) => {
                *n -= 1;
                Some(self.clone())
            }
            None => Some(self.clone()),
        }
    }
}

/// A managed node group.
#[derive(Clone, Debug)]
pub struct Nodegroup {
    /// The scenario-style description its nodes are built from.
    pub spec: NodeGroupSpec,
    /// `ACTIVE`, `CREATING`, `UPDATING`, `DELETING`, `DEGRADED`.
    pub status: String,
    /// `scalingConfig.minSize`.
    pub min_size: u32,
    /// `scalingConfig.maxSize`.
    pub max_size: u32,
    /// `scalingConfig.desiredSize`.
    pub desired_size: u32,
    /// Kubernetes minor (`1.33`).
    pub version: String,
    /// AMI release version.
    pub release_version: String,
    /// AMI type.
    pub ami_type: String,
    /// `maxUnavailable` of `updateConfig`.
    pub max_unavailable: u32,
    /// Health issues.
    pub health_issues: Vec<Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub modified_at: Timestamp,
    /// Scripted UpdateNodegroupVersion outcome.
    pub on_update: Option<Behaviour>,
    /// When a CREATING or DELETING group finishes.
    pub due: Option<Timestamp>,
    /// Subnets given at creation.
    pub subnets: Vec<String>,
    /// Node IAM role.
    pub node_role: String,
    /// Index of the next node to create.
    pub next_index: u32,
}

/// An installed add-on.
#[derive(Clone, Debug)]
pub struct Addon {
    /// Name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Status.
    pub status: String,
    /// Health issues.
    pub health_issues: Vec<Value>,
    /// `configurationValues`.
    pub configuration_values: Option<String>,
    /// `serviceAccountRoleArn`.
    pub service_account_role_arn: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub modified_at: Timestamp,
    /// Someone edited its objects (NONE → ConfigurationConflict).
    pub conflict: bool,
    /// Scripted update outcome.
    pub on_update: Option<Behaviour>,
    /// End of a flap.
    pub degraded_until: Option<Timestamp>,
    /// DEGRADED (InsufficientNumberOfReplicas) after a successful update until its workloads
    /// finish rolling out.
    pub awaiting_rollout: bool,
}

/// What an update is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The control plane.
    Cluster,
    /// A node group.
    Nodegroup(String),
    /// An add-on.
    Addon(String),
}

/// What an update does when due.
#[derive(Clone, Debug)]
pub enum Action {
    /// New control-plane minor.
    ClusterVersion(String),
    /// Scaling, labels and taints of a node group.
    NodegroupConfig {
        /// New scaling (min, max, desired).
        scaling: Option<(u32, u32, u32)>,
        /// Labels to add or change.
        add_labels: BTreeMap<String, String>,
        /// Labels to remove.
        remove_labels: Vec<String>,
    },
    /// New node group version.
    NodegroupVersion {
        /// Kubernetes minor.
        version: String,
        /// AMI release.
        release: String,
        /// `force`.
        force: bool,
    },
    /// New add-on version and settings.
    Addon {
        /// Version.
        version: String,
        /// `configurationValues`, if given.
        configuration_values: Option<String>,
        /// `serviceAccountRoleArn`, if given.
        role: Option<String>,
        /// Fails with ConfigurationConflict (conflict and `resolveConflicts` NONE).
        conflict: bool,
    },
}

/// An EKS update (DescribeUpdate).
#[derive(Clone, Debug)]
pub struct Update {
    /// Id (UUID).
    pub id: String,
    /// What it is about.
    pub target: Target,
    /// `VersionUpdate`, `ConfigUpdate`, `AddonUpdate`.
    pub kind: &'static str,
    /// `InProgress`, `Failed`, `Cancelled`, `Successful`.
    pub status: String,
    /// `params[]` (type, value).
    pub params: Vec<(String, String)>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it completes.
    pub due: Timestamp,
    /// `errors[]`.
    pub errors: Vec<Value>,
    /// What it does.
    pub action: Action,
    /// The node replacement under way (scale-down, version update), once started.
    pub rollout: Option<rollout::Rollout>,
}

/// An injected AWS error.
#[derive(Clone, Debug)]
pub struct AwsFault {
    /// Error name (`ThrottlingException`).
    pub error: String,
    /// Operations (empty: all).
    pub operations: Vec<String>,
    /// Requests still to fail.
    pub remaining: u32,
    /// Matching requests still to let through first.
    pub skip: u32,
    /// HTTP status.
    pub status: u16,
    /// Message.
    pub message: String,
}

impl AwsFault {
    /// From the scenario form.
    #[must_use]
    pub fn from_spec(s: &AwsFaultSpec) -> Self {
        let status = s.status.unwrap_or(match s.error.as_str() {
            "ThrottlingException" | "TooManyRequestsException" => 429,
            "ServerException" => 500,
            "ServiceUnavailableException" => 503,
            "AccessDeniedException" => 403,
            "ResourceNotFoundException" => 404,
            "ResourceInUseException" => 409,
            _ => 400,
        });
        Self {
            error: s.error.clone(),
            operations: s.operations.clone(),
            remaining: s.count.unwrap_or(1),
            skip: s.after.unwrap_or(0),
            status,
            message: s.message.clone().unwrap_or_else(|| match s.error.as_str() {
                "ThrottlingException" => "Rate exceeded".to_owned(),
                "ServerException" => "An internal error occurred. Try again.".to_owned(),
                other => format!("injected {other}"),
            }),
        }
    }
}

/// One EKS request served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksRequest {
    /// Operation (`UpdateAddon`), or the method and path when unknown.
    pub operation: String,
    /// HTTP status answered.
    pub status: u16,
    /// Error type, for errors.
    pub error: Option<String>,
    /// Virtual time.
    pub virtual_time: String,
}

/// Virtual durations of operations.
#[derive(Clone, Debug)]
pub struct Timings {
    /// UpdateClusterVersion.
    pub cluster_update: Duration,
    /// UpdateAddon.
    pub addon_update: Duration,
    /// UpdateNodegroupVersion.
    pub nodegroup_update: Duration,
    /// UpdateNodegroupConfig.
    pub nodegroup_config: Duration,
    /// CreateNodegroup.
    pub nodegroup_create: Duration,
    /// DeleteNodegroup.
    pub nodegroup_delete: Duration,
    /// How long a node group drain tries to evict a node's pods before it forces (scale-down,
    /// `force`) or fails (`PodEvictionFailure`).
    pub pod_eviction_timeout: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            cluster_update: Duration::from_mins(8),
            addon_update: Duration::from_mins(1),
            nodegroup_update: Duration::from_mins(5),
            nodegroup_config: Duration::from_mins(1),
            nodegroup_create: Duration::from_mins(3),
            nodegroup_delete: Duration::from_mins(2),
            pod_eviction_timeout: Duration::from_mins(15),
        }
    }
}

/// The EKS view of the sandbox.
#[derive(Clone, Debug)]
pub struct EksState {
    /// Cluster name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Account id.
    pub account: String,
    /// Kubernetes minor (`1.33`).
    pub version: String,
    /// Platform version (`eks.8`).
    pub platform_version: String,
    /// Cluster status.
    pub status: String,
    /// Cluster creation time.
    pub created_at: Timestamp,
    /// Kubernetes API URL (DescribeCluster `endpoint`).
    pub endpoint: String,
    /// CA PEM of the Kubernetes API (DescribeCluster `certificateAuthority.data`, base64).
    pub ca_pem: Option<String>,
    /// Cluster health issues.
    pub health_issues: Vec<Value>,
    /// Node groups by name.
    pub nodegroups: BTreeMap<String, Nodegroup>,
    /// Add-ons by name.
    pub addons: BTreeMap<String, Addon>,
    /// Every update, oldest first.
    pub updates: Vec<Update>,
    /// Upgrade insights (resolved ids).
    pub insights: Vec<spec::InsightSpec>,
    /// Injected errors.
    pub faults: Vec<AwsFault>,
    /// Durations.
    pub timings: Timings,
    /// Access entries.
    pub access: Vec<spec::AccessEntrySpec>,
    /// Keys without an entry are admins.
    pub default_admin: bool,
    /// Requests served.
    pub requests: Vec<EksRequest>,
    /// What node group rollouts did (cordons, evictions, refusals, terminations), oldest first.
    pub drain_events: Vec<rollout::DrainEvent>,
    /// After a successful add-on update, report DEGRADED until the workloads have rolled out
    /// (default true; turn off when no controllers run, or add-ons would stay DEGRADED).
    pub track_rollouts: bool,
    /// Which clock ages EKS tokens (`eks.tokenClock`).
    pub token_clock: spec::TokenClock,
    /// Signature → virtual signing time, so tokens also age with clock jumps (virtual token
    /// clock only).
    token_seen: HashMap<String, Timestamp>,
    seq: u64,
}

impl Default for EksState {
    fn default() -> Self {
        Self {
            name: "sandbox".into(),
            region: "us-east-1".into(),
            account: DEFAULT_ACCOUNT.into(),
            version: "1.33".into(),
            platform_version: "eks.8".into(),
            status: "ACTIVE".into(),
            created_at: Timestamp::UNIX_EPOCH,
            endpoint: String::new(),
            ca_pem: None,
            health_issues: Vec::new(),
            nodegroups: BTreeMap::new(),
            addons: BTreeMap::new(),
            updates: Vec::new(),
            insights: Vec::new(),
            faults: Vec::new(),
            timings: Timings::default(),
            access: Vec::new(),
            default_admin: true,
            requests: Vec::new(),
            drain_events: Vec::new(),
            track_rollouts: true,
            token_clock: spec::TokenClock::Real,
            token_seen: HashMap::new(),
            seq: 0,
        }
    }
}

/// `2c1b...`-style UUID from a seed.
fn uuid(seed: u64) -> String {
    let a = fnv(&seed.to_le_bytes());
    let b = fnv(&a.to_le_bytes());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

impl EksState {
    /// Cluster ARN.
    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:eks:{}:{}:cluster/{}",
            self.region, self.account, self.name
        )
    }

    /// Kubernetes minor as a number.
    #[must_use]
    pub fn minor(&self) -> u32 {
        catalog::minor_of(&self.version).unwrap_or(33)
    }

    /// A fresh UUID.
    pub fn next_id(&mut self) -> String {
        self.seq += 1;
        uuid(self.seq ^ fnv(self.name.as_bytes()))
    }

    /// Adds an injected error.
    pub fn add_fault(&mut self, fault: &AwsFaultSpec) {
        self.faults.push(AwsFault::from_spec(fault));
    }

    /// The fault that answers this request, if any (consumes one).
    fn fault_for(&mut self, operation: &str) -> Option<AwsFault> {
        for f in &mut self.faults {
            if f.remaining == 0
                || !(f.operations.is_empty() || f.operations.iter().any(|o| o == operation))
            {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            f.remaining -= 1;
            return Some(f.clone());
        }
        None
    }

    /// Requests of `operation` served so far.
    #[must_use]
    pub fn requests_of(&self, operation: &str) -> Vec<EksRequest> {
        self.requests
            .iter()
            .filter(|r| r.operation == operation)
            .cloned()
            .collect()
    }

    /// The update in progress for `target`, if any.
    #[must_use]
    pub fn running(&self, target: &Target) -> Option<&Update> {
        self.updates
            .iter()
            .find(|u| &u.target == target && u.status == "InProgress")
    }

    /// The scenario `ClusterSpec` node creation needs, at `version`.
    fn cluster_spec(&self, version: &str) -> crate::scenario::ClusterSpec {
        crate::scenario::ClusterSpec {
            name: self.name.clone(),
            region: self.region.clone(),
            version: version.to_owned(),
            platform_version: self.platform_version.clone(),
        }
    }
}

/// Node names of group `group`, by index, highest first.
fn group_nodes(c: &Cluster, group: &str) -> Vec<String> {
    let mut names: Vec<(u64, String)> = c
        .store
        .list(crate::resources::well_known::nodes(), None)
        .filter(|n| {
            n.pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
                .and_then(Value::as_str)
                == Some(group)
        })
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?.to_owned();
            let idx = name
                .rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Some((idx, name))
        })
        .collect();
    names.sort_by(|a, b| b.cmp(a));
    names.into_iter().map(|(_, n)| n).collect()
}

fn release_for(version: &str) -> String {
    format!("{version}.0-20251001")
}

fn ami_type(spec: &NodeGroupSpec) -> String {
    if spec.capacity.gpu.is_some_and(|g| g > 0)
        || spec
            .instance_type
            .as_deref()
            .is_some_and(|t| t.starts_with('p') || t.starts_with('g'))
    {
        "AL2023_x86_64_NVIDIA".into()
    } else {
        "AL2023_x86_64_STANDARD".into()
    }
}

/// The minor of a kubelet version (`v1.32.3-eks-473151a` → `1.32`).
fn kubelet_minor(v: &str) -> Option<String> {
    let mut it = v.trim_start_matches('v').split('.');
    Some(format!("{}.{}", it.next()?, it.next()?))
}

fn new_nodegroup(spec: NodeGroupSpec, version: String, at: Timestamp) -> Nodegroup {
    let count = spec.count;
    Nodegroup {
        status: "ACTIVE".into(),
        min_size: 0,
        max_size: (count * 2).max(1),
        desired_size: count,
        release_version: release_for(&version),
        version,
        ami_type: ami_type(&spec),
        max_unavailable: 1,
        health_issues: Vec::new(),
        created_at: at,
        modified_at: at,
        on_update: None,
        due: None,
        subnets: Vec::new(),
        node_role: String::new(),
        next_index: count,
        spec,
    }
}

fn default_insights(minor: u32) -> Vec<spec::InsightSpec> {
    let next = format!("1.{}", minor + 1);
    [
        (
            "Kubelet version skew",
            "All nodes run a kubelet version supported by the next Kubernetes version.",
        ),
        (
            &*format!("Deprecated APIs removed in Kubernetes v{next}"),
            "No requests to APIs removed in the next version were seen in the last 30 days.",
        ),
        (
            "EKS add-on version compatibility",
            "Installed add-on versions are compatible with the next Kubernetes version.",
        ),
        ("Cluster health issues", "The cluster has no health issues."),
    ]
    .iter()
    .map(|(name, description)| spec::InsightSpec {
        name: (*name).to_owned(),
        description: Some((*description).to_owned()),
        kubernetes_version: Some(next.clone()),
        ..spec::InsightSpec::default()
    })
    .collect()
}

/// Builds [`Cluster::eks`] from `scenario` (after the scenario's nodes exist) and sets the
/// Kubernetes `/version` minor from `cluster.version`.
// One pass over the `eks:` section, in the order of its fields.
#[allow(clippy::too_many_lines)]
pub fn load(cluster: &mut Cluster, scenario: &Scenario) -> anyhow::Result<()> {
    let eks_spec = scenario.eks.clone().unwrap_or_default();
    let now = cluster.clock.now();
    let mut s = EksState {
        name: scenario.cluster.name.clone(),
        region: scenario.cluster.region.clone(),
        account: eks_spec
            .account_id
            .clone()
            .unwrap_or_else(|| DEFAULT_ACCOUNT.into()),
        version: scenario.cluster.version.clone(),
        platform_version: scenario.cluster.platform_version.clone(),
        created_at: now - SignedDuration::from_hours(24 * 200),
        health_issues: eks_spec.health_issues.clone(),
        default_admin: eks_spec.default_admin,
        token_clock: eks_spec.token_clock,
        access: eks_spec.access_entries.clone(),
        ..EksState::default()
    };
    let minor = s.minor();
    anyhow::ensure!(
        catalog::MINORS.contains(&minor),
        "cluster.version {:?}: the EKS API simulates 1.31 to 1.35",
        s.version
    );
    let t = &eks_spec.timings;
    let d = |v: &Option<String>, default: Duration| -> anyhow::Result<Duration> {
        v.as_deref().map_or(Ok(default), parse_duration)
    };
    let dt = Timings::default();
    s.timings = Timings {
        cluster_update: d(&t.cluster_update, dt.cluster_update)?,
        addon_update: d(&t.addon_update, dt.addon_update)?,
        nodegroup_update: d(&t.nodegroup_update, dt.nodegroup_update)?,
        nodegroup_config: d(&t.nodegroup_config, dt.nodegroup_config)?,
        nodegroup_create: d(&t.nodegroup_create, dt.nodegroup_create)?,
        nodegroup_delete: d(&t.nodegroup_delete, dt.nodegroup_delete)?,
        pod_eviction_timeout: d(&t.pod_eviction_timeout, dt.pod_eviction_timeout)?,
    };
    let created = s.created_at;
    for g in &scenario.node_groups {
        let version = g
            .version
            .as_deref()
            .and_then(kubelet_minor)
            .unwrap_or_else(|| s.version.clone());
        s.nodegroups
            .insert(g.name.clone(), new_nodegroup(g.clone(), version, created));
    }
    for o in &eks_spec.nodegroups {
        let ng = s
            .nodegroups
            .get_mut(&o.name)
            .with_context(|| format!("eks.nodegroups: {} is not in nodeGroups", o.name))?;
        if let Some(v) = o.min_size {
            ng.min_size = v;
        }
        if let Some(v) = o.max_size {
            ng.max_size = v;
        }
        anyhow::ensure!(
            ng.min_size <= ng.desired_size && ng.desired_size <= ng.max_size,
            "eks.nodegroups {}: need minSize <= count <= maxSize",
            o.name
        );
        if let Some(v) = &o.release_version {
            ng.release_version.clone_from(v);
        }
        if let Some(v) = &o.ami_type {
            ng.ami_type.clone_from(v);
        }
        ng.health_issues.clone_from(&o.health_issues);
        if !ng.health_issues.is_empty() {
            ng.status = "DEGRADED".into();
        }
        if let Some(b) = &o.on_update {
            ng.on_update = Some(Behaviour::from_spec(b, "PodEvictionFailure")?);
        }
    }
    let addons = eks_spec.addons.clone().unwrap_or_else(|| {
        ["vpc-cni", "kube-proxy", "coredns"]
            .iter()
            .map(|n| spec::AddonSpec {
                name: (*n).to_owned(),
                ..spec::AddonSpec::default()
            })
            .collect()
    });
    for a in &addons {
        let version = match &a.version {
            Some(v) => v.clone(),
            None => catalog::default_version(&a.name, minor)
                .with_context(|| {
                    format!(
                        "eks.addons {}: give a version (not in the catalogue)",
                        a.name
                    )
                })?
                .to_owned(),
        };
        if catalog::known(&a.name) {
            anyhow::ensure!(
                catalog::exists(&a.name, &version),
                "eks.addons {}: version {version} is not in the catalogue ({:?})",
                a.name,
                catalog::versions_for(&a.name, minor)
            );
        }
        if let Some(cv) = &a.configuration_values {
            catalog::validate_configuration(&a.name, cv)
                .map_err(|e| anyhow::anyhow!("eks.addons {}: configurationValues: {e}", a.name))?;
        }
        let on_update = a
            .on_update
            .as_ref()
            .map(|b| Behaviour::from_spec(b, "InsufficientNumberOfReplicas"))
            .transpose()?;
        s.addons.insert(
            a.name.clone(),
            Addon {
                name: a.name.clone(),
                version,
                status: a.status.clone().unwrap_or_else(|| "ACTIVE".into()),
                health_issues: a.health_issues.clone(),
                configuration_values: a.configuration_values.clone(),
                service_account_role_arn: a.service_account_role_arn.clone(),
                created_at: created,
                modified_at: created,
                conflict: a.conflict,
                on_update,
                degraded_until: None,
                awaiting_rollout: false,
            },
        );
    }
    let mut insights = eks_spec
        .insights
        .clone()
        .unwrap_or_else(|| default_insights(minor));
    for i in &mut insights {
        if i.id.is_none() {
            i.id = Some(uuid(fnv(i.name.as_bytes())));
        }
        if i.kubernetes_version.is_none() {
            i.kubernetes_version = Some(format!("1.{}", minor + 1));
        }
    }
    s.insights = insights;
    for f in &eks_spec.faults {
        s.add_fault(f);
    }
    cluster.api.version_minor = minor;
    cluster.eks = s;
    Ok(())
}

/// Moves due work along at the virtual now: finishes updates, node group creation and
/// deletion, and add-on flaps.
pub fn tick(c: &mut Cluster) {
    let now = c.clock.now();
    let due: Vec<usize> = c
        .eks
        .updates
        .iter()
        .enumerate()
        .filter(|(_, u)| u.status == "InProgress" && (u.rollout.is_some() || u.due <= now))
        .map(|(i, _)| i)
        .collect();
    for i in due {
        if c.eks.updates[i].rollout.is_some() {
            ops::run_rollout(c, i, now);
        } else {
            ops::complete(c, i, now);
        }
    }
    let groups: Vec<String> = c
        .eks
        .nodegroups
        .iter()
        .filter(|(_, g)| g.due.is_some_and(|d| d <= now))
        .map(|(n, _)| n.clone())
        .collect();
    for g in groups {
        ops::finish_nodegroup(c, &g, now);
    }
    for a in c.eks.addons.values_mut() {
        let flap_over = a.degraded_until.is_some_and(|d| d <= now);
        let rolled_out = a.awaiting_rollout && unfinished_workloads(&c.store, &a.name).is_empty();
        if flap_over || rolled_out {
            a.degraded_until = None;
            a.awaiting_rollout = false;
            a.status = "ACTIVE".into();
            a.health_issues.clear();
            a.modified_at = now;
        }
    }
}

/// Workloads of `addon` (that exist) whose rollout has not finished: not observed at their
/// generation, or fewer updated and available replicas than wanted.
#[must_use]
pub fn unfinished_workloads(store: &crate::store::Store, addon: &str) -> Vec<String> {
    use crate::resources::well_known;
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    catalog::workloads(addon)
        .iter()
        .filter(|w| {
            let daemon = w.kind == "DaemonSet";
            let res = if daemon {
                well_known::daemonsets()
            } else {
                well_known::deployments()
            };
            let Some(o) = store.get(res, w.namespace, w.name) else {
                return false;
            };
            let observed = n(&o, "/status/observedGeneration") >= n(&o, "/metadata/generation");
            let done = if daemon {
                let desired = n(&o, "/status/desiredNumberScheduled");
                n(&o, "/status/updatedNumberScheduled") >= desired
                    && n(&o, "/status/numberAvailable") >= desired
            } else {
                let want = o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                n(&o, "/status/updatedReplicas") >= want
                    && n(&o, "/status/availableReplicas") >= want
            };
            !(observed && done)
        })
        .map(|w| w.name.to_owned())
        .collect()
}

/// Authenticates a bearer token on the Kubernetes API: `None` unless it is a valid EKS token
/// for this cluster whose access key maps to an identity. Tokens live 15 real minutes, as on
/// EKS, unless the scenario ages them on the virtual clock (`eks.tokenClock: virtual`): then
/// the first time a token is seen its virtual signing time is fixed (virtual now − virtual
/// age), so later clock jumps age it too.
pub fn authenticate(c: &mut Cluster, bearer: &str) -> Option<Identity> {
    if !bearer.starts_with(token::PREFIX) {
        return None;
    }
    let virtual_clock = c.eks.token_clock == spec::TokenClock::Virtual;
    let scale = if virtual_clock { c.clock.scale() } else { 1.0 };
    let claims = match token::authenticate_eks_token(bearer, &c.eks.name, &c.eks.region, scale) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(reason = %e, "EKS token refused");
            return None;
        }
    };
    let now = c.clock.now();
    let eks = &mut c.eks;
    if virtual_clock {
        if eks.token_seen.len() > 10_000 {
            eks.token_seen.clear();
        }
        let signed = *eks
            .token_seen
            .entry(claims.signature.clone())
            .or_insert(now - claims.age);
        let limit = SignedDuration::try_from(token::VALIDITY).unwrap_or(SignedDuration::MAX);
        if now.duration_since(signed) > limit {
            tracing::debug!(age = %now.duration_since(signed), "EKS token refused: expired (virtual time)");
            return None;
        }
    }
    let key = claims.access_key_id.clone();
    if let Some(e) = eks.access.iter().find(|e| e.access_key_id == key) {
        if let Some(secret) = &e.secret_access_key
            && !token::signature_matches(&claims, &eks.name, &eks.region, secret)
        {
            tracing::debug!(key = %key, "EKS token refused: signature does not match this cluster and key");
            return None;
        }
        let arn = e
            .principal_arn
            .clone()
            .unwrap_or_else(|| format!("arn:aws:iam::{}:user/{key}", eks.account));
        let mut groups = e.groups.clone();
        groups.push("system:authenticated".into());
        return Some(Identity {
            user: e.username.clone().unwrap_or(arn),
            groups,
            dry_run: false,
        });
    }
    eks.default_admin.then(|| Identity {
        user: DEFAULT_ADMIN_USER.into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        dry_run: false,
    })
}

/// Starts the EKS API on 127.0.0.1 (any free port) for `shared`, whose Kubernetes API is at
/// `kube_url` with CA `ca_pem`, plus the background task that calls [`tick`]. Both stop on
/// `shutdown`.
pub async fn start(
    shared: Shared,
    kube_url: &str,
    ca_pem: Option<&str>,
    shutdown: CancellationToken,
) -> anyhow::Result<EksServer> {
    {
        let mut c = shared.lock();
        kube_url
            .trim_end_matches('/')
            .clone_into(&mut c.eks.endpoint);
        c.eks.ca_pem = ca_pem.map(str::to_owned);
    }
    let ticker: JoinHandle<()> = {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = interval.tick() => tick(&mut shared.lock()),
                }
            }
        })
    };
    http::serve(Arc::new(shared), shutdown, ticker).await
}

/// Access key id of [`client_env`].
pub const TEST_ACCESS_KEY_ID: &str = "AKIDSANDBOXTEST";

/// Environment for a step process (or child test process) that should reach the EKS API at
/// `eks_url` in `region` with static test credentials and nothing from the host's AWS setup:
/// `AWS_ENDPOINT_URL_EKS`, `AWS_REGION` (and `AWS_DEFAULT_REGION`, which the aws CLI v1 reads),
/// `AWS_ACCESS_KEY_ID` ([`TEST_ACCESS_KEY_ID`]),
/// `AWS_SECRET_ACCESS_KEY`, and no config files or IMDS. Unset `AWS_PROFILE`,
/// `AWS_SESSION_TOKEN` and `AWS_ENDPOINT_URL` in the child as well.
#[must_use]
pub fn client_env(eks_url: &str, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_EKS", eks_url.to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "sandbox-test-secret".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_owned()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials".to_owned(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// An EKS `update` object.
fn update_json(u: &Update) -> Value {
    json!({
        "id": u.id,
        "status": u.status,
        "type": u.kind,
        "params": u.params.iter().map(|(t, v)| json!({"type": t, "value": v})).collect::<Vec<_>>(),
        "createdAt": epoch(u.created_at),
        "errors": u.errors,
    })
}

/// Epoch seconds with milliseconds, as EKS sends timestamps.
fn epoch(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use opsteps::eks_token::presign;

    use super::*;
    use crate::scenario::cluster_from;

    fn cluster(yaml: &str) -> Cluster {
        let s = Scenario::from_yaml(yaml).unwrap();
        let mut c = cluster_from(&s).unwrap();
        load(&mut c, &s).unwrap();
        c
    }

    fn token(key: &str, secret: &str, cluster: &str) -> String {
        let creds = Credentials::new(key, secret, None, None, "test");
        presign(cluster, "eu-west-1", creds, SystemTime::now()).unwrap()
    }

    #[test]
    fn access_entries_map_keys_and_secrets_bind_the_cluster() {
        let mut c = cluster(
            r"
cluster: {name: prod-a, region: eu-west-1}
clock: {scale: 1}
eks:
  tokenClock: virtual
  accessEntries:
    - {accessKeyId: AKIDSIGNED, username: signed, groups: [ops], secretAccessKey: right-secret}
    - {accessKeyId: AKIDROLE, principalArn: 'arn:aws:iam::111122223333:role/ops'}
",
        );
        let who = |c: &mut Cluster, t: &str| authenticate(c, t).map(|i| i.user);
        let signed = authenticate(&mut c, &token("AKIDSIGNED", "right-secret", "prod-a")).unwrap();
        assert_eq!(signed.user, "signed");
        assert_eq!(signed.groups, ["ops", "system:authenticated"]);
        assert_eq!(
            who(&mut c, &token("AKIDSIGNED", "right-secret", "prod-b")),
            None
        );
        assert_eq!(who(&mut c, &token("AKIDSIGNED", "wrong", "prod-a")), None);
        assert_eq!(
            who(&mut c, &token("AKIDROLE", "any", "prod-a")).as_deref(),
            Some("arn:aws:iam::111122223333:role/ops")
        );
        assert_eq!(
            who(&mut c, &token("AKIDOTHER", "any", "prod-a")).as_deref(),
            Some(DEFAULT_ADMIN_USER)
        );
        assert_eq!(who(&mut c, "sandbox-1-2"), None, "not an EKS token");
        let t = token("AKIDOTHER", "any", "prod-a");
        assert!(authenticate(&mut c, &t).is_some());
        c.clock.advance(Duration::from_mins(16));
        assert!(authenticate(&mut c, &t).is_none(), "aged by the clock jump");
    }

    #[test]
    fn tokens_age_in_real_time_by_default() {
        let mut c = cluster("cluster: {name: prod-a, region: eu-west-1}\nclock: {scale: 60}");
        assert_eq!(c.eks.token_clock, spec::TokenClock::Real);
        let creds = Credentials::new("AKIDANY", "any", None, None, "test");
        // Ten real minutes old: 600 virtual minutes at scale 60, still fresh in real time.
        let ten_minutes = SystemTime::now() - Duration::from_mins(10);
        let t = presign("prod-a", "eu-west-1", creds.clone(), ten_minutes).unwrap();
        assert!(authenticate(&mut c, &t).is_some());
        c.clock.advance(Duration::from_hours(2));
        assert!(
            authenticate(&mut c, &t).is_some(),
            "clock jumps do not age it"
        );
        let old = SystemTime::now() - Duration::from_mins(16);
        let t = presign("prod-a", "eu-west-1", creds, old).unwrap();
        assert!(authenticate(&mut c, &t).is_none(), "16 real minutes");
    }

    #[test]
    fn load_reads_the_eks_section_and_sets_version() {
        let c = cluster(
            r"
cluster: {name: prod-a, region: eu-west-1, version: '1.32'}
nodeGroups: [{name: gpu, count: 2, instanceType: p4d.24xlarge}]
eks:
  addons: [{name: coredns}, {name: vpc-cni, version: v1.19.2-eksbuild.1, onUpdate: {result: Degrade}}]
  nodegroups: [{name: gpu, minSize: 1, maxSize: 4}]
",
        );
        assert_eq!(c.api.version_minor, 32);
        assert_eq!(c.eks.addons["coredns"].version, "v1.11.4-eksbuild.2");
        assert_eq!(
            c.eks.addons["vpc-cni"].on_update.as_ref().unwrap().outcome,
            Outcome::Degrade
        );
        let g = &c.eks.nodegroups["gpu"];
        assert_eq!((g.min_size, g.max_size, g.desired_size), (1, 4, 2));
        assert_eq!(g.ami_type, "AL2023_x86_64_NVIDIA");
        assert_eq!(c.eks.insights.len(), 4);
        assert_eq!(
            c.eks.insights[0].kubernetes_version.as_deref(),
            Some("1.33")
        );
        for bad in [
            "cluster: {version: '1.29'}",
            "eks: {addons: [{name: coredns, version: v9}]}",
            "eks: {nodegroups: [{name: missing}]}",
            "eks: {addons: [{name: coredns, configurationValues: '{\"nope\": 1}'}]}",
        ] {
            let s = Scenario::from_yaml(bad).unwrap();
            let mut c = cluster_from(&s).unwrap();
            assert!(load(&mut c, &s).is_err(), "{bad}");
        }
    }
}
