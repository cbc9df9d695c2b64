//! The EKS API of the sandbox (issue 4): a restJson1 server that aws-sdk-eks talks to (through
//! `AWS_ENDPOINT_URL_EKS` or `endpoint_url`), backed by the simulated cluster, plus EKS token
//! authentication for the Kubernetes API.
//!
//! - [`EksState`] (in [`Cluster::eks`]) holds the EKS view: the cluster, managed node groups,
//!   add-ons, updates, insights, AWS faults and IAM access entries (records in `model.rs`).
//!   [`load`] builds it from a scenario (its `cluster`, `nodeGroups` and optional `eks:`
//!   section, see [`spec::EksSpec`]). The operations live in `ops.rs` (cluster, updates,
//!   insights), `ops/nodegroups.rs` and `ops/addons.rs`.
//! - [`start`] serves the API on its own loopback port (plain HTTP); [`tick`] moves updates along
//!   on the virtual clock (a background task calls it, and so does every EKS request).
//!   `Sandbox::start` does both and exposes the URL as `Sandbox::eks_url()`.
//! - Linked behaviour: scaling a node group up adds Kubernetes nodes labelled
//!   `eks.amazonaws.com/nodegroup`; scaling it down and updating its version drain nodes as EKS
//!   does ([`rollout`]: cordon, evictions under PDBs, termination); an add-on update sets the image of its workload (vpc-cni →
//!   DaemonSet `aws-node`, kube-proxy → DaemonSet `kube-proxy`, coredns → Deployment `coredns`,
//!   aws-ebs-csi-driver → Deployment `ebs-csi-controller` + DaemonSet `ebs-csi-node`, all in
//!   kube-system), which the controllers roll out; a finished UpdateClusterVersion changes the
//!   Kubernetes `/version`.
//! - [`authenticate`] accepts `k8s-aws-v1.` tokens on the Kubernetes API ([`token`] says what is
//!   checked) and maps the signing access key to a Kubernetes identity.

mod auth;
pub mod catalog;
mod http;
mod load;
mod model;
mod ops;
pub mod rollout;
pub mod spec;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, Shared};
use crate::controllers::util::fnv;

pub use auth::authenticate;
pub use http::EksServer;
pub use load::load;
use load::{new_nodegroup, release_for};
pub use model::{
    Action, Addon, AwsFault, Behaviour, EksRequest, Nodegroup, Outcome, Target, Timings, Update,
};
pub use spec::{AwsFaultSpec, EksSpec};

/// Default AWS account id in ARNs.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The Kubernetes user of access keys without an access entry (when `defaultAdmin`).
pub const DEFAULT_ADMIN_USER: &str = "kubernetes-admin";

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
        // EC2 DescribeSubnets is served on the same listener (`crate::ec2`).
        ("AWS_ENDPOINT_URL_EC2", eks_url.to_owned()),
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
