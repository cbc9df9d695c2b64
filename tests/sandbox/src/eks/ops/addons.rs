//! Add-on operations (List/Describe, DescribeAddonVersions, DescribeAddonConfiguration,
//! UpdateAddon) and what an add-on update does: the workload images at once, the add-on's
//! version and health when due.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{EksError, R, Req, check_cluster, issues, new_update, page, signed, with_next};
use crate::cluster::Cluster;
use crate::controllers::util::fnv;
use crate::eks::{Action, Addon, Behaviour, Outcome, Target, catalog, epoch, uuid};
use crate::resources::well_known;

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

fn addon<'a>(c: &'a Cluster, r: &Req) -> Result<&'a Addon, EksError> {
    check_cluster(c, r)?;
    let name = r.label(1);
    c.eks.addons.get(name).ok_or_else(|| {
        EksError::not_found(format!("No addon: {name} found in cluster: {}", r.label(0)))
            .with("clusterName", r.label(0))
            .with("addonName", name)
    })
}

pub(in crate::eks) fn list_addons(c: &mut Cluster, r: &Req) -> R {
    check_cluster(c, r)?;
    let names = c.eks.addons.keys().map(|n| json!(n)).collect();
    let (items, next) = page(names, r.q("maxResults"), r.q("nextToken"))?;
    Ok(with_next(json!({"addons": items}), next))
}

pub(in crate::eks) fn describe_addon(c: &mut Cluster, r: &Req) -> R {
    let a = addon(c, r)?;
    Ok(json!({"addon": addon_json(c, a)}))
}

pub(in crate::eks) fn describe_addon_versions(c: &mut Cluster, r: &Req) -> R {
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

pub(in crate::eks) fn describe_addon_configuration(c: &mut Cluster, r: &Req) -> R {
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
    let schema =
        serde_json::to_string(&catalog::configuration_schema(name, version)).unwrap_or_default();
    Ok(json!({
        "addonName": name,
        "addonVersion": version,
        "configurationSchema": schema,
        "podIdentityConfiguration": [],
    }))
}

pub(in crate::eks) fn update_addon(c: &mut Cluster, r: &Req) -> R {
    let a = addon(c, r)?;
    let name = a.name.clone();
    let token = r.b("clientRequestToken").map(str::to_owned);
    // Idempotency as EKS keeps it: a repeated request with the same token (an SDK retry, a
    // re-run step) gets the update it started, whatever its state, and starts nothing.
    if let Some(u) = token.as_deref().and_then(|t| {
        c.eks.updates.iter().find(|u| {
            u.target == Target::Addon(name.clone()) && u.client_request_token.as_deref() == Some(t)
        })
    }) {
        return Ok(json!({"update": crate::eks::update_json(u)}));
    }
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
    if name == "vpc-cni" && minor_jump(&a.version, &version) > 1 {
        return Err(EksError::invalid_param(format!(
            "Updating VPC-CNI can only go up or down 1 minor version at a time: {} to {version}",
            a.version
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
        parsed_config = Some(
            catalog::validate_configuration(&name, &version, cv).map_err(|e| {
                EksError::invalid_param(format!(
                    "ConfigurationValue provided in request is not supported: {e}"
                ))
                .with("addonName", &name)
            })?,
        );
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
    let update = new_update(
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
    );
    if let Some(u) = c.eks.updates.last_mut() {
        u.client_request_token = token;
    }
    Ok(update)
}

/// How many minor versions apart two add-on versions are (`v1.18.6` → `v1.20.4`: 2).
fn minor_jump(from: &str, to: &str) -> u64 {
    let (a, b) = (catalog::version_key(from), catalog::version_key(to));
    match (a.get(..2), b.get(..2)) {
        (Some([ma, na]), Some([mb, nb])) if ma == mb => na.abs_diff(*nb),
        _ => 0,
    }
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

/// Completes an add-on update of `a` at `now`: the add-on's new version and health, or the
/// error of a failed update.
pub(super) fn complete_update(
    c: &mut Cluster,
    a: &str,
    version: &str,
    configuration_values: Option<&String>,
    role: Option<&String>,
    conflict: bool,
    now: Timestamp,
) -> Result<(), Value> {
    let mut failed = None;
    let behaviour = if conflict {
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
        crate::eks::unfinished_workloads(&c.store, a)
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
            failed = Some(
                json!({"errorCode": b.code, "errorMessage": b.message, "resourceIds": resources}),
            );
            addon.status = "UPDATE_FAILED".into();
            addon.health_issues = vec![issue];
        } else {
            version.clone_into(&mut addon.version);
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
    failed.map_or(Ok(()), Err)
}
