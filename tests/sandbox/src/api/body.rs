//! Request bodies of create, update, delete and eviction requests, by `Content-Type`: JSON (the
//! default), YAML (`application/yaml`) and Kubernetes protobuf
//! (`application/vnd.kubernetes.protobuf`), all turned into the same JSON object. Patch bodies
//! have their own media types (`crate::patch`).

use serde_json::{Value, json};

use super::protobuf;
use crate::error::ApiError;

/// The media types accepted for object bodies, for error messages.
const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Decodes a body by its `Content-Type` (parameters such as `charset` ignored); an empty body is
/// `{}`. Bad bodies are 400, unsupported media types and protobuf kinds 415.
pub fn decode(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("error decoding request body: {e}"))
    };
    match media.as_str() {
        // kube-rs and some tools send no Content-Type on a DELETE with options.
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| bad(&e)),
        "application/yaml" => {
            let text = std::str::from_utf8(body).map_err(|e| bad(&e))?;
            let v: Value = serde_saphyr::from_str(text).map_err(|e| bad(&e))?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(bad(&"the YAML document is not a mapping"))
            }
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtoError::Malformed(_) => bad(&e),
            protobuf::ProtoError::Kind { .. } | protobuf::ProtoError::Field { .. } => {
                unsupported(e.to_string())
            }
        }),
        other => Err(unsupported(format!(
            "the body of the request was in an unknown format - accepted media types include: {ACCEPTED}; got {other:?}"
        ))),
    }
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(415, "UnsupportedMediaType", message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_yaml_empty_and_unknown() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"n": "1"}});
        assert_eq!(
            decode("application/json", obj.to_string().as_bytes()).unwrap(),
            obj
        );
        assert_eq!(decode("", obj.to_string().as_bytes()).unwrap(), obj);
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n";
        assert_eq!(
            decode("application/yaml; charset=utf-8", yaml.as_bytes()).unwrap(),
            obj
        );
        assert_eq!(decode("application/json", b" \n").unwrap(), json!({}));
        assert_eq!(decode("application/json", b"{").unwrap_err().code, 400);
        assert_eq!(decode("application/yaml", b"- a\n").unwrap_err().code, 400);
        assert_eq!(decode("text/plain", b"x").unwrap_err().code, 415);
        assert_eq!(
            decode("application/vnd.kubernetes.protobuf", b"{}")
                .unwrap_err()
                .code,
            400
        );
    }
}
