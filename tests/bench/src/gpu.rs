//! `gpu`: a full `collect-gpu-stats` run (release build) over 200 p5.48xlarge nodes with 8 GPUs
//! each, every exporter served by the sandbox on its own pod IP: discovery, 200 scrapes, parse,
//! aggregation, owners, report, and the upload to the sandbox's S3. Targets: under 3 s wall,
//! under 100 MiB resident. `$OPSTEPS_BENCH_GPU_BIN` names another collect-gpu-stats binary to
//! measure (default: the one built next to this benchmark).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const NODES: usize = 200;

fn scenario() -> String {
    let mut y = String::from(
        "cluster: {name: gpu-bench}\nnodeGroups:\n  - {name: gpu, count: 200, instanceType: p5.48xlarge, taints: [{key: nvidia.com/gpu, value: \"true\", effect: NoSchedule}]}\nworkloads:\n  - {kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {app: nvidia-dcgm-exporter}, tolerations: [{operator: Exists}], requests: {cpu: 100m, memory: 128Mi}}\n",
    );
    let tol = "tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]";
    for (name, ns, replicas, gpus) in [
        ("trainer", "ml", 250, 4),
        ("notebook", "research", 100, 2),
        ("infer", "serving", 150, 1),
    ] {
        let _ = writeln!(
            y,
            "  - {{name: {name}, namespace: {ns}, replicas: {replicas}, labels: {{app: {name}}}, requests: {{cpu: 100m, memory: 128Mi, gpu: {gpus}}}, {tol}}}"
        );
    }
    y.push_str("gpu:\n  workloads:\n    - {namespace: research, load: {util: 0, fbUsed: 70000}}\n");
    y
}

/// Waits until every exporter listens and every pod runs.
async fn settle(sb: &Sandbox) -> Result<()> {
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let pending = sb.with(|c| {
            c.store
                .list(opsteps_sandbox::resources::well_known::pods(), None)
                .filter(|p| opsteps_sandbox::podutil::phase(p) != "Running")
                .count()
        });
        if pending == 0 && sb.dcgm().listening().len() >= NODES {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "sandbox did not settle: {pending} pods not Running, {} exporters listening",
            sb.dcgm().listening().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The benchmark.
pub async fn run() -> Result<()> {
    let bin = match std::env::var_os("OPSTEPS_BENCH_GPU_BIN") {
        Some(p) => std::path::PathBuf::from(p),
        None => super::sibling("collect-gpu-stats")?,
    };
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(&scenario())?)).await?;
    settle(&sb).await?;
    let s3 = sb.s3_bucket("gpu-bench").await?;
    let dir = std::env::temp_dir().join(format!("opsteps-gpu-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--kubeconfig")
        .arg(sb.kubeconfig_path())
        .arg("--output-dir")
        .arg(dir.as_path())
        .arg("--termination-log")
        .arg(dir.as_path().join("termination-log"))
        .args(["--s3-url", "s3://gpu-bench/reports"])
        .env_remove("KUBECONFIG")
        .env("AWS_ENDPOINT_URL_S3", &s3)
        .env("AWS_ACCESS_KEY_ID", opsteps_sandbox::s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", opsteps_sandbox::s3::SECRET_KEY)
        .env("AWS_REGION", opsteps_sandbox::s3::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let before = sb.requests().len();
    let t = Instant::now();
    let mut child = cmd.spawn().context("starting collect-gpu-stats")?;
    let pid = child.id().to_string();
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        peak = peak.max(super::rss_mib(&pid).1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let wall = t.elapsed();
    let requests = sb.requests().len() - before;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap_or_default())
            .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let totals = &report["totals"];
    println!("## gpu: collect-gpu-stats over {NODES} nodes x 8 GPUs\n");
    println!("| measure | value | target |\n|---|---|---|");
    println!(
        "| wall time (release, direct scrapes, upload) | {:.2} s (exit {}) | < 3 s |",
        wall.as_secs_f64(),
        status.code().unwrap_or(-1)
    );
    println!("| peak resident memory | {peak:.0} MiB | < 100 MiB |");
    println!(
        "| nodes scraped / GPUs reported | {} / {} ({} active, {} idle-held, {} unallocated) | 200 / 1600 |",
        report["dataQuality"]["nodesScraped"],
        totals["gpus"],
        totals["active"],
        totals["idleHeld"],
        totals["unallocated"]
    );
    println!("| API requests | {requests} | |");
    println!();
    anyhow::ensure!(status.success(), "collect-gpu-stats failed: {status}");
    Ok(())
}
