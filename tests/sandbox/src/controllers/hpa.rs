//! HorizontalPodAutoscalers (autoscaling/v2): status as the HPA controller reports it in a
//! cluster without a metrics server, which is what the sandbox is. It reads the target's scale
//! (`AbleToScale`), cannot compute utilization (`ScalingActive=False`,
//! `FailedGetResourceMetric`), and so keeps the target's replicas, clamped to
//! `minReplicas..=maxReplicas` (`ScalingLimited`). It never scales the target.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Ctx, util};
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources;

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
            let desired = replicas.clamp(min, max);
            h["status"]["currentReplicas"] = json!(replicas);
            h["status"]["desiredReplicas"] = json!(desired);
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
            util::set_condition(
                h,
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                &format!(
                    "the HPA was unable to compute the replica count: failed to get {metric} utilization: unable to get metrics for resource {metric}: no metrics returned from resource metrics API"
                ),
                &now,
                false,
            );
            let (limited, reason, message) = if replicas < min {
                (
                    "True",
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            } else if replicas > max {
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
