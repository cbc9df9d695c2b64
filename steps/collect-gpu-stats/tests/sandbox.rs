//! collect-gpu-stats end to end against the sandbox: the binary scrapes the sandbox's
//! dcgm-exporter endpoints (directly and through pods/proxy), and the report is read back from
//! the sandbox's S3 with aws-sdk-s3. Asserts on states, owners, data-quality counts, exit codes,
//! the S3 request log (the upload is the only mutation) and the audit log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_collect-gpu-stats");
const BUCKET: &str = "gpu-reports";
const NOW: &str = "2026-11-26T10:15:00Z";

const TAINT: &str = "[{key: nvidia.com/gpu, value: \"true\", effect: NoSchedule}]";
const TOLERATE: &str = "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]";

/// Busy, idle-held and idle GPUs with owners of four kinds on h100-0; an idle H100 with an XID;
/// an A100 with MIG under the Helm chart's exporter; three A10G nodes whose exporter is down,
/// hangs, or has no pod mapping; a GPU node with no exporter at all.
fn scenario() -> String {
    format!(
        r#"
cluster: {{name: gpu-e2e}}
clock: {{start: "2026-11-26T10:00:00Z", scale: 1}}
nodeGroups:
  - {{name: h100, count: 2, instanceType: p5.48xlarge, labels: {{workload: gpu, gpu-stack: operator}}, taints: {TAINT}}}
  - {{name: a100mig, count: 1, instanceType: p4d.24xlarge, labels: {{workload: gpu-mig, gpu-stack: helm}}, taints: {TAINT}}}
  - {{name: a10g, count: 3, instanceType: g5.xlarge, labels: {{workload: gpu-small, gpu-stack: operator}}, taints: {TAINT}}}
  - {{name: bare, count: 1, instanceType: g5.2xlarge, labels: {{workload: gpu-bare}}, taints: {TAINT}}}
  - {{name: cpu, count: 1, instanceType: m5.xlarge}}
workloads:
  - {{kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {{app: nvidia-dcgm-exporter}},
     image: "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04",
     nodeSelector: {{gpu-stack: operator}}, tolerations: [{{operator: Exists}}], requests: {{cpu: 100m, memory: 128Mi}}}}
  - {{kind: DaemonSet, name: dcgm-exporter, namespace: gpu-monitoring, labels: {{app.kubernetes.io/name: dcgm-exporter}},
     image: "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
     nodeSelector: {{gpu-stack: helm}}, tolerations: [{{operator: Exists}}], requests: {{cpu: 100m, memory: 128Mi}}}}
  - {{kind: Deployment, name: trainer, namespace: ml, labels: {{app: trainer}}, requests: {{cpu: "8", memory: 64Gi, gpu: 4}},
     nodeSelector: {{workload: gpu}}, tolerations: {TOLERATE}, placement: {{nodes: [h100-0]}}}}
  - {{kind: Deployment, name: notebook, namespace: research, labels: {{app: notebook}}, requests: {{cpu: "1", memory: 8Gi, gpu: 2}},
     nodeSelector: {{workload: gpu}}, tolerations: {TOLERATE}, placement: {{nodes: [h100-0]}}}}
  - {{kind: StatefulSet, name: idler, namespace: research, labels: {{app: idler}}, requests: {{cpu: "1", memory: 8Gi, gpu: 1}},
     nodeSelector: {{workload: gpu}}, tolerations: {TOLERATE}, placement: {{nodes: [h100-0]}}}}
  - {{kind: Pod, name: train-abc-123, namespace: argo, labels: {{workflows.argoproj.io/workflow: train-abc}},
     requests: {{cpu: "1", memory: 8Gi, gpu: 1}}, nodeSelector: {{workload: gpu-mig}}, tolerations: {TOLERATE}}}
  - {{kind: Deployment, name: lost, namespace: ml, labels: {{app: lost}}, requests: {{cpu: "1", memory: 1Gi, gpu: 1}},
     nodeSelector: {{workload: gpu-small}}, tolerations: {TOLERATE}, placement: {{nodes: [a10g-2]}}}}
  - {{kind: Deployment, name: blind, namespace: ml, labels: {{app: blind}}, requests: {{cpu: "1", memory: 1Gi, gpu: 1}},
     nodeSelector: {{workload: gpu-small}}, tolerations: {TOLERATE}, placement: {{nodes: [a10g-0]}}}}
gpu:
  interval: 1h
  workloads:
    - {{namespace: ml, labels: {{app: trainer}}, load: {{util: [90, 99], fbUsed: 74166}}}}
    - {{namespace: research, labels: {{app: notebook}}, load: {{util: 0, fbUsed: 70000}}}}
    - {{namespace: research, labels: {{app: idler}}, load: {{util: 0, fbUsed: 300}}}}
    - {{namespace: argo, load: {{util: [60, 70]}}}}
  nodes:
    - {{node: h100-1, xid: [{{gpu: 3, code: 79}}]}}
    - {{nodeGroup: a100mig, mig: [{{gpu: 0, profile: 1g.5gb, id: 13}}]}}
    - {{node: a10g-0, exporter: down}}
    - {{node: a10g-1, exporter: hang}}
    - {{node: a10g-2, podMapping: false}}
"#
    )
}

async fn start(yaml: &str) -> Sandbox {
    let s = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("scenario: {e:#}\n{yaml}"));
    let sb = Sandbox::start(Options::default().scenario(s))
        .await
        .expect("sandbox starts");
    sb.s3_bucket(BUCKET).await.expect("S3 bucket");
    sb
}

/// Waits (real time) until every Running exporter pod that should listen is served, and every
/// GPU-requesting pod is Running, so the run sees a settled cluster.
async fn settle(sb: &Sandbox, listening: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending = sb.with(|c| {
            c.store
                .list(opsteps_sandbox::resources::well_known::pods(), None)
                .filter(|p| opsteps_sandbox::podutil::phase(p) != "Running")
                .count()
        });
        if pending == 0 && sb.dcgm().listening().len() >= listening {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not settle: {pending} pods not Running, {} exporters listening",
            sb.dcgm().listening().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Run {
    out: Output,
    result: Value,
    dir: tempfile::TempDir,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("out").join(name)).unwrap_or_default()
    }
    fn termination(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("termination-log")).unwrap_or_default()
    }
}

fn env(sb_s3: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL_S3".into(), sb_s3.into()),
        (
            "AWS_ACCESS_KEY_ID".into(),
            opsteps_sandbox::s3::ACCESS_KEY.into(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            opsteps_sandbox::s3::SECRET_KEY.into(),
        ),
        ("AWS_REGION".into(), opsteps_sandbox::s3::REGION.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

fn command(sb: &Sandbox, s3: &str, args: &[&str], dir: &Path) -> std::process::Command {
    let mut cmd = opsteps_testkit::clean_command(BIN);
    cmd.arg("--kubeconfig")
        .arg(sb.kubeconfig_path())
        .arg("--output-dir")
        .arg(dir.join("out"))
        .arg("--termination-log")
        .arg(dir.join("termination-log"))
        .args([
            "--now",
            NOW,
            "--scrape-timeout",
            "2s",
            "--cluster-name",
            "gpu-e2e",
        ])
        .args(args)
        .envs(env(s3));
    cmd
}

async fn run(sb: &Sandbox, args: &[&str]) -> Run {
    let s3 = sb.s3_url().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(sb, &s3, args, dir.path());
    // The sandbox serves on this runtime: wait for the child off its worker threads.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("runs the binary");
    opsteps_testkit::assert_no_panic(&out, "collect-gpu-stats");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON result ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run { out, result, dir }
}

async fn s3_client(sb: &Sandbox) -> aws_sdk_s3::Client {
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
        .endpoint_url(sb.s3_url().await.unwrap())
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Every object in the bucket: key → body.
async fn objects(sb: &Sandbox) -> BTreeMap<String, Vec<u8>> {
    let c = s3_client(sb).await;
    let list = c.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let mut out = BTreeMap::new();
    for o in list.contents() {
        let key = o.key().unwrap().to_owned();
        let body = c
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        out.insert(key, body.body.collect().await.unwrap().to_vec());
    }
    out
}

async fn s3_mutations(sb: &Sandbox) -> Vec<opsteps_sandbox::s3::S3Request> {
    sb.s3()
        .await
        .unwrap()
        .requests()
        .into_iter()
        .filter(opsteps_sandbox::s3::S3Request::is_mutation)
        .collect()
}

fn rows_by_pod_prefix<'a>(report: &'a Value, prefix: &str) -> Vec<&'a Value> {
    report["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["pods"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["pod"].as_str().unwrap().starts_with(prefix))
        })
        .collect()
}

fn states(rows: &[&Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["state"].as_str().unwrap().to_owned())
        .collect()
}

const REPORT_KEY: &str =
    "eks/gpu-report/cluster=gpu-e2e/date=2026-11-26/hour=10/20261126T101500Z.json";
const ROWS_KEY: &str = "eks/gpu-rows/cluster=gpu-e2e/date=2026-11-26/hour=10/20261126T101500Z.csv";

fn check_report(report: &Value, source: &str) {
    assert_eq!(report["schemaVersion"], 1);
    assert_eq!(report["cluster"], "gpu-e2e");
    assert_eq!(report["window"]["end"], NOW);
    assert_eq!(report["window"]["source"], source);
    // Whole GPUs on the 4 scraped nodes: h100-0 (8), h100-1 (8), a100mig-0 (8), a10g-2 (1).
    let t = &report["totals"];
    assert_eq!(t["gpus"], 25, "{t}");
    assert_eq!(
        t["active"], 6,
        "trainer 4, argo 1, the unmapped a10g-2 GPU 1: {t}"
    );
    assert_eq!(t["idleHeld"], 2, "{t}");
    assert_eq!(t["idle"], 1, "{t}");
    assert_eq!(t["unallocated"], 16, "{t}");
    assert_eq!(t["migInstances"], 1, "{t}");

    let trainer = rows_by_pod_prefix(report, "trainer-");
    assert_eq!(states(&trainer), vec!["active"; 4]);
    for r in &trainer {
        assert_eq!(
            r["owner"]["kind"], "Deployment",
            "ReplicaSet resolved to its Deployment"
        );
        assert_eq!(r["owner"]["name"], "trainer");
        assert!(r["utilPercent"]["mean"].as_f64().unwrap() >= 90.0, "{r}");
        assert_eq!(r["fbUsedMaxMib"], 74166.0);
        assert_eq!(r["model"], "NVIDIA H100 80GB HBM3");
    }
    let notebook = rows_by_pod_prefix(report, "notebook-");
    assert_eq!(states(&notebook), vec!["idle-held"; 2]);
    assert_eq!(notebook[0]["owner"]["name"], "notebook");
    let idler = rows_by_pod_prefix(report, "idler-");
    assert_eq!(states(&idler), vec!["idle"]);
    assert_eq!(idler[0]["owner"]["kind"], "StatefulSet");
    let argo = rows_by_pod_prefix(report, "train-abc-");
    assert_eq!(states(&argo), vec!["active"]);
    assert_eq!(argo[0]["owner"]["kind"], "Workflow");
    assert_eq!(argo[0]["owner"]["name"], "train-abc");
    assert_eq!(argo[0]["node"], "a100mig-0");

    // The MIG instance is a row of its own on the A100.
    let mig: Vec<&Value> = report["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["migInstance"].is_string())
        .collect();
    assert_eq!(mig.len(), 1);
    assert_eq!(mig[0]["migProfile"], "1g.5gb");
    assert_eq!(mig[0]["node"], "a100mig-0");

    // Owners roll-up: most GPUs first.
    let owners = report["owners"].as_array().unwrap();
    assert_eq!(owners[0]["name"], "trainer");
    assert_eq!(owners[0]["states"]["active"], 4);
    let nb = owners.iter().find(|o| o["name"] == "notebook").unwrap();
    assert_eq!(nb["states"]["idleHeld"], 2);
    assert_eq!(nb["idleHeldFbMib"], 140_000.0);
    let ns = report["namespaces"].as_array().unwrap();
    let research = ns.iter().find(|n| n["namespace"] == "research").unwrap();
    assert_eq!(research["states"]["gpus"], 3);

    // Health: the sticky XID 79 on h100-1 GPU 3.
    let health = report["health"].as_array().unwrap();
    assert!(
        health.iter().any(|h| h["node"] == "h100-1"
            && h["gpu"] == "3"
            && h["issue"] == "xid"
            && h["detail"].as_str().unwrap().contains("79")),
        "{health:?}"
    );

    // Cross-check: the a10g-2 exporter has no pod mapping; a10g-0 was not scraped.
    let a = &report["allocation"];
    let unattributed = a["unattributedPods"].as_array().unwrap();
    assert_eq!(unattributed.len(), 1, "{a}");
    assert!(
        unattributed[0]["pod"]
            .as_str()
            .unwrap()
            .starts_with("lost-")
    );
    assert_eq!(unattributed[0]["node"], "a10g-2");
    assert_eq!(a["podsOnUnscrapedNodes"], 1, "{a}");

    check_quality(report, source);
}

fn check_quality(report: &Value, source: &str) {
    let q = &report["dataQuality"];
    assert_eq!(q["gpuNodes"], 7, "{q}");
    assert_eq!(q["exporters"], 6, "{q}");
    assert_eq!(q["nodesScraped"], 4, "{q}");
    let failed: BTreeMap<String, String> = q["nodesFailed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["node"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let down = if source == "exporters-apiserver" {
        "proxy-error"
    } else {
        "unreachable"
    };
    let hang = "timeout";
    assert_eq!(
        failed,
        BTreeMap::from([
            ("a10g-0".to_owned(), down.to_owned()),
            ("a10g-1".to_owned(), hang.to_owned()),
            ("bare-0".to_owned(), "no-exporter".to_owned()),
        ]),
        "{q}"
    );
    assert_eq!(q["exporterSchemes"]["gpu-operator"], 5, "{q}");
    assert_eq!(q["exporterSchemes"]["helm"], 1, "{q}");
    assert_eq!(q["exporterVersions"]["4.4.1-4.6.0-ubuntu22.04"], 5, "{q}");
    assert_eq!(q["driverVersions"]["580.105.08"], 25, "{q}");
    assert_eq!(q["hostLabels"], serde_json::json!(["Hostname"]));
    assert_eq!(q["scrapesAttempted"], 6, "{q}");
    assert_eq!(q["scrapesSucceeded"], 3 + 1, "{q}");
    assert_eq!(q["gpusReported"], 25, "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_data_is_reported_uploaded_and_audited() {
    let sb = start(&scenario()).await;
    // 6 exporter pods, 5 listening (a10g-0's is down).
    settle(&sb, 5).await;
    let r = run(&sb, &["--s3-url", &format!("s3://{BUCKET}/eks/")]).await;
    assert_eq!(
        r.code(),
        Some(0),
        "partial data is exit 0: {}\n{}",
        r.result,
        String::from_utf8_lossy(&r.out.stderr)
    );

    // The report read back from S3 with aws-sdk-s3.
    let objs = objects(&sb).await;
    assert_eq!(
        objs.keys().cloned().collect::<Vec<_>>(),
        vec![REPORT_KEY.to_owned(), ROWS_KEY.to_owned()]
    );
    let report: Value = serde_json::from_slice(&objs[REPORT_KEY]).unwrap();
    check_report(&report, "exporters-direct");
    // The same report is written locally.
    let local: Value = serde_json::from_str(&r.file("report.json")).unwrap();
    assert_eq!(local, report);

    // CSV rows: a header and one line per GPU and MIG instance.
    let csv = String::from_utf8(objs[ROWS_KEY].clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("schema_version,cluster,window_end"));
    assert_eq!(lines.len(), 1 + 25 + 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",idle-held,research,notebook-"))
    );

    // stdout result and summary.
    assert_eq!(r.result["status"], "done");
    assert_eq!(r.result["uploaded"].as_array().unwrap().len(), 2);
    let summary = r.result["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("25 GPUs on 4 nodes: 6 active, 2 idle-held (research/notebook-"),
        "{summary}"
    );
    assert!(summary.contains("holds 68 GiB at 0 %"), "{summary}");
    assert!(
        summary.contains("3 of 7 GPU nodes not scraped"),
        "{summary}"
    );
    assert_eq!(r.file("summary"), summary);
    // The result as a reviewed snapshot: a field, count or state change is a visible diff.
    insta::with_settings!({filters => vec![
        (r"(trainer|notebook|lost|blind)-[a-z0-9]+-[a-z0-9]+", "$1-[pod]"),
        (r"nvidia-dcgm-exporter-[a-z0-9]+", "nvidia-dcgm-exporter-[pod]"),
        (r"GPU-[0-9a-f-]{36}", "[uuid]"),
        (r"i-[0-9a-f]{8,17}", "[instance-id]"),
        (r"127\.[0-9]+\.[0-9]+\.[0-9]+", "[pod-ip]"),
        (r#""elapsedSeconds": [0-9.]+"#, r#""elapsedSeconds": "[elapsed]""#),
    ]}, {
        insta::assert_json_snapshot!("result", r.result);
    });

    // The upload is the one mutation: two PUTs on S3, nothing mutating on the API server.
    let puts = s3_mutations(&sb).await;
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(puts.iter().all(|p| p.method == "PUT"));
    assert!(sb.mutations().is_empty(), "{:?}", sb.mutations());
    // ... and it is audited.
    let audit: Vec<Value> = r
        .file("audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each PutObject written ahead (`sent`), then its result.
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(audit.iter().all(|a| a["action"] == "s3:PutObject"));
    let outcomes: Vec<&str> = audit
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["sent", "ok", "sent", "ok"]);
    assert_eq!(audit[0]["target"]["name"], REPORT_KEY);
    assert_eq!(audit[1]["target"]["name"], REPORT_KEY);
    assert!(r.termination().is_empty());
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_the_api_server_the_report_is_the_same() {
    let sb = start(&scenario()).await;
    settle(&sb, 5).await;
    let r = run(&sb, &["--via-apiserver", "--dry-run", "client"]).await;
    assert_eq!(r.code(), Some(0), "{}", r.result);
    let report: Value = serde_json::from_str(&r.file("report.json")).unwrap();
    check_report(&report, "exporters-apiserver");
    // Proxied scrapes went through the API server; a dry run uploads nothing.
    let proxied = sb
        .requests()
        .iter()
        .filter(|q| q.path.contains("/proxy/metrics"))
        .count();
    assert_eq!(proxied, 5);
    assert_eq!(
        r.result["wouldUpload"].as_array().unwrap().len(),
        0,
        "no --s3-url"
    );
    assert!(s3_mutations(&sb).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_samples_make_a_window() {
    let sb = start(&scenario()).await;
    settle(&sb, 5).await;
    let r = run(&sb, &["--samples", "3", "--interval", "1s"]).await;
    assert_eq!(r.code(), Some(0), "{}", r.result);
    let report: Value = serde_json::from_str(&r.file("report.json")).unwrap();
    assert_eq!(report["window"]["samples"], 3);
    assert_eq!(report["window"]["seconds"], 2.0);
    assert_eq!(report["dataQuality"]["scrapesSucceeded"], 12);
    assert_eq!(report["dataQuality"]["scrapesAttempted"], 18);
    let trainer = rows_by_pod_prefix(&report, "trainer-");
    assert!(trainer.iter().all(|g| g["scrapes"] == 3));
}

fn one_dead_exporter() -> String {
    format!(
        r#"
cluster: {{name: gpu-dead}}
clock: {{start: "2026-11-26T10:00:00Z", scale: 1}}
nodeGroups:
  - {{name: a10g, count: 1, instanceType: g5.xlarge, labels: {{gpu-stack: operator}}, taints: {TAINT}}}
workloads:
  - {{kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {{app: nvidia-dcgm-exporter}},
     tolerations: [{{operator: Exists}}], requests: {{cpu: 100m, memory: 128Mi}}}}
gpu:
  nodes:
    - {{node: a10g-0, exporter: down}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_scraped_is_exit_1_and_nothing_is_uploaded() {
    let sb = start(&one_dead_exporter()).await;
    settle(&sb, 0).await;
    let r = run(&sb, &["--s3-url", &format!("s3://{BUCKET}")]).await;
    assert_eq!(r.code(), Some(1), "{}", r.result);
    assert_eq!(r.result["status"], "failed");
    assert_eq!(r.result["dataQuality"]["nodesScraped"], 0);
    assert_eq!(
        r.result["dataQuality"]["nodesFailed"][0]["reason"],
        "unreachable"
    );
    assert!(
        r.termination()
            .starts_with("failed: nothing could be scraped"),
        "{}",
        r.termination()
    );
    assert!(s3_mutations(&sb).await.is_empty());
    assert!(objects(&sb).await.is_empty());
    // The report is still written locally.
    assert!(r.file("report.json").contains("\"nodesScraped\": 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_or_3_and_upload_nothing() {
    let sb = start(&scenario()).await;
    settle(&sb, 5).await;
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--s3-url", "https://gpu-reports/x"],
            2,
            "expected s3://BUCKET",
        ),
        (
            &["--s3-url", "s3://Bad_Bucket"],
            2,
            "not a valid S3 bucket name",
        ),
        (
            &["--s3-url", "s3://gpu-reports", "--interval", "5"],
            2,
            "--interval",
        ),
        (
            &["--s3-url", "s3://gpu-reports", "--prometheus-window", "1x"],
            2,
            "--prometheus-window",
        ),
        (
            &[
                "--s3-url",
                "s3://gpu-reports",
                "--prometheus-url",
                "gopher://x",
            ],
            2,
            "--prometheus-url",
        ),
        // Nothing listens on port 9 of this loopback address: Prometheus is unreachable.
        (
            &[
                "--s3-url",
                "s3://gpu-reports",
                "--prometheus-url",
                "http://127.0.0.1:9",
            ],
            3,
            "cannot read the window from --prometheus-url",
        ),
        (&["--s3-url", "s3://no-such-bucket"], 2, "NoSuchBucket"),
    ];
    for (args, code, msg) in cases {
        let r = run(&sb, args).await;
        assert_eq!(r.code(), Some(*code), "{args:?}: {}", r.result);
        let t = r.termination();
        assert!(t.contains(msg), "{args:?}: termination log {t:?}");
    }
    // Only the missing bucket got as far as S3, and its PutObject failed (and was audited).
    let puts = s3_mutations(&sb).await;
    assert!(
        puts.iter().all(|p| p.path.starts_with("/no-such-bucket/")),
        "{puts:?}"
    );
    assert!(objects(&sb).await.is_empty());
    assert!(sb.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_scraping_is_exit_3_with_nothing_uploaded() {
    let sb = start(&scenario()).await;
    settle(&sb, 5).await;
    let s3 = sb.s3_url().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let child = command(
        &sb,
        &s3,
        &[
            "--s3-url",
            "s3://gpu-reports",
            "--samples",
            "5",
            "--interval",
            "10s",
        ],
        dir.path(),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait for the first round to finish (the progress file is not set; the log line is).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "exits promptly after SIGTERM"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    assert!(t.starts_with("transient: interrupted by SIGTERM"), "{t}");
    assert!(s3_mutations(&sb).await.is_empty());
    assert!(objects(&sb).await.is_empty());
}

/// A Prometheus HTTP API serving the genuine fixture responses (H100 EKS, GPU Operator with
/// honorLabels) for GPU_UTIL and FB_USED, and empty results for the other families.
async fn fixture_prometheus() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let dir = std::env::var_os("OPSTEPS_SHARED_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            PathBuf::from,
        )
        .join("fixtures/dcgm");
    let util =
        std::fs::read_to_string(dir.join("nvidia-aicr-eks-h100x8-promapi-query-gpu-util.json"))
            .expect("fixture (set OPSTEPS_SHARED_DIR)");
    let fb = std::fs::read_to_string(dir.join("nvidia-aicr-eks-h100x8-promapi-query-fb-used.json"))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (util, fb) = (util.clone(), fb.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let body = if !path.starts_with("/api/v1/query_range?") {
                    String::from(r#"{"status":"error","error":"not found"}"#)
                } else if path.contains("query=DCGM_FI_DEV_GPU_UTIL&") {
                    util
                } else if path.contains("query=DCGM_FI_DEV_FB_USED&") {
                    fb
                } else {
                    String::from(
                        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                    )
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_normalises_the_exporters_own_pod_labels() {
    let sb = start("cluster: {name: gpu-prom}\nnodeGroups:\n  - {name: cpu, count: 1, instanceType: m5.xlarge}\n").await;
    let (addr, task) = fixture_prometheus().await;
    let r = run(
        &sb,
        &[
            "--prometheus-url",
            &format!("http://{addr}"),
            "--s3-url",
            "s3://gpu-reports/amp",
        ],
    )
    .await;
    task.abort();
    assert_eq!(r.code(), Some(0), "{}", r.result);
    let report: Value = serde_json::from_str(&r.file("report.json")).unwrap();
    assert_eq!(report["window"]["source"], "prometheus");
    let t = &report["totals"];
    assert_eq!(t["gpus"], 8, "{t}");
    // GPU 2 holds 74166 MiB at 0 %: idle-held, attributed to the workload; the other seven carry
    // the exporter's own pod (gpu-operator/nvidia-dcgm-exporter-9v4gs), so they are unallocated.
    assert_eq!(t["idleHeld"], 1, "{t}");
    assert_eq!(t["unallocated"], 7, "{t}");
    let held = rows_by_pod_prefix(&report, "vllm-agg-0-vllmdecodeworker-");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["gpu"], "2");
    assert_eq!(held[0]["pods"][0]["namespace"], "dynamo-workload");
    assert_eq!(held[0]["node"], "ip-100-64-147-149.ec2.internal");
    assert!(
        held[0]["ownerNote"]
            .as_str()
            .unwrap()
            .contains("pod not found")
    );
    assert!(report["gpus"].as_array().unwrap().iter().all(|g| {
        g["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["namespace"] != "gpu-operator")
    }));
    assert_eq!(objects(&sb).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_window_from_the_sandbox_gives_the_same_states() {
    let yaml = scenario();
    let sb = start(&yaml).await;
    settle(&sb, 5).await;
    let gpu = Scenario::from_yaml(&yaml).unwrap().gpu;
    let config = opsteps_sandbox::dcgm::GpuConfig::from_value(gpu.as_ref()).unwrap();
    let prom = opsteps_sandbox::dcgm::prometheus::start(sb.shared(), config)
        .await
        .unwrap();
    let r = run(
        &sb,
        &[
            "--prometheus-url",
            &prom.url(),
            "--prometheus-window",
            "2h",
            "--s3-url",
            "s3://gpu-reports/amp",
        ],
    )
    .await;
    assert_eq!(r.code(), Some(0), "{}", r.result);
    let report: Value = serde_json::from_str(&r.file("report.json")).unwrap();
    assert_eq!(report["window"]["source"], "prometheus");
    assert_eq!(report["window"]["seconds"], 7200.0);
    assert_eq!(
        report["window"]["samples"], 241,
        "2h at a 30s step, both ends"
    );
    let t = &report["totals"];
    assert_eq!(
        (
            t["gpus"].as_u64(),
            t["active"].as_u64(),
            t["idleHeld"].as_u64(),
            t["idle"].as_u64(),
            t["unallocated"].as_u64()
        ),
        (Some(25), Some(6), Some(2), Some(1), Some(16)),
        "{t}"
    );
    // Helm's exporter (honorLabels: false) gives exported_pod; the GPU Operator's gives the
    // exporter's own pod on unallocated GPUs: neither reads as a workload.
    let argo = rows_by_pod_prefix(&report, "train-abc-");
    assert_eq!(argo[0]["owner"]["kind"], "Workflow");
    assert_eq!(
        states(&rows_by_pod_prefix(&report, "notebook-")),
        vec!["idle-held"; 2]
    );
    assert!(report["gpus"].as_array().unwrap().iter().all(|g| {
        g["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !p["pod"].as_str().unwrap().contains("dcgm-exporter"))
    }));
    // A window has energy: the counter's increase over two collect intervals (1h each).
    let trainer = rows_by_pod_prefix(&report, "trainer-");
    assert!(
        trainer
            .iter()
            .all(|g| g["energyKwh"].as_f64().unwrap() > 0.0),
        "{trainer:?}"
    );
    let failed: Vec<(&str, &str)> = report["dataQuality"]["nodesFailed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["node"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        failed,
        [
            ("a10g-0", "no-series"),
            ("a10g-1", "no-series"),
            ("bare-0", "no-series")
        ]
    );
    assert_eq!(objects(&sb).await.len(), 2);
}
