//! `POST .../pods/{name}/eviction`, rule by rule as in drain.md §4 (the apiserver's
//! `pkg/registry/core/pod/storage/eviction.go`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::crud::{self, DeleteOptions};
use super::{Ctx, ResourcePath};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::labels;
use crate::podutil;
use crate::resources::well_known;

/// Most unconfirmed evictions a PDB may track before the apiserver refuses more.
const MAX_DISRUPTED_PODS: usize = 2000;

const VIOLATE_MSG: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// Handles an eviction; `Ok` carries the 201 Status body.
// One function, in the reference's rule order, so it can be read against drain.md §4.
#[allow(clippy::too_many_lines)]
pub fn evict(c: &mut Cluster, p: &ResourcePath, ctx: &Ctx) -> Result<Value, ApiError> {
    let ns = p.namespace.as_deref().unwrap_or("");
    let name = p.name.as_deref().unwrap_or("");
    let body = ctx.json_body()?;
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("policy/v1" | "policy/v1beta1") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported Eviction apiVersion {other:?}: expected policy/v1 or policy/v1beta1"
            )));
        }
    }
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Eviction")
    {
        return Err(ApiError::bad_request(
            "the body of an eviction request must be an Eviction",
        ));
    }
    // Rule 1: the body names the pod of the URL.
    if body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let pods = well_known::pods();
    let Some(pod) = c.store.get(pods, ns, name) else {
        return Err(ApiError::not_found(pods, name));
    };
    if c.store
        .get(well_known::namespaces(), "", ns)
        .is_some_and(|n| {
            podutil::is_terminating(&n)
                || n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        })
    {
        return Err(crud::namespace_terminating(pods, ns, name));
    }
    let opts = DeleteOptions::from(body.get("deleteOptions").unwrap_or(&Value::Null), None);
    opts.check(pods, &pod)?;

    // Rule 2: pods that cannot count against a budget are deleted directly.
    let phase = podutil::phase(&pod);
    if matches!(phase, "Pending" | "Succeeded" | "Failed") || podutil::is_terminating(&pod) {
        let mut opts = opts;
        if phase == "Pending" && opts.resource_version.is_none() {
            opts.resource_version = pod
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        delete(c, &pod, &opts, ctx)?;
        return Ok(success());
    }

    // Rule 3: the PDBs selecting the pod.
    let pod_labels = labels::labels(&pod);
    let pdbs: Vec<Arc<Value>> = c
        .store
        .list(well_known::pdbs(), Some(ns))
        .filter(|pdb| labels::selector_matches(pdb.pointer("/spec/selector"), pod_labels))
        .cloned()
        .collect();
    if pdbs.len() > 1 {
        return Err(ApiError::internal(
            "",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let Some(pdb) = pdbs.into_iter().next() else {
        delete(c, &pod, &opts, ctx)?;
        return Ok(success());
    };
    let status = pdb.get("status").cloned().unwrap_or(json!({}));
    let int = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);

    // Rule 4: unhealthy pods may go when the budget is met anyway (or always, by policy).
    if !podutil::is_ready(&pod) {
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("IfHealthyBudget");
        let allowed = policy == "AlwaysAllow"
            || (int("currentHealthy") >= int("desiredHealthy") && int("desiredHealthy") > 0);
        if allowed {
            let mut opts = opts;
            if opts.resource_version.is_none() {
                opts.resource_version = pod
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            return match delete(c, &pod, &opts, ctx) {
                Ok(()) => Ok(success()),
                Err(e) if e.code == 409 => Err(ApiError::too_many_requests(
                    e.body["message"].as_str().unwrap_or("conflict").to_owned(),
                    None,
                    None,
                )),
                Err(e) => Err(e),
            };
        }
    }

    // Rule 5: checkAndDecrement.
    let pdb_name = podutil::ns_name(&pdb).1.to_owned();
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        < generation
    {
        return Err(ApiError::too_many_requests(
            VIOLATE_MSG,
            Some(10),
            Some(
                json!({"causes": [{"reason": "DisruptionBudget", "message": format!("The disruption budget {pdb_name} is still being processed by the server.")}]}),
            ),
        ));
    }
    let allowed = int("disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            "pdb disruptions allowed is negative",
            None,
        ));
    }
    let disrupted = status
        .get("disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            None,
        ));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(
            VIOLATE_MSG,
            None,
            Some(
                json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
                    "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    int("desiredHealthy"), int("currentHealthy")
                )}]}),
            ),
        ));
    }
    if !ctx.dry_run {
        let now = c.now();
        let mut new = (*pdb).clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][name] = json!(now);
        if allowed - 1 == 0 {
            set_condition(
                &mut new,
                json!({
                    "type": "DisruptionAllowed",
                    "status": "False",
                    "reason": "InsufficientPods",
                    "message": "",
                    "observedGeneration": status.get("observedGeneration").cloned().unwrap_or(json!(0)),
                    "lastTransitionTime": now,
                }),
            );
        }
        c.store.update(well_known::pdbs(), new)?;
    }
    delete(c, &pod, &opts, ctx)?;
    Ok(success())
}

/// Replaces or appends a status condition of the same type (keeping lastTransitionTime when
/// the status did not change).
fn set_condition(obj: &mut Value, cond: Value) {
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let list = obj["status"]["conditions"]
        .as_array_mut()
        .expect("made an array above");
    match list.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(existing) => {
            let keep_time = existing["status"] == cond["status"];
            let time = existing["lastTransitionTime"].clone();
            *existing = cond;
            if keep_time {
                existing["lastTransitionTime"] = time;
            }
        }
        None => list.push(cond),
    }
}

/// Rule 6: marks the pod with `DisruptionTarget`, then deletes it gracefully.
fn delete(
    c: &mut Cluster,
    pod: &Arc<Value>,
    opts: &DeleteOptions,
    ctx: &Ctx,
) -> Result<(), ApiError> {
    opts.check(well_known::pods(), pod)?;
    if ctx.dry_run {
        crud::delete_pod(c, pod, opts, true, &ctx.identity.user, "eviction")?;
        return Ok(());
    }
    let now = c.now();
    let mut marked = (**pod).clone();
    set_condition(
        &mut marked,
        json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
            "lastTransitionTime": now,
        }),
    );
    let marked = c.store.put(well_known::pods(), marked);
    // The preconditions were checked against the pod as read; the condition write bumped its
    // resourceVersion, so the delete itself must not re-check it.
    let opts = DeleteOptions {
        resource_version: None,
        ..opts.clone()
    };
    crud::delete_pod(c, &marked, &opts, false, &ctx.identity.user, "eviction")?;
    Ok(())
}
