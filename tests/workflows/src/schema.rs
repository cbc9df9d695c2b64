//! Schema validation, made strict: every object that lists `properties` and says nothing about
//! `additionalProperties` is closed (so a typo'd or removed key fails), and Argo's IntOrString is
//! widened to accept integers, as Argo itself does (argo.md §5).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::{Doc, Finding, Rule, SetupError};

/// The Argo schemas checked, newest first: a manifest passing both runs on 3.7 and 4.x.
pub const ARGO_VERSIONS: [(&str, &str); 2] = [
    ("4.1.2", "argo-workflows/schema.json"),
    ("3.7.18", "argo-workflows/v3.7.18/schema.json"),
];

/// The Kubernetes 1.35 OpenAPI v3 documents.
pub const KUBERNETES_FILES: [&str; 4] = [
    "kubernetes/api__v1_openapi.json",
    "kubernetes/apis__apps__v1_openapi.json",
    "kubernetes/apis__policy__v1_openapi.json",
    "kubernetes/apis__rbac.authorization.k8s.io__v1_openapi.json",
];

const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
/// Messages quoting a whole document are cut here.
const MAX_MESSAGE: usize = 400;

/// Compiled validators by kind.
pub struct Schemas {
    /// (Argo version, kind) → validator.
    argo: Vec<(&'static str, BTreeMap<String, jsonschema::Validator>)>,
    /// (apiVersion, kind) → validator.
    kubernetes: BTreeMap<(String, String), jsonschema::Validator>,
}

fn read_json(path: &Path) -> Result<Value, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| SetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SetupError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Closes every object schema that has `properties` and no `additionalProperties`, except
/// Kubernetes' explicitly open ones (`x-kubernetes-preserve-unknown-fields`).
pub fn close_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let open = m
                .get("x-kubernetes-preserve-unknown-fields")
                .is_some_and(|x| x == &Value::Bool(true));
            if m.get("properties").is_some_and(Value::is_object)
                && !m.contains_key("additionalProperties")
                && !open
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(close_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn compile(root: &Value, pointer: &str) -> jsonschema::Validator {
    let mut schema = Map::new();
    for (k, v) in root.as_object().into_iter().flatten() {
        if k != "oneOf" && k != "$id" && k != "type" {
            schema.insert(k.clone(), v.clone());
        }
    }
    schema.insert("allOf".into(), json!([{ "$ref": pointer }]));
    jsonschema::draft202012::options()
        .build(&Value::Object(schema))
        .unwrap_or_else(|e| panic!("stored schema does not compile at {pointer}: {e}"))
}

impl Schemas {
    /// Reads and compiles the schemas under `dir` (`<shared>/schemas`).
    pub fn load(dir: &Path) -> Result<Self, SetupError> {
        let mut argo = Vec::new();
        for (version, file) in ARGO_VERSIONS {
            let mut root = read_json(&dir.join(file))?;
            close_objects(&mut root);
            root["definitions"][INT_OR_STRING] = json!({ "type": ["string", "integer"] });
            let mut by_kind = BTreeMap::new();
            for kind in [
                "WorkflowTemplate",
                "ClusterWorkflowTemplate",
                "CronWorkflow",
                "Workflow",
            ] {
                let pointer = format!("#/definitions/io.argoproj.workflow.v1alpha1.{kind}");
                by_kind.insert(kind.to_owned(), compile(&root, &pointer));
            }
            argo.push((version, by_kind));
        }
        let mut components = Map::new();
        for file in KUBERNETES_FILES {
            let doc = read_json(&dir.join(file))?;
            if let Some(s) = doc["components"]["schemas"].as_object() {
                components.extend(s.clone());
            }
        }
        let mut root = json!({ "components": { "schemas": components } });
        close_objects(&mut root);
        let mut kubernetes = BTreeMap::new();
        for kind in [
            "ServiceAccount",
            "ConfigMap",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ] {
            let Some((name, gvk)) = components.iter().find_map(|(name, s)| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()?
                    .iter()
                    .find(|g| g["kind"] == kind)
                    .map(|g| (name.clone(), g.clone()))
            }) else {
                continue;
            };
            let group = gvk["group"].as_str().unwrap_or("");
            let version = gvk["version"].as_str().unwrap_or("v1");
            let api_version = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            let pointer = format!("#/components/schemas/{name}");
            kubernetes.insert((api_version, kind.to_owned()), compile(&root, &pointer));
        }
        Ok(Self { argo, kubernetes })
    }

    /// Validates one document against every schema that applies to it.
    #[must_use]
    pub fn check(&self, doc: &Doc) -> Vec<Finding> {
        let finding = |message: String| Finding {
            file: doc.file.clone(),
            object: doc.object(),
            rule: Rule::Schema,
            message,
        };
        let mut out = Vec::new();
        if doc.is_argo() {
            for (version, by_kind) in &self.argo {
                match by_kind.get(doc.kind()) {
                    Some(v) => out.extend(errors(v, &doc.value, &format!("Argo {version}")).map(finding)),
                    None => out.push(finding(format!(
                        "kind {:?} is not one we validate (WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow, Workflow)",
                        doc.kind()
                    ))),
                }
            }
        } else {
            let api = doc.value["apiVersion"].as_str().unwrap_or("").to_owned();
            match self.kubernetes.get(&(api.clone(), doc.kind().to_owned())) {
                Some(v) => out.extend(errors(v, &doc.value, "Kubernetes 1.35").map(finding)),
                None => out.push(finding(format!(
                    "no stored schema for apiVersion {api:?} kind {:?} (accepted: {})",
                    doc.kind(),
                    self.kubernetes
                        .keys()
                        .map(|(a, k)| format!("{a} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        out
    }
}

fn errors<'a>(
    v: &'a jsonschema::Validator,
    value: &'a Value,
    against: &'a str,
) -> impl Iterator<Item = String> + 'a {
    v.iter_errors(value).map(move |e| {
        let mut msg = e.to_string();
        if msg.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE)
                .rev()
                .find(|i| msg.is_char_boundary(*i))
                .unwrap_or(0);
            msg.truncate(cut);
            msg.push('…');
        }
        let at = e.instance_path().to_string();
        format!(
            "{against}: at {}: {msg}",
            if at.is_empty() { "/" } else { &at }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_objects_with_properties_only() {
        let mut v = json!({
            "a": { "type": "object", "properties": { "x": { "type": "string" } } },
            "b": { "type": "object", "properties": {}, "additionalProperties": { "type": "string" } },
            "c": { "type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": true },
            "d": { "type": "string" }
        });
        close_objects(&mut v);
        assert_eq!(v["a"]["additionalProperties"], false);
        assert_eq!(v["b"]["additionalProperties"], json!({ "type": "string" }));
        assert!(v["c"].get("additionalProperties").is_none());
        assert!(v["d"].get("additionalProperties").is_none());
    }
}
