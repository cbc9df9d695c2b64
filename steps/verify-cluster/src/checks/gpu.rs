//! GPU: every node with `nvidia.com/gpu` capacity runs a Ready dcgm-exporter pod (without one,
//! the GPU stats and alerts of that node are silently missing).

use std::collections::BTreeSet;

use super::Ctx;
use crate::finding::{Findings, ObjectRef};

/// Whether a pod is a dcgm-exporter (the Helm chart's or the GPU Operator's label).
fn is_exporter(p: &crate::inventory::PodInfo) -> bool {
    p.labels
        .get("app.kubernetes.io/name")
        .is_some_and(|v| v == "dcgm-exporter")
        || p.labels
            .get("app")
            .is_some_and(|v| v == "nvidia-dcgm-exporter")
}

/// `gpu.dcgm-exporter`.
pub fn dcgm_exporter(cx: &Ctx<'_>, f: &mut Findings) {
    let covered: BTreeSet<&str> = cx
        .inv
        .pods()
        .iter()
        .filter(|p| is_exporter(p) && p.ready && !p.terminating)
        .filter_map(|p| p.node.as_deref())
        .collect();
    for n in cx.inv.nodes() {
        let gpus = n
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("nvidia.com/gpu"))
            .and_then(|q| opsteps::quantity::parse(&q.0))
            .unwrap_or(0.0);
        let name = n.metadata.name.as_deref().unwrap_or_default();
        if gpus > 0.0 && !covered.contains(name) {
            f.add(
                format!("GPU node {name} ({gpus} GPUs) has no Ready dcgm-exporter pod"),
                vec![ObjectRef::cluster("Node", name)],
            );
        }
    }
}
