//! The EKS view's records: node groups, add-ons, updates and what they do, scripted outcomes,
//! injected AWS faults, served requests and operation timings.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::rollout;
use super::spec::{self, AwsFaultSpec};
use crate::controllers::util::parse_duration;
use crate::scenario::NodeGroupSpec;

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
    pub(super) fn from_spec(s: &spec::OnUpdateSpec, default_code: &str) -> anyhow::Result<Self> {
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
    pub(super) fn take(&mut self) -> Option<Behaviour> {
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
    /// The `eks.amazonaws.com/nodegroup-image` label of nodes it launches, once a version
    /// update has set one (before: the scenario's).
    pub image: Option<String>,
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
    /// The request's `clientRequestToken`: a repeated request with the same token gets this
    /// update back instead of starting another (add-ons).
    pub client_request_token: Option<String>,
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
    /// How long a new update stays out of ListUpdates.
    pub update_listing_delay: Duration,
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
            update_listing_delay: Duration::ZERO,
        }
    }
}
