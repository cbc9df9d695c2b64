//! Updates a scenario seeds (`eks.updates`): EKS's update history as ListUpdates and
//! DescribeUpdate report it, for checkers looking for failed or stuck updates. A seeded
//! `InProgress` update never finishes and marks its target `UPDATING`, as a stuck update does.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Action, EksState, Target, Update};
use crate::controllers::util::parse_duration;

/// Update types EKS reports.
const TYPES: &[&str] = &[
    "VersionUpdate",
    "ConfigUpdate",
    "AddonUpdate",
    "EndpointAccessUpdate",
    "LoggingUpdate",
    "VpcConfigUpdate",
    "AccessConfigUpdate",
    "UpgradePolicyUpdate",
];

const STATUSES: &[&str] = &["InProgress", "Failed", "Cancelled", "Successful"];

/// One seeded update.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSpec {
    /// A node group's update (default: the cluster's).
    #[serde(default)]
    pub nodegroup: Option<String>,
    /// An add-on's update.
    #[serde(default)]
    pub addon: Option<String>,
    /// `type` (default `VersionUpdate`, `AddonUpdate` for add-ons).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// `InProgress`, `Failed`, `Cancelled` or `Successful`.
    pub status: String,
    /// The `Version` (`AddonVersion` for add-ons) param.
    #[serde(default)]
    pub version: Option<String>,
    /// Other params, `{type, value}`.
    #[serde(default)]
    pub params: Vec<Value>,
    /// How long ago it was created (Go duration, default `1h`).
    #[serde(default)]
    pub age: Option<String>,
    /// `errors[]`: `{errorCode, errorMessage, resourceIds}`.
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// Adds the seeded updates to `s` (after its node groups and add-ons exist), oldest first.
pub(super) fn seed(s: &mut EksState, specs: &[UpdateSpec], now: Timestamp) -> anyhow::Result<()> {
    let mut seeded = Vec::new();
    for u in specs {
        let status = STATUSES.iter().find(|x| **x == u.status).ok_or_else(|| {
            anyhow::anyhow!(
                "eks.updates: status {:?}: expected one of {}",
                u.status,
                STATUSES.join(", ")
            )
        })?;
        let (target, default_type, version_param) = match (&u.nodegroup, &u.addon) {
            (Some(g), None) => {
                anyhow::ensure!(
                    s.nodegroups.contains_key(g),
                    "eks.updates: no node group {g:?}"
                );
                (Target::Nodegroup(g.clone()), "VersionUpdate", "Version")
            }
            (None, Some(a)) => {
                anyhow::ensure!(s.addons.contains_key(a), "eks.updates: no add-on {a:?}");
                (Target::Addon(a.clone()), "AddonUpdate", "AddonVersion")
            }
            (None, None) => (Target::Cluster, "VersionUpdate", "Version"),
            (Some(_), Some(_)) => anyhow::bail!("eks.updates: nodegroup or addon, not both"),
        };
        let want = u.type_.as_deref().unwrap_or(default_type);
        let kind = TYPES.iter().find(|t| **t == want).ok_or_else(|| {
            anyhow::anyhow!(
                "eks.updates: type {want:?}: expected one of {}",
                TYPES.join(", ")
            )
        })?;
        let age = parse_duration(u.age.as_deref().unwrap_or("1h"))?;
        let created_at = now - SignedDuration::try_from(age)?;
        let mut params = Vec::new();
        if let Some(v) = &u.version {
            params.push((version_param.to_owned(), v.clone()));
        }
        for p in &u.params {
            let field = |k: &str| p[k].as_str().unwrap_or("").to_owned();
            params.push((field("type"), field("value")));
        }
        if *status == "InProgress" {
            match &target {
                Target::Cluster => "UPDATING".clone_into(&mut s.status),
                Target::Nodegroup(g) => {
                    if let Some(ng) = s.nodegroups.get_mut(g) {
                        "UPDATING".clone_into(&mut ng.status);
                    }
                }
                Target::Addon(a) => {
                    if let Some(ad) = s.addons.get_mut(a) {
                        "UPDATING".clone_into(&mut ad.status);
                    }
                }
            }
        }
        seeded.push(Update {
            id: s.next_id(),
            target,
            kind,
            status: (*status).to_owned(),
            params,
            created_at,
            // Never due: a seeded update in progress stays so.
            due: Timestamp::MAX,
            errors: u.errors.iter().map(error_detail).collect(),
            action: Action::ClusterVersion(String::new()),
            rollout: None,
            client_request_token: None,
        });
    }
    seeded.sort_by_key(|u| u.created_at);
    s.updates.splice(0..0, seeded);
    Ok(())
}

/// An `ErrorDetail` with EKS's members.
fn error_detail(e: &Value) -> Value {
    json!({
        "errorCode": e.get("errorCode").cloned().unwrap_or(json!("Unknown")),
        "errorMessage": e.get("errorMessage").cloned().unwrap_or(json!("")),
        "resourceIds": e.get("resourceIds").cloned().unwrap_or(json!([])),
    })
}
