//! HorizontalPodAutoscalers (autoscaling/v2): status as the HPA controller reports it. By
//! default the cluster has no metrics server, which is what the sandbox is: the controller reads
//! the target's scale (`AbleToScale`), cannot compute utilization (`ScalingActive=False`,
//! `FailedGetResourceMetric`), and so keeps the target's replicas, clamped to
//! `minReplicas..=maxReplicas` (`ScalingLimited`).
//!
//! An HPA annotated [`UTILIZATION`] (`"95"`: the first metric's current average utilization, in
//! percent of the request) has metrics: `ScalingActive=True` (`ValidMetricFound`),
//! `status.currentMetrics`, and `desiredReplicas` from the upstream formula
//! (`ceil(current × utilization / target)`, unchanged within the 10% tolerance), clamped, with
//! `ScalingLimited=True` `TooManyReplicas` when the formula asks for more than `maxReplicas`
//! (an HPA pinned at its maximum) or `TooFewReplicas` below `minReplicas`. The controller never
//! scales the target: the annotation states the load at the target's current size.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Ctx, util};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources;

/// Annotation giving an HPA's current utilization (percent) of its first metric.
pub const UTILIZATION: &str = "sandbox.opsteps.io/utilization";

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let Some(hpas_res) = resources::find("autoscaling", "horizontalpodautoscalers") else {
        return;
    };
    let hpas: Vec<Arc<Value>> = cluster
        .store
        .list(hpas_res, None)
        .filter(|h| ctx.in_scope(podutil::ns_name(h).0))
        .cloned()
        .collect();
    for hpa in hpas {
        let (ns, name) = podutil::ns_name(&hpa);
        let target = &hpa["spec"]["scaleTargetRef"];
        let (kind, target_name) = (
            target["kind"].as_str().unwrap_or(""),
            target["name"].as_str().unwrap_or(""),
        );
        let group = target["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map_or("", |(g, _)| g);
        let current = resources::find_kind(group, kind)
            .and_then(|r| cluster.store.get(r, ns, target_name))
            .map(|o| o["spec"]["replicas"].as_i64().unwrap_or(1));
        let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let max = hpa["spec"]["maxReplicas"].as_i64().unwrap_or(min);
        let now = ctx.now_str.clone();
        util::mutate(&mut cluster.store, hpas_res, ns, name, |h| {
            let Some(replicas) = current else {
                let message = format!(
                    "the HPA controller was unable to get the target's current scale: {}/scale.{} \"{target_name}\" not found",
                    kind.to_lowercase() + "s",
                    group
                );
                util::set_condition(
                    h,
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    &message,
                    &now,
                    false,
                );
                return;
            };
            h["status"]["currentReplicas"] = json!(replicas);
            util::set_condition(
                h,
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
                &now,
                false,
            );
            let metric = h["spec"]["metrics"][0]["resource"]["name"]
                .as_str()
                .unwrap_or("cpu")
                .to_owned();
            let utilization = h
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(UTILIZATION))
                .and_then(Value::as_str)
                .and_then(|u| u.trim().trim_end_matches('%').parse::<i64>().ok());
            let wanted = if let Some(u) = utilization {
                with_metrics(h, &metric, u, replicas, &now)
            } else {
                without_metrics(h, &metric, replicas, &now)
            };
            h["status"]["desiredReplicas"] = json!(wanted.clamp(min, max));
            let (limited, reason, message) = if wanted < min {
                (
                    "True",
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            } else if wanted > max {
                (
                    "True",
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            } else {
                (
                    "False",
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                )
            };
            util::set_condition(h, "ScalingLimited", limited, reason, message, &now, false);
        });
    }
}

/// Status of an HPA without a metrics server: `ScalingActive=False`; it keeps `replicas`.
fn without_metrics(h: &mut Value, metric: &str, replicas: i64, now: &str) -> i64 {
    util::set_condition(
        h,
        "ScalingActive",
        "False",
        "FailedGetResourceMetric",
        &format!(
            "the HPA was unable to compute the replica count: failed to get {metric} utilization: unable to get metrics for resource {metric}: no metrics returned from resource metrics API"
        ),
        now,
        false,
    );
    replicas
}

/// Status of an HPA whose first metric reads `utilization` percent: `ScalingActive=True`,
/// `currentMetrics`; returns the unclamped replica count the upstream formula asks for.
fn with_metrics(h: &mut Value, metric: &str, utilization: i64, replicas: i64, now: &str) -> i64 {
    let target = h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
        .as_i64()
        .filter(|t| *t > 0)
        .unwrap_or(80);
    let ratio = utilization as f64 / target as f64;
    // The controller's tolerance: within 10% of the target, nothing changes.
    let wanted = if (ratio - 1.0).abs() <= 0.1 {
        replicas
    } else {
        (replicas as f64 * ratio).ceil() as i64
    };
    h["status"]["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": metric,
        "current": {"averageUtilization": utilization}}}]);
    util::set_condition(
        h,
        "ScalingActive",
        "True",
        "ValidMetricFound",
        &format!(
            "the HPA was able to successfully calculate a replica count from {metric} resource utilization (percentage of request)"
        ),
        now,
        false,
    );
    wanted
}

/// The HPA a scenario workload's `hpa:` declares for `kind`/`name` in `ns`.
#[must_use]
pub fn scenario_hpa(kind: &str, name: &str, ns: &str, spec: &crate::scenario::HpaSpec) -> Value {
    let min = spec.min_replicas.unwrap_or(1);
    let mut hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": spec.name.clone().unwrap_or_else(|| name.to_owned()), "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
            "minReplicas": min,
            "maxReplicas": spec.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": spec.metric.clone().unwrap_or_else(|| "cpu".into()),
                "target": {"type": "Utilization", "averageUtilization": spec.target_utilization.unwrap_or(80)}}}],
        },
    });
    if let Some(u) = spec.utilization {
        hpa["metadata"]["annotations"] = json!({UTILIZATION: u.to_string()});
    }
    hpa
}
