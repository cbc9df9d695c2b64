//! `metadata.managedFields`, kept as the apiserver's field manager keeps them: one entry per
//! manager, operation, API version (updates only) and subresource, owning the fields that
//! manager last changed. Field sets are simplified (see the README): object fields nest as
//! `f:<name>`, and lists, scalars and empty objects are leaves (no `k:`/`v:` list items and no
//! `.` entries are generated, though entries given by a scenario keep theirs).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Query;

/// The longest field manager the apiserver keeps (`FieldManagerMaxLength`).
const MAX_MANAGER: usize = 128;

/// Metadata the apiserver never tracks (structured-merge-diff's stripped fields).
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// One field path, e.g. `["f:metadata", "f:labels", "f:app"]`.
type Path = Vec<String>;

/// What one write records.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    /// The field manager.
    pub manager: String,
    /// `Update`, or `Apply` for server-side apply.
    pub apply: bool,
    /// The group/version the request used.
    pub api_version: String,
    /// The subresource written (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
    /// Whether the kind has a status subresource (its main resource never owns `status`).
    pub has_status: bool,
    /// The time of the write.
    pub time: String,
}

/// The manager of a request: the `fieldManager` query parameter, else the User-Agent up to its
/// first `/` without unprintable characters and cut at 128 bytes, as the apiserver derives it.
#[must_use]
pub fn manager(query: &Query, user_agent: &str) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let prefix = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for ch in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + ch.len_utf8() > MAX_MANAGER {
            break;
        }
        out.push(ch);
    }
    out
}

/// Records `w` in `new`'s managedFields. `old` is the stored object (`None` on create);
/// `applied` is a server-side apply's configuration (its fields are what the applier owns).
pub fn record(old: Option<&Value>, new: &mut Value, w: &Write<'_>, applied: Option<&Value>) {
    let mut entries = base_entries(old, new, w.subresource.is_some());
    let scope = |p: &Path| match w.subresource {
        Some("status") => p.first().is_some_and(|f| f == "f:status"),
        None if w.has_status => p.first().is_none_or(|f| f != "f:status"),
        _ => true,
    };
    let before = old.map_or(Value::Null, stripped);
    let after = stripped(new);
    let mut changed = BTreeSet::new();
    let mut present = BTreeSet::new();
    diff(&before, &after, &mut Vec::new(), &mut changed, &mut present);
    changed.retain(|p| scope(p));
    present.retain(|p| scope(p));
    let mut touched = false;
    if !changed.is_empty() {
        // An update takes the fields it changed from every other manager (no conflicts for
        // updates); a field it removed is owned by nobody.
        for e in &mut entries {
            if w.apply && is_own(e, w) {
                continue;
            }
            let mut set = fields_of(e);
            let n = set.len();
            set.retain(|q| !changed.iter().any(|p| overlaps(p, q)));
            if set.len() != n {
                e["fieldsV1"] = to_fields(&set);
                touched = true;
            }
        }
    }
    let own_set = if w.apply {
        let mut s = BTreeSet::new();
        if let Some(a) = applied {
            leaves(&stripped(a), &mut Vec::new(), &mut s);
        }
        s.retain(|p| scope(p));
        Some(s)
    } else if present.is_empty() {
        None
    } else {
        let mut s = entries
            .iter()
            .find(|e| is_own(e, w))
            .map(fields_of)
            .unwrap_or_default();
        s.extend(present);
        Some(s)
    };
    if let Some(set) = own_set {
        let prior = entries.iter().position(|e| is_own(e, w));
        let same = prior.is_some_and(|i| fields_of(&entries[i]) == set) && changed.is_empty();
        if !same {
            if let Some(i) = prior {
                entries.remove(i);
            }
            let mut e = json!({
                "manager": w.manager,
                "operation": if w.apply { "Apply" } else { "Update" },
                "apiVersion": w.api_version,
                "time": w.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields(&set),
            });
            if let Some(s) = w.subresource {
                e["subresource"] = json!(s);
            }
            entries.push(e);
            touched = true;
        }
    }
    if touched {
        entries.retain(|e| !fields_of(e).is_empty());
        entries.sort_by(order);
    }
    let meta = &mut new["metadata"];
    if entries.is_empty() {
        if let Some(m) = meta.as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        meta["managedFields"] = Value::Array(entries);
    }
}

/// The entries a write starts from: the request's own (a client may set or, with `[]` or
/// `[{}]`, reset them) unless it wrote a subresource or sent none, then the stored object's.
fn base_entries(old: Option<&Value>, new: &Value, subresource: bool) -> Vec<Value> {
    let live = || {
        old.and_then(|o| o.pointer("/metadata/managedFields"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if subresource {
        return live();
    }
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty) => {
            Vec::new()
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => a.clone(),
        _ => live(),
    }
}

/// Whether entry `e` is the one `w` records into.
fn is_own(e: &Value, w: &Write<'_>) -> bool {
    let op = if w.apply { "Apply" } else { "Update" };
    e["manager"].as_str() == Some(w.manager.as_str())
        && e["operation"].as_str() == Some(op)
        && (w.apply || e["apiVersion"].as_str() == Some(w.api_version.as_str()))
        && e["subresource"].as_str() == w.subresource
}

/// The apiserver's order: by operation, time, manager, API version, subresource.
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let key = |v: &Value| {
        ["operation", "time", "manager", "apiVersion", "subresource"]
            .map(|k| v[k].as_str().unwrap_or("").to_owned())
    };
    key(a).cmp(&key(b))
}

/// `obj` without what field management ignores.
fn stripped(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in STRIPPED_META {
            m.remove(*k);
        }
        if m.is_empty() {
            o.as_object_mut().map(|m| m.remove("metadata"));
        }
    }
    o
}

/// Every leaf path of `v` below `at`.
fn leaves(v: &Value, at: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                at.push(format!("f:{k}"));
                leaves(child, at, out);
                at.pop();
            }
        }
        _ if at.is_empty() => {}
        _ => {
            out.insert(at.clone());
        }
    }
}

/// The paths that differ between `before` and `after` (`changed`, either side's leaves) and
/// those of them still present in `after` (`present`).
fn diff(
    before: &Value,
    after: &Value,
    at: &mut Path,
    changed: &mut BTreeSet<Path>,
    present: &mut BTreeSet<Path>,
) {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) if !old.is_empty() && !new.is_empty() => {
            let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for key in keys {
                at.push(format!("f:{key}"));
                match (old.get(key), new.get(key)) {
                    (Some(was), Some(is)) => diff(was, is, at, changed, present),
                    (Some(was), None) => leaves(was, at, changed),
                    (None, Some(is)) => {
                        leaves(is, at, changed);
                        leaves(is, at, present);
                    }
                    (None, None) => {}
                }
                at.pop();
            }
        }
        _ if before == after => {}
        _ => {
            if !before.is_null() {
                leaves(before, at, changed);
            }
            leaves(after, at, changed);
            leaves(after, at, present);
        }
    }
}

/// Whether one path is a prefix of the other (owning one takes the other).
fn overlaps(p: &Path, q: &Path) -> bool {
    p.starts_with(q) || q.starts_with(p)
}

/// The paths of an entry's `fieldsV1`: every `{}` node is a leaf.
fn fields_of(e: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, at: &mut Path, out: &mut BTreeSet<Path>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    at.push(k.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ if !at.is_empty() => {
                out.insert(at.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&e["fieldsV1"], &mut Vec::new(), &mut out);
    out
}

/// `fieldsV1` of a set of paths.
fn to_fields(set: &BTreeSet<Path>) -> Value {
    let mut root = json!({});
    for p in set {
        let mut node = &mut root;
        for k in p {
            node = node
                .as_object_mut()
                .map(|m| m.entry(k.clone()).or_insert_with(|| json!({})))
                .expect("fieldsV1 nodes are objects");
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str, apply: bool) -> Write<'static> {
        Write {
            manager: manager.into(),
            apply,
            api_version: "v1".into(),
            subresource: None,
            has_status: false,
            time: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_manager_is_the_query_parameter_else_the_user_agent_prefix() {
        let q: Query = [("fieldManager".to_owned(), "kubectl-edit".to_owned())].into();
        assert_eq!(manager(&q, "kubectl/v1.30.0 (linux/amd64)"), "kubectl-edit");
        let none = Query::new();
        assert_eq!(
            manager(&none, "kubectl/v1.30.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager(&none, "Go-http-client/1.1"), "Go-http-client");
        assert_eq!(manager(&none, "a\u{7}b"), "ab");
        assert_eq!(manager(&none, &"x".repeat(200)).len(), 128);
    }

    #[test]
    fn a_create_owns_every_field_and_an_update_takes_what_it_changed() {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}}, "data": {"k": "v", "j": "w"}});
        record(None, &mut obj, &w("kubectl-create", false), None);
        let mf = &obj["metadata"]["managedFields"];
        assert_eq!(mf.as_array().map(Vec::len), Some(1));
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:data": {"f:j": {}, "f:k": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert_eq!(mf[0]["operation"], "Update");

        let old = obj.clone();
        let mut new = obj.clone();
        new["data"]["k"] = json!("changed");
        new["metadata"]["resourceVersion"] = json!("9");
        let mut later = w("kubectl-edit", false);
        later.time = "2026-01-01T00:01:00Z".into();
        record(Some(&old), &mut new, &later, None);
        let mf = new["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["manager"], "kubectl-create");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:data": {"f:j": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert_eq!(mf[1]["manager"], "kubectl-edit");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:data": {"f:k": {}}}));

        // A write that changes nothing leaves the entries alone.
        let same = new.clone();
        let mut again = new.clone();
        record(Some(&same), &mut again, &w("other", false), None);
        assert_eq!(again, same);
    }

    #[test]
    fn a_request_may_reset_them_and_a_subresource_write_may_not() {
        let mut obj = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        record(None, &mut obj, &w("one", false), None);
        let mut reset = obj.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        record(Some(&obj), &mut reset, &w("two", false), None);
        assert!(reset["metadata"].get("managedFields").is_none());

        let mut status = obj.clone();
        status["metadata"]["managedFields"] = json!([]);
        status["status"] = json!({"phase": "x"});
        let mut sw = w("kubelet", false);
        sw.subresource = Some("status");
        sw.time = "2026-01-01T00:02:00Z".into();
        record(Some(&obj), &mut status, &sw, None);
        let mf = status["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[1]["subresource"], "status");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
    }

    #[test]
    fn an_apply_owns_its_configuration_and_shares_the_rest() {
        let mut obj = json!({"metadata": {"name": "a"}, "data": {"k": "v", "j": "w"}});
        record(None, &mut obj, &w("kubectl-create", false), None);
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let mut new = obj.clone();
        record(Some(&obj), &mut new, &w("kubectl", true), Some(&applied));
        let mf = new["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["fieldsV1"], json!({"f:data": {"f:k": {}}}));
        assert_eq!(mf[1]["fieldsV1"], json!({"f:data": {"f:j": {}, "f:k": {}}}));
    }

    #[test]
    fn foreign_field_sets_round_trip() {
        let e = json!({"fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}}}}});
        assert_eq!(to_fields(&fields_of(&e)), e["fieldsV1"]);
    }
}
