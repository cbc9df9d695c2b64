//! Kubernetes Events about each add-on update on its workloads in kube-system (`kubectl describe
//! daemonset aws-node` shows them), through the shared, audited `opsteps::events`. Best effort:
//! a workload that is not in the cluster gets none.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use opsteps::events::{EventType, record};
use opsteps::step::Context;

use crate::wait::workloads;

/// Records `reason`/`message` on every workload of `addon` that exists.
pub async fn on_workloads(
    kube: &kube::Client,
    ctx: &Context,
    addon: &str,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    for w in workloads(addon) {
        if w.daemonset {
            let api: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
            if let Ok(Some(d)) = api.get_opt(w.name).await {
                record(kube, &ctx.audit, ctx.step, &d, type_, reason, message).await;
            }
        } else {
            let api: Api<Deployment> = Api::namespaced(kube.clone(), "kube-system");
            if let Ok(Some(d)) = api.get_opt(w.name).await {
                record(kube, &ctx.audit, ctx.step, &d, type_, reason, message).await;
            }
        }
    }
}
