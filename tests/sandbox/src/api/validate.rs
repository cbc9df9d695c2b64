//! The apiserver's validation of what clients send: object names, labels and annotations, pods
//! (containers required, spec mostly immutable), object size, and the options of a request
//! (`dryRun`, `timeoutSeconds`, `limit`, `resourceVersionMatch`). Errors are `Status` bodies
//! with the apiserver's messages and `details.causes`.

use serde_json::{Value, json};

use super::Query;
use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// The largest request body the apiserver reads (`MaxRequestBodyBytes`, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// etcd's default `--max-request-bytes` (1.5 MiB): a larger object cannot be stored.
pub const MAX_OBJECT_BYTES: usize = 3 * 512 * 1024;
/// Total size of an object's annotations (keys and values).
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// One field error: `field: message`, and its `details.causes` entry.
#[derive(Debug, Clone)]
pub struct Cause {
    field: String,
    reason: &'static str,
    message: String,
}

impl Cause {
    fn invalid(field: &str, value: &str, msg: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {msg}", quote(value)),
        }
    }

    fn required(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueRequired",
            message: "Required value".to_owned(),
        }
    }

    fn forbidden(field: &str, msg: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {msg}"),
        }
    }

    fn too_long(field: &str, max: usize) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueTooLong",
            message: format!("Too long: must have at most {max} bytes"),
        }
    }

    fn not_supported(field: &str, value: &str, supported: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                quote(supported)
            ),
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// 422 Invalid for `kind` (of `group`) named `name`, with one cause per field error, formatted as
/// the apiserver's `NewInvalid`.
#[must_use]
pub fn invalid(group: &str, kind: &str, name: &str, causes: &[Cause]) -> ApiError {
    let list: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = if list.len() == 1 {
        list[0].clone()
    } else {
        format!("[{}]", list.join(", "))
    };
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut details = json!({"kind": kind, "causes": causes.iter().map(|c| json!({
        "reason": c.reason, "message": c.message, "field": c.field,
    })).collect::<Vec<_>>()});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError::new(
        422,
        "Invalid",
        format!("{qualified} {} is invalid: {joined}", quote(name)),
        Some(details),
    )
}

fn dns_label_ok(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (if first_alpha {
            b[0].is_ascii_lowercase()
        } else {
            b[0].is_ascii_alphanumeric()
        })
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn subdomain_errors(s: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters");
    }
    if !s.split('.').all(|part| dns_label_ok(part, false)) {
        out.push(SUBDOMAIN);
    }
    out
}

fn label_errors(s: &str, rfc1035: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters");
    }
    if !dns_label_ok(s, rfc1035) {
        out.push(if rfc1035 { LABEL_1035 } else { LABEL_1123 });
    }
    out
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Errors of a qualified name (`prefix/name`), as label and annotation keys must be.
#[must_use]
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_owned());
        } else {
            out.extend(
                subdomain_errors(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".to_owned());
        }
        if !name_part_ok(name) {
            out.push(NAME_PART.to_owned());
        }
    }
    out
}

/// Errors of a label value (empty is allowed).
#[must_use]
pub fn label_value_errors(v: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters");
    }
    if !v.is_empty() && !name_part_ok(v) {
        out.push(LABEL_VALUE);
    }
    out
}

/// The name rule of a resource: namespaces are RFC 1123 labels, services RFC 1035 labels, the
/// rest RFC 1123 subdomains.
fn name_errors(res: &ResourceInfo, name: &str) -> Vec<&'static str> {
    match res.key() {
        "namespaces" => label_errors(name, false),
        "services" => label_errors(name, true),
        _ => subdomain_errors(name),
    }
}

/// Validation of an object a client creates or updates (`old` on update).
pub fn object(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    if old.is_none() {
        for msg in name_errors(res, name) {
            causes.push(Cause::invalid("metadata.name", name, msg));
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            for msg in qualified_name_errors(k) {
                causes.push(Cause::invalid("metadata.labels", k, &msg));
            }
            let v = v.as_str().unwrap_or("");
            for msg in label_value_errors(v) {
                causes.push(Cause::invalid("metadata.labels", v, msg));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            for msg in qualified_name_errors(k) {
                causes.push(Cause::invalid("metadata.annotations", k, &msg));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push(Cause::too_long(
                "metadata.annotations",
                MAX_ANNOTATIONS_BYTES,
            ));
        }
    }
    if res.key() == "pods" {
        pod(obj, old, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(res.group, res.kind, name, &causes))
    }
}

fn pod(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    match spec["containers"].as_array() {
        Some(cs) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                if c["name"].as_str().is_none_or(str::is_empty) {
                    causes.push(Cause::required(&format!("spec.containers[{i}].name")));
                }
                if c["image"].as_str().is_none_or(str::is_empty) && old.is_none() {
                    causes.push(Cause::required(&format!("spec.containers[{i}].image")));
                }
            }
        }
        _ => causes.push(Cause::required("spec.containers")),
    }
    if let Some(old) = old
        && mutable_view(&old["spec"]) != mutable_view(spec)
    {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

/// The apiserver's defaults of a pod spec (restartPolicy, terminationGracePeriodSeconds,
/// dnsPolicy, schedulerName, enableServiceLinks), applied on create and update.
pub fn pod_spec_defaults(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
    ] {
        m.entry(k).or_insert(v);
    }
}

/// A pod spec without the fields an update may change (images, activeDeadlineSeconds,
/// tolerations, terminationGracePeriodSeconds, schedulingGates), so two specs that differ only
/// there compare equal. Absent and null compare equal, as after the apiserver's decoding.
fn mutable_view(spec: &Value) -> Value {
    let mut s = strip_nulls(spec);
    pod_spec_defaults(&mut s);
    if let Some(m) = s.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            m.remove(k);
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
    }
    s
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// etcd refuses objects over its request limit; the apiserver passes the error on as a 500
/// without a reason (kubernetes/kubernetes#112152).
pub fn object_size(obj: &Value) -> Result<(), ApiError> {
    let size = serde_json::to_vec(obj).map_or(0, |b| b.len());
    if size > MAX_OBJECT_BYTES {
        return Err(ApiError::new(
            500,
            "",
            "etcdserver: request is too large",
            None,
        ));
    }
    Ok(())
}

/// 413 for a body over [`MAX_BODY_BYTES`].
#[must_use]
pub fn body_too_large() -> ApiError {
    ApiError::new(
        413,
        "RequestEntityTooLarge",
        format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
        None,
    )
}

/// The `*Options` kind whose `dryRun` a verb takes.
fn options_kind(verb: &str) -> &'static str {
    match verb {
        "update" => "UpdateOptions",
        "patch" => "PatchOptions",
        "delete" | "deletecollection" => "DeleteOptions",
        _ => "CreateOptions",
    }
}

/// `dryRun` may only be `All`: anything else is 422 before any write (in the query, or in a
/// DeleteOptions body).
pub fn dry_run(verb: &str, query: &Query, body: Option<&Value>) -> Result<(), ApiError> {
    let mut values: Vec<String> = query.get("dryRun").into_iter().cloned().collect();
    if let Some(list) = body.and_then(|b| b["dryRun"].as_array()) {
        values.extend(list.iter().map(|v| v.as_str().unwrap_or("").to_owned()));
    }
    if let Some(bad) = values.iter().find(|v| *v != "All") {
        return Err(invalid(
            "meta.k8s.io",
            options_kind(verb),
            "",
            &[Cause::not_supported("dryRun", bad, "All")],
        ));
    }
    Ok(())
}

/// ListOptions of a list or watch: integers must parse (400), `resourceVersionMatch` needs a
/// resourceVersion and is not for watches, except NotOlderThan with `sendInitialEvents` (422).
pub fn list_options(query: &Query, watch: bool) -> Result<(), ApiError> {
    for k in ["timeoutSeconds", "limit"] {
        if let Some(v) = query.get(k)
            && v.parse::<i64>().is_err()
        {
            return Err(ApiError::bad_request(format!(
                "strconv.ParseInt: parsing {}: invalid syntax",
                quote(v)
            )));
        }
    }
    let m = query.get("resourceVersionMatch").map_or("", String::as_str);
    // Streaming lists: a watch with sendInitialEvents takes NotOlderThan.
    if watch && query.contains_key("sendInitialEvents") {
        if m == "NotOlderThan" {
            return Ok(());
        }
        let c = Cause::not_supported("resourceVersionMatch", m, "NotOlderThan");
        return Err(invalid("meta.k8s.io", "ListOptions", "", &[c]));
    }
    if m.is_empty() {
        return Ok(());
    }
    let rv = query.get("resourceVersion").map_or("", String::as_str);
    let cause = if watch {
        Some(Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch",
        ))
    } else if rv.is_empty() {
        Some(Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ))
    } else if m == "Exact" && rv == "0" {
        Some(Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ))
    } else if m != "Exact" && m != "NotOlderThan" {
        Some(Cause::not_supported(
            "resourceVersionMatch",
            m,
            "Exact\", \"NotOlderThan",
        ))
    } else {
        None
    };
    match cause {
        Some(c) => Err(invalid("meta.k8s.io", "ListOptions", "", &[c])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(subdomain_errors("web-1.example").is_empty());
        assert_eq!(subdomain_errors("Bad_Name"), vec![SUBDOMAIN]);
        assert_eq!(subdomain_errors("../evil"), vec![SUBDOMAIN]);
        assert_eq!(label_errors("a.b", false), vec![LABEL_1123]);
        assert_eq!(label_errors("1abc", true), vec![LABEL_1035]);
        assert!(label_errors("1abc", false).is_empty());
    }

    #[test]
    fn keys_and_values() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(qualified_name_errors("bad key").len() == 1);
        assert_eq!(
            qualified_name_errors("Bad_Prefix/x")[0],
            format!("prefix part {SUBDOMAIN}")
        );
        assert!(label_value_errors("").is_empty());
        assert_eq!(label_value_errors("not ok!"), vec![LABEL_VALUE]);
    }

    #[test]
    fn message_shape() {
        let e = invalid(
            "",
            "Pod",
            "x",
            &[Cause::required("spec.containers"), Cause::required("a")],
        );
        assert_eq!(
            e.body["message"],
            "Pod \"x\" is invalid: [spec.containers: Required value, a: Required value]"
        );
        assert_eq!(
            e.body["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }
}
