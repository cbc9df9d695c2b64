//! Shared helpers for the sandbox's API tests: a raw HTTP client (plain-HTTP sandboxes, so the
//! tests see exactly what the server sent) and object builders.
#![allow(dead_code)]
// Builders take JSON by value so call sites can pass `json!(...)` inline.
#![allow(clippy::needless_pass_by_value)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use serde_json::{Value, json};

/// A plain-HTTP sandbox without controllers: state changes only through the API.
pub async fn sandbox() -> Sandbox {
    Sandbox::start(Options::default().tls(false).controllers(false))
        .await
        .expect("sandbox starts")
}

/// A response: status, headers, body as JSON (or a JSON string of the text).
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

fn addr(sb: &Sandbox) -> String {
    sb.url().trim_start_matches("http://").to_owned()
}

/// Sends one request with `token` (None: no Authorization header).
pub async fn send_as(
    sb: &Sandbox,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    send_headers(sb, token, method, path, body, &[]).await
}

/// Sends one request with extra headers.
pub async fn send_headers(
    sb: &Sandbox,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> Resp {
    let resp = raw(sb, token, method, path, body, headers)
        .await
        .expect("request is answered");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Resp {
        status,
        headers,
        body,
    }
}

/// The raw response (for streaming watches), or the connection error.
pub async fn raw(
    sb: &Sandbox,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
    let a = addr(sb);
    let stream = tokio::net::TcpStream::connect(&a).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, a.as_str());
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (ct, data) = body.unwrap_or(("application/json", Vec::new()));
    let req = b
        .header(header::CONTENT_TYPE, ct)
        .body(Full::new(Bytes::from(data)))
        .expect("request");
    sender.send_request(req).await
}

/// As the admin.
pub async fn get(sb: &Sandbox, path: &str) -> Resp {
    send_as(sb, Some(sb.admin_token()), Method::GET, path, None).await
}

pub async fn post(sb: &Sandbox, path: &str, body: &Value) -> Resp {
    send_as(
        sb,
        Some(sb.admin_token()),
        Method::POST,
        path,
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

pub async fn put(sb: &Sandbox, path: &str, body: &Value) -> Resp {
    send_as(
        sb,
        Some(sb.admin_token()),
        Method::PUT,
        path,
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

pub async fn patch(sb: &Sandbox, path: &str, content_type: &str, body: &Value) -> Resp {
    send_as(
        sb,
        Some(sb.admin_token()),
        Method::PATCH,
        path,
        Some((content_type, body.to_string().into_bytes())),
    )
    .await
}

pub async fn delete(sb: &Sandbox, path: &str, body: Option<&Value>) -> Resp {
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    send_as(sb, Some(sb.admin_token()), Method::DELETE, path, body).await
}

/// Asserts the status code, showing the body on failure.
#[track_caller]
pub fn expect(r: &Resp, code: u16) -> &Value {
    assert_eq!(r.status, code, "unexpected status; body: {}", r.body);
    &r.body
}

pub fn ns_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn node_obj(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": "2026-11-26T10:00:00Z", "lastTransitionTime": "2026-11-26T10:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.4-eks-3025e55", "osImage": "Amazon Linux 2023", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0",
                         "architecture": "amd64", "bootID": "b", "kubeProxyVersion": "v1.33.4", "machineID": "m", "operatingSystem": "linux", "systemUUID": "s"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "58"},
            "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "58"},
        },
    })
}

pub fn pod_obj(ns: &str, name: &str, node: Option<&str>, labels: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    });
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

/// Creates a namespace (ignoring AlreadyExists).
pub async fn ensure_ns(sb: &Sandbox, name: &str) {
    let r = post(sb, "/api/v1/namespaces", &ns_obj(name)).await;
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
}

/// Creates a pod and marks it Running and Ready (as a kubelet would) through `/status`.
pub async fn running_pod(sb: &Sandbox, ns: &str, name: &str, node: &str, labels: Value) -> Value {
    ensure_ns(sb, ns).await;
    let r = post(
        sb,
        &format!("/api/v1/namespaces/{ns}/pods"),
        &pod_obj(ns, name, Some(node), labels),
    )
    .await;
    expect(&r, 201);
    set_pod_status(sb, ns, name, "Running", true).await
}

/// Sets a pod's phase and Ready condition through the status subresource.
pub async fn set_pod_status(sb: &Sandbox, ns: &str, name: &str, phase: &str, ready: bool) -> Value {
    let status = json!({"status": {
        "phase": phase,
        "podIP": "10.1.0.5",
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-11-26T10:00:00Z"}],
        "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 0, "image": "nginx:1.27", "imageID": "", "started": ready, "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}],
    }});
    let r = patch(
        sb,
        &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        "application/merge-patch+json",
        &status,
    )
    .await;
    expect(&r, 200).clone()
}

/// Creates a PDB and sets its status as the disruption controller would.
pub async fn pdb(sb: &Sandbox, ns: &str, name: &str, selector: Value, status: Value) -> Value {
    let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns},
                      "spec": {"selector": selector, "minAvailable": 1}});
    let r = post(
        sb,
        &format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
        &body,
    )
    .await;
    expect(&r, 201);
    let r = patch(
        sb,
        &format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}/status"),
        "application/merge-patch+json",
        &json!({"status": status}),
    )
    .await;
    expect(&r, 200).clone()
}
