//! The scenario's optional `eks:` section: add-ons and how their updates behave, node group
//! overrides, upgrade insights, AWS faults, timings and IAM access entries. Documented in
//! `tests/scenarios/README.md` ("EKS API").

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The `eks:` section. A scenario without one gets [`EksSpec::default`], which is what an empty
/// `eks: {}` gives (in particular `defaultAdmin: true`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksSpec {
    /// AWS account id in ARNs (default `111122223333`).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Installed managed add-ons. Absent: vpc-cni, kube-proxy and coredns at the default
    /// versions for the cluster version. An empty list installs none.
    #[serde(default)]
    pub addons: Option<Vec<AddonSpec>>,
    /// Per node group overrides (the groups themselves come from `nodeGroups`).
    #[serde(default)]
    pub nodegroups: Vec<NodegroupSpec>,
    /// Upgrade insights. Absent: four PASSING insights for the next minor version.
    #[serde(default)]
    pub insights: Option<Vec<InsightSpec>>,
    /// Injected AWS errors.
    #[serde(default)]
    pub faults: Vec<AwsFaultSpec>,
    /// How long operations take in virtual time.
    #[serde(default)]
    pub timings: TimingsSpec,
    /// IAM access key → Kubernetes identity for `k8s-aws-v1.` tokens.
    #[serde(default)]
    pub access_entries: Vec<AccessEntrySpec>,
    /// Keys without an access entry are admins (`kubernetes-admin` in `system:masters`, the
    /// default, like the cluster creator) or refused with 401 (`false`).
    #[serde(default = "yes")]
    pub default_admin: bool,
    /// Cluster health issues DescribeCluster reports (`{code, message, resourceIds}`).
    #[serde(default)]
    pub health_issues: Vec<Value>,
    /// Which clock ages `k8s-aws-v1.` tokens: `real` (default: 15 real minutes after
    /// `X-Amz-Date`, as EKS judges them, whatever the clock scale) or `virtual` (15 virtual
    /// minutes: real age × clock scale, and clock jumps age tokens too; for refresh tests).
    #[serde(default)]
    pub token_clock: TokenClock,
}

impl Default for EksSpec {
    fn default() -> Self {
        Self {
            account_id: None,
            addons: None,
            nodegroups: Vec::new(),
            insights: None,
            faults: Vec::new(),
            timings: TimingsSpec::default(),
            access_entries: Vec::new(),
            default_admin: true,
            health_issues: Vec::new(),
            token_clock: TokenClock::default(),
        }
    }
}

/// The clock token age is measured on (`eks.tokenClock`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenClock {
    /// Real time, as EKS: a real client's cached token lives its 15 real minutes.
    #[default]
    Real,
    /// Virtual time: real age × clock scale, plus clock jumps.
    Virtual,
}

fn yes() -> bool {
    true
}

/// One installed add-on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonSpec {
    /// `vpc-cni`, `kube-proxy`, `coredns`, `aws-ebs-csi-driver` (others are served but have no
    /// catalogue entry or workload).
    pub name: String,
    /// Installed version (default: the catalogue's default for the cluster version).
    #[serde(default)]
    pub version: Option<String>,
    /// Initial status (default `ACTIVE`).
    #[serde(default)]
    pub status: Option<String>,
    /// Initial health issues (`{code, message, resourceIds}`).
    #[serde(default)]
    pub health_issues: Vec<Value>,
    /// Installed `configurationValues` (a JSON or YAML string).
    #[serde(default)]
    pub configuration_values: Option<String>,
    /// `serviceAccountRoleArn`.
    #[serde(default)]
    pub service_account_role_arn: Option<String>,
    /// Someone edited the add-on's objects: an update with `resolveConflicts: NONE` (or none
    /// given) fails with ConfigurationConflict; OVERWRITE and PRESERVE succeed.
    #[serde(default)]
    pub conflict: bool,
    /// What updates of this add-on do (default: succeed).
    #[serde(default)]
    pub on_update: Option<OnUpdateSpec>,
}

/// The outcome of add-on or node group updates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnUpdateSpec {
    /// `Succeed`, `Fail` (update Failed, add-on UPDATE_FAILED), `Degrade` (update Successful,
    /// add-on DEGRADED until the next update) or `Flap` (update Successful, add-on DEGRADED for
    /// `degradedFor`, then ACTIVE).
    #[serde(default)]
    pub result: Option<String>,
    /// Issue / error code (default `InsufficientNumberOfReplicas`; node groups:
    /// `PodEvictionFailure`, which `force` overrides).
    #[serde(default)]
    pub code: Option<String>,
    /// Message of the issue.
    #[serde(default)]
    pub message: Option<String>,
    /// For `Flap`: how long the add-on stays DEGRADED (Go duration, default `2m`).
    #[serde(default)]
    pub degraded_for: Option<String>,
    /// How many updates behave so (default: all); later ones succeed.
    #[serde(default)]
    pub times: Option<u32>,
}

/// Overrides for one managed node group.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodegroupSpec {
    /// The `nodeGroups` entry this applies to.
    pub name: String,
    /// `scalingConfig.minSize` (default 0).
    #[serde(default)]
    pub min_size: Option<u32>,
    /// `scalingConfig.maxSize` (default max(2 × count, 1)).
    #[serde(default)]
    pub max_size: Option<u32>,
    /// `releaseVersion` (default `<version>.0-20251001`).
    #[serde(default)]
    pub release_version: Option<String>,
    /// `amiType` (default `AL2023_x86_64_STANDARD`, `AL2023_x86_64_NVIDIA` for GPU groups).
    #[serde(default)]
    pub ami_type: Option<String>,
    /// Health issues (`{code, message, resourceIds}`); status DEGRADED when non-empty.
    #[serde(default)]
    pub health_issues: Vec<Value>,
    /// What UpdateNodegroupVersion does (`Fail` with `PodEvictionFailure` unless `force`).
    #[serde(default)]
    pub on_update: Option<OnUpdateSpec>,
}

/// An upgrade insight.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InsightSpec {
    /// Id (default: derived from the name).
    #[serde(default)]
    pub id: Option<String>,
    /// Name, e.g. `Deprecated APIs removed in Kubernetes v1.34`.
    pub name: String,
    /// `UPGRADE_READINESS` (default) or `MISCONFIGURATION`.
    #[serde(default)]
    pub category: Option<String>,
    /// Kubernetes version it is about (default: the next minor).
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// `PASSING` (default), `WARNING`, `ERROR`, `UNKNOWN`. An ERROR insight for the target
    /// version makes UpdateClusterVersion answer InvalidStateException unless `force`.
    #[serde(default)]
    pub status: Option<String>,
    /// `insightStatus.reason`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Recommendation.
    #[serde(default)]
    pub recommendation: Option<String>,
    /// `resources[]` as in DescribeInsight (`{kubernetesResourceUri, arn, insightStatus}`).
    #[serde(default)]
    pub resources: Vec<Value>,
    /// `categorySpecificSummary.deprecationDetails[]` as in DescribeInsight.
    #[serde(default)]
    pub deprecation_details: Vec<Value>,
    /// `categorySpecificSummary.addonCompatibilityDetails[]` as in DescribeInsight.
    #[serde(default)]
    pub addon_compatibility_details: Vec<Value>,
    /// `additionalInfo` (string → string).
    #[serde(default)]
    pub additional_info: BTreeMap<String, String>,
}

/// Refuses an insight status or category EKS does not have (a typo would reach clients as an
/// unknown enum value).
pub(super) fn check_insight(i: &InsightSpec) -> anyhow::Result<()> {
    const STATUSES: &[&str] = &["PASSING", "WARNING", "ERROR", "UNKNOWN"];
    const CATEGORIES: &[&str] = &["UPGRADE_READINESS", "MISCONFIGURATION"];
    let status = i.status.as_deref().unwrap_or("PASSING");
    let category = i.category.as_deref().unwrap_or("UPGRADE_READINESS");
    anyhow::ensure!(
        STATUSES.contains(&status),
        "eks.insights {:?}: status {status:?}: expected one of {}",
        i.name,
        STATUSES.join(", ")
    );
    anyhow::ensure!(
        CATEGORIES.contains(&category),
        "eks.insights {:?}: category {category:?}: expected one of {}",
        i.name,
        CATEGORIES.join(", ")
    );
    Ok(())
}

/// An injected AWS error: the next `count` matching requests fail with it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsFaultSpec {
    /// `ThrottlingException` (429), `ServerException` (500), `ServiceUnavailableException`
    /// (503), or any other name with `status`.
    pub error: String,
    /// Operations it applies to (`UpdateAddon`, ...); empty: all.
    #[serde(default)]
    pub operations: Vec<String>,
    /// How many requests fail (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// Matching requests to let through first (default 0).
    #[serde(default)]
    pub after: Option<u32>,
    /// HTTP status (default from the error name).
    #[serde(default)]
    pub status: Option<u16>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}

/// Virtual durations of EKS operations (Go durations).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimingsSpec {
    /// UpdateClusterVersion (default `8m`).
    #[serde(default)]
    pub cluster_update: Option<String>,
    /// UpdateAddon (default `1m`).
    #[serde(default)]
    pub addon_update: Option<String>,
    /// UpdateNodegroupVersion (default `5m`).
    #[serde(default)]
    pub nodegroup_update: Option<String>,
    /// UpdateNodegroupConfig (default `1m`).
    #[serde(default)]
    pub nodegroup_config: Option<String>,
    /// CreateNodegroup (default `3m`).
    #[serde(default)]
    pub nodegroup_create: Option<String>,
    /// DeleteNodegroup (default `2m`).
    #[serde(default)]
    pub nodegroup_delete: Option<String>,
    /// How long a node group drain tries to evict a node's pods before a scale-down (or a
    /// version update with `force`) deletes them and a version update without it fails with
    /// `PodEvictionFailure` (default `15m`, EKS's timeout).
    #[serde(default)]
    pub pod_eviction_timeout: Option<String>,
}

/// Maps an IAM access key to a Kubernetes identity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessEntrySpec {
    /// Access key id (`AKIA...`/`ASIA...`) the token's `X-Amz-Credential` names.
    pub access_key_id: String,
    /// Principal ARN (default `arn:aws:iam::<account>:user/<accessKeyId>`).
    #[serde(default)]
    pub principal_arn: Option<String>,
    /// Kubernetes user name (default: the principal ARN).
    #[serde(default)]
    pub username: Option<String>,
    /// Kubernetes groups (`system:authenticated` is always added).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The key's secret: when given, the token's signature is verified, which also checks that
    /// the signed `x-k8s-aws-id` is this cluster's name.
    #[serde(default)]
    pub secret_access_key: Option<String>,
}
