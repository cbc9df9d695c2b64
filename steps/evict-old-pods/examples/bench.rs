//! Benchmark of evict-old-pods on the 18,000-pod scenario (`tests/scenarios/
//! large.yaml`: 2,000 nodes; the `rails/storefront` Deployment has 1,000 replicas aged 0–16 h,
//! so 500 are past 8 h; PDB maxUnavailable 10%).
//!
//! ```text
//! cargo build --release -p evict-old-pods
//! cargo run --release -p evict-old-pods --example bench
//! ```
//!
//! The sandbox runs in this process; the step binary and kubectl run as child processes under
//! `/usr/bin/time`, so wall time and peak RSS are theirs alone. API requests are counted from
//! the sandbox's request log. Measured:
//! 1. `kubectl get pods -A -o json`: the floor for reading every pod;
//! 2. a full-cluster scan (`--max-pod-lifetime 8h --dry-run client`, every namespace);
//! 3. a server dry run of the real job (`--namespaces rails -l app=storefront
//!    --max-pod-lifetime 8h --dry-run server`);
//! 4. the real job with the defaults (one pod of the owner at a time, each after the previous
//!    replacement is Ready), limited to 50 evictions to measure the rate;
//! 5. the rest of the real job with `--wait-for-replacement=false`: the PDB (maxUnavailable
//!    10%) paces it, 429s retried within `--pdb-retry-budget 10m`.
//!
//! Environment: `BENCH_SCALE` (virtual clock speed, default 60), `BENCH_BIN` (the step binary;
//! default `target/release/evict-old-pods`), `BENCH_SCENARIO`.

// A benchmark's report is what it prints.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

struct Measured {
    wall_s: f64,
    peak_rss_kib: u64,
    exit: Option<i32>,
    stdout: Vec<u8>,
}

fn timed(bin: &Path, args: &[String]) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let tf = dir.path().join("time");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&tf)
        .arg("-f")
        .arg("%M")
        .arg(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run under /usr/bin/time");
    let wall_s = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&tf).unwrap_or_default();
    let peak_rss_kib = text
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    Measured {
        wall_s,
        peak_rss_kib,
        exit: out.status.code(),
        stdout: out.stdout,
    }
}

async fn measure(sb: &Sandbox, label: &str, bin: &Path, args: Vec<String>) -> Measured {
    let before = sb.requests().len();
    let bin = bin.to_path_buf();
    let m = tokio::task::spawn_blocking(move || timed(&bin, &args))
        .await
        .expect("bench thread");
    let reqs = sb.requests()[before..].to_vec();
    let mutating = reqs.iter().filter(|r| r.mutating).count();
    println!(
        "{label:<44} wall {:>7.2} s   peak RSS {:>7.1} MiB   API requests {:>6} ({mutating} mutating)   exit {:?}   stdout {} KiB",
        m.wall_s,
        m.peak_rss_kib as f64 / 1024.0,
        reqs.len(),
        m.exit,
        m.stdout.len() / 1024,
    );
    m
}

// One measurement after another, in the order they are printed.
#[allow(clippy::too_many_lines)]
#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scenario_path = std::env::var_os("BENCH_SCENARIO")
        .map_or_else(|| root.join("tests/scenarios/large.yaml"), PathBuf::from);
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let bin = std::env::var_os("BENCH_BIN")
        .map_or_else(|| root.join("target/release/evict-old-pods"), PathBuf::from);
    anyhow::ensure!(
        bin.is_file(),
        "{} is missing: cargo build --release -p evict-old-pods",
        bin.display()
    );
    let scenario = Scenario::from_file(&scenario_path)?;
    let now = scenario
        .clock
        .start
        .map_or_else(|| jiff::Timestamp::now().to_string(), |t| t.to_string());
    let t = Instant::now();
    let sb = Sandbox::start(Options::default().scenario(scenario).scale(scale)).await?;
    let pods = sb.with(|c| {
        c.store
            .count(opsteps_sandbox::resources::well_known::pods())
    });
    println!(
        "sandbox: {} pods loaded in {:.2} s (clock x{scale})",
        pods,
        t.elapsed().as_secs_f64()
    );
    let kc = sb.kubeconfig_path().display().to_string();
    let out = tempfile::tempdir()?;
    let common = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "--kubeconfig".into(),
            kc.clone(),
            "--termination-log".into(),
            "/dev/null".into(),
            "--output-dir".into(),
            out.path().display().to_string(),
            "--now".into(),
            now.clone(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };

    let kubectl = measure(
        &sb,
        "kubectl get pods -A -o json",
        Path::new("kubectl"),
        vec![
            "--kubeconfig".into(),
            kc.clone(),
            "get".into(),
            "pods".into(),
            "-A".into(),
            "-o".into(),
            "json".into(),
        ],
    )
    .await;
    println!(
        "  (kubectl read {} MiB of JSON)",
        kubectl.stdout.len() / (1024 * 1024)
    );
    let scan = measure(
        &sb,
        "scan: all namespaces, --dry-run client",
        &bin,
        common(&["--max-pod-lifetime", "8h", "--dry-run", "client"]),
    )
    .await;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&scan.stdout) {
        println!("  totals: {}", v["totals"]);
    }
    let dry = measure(
        &sb,
        "storefront: --dry-run server",
        &bin,
        common(&[
            "--max-pod-lifetime",
            "8h",
            "--namespaces",
            "rails",
            "-l",
            "app=storefront",
            "--dry-run",
            "server",
        ]),
    )
    .await;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&dry.stdout) {
        println!("  totals: {}", v["totals"]);
    }
    // With the default gating an owner loses one pod at a time and each waits for its
    // replacement: measure 50 of them for the rate, then the rest PDB-paced.
    let gated = measure(
        &sb,
        "storefront: evict (defaults), --max-total 50",
        &bin,
        common(&[
            "--max-pod-lifetime",
            "8h",
            "--namespaces",
            "rails",
            "-l",
            "app=storefront",
            "--max-total",
            "50",
        ]),
    )
    .await;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&gated.stdout) {
        println!("  totals: {}", v["totals"]);
    }
    let paced = measure(
        &sb,
        "storefront: evict, --wait-for-replacement=false",
        &bin,
        common(&[
            "--max-pod-lifetime",
            "8h",
            "--namespaces",
            "rails",
            "-l",
            "app=storefront",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "10m",
        ]),
    )
    .await;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&paced.stdout) {
        println!("  totals: {}", v["totals"]);
    }
    let violations = sb.invariants();
    println!("sandbox invariant violations: {}", violations.len());
    Ok(())
}
