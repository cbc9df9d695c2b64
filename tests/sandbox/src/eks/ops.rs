//! The EKS operations over the locked cluster, and what due updates do.

use std::collections::BTreeMap;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::rollout;
use super::{
    Action, Addon, Behaviour, Nodegroup, Outcome, Target, Update, catalog, epoch, group_nodes,
    release_for, update_json, uuid,
};
use crate::cluster::Cluster;
use crate::controllers::util::fnv;
use crate::resources::well_known;
use crate::scenario::NodeGroupSpec;

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
    fn with(mut self, key: &str, value: &str) -> Self {
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
    fn invalid_state(m: impl Into<String>) -> Self {
        Self::new(400, "InvalidStateException", m)
    }
}

type R = Result<Value, EksError>;

/// A parsed request: path labels, query pairs, JSON body, and the SigV4 scope's region.
pub(super) struct Req {
    pub labels: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Value,
    pub region: String,
}

impl Req {
    fn label(&self, i: usize) -> &str {
        self.labels.get(i).map_or("", String::as_str)
    }
    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn b(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

/// Pages `items` by `maxResults` / `nextToken` (an offset).
fn page(
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

fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    v
}

/// Fails unless `name` is this cluster and the request is scoped to its region.
fn check_cluster(c: &Cluster, r: &Req) -> Result<(), EksError> {
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

fn issues(v: &[Value]) -> Value {
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
            "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"],
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{:017x}", fnv(e.name.as_bytes()) >> 4),
            "vpcId": format!("vpc-{:017x}", fnv(e.region.as_bytes()) >> 4),
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

fn eks_effect(k8s: &str) -> &str {
    match k8s {
        "NoExecute" => "NO_EXECUTE",
        "PreferNoSchedule" => "PREFER_NO_SCHEDULE",
        _ => "NO_SCHEDULE",
    }
}

fn k8s_effect(eks: &str) -> &str {
    match eks {
        "NO_EXECUTE" => "NoExecute",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        _ => "NoSchedule",
    }
}

fn nodegroup_json(c: &Cluster, ng: &Nodegroup) -> Value {
    let e = &c.eks;
    let name = &ng.spec.name;
    let id = uuid(fnv(format!("{}/{name}", e.name).as_bytes()));
    json!({
        "nodegroupName": name,
        "nodegroupArn": format!("arn:aws:eks:{}:{}:nodegroup/{}/{name}/{id}", e.region, e.account, e.name),
        "clusterName": e.name,
        "version": ng.version,
        "releaseVersion": ng.release_version,
        "createdAt": epoch(ng.created_at),
        "modifiedAt": epoch(ng.modified_at),
        "status": ng.status,
        "capacityType": ng.spec.capacity_type.clone().unwrap_or_else(|| "ON_DEMAND".into()),
        "scalingConfig": {"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
        "instanceTypes": [ng.spec.instance_type.clone().unwrap_or_else(|| "m5.xlarge".into())],
        "subnets": if ng.subnets.is_empty() { json!(["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]) } else { json!(ng.subnets) },
        "amiType": ng.ami_type,
        "nodeRole": if ng.node_role.is_empty() { format!("arn:aws:iam::{}:role/eks-node-role", e.account) } else { ng.node_role.clone() },
        "labels": ng.spec.labels,
        "taints": ng.spec.taints.iter().map(|t| json!({
            "key": t.get("key").cloned().unwrap_or(json!("")),
            "value": t.get("value").cloned().unwrap_or(json!("")),
            "effect": eks_effect(t.get("effect").and_then(Value::as_str).unwrap_or("")),
        })).collect::<Vec<_>>(),
        "resources": {"autoScalingGroups": [{"name": format!("eks-{name}-{id}")}]},
        "diskSize": 20,
        "health": {"issues": issues(&ng.health_issues)},
        "updateConfig": {"maxUnavailable": ng.max_unavailable},
        "tags": {},
    })
}

fn addon_json(c: &Cluster, a: &Addon) -> Value {
    let e = &c.eks;
    let id = uuid(fnv(format!("{}/{}", e.name, a.name).as_bytes()));
    let mut v = json!({
        "addonName": a.name,
        "clusterName": e.name,
        "status": a.status,
        "addonVersion": a.version,
        "health": {"issues": issues(&a.health_issues)},
        "addonArn": format!("arn:aws:eks:{}:{}:addon/{}/{}/{id}", e.region, e.account, e.name, a.name),
        "createdAt": epoch(a.created_at),
        "modifiedAt": epoch(a.modified_at),
        "tags": {},
        "podIdentityAssociations": [],
    });
    if let Some(r) = &a.service_account_role_arn {
        v["serviceAccountRoleArn"] = json!(r);
    }
    if let Some(cv) = &a.configuration_values {
        v["configurationValues"] = json!(cv);
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

fn nodegroup<'a>(c: &'a Cluster, r: &Req) -> Result<&'a Nodegroup, EksError> {
    check_cluster(c, r)?;
    let name = r.label(1);
    c.eks.nodegroups.get(name).ok_or_else(|| {
        EksError::not_found(format!("No node group found for name: {name}."))
            .with("clusterName", r.label(0))
            .with("nodegroupName", name)
    })
}

fn addon<'a>(c: &'a Cluster, r: &Req) -> Result<&'a Addon, EksError> {
    check_cluster(c, r)?;
    let name = r.label(1);
    c.eks.addons.get(name).ok_or_else(|| {
        EksError::not_found(format!("No addon: {name} found in cluster: {}", r.label(0)))
            .with("clusterName", r.label(0))
            .with("addonName", name)
    })
}

pub(super) fn list_nodegroups(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let names = c.eks.nodegroups.keys().map(|n| json!(n)).collect();
    let (items, next) = page(names, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"nodegroups": items}), next))
}

pub(super) fn describe_nodegroup(c: &mut Cluster, r: &Req) -> R {
    let ng = nodegroup(c, r)?;
    Ok(json!({"nodegroup": nodegroup_json(c, ng)}))
}

fn u32_of(v: &Value, key: &str) -> Result<Option<u32>, EksError> {
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

fn check_scaling(min: u32, max: u32, desired: u32) -> Result<(), EksError> {
    if max < 1 {
        return Err(EksError::invalid_param(
            "Maximum capacity must be greater than or equal to 1",
        ));
    }
    if min > max {
        return Err(EksError::invalid_param(format!(
            "Minimum capacity {min} can't be greater than maximum capacity {max}"
        )));
    }
    if desired < min || desired > max {
        return Err(EksError::invalid_param(format!(
            "Desired capacity {desired} must be between minimum capacity {min} and maximum capacity {max}"
        )));
    }
    Ok(())
}

pub(super) fn create_nodegroup(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let name = r
        .b("nodegroupName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| EksError::invalid_param("nodegroupName is required"))?
        .to_owned();
    let subnets: Vec<String> = r.body["subnets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if subnets.is_empty() {
        return Err(EksError::invalid_param("subnets is required"));
    }
    let node_role = r
        .b("nodeRole")
        .ok_or_else(|| EksError::invalid_param("nodeRole is required"))?
        .to_owned();
    if c.eks.nodegroups.contains_key(&name) {
        return Err(EksError::in_use(format!(
            "NodeGroup already exists with name {name} and cluster name {}",
            c.eks.name
        ))
        .with("clusterName", &c.eks.name.clone())
        .with("nodegroupName", &name));
    }
    let version = r
        .b("version")
        .map_or_else(|| c.eks.version.clone(), str::to_owned);
    let Some(minor) =
        catalog::minor_of(&version).filter(|m| *m <= c.eks.minor() && *m + 3 >= c.eks.minor())
    else {
        return Err(EksError::invalid_param(format!(
            "Requested Nodegroup version {version} is invalid. Allowed values are 1.{} to {}",
            c.eks.minor().saturating_sub(3),
            c.eks.version
        )));
    };
    let sc = &r.body["scalingConfig"];
    let min = u32_of(sc, "minSize")?.unwrap_or(1);
    let max = u32_of(sc, "maxSize")?.unwrap_or(2);
    let desired = u32_of(sc, "desiredSize")?.unwrap_or(2);
    check_scaling(min, max, desired)?;
    let labels: BTreeMap<String, String> = r.body["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let taints: Vec<Value> = r.body["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| json!({"key": t["key"], "value": t.get("value").cloned().unwrap_or(json!("")), "effect": k8s_effect(t["effect"].as_str().unwrap_or(""))}))
                .collect()
        })
        .unwrap_or_default();
    let spec = NodeGroupSpec {
        name: name.clone(),
        count: 0,
        instance_type: Some(
            r.body["instanceTypes"][0]
                .as_str()
                .unwrap_or("t3.medium")
                .to_owned(),
        ),
        labels,
        taints,
        capacity_type: r.b("capacityType").map(str::to_owned),
        ..NodeGroupSpec::default()
    };
    let now = c.clock.now();
    let mut ng = super::new_nodegroup(spec, format!("1.{minor}"), now);
    ng.min_size = min;
    ng.max_size = max;
    ng.desired_size = desired;
    ng.next_index = 0;
    ng.status = "CREATING".into();
    ng.due = Some(now + signed(c.eks.timings.nodegroup_create));
    ng.subnets = subnets;
    ng.node_role = node_role;
    if let Some(rv) = r.b("releaseVersion") {
        rv.clone_into(&mut ng.release_version);
    }
    if let Some(t) = r.b("amiType") {
        t.clone_into(&mut ng.ami_type);
    }
    let out = nodegroup_json(c, &ng);
    c.eks.nodegroups.insert(name, ng);
    Ok(json!({"nodegroup": out}))
}

fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn busy(ng: &Nodegroup) -> bool {
    !matches!(ng.status.as_str(), "ACTIVE" | "DEGRADED")
}

pub(super) fn delete_nodegroup(c: &mut Cluster, r: &Req) -> R {
    let ng = nodegroup(c, r)?;
    let name = ng.spec.name.clone();
    if busy(ng) || c.eks.running(&Target::Nodegroup(name.clone())).is_some() {
        return Err(EksError::in_use(format!(
            "Nodegroup {name} cannot be deleted because it is in {} state",
            ng.status
        ))
        .with("nodegroupName", &name));
    }
    let now = c.clock.now();
    let due = now + signed(c.eks.timings.nodegroup_delete);
    let ng = c.eks.nodegroups.get_mut(&name).expect("checked above");
    ng.status = "DELETING".into();
    ng.modified_at = now;
    ng.due = Some(due);
    let ng = ng.clone();
    Ok(json!({"nodegroup": nodegroup_json(c, &ng)}))
}

fn new_update(
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

pub(super) fn update_nodegroup_config(c: &mut Cluster, r: &Req) -> R {
    let ng = nodegroup(c, r)?;
    let name = ng.spec.name.clone();
    if busy(ng) || c.eks.running(&Target::Nodegroup(name.clone())).is_some() {
        return Err(EksError::in_use(format!(
            "Nodegroup cannot be updated as it is currently not in Active State (status {})",
            ng.status
        ))
        .with("nodegroupName", &name));
    }
    let mut params = Vec::new();
    let sc = &r.body["scalingConfig"];
    let scaling = if sc.is_object() {
        let min = u32_of(sc, "minSize")?.unwrap_or(ng.min_size);
        let max = u32_of(sc, "maxSize")?.unwrap_or(ng.max_size);
        let desired = u32_of(sc, "desiredSize")?.unwrap_or(ng.desired_size);
        check_scaling(min, max, desired)?;
        for (k, v, old) in [
            ("MinSize", min, ng.min_size),
            ("MaxSize", max, ng.max_size),
            ("DesiredSize", desired, ng.desired_size),
        ] {
            if sc
                .get(format!("{}{}", k[..1].to_lowercase(), &k[1..]))
                .is_some()
                || v != old
            {
                params.push((k.to_owned(), v.to_string()));
            }
        }
        Some((min, max, desired))
    } else {
        None
    };
    let add_labels: BTreeMap<String, String> = r.body["labels"]["addOrUpdateLabels"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let remove_labels: Vec<String> = r.body["labels"]["removeLabels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !add_labels.is_empty() {
        params.push((
            "LabelsToAdd".into(),
            serde_json::to_string(&add_labels).unwrap_or_default(),
        ));
    }
    if !remove_labels.is_empty() {
        params.push((
            "LabelsToRemove".into(),
            serde_json::to_string(&remove_labels).unwrap_or_default(),
        ));
    }
    if let Some(mu) = u32_of(&r.body["updateConfig"], "maxUnavailable")? {
        params.push(("MaxUnavailable".into(), mu.to_string()));
        c.eks
            .nodegroups
            .get_mut(&name)
            .expect("checked")
            .max_unavailable = mu;
    }
    if params.is_empty() {
        return Err(EksError::invalid_param("No changes needed"));
    }
    let now = c.clock.now();
    let took = c.eks.timings.nodegroup_config;
    {
        let ng = c.eks.nodegroups.get_mut(&name).expect("checked");
        ng.status = "UPDATING".into();
        ng.modified_at = now;
    }
    Ok(new_update(
        c,
        Target::Nodegroup(name),
        "ConfigUpdate",
        params,
        took,
        Action::NodegroupConfig {
            scaling,
            add_labels,
            remove_labels,
        },
    ))
}

pub(super) fn update_nodegroup_version(c: &mut Cluster, r: &Req) -> R {
    let ng = nodegroup(c, r)?;
    let name = ng.spec.name.clone();
    if busy(ng) || c.eks.running(&Target::Nodegroup(name.clone())).is_some() {
        return Err(EksError::in_use(format!(
            "Nodegroup cannot be updated as it is currently not in Active State (status {})",
            ng.status
        ))
        .with("nodegroupName", &name));
    }
    let version = r
        .b("version")
        .map_or_else(|| c.eks.version.clone(), str::to_owned);
    let ok = catalog::minor_of(&version)
        .zip(catalog::minor_of(&ng.version))
        .is_some_and(|(m, cur)| m <= c.eks.minor() && m >= cur);
    if !ok {
        return Err(EksError::invalid_param(format!(
            "Requested Nodegroup version {version} is invalid. Allowed values are {} to {}",
            ng.version, c.eks.version
        ))
        .with("nodegroupName", &name));
    }
    let release = r.b("releaseVersion").map_or_else(
        || {
            if version == ng.version {
                format!("{version}.0-20251101")
            } else {
                release_for(&version)
            }
        },
        str::to_owned,
    );
    if version == ng.version && release == ng.release_version {
        return Err(EksError::invalid_param(format!(
            "Nodegroup {name} is already at version {version} and release {release}"
        ))
        .with("nodegroupName", &name));
    }
    let force = r.body["force"].as_bool().unwrap_or(false);
    let params = vec![
        ("Version".to_owned(), version.clone()),
        ("ReleaseVersion".to_owned(), release.clone()),
    ];
    let now = c.clock.now();
    let took = c.eks.timings.nodegroup_update;
    {
        let ng = c.eks.nodegroups.get_mut(&name).expect("checked");
        ng.status = "UPDATING".into();
        ng.modified_at = now;
    }
    Ok(new_update(
        c,
        Target::Nodegroup(name),
        "VersionUpdate",
        params,
        took,
        Action::NodegroupVersion {
            version,
            release,
            force,
        },
    ))
}

pub(super) fn list_addons(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let names = c.eks.addons.keys().map(|n| json!(n)).collect();
    let (items, next) = page(names, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"addons": items}), next))
}

pub(super) fn describe_addon(c: &mut Cluster, r: &Req) -> R {
    let a = addon(c, r)?;
    Ok(json!({"addon": addon_json(c, a)}))
}

pub(super) fn describe_addon_versions(c: &mut Cluster, r: &Req) -> R {
    let _ = c;
    let minor = match r.q("kubernetesVersion") {
        Some(v) => match catalog::minor_of(v) {
            Some(m) => Some(m),
            None => {
                return Err(EksError::invalid_param(format!(
                    "Invalid kubernetesVersion {v}"
                )));
            }
        },
        None => None,
    };
    let wanted: Vec<&str> = r
        .query
        .iter()
        .filter(|(k, _)| k == "types")
        .map(|(_, v)| v.as_str())
        .collect();
    let items: Vec<Value> = catalog::ADDONS
        .iter()
        .filter(|a| r.q("addonName").is_none_or(|n| n == **a))
        .map(|a| catalog::addon_info(a, minor))
        .filter(|i| i["addonVersions"].as_array().is_some_and(|v| !v.is_empty()))
        .filter(|i| wanted.is_empty() || wanted.iter().any(|t| i["type"] == json!(t)))
        .collect();
    let (items, next) = page(items, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"addons": items}), next))
}

pub(super) fn describe_addon_configuration(c: &mut Cluster, r: &Req) -> R {
    let _ = c;
    let (Some(name), Some(version)) = (r.q("addonName"), r.q("addonVersion")) else {
        return Err(EksError::invalid_param(
            "addonName and addonVersion are required",
        ));
    };
    if !catalog::exists(name, version) {
        return Err(EksError::invalid_param(format!(
            "Addon version specified is not supported: {name} {version}"
        ))
        .with("addonName", name));
    }
    let schema = serde_json::to_string(&catalog::configuration_schema(name)).unwrap_or_default();
    Ok(json!({
        "addonName": name,
        "addonVersion": version,
        "configurationSchema": schema,
        "podIdentityConfiguration": [],
    }))
}

pub(super) fn update_addon(c: &mut Cluster, r: &Req) -> R {
    let a = addon(c, r)?;
    let name = a.name.clone();
    if a.status == "UPDATING" || c.eks.running(&Target::Addon(name.clone())).is_some() {
        return Err(EksError::in_use(format!(
            "Addon {name} cannot be updated as it is currently in UPDATING state"
        ))
        .with("clusterName", &c.eks.name.clone())
        .with("addonName", &name));
    }
    let version = r
        .b("addonVersion")
        .map_or_else(|| a.version.clone(), str::to_owned);
    if catalog::known(&name)
        && !catalog::versions_for(&name, c.eks.minor()).contains(&version.as_str())
    {
        return Err(EksError::invalid_param(format!(
            "Addon version specified is not supported: {version} is not compatible with Kubernetes {}",
            c.eks.version
        ))
        .with("addonName", &name));
    }
    let resolve = r.b("resolveConflicts").map(str::to_owned);
    if let Some(rc) = &resolve
        && !matches!(rc.as_str(), "OVERWRITE" | "NONE" | "PRESERVE")
    {
        return Err(EksError::invalid_param(format!(
            "resolveConflicts {rc} is invalid; expected OVERWRITE, NONE or PRESERVE"
        )));
    }
    let config = r.b("configurationValues").map(str::to_owned);
    let mut parsed_config = None;
    if let Some(cv) = &config {
        parsed_config = Some(catalog::validate_configuration(&name, cv).map_err(|e| {
            EksError::invalid_param(format!(
                "ConfigurationValue provided in request is not supported: {e}"
            ))
            .with("addonName", &name)
        })?);
    }
    let role = r.b("serviceAccountRoleArn").map(str::to_owned);
    let conflict = a.conflict && resolve.as_deref().is_none_or(|rc| rc == "NONE");
    let mut params = vec![("AddonVersion".to_owned(), version.clone())];
    if let Some(rc) = &resolve {
        params.push(("ResolveConflicts".into(), rc.clone()));
    }
    if let Some(cv) = &config {
        params.push(("ConfigurationValues".into(), cv.clone()));
    }
    if let Some(role) = &role {
        params.push(("ServiceAccountRoleArn".into(), role.clone()));
    }
    if !conflict {
        apply_workloads(c, &name, &version, parsed_config.as_ref());
    }
    if resolve.as_deref() == Some("OVERWRITE") {
        c.eks.addons.get_mut(&name).expect("checked").conflict = false;
    }
    let now = c.clock.now();
    {
        let a = c.eks.addons.get_mut(&name).expect("checked");
        a.status = "UPDATING".into();
        a.modified_at = now;
        a.degraded_until = None;
        a.awaiting_rollout = false;
    }
    let took = c.eks.timings.addon_update;
    Ok(new_update(
        c,
        Target::Addon(name),
        "AddonUpdate",
        params,
        took,
        Action::Addon {
            version,
            configuration_values: config,
            role,
            conflict,
        },
    ))
}

/// Sets the image of `addon`'s workloads for `version` (and coredns's `replicaCount`), so the
/// controllers roll them out.
fn apply_workloads(c: &mut Cluster, addon: &str, version: &str, config: Option<&Value>) {
    let region = c.eks.region.clone();
    for w in catalog::workloads(addon) {
        let res = if w.kind == "DaemonSet" {
            well_known::daemonsets()
        } else {
            well_known::deployments()
        };
        let Some(obj) = c.store.get(res, w.namespace, w.name) else {
            continue;
        };
        let mut obj = (*obj).clone();
        let image = catalog::image(w, &region, version);
        if let Some(containers) = obj
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            let idx = containers
                .iter()
                .position(|ct| ct["name"] == json!(w.container))
                .unwrap_or(0);
            if let Some(ct) = containers.get_mut(idx) {
                ct["image"] = json!(image);
            }
        }
        if let Some(n) = config
            .and_then(|v| v.get("replicaCount"))
            .and_then(Value::as_u64)
            && w.kind == "Deployment"
            && addon == "coredns"
        {
            obj["spec"]["replicas"] = json!(n);
        }
        if let Err(e) = c.store.update(res, obj) {
            tracing::warn!(workload = w.name, error = %e, "add-on update could not change its workload");
        }
    }
    c.world.wake();
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

/// Completes update `i` at `now`.
// One arm per kind of update, each short; splitting them would only move the match.
#[allow(clippy::too_many_lines)]
pub(super) fn complete(c: &mut Cluster, idx: usize, now: Timestamp) {
    let u = c.eks.updates[idx].clone();
    let mut status = "Successful";
    let mut errors = Vec::new();
    match (&u.target, &u.action) {
        (Target::Cluster, Action::ClusterVersion(v)) => {
            c.eks.version.clone_from(v);
            c.eks.platform_version = "eks.1".into();
            c.eks.status = "ACTIVE".into();
            if let Some(m) = catalog::minor_of(v) {
                c.api.version_minor = m;
                c.api.version_patch = 1;
            }
        }
        (
            Target::Nodegroup(g),
            Action::NodegroupConfig {
                scaling,
                add_labels,
                remove_labels,
            },
        ) => {
            if let Some(ng) = c.eks.nodegroups.get_mut(g) {
                if let Some((min, max, desired)) = scaling {
                    ng.min_size = *min;
                    ng.max_size = *max;
                    ng.desired_size = *desired;
                }
                for (k, v) in add_labels {
                    ng.spec.labels.insert(k.clone(), v.clone());
                }
                for k in remove_labels {
                    ng.spec.labels.remove(k);
                }
            }
            relabel_nodes(c, g, add_labels, remove_labels);
            if start_scale_down(c, idx, g, now) {
                return;
            }
            if let Err(e) = scale_to_desired(c, g) {
                status = "Failed";
                errors.push(json!({"errorCode": "NodeCreationFailure", "errorMessage": e.to_string(), "resourceIds": [g]}));
            }
            finish_status(c, g, now);
        }
        (
            Target::Nodegroup(g),
            Action::NodegroupVersion {
                version,
                release,
                force,
            },
        ) => {
            let behaviour = c
                .eks
                .nodegroups
                .get_mut(g)
                .and_then(|ng| ng.on_update.as_mut().and_then(Behaviour::take));
            match behaviour {
                Some(b)
                    if b.outcome == Outcome::Fail
                        && !(*force && b.code == "PodEvictionFailure") =>
                {
                    status = "Failed";
                    errors.push(json!({"errorCode": b.code, "errorMessage": b.message, "resourceIds": group_nodes(c, g)}));
                }
                _ => match start_replacement(c, idx, g, version, release, *force, now) {
                    Ok(()) => return,
                    Err(e) => {
                        status = "Failed";
                        errors.push(json!({"errorCode": "NodeCreationFailure", "errorMessage": e.to_string(), "resourceIds": [g]}));
                    }
                },
            }
            finish_status(c, g, now);
        }
        (
            Target::Addon(a),
            Action::Addon {
                version,
                configuration_values,
                role,
                conflict,
            },
        ) => {
            let behaviour = if *conflict {
                Some(Behaviour {
                    outcome: Outcome::Fail,
                    code: "ConfigurationConflict".into(),
                    message: "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode. Conflicts: DaemonSet.apps aws-node - .spec.template.spec.containers[name=\"aws-node\"].image".into(),
                    ..Behaviour::default()
                })
            } else {
                c.eks
                    .addons
                    .get_mut(a)
                    .and_then(|x| x.on_update.as_mut().and_then(Behaviour::take))
            };
            let unfinished = if c.eks.track_rollouts {
                super::unfinished_workloads(&c.store, a)
            } else {
                Vec::new()
            };
            let resources: Vec<String> = catalog::workloads(a)
                .iter()
                .map(|w| w.name.to_owned())
                .collect();
            if let Some(addon) = c.eks.addons.get_mut(a) {
                addon.modified_at = now;
                let b = behaviour.unwrap_or_default();
                let issue = json!({"code": b.code, "message": b.message, "resourceIds": resources});
                if b.outcome == Outcome::Fail {
                    status = "Failed";
                    errors.push(json!({"errorCode": b.code, "errorMessage": b.message, "resourceIds": resources}));
                    addon.status = "UPDATE_FAILED".into();
                    addon.health_issues = vec![issue];
                } else {
                    addon.version.clone_from(version);
                    if let Some(cv) = configuration_values {
                        addon.configuration_values = (!cv.is_empty()).then(|| cv.clone());
                    }
                    if let Some(r) = role {
                        addon.service_account_role_arn = Some(r.clone());
                    }
                    match b.outcome {
                        Outcome::Succeed | Outcome::Fail if !unfinished.is_empty() => {
                            // EKS applied the manifests; health waits for the replicas.
                            addon.status = "DEGRADED".into();
                            addon.awaiting_rollout = true;
                            addon.health_issues = vec![json!({
                                "code": "InsufficientNumberOfReplicas",
                                "message": "The add-on is unhealthy because it doesn't have the desired number of replicas.",
                                "resourceIds": unfinished,
                            })];
                        }
                        Outcome::Succeed | Outcome::Fail => {
                            addon.status = "ACTIVE".into();
                            addon.health_issues.clear();
                        }
                        Outcome::Degrade => {
                            addon.status = "DEGRADED".into();
                            addon.health_issues = vec![issue];
                        }
                        Outcome::Flap => {
                            addon.status = "DEGRADED".into();
                            addon.health_issues = vec![issue];
                            addon.degraded_until = Some(now + signed(b.degraded_for));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    let u = &mut c.eks.updates[idx];
    u.status = status.into();
    u.errors = errors;
}

fn finish_status(c: &mut Cluster, g: &str, now: Timestamp) {
    if let Some(ng) = c.eks.nodegroups.get_mut(g) {
        ng.status = if ng.health_issues.is_empty() {
            "ACTIVE"
        } else {
            "DEGRADED"
        }
        .into();
        ng.modified_at = now;
    }
}

/// Adds nodes to group `g` until it has `desiredSize` (removing them is a drain: see
/// [`start_scale_down`]).
fn scale_to_desired(c: &mut Cluster, g: &str) -> anyhow::Result<()> {
    let Some(ng) = c.eks.nodegroups.get(g).cloned() else {
        return Ok(());
    };
    let have = group_nodes(c, g);
    let want = ng.desired_size as usize;
    if have.len() < want {
        let add = (want - have.len()) as u32;
        let mut spec = ng.spec.clone();
        spec.age = None;
        let cs = c.eks.cluster_spec(&ng.version);
        let from = ng.next_index;
        crate::scenario::add_group_nodes(c, &cs, &spec, from..from + add)?;
        if let Some(ng) = c.eks.nodegroups.get_mut(g) {
            ng.next_index = from + add;
        }
    }
    Ok(())
}

fn mutate_nodes(c: &mut Cluster, g: &str, f: &dyn Fn(&mut Value)) {
    for name in group_nodes(c, g) {
        let Some(node) = c.store.get(well_known::nodes(), "", &name) else {
            continue;
        };
        let mut node = (*node).clone();
        f(&mut node);
        if let Err(e) = c.store.update(well_known::nodes(), node) {
            tracing::warn!(node = %name, error = %e, "node group update could not change a node");
        }
    }
    c.world.wake();
}

fn relabel_nodes(c: &mut Cluster, g: &str, add: &BTreeMap<String, String>, remove: &[String]) {
    if add.is_empty() && remove.is_empty() {
        return;
    }
    mutate_nodes(c, g, &|n| {
        for (k, v) in add {
            n["metadata"]["labels"][k] = json!(v);
        }
        if let Some(l) = n["metadata"]["labels"].as_object_mut() {
            for k in remove {
                l.remove(k);
            }
        }
    });
}

/// The `eks.amazonaws.com/nodegroup-image` of group `g`'s nodes at AMI release `release`.
fn ami_of(g: &str, release: &str) -> String {
    format!("ami-{:016x}0", fnv(format!("{g}/{release}").as_bytes()))
}

const IMAGE_LABEL: &str = "eks.amazonaws.com/nodegroup-image";

fn node_image(c: &Cluster, node: &str) -> Option<String> {
    c.store
        .get(well_known::nodes(), "", node)?
        .pointer("/metadata/labels/eks.amazonaws.com~1nodegroup-image")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Launches `count` new nodes of group `g` at `version` / `release`.
fn launch_new(
    c: &mut Cluster,
    g: &str,
    version: &str,
    release: &str,
    count: u32,
) -> anyhow::Result<Vec<String>> {
    let Some(ng) = c.eks.nodegroups.get(g).cloned() else {
        return Ok(Vec::new());
    };
    let mut spec = ng.spec.clone();
    spec.age = None;
    spec.version = None;
    spec.labels.insert(IMAGE_LABEL.into(), ami_of(g, release));
    let cs = c.eks.cluster_spec(version);
    let from = ng.next_index;
    let names = crate::scenario::add_group_nodes(c, &cs, &spec, from..from + count)?;
    if let Some(ng) = c.eks.nodegroups.get_mut(g) {
        ng.next_index = from + count;
    }
    rollout::launched(c, g, &names);
    Ok(names)
}

/// Starts draining the nodes a scale-down removes (highest index first), if it removes any.
fn start_scale_down(c: &mut Cluster, idx: usize, g: &str, now: Timestamp) -> bool {
    let Some(want) = c.eks.nodegroups.get(g).map(|ng| ng.desired_size as usize) else {
        return false;
    };
    let have = group_nodes(c, g);
    if have.len() <= want {
        return false;
    }
    let remove = have[..have.len() - want].to_vec();
    // The ASG terminates the instances together, so they are cordoned together first.
    for n in &remove {
        rollout::cordon(c, g, n);
    }
    c.eks.updates[idx].rollout = Some(rollout::Rollout {
        kind: rollout::Kind::ScaleDown,
        force: true,
        parallel: remove.len(),
        queue: remove,
        draining: Vec::new(),
        timeout: c.eks.timings.pod_eviction_timeout,
    });
    run_rollout(c, idx, now);
    true
}

/// Starts a version update's replacement: launches the surge of new nodes, cordons the old ones.
fn start_replacement(
    c: &mut Cluster,
    idx: usize,
    g: &str,
    version: &str,
    release: &str,
    force: bool,
    now: Timestamp,
) -> anyhow::Result<()> {
    // Nodes already at the target (from an earlier, failed attempt) stay.
    let image = ami_of(g, release);
    let (current, old): (Vec<String>, Vec<String>) = group_nodes(c, g)
        .into_iter()
        .partition(|n| node_image(c, n).as_deref() == Some(image.as_str()));
    let max_unavailable = c
        .eks
        .nodegroups
        .get(g)
        .map_or(1, |ng| ng.max_unavailable.max(1));
    let zones: std::collections::BTreeSet<String> = old
        .iter()
        .filter_map(|n| c.store.get(well_known::nodes(), "", n))
        .filter_map(|n| {
            n.pointer("/metadata/labels/topology.kubernetes.io~1zone")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let surge = (max_unavailable as usize)
        .max(2 * zones.len())
        .min(old.len())
        .saturating_sub(current.len());
    launch_new(
        c,
        g,
        version,
        release,
        u32::try_from(surge).unwrap_or(u32::MAX),
    )?;
    for n in &old {
        rollout::cordon(c, g, n);
    }
    c.eks.updates[idx].rollout = Some(rollout::Rollout {
        kind: rollout::Kind::Replace {
            version: version.to_owned(),
            release: release.to_owned(),
        },
        force,
        queue: old,
        draining: Vec::new(),
        parallel: max_unavailable as usize,
        timeout: c.eks.timings.pod_eviction_timeout,
    });
    run_rollout(c, idx, now);
    Ok(())
}

/// Moves the rollout of update `idx` along; when it is over, settles the update and the group.
pub(super) fn run_rollout(c: &mut Cluster, idx: usize, now: Timestamp) {
    let Some(mut r) = c.eks.updates[idx].rollout.take() else {
        return;
    };
    let Target::Nodegroup(g) = c.eks.updates[idx].target.clone() else {
        return;
    };
    let kind = r.kind.clone();
    let mut replace = |c: &mut Cluster| -> bool {
        let rollout::Kind::Replace { version, release } = &kind else {
            return false;
        };
        let want = c
            .eks
            .nodegroups
            .get(&g)
            .map_or(0, |ng| ng.desired_size as usize);
        let image = ami_of(&g, release);
        let new = group_nodes(c, &g)
            .iter()
            .filter(|n| node_image(c, n).as_deref() == Some(image.as_str()))
            .count();
        if new >= want {
            return false;
        }
        match launch_new(c, &g, version, release, 1) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(nodegroup = %g, error = %e, "launching a replacement node");
                false
            }
        }
    };
    let progress = rollout::step(c, &g, &mut r, now, &mut replace);
    let result = match progress {
        rollout::Progress::Running => {
            c.eks.updates[idx].rollout = Some(r);
            return;
        }
        rollout::Progress::Done(result) => result,
    };
    let u = &mut c.eks.updates[idx];
    match result {
        Ok(()) => {
            u.status = "Successful".into();
            if let rollout::Kind::Replace { version, release } = &r.kind
                && let Some(ng) = c.eks.nodegroups.get_mut(&g)
            {
                ng.version.clone_from(version);
                ng.release_version.clone_from(release);
                ng.spec.version = None;
                ng.spec
                    .labels
                    .insert(IMAGE_LABEL.into(), ami_of(&g, release));
            }
        }
        Err(e) => {
            u.status = "Failed".into();
            u.errors = vec![e];
        }
    }
    finish_status(c, &g, now);
}

/// Finishes a CREATING (nodes appear) or DELETING (nodes and group go) node group.
pub(super) fn finish_nodegroup(c: &mut Cluster, g: &str, now: Timestamp) {
    let Some(ng) = c.eks.nodegroups.get_mut(g) else {
        return;
    };
    ng.due = None;
    match ng.status.as_str() {
        "CREATING" => {
            if let Err(e) = scale_to_desired(c, g) {
                tracing::warn!(nodegroup = g, error = %e, "creating node group nodes");
                if let Some(ng) = c.eks.nodegroups.get_mut(g) {
                    ng.status = "CREATE_FAILED".into();
                    ng.health_issues = vec![
                        json!({"code": "NodeCreationFailure", "message": e.to_string(), "resourceIds": [g]}),
                    ];
                }
                return;
            }
            finish_status(c, g, now);
        }
        "DELETING" => {
            for name in group_nodes(c, g) {
                c.store.remove(well_known::nodes(), "", &name);
            }
            c.world.wake();
            c.eks.nodegroups.remove(g);
        }
        _ => {}
    }
}
