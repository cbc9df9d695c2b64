//! The optional source: a Prometheus HTTP API (`--prometheus-url`), such as Amazon Managed
//! Prometheus, for windows longer than one run. One `query_range` per DCGM family over the
//! window, parsed from the standard `{status, data: {resultType, result}}` response (string
//! values, `"NaN"`, `"+Inf"`); vector answers (instant queries) parse too. Each timestamp of a
//! node becomes one snapshot, so the aggregation is the same as for scrapes.
//!
//! AMP requests are signed with SigV4 for service `aps` (credentials from the AWS chain:
//! IRSA, EKS Pod Identity, environment). Any failure to query is transient (exit 3): the
//! report is not built from a partial window.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::Value;
use tracing::instrument;

use crate::aggregation::fields;
use crate::parse::is_blank;
use crate::sample::{Sample, Snapshot};

/// Families read from Prometheus.
pub const FAMILIES: &[&str] = &[
    fields::GPU_UTIL,
    fields::FB_USED,
    fields::FB_FREE,
    fields::FB_RESERVED,
    fields::POWER,
    fields::GPU_TEMP,
    fields::ENERGY,
    fields::GR_ENGINE_ACTIVE,
    fields::TENSOR_ACTIVE,
    fields::XID,
];

/// Prometheus refuses a range query with more than 11,000 points per series.
const MAX_POINTS: u64 = 11_000;

/// Largest response read.
const MAX_BODY: usize = 256 << 20;

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Connecting or the HTTP exchange failed.
    #[error("cannot reach Prometheus at {url}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer in time.
    #[error("Prometheus at {url} did not answer within {seconds}s")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// A non-200 answer.
    #[error("Prometheus answered HTTP {status} to {url}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// Status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The body is not the API's JSON.
    #[error("unexpected Prometheus response from {url}: {reason}")]
    Format {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// Signing failed (no credentials, bad region).
    #[error("cannot sign the Prometheus request (SigV4, service aps)")]
    Sign {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Parses one API response into samples with their timestamps (seconds).
pub fn parse_response(body: &[u8], url: &str) -> Result<Vec<(f64, Sample)>, PromError> {
    let format = |reason: &str| PromError::Format {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| format(&e.to_string()))?;
    if v["status"] != "success" {
        return Err(format(&format!(
            "status {} ({})",
            v["status"],
            v["error"].as_str().unwrap_or("no error text")
        )));
    }
    let kind = v["data"]["resultType"].as_str().unwrap_or("");
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| format("data.result is not a list"))?;
    let mut out = Vec::new();
    for series in result {
        let mut labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let name = labels.remove("__name__").unwrap_or_default();
        let points: Vec<&Value> = match kind {
            "vector" => vec![&series["value"]],
            "matrix" => series["values"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            other => {
                return Err(format(&format!(
                    "resultType {other:?}; expected vector or matrix"
                )));
            }
        };
        for p in points {
            let (Some(t), Some(val)) = (p[0].as_f64(), p[1].as_str()) else {
                return Err(format("a point is not [time, \"value\"]"));
            };
            let value = match val {
                "NaN" => f64::NAN,
                "+Inf" | "Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().map_err(|_| format(&format!("value {s:?}")))?,
            };
            if is_blank(value) {
                continue;
            }
            out.push((
                t,
                Sample {
                    name: name.clone(),
                    labels: labels.clone(),
                    value,
                },
            ));
        }
    }
    Ok(out)
}

/// The node a Prometheus series is about: the exporter's `Hostname` (node name in
/// Kubernetes), its lower-case successor, or the scrape target.
#[must_use]
pub fn node_of(s: &Sample) -> Option<String> {
    [
        "Hostname",
        "hostname",
        "node",
        "kubernetes_node",
        "instance",
    ]
    .iter()
    .find_map(|k| s.label(k))
    .map(str::to_owned)
}

/// Groups timestamped samples into per-node snapshots in time order.
#[must_use]
pub fn snapshots(points: Vec<(f64, Sample)>, start: f64) -> BTreeMap<String, Vec<Snapshot>> {
    let mut by_node: BTreeMap<String, BTreeMap<i64, Vec<Sample>>> = BTreeMap::new();
    for (t, s) in points {
        let Some(node) = node_of(&s) else { continue };
        by_node
            .entry(node)
            .or_default()
            .entry((t * 1000.0) as i64)
            .or_default()
            .push(s);
    }
    by_node
        .into_iter()
        .map(|(n, m)| {
            let snaps = m
                .into_iter()
                .map(|(ms, samples)| Snapshot {
                    at_seconds: ms as f64 / 1000.0 - start,
                    samples,
                })
                .collect();
            (n, snaps)
        })
        .collect()
}

/// A Prometheus HTTP API client.
pub struct Client {
    base: String,
    http: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
    signer: Option<(
        aws_credential_types::provider::SharedCredentialsProvider,
        String,
    )>,
    timeout: Duration,
}

impl Client {
    /// A client for `base` (no trailing slash); with `region`, requests are signed for `aps`.
    pub async fn new(
        base: &http::Uri,
        region: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, PromError> {
        let sign_err = |e: Box<dyn std::error::Error + Send + Sync>| PromError::Sign { source: e };
        // The bundled web roots (AMP chains to Amazon's) plus any system ones: see opsteps::tls.
        let tls = opsteps::tls::roots()
            .client_config()
            .map_err(|e| PromError::Transport {
                url: base.to_string(),
                source: e.into(),
            })?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        let signer = match region {
            Some(r) => {
                let sdk = opsteps::aws::sdk_config(Some(r)).await;
                let provider = sdk
                    .credentials_provider()
                    .ok_or_else(|| sign_err("the AWS credential chain is empty".into()))?;
                Some((provider, r.to_owned()))
            }
            None => None,
        };
        Ok(Self {
            base: base.to_string().trim_end_matches('/').to_owned(),
            http,
            signer,
            timeout,
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<Bytes, PromError> {
        let url = format!("{}{path_and_query}", self.base);
        let transport = |e: Box<dyn std::error::Error + Send + Sync>| PromError::Transport {
            url: url.clone(),
            source: e,
        };
        let mut req = http::Request::get(&url)
            .body(Empty::<Bytes>::new())
            .map_err(|e| transport(e.into()))?;
        if let Some((provider, region)) = &self.signer {
            let creds = provider
                .provide_credentials()
                .await
                .map_err(|e| PromError::Sign { source: e.into() })?;
            let identity = creds.into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(region)
                .name("aps")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .map_err(|e| PromError::Sign { source: e.into() })?
                .into();
            let host = req
                .uri()
                .authority()
                .map(ToString::to_string)
                .unwrap_or_default();
            let headers = [("host", host.as_str())];
            let signable =
                SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
                    .map_err(|e| PromError::Sign { source: e.into() })?;
            let (instructions, _) = sign(signable, &params)
                .map_err(|e| PromError::Sign { source: e.into() })?
                .into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
        let fut = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| transport(e.into()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(transport)?
                .to_bytes();
            if status != http::StatusCode::OK {
                return Err(PromError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(PromError::Timeout {
                    url: url.clone(),
                    seconds: self.timeout.as_secs(),
                })
            })
    }

    /// Every family over `[start, end]` (Unix seconds), grouped per node.
    #[instrument(skip_all, fields(base = %self.base), err)]
    pub async fn window(
        &self,
        start: f64,
        end: f64,
    ) -> Result<(BTreeMap<String, Vec<Snapshot>>, u64), PromError> {
        let span = (end - start).max(1.0) as u64;
        let step = (span / MAX_POINTS + 1).max(30);
        let mut points = Vec::new();
        let mut queries = 0;
        for fam in FAMILIES {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("query", fam)
                .append_pair("start", &format!("{start:.3}"))
                .append_pair("end", &format!("{end:.3}"))
                .append_pair("step", &format!("{step}s"))
                .finish();
            let path = format!("/api/v1/query_range?{q}");
            let body = self.get(&path).await?;
            queries += 1;
            points.extend(parse_response(&body, &format!("{}{path}", self.base))?);
        }
        Ok((snapshots(points, start), queries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_matrices_and_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"DCGM_FI_DEV_GPU_UTIL","Hostname":"n1","UUID":"GPU-a","gpu":"0"},
             "values":[[1700000000,"5"],[1700000030,"NaN"],[1700000060,"+Inf"]]}]}}"#;
        let pts = parse_response(body, "u").unwrap();
        assert_eq!(pts.len(), 3);
        assert!(pts[1].1.value.is_nan());
        assert!(pts[2].1.value.is_infinite());
        let snaps = snapshots(pts, 1_700_000_000.0);
        assert_eq!(snaps["n1"].len(), 3);
        assert!((snaps["n1"][2].at_seconds - 60.0).abs() < 1e-9);
        let err = parse_response(br#"{"status":"error","error":"bad query"}"#, "u").unwrap_err();
        assert!(err.to_string().contains("bad query"), "{err}");
        assert!(parse_response(b"<html>", "u").is_err());
    }
}
