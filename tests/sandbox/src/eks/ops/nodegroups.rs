//! Node group operations (List/Describe/Create/Delete, UpdateNodegroupConfig,
//! UpdateNodegroupVersion) and what they do to the Kubernetes nodes when due: scale-ups add
//! nodes, scale-downs and version updates run a [`crate::eks::rollout`] that drains them
//! (started in `replace.rs`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::replace::{IMAGE_LABEL, start_replacement, start_scale_down};
use super::{EksError, R, Req, check_cluster, issues, new_update, page, signed, u32_of, with_next};
use crate::cluster::Cluster;
use crate::controllers::util::fnv;
use crate::eks::{
    Action, Behaviour, Nodegroup, Outcome, Target, catalog, epoch, group_nodes, release_for, uuid,
};
use crate::resources::well_known;
use crate::scenario::NodeGroupSpec;

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
        "subnets": if ng.subnets.is_empty() { json!(c.ec2.cluster_vpc_config().0) } else { json!(ng.subnets) },
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

fn nodegroup<'a>(c: &'a Cluster, r: &Req) -> Result<&'a Nodegroup, EksError> {
    check_cluster(c, r)?;
    let name = r.label(1);
    c.eks.nodegroups.get(name).ok_or_else(|| {
        EksError::not_found(format!("No node group found for name: {name}."))
            .with("clusterName", r.label(0))
            .with("nodegroupName", name)
    })
}

pub(in crate::eks) fn list_nodegroups(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let names = c.eks.nodegroups.keys().map(|n| json!(n)).collect();
    let (items, next) = page(names, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"nodegroups": items}), next))
}

pub(in crate::eks) fn describe_nodegroup(c: &mut Cluster, r: &Req) -> R {
    let ng = nodegroup(c, r)?;
    Ok(json!({"nodegroup": nodegroup_json(c, ng)}))
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

pub(in crate::eks) fn create_nodegroup(c: &mut Cluster, r: &Req) -> R {
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
    let mut ng = crate::eks::new_nodegroup(spec, format!("1.{minor}"), now);
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

fn busy(ng: &Nodegroup) -> bool {
    !matches!(ng.status.as_str(), "ACTIVE" | "DEGRADED")
}

pub(in crate::eks) fn delete_nodegroup(c: &mut Cluster, r: &Req) -> R {
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

pub(in crate::eks) fn update_nodegroup_config(c: &mut Cluster, r: &Req) -> R {
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

pub(in crate::eks) fn update_nodegroup_version(c: &mut Cluster, r: &Req) -> R {
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

/// Completes an UpdateNodegroupConfig of group `g` at `now`: scaling and labels; a scale-down
/// starts draining the nodes it removes (`None`: the update runs on).
pub(super) fn complete_config(
    c: &mut Cluster,
    idx: usize,
    g: &str,
    scaling: Option<(u32, u32, u32)>,
    add_labels: &BTreeMap<String, String>,
    remove_labels: &[String],
    now: Timestamp,
) -> Option<Result<(), Value>> {
    if let Some(ng) = c.eks.nodegroups.get_mut(g) {
        if let Some((min, max, desired)) = scaling {
            ng.min_size = min;
            ng.max_size = max;
            ng.desired_size = desired;
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
        return None;
    }
    let result = scale_to_desired(c, g).map_err(|e| {
        json!({"errorCode": "NodeCreationFailure", "errorMessage": e.to_string(), "resourceIds": [g]})
    });
    finish_status(c, g, now);
    Some(result)
}

/// Completes the wait before an UpdateNodegroupVersion of group `g`: a scripted failure, or the
/// start of the node replacement (`None`: the update runs on).
pub(super) fn complete_version(
    c: &mut Cluster,
    idx: usize,
    g: &str,
    version: &str,
    release: &str,
    force: bool,
    now: Timestamp,
) -> Option<Result<(), Value>> {
    let behaviour = c
        .eks
        .nodegroups
        .get_mut(g)
        .and_then(|ng| ng.on_update.as_mut().and_then(Behaviour::take));
    let result = match behaviour {
        Some(b) if b.outcome == Outcome::Fail && !(force && b.code == "PodEvictionFailure") => Err(
            json!({"errorCode": b.code, "errorMessage": b.message, "resourceIds": group_nodes(c, g)}),
        ),
        _ => match start_replacement(c, idx, g, version, release, force, now) {
            Ok(()) => return None,
            Err(e) => Err(
                json!({"errorCode": "NodeCreationFailure", "errorMessage": e.to_string(), "resourceIds": [g]}),
            ),
        },
    };
    finish_status(c, g, now);
    Some(result)
}

pub(super) fn finish_status(c: &mut Cluster, g: &str, now: Timestamp) {
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
        if let Some(image) = &ng.image {
            spec.labels.insert(IMAGE_LABEL.into(), image.clone());
        }
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

/// Finishes a CREATING (nodes appear) or DELETING (nodes and group go) node group.
pub(in crate::eks) fn finish_nodegroup(c: &mut Cluster, g: &str, now: Timestamp) {
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
