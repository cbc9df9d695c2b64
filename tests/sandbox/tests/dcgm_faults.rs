//! dcgm-exporter failure modes a collector must survive, as the scenario's `gpu.nodes[].exporter`
//! and `podMapping` give them, and the S3 side a GPU report lands on: the request log and the
//! `NoSuchBucket` answer for a bucket that does not exist.

use std::time::Duration;

use opsteps_sandbox::dcgm;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const SCENARIO: &str = r#"
cluster: {name: gpu-faults}
clock: {start: "2026-11-26T10:00:00Z", scale: 1}
nodeGroups:
  - {name: a10g, count: 4, instanceType: g5.xlarge, taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]}
workloads:
  - {kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {app: nvidia-dcgm-exporter},
     tolerations: [{operator: Exists}], requests: {cpu: 100m, memory: 128Mi}}
  - {kind: Deployment, name: job, namespace: ml, replicas: 4, requests: {cpu: "1", memory: 1Gi, gpu: 1},
     tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]}
gpu:
  nodes:
    - {node: a10g-0, exporter: down}
    - {node: a10g-1, exporter: hang}
    - {node: a10g-2, podMapping: false}
"#;

/// Exporter pods by node: (namespace, name, pod IP).
fn exporters(sb: &Sandbox) -> std::collections::BTreeMap<String, (String, String, String)> {
    sb.with(|c| {
        c.store
            .list(well_known::pods(), None)
            .filter(|p| dcgm::is_exporter(p))
            .map(|p| {
                let (ns, name) = opsteps_sandbox::podutil::ns_name(p);
                let node = opsteps_sandbox::podutil::node_name(p).unwrap().to_owned();
                let ip = p["status"]["podIP"].as_str().unwrap_or("").to_owned();
                (node, (ns.to_owned(), name.to_owned(), ip))
            })
            .collect()
    })
}

async fn start() -> Sandbox {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(SCENARIO).unwrap()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sb.dcgm().listening().len() < 3 || exporters(&sb).values().any(|(_, _, ip)| ip.is_empty())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "exporters did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sb
}

async fn get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_refuses_hang_never_answers_and_unmapped_has_no_pod_labels() {
    let sb = start().await;
    let ex = exporters(&sb);
    assert_eq!(sb.dcgm().listening().len(), 3, "a10g-0's exporter is down");
    let (_, _, ip0) = &ex["a10g-0"];
    let e = get(&format!("{ip0}:9400")).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");

    let (_, _, ip1) = &ex["a10g-1"];
    let hung = tokio::time::timeout(Duration::from_secs(2), get(&format!("{ip1}:9400"))).await;
    assert!(hung.is_err(), "a hung exporter answered: {hung:?}");

    let (_, _, ip2) = &ex["a10g-2"];
    let body = get(&format!("{ip2}:9400")).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    assert!(body.contains("DCGM_FI_DEV_GPU_UTIL{"), "{body}");
    assert!(!body.contains("pod=\""), "no pod mapping: {body}");

    // A working exporter on a held GPU does carry the pod labels.
    let (_, _, ip3) = &ex["a10g-3"];
    let body = get(&format!("{ip3}:9400")).await.unwrap();
    assert!(body.contains("namespace=\"ml\",pod=\"job-"), "{body}");

    // pods/proxy to the down exporter: the apiserver's 503 Status, at once (kube-rs clients
    // retry 503, so the handler is called directly).
    let (ns, name, _) = &ex["a10g-0"];
    let resp = dcgm::pod_proxy(&sb.shared(), ns, &format!("{name}:9400"), "/metrics").await;
    assert_eq!(resp.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_logs_requests_and_refuses_puts_into_missing_buckets() {
    let sb = Sandbox::start(Options::default()).await.unwrap();
    let url = sb.s3_bucket("gpu-reports").await.unwrap();
    let creds = aws_sdk_s3::config::Credentials::new(
        opsteps_sandbox::s3::ACCESS_KEY,
        opsteps_sandbox::s3::SECRET_KEY,
        None,
        None,
        "sandbox",
    );
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(opsteps_sandbox::s3::REGION))
        .endpoint_url(url)
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    s3.put_object()
        .bucket("gpu-reports")
        .key("a/b.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let e = s3
        .put_object()
        .bucket("no-such-bucket")
        .key("a/b.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap_err();
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e);
    assert_eq!(code, Some("NoSuchBucket"), "{e:?}");
    assert!(
        !sb.s3()
            .await
            .unwrap()
            .root()
            .join("no-such-bucket")
            .exists()
    );
    let log = sb.s3().await.unwrap().requests();
    let puts: Vec<&str> = log
        .iter()
        .filter(|r| r.is_mutation())
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(puts, ["/gpu-reports/a/b.json", "/no-such-bucket/a/b.json"]);
}
