//! `fieldValidation`: unknown fields in a create, update or patch body, found with the
//! Kubernetes OpenAPI v3 schemas read in place from the shared directory
//! (`$OPSTEPS_SHARED_DIR/schemas/kubernetes`, else the one beside the repository). `Strict`
//! refuses them (400 `strict decoding error: unknown field "spec.bogus"`); `Warn`, the default,
//! answers with one `Warning: 299` header per field; `Ignore` says nothing. Without the schemas
//! of a kind, nothing is checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use super::{Ctx, ResourcePath};
use crate::error::ApiError;
use crate::patch::PatchType;
use crate::resources::ResourceInfo;

fn schemas_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OPSTEPS_SHARED_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
        PathBuf::from,
    );
    let dir = dir.join("schemas/kubernetes");
    dir.is_dir().then_some(dir)
}

/// OpenAPI documents by group/version, loaded on first use.
fn documents() -> &'static HashMap<String, Value> {
    static DOCS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut docs = HashMap::new();
        let Some(dir) = schemas_dir() else {
            return docs;
        };
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix("_openapi.json") else {
                continue;
            };
            let gv = match stem.split("__").collect::<Vec<_>>().as_slice() {
                ["api", v] => (*v).to_owned(),
                ["apis", g, v] => format!("{g}/{v}"),
                _ => continue,
            };
            if let Ok(Ok(doc)) =
                std::fs::read(entry.path()).map(|b| serde_json::from_slice::<Value>(&b))
            {
                docs.insert(gv, doc);
            } else {
                tracing::warn!(file = %name, "unreadable OpenAPI document");
            }
        }
        docs
    })
}

/// Loads the documents ahead of the first write (a few hundred milliseconds in debug builds),
/// so that first write is not slower than the rest.
pub fn warm() {
    let _ = documents();
}

/// The document and component schema of a kind.
fn schema_of(res: &ResourceInfo) -> Option<(&'static Value, &'static Value)> {
    let doc = documents().get(&res.api_version())?;
    let component = doc["components"]["schemas"]
        .as_object()?
        .values()
        .find(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|gvks| {
                    gvks.iter().any(|g| {
                        g["group"] == res.group
                            && g["version"] == res.version
                            && g["kind"] == res.kind
                    })
                })
        })?;
    Some((doc, component))
}

/// Follows `$ref` and single-element `allOf` wrappers.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = s["$ref"].as_str() {
            let name = r.trim_start_matches("#/components/schemas/");
            s = &doc["components"]["schemas"][name];
        } else if let Some([one]) = s["allOf"].as_array().map(Vec::as_slice) {
            s = one;
        } else {
            break;
        }
    }
    s
}

fn walk(doc: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let s = resolve(doc, schema);
    if s["x-kubernetes-preserve-unknown-fields"] == true || s["x-kubernetes-int-or-string"] == true
    {
        return;
    }
    match value {
        Value::Object(m) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, v) in m {
                    // Strategic merge patch directives (`$setElementOrder/containers`, `$patch`).
                    if k.starts_with('$') || v.is_null() {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match props.get(k) {
                        Some(sub) => walk(doc, sub, v, &p, out),
                        None => out.push(p),
                    }
                }
            } else if s["additionalProperties"].is_object() {
                for (k, v) in m {
                    walk(
                        doc,
                        &s["additionalProperties"],
                        v,
                        &format!("{path}.{k}"),
                        out,
                    );
                }
            }
        }
        Value::Array(a) if s["items"].is_object() => {
            for (i, v) in a.iter().enumerate() {
                walk(doc, &s["items"], v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Unknown fields of `obj` as a `kind` of `res`, or None when the schema is not known.
#[must_use]
pub fn unknown(res: &ResourceInfo, obj: &Value) -> Option<Vec<String>> {
    let (doc, schema) = schema_of(res)?;
    let mut out = Vec::new();
    walk(doc, schema, obj, "", &mut out);
    Some(out)
}

/// Checks a create, update or merge/strategic patch of a main resource: `Err` (400) under
/// `fieldValidation=Strict`, else the `Warning` header values to send (none under `Ignore`).
pub fn check(p: &ResourcePath, verb: &str, ctx: &Ctx) -> Result<Vec<String>, ApiError> {
    if p.sub.is_some() || !matches!(verb, "create" | "update" | "patch") {
        return Ok(Vec::new());
    }
    let directive = ctx
        .query
        .get("fieldValidation")
        .map_or("Warn", String::as_str);
    if directive == "Ignore" {
        return Ok(Vec::new());
    }
    let body = if verb == "patch" {
        match PatchType::from_content_type(&ctx.content_type) {
            Ok(PatchType::Merge | PatchType::Strategic) => serde_json::from_slice(&ctx.body).ok(),
            _ => None,
        }
    } else {
        ctx.json_body().ok()
    };
    let Some(fields) = body.and_then(|b| unknown(p.res, &b)) else {
        return Ok(Vec::new());
    };
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let each: Vec<String> = fields
        .iter()
        .map(|f| {
            format!(
                "unknown field {}",
                serde_json::to_string(f).unwrap_or_default()
            )
        })
        .collect();
    if directive == "Strict" {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            each.join(", ")
        )));
    }
    Ok(each
        .iter()
        .map(|w| format!("299 - {}", serde_json::to_string(w).unwrap_or_default()))
        .collect())
}
