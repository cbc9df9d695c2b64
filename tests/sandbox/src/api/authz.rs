//! SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectReview (`kubectl auth whoami`).
//!
//! Reviews are answered, never stored. An access review is judged by the same RBAC the sandbox
//! enforces (`crate::rbac`); with RBAC off (the default) every request is allowed, as it is
//! under the `AlwaysAllow` authorizer.

use axum::body::Body;
use http::Response;
use serde_json::{Value, json};

use super::{Ctx, ResourcePath, error_response, json_response};
use crate::api_state::Identity;
use crate::cluster::Shared;
use crate::error::ApiError;
use crate::rbac::{self, Subject};

/// Answers a review request, or `None` when `p` is not a review resource.
#[must_use]
pub fn handle(shared: &Shared, p: &ResourcePath, verb: &str, ctx: &Ctx) -> Option<Response<Body>> {
    let kind = match (p.res.group, p.res.plural) {
        ("authorization.k8s.io", "selfsubjectaccessreviews") => Review::Access,
        ("authentication.k8s.io", "selfsubjectreviews") => Review::Whoami,
        _ => return None,
    };
    if verb != "create" || p.name.is_some() {
        return Some(error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
            None,
        )));
    }
    let api_version = p.res.api_version();
    let out = match kind {
        // The request body of a SelfSubjectReview carries nothing.
        Review::Whoami => Ok(whoami(&ctx.identity, &api_version)),
        Review::Access => {
            // kubectl 1.32+ sends reviews as protobuf.
            let body = if ctx.content_type.contains("protobuf") {
                proto::access_review(&ctx.body)
            } else {
                ctx.json_body()
            };
            match body {
                Ok(body) => {
                    let c = shared.lock();
                    access(&c.store, c.api.rbac, &ctx.identity, &body, &api_version)
                }
                Err(e) => Err(e),
            }
        }
    };
    Some(match out {
        Ok(v) => json_response(201, &v),
        Err(e) => error_response(&e),
    })
}

enum Review {
    Access,
    Whoami,
}

/// The groups the apiserver reports for `identity`: its own, plus `system:serviceaccounts`,
/// `system:serviceaccounts:<ns>` for ServiceAccounts, and `system:authenticated`.
#[must_use]
pub fn effective_groups(identity: &Identity) -> Vec<String> {
    let mut groups = identity.groups.clone();
    let mut add = |g: String| {
        if !groups.contains(&g) {
            groups.push(g);
        }
    };
    if let Some(ns) = identity
        .user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns.to_owned())
    {
        add("system:serviceaccounts".into());
        add(format!("system:serviceaccounts:{ns}"));
    }
    if identity.user != "system:anonymous" {
        add("system:authenticated".into());
    }
    groups
}

fn whoami(identity: &Identity, api_version: &str) -> Value {
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {
            "username": identity.user,
            "groups": effective_groups(identity),
        }},
    })
}

fn access(
    store: &crate::store::Store,
    rbac_on: bool,
    identity: &Identity,
    body: &Value,
    api_version: &str,
) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let ra = &spec["resourceAttributes"];
    let nra = &spec["nonResourceAttributes"];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
    if ra.is_object() == nra.is_object() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            None,
        ));
    }
    let subject = Subject {
        user: &identity.user,
        groups: &identity.groups,
    };
    let (allowed, what) = if ra.is_object() {
        let (verb, group, resource) = (s(ra, "verb"), s(ra, "group"), s(ra, "resource"));
        let (sub, ns, name) = (s(ra, "subresource"), s(ra, "namespace"), s(ra, "name"));
        let request = rbac::Request {
            verb: &verb,
            group: &group,
            resource: &resource,
            subresource: &sub,
            namespace: &ns,
            name: &name,
        };
        // An empty resource would pass as non-resource in `authorize`; nothing is granted on it.
        let allowed = !rbac_on
            || (!resource.is_empty() && rbac::authorize(store, &subject, &request).is_ok());
        (allowed, format!("{verb} {resource}"))
    } else {
        let (verb, path) = (s(nra, "verb"), s(nra, "path"));
        let allowed = !rbac_on || rbac::allows_non_resource(store, &subject, &verb, &path);
        (allowed, format!("{verb} {path}"))
    };
    let reason = if !rbac_on {
        "sandbox: RBAC is off, every request is allowed".to_owned()
    } else if allowed {
        format!("RBAC: allowed {what}")
    } else {
        String::new()
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    let mut out = body.clone();
    out["kind"] = json!("SelfSubjectAccessReview");
    out["apiVersion"] = json!(api_version);
    out["metadata"] = json!({"creationTimestamp": null});
    out["status"] = status;
    Ok(out)
}

/// Just enough of the protobuf wire format to read a SelfSubjectAccessReview's spec from the
/// apiserver's protobuf envelope (`k8s\0` + `runtime.Unknown{raw: 2}`).
mod proto {
    use serde_json::{Map, Value, json};

    use crate::error::ApiError;

    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    /// The length-delimited fields of one message, as (field number, bytes).
    fn fields(b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let tag = varint(b, &mut i)?;
            match tag & 7 {
                0 => {
                    varint(b, &mut i)?;
                }
                1 => i += 8,
                5 => i += 4,
                2 => {
                    let len = usize::try_from(varint(b, &mut i)?).ok()?;
                    out.push((tag >> 3, b.get(i..i.checked_add(len)?)?));
                    i += len;
                }
                _ => return None,
            }
        }
        (i == b.len()).then_some(out)
    }

    fn strings(b: &[u8], names: &[&str]) -> Option<Value> {
        let mut m = Map::new();
        for (n, v) in fields(b)? {
            let idx = usize::try_from(n).ok()?.checked_sub(1)?;
            if let Some(name) = names.get(idx) {
                m.insert((*name).to_owned(), json!(String::from_utf8_lossy(v)));
            }
        }
        Some(Value::Object(m))
    }

    fn decode(body: &[u8]) -> Option<Value> {
        let envelope = body.strip_prefix(b"k8s\0")?;
        let raw = fields(envelope)?.into_iter().find(|(n, _)| *n == 2)?.1;
        let spec = fields(raw)?.into_iter().find(|(n, _)| *n == 2)?.1;
        let mut out = Map::new();
        for (n, v) in fields(spec)? {
            match n {
                1 => {
                    let names = [
                        "namespace",
                        "verb",
                        "group",
                        "version",
                        "resource",
                        "subresource",
                        "name",
                    ];
                    out.insert("resourceAttributes".into(), strings(v, &names)?);
                }
                2 => {
                    out.insert(
                        "nonResourceAttributes".into(),
                        strings(v, &["path", "verb"])?,
                    );
                }
                _ => {}
            }
        }
        Some(json!({"spec": out}))
    }

    /// The review as JSON (`{"spec": {...}}`), or 400.
    pub fn access_review(body: &[u8]) -> Result<Value, ApiError> {
        decode(body).ok_or_else(|| {
            ApiError::bad_request(
                "error decoding request body: not a protobuf SelfSubjectAccessReview",
            )
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes_resource_and_non_resource_attributes() {
            // spec.resourceAttributes {namespace: "ns", verb: "get", resource: "pods"}.
            let attrs = [
                &[0x0a, 2][..],
                b"ns",
                &[0x12, 3],
                b"get",
                &[0x2a, 4],
                b"pods",
            ]
            .concat();
            let spec = [&[0x0a, u8::try_from(attrs.len()).unwrap()][..], &attrs].concat();
            let raw = [&[0x12, u8::try_from(spec.len()).unwrap()][..], &spec].concat();
            let unknown = [&[0x12, u8::try_from(raw.len()).unwrap()][..], &raw].concat();
            let body = [&b"k8s\0"[..], &unknown].concat();
            let v = super::access_review(&body).unwrap();
            assert_eq!(
                v["spec"]["resourceAttributes"],
                serde_json::json!({"namespace": "ns", "verb": "get", "resource": "pods"})
            );
            assert!(super::access_review(b"{}").is_err());
        }
    }
}
