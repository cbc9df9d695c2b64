//! `pods/proxy`: `GET /api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy/{path}` forwards to
//! `http://<podIP>:<port>/{path}` as the apiserver does, so a scrape through the API returns the
//! bytes the pod itself serves.

use std::time::Duration;

use axum::body::Body;
use http::{Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::{PORT, is_exporter};
use crate::cluster::Shared;
use crate::resources::well_known;

/// How long to wait for the pod to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest body forwarded.
const MAX_BODY: usize = 64 << 20;

fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: &serde_json::Value,
) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": details, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts")
}

/// Where a `pods/proxy` request goes: the pod's IP and port, or the error response.
fn target(
    shared: &Shared,
    namespace: &str,
    name_port: &str,
) -> Result<String, Box<Response<Body>>> {
    let (name, port) = match name_port.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (name_port, None),
    };
    let c = shared.lock();
    let Some(pod) = c.store.get(well_known::pods(), namespace, name) else {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            &json!({"name": name, "kind": "pods"}),
        )));
    };
    // The apiserver's choice without a port: the first declared container port; sandbox pods
    // declare none, so exporter pods default to 9400 and anything else to 80.
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                return Err(Box::new(status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("invalid port {p:?}"),
                    &json!({}),
                )));
            }
        },
        None => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .map_or(if is_exporter(&pod) { PORT } else { 80 }, |p| p as u16),
    };
    let ip = pod["status"]["podIP"].as_str().unwrap_or("");
    if ip.is_empty() {
        return Err(Box::new(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("error trying to reach service: pod {name} has no IP address"),
            &json!({}),
        )));
    }
    Ok(format!("{ip}:{port}"))
}

/// Forwards a GET to the pod and returns its status, content type and body, or a Status error
/// (404 no such pod, 503 unreachable) as the apiserver would.
pub async fn pod_proxy(
    shared: &Shared,
    namespace: &str,
    name_port: &str,
    path_and_query: &str,
) -> Response<Body> {
    let addr = match target(shared, namespace, name_port) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    match tokio::time::timeout(TIMEOUT, fetch(&addr, &path)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("error trying to reach service: dial tcp {addr}: {e}"),
            &json!({}),
        ),
        Err(_) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("error trying to reach service: dial tcp {addr}: i/o timeout"),
            &json!({}),
        ),
    }
}

async fn fetch(addr: &str, path: &str) -> anyhow::Result<Response<Body>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path)
        .header(header::HOST, addr)
        .body(Body::empty())?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY).await?;
    let mut out = Response::builder().status(parts.status);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    Ok(out.body(Body::from(bytes))?)
}
