//! Pod facts that both the API layer (eviction, invariants) and the controllers need.
//!
//! Fields are read by indexing rather than `Value::pointer`, which allocates per path segment:
//! these run for every pod in every controller pass.

use serde_json::Value;

/// `status.phase`, or "Pending" when unset.
#[must_use]
pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// Whether the pod has a deletionTimestamp.
#[must_use]
pub fn is_terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// Whether condition `Ready` is `True`.
#[must_use]
pub fn is_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Whether a status condition of `type_` is "True".
#[must_use]
pub fn condition_true(obj: &Value, type_: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// Healthy in the disruption controller's sense: Ready and not being deleted.
#[must_use]
pub fn is_healthy(pod: &Value) -> bool {
    is_ready(pod) && !is_terminating(pod)
}

/// The controller ownerReference (`controller: true`), if any.
#[must_use]
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// `spec.nodeName`, if scheduled.
#[must_use]
pub fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|s| !s.is_empty())
}

/// Name and namespace of an object.
#[must_use]
pub fn ns_name(obj: &Value) -> (&str, &str) {
    (
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or(""),
    )
}
