//! Pod predicates: what a pod is (mirror, DaemonSet-managed, critical, finished, opted out) and
//! what it requests.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Annotation of mirror pods (the API's view of static pods).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Karpenter's opt-out: `"true"` means never disrupt voluntarily.
pub const KARPENTER_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// Cluster Autoscaler's opt-out: `"false"` means not safe to evict.
pub const CA_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The descheduler's override annotation: any value makes the pod evictable despite the
/// evictor's protections.
pub const DESCHEDULER_EVICT: &str = "descheduler.alpha.kubernetes.io/evict";
/// Priority at and above which a pod is system-critical (`system-cluster-critical` is 2e9).
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// `namespace/name` of a pod.
#[must_use]
pub fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// The pod's phase, `Pending` when unset.
#[must_use]
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Succeeded or Failed.
#[must_use]
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Has a deletionTimestamp.
#[must_use]
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A mirror pod (static pod managed by the kubelet).
#[must_use]
pub fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(MIRROR_ANNOTATION)
}

/// The controller ownerReference, if any.
#[must_use]
pub fn controller(
    pod: &Pod,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Owned by a DaemonSet (`apps/v1` controller reference).
#[must_use]
pub fn is_daemonset_pod(pod: &Pod) -> bool {
    controller(pod).is_some_and(|r| r.kind == "DaemonSet" && r.api_version.starts_with("apps/"))
}

/// Uses an `emptyDir` volume (any medium): data lost on eviction.
#[must_use]
pub fn has_empty_dir(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.empty_dir.is_some())
}

/// Uses `emptyDir` or `hostPath` (the descheduler's "local storage").
#[must_use]
pub fn has_local_storage(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.empty_dir.is_some() || v.host_path.is_some())
}

/// Mounts a PersistentVolumeClaim.
#[must_use]
pub fn has_pvc(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.persistent_volume_claim.is_some())
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
}

/// System-critical: priority class `system-cluster-critical`/`system-node-critical` or a
/// priority of at least 2e9.
#[must_use]
pub fn is_critical(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let class = spec
        .and_then(|s| s.priority_class_name.as_deref())
        .unwrap_or("");
    class == "system-cluster-critical"
        || class == "system-node-critical"
        || spec
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// The pod's own opt-out from voluntary disruption, if any: Karpenter's `do-not-disrupt:
/// "true"` or Cluster Autoscaler's `safe-to-evict: "false"`. Returns the annotation that says
/// so.
#[must_use]
pub fn opt_out(pod: &Pod) -> Option<&'static str> {
    let a = pod.annotations();
    if a.get(KARPENTER_DO_NOT_DISRUPT).is_some_and(|v| v == "true") {
        return Some(KARPENTER_DO_NOT_DISRUPT);
    }
    if a.get(CA_SAFE_TO_EVICT).is_some_and(|v| v == "false") {
        return Some(CA_SAFE_TO_EVICT);
    }
    None
}

/// Ready condition is True.
#[must_use]
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// CPU (millicores) and memory (bytes) requested by the pod: the sum over containers, or the
/// largest init container if larger, as the scheduler counts it.
#[must_use]
pub fn requests(pod: &Pod) -> (i64, f64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0.0);
    };
    let get = |c: &k8s_openapi::api::core::v1::Container, r: &str| {
        c.resources
            .as_ref()
            .and_then(|rr| rr.requests.as_ref())
            .and_then(|m| m.get(r))
            .map(|q| q.0.clone())
    };
    let (mut cpu, mut mem) = (0i64, 0f64);
    for c in &spec.containers {
        cpu += get(c, "cpu")
            .and_then(|q| crate::quantity::millicores(&q))
            .unwrap_or(0);
        mem += get(c, "memory")
            .and_then(|q| crate::quantity::parse(&q))
            .unwrap_or(0.0);
    }
    for c in spec.init_containers.iter().flatten() {
        cpu = cpu.max(
            get(c, "cpu")
                .and_then(|q| crate::quantity::millicores(&q))
                .unwrap_or(0),
        );
        mem = mem.max(
            get(c, "memory")
                .and_then(|q| crate::quantity::parse(&q))
                .unwrap_or(0.0),
        );
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn classifies_pods() {
        let ds = pod(
            json!({"metadata": {"name": "a", "namespace": "n", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]}}),
        );
        assert!(is_daemonset_pod(&ds));
        let mirror =
            pod(json!({"metadata": {"name": "m", "annotations": {MIRROR_ANNOTATION: "x"}}}));
        assert!(is_mirror(&mirror));
        let ed = pod(
            json!({"metadata": {"name": "e"}, "spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]}}),
        );
        assert!(has_empty_dir(&ed) && has_local_storage(&ed) && !has_pvc(&ed));
        let crit = pod(
            json!({"metadata": {"name": "c"}, "spec": {"containers": [], "priorityClassName": "system-node-critical"}}),
        );
        assert!(is_critical(&crit));
        let crit2 = pod(
            json!({"metadata": {"name": "c"}, "spec": {"containers": [], "priority": 2_000_001_000}}),
        );
        assert!(is_critical(&crit2));
        let dnd = pod(
            json!({"metadata": {"name": "d", "annotations": {KARPENTER_DO_NOT_DISRUPT: "true"}}}),
        );
        assert_eq!(opt_out(&dnd), Some(KARPENTER_DO_NOT_DISRUPT));
        let ste =
            pod(json!({"metadata": {"name": "d", "annotations": {CA_SAFE_TO_EVICT: "false"}}}));
        assert_eq!(opt_out(&ste), Some(CA_SAFE_TO_EVICT));
        let fine = pod(
            json!({"metadata": {"name": "d", "annotations": {CA_SAFE_TO_EVICT: "true"}}, "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(opt_out(&fine), None);
        assert!(is_finished(&fine));
        let req = pod(json!({"metadata": {"name": "r"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]}}));
        assert_eq!(requests(&req), (2000, 64.0 * 1024.0 * 1024.0));
    }
}
