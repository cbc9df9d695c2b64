//! OpenAPI: `/openapi/v3` with the real Kubernetes 1.35 documents, read in place from the
//! shared directory (`$OPSTEPS_SHARED_DIR/schemas/kubernetes`, default `../shared` beside the
//! workspace), and `/openapi/v2` derived from them.
//!
//! A group/version without a shared document (or every one, when the directory is missing)
//! gets the minimal generated document of `discovery`, which still tells kubectl that
//! `fieldValidation` is supported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Value, json};

use super::discovery;

/// The shared documents by group/version path (`api/v1`, `apis/apps/v1`).
struct Docs {
    v3: BTreeMap<String, Bytes>,
}

fn shared_schemas() -> PathBuf {
    std::env::var_os("OPSTEPS_SHARED_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            PathBuf::from,
        )
        .join("schemas/kubernetes")
}

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let dir = shared_schemas();
        let mut v3 = BTreeMap::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    // Upstream names: `api__v1_openapi.json`, `apis__apps__v1_openapi.json`.
                    let Some(stem) = file.strip_suffix("_openapi.json") else {
                        continue;
                    };
                    match std::fs::read(e.path()) {
                        Ok(b) => {
                            v3.insert(stem.replace("__", "/"), Bytes::from(b));
                        }
                        Err(err) => tracing::warn!(file = %e.path().display(), %err, "reading OpenAPI document"),
                    }
                }
            }
            Err(err) => tracing::warn!(
                dir = %dir.display(), %err,
                "no Kubernetes OpenAPI documents (set OPSTEPS_SHARED_DIR); serving minimal ones"
            ),
        }
        Docs { v3 }
    })
}

/// FNV-1a, hex: a stable content hash for the `hash` query kubectl caches documents by.
fn hash(b: &[u8]) -> String {
    let h = b.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016X}")
}

/// `GET /openapi/v3`: every served group/version and where its document lives.
#[must_use]
pub fn v3_index() -> Value {
    let served = discovery::openapi_v3_root();
    let paths: serde_json::Map<String, Value> = served["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(gv, _)| {
            let h = v3_document(gv).map_or_else(String::new, |b| hash(&b));
            (
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={h}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`: the shared document, else the generated one; `None`
/// for a group/version the sandbox does not serve.
#[must_use]
pub fn v3_document(gv: &str) -> Option<Bytes> {
    let generated = discovery::openapi_v3_gv(gv)?;
    Some(
        docs()
            .v3
            .get(gv)
            .cloned()
            .unwrap_or_else(|| Bytes::from(serde_json::to_vec(&generated).unwrap_or_default())),
    )
}

/// The Content-Type of the protobuf v2 document. kubectl 1.27/1.28 ask for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go's media type parser
/// refuses the `@` in a response, so the apiserver answers with this spelling.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `GET /openapi/v2`: the Swagger 2.0 document derived from every served v3 document, as
/// protobuf when `accept` names it (kubectl's `explain` and client-side schema on 1.27/1.28),
/// else as JSON. Built once.
#[must_use]
pub fn v2(accept: &str) -> (&'static str, Bytes) {
    static JSON: OnceLock<(Value, Bytes)> = OnceLock::new();
    static PROTO: OnceLock<Bytes> = OnceLock::new();
    let (doc, json_bytes) = JSON.get_or_init(|| {
        let v3: Vec<Value> = v3_index()["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(gv, _)| v3_document(gv))
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        let doc = v2::from_v3(&v3);
        let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        (doc, bytes)
    });
    if accept.contains("protobuf") {
        let b = PROTO.get_or_init(|| Bytes::from(v2::encode(doc)));
        (V2_PROTOBUF, b.clone())
    } else {
        ("application/json", json_bytes.clone())
    }
}

mod v2;
