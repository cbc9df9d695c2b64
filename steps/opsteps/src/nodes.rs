//! Node state every step reads the same way: readiness and cordons.

use k8s_openapi::api::core::v1::Node;

/// The node's `Ready` condition is `True` (`False`, `Unknown` or missing: not ready).
#[must_use]
pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node is cordoned (`spec.unschedulable`).
#[must_use]
pub fn is_unschedulable(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn readiness_and_cordon() {
        let ready = node(json!({"metadata": {"name": "a"}, "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}}));
        assert!(is_ready(&ready) && !is_unschedulable(&ready));
        for status in ["False", "Unknown"] {
            let n = node(
                json!({"metadata": {"name": "a"}, "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": status}]}}),
            );
            assert!(!is_ready(&n) && is_unschedulable(&n), "{status}");
        }
        assert!(!is_ready(&node(json!({"metadata": {"name": "a"}}))));
    }
}
