//! Against a tiny local HTTP stub that answers SelfSubjectAccessReviews from an allow-list, as
//! the API server does for a least-privilege role.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::exit::ExitStatus;

type Seen = Arc<Mutex<Vec<Value>>>;

/// Serves `POST .../selfsubjectaccessreviews`: allowed when `allow(attributes)`; any other
/// path gets `status`.
async fn stub(allow: fn(&Value) -> bool, status: u16) -> (Client, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                    buf.drain(..end + 4 + len);
                    let ssar = head
                        .starts_with("post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
                    let (code, reply) = if ssar && status == 201 {
                        let attrs = body["spec"]["resourceAttributes"].clone();
                        log.lock().unwrap().push(attrs.clone());
                        let mut r = body.clone();
                        r["status"] = json!({ "allowed": allow(&attrs) });
                        (201, r)
                    } else {
                        (
                            status,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "code": status, "reason": "NotFound", "message": "the server could not find the requested resource"}),
                        )
                    };
                    let text = reply.to_string();
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client =
        crate::connect::build_client(kube::Config::new(url.parse().unwrap()), None).unwrap();
    (client, seen)
}

fn needed() -> Vec<Permission> {
    vec![
        Permission::new("list", "", "nodes"),
        Permission::new("patch", "", "nodes"),
        Permission::new("create", "", "pods").subresource("eviction"),
        Permission::new("watch", "policy", "poddisruptionbudgets"),
        Permission::new("create", "", "events").namespace("kube-system"),
    ]
}

#[tokio::test]
async fn every_missing_permission_is_named_and_the_step_stops_with_exit_2() {
    // A role with list nodes and create events only.
    let (client, seen) = stub(
        |a| {
            matches!(
                (a["verb"].as_str(), a["resource"].as_str()),
                (Some("list"), Some("nodes")) | (Some("create"), Some("events"))
            )
        },
        201,
    )
    .await;
    let e = require(&client, &needed(), &RetryPolicy::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), ExitStatus::BadInput);
    let msg = e.to_string();
    for want in [
        "patch nodes",
        "create pods/eviction",
        "watch poddisruptionbudgets.policy",
    ] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    assert!(
        !msg.contains("list nodes") && !msg.contains("create events"),
        "{msg}"
    );
    // The attributes reached the server as asked.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    let eviction = seen
        .iter()
        .find(|a| a["subresource"] == "eviction")
        .expect("eviction review");
    assert_eq!(eviction["verb"], "create");
    assert_eq!(eviction["group"], "");
    assert!(eviction.get("namespace").is_none_or(Value::is_null));
    let events = seen.iter().find(|a| a["resource"] == "events").unwrap();
    assert_eq!(events["namespace"], "kube-system");
}

#[tokio::test]
async fn all_allowed_passes() {
    let (client, _) = stub(|_| true, 201).await;
    require(&client, &needed(), &RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        missing(&client, &needed(), &RetryPolicy::default())
            .await
            .unwrap(),
        Some(vec![])
    );
}

#[tokio::test]
async fn without_the_endpoint_the_check_is_skipped() {
    let (client, _) = stub(|_| false, 404).await;
    assert_eq!(
        missing(&client, &needed(), &RetryPolicy::default())
            .await
            .unwrap(),
        None
    );
    require(&client, &needed(), &RetryPolicy::default())
        .await
        .unwrap();
}

#[test]
fn permissions_read_like_rbac_rules() {
    let p = Permission::new("create", "", "pods").subresource("eviction");
    assert_eq!(p.to_string(), "create pods/eviction");
    let p = Permission::new("watch", "policy", "poddisruptionbudgets").namespace("web");
    assert_eq!(
        p.to_string(),
        "watch poddisruptionbudgets.policy (namespace web)"
    );
}
