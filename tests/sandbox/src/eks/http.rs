//! The EKS listener: plain HTTP on 127.0.0.1, restJson1 routing, SigV4 presence check, injected
//! faults, and errors as aws-sdk-eks parses them (`X-Amzn-Errortype` + `{"message"}`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::EksRequest;
use super::ops::{self, EksError, Req};
use crate::cluster::{Cluster, Shared};

/// The running EKS API.
pub struct EksServer {
    /// Bound address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl EksServer {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_EKS` or `endpoint_url`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and ticking.
    pub fn abort(&self) {
        self.task.abort();
        self.ticker.abort();
    }
}

impl Drop for EksServer {
    fn drop(&mut self) {
        self.abort();
    }
}

pub(super) async fn serve(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    ticker: JoinHandle<()>,
) -> anyhow::Result<EksServer> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(handle).with_state(shared);
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "EKS API server stopped");
        }
    });
    tracing::info!(url = %format!("http://{addr}"), "EKS API listening");
    Ok(EksServer { addr, task, ticker })
}

type Op = fn(&mut Cluster, &Req) -> Result<Value, EksError>;

/// (operation name, handler, path labels) for a method and decoded path segments.
fn route(method: &Method, segs: &[String]) -> Option<(&'static str, Op, Vec<String>)> {
    let path: Vec<&str> = segs.iter().map(String::as_str).collect();
    let l = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    Some(match (method.as_str(), path.as_slice()) {
        ("GET", ["clusters"]) => ("ListClusters", ops::list_clusters, vec![]),
        ("GET", ["clusters", c]) => ("DescribeCluster", ops::describe_cluster, l(&[c])),
        ("POST", ["clusters", c, "updates"]) => {
            ("UpdateClusterVersion", ops::update_cluster_version, l(&[c]))
        }
        ("GET", ["clusters", c, "updates"]) => ("ListUpdates", ops::list_updates, l(&[c])),
        ("GET", ["clusters", c, "updates", id]) => {
            ("DescribeUpdate", ops::describe_update, l(&[c, id]))
        }
        ("GET", ["clusters", c, "node-groups"]) => {
            ("ListNodegroups", ops::list_nodegroups, l(&[c]))
        }
        ("POST", ["clusters", c, "node-groups"]) => {
            ("CreateNodegroup", ops::create_nodegroup, l(&[c]))
        }
        ("GET", ["clusters", c, "node-groups", g]) => {
            ("DescribeNodegroup", ops::describe_nodegroup, l(&[c, g]))
        }
        ("DELETE", ["clusters", c, "node-groups", g]) => {
            ("DeleteNodegroup", ops::delete_nodegroup, l(&[c, g]))
        }
        ("POST", ["clusters", c, "node-groups", g, "update-config"]) => (
            "UpdateNodegroupConfig",
            ops::update_nodegroup_config,
            l(&[c, g]),
        ),
        ("POST", ["clusters", c, "node-groups", g, "update-version"]) => (
            "UpdateNodegroupVersion",
            ops::update_nodegroup_version,
            l(&[c, g]),
        ),
        ("GET", ["clusters", c, "addons"]) => ("ListAddons", ops::list_addons, l(&[c])),
        ("GET", ["clusters", c, "addons", a]) => ("DescribeAddon", ops::describe_addon, l(&[c, a])),
        ("POST", ["clusters", c, "addons", a, "update"]) => {
            ("UpdateAddon", ops::update_addon, l(&[c, a]))
        }
        ("GET", ["addons", "supported-versions"]) => (
            "DescribeAddonVersions",
            ops::describe_addon_versions,
            vec![],
        ),
        ("GET", ["addons", "configuration-schemas"]) => (
            "DescribeAddonConfiguration",
            ops::describe_addon_configuration,
            vec![],
        ),
        ("POST", ["clusters", c, "insights"]) => ("ListInsights", ops::list_insights, l(&[c])),
        ("GET", ["clusters", c, "insights", id]) => {
            ("DescribeInsight", ops::describe_insight, l(&[c, id]))
        }
        _ => return None,
    })
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The region of a SigV4 `Authorization` header's credential scope, or the error to answer.
fn sigv4_region(auth: Option<&str>) -> Result<String, EksError> {
    let Some(auth) = auth else {
        return Err(EksError::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = || {
        EksError::new(
            403,
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of AWS4-HMAC-SHA256. Authorization={auth}"
            ),
        )
    };
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(incomplete)?;
    let mut credential = None;
    let (mut signed, mut signature) = (false, false);
    for part in rest.split(',').map(str::trim) {
        if let Some(c) = part.strip_prefix("Credential=") {
            credential = Some(c);
        } else if part.starts_with("SignedHeaders=") {
            signed = true;
        } else if part.starts_with("Signature=") {
            signature = true;
        }
    }
    let scope: Vec<&str> = credential.ok_or_else(incomplete)?.split('/').collect();
    if !(signed && signature) || scope.len() != 5 || scope[3] != "eks" {
        return Err(incomplete());
    }
    Ok(scope[2].to_owned())
}

fn respond(status: u16, body: &Value, error: Option<&str>, request_id: &str) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-amzn-requestid", request_id);
    if let Some(e) = error {
        b = b.header("x-amzn-errortype", e);
    }
    b.body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let segs: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    if crate::ec2::is_query(&parts.method, parts.uri.path()) {
        return crate::ec2::handle(&shared, &parts.headers, &bytes);
    }
    let routed = route(&parts.method, &segs);
    let op_name = routed.as_ref().map_or_else(
        || format!("{} {}", parts.method, parts.uri.path()),
        |(n, _, _)| (*n).to_owned(),
    );
    let mut c = shared.lock();
    super::tick(&mut c);
    let request_id = c.eks.next_id();
    let result = (|| {
        let region = sigv4_region(auth.as_deref())?;
        let Some((name, op, labels)) = routed else {
            return Err(EksError::new(
                404,
                "UnknownOperationException",
                format!("No operation matches {} {}", parts.method, parts.uri.path()),
            ));
        };
        if let Some(f) = c.eks.fault_for(name) {
            return Err(EksError::new(f.status, &f.error, f.message));
        }
        let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                EksError::new(
                    400,
                    "SerializationException",
                    format!("Request body is not JSON: {e}"),
                )
            })?
        };
        let r = Req {
            labels,
            query,
            body,
            region,
        };
        op(&mut c, &r)
    })();
    let (status, error, resp) = match result {
        Ok(v) => (200, None, respond(200, &v, None, &request_id)),
        Err(e) => {
            let mut body = e.extra.clone();
            body.insert("message".into(), json!(e.message));
            let resp = respond(e.status, &Value::Object(body), Some(&e.kind), &request_id);
            (e.status, Some(e.kind), resp)
        }
    };
    let virtual_time = c.now();
    tracing::debug!(operation = %op_name, status, error = ?error, "EKS request");
    c.eks.requests.push(EksRequest {
        operation: op_name,
        status,
        error,
        virtual_time,
    });
    resp
}
