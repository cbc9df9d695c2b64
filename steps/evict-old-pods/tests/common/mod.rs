//! Helpers shared by the sandbox test binaries: start a scenario, run the step in-process or
//! as a binary, read the cluster and the request log. Each binary uses a part of them.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use evict_old_pods::{Args, STEP};
use opsteps::exit::ExitStatus;
use opsteps::step::Context;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::{Value, json};

pub const START: &str = "2026-11-26T10:00:00Z";

/// Three worker nodes, the clock at 60x.
pub const HEAD: &str = "cluster: {name: t}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: w, count: 3, instanceType: m5.2xlarge}
";

pub async fn start(workloads: &str) -> Sandbox {
    start_yaml(&format!("{HEAD}{workloads}")).await
}

pub async fn start_yaml(yaml: &str) -> Sandbox {
    let s = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("scenario: {e:#}\n{yaml}"));
    Sandbox::start(Options::default().scenario(s))
        .await
        .expect("sandbox starts")
}

pub struct Out {
    pub status: ExitStatus,
    pub result: Value,
    pub dir: tempfile::TempDir,
}

impl Out {
    /// `name` → verdict for every pod entry of the report.
    pub fn verdicts(&self) -> BTreeMap<String, String> {
        self.result["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    format!(
                        "{}/{}",
                        p["namespace"].as_str().unwrap(),
                        p["name"].as_str().unwrap()
                    ),
                    p["verdict"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn with_verdict(&self, v: &str) -> BTreeSet<String> {
        self.verdicts()
            .into_iter()
            .filter(|(_, x)| x == v)
            .map(|(k, _)| k)
            .collect()
    }

    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("out").join(name)).unwrap_or_default()
    }
}

/// Runs the step in-process against `kubeconfig` with `args` (plus `--now START` unless given).
pub async fn step(kubeconfig: &Path, args: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let mut v: Vec<String> = vec![
        STEP.into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--output-dir".into(),
        dir.path().join("out").display().to_string(),
        "--termination-log".into(),
        dir.path().join("tl").display().to_string(),
    ];
    if !args.contains(&"--now") {
        v.extend(["--now".into(), START.into()]);
    }
    v.extend(args.iter().map(|s| (*s).to_owned()));
    let a = Args::try_parse_from(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    let ctx = Context::new(STEP, &a.common).unwrap();
    let (status, result) = match evict_old_pods::run(a, ctx).await {
        Ok(r) => (r.status, r.result),
        Err(e) => (e.status(), json!({"error": e.chain()})),
    };
    Out {
        status,
        result,
        dir,
    }
}

/// Pod names in `ns` (all namespaces when empty) with their UIDs.
pub fn pods(sb: &Sandbox, ns: &str) -> BTreeMap<String, String> {
    sb.with(|c| {
        c.store
            .list(well_known::pods(), (!ns.is_empty()).then_some(ns))
            .map(|p| {
                (
                    format!(
                        "{}/{}",
                        p["metadata"]["namespace"].as_str().unwrap_or(""),
                        p["metadata"]["name"].as_str().unwrap_or("")
                    ),
                    p["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    })
}

/// Pods of a namespace whose creation is before START (the scenario's, not replacements).
pub fn original_pods(sb: &Sandbox, ns: &str) -> BTreeSet<String> {
    let start: jiff::Timestamp = START.parse().unwrap();
    sb.with(|c| {
        c.store
            .list(well_known::pods(), Some(ns))
            .filter(|p| {
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t < start)
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
            .map(|p| format!("{ns}/{}", p["metadata"]["name"].as_str().unwrap()))
            .collect()
    })
}

/// `namespace/name` of each eviction request, in order.
pub fn evictions(sb: &Sandbox) -> Vec<String> {
    sb.requests()
        .into_iter()
        .filter(|r| r.subresource == "eviction")
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect()
}

pub fn assert_clean(sb: &Sandbox) {
    sb.assert_invariants();
}

pub fn status(code: u16) -> opsteps_sandbox::faults::FaultAction {
    opsteps_sandbox::faults::FaultAction::Status {
        code,
        retry_after: None,
        message: None,
    }
}

/// Starts the binary with a clean environment (as `opsteps_testkit::run`), outputs in `dir`.
pub fn spawn_bin(kubeconfig: &Path, dir: &Path, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evict-old-pods"));
    cmd.args([
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output-dir",
        dir.join("out").to_str().unwrap(),
        "--termination-log",
        dir.join("tl").to_str().unwrap(),
        "--now",
        START,
    ])
    .args(args)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OPSTEPS_") || k.starts_with("AWS_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    cmd.spawn().expect("the binary starts")
}

/// Waits (deadline-based) until `cond` holds.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
