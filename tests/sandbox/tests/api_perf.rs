//! The paged-list budget of the issue: 18,000 pods in pages of 500 in under 2 s (release
//! build). Ignored by default; `just bench` is the real benchmark.

mod common;

use std::time::Instant;

use opsteps_sandbox::resources::well_known;
use serde_json::{Value, json};

fn pod(i: usize) -> Value {
    let ns = format!("ns-{}", i % 40);
    json!({
        "metadata": {"name": format!("app-{i:05}-x7k2p"), "namespace": ns, "labels": {"app": format!("app-{}", i % 300), "pod-template-hash": "5d9c7b8f6"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{}-5d9c7b8f6", i % 300), "uid": "u", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": format!("ip-10-0-{}-{}.ec2.internal", i / 2000, i % 250), "containers": [{"name": "app", "image": "registry.example/app:1.2.3",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler", "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3", "hostIP": "10.0.0.1", "qosClass": "Burstable", "startTime": "2026-11-26T08:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T08:00:10Z"}, {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-26T08:00:00Z"}],
                   "containerStatuses": [{"name": "app", "ready": true, "started": true, "restartCount": 0, "image": "registry.example/app:1.2.3", "imageID": "sha256:abc", "containerID": "containerd://abc", "state": {"running": {"startedAt": "2026-11-26T08:00:05Z"}}}]},
    })
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release --ignored"]
async fn paged_list_of_18000_pods() {
    let sb = common::sandbox().await;
    sb.with(|c| {
        let now = c.now();
        for i in 0..18_000 {
            c.store.create(well_known::pods(), pod(i), &now).unwrap();
        }
    });
    let start = Instant::now();
    let mut total = 0;
    let mut path = "/api/v1/pods?limit=500".to_owned();
    loop {
        let r = common::get(&sb, &path).await;
        assert_eq!(r.status, 200);
        total += r.body["items"].as_array().unwrap().len();
        match r.body["metadata"]["continue"].as_str() {
            Some(c) => path = format!("/api/v1/pods?limit=500&continue={c}"),
            None => break,
        }
    }
    let took = start.elapsed();
    eprintln!("listed {total} pods in pages of 500 in {took:?}");
    assert_eq!(total, 18_000);
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 2.0, "{took:?}");
    }
}

/// The same against the generated `large.yaml` (2,000 nodes, 18,000 pods), controllers on.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release --ignored"]
async fn paged_list_of_the_large_scenario() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/large.yaml");
    let scenario = opsteps_sandbox::scenario::Scenario::from_file(&path).unwrap();
    let t = Instant::now();
    let sb = opsteps_sandbox::sandbox::Sandbox::start(
        opsteps_sandbox::sandbox::Options::default()
            .scenario(scenario)
            .tls(false),
    )
    .await
    .unwrap();
    eprintln!("started in {:?}", t.elapsed());
    let start = Instant::now();
    let mut total = 0;
    let mut path = "/api/v1/pods?limit=500".to_owned();
    loop {
        let r = common::get(&sb, &path).await;
        assert_eq!(r.status, 200);
        total += r.body["items"].as_array().unwrap().len();
        match r.body["metadata"]["continue"].as_str() {
            Some(c) => path = format!("/api/v1/pods?limit=500&continue={c}"),
            None => break,
        }
    }
    let took = start.elapsed();
    eprintln!("listed {total} pods in pages of 500 in {took:?}");
    assert!(total >= 18_000);
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 2.0, "{took:?}");
    }
}

/// Server-side cost only: pages fetched as bytes, the continue token cut out without parsing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release --ignored"]
async fn paged_list_server_side_only() {
    use http_body_util::BodyExt;
    let sb = common::sandbox().await;
    sb.with(|c| {
        let now = c.now();
        for i in 0..18_000 {
            c.store.create(well_known::pods(), pod(i), &now).unwrap();
        }
    });
    let start = Instant::now();
    let (mut bytes, mut pages) = (0, 0);
    let mut path = "/api/v1/pods?limit=500".to_owned();
    loop {
        let r = common::raw(
            &sb,
            Some(sb.admin_token()),
            http::Method::GET,
            &path,
            None,
            &[],
        )
        .await
        .unwrap();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        bytes += body.len();
        pages += 1;
        let head = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
        match head
            .split("\"continue\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            Some(c) => path = format!("/api/v1/pods?limit=500&continue={c}"),
            None => break,
        }
    }
    eprintln!(
        "{pages} pages, {} MiB in {:?}",
        bytes >> 20,
        start.elapsed()
    );
    assert_eq!(pages, 36);
}
