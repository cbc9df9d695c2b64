//! Label and field selectors in their query-string form (`labelSelector=app=web,tier in (a,b)`,
//! `fieldSelector=spec.nodeName=n1,status.phase!=Succeeded`).

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceInfo;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed label selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{raw}', expected: '('"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Keys must be qualified names and values label values, as `labels.Parse` checks them.
fn check_requirement((key, op): &(String, Op)) -> Result<(), ApiError> {
    if let Some(msg) = crate::api::validate::qualified_name_errors(key).first() {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: key: Invalid value: {key:?}: {msg}"
        )));
    }
    let values: &[String] = match op {
        Op::Eq(v) | Op::NotEq(v) => std::slice::from_ref(v),
        Op::In(vs) | Op::NotIn(vs) => vs,
        Op::Exists | Op::NotExists => &[],
    };
    for (i, v) in values.iter().enumerate() {
        if let Some(msg) = crate::api::validate::label_value_errors(v).first() {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement: values[{i}][{key}]: Invalid value: {v:?}: {msg}"
            )));
        }
    }
    Ok(())
}

impl LabelSelector {
    /// Parses the string form; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                (key.trim().to_owned(), Op::NotExists)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_owned(), Op::NotEq(v.trim().to_owned()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                (k.trim().to_owned(), Op::NotIn(set_values(rest, part)?))
            } else if let Some((k, rest)) = part.split_once(" in ") {
                (k.trim().to_owned(), Op::In(set_values(rest, part)?))
            } else if part.contains(char::is_whitespace) || part.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part}"
                )));
            } else {
                (part.to_owned(), Op::Exists)
            };
            if req.0.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part}: key is empty"
                )));
            }
            check_requirement(&req)?;
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether the object's `metadata.labels` satisfy the selector.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = crate::labels::labels(obj);
        self.reqs.iter().all(|(k, op)| {
            let have = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq(v) => have == Some(v.as_str()),
                Op::NotEq(v) => have != Some(v.as_str()),
                Op::In(vs) => have.is_some_and(|h| vs.iter().any(|v| v == h)),
                Op::NotIn(vs) => have.is_none_or(|h| vs.iter().all(|v| v != h)),
                Op::Exists => have.is_some(),
                Op::NotExists => have.is_none(),
            }
        })
    }
}

/// A parsed field selector (`=`, `==`, `!=` on dotted field paths).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses the string form; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let path = path.trim();
            if path.is_empty() {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'")));
            }
            let pointer = format!("/{}", path.replace('.', "/"));
            reqs.push((pointer, eq, value.trim().to_owned()));
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The field labels used (`spec.nodeName`).
    pub fn fields(&self) -> impl Iterator<Item = String> + '_ {
        self.reqs
            .iter()
            .map(|(p, _, _)| p.trim_start_matches('/').replace('/', "."))
    }

    /// The value required by an equality on `field` (`metadata.name`), if any: lets watches and
    /// lists on one object skip the scan.
    #[must_use]
    pub fn equals(&self, field: &str) -> Option<&str> {
        let pointer = format!("/{}", field.replace('.', "/"));
        self.reqs
            .iter()
            .find(|(p, eq, _)| *eq && *p == pointer)
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether the object's fields satisfy the selector. Absent fields compare as "" (so
    /// `spec.nodeName=` selects unscheduled pods, as in the apiserver); `status.phase` defaults
    /// to `Pending` for pods without status, and absent booleans (`spec.hostNetwork`,
    /// `spec.unschedulable`) to `false`.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(pointer, eq, want)| {
            let have: std::borrow::Cow<'_, str> = match obj.pointer(pointer) {
                Some(Value::String(s)) => s.as_str().into(),
                Some(Value::Bool(b)) => b.to_string().into(),
                Some(Value::Number(n)) => n.to_string().into(),
                _ if pointer == "/status/phase" && obj["kind"] == "Pod" => "Pending".into(),
                // Booleans select by their Go value, false when absent.
                _ if matches!(
                    pointer.as_str(),
                    "/spec/hostNetwork" | "/spec/unschedulable"
                ) =>
                {
                    "false".into()
                }
                _ => "".into(),
            };
            (have == want.as_str()) == *eq
        })
    }
}

/// Field labels a kind supports beyond `metadata.name` and `metadata.namespace` (the
/// apiserver's field label conversion functions), and how it words a refusal.
fn field_support(res: &ResourceInfo) -> (&'static [&'static str], Refusal) {
    match res.key() {
        "pods" => (
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Refusal::Unsupported,
        ),
        "nodes" => (&["spec.unschedulable"], Refusal::Unsupported),
        "namespaces" => (&["status.phase"], Refusal::Unsupported),
        "secrets" => (&["type"], Refusal::Unsupported),
        "events" => (
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Refusal::Unsupported,
        ),
        "replicationcontrollers" => (&["status.replicas"], Refusal::Unsupported),
        "jobs.batch" => (&["status.successful"], Refusal::Unsupported),
        "replicasets.apps" => (&["status.replicas"], Refusal::Unknown),
        "certificatesigningrequests.certificates.k8s.io" => {
            (&["spec.signerName"], Refusal::Unsupported)
        }
        "endpoints"
        | "resourcequotas"
        | "persistentvolumeclaims"
        | "services"
        | "serviceaccounts"
        | "configmaps" => (&[], Refusal::NotForKind),
        _ => (&[], Refusal::Unknown),
    }
}

/// The wording of an unsupported field label, which differs by kind.
enum Refusal {
    /// `field label not supported: X`
    Unsupported,
    /// `field label "X" not supported for "Kind"`
    NotForKind,
    /// `"X" is not a known field selector: only "metadata.name", "metadata.namespace"`
    Unknown,
}

/// 400 BadRequest when the selector uses a field the kind does not support (the apiserver
/// refuses rather than returning an empty list).
pub fn check_supported(res: &ResourceInfo, sel: &FieldSelector) -> Result<(), ApiError> {
    let (extra, refusal) = field_support(res);
    for field in sel.fields() {
        if matches!(field.as_str(), "metadata.name" | "metadata.namespace")
            || extra.contains(&field.as_str())
        {
            continue;
        }
        let msg = match refusal {
            Refusal::Unsupported => format!("field label not supported: {field}"),
            Refusal::NotForKind => {
                format!("field label {field:?} not supported for {:?}", res.kind)
            }
            Refusal::Unknown => format!(
                "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ),
        };
        return Err(ApiError::bad_request(msg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=fe", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("tier notin (fe)", false),
            ("x notin (fe)", true),
            ("app,!x", true),
            ("!app", false),
            ("app in (db),tier=fe", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = json!({"kind": "Pod", "metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        for (sel, want) in [
            ("spec.nodeName=n1", true),
            ("spec.nodeName=n2", false),
            ("metadata.name=a,metadata.namespace=ns", true),
            ("status.phase=Pending", true),
            ("status.phase!=Succeeded,status.phase!=Failed", true),
        ] {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&p),
                want,
                "{sel}"
            );
        }
        assert!(FieldSelector::parse("spec.nodeName").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .equals("metadata.name"),
            Some("a")
        );
    }
}
