//! Helm 3 releases read from their Secrets, as Helm's own storage driver writes them: type
//! `helm.sh/release.v1`, label `owner=helm`, `data.release` = base64 (Helm's) of gzip of the
//! release JSON, itself base64 again in the Secret's wire encoding (k8s-openapi removes that
//! layer). No helm binary is needed.

use std::io::Read;

use base64::Engine;
use serde::Deserialize;

/// The Secret type Helm 3 stores releases as.
pub const SECRET_TYPE: &str = "helm.sh/release.v1";
/// The label selector of Helm's release Secrets.
pub const SELECTOR: &str = "owner=helm";

/// What the checks need of one release revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Namespace of the release (and its Secret).
    pub namespace: String,
    /// Revision number.
    pub revision: u32,
    /// `deployed`, `failed`, `pending-install`, `pending-upgrade`, `pending-rollback`,
    /// `superseded`, `uninstalling`, ...
    pub status: String,
    /// Chart name.
    pub chart: String,
    /// Chart version.
    pub chart_version: String,
    /// When this revision was deployed (RFC 3339), if recorded.
    pub last_deployed: Option<String>,
    /// `apiVersion`/`kind` of every object in the rendered manifest.
    pub manifest_apis: Vec<(String, String)>,
}

/// Why a release Secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The Secret has no `data.release`.
    #[error("secret {namespace}/{name} has no data.release")]
    Missing {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// Helm's base64 layer is not base64.
    #[error("secret {namespace}/{name}: data.release is not Helm's base64")]
    Base64 {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The gzip stream is corrupt.
    #[error("secret {namespace}/{name}: data.release is not valid gzip")]
    Gzip {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is not a Helm release.
    #[error("secret {namespace}/{name}: data.release is not a Helm release")]
    Json {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Raw {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    version: u32,
    #[serde(default)]
    info: RawInfo,
    #[serde(default)]
    chart: RawChart,
    #[serde(default)]
    manifest: String,
}

#[derive(Deserialize, Default)]
struct RawInfo {
    #[serde(default)]
    status: String,
    #[serde(default)]
    last_deployed: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawChart {
    #[serde(default)]
    metadata: RawMeta,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

/// Decodes `data.release` (already without the Secret's own base64 layer) of Secret
/// `namespace/name`.
pub fn decode(namespace: &str, name: &str, data: Option<&[u8]>) -> Result<Release, DecodeError> {
    let ids = || (namespace.to_owned(), name.to_owned());
    let data = data.ok_or_else(|| {
        let (namespace, name) = ids();
        DecodeError::Missing { namespace, name }
    })?;
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|source| {
            let (namespace, name) = ids();
            DecodeError::Base64 {
                namespace,
                name,
                source,
            }
        })?;
    // Helm gzips since 3.0 but reads plain JSON too (its magic-number test).
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| {
                let (namespace, name) = ids();
                DecodeError::Gzip {
                    namespace,
                    name,
                    source,
                }
            })?;
        out
    } else {
        bytes
    };
    let raw: Raw = serde_json::from_slice(&json).map_err(|source| {
        let (namespace, name) = ids();
        DecodeError::Json {
            namespace,
            name,
            source,
        }
    })?;
    Ok(Release {
        namespace: if raw.namespace.is_empty() {
            namespace.to_owned()
        } else {
            raw.namespace
        },
        name: raw.name,
        revision: raw.version,
        status: raw.info.status,
        chart: raw.chart.metadata.name,
        chart_version: raw.chart.metadata.version,
        last_deployed: raw.info.last_deployed,
        manifest_apis: manifest_apis(&raw.manifest),
    })
}

/// `apiVersion` and `kind` of each YAML document in a rendered manifest (top-level keys only).
#[must_use]
pub fn manifest_apis(manifest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in manifest.split("\n---") {
        let top = |key: &str| {
            doc.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
        };
        if let (Some(a), Some(k)) = (top("apiVersion:"), top("kind:")) {
            out.push((a, k));
        }
    }
    out
}

/// The latest revision of each release (by namespace and name).
#[must_use]
pub fn latest(mut releases: Vec<Release>) -> Vec<Release> {
    releases.sort_by(|a, b| {
        (&a.namespace, &a.name, b.revision).cmp(&(&b.namespace, &b.name, a.revision))
    });
    releases
        .dedup_by(|later, first| later.namespace == first.namespace && later.name == first.name);
    releases
}

/// Reads a chart repository's `index.yaml`: chart name → (version, created) of each entry.
pub fn read_index(path: &std::path::Path) -> Result<crate::inventory::ChartIndex, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_index(&text, &path.display().to_string())
}

/// A chart repository index (`index.yaml`) from its text; `origin` names it in errors.
pub fn parse_index(text: &str, origin: &str) -> Result<crate::inventory::ChartIndex, String> {
    #[derive(Deserialize)]
    struct Index {
        #[serde(default)]
        entries: std::collections::BTreeMap<String, Vec<Entry>>,
    }
    #[derive(Deserialize)]
    struct Entry {
        version: String,
        #[serde(default)]
        created: Option<String>,
    }
    let idx: Index = serde_saphyr::from_str(text)
        .map_err(|e| format!("{origin} is not a chart repository index (index.yaml): {e}"))?;
    Ok(idx
        .entries
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|e| (e.version, e.created)).collect()))
        .collect())
}

/// Encodes a release JSON as Helm stores it (gzip, then base64), for tests.
#[cfg(test)]
fn encode_for_tests(json: &str) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).expect("in-memory write");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("in-memory gzip"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"name":"web","namespace":"shop","version":3,
        "info":{"status":"pending-upgrade","last_deployed":"2026-11-20T10:00:00Z"},
        "chart":{"metadata":{"name":"web-chart","version":"1.2.3"}},
        "manifest":"---\n# Source: a\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: x\n---\napiVersion: apps/v1\nkind: Deployment\n"}"#;

    #[test]
    fn decodes_both_layers_and_plain_json() {
        let helm = encode_for_tests(JSON);
        let r = decode("shop", "sh.helm.release.v1.web.v3", Some(helm.as_bytes())).unwrap();
        assert_eq!(r.name, "web");
        assert_eq!(r.revision, 3);
        assert_eq!(r.status, "pending-upgrade");
        assert_eq!(r.chart_version, "1.2.3");
        assert_eq!(
            r.manifest_apis,
            vec![
                ("policy/v1beta1".into(), "PodDisruptionBudget".into()),
                ("apps/v1".into(), "Deployment".into())
            ]
        );
        let plain = base64::engine::general_purpose::STANDARD.encode(JSON);
        assert_eq!(decode("shop", "s", Some(plain.as_bytes())).unwrap(), r);
    }

    #[test]
    fn corrupt_data_is_an_error_naming_the_secret() {
        let e = decode("shop", "s1", Some(b"!!notbase64")).unwrap_err();
        assert!(e.to_string().contains("shop/s1"), "{e}");
        let gz = base64::engine::general_purpose::STANDARD.encode([0x1f, 0x8b, 1, 2, 3]);
        assert!(matches!(
            decode("shop", "s2", Some(gz.as_bytes())),
            Err(DecodeError::Gzip { .. })
        ));
        assert!(matches!(
            decode("shop", "s3", None),
            Err(DecodeError::Missing { .. })
        ));
    }

    #[test]
    fn keeps_the_latest_revision_of_each_release() {
        let r = |name: &str, rev| Release {
            name: name.into(),
            namespace: "a".into(),
            revision: rev,
            status: String::new(),
            chart: String::new(),
            chart_version: String::new(),
            last_deployed: None,
            manifest_apis: vec![],
        };
        let l = latest(vec![r("x", 1), r("y", 1), r("x", 3), r("x", 2)]);
        assert_eq!(
            l.iter()
                .map(|r| (r.name.as_str(), r.revision))
                .collect::<Vec<_>>(),
            [("x", 3), ("y", 1)]
        );
    }
}
