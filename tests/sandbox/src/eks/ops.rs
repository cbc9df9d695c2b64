//! The EKS operations over the locked cluster, and what due updates do: the cluster, updates
//! and insights here, node groups in [`nodegroups`] (their drains in [`replace`]), add-ons in
//! [`addons`].

mod addons;
mod nodegroups;
mod replace;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::{Action, Target, Update, catalog, epoch, update_json};
use crate::cluster::Cluster;
use crate::controllers::util::fnv;

pub(super) use addons::{
    describe_addon, describe_addon_configuration, describe_addon_versions, list_addons,
    update_addon,
};
pub(super) use nodegroups::{
    create_nodegroup, delete_nodegroup, describe_nodegroup, finish_nodegroup, list_nodegroups,
    update_nodegroup_config, update_nodegroup_version,
};
pub(super) use replace::run_rollout;

/// An EKS error: status, `X-Amzn-Errortype`, message, extra body members.
#[derive(Debug)]
pub(super) struct EksError {
    pub status: u16,
    pub kind: String,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl EksError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.to_owned(),
            message: message.into(),
            extra: Map::new(),
        }
    }
    pub(super) fn with(mut self, key: &str, value: &str) -> Self {
        self.extra.insert(key.to_owned(), json!(value));
        self
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", m)
    }
    pub fn in_use(m: impl Into<String>) -> Self {
        Self::new(409, "ResourceInUseException", m)
    }
    pub fn invalid_param(m: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterException", m)
    }
    pub(super) fn invalid_state(m: impl Into<String>) -> Self {
        Self::new(400, "InvalidStateException", m)
    }
}

pub(super) type R = Result<Value, EksError>;

/// A parsed request: path labels, query pairs, JSON body, and the SigV4 scope's region.
pub(super) struct Req {
    pub labels: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Value,
    pub region: String,
}

impl Req {
    pub(super) fn label(&self, i: usize) -> &str {
        self.labels.get(i).map_or("", String::as_str)
    }
    pub(super) fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn b(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

/// Pages `items` by `maxResults` / `nextToken` (an offset).
pub(super) fn page(
    items: Vec<Value>,
    max: Option<&str>,
    next: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), EksError> {
    let start: usize = match next {
        Some(t) => t
            .parse()
            .map_err(|_| EksError::invalid_param("The nextToken is invalid"))?,
        None => 0,
    };
    let max: usize = match max {
        Some(m) => m
            .parse()
            .ok()
            .filter(|m| (1..=100).contains(m))
            .ok_or_else(|| EksError::invalid_param("maxResults must be between 1 and 100"))?,
        None => 100,
    };
    let total = items.len();
    let end = (start + max).min(total);
    let next = (end < total).then(|| end.to_string());
    Ok((items.into_iter().skip(start).take(max).collect(), next))
}

pub(super) fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    v
}

/// Fails unless `name` is this cluster and the request is scoped to its region.
pub(super) fn check_cluster(c: &Cluster, r: &Req) -> Result<(), EksError> {
    let name = r.label(0);
    if name == c.eks.name && r.region == c.eks.region {
        Ok(())
    } else {
        Err(
            EksError::not_found(format!("No cluster found for name: {name}."))
                .with("clusterName", name),
        )
    }
}

pub(super) fn issues(v: &[Value]) -> Value {
    json!(
        v.iter()
            .map(|i| json!({
                "code": i.get("code").cloned().unwrap_or(json!("InternalFailure")),
                "message": i.get("message").cloned().unwrap_or(json!("")),
                "resourceIds": i.get("resourceIds").cloned().unwrap_or(json!([])),
            }))
            .collect::<Vec<_>>()
    )
}

fn cluster_json(c: &Cluster) -> Value {
    let e = &c.eks;
    let id = format!(
        "{:016X}{:016X}",
        fnv(e.name.as_bytes()),
        fnv(e.arn().as_bytes())
    );
    let mut v = json!({
        "name": e.name,
        "arn": e.arn(),
        "createdAt": epoch(e.created_at),
        "version": e.version,
        "endpoint": e.endpoint,
        "roleArn": format!("arn:aws:iam::{}:role/eks-cluster-role", e.account),
        "resourcesVpcConfig": {
            "subnetIds": c.ec2.cluster_vpc_config().0,
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{:017x}", fnv(e.name.as_bytes()) >> 4),
            "vpcId": c.ec2.cluster_vpc_config().1,
            "endpointPublicAccess": true,
            "endpointPrivateAccess": true,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4", "elasticLoadBalancing": {"enabled": false}},
        "logging": {"clusterLogging": [{"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"], "enabled": false}]},
        "identity": {"oidc": {"issuer": format!("https://oidc.eks.{}.amazonaws.com/id/{id}", e.region)}},
        "status": e.status,
        "platformVersion": e.platform_version,
        "tags": {},
        "health": {"issues": issues(&e.health_issues)},
        "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"},
        "upgradePolicy": {"supportType": "STANDARD"},
    });
    if let Some(pem) = &e.ca_pem {
        v["certificateAuthority"] =
            json!({"data": base64::engine::general_purpose::STANDARD.encode(pem)});
    }
    v
}

pub(super) fn list_clusters(c: &mut Cluster, r: &Req) -> R {
    let names = if r.region == c.eks.region {
        vec![json!(c.eks.name)]
    } else {
        vec![]
    };
    let (items, next) = page(names, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"clusters": items}), next))
}

pub(super) fn describe_cluster(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    Ok(json!({"cluster": cluster_json(c)}))
}

pub(super) fn u32_of(v: &Value, key: &str) -> Result<Option<u32>, EksError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                EksError::invalid_param(format!("{key} must be a non-negative integer"))
            }),
    }
}

pub(super) fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

pub(super) fn new_update(
    c: &mut Cluster,
    target: Target,
    kind: &'static str,
    params: Vec<(String, String)>,
    took: std::time::Duration,
    action: Action,
) -> Value {
    let now = c.clock.now();
    let u = Update {
        id: c.eks.next_id(),
        target,
        kind,
        status: "InProgress".into(),
        params,
        created_at: now,
        due: now + signed(took),
        errors: Vec::new(),
        action,
        rollout: None,
    };
    let v = update_json(&u);
    c.eks.updates.push(u);
    json!({"update": v})
}

pub(super) fn update_cluster_version(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let version = r
        .b("version")
        .ok_or_else(|| EksError::invalid_param("version is required"))?
        .to_owned();
    if c.eks.status != "ACTIVE" || c.eks.running(&Target::Cluster).is_some() {
        return Err(EksError::in_use(format!(
            "Cluster {} is currently in {} state; an update is already in progress",
            c.eks.name, c.eks.status
        ))
        .with("clusterName", &c.eks.name.clone()));
    }
    let cur = c.eks.minor();
    let target = catalog::minor_of(&version);
    if target == Some(cur) {
        return Err(EksError::invalid_param(format!(
            "Cluster is already at the desired configuration with version: {version}"
        )));
    }
    if target != Some(cur + 1) || !catalog::MINORS.contains(&(cur + 1)) {
        return Err(EksError::invalid_param(format!(
            "Unsupported Kubernetes minor version update from {} to {version}",
            c.eks.version
        ))
        .with("clusterName", &c.eks.name.clone()));
    }
    let force = r.body["force"].as_bool().unwrap_or(false);
    let blocking: Vec<String> = c
        .eks
        .insights
        .iter()
        .filter(|i| i.status.as_deref() == Some("ERROR"))
        .filter(|i| i.kubernetes_version.as_deref().is_none_or(|v| v == version))
        .map(|i| i.name.clone())
        .collect();
    if !force && !blocking.is_empty() {
        return Err(EksError::invalid_state(format!(
            "Cluster upgrade is blocked by upgrade insights with status ERROR: {}. Resolve them or use force to proceed",
            blocking.join(", ")
        ))
        .with("clusterName", &c.eks.name.clone()));
    }
    let params = vec![
        ("Version".to_owned(), version.clone()),
        ("PlatformVersion".to_owned(), "eks.1".to_owned()),
    ];
    c.eks.status = "UPDATING".into();
    let took = c.eks.timings.cluster_update;
    Ok(new_update(
        c,
        Target::Cluster,
        "VersionUpdate",
        params,
        took,
        Action::ClusterVersion(version),
    ))
}

fn target_of(r: &Req) -> Target {
    if let Some(n) = r.q("nodegroupName") {
        Target::Nodegroup(n.to_owned())
    } else if let Some(a) = r.q("addonName") {
        Target::Addon(a.to_owned())
    } else {
        Target::Cluster
    }
}

pub(super) fn list_updates(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let target = target_of(r);
    match &target {
        Target::Nodegroup(n) if !c.eks.nodegroups.contains_key(n) => {
            return Err(
                EksError::not_found(format!("No node group found for name: {n}."))
                    .with("nodegroupName", n),
            );
        }
        Target::Addon(a) if !c.eks.addons.contains_key(a) => {
            return Err(EksError::not_found(format!(
                "No addon: {a} found in cluster: {}",
                c.eks.name
            ))
            .with("addonName", a));
        }
        _ => {}
    }
    let ids = c
        .eks
        .updates
        .iter()
        .filter(|u| u.target == target)
        .map(|u| json!(u.id))
        .collect();
    let (items, next) = page(ids, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"updateIds": items}), next))
}

pub(super) fn describe_update(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let target = target_of(r);
    let id = r.label(1);
    c.eks
        .updates
        .iter()
        .find(|u| u.id == id && u.target == target)
        .map(|u| json!({"update": update_json(u)}))
        .ok_or_else(|| EksError::not_found(format!("No update found for ID: {id}")))
}

fn insight_summary(i: &super::spec::InsightSpec, at: f64) -> Value {
    let status = i.status.clone().unwrap_or_else(|| "PASSING".into());
    let reason = i.reason.clone().unwrap_or_else(|| match status.as_str() {
        "PASSING" => "No issues found.".to_owned(),
        _ => "Issues found that need attention before upgrading.".to_owned(),
    });
    json!({
        "id": i.id,
        "name": i.name,
        "category": i.category.clone().unwrap_or_else(|| "UPGRADE_READINESS".into()),
        "kubernetesVersion": i.kubernetes_version,
        "lastRefreshTime": at,
        "lastTransitionTime": at,
        "description": i.description.clone().unwrap_or_else(|| i.name.clone()),
        "insightStatus": {"status": status, "reason": reason},
    })
}

pub(super) fn list_insights(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let at = epoch(c.clock.now() - SignedDuration::from_hours(6));
    let f = &r.body["filter"];
    let any_of = |key: &str, v: &Value| {
        f[key]
            .as_array()
            .is_none_or(|a| a.is_empty() || a.contains(v))
    };
    let items = c
        .eks
        .insights
        .iter()
        .map(|i| insight_summary(i, at))
        .filter(|s| {
            any_of("categories", &s["category"])
                && any_of("kubernetesVersions", &s["kubernetesVersion"])
                && any_of("statuses", &s["insightStatus"]["status"])
        })
        .collect();
    let max = r.body["maxResults"].as_u64().map(|m| m.to_string());
    let (items, next) = page(items, max.as_deref(), r.b("nextToken"))?;
    Ok(with_next(json!({"insights": items}), next))
}

pub(super) fn describe_insight(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let id = r.label(1);
    let at = epoch(c.clock.now() - SignedDuration::from_hours(6));
    let i = c
        .eks
        .insights
        .iter()
        .find(|i| i.id.as_deref() == Some(id))
        .ok_or_else(|| EksError::not_found(format!("No insight found for ID: {id}")))?;
    let mut v = insight_summary(i, at);
    v["recommendation"] = json!(
        i.recommendation
            .clone()
            .unwrap_or_else(|| "No action needed.".into())
    );
    v["additionalInfo"] = json!(i.additional_info);
    v["resources"] = json!(i.resources);
    v["categorySpecificSummary"] = json!({
        "deprecationDetails": i.deprecation_details,
        "addonCompatibilityDetails": i.addon_compatibility_details,
    });
    Ok(json!({"insight": v}))
}

/// Completes update `idx` at `now`, or starts the node rollout it runs on.
pub(super) fn complete(c: &mut Cluster, idx: usize, now: Timestamp) {
    let u = c.eks.updates[idx].clone();
    let ended = match (&u.target, &u.action) {
        (Target::Cluster, Action::ClusterVersion(v)) => {
            c.eks.version.clone_from(v);
            c.eks.platform_version = "eks.1".into();
            c.eks.status = "ACTIVE".into();
            if let Some(m) = catalog::minor_of(v) {
                c.api.version_minor = m;
                c.api.version_patch = 1;
            }
            Some(Ok(()))
        }
        (
            Target::Nodegroup(g),
            Action::NodegroupConfig {
                scaling,
                add_labels,
                remove_labels,
            },
        ) => nodegroups::complete_config(c, idx, g, *scaling, add_labels, remove_labels, now),
        (
            Target::Nodegroup(g),
            Action::NodegroupVersion {
                version,
                release,
                force,
            },
        ) => nodegroups::complete_version(c, idx, g, version, release, *force, now),
        (
            Target::Addon(a),
            Action::Addon {
                version,
                configuration_values,
                role,
                conflict,
            },
        ) => Some(addons::complete_update(
            c,
            a,
            version,
            configuration_values.as_ref(),
            role.as_ref(),
            *conflict,
            now,
        )),
        _ => Some(Ok(())),
    };
    if let Some(result) = ended {
        settle(c, idx, result);
    }
}

/// Marks update `idx` Successful, or Failed with `errors: [error]`.
pub(super) fn settle(c: &mut Cluster, idx: usize, result: Result<(), Value>) {
    let u = &mut c.eks.updates[idx];
    match result {
        Ok(()) => u.status = "Successful".into(),
        Err(e) => {
            u.status = "Failed".into();
            u.errors = vec![e];
        }
    }
}
