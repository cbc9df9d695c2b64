//! Helpers shared by the controllers: names, hashes, quantities, IntOrString, taints and
//! tolerations, node selection, and change-detecting writes.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::resources::ResourceInfo;
use crate::store::Store;

/// JSON pointers without allocation. `serde_json::Value::pointer` allocates two strings per
/// path segment (to unescape `~0`/`~1`), which dominated controller passes over 18,000 pods.
/// Our paths are literals without escapes.
pub trait Ptr {
    /// The value at `path` (`/a/b/0`), if present.
    fn ptr(&self, path: &str) -> Option<&Value>;
    /// The value at `path`, mutably, if present.
    fn ptr_mut(&mut self, path: &str) -> Option<&mut Value>;
}

impl Ptr for Value {
    fn ptr(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        if path.is_empty() {
            return Some(cur);
        }
        for tok in path.strip_prefix('/')?.split('/') {
            cur = match cur {
                Value::Object(m) => m.get(tok)?,
                Value::Array(a) => a.get(tok.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn ptr_mut(&mut self, path: &str) -> Option<&mut Value> {
        let mut cur = self;
        if path.is_empty() {
            return Some(cur);
        }
        for tok in path.strip_prefix('/')?.split('/') {
            cur = match cur {
                Value::Object(m) => m.get_mut(tok)?,
                Value::Array(a) => a.get_mut(tok.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// The apiserver's random-suffix alphabet (no vowels, no confusable digits).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a over bytes: stable across runs and platforms, unlike `DefaultHasher`.
#[must_use]
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `len` characters of the suffix alphabet derived from `seed`.
#[must_use]
pub fn suffix(seed: u64, len: usize) -> String {
    let mut h = fnv(&seed.to_le_bytes());
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
        h /= ALPHABET.len() as u64;
        if h == 0 {
            h = fnv(s.as_bytes());
        }
    }
    s
}

/// A pod-template hash like the Deployment controller's (10 characters of the alphabet).
#[must_use]
pub fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(l) = t.ptr_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove("pod-template-hash");
        l.remove("controller-revision-hash");
    }
    let h = fnv(t.to_string().as_bytes());
    let mut out = String::new();
    let mut x = h;
    for _ in 0..10 {
        out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    out
}

/// Parses a Kubernetes quantity into milli-units (`"100m"` → 100, `"2"` → 2000,
/// `"1Gi"` → 1073741824000). `None` when malformed.
#[must_use]
pub fn quantity_milli(q: &Value) -> Option<i128> {
    let s = match q {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    // Exponent forms like 1e3 are rare in manifests; treat them as malformed.
    let mult: f64 = match unit {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    Some((v * mult * 1000.0).ceil() as i128)
}

/// Resolves an IntOrString (`3` or `"30%"`) against `total`; percentages round up or down.
#[must_use]
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            if let Some(p) = s.strip_suffix('%') {
                let p: i64 = p.trim().parse().ok()?;
                let x = p * total;
                Some(if round_up {
                    (x + 99).div_euclid(100)
                } else {
                    x.div_euclid(100)
                })
            } else {
                s.trim().parse().ok()
            }
        }
        _ => None,
    }
}

/// Parses a Go-style duration: `90s`, `1h30m`, `500ms`, `2d` (days as a convenience), `0`.
pub fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    anyhow::ensure!(!s.is_empty(), "empty duration");
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        anyhow::ensure!(n > 0, "bad duration {s:?}: expected a number at {rest:?}");
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| anyhow::anyhow!("bad duration {s:?}"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            unit => anyhow::bail!("bad duration {s:?}: unknown unit {unit:?}"),
        };
        total += value * secs;
        rest = &rest[u..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// Reads one object, applies `f` to a copy, and writes it back only when it changed, so that
/// idle controllers do not bump resourceVersions. Returns the stored object when written.
pub fn mutate(
    store: &mut Store,
    resource: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) -> Option<Arc<Value>> {
    let current = store.get(resource, namespace, name)?;
    let mut obj = (*current).clone();
    f(&mut obj);
    if obj == *current {
        return None;
    }
    Some(store.put(resource, obj))
}

/// Like [`mutate`], but `f` sees only the top-level fields `parts` (e.g. `status`) of the
/// object, so that checking an unchanged status does not clone a whole pod template.
pub fn mutate_parts(
    store: &mut Store,
    resource: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    parts: &[&str],
    f: impl FnOnce(&mut Value),
) -> Option<Arc<Value>> {
    let current = store.get(resource, namespace, name)?;
    let mut partial = Value::Object(
        parts
            .iter()
            .filter_map(|k| current.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect(),
    );
    f(&mut partial);
    let changed = parts.iter().any(|k| partial.get(*k) != current.get(*k));
    if !changed {
        return None;
    }
    let mut obj = (*current).clone();
    for k in parts {
        match partial.get_mut(*k) {
            Some(v) => obj[*k] = v.take(),
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove(*k);
                }
            }
        }
    }
    Some(store.put(resource, obj))
}

/// Timestamp of a field, if present and well-formed.
#[must_use]
pub fn ts(obj: &Value, pointer: &str) -> Option<Timestamp> {
    obj.ptr(pointer)
        .and_then(Value::as_str)
        .and_then(crate::clock::parse)
}

/// Adds `d` to `t`.
#[must_use]
pub fn plus(t: Timestamp, d: std::time::Duration) -> Timestamp {
    t + jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

/// The earlier of two optional due times.
pub fn earliest(due: &mut Option<Timestamp>, t: Timestamp) {
    if due.is_none_or(|d| t < d) {
        *due = Some(t);
    }
}

/// Sets a condition of `type_` in `status.conditions`, keeping `lastTransitionTime` unless the
/// status changes. Returns nothing; callers compare whole objects.
pub fn set_condition(
    obj: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    with_update_time: bool,
) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let conds = obj["status"]["conditions"]
        .as_array_mut()
        .expect("just set");
    let existing = conds.iter_mut().find(|c| c["type"] == type_);
    #[allow(clippy::single_match_else)] // Both arms are long; a match reads better here.
    match existing {
        Some(c) => {
            let same = c["status"] == status
                && c["reason"].as_str().unwrap_or("") == reason
                && c["message"].as_str().unwrap_or("") == message;
            if same {
                return;
            }
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            let o = c.as_object_mut().expect("condition is an object");
            for (k, v) in [("reason", reason), ("message", message)] {
                if v.is_empty() {
                    o.remove(k);
                } else {
                    o.insert(k.into(), json!(v));
                }
            }
            if with_update_time {
                c["lastUpdateTime"] = json!(now);
            }
        }
        None => {
            let mut c = json!({"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
            if with_update_time {
                c["lastUpdateTime"] = json!(now);
            }
            if reason.is_empty() {
                c.as_object_mut().expect("object").remove("reason");
            }
            if message.is_empty() {
                c.as_object_mut().expect("object").remove("message");
            }
            conds.push(c);
        }
    }
}

/// Whether the tolerations in `tolerations` (a pod's `spec.tolerations`) tolerate `taint`.
#[must_use]
pub fn tolerates(tolerations: Option<&Value>, taint: &Value) -> bool {
    let Some(ts) = tolerations.and_then(Value::as_array) else {
        return false;
    };
    let key = taint["key"].as_str().unwrap_or("");
    let value = taint["value"].as_str().unwrap_or("");
    let effect = taint["effect"].as_str().unwrap_or("");
    ts.iter().any(|t| {
        let t_effect = t["effect"].as_str().unwrap_or("");
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        let t_key = t["key"].as_str().unwrap_or("");
        match t["operator"].as_str().unwrap_or("Equal") {
            // An empty key with Exists tolerates everything.
            "Exists" => t_key.is_empty() || t_key == key,
            _ => t_key == key && t["value"].as_str().unwrap_or("") == value,
        }
    })
}

/// Taints of a node that keep a pod off it (NoSchedule and NoExecute) and that it does not
/// tolerate, as `key:effect` strings.
#[must_use]
pub fn untolerated_taints(pod_spec: &Value, node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for t in node
        .ptr("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let effect = t["effect"].as_str().unwrap_or("");
        if effect != "NoSchedule" && effect != "NoExecute" {
            continue;
        }
        if !tolerates(pod_spec.get("tolerations"), t) {
            out.push(format!("{}:{effect}", t["key"].as_str().unwrap_or("")));
        }
    }
    out
}

/// Whether a pod spec's `nodeSelector` and required node affinity (labels and the
/// `metadata.name` field, which the DaemonSet controller uses) accept `node`.
#[must_use]
pub fn node_matches(pod_spec: &Value, node: &Value) -> bool {
    let labels = crate::labels::labels(node);
    if let Some(sel) = pod_spec.get("nodeSelector").and_then(Value::as_object)
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    let Some(terms) = pod_spec
        .ptr("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    if terms.is_empty() {
        return true;
    }
    let name = node
        .ptr("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Terms are ORed; expressions within a term are ANDed.
    terms.iter().any(|term| {
        let exprs = term.get("matchExpressions").and_then(Value::as_array);
        let fields = term.get("matchFields").and_then(Value::as_array);
        if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
            return false;
        }
        exprs.into_iter().flatten().all(|e| {
            expr_matches(
                e,
                labels
                    .get(e["key"].as_str().unwrap_or(""))
                    .and_then(Value::as_str),
            )
        }) && fields
            .into_iter()
            .flatten()
            .all(|e| e["key"] == "metadata.name" && expr_matches(e, Some(name)))
    })
}

fn expr_matches(e: &Value, have: Option<&str>) -> bool {
    let values: Vec<&str> = e["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match e["operator"].as_str().unwrap_or("") {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(v)) = (
                have.and_then(|h| h.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e["operator"] == "Gt" { h > v } else { h < v }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_milli(&json!("100m")), Some(100));
        assert_eq!(quantity_milli(&json!("2")), Some(2000));
        assert_eq!(quantity_milli(&json!(2)), Some(2000));
        assert_eq!(quantity_milli(&json!("1Gi")), Some(1_073_741_824_000));
        assert_eq!(quantity_milli(&json!("0.5")), Some(500));
        assert_eq!(quantity_milli(&json!("1x")), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn percents() {
        assert_eq!(int_or_percent(&json!("25%"), 10, true), Some(3));
        assert_eq!(int_or_percent(&json!("25%"), 10, false), Some(2));
        assert_eq!(int_or_percent(&json!(1), 10, false), Some(1));
    }

    #[test]
    fn tolerations() {
        let taint = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        assert!(tolerates(Some(&json!([{"operator": "Exists"}])), &taint));
        assert!(tolerates(
            Some(
                &json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}])
            ),
            &taint
        ));
        assert!(!tolerates(
            Some(&json!([{"key": "x", "operator": "Exists"}])),
            &taint
        ));
        assert!(!tolerates(None, &taint));
    }
}
