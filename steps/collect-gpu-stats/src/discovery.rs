//! What there is to scrape: GPU nodes (`nvidia.com/gpu` capacity, so a GPU node without a
//! working exporter is reported, never silently missing), exporter pods under either label
//! scheme (the Helm chart's `app.kubernetes.io/name=dcgm-exporter`, the GPU Operator's
//! `app=nvidia-dcgm-exporter`), and the pods that request GPUs (the allocation cross-check).
//!
//! One paged list of nodes and one of pods (all namespaces), through `opsteps::list`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::exit::StepError;
use opsteps::list::Lister;
use opsteps::step::Context;
use tokio::time::Instant;
use tracing::instrument;

/// Exporter pod labels: the Helm chart's, then the GPU Operator's.
pub const EXPORTER_LABELS: &[(&str, &str)] = &[
    ("app.kubernetes.io/name", "dcgm-exporter"),
    ("app", "nvidia-dcgm-exporter"),
];

/// The extended resource GPUs are requested and advertised as.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A node that advertises GPUs.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuNode {
    /// Node name.
    pub name: String,
    /// `nvidia.com/gpu` capacity.
    pub gpus: u32,
    /// `node.kubernetes.io/instance-type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// `eks.amazonaws.com/capacityType` or `karpenter.sh/capacity-type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// EC2 instance ID from `spec.providerID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The Ready condition is True.
    pub ready: bool,
}

/// A dcgm-exporter pod.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exporter {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it runs on (`spec.nodeName`, more reliable than the `Hostname` label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Pod IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Phase is Running and the Ready condition is True.
    pub ready: bool,
    /// `helm` or `gpu-operator`.
    pub scheme: &'static str,
    /// Image tag of the exporter container (its version), when the image has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A pod that requests GPUs.
#[derive(Clone, Debug)]
pub struct GpuPod {
    /// The pod.
    pub pod: Arc<Pod>,
    /// GPUs requested (sum over containers, limits or requests).
    pub gpus: u32,
}

/// Everything discovery found.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// GPU nodes by name.
    pub nodes: BTreeMap<String, GpuNode>,
    /// Exporter pods.
    pub exporters: Vec<Exporter>,
    /// Every pod by `namespace/name` (for attribution).
    pub pods: BTreeMap<String, Arc<Pod>>,
    /// Pods that request GPUs and are bound to a node and not finished.
    pub gpu_pods: Vec<GpuPod>,
}

fn quantity_u32(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> u32 {
    q.0.trim().parse::<u32>().unwrap_or(0)
}

/// GPUs a pod asks for: per container the larger of limit and request (they must be equal for
/// extended resources), summed.
#[must_use]
pub fn gpus_requested(pod: &Pod) -> u32 {
    let Some(spec) = &pod.spec else { return 0 };
    spec.containers
        .iter()
        .filter_map(|c| c.resources.as_ref())
        .map(|r| {
            let get = |m: &Option<BTreeMap<String, _>>| {
                m.as_ref()
                    .and_then(|m| m.get(GPU_RESOURCE))
                    .map_or(0, quantity_u32)
            };
            get(&r.limits).max(get(&r.requests))
        })
        .sum()
}

/// The exporter label scheme of `pod`, if it is an exporter.
#[must_use]
pub fn exporter_scheme(pod: &Pod) -> Option<&'static str> {
    let labels = pod.labels();
    if labels.get(EXPORTER_LABELS[0].0).map(String::as_str) == Some(EXPORTER_LABELS[0].1) {
        Some("helm")
    } else if labels.get(EXPORTER_LABELS[1].0).map(String::as_str) == Some(EXPORTER_LABELS[1].1) {
        Some("gpu-operator")
    } else {
        None
    }
}

fn pod_ready(pod: &Pod) -> bool {
    let Some(st) = &pod.status else { return false };
    st.phase.as_deref() == Some("Running")
        && st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn image_tag(pod: &Pod) -> Option<String> {
    let image = pod.spec.as_ref()?.containers.first()?.image.as_deref()?;
    let image = image.split('@').next()?;
    let (repo, tag) = image.rsplit_once(':')?;
    // A colon in the repository part is a registry port, not a tag.
    (!tag.contains('/') && !repo.is_empty()).then(|| tag.to_owned())
}

fn gpu_node(n: &Node) -> Option<GpuNode> {
    let gpus = n
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get(GPU_RESOURCE)
        .map_or(0, quantity_u32);
    if gpus == 0 {
        return None;
    }
    let labels = n.labels();
    let label = |k: &str| labels.get(k).cloned();
    Some(GpuNode {
        name: n.name_any(),
        gpus,
        instance_type: label("node.kubernetes.io/instance-type"),
        capacity_type: label("eks.amazonaws.com/capacityType")
            .or_else(|| label("karpenter.sh/capacity-type")),
        instance_id: n
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .and_then(|p| p.rsplit('/').next())
            .filter(|id| id.starts_with("i-"))
            .map(str::to_owned),
        ready: opsteps::nodes::is_ready(n),
    })
}

/// Lists nodes and pods once and sorts out GPU nodes, exporters and GPU pods.
#[instrument(skip_all, err)]
pub async fn discover(
    client: &Client,
    ctx: &Context,
    deadline: Instant,
) -> Result<Inventory, StepError> {
    let nodes: Vec<Node> = Lister::new("nodes")
        .deadline(deadline)
        .shutdown(&ctx.shutdown)
        .list_all(&Api::all(client.clone()), &ListParams::default())
        .await?;
    let pods: Vec<Pod> = Lister::new("pods")
        .deadline(deadline)
        .shutdown(&ctx.shutdown)
        .list_all(&Api::all(client.clone()), &ListParams::default())
        .await?;
    Ok(inventory(&nodes, pods))
}

/// The inventory from listed objects.
#[must_use]
pub fn inventory(nodes: &[Node], pods: Vec<Pod>) -> Inventory {
    let mut inv = Inventory {
        nodes: nodes
            .iter()
            .filter_map(gpu_node)
            .map(|n| (n.name.clone(), n))
            .collect(),
        ..Inventory::default()
    };
    for pod in pods {
        let pod = Arc::new(pod);
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        if let Some(scheme) = exporter_scheme(&pod) {
            inv.exporters.push(Exporter {
                namespace: ns.clone(),
                name: name.clone(),
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                ip: pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty()),
                ready: pod_ready(&pod),
                scheme,
                version: image_tag(&pod),
            });
        }
        let gpus = gpus_requested(&pod);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
        if gpus > 0 && bound && matches!(phase, Some("Pending" | "Running")) {
            inv.gpu_pods.push(GpuPod {
                pod: Arc::clone(&pod),
                gpus,
            });
        }
        inv.pods.insert(format!("{ns}/{name}"), pod);
    }
    inv.exporters
        .sort_by(|a, b| (&a.node, &a.namespace, &a.name).cmp(&(&b.node, &b.namespace, &b.name)));
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sorts_out_gpu_nodes_exporters_and_gpu_pods() {
        let nodes: Vec<Node> = vec![
            serde_json::from_value(json!({"metadata": {"name": "g1", "labels": {
                "node.kubernetes.io/instance-type": "p5.48xlarge", "eks.amazonaws.com/capacityType": "SPOT"}},
                "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
                "status": {"capacity": {"nvidia.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
            serde_json::from_value(json!({"metadata": {"name": "c1"}, "status": {"capacity": {"cpu": "4"}}})).unwrap(),
        ];
        let pods = vec![
            pod(
                json!({"metadata": {"name": "dcgm-1", "namespace": "gpu-operator", "labels": {"app": "nvidia-dcgm-exporter"}},
                "spec": {"nodeName": "g1", "containers": [{"name": "e", "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.5", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            pod(json!({"metadata": {"name": "t", "namespace": "ml"},
                "spec": {"nodeName": "g1", "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
                "status": {"phase": "Running"}})),
            pod(json!({"metadata": {"name": "done", "namespace": "ml"},
                "spec": {"nodeName": "g1", "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
                "status": {"phase": "Succeeded"}})),
        ];
        let inv = inventory(&nodes, pods);
        assert_eq!(inv.nodes.len(), 1);
        let g1 = &inv.nodes["g1"];
        assert_eq!(g1.gpus, 8);
        assert_eq!(g1.instance_id.as_deref(), Some("i-0abc"));
        assert_eq!(g1.capacity_type.as_deref(), Some("SPOT"));
        assert_eq!(inv.exporters.len(), 1);
        assert_eq!(inv.exporters[0].scheme, "gpu-operator");
        assert!(inv.exporters[0].ready);
        assert_eq!(
            inv.exporters[0].version.as_deref(),
            Some("4.2.3-4.1.3-ubuntu22.04")
        );
        assert_eq!(inv.gpu_pods.len(), 1);
        assert_eq!(inv.gpu_pods[0].gpus, 2);
        assert_eq!(inv.pods.len(), 3);
    }
}
