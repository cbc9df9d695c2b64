//! Server-side apply details kubectl relies on, beside the merge itself (`crate::patch`).

use serde_json::Value;

use super::Query;
use crate::patch::PatchType;

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The apiserver's last-applied updater: an apply from the `kubectl` field manager (what
/// `kubectl apply --server-side` sends) also records the applied configuration in the
/// last-applied annotation, so a later client-side `kubectl apply` computes its three-way patch
/// from it instead of warning that the annotation is missing. The value is the applied object
/// without that annotation, as compact JSON with sorted keys and a newline, as Go encodes it.
#[must_use]
pub fn with_last_applied(kind: PatchType, query: &Query, mut body: Value) -> Value {
    if kind != PatchType::Apply
        || query.get("fieldManager").map(String::as_str) != Some("kubectl")
        || !body.is_object()
    {
        return body;
    }
    let mut config = body.clone();
    if let Some(a) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let text = format!("{}\n", serde_json::to_string(&config).unwrap_or_default());
    body["metadata"]["annotations"][LAST_APPLIED] = Value::String(text);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_kubectl_applies_record_the_configuration() {
        let body = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a", "annotations": {LAST_APPLIED: "old"}}, "data": {"k": "v"}});
        let q: Query = [("fieldManager".to_owned(), "kubectl".to_owned())].into();
        let out = with_last_applied(PatchType::Apply, &q, body.clone());
        assert_eq!(
            out["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\"}}\n"
        );
        let other: Query = [("fieldManager".to_owned(), "helm".to_owned())].into();
        assert_eq!(
            with_last_applied(PatchType::Apply, &other, body.clone()),
            body
        );
        assert_eq!(with_last_applied(PatchType::Merge, &q, body.clone()), body);
    }
}
