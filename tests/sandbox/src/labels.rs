//! Label selector matching for `metav1.LabelSelector` objects (PDBs, ReplicaSets, ...).

use serde_json::Value;

/// Labels of an object (`metadata.labels`), empty when absent.
#[must_use]
pub fn labels(obj: &Value) -> &serde_json::Map<String, Value> {
    static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    obj["metadata"]["labels"]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(serde_json::Map::new))
}

/// Whether a `LabelSelector` (`matchLabels` + `matchExpressions`) selects `labels`.
///
/// An empty selector `{}` selects everything and a null/absent selector selects nothing, which is
/// policy/v1's rule for PDBs (callers with other rules check for null first).
#[must_use]
pub fn selector_matches(selector: Option<&Value>, labels: &serde_json::Map<String, Value>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_null()) else {
        return false;
    };
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key).and_then(Value::as_str);
            let ok = match e["operator"].as_str().unwrap_or("") {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_selects_all_null_selects_none() {
        let l = json!({"app": "web"});
        let l = l.as_object().unwrap();
        assert!(selector_matches(Some(&json!({})), l));
        assert!(!selector_matches(None, l));
        assert!(!selector_matches(Some(&Value::Null), l));
    }

    #[test]
    fn labels_and_expressions() {
        let l = json!({"app": "web", "tier": "fe"});
        let l = l.as_object().unwrap();
        assert!(selector_matches(
            Some(&json!({"matchLabels": {"app": "web"}})),
            l
        ));
        assert!(!selector_matches(
            Some(&json!({"matchLabels": {"app": "db"}})),
            l
        ));
        let sel = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}, {"key": "x", "operator": "DoesNotExist"}]});
        assert!(selector_matches(Some(&sel), l));
        let sel =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]});
        assert!(!selector_matches(Some(&sel), l));
    }
}
