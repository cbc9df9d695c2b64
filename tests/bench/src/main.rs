//! `just bench`: measurements, not tests. Each benchmark runs the subject and its peer on
//! identical sandboxes and prints wall time, API requests and memory with their ratios.
//!
//! - `sandbox`: load the 2,000-node / 18,000-pod scenario: start-up time, resident memory, and a
//!   client listing every pod in pages of 500 (kube-rs, and kubectl for reference).
//! - `drain`: `drain-node` against `kubectl drain` on (a) one node with 110 pods and (b) a node
//!   group of 50 nodes with 30 pods each (drain-node at several `--parallel-nodes`).
//! - `promtext`: the prom-text parser against Python's prometheus_client (`promtext.rs`).
//! - `gpu`: collect-gpu-stats over 200 GPU nodes with 8 GPUs each (`gpu.rs`).
//! - `verify`: `verify-cluster --profile health` against `kubectl get ... -o json` (`verify.rs`).

// The report on stdout is this program's output.
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod gpu;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

mod promtext;
mod verify;

#[derive(Parser)]
#[command(about = "opsteps benchmarks")]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// The sandbox at 18,000 pods.
    Sandbox,
    /// drain-node against kubectl drain.
    Drain {
        /// Only case (a), one node with 110 pods.
        #[arg(long)]
        quick: bool,
    },
    /// The prom-text parser against Python's prometheus_client.
    Promtext,
    /// collect-gpu-stats over 200 GPU nodes (src/gpu.rs).
    Gpu,
    /// verify-cluster's health profile against kubectl get on 18,000 pods.
    Verify,
    /// Everything.
    All,
}

fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.what {
            What::Sandbox => sandbox().await,
            What::Drain { quick } => drain(quick).await,
            What::Promtext => promtext::run(),
            What::Gpu => gpu::run().await,
            What::Verify => verify::verify().await,
            What::All => {
                promtext::run()?;
                sandbox().await?;
                gpu::run().await?;
                drain(false).await?;
                verify::verify().await
            }
        }
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Resident and peak resident memory of a process, in MiB, from /proc.
fn rss_mib(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl() -> Option<PathBuf> {
    opsteps_sandbox::testing::kubectl_versions().pop()
}

/// The binary `name` built next to this one (`cargo build --release -p NAME`).
fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.with_file_name(name);
    anyhow::ensure!(
        p.exists(),
        "{} is missing: build it with `cargo build --release -p {name}`",
        p.display()
    );
    Ok(p)
}

async fn sandbox() -> Result<()> {
    let path = workspace_root().join("tests/scenarios/large.yaml");
    let scenario =
        Scenario::from_file(&path).with_context(|| format!("reading {}", path.display()))?;
    let (rss0, _) = rss_mib("self");
    let t = Instant::now();
    let sb = Sandbox::start(Options::default().scenario(scenario)).await?;
    let startup = t.elapsed();
    let (pods, nodes) = sb.with(|c| {
        (
            c.store
                .count(opsteps_sandbox::resources::well_known::pods()),
            c.store
                .count(opsteps_sandbox::resources::well_known::nodes()),
        )
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = rss_mib("self");

    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(sb.kubeconfig_path())?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client);
    let mut listed = 0;
    let mut pages = 0;
    let t = Instant::now();
    let mut lp = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&lp).await?;
        listed += page.items.len();
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    let list_time = t.elapsed();
    let kubectl_time = kubectl().map(|k| {
        let t = Instant::now();
        let out = Command::new(&k)
            .args([
                "--kubeconfig",
                &sb.kubeconfig_path().display().to_string(),
                "get",
                "pods",
                "-A",
                "-o",
                "json",
                "--chunk-size",
                "500",
            ])
            .output();
        (t.elapsed(), out.is_ok_and(|o| o.status.success()))
    });
    println!("## sandbox: large scenario ({nodes} nodes, {pods} pods)\n");
    println!("| measure | value | target |\n|---|---|---|");
    println!(
        "| start-up (load + serve) | {:.2} s | < 5 s |",
        startup.as_secs_f64()
    );
    println!(
        "| resident memory after load | {rss:.0} MiB (peak {hwm:.0} MiB, {rss0:.0} MiB before load) | < 1024 MiB |",
    );
    println!(
        "| kube-rs list of all pods, pages of 500 | {:.2} s ({listed} pods, {pages} pages) | < 2 s |",
        list_time.as_secs_f64()
    );
    if let Some((t, ok)) = kubectl_time {
        println!(
            "| kubectl get pods -A -o json --chunk-size 500 | {:.2} s{} | reference |",
            t.as_secs_f64(),
            if ok { "" } else { " (failed)" }
        );
    }
    println!();
    Ok(())
}

/// One node `a` with 110 pods (11 Deployments of 10, budgets of 25%), and room elsewhere.
fn one_node_110() -> String {
    let mut y = String::from(
        "clock: {scale: 60}\nkubelet: {startDelay: 1s, readyDelay: 1s}\nnodes:\n  - {name: a, capacity: {cpu: \"64\", memory: 256Gi, pods: 120}}\n",
    );
    y.push_str("nodeGroups:\n  - {name: spare, count: 4, capacity: {cpu: \"32\", memory: 128Gi, pods: 110}}\nworkloads:\n");
    for i in 0..11 {
        let _ = writeln!(
            y,
            "  - {{name: app{i}, replicas: 10, requests: {{cpu: 100m, memory: 128Mi}}, terminationGracePeriodSeconds: 30, placement: {{nodes: [a]}}, pdb: {{maxUnavailable: \"25%\"}}}}"
        );
    }
    y
}

/// 50 blue nodes with 30 pods each, 50 green nodes to receive them.
fn group_50x30() -> String {
    let mut y = String::from(
        "clock: {scale: 60}\nkubelet: {startDelay: 1s, readyDelay: 1s}\nnodeGroups:\n",
    );
    y.push_str("  - {name: blue, count: 50, capacity: {cpu: \"16\", memory: 64Gi, pods: 40}}\n  - {name: green, count: 50, capacity: {cpu: \"16\", memory: 64Gi, pods: 40}}\nworkloads:\n");
    for i in 0..30 {
        let _ = writeln!(
            y,
            "  - {{name: svc{i}, replicas: 50, requests: {{cpu: 100m, memory: 128Mi}}, terminationGracePeriodSeconds: 30, placement: {{nodeGroup: blue}}, pdb: {{maxUnavailable: 5}}}}"
        );
    }
    y
}

struct Run {
    wall: Duration,
    requests: usize,
    ok: bool,
    peak_mib: f64,
}

/// Runs `cmd` against a fresh sandbox of `yaml`, returning wall time, requests and peak RSS.
async fn measure(yaml: &str, cmd: impl FnOnce(&Path) -> Command) -> Result<Run> {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(yaml)?)).await?;
    let before = sb.requests().len();
    let mut command = cmd(sb.kubeconfig_path());
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_remove("KUBECONFIG");
    let t = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id().to_string();
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        peak = peak.max(rss_mib(&pid).1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = t.elapsed();
    let requests = sb.requests().len() - before;
    if !sb.invariants().is_empty() {
        eprintln!("invariant violations: {:?}", sb.invariants());
    }
    Ok(Run {
        wall,
        requests,
        ok: status.success(),
        peak_mib: peak,
    })
}

async fn drain(quick: bool) -> Result<()> {
    let ours = sibling("drain-node")?;
    let Some(kubectl) = kubectl() else {
        anyhow::bail!("kubectl is needed for the drain benchmark");
    };
    let dir = std::env::temp_dir().join(format!("opsteps-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let drain_node = |extra: Vec<String>| {
        let (ours, dir) = (ours.clone(), dir.clone());
        move |kc: &Path| {
            let mut c = Command::new(&ours);
            c.args([
                "--kubeconfig",
                &kc.display().to_string(),
                "--termination-log",
                &dir.join("tl").display().to_string(),
                "--timeout",
                "600s",
            ]);
            c.args(["--delete-emptydir-data", "--force"]).args(extra);
            c
        }
    };
    let kube_drain = |target: Vec<String>| {
        let kubectl = kubectl.clone();
        move |kc: &Path| {
            let mut c = Command::new(&kubectl);
            c.args([
                "--kubeconfig",
                &kc.display().to_string(),
                "drain",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--force",
                "--timeout",
                "600s",
            ]);
            c.args(target);
            c
        }
    };
    println!(
        "## drain: drain-node vs kubectl drain ({})\n",
        kubectl.display()
    );
    println!("| case | tool | wall | API requests | peak RSS | ok |\n|---|---|---|---|---|---|");
    let a = one_node_110();
    let k = measure(&a, kube_drain(vec!["a".into()])).await?;
    let o = measure(&a, drain_node(vec!["--node".into(), "a".into()])).await?;
    row("(a) 1 node, 110 pods", "kubectl drain", &k);
    row("(a) 1 node, 110 pods", "drain-node", &o);
    println!(
        "\n(a) drain-node / kubectl: wall {:.2}x, requests {:.2}x (target: ≤ 0.5x wall, ≤ 1x requests)\n",
        o.wall.as_secs_f64() / k.wall.as_secs_f64(),
        o.requests as f64 / k.requests as f64
    );
    if quick {
        return Ok(());
    }
    let b = group_50x30();
    println!("| case | tool | wall | API requests | peak RSS | ok |\n|---|---|---|---|---|---|");
    let k = measure(
        &b,
        kube_drain(vec!["-l".into(), "eks.amazonaws.com/nodegroup=blue".into()]),
    )
    .await?;
    row("(b) 50 nodes x 30 pods", "kubectl drain", &k);
    for p in ["1", "5", "10"] {
        let o = measure(
            &b,
            drain_node(vec![
                "--nodegroup".into(),
                "blue".into(),
                "--max-nodes".into(),
                "50".into(),
                "--parallel-nodes".into(),
                p.into(),
            ]),
        )
        .await?;
        row(
            "(b) 50 nodes x 30 pods",
            &format!("drain-node --parallel-nodes {p}"),
            &o,
        );
    }
    println!();
    Ok(())
}

fn row(case: &str, tool: &str, r: &Run) {
    println!(
        "| {case} | {tool} | {:.1} s | {} | {:.0} MiB | {} |",
        r.wall.as_secs_f64(),
        r.requests,
        r.peak_mib,
        if r.ok { "yes" } else { "no" }
    );
}
