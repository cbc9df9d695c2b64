//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch for
//! the fields kubectl and our steps patch, and server-side apply approximated as a strategic
//! merge of the applied object.
//!
//! Strategic merge keys are chosen by field name (the apiserver uses the Go struct tags; for the
//! fields we serve the name decides): `containers`/`initContainers`/`ephemeralContainers`/`env`/
//! `volumes`/`imagePullSecrets` by `name`, `volumeMounts` by `mountPath`, `conditions` and node
//! `addresses` by `type`, container `ports` by `containerPort` (Service ports by `port`),
//! `ownerReferences` by `uid`, `topologySpreadConstraints` by `topologyKey`. `finalizers` merge
//! as a set. Other lists are replaced, node `taints` and pod `tolerations` included (they carry
//! no patch strategy, which is why `kubectl taint` sends the whole list). Directives `$patch` (replace/delete/merge), `$setElementOrder/<f>`, `$retainKeys`
//! and `$deleteFromPrimitiveList/<f>` are honoured and never stored.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The PATCH content types the apiserver accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/json-patch+json`
    Json,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// From a Content-Type header value; 415 otherwise.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {ct:?}"
                ),
                None,
            )),
        }
    }
}

/// Parses a patch body: JSON, or YAML for apply patches.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("apply patch is not UTF-8: {e}")))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Applies `patch` of `kind` to `target`, returning the patched object.
pub fn apply(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchType::Merge => {
            let mut out = target.clone();
            merge_patch(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            let mut out = target.clone();
            strategic_merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            let mut out = target.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                )
            })?;
            Ok(out)
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        "hostAliases" => "ip",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

/// Removes directive keys (`$patch`, `$retainKeys`, `$setElementOrder/...`, ...) recursively.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") || !target.is_object() {
        *target = strip(patch);
        return;
    }
    let t = target.as_object_mut().expect("checked above");
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_owned(), v.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(Value::Array(list)) = t.get_mut(field) {
                list.retain(|x| !drop.contains(&x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(vm) => {
                if vm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                } else {
                    strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            Value::Array(items) => {
                let merged = match t.get(k) {
                    Some(Value::Array(orig)) => merge_list(k, orig, items),
                    _ => strip(v),
                };
                t.insert(k.clone(), merged);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = t.get_mut(&field) {
            reorder(&field, list, &order);
        }
    }
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn merge_list(field: &str, orig: &[Value], patch: &[Value]) -> Value {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return strip(&Value::Array(patch.to_vec()));
    }
    if is_primitive_set(field) {
        let mut out = orig.to_vec();
        for i in patch {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return Value::Array(out);
    }
    let Some(key) = merge_key(field, patch).filter(|_| patch.iter().all(Value::is_object)) else {
        return strip(&Value::Array(patch.to_vec()));
    };
    let mut out = orig.to_vec();
    for item in patch {
        let id = item.get(key);
        let pos = out.iter().position(|o| id.is_some() && o.get(key) == id);
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            out.retain(|o| id.is_none() || o.get(key) != id);
            continue;
        }
        match pos {
            Some(i) => strategic_merge(&mut out[i], item),
            None => out.push(strip(item)),
        }
    }
    Value::Array(out)
}

fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let key = merge_key(field, list);
    let rank = |v: &Value| -> usize {
        let id = match key {
            Some(k) => v.get(k),
            None => Some(v),
        };
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k) == id,
                None => Some(o) == id,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"list": [1, 2]});
        merge_patch(&mut t, &json!({"list": [3]}));
        assert_eq!(t, json!({"list": [3]}));
    }

    #[test]
    fn strategic_merges_by_key() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "t"}]}, "metadata": {"finalizers": ["f1"]}});
        strategic_merge(
            &mut pod,
            &json!({
                "spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                                        {"name": "b", "$patch": "delete"}],
                         "tolerations": [{"key": "u"}]},
                "metadata": {"finalizers": ["f2"]}
            }),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])
        );
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([{"key": "u"}]),
            "lists without merge key replace"
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["f1", "f2"]));
    }

    #[test]
    fn taints_are_replaced_not_merged() {
        let mut node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        strategic_merge(
            &mut node,
            &json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "b", "effect": "NoSchedule"}])
        );
    }

    #[test]
    fn strategic_directives() {
        let mut o = json!({"spec": {"a": 1, "b": 2, "c": {"x": 1}}, "metadata": {"finalizers": ["a", "b"]}, "conditions": [{"type": "A"}, {"type": "B"}]});
        strategic_merge(
            &mut o,
            &json!({
                "spec": {"$retainKeys": ["a", "c"], "c": {"$patch": "replace", "y": 2}},
                "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                "$setElementOrder/conditions": [{"type": "B"}, {"type": "A"}],
                "conditions": [{"type": "A", "status": "True"}]
            }),
        );
        assert_eq!(o["spec"], json!({"a": 1, "c": {"y": 2}}));
        assert_eq!(o["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            o["conditions"],
            json!([{"type": "B"}, {"type": "A", "status": "True"}])
        );
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"spec": {"unschedulable": false}, "metadata": {"labels": {"a": "b"}}});
        let out = apply(
            PatchType::Json,
            &t,
            &json!([
                {"op": "replace", "path": "/spec/unschedulable", "value": true},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "test", "path": "/spec/unschedulable", "value": true}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"unschedulable": true}, "metadata": {"labels": {}}})
        );
        let err = apply(
            PatchType::Json,
            &t,
            &json!([{"op": "test", "path": "/spec/unschedulable", "value": true}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }
}
