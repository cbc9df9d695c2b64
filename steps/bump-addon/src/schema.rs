//! `--configuration-values` against the add-on version's JSON schema (DescribeAddonConfiguration),
//! checked before any update so a typo is exit 2 with nothing sent, not an UPDATE_FAILED.

use serde_json::Value;

/// One way the values break the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the values (`/env/NOPE`; empty for the whole document).
    pub path: String,
    /// The schema keyword that failed (`additionalProperties`, `type`, `minimum`).
    pub keyword: String,
    /// The validator's message.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "at {path}: {} ({})", self.message, self.keyword)
    }
}

/// Why the values could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// DescribeAddonConfiguration's schema is not JSON or not a valid schema.
    #[error("the configuration schema of {addon} {version} cannot be used: {reason}")]
    Unusable {
        /// Add-on.
        addon: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
}

/// Every violation of `schema` (a JSON Schema document as text) by `values`.
pub fn check(
    addon: &str,
    version: &str,
    schema: &str,
    values: &Value,
) -> Result<Vec<Violation>, SchemaError> {
    let unusable = |reason: String| SchemaError::Unusable {
        addon: addon.to_owned(),
        version: version.to_owned(),
        reason,
    };
    let schema: Value = serde_json::from_str(schema).map_err(|e| unusable(e.to_string()))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| unusable(e.to_string()))?;
    let mut out: Vec<Violation> = validator
        .iter_errors(values)
        .map(|e| Violation {
            path: e.instance_path().to_string(),
            keyword: e.kind().keyword().to_owned(),
            message: e.to_string(),
        })
        .collect();
    out.sort_by(|a, b| (&a.path, &a.keyword).cmp(&(&b.path, &b.keyword)));
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r##"{"$ref": "#/definitions/Config", "$schema": "http://json-schema.org/draft-06/schema#",
        "definitions": {"Config": {"type": "object", "additionalProperties": false, "properties": {
            "replicaCount": {"type": "integer", "minimum": 1},
            "env": {"type": "object", "additionalProperties": false, "properties": {"A": {"type": "string"}}}}}}}"##;

    #[test]
    fn names_the_path_and_the_keyword() {
        assert!(
            check("coredns", "v1", SCHEMA, &json!({"replicaCount": 2}))
                .unwrap()
                .is_empty()
        );
        let v = check("coredns", "v1", SCHEMA, &json!({"replicaCount": 0})).unwrap();
        assert_eq!(v[0].path, "/replicaCount");
        assert_eq!(v[0].keyword, "minimum");
        let v = check("coredns", "v1", SCHEMA, &json!({"env": {"B": "x"}})).unwrap();
        assert_eq!(v[0].path, "/env");
        assert_eq!(v[0].keyword, "additionalProperties");
        assert!(v[0].message.contains('B'), "{}", v[0].message);
        let v = check("coredns", "v1", SCHEMA, &json!({"replicaCount": "3"})).unwrap();
        assert_eq!(
            (v[0].path.as_str(), v[0].keyword.as_str()),
            ("/replicaCount", "type")
        );
        assert!(check("coredns", "v1", "not json", &json!({})).is_err());
    }
}
