//! The one screen of results: what moved, what was evicted, what is left to do, where the
//! reports are, and the `argo submit` command for a real Ops cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use opsteps_e2e::Harness;
use opsteps_e2e::harness::pod_ready;
use serde_json::Value;

use crate::progress::say;
use crate::stages::{self, Run};

/// Cluster state the results compare.
pub struct Snapshot {
    pub addons: BTreeMap<String, String>,
    /// `namespace/app` → node group → pods (live, not terminating).
    pub apps: BTreeMap<String, BTreeMap<String, usize>>,
}

fn group_of(nodes: &[Value], node: &str) -> String {
    nodes
        .iter()
        .find(|n| n["metadata"]["name"] == node)
        .and_then(|n| n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"].as_str())
        .unwrap_or("-")
        .to_owned()
}

/// Application pods: not in kube-system or the GPU monitoring namespaces, not DaemonSet pods.
fn app_pods(h: &Harness) -> Vec<Value> {
    h.list("", "pods", None)
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            !matches!(
                p["metadata"]["namespace"].as_str(),
                Some("kube-system" | "gpu-monitoring" | "gpu-operator")
            )
        })
        .filter(|p| p["metadata"]["labels"]["app"].is_string())
        .collect()
}

impl Snapshot {
    pub fn take(h: &Harness) -> Snapshot {
        let nodes = h.list("", "nodes", None);
        let mut apps: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for p in app_pods(h) {
            let app = format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["labels"]["app"].as_str().unwrap_or("")
            );
            let group = group_of(&nodes, p["spec"]["nodeName"].as_str().unwrap_or(""));
            *apps.entry(app).or_default().entry(group).or_default() += 1;
        }
        Snapshot {
            addons: h.addon_versions(),
            apps,
        }
    }
}

/// `p` relative to the workspace root when under it (the default work dir is target/demo),
/// else as given.
fn rel(_work_dir: &Path, p: &Path) -> String {
    let root = opsteps_e2e::workspace_root();
    p.strip_prefix(&root)
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

/// Prints the results screen; Err when an invariant was violated or no report reached S3.
pub fn print(
    h: &Harness,
    before: &Snapshot,
    after: &Snapshot,
    runs: &[Run],
    work_dir: &Path,
    elapsed: Duration,
) -> Result<()> {
    let rule = "═".repeat(78);
    say(&rule);
    let verdicts = runs
        .iter()
        .filter(|r| r.workflow.phase != opsteps_runner::Phase::Succeeded)
        .count();
    say(&format!(
        "RESULTS  cluster {} ({}): {} pipelines ran in {:.1}s, {} Succeeded, {verdicts} reported FAIL findings (below)",
        h.cluster,
        h.region,
        runs.len(),
        elapsed.as_secs_f64(),
        runs.len() - verdicts
    ));
    say(&rule);
    let cordoned = moved(h, before, after);
    let violations = evicted(h);
    left_to_do(h, runs, cordoned);
    let keys = reports(h, runs, work_dir);
    submit_command();
    say(&rule);
    if !violations.is_empty() {
        bail!("sandbox invariants violated: {violations:#?}");
    }
    if keys.is_empty() {
        bail!("collect-gpu-stats wrote no S3 object");
    }
    Ok(())
}

/// What moved: add-on versions, node groups, apps. Returns the cordoned blue nodes.
fn moved(h: &Harness, before: &Snapshot, after: &Snapshot) -> usize {
    say("What moved");
    let moved: Vec<String> = before
        .addons
        .iter()
        .filter_map(|(name, v)| {
            let now = after.addons.get(name)?;
            (now != v).then(|| format!("{name} {v} → {now}"))
        })
        .collect();
    say(&format!(
        "  add-ons      {}",
        if moved.is_empty() {
            "none".to_owned()
        } else {
            moved.join(", ")
        }
    ));
    let blue_nodes = h.nodegroup_nodes("blue");
    let cordoned = blue_nodes
        .iter()
        .filter(|n| n["spec"]["unschedulable"] == true)
        .count();
    let on = |s: &Snapshot, g: &str| s.apps.values().filter_map(|m| m.get(g)).sum::<usize>();
    let ready_green = app_pods(h)
        .iter()
        .filter(|p| {
            group_of(
                &h.list("", "nodes", None),
                p["spec"]["nodeName"].as_str().unwrap_or(""),
            ) == "green"
                && pod_ready(p)
        })
        .count();
    say(&format!(
        "  node groups  blue: {cordoned}/{} nodes cordoned, app pods {} → {}; green: app pods {} → {} ({ready_green} Ready)",
        blue_nodes.len(),
        on(before, "blue"),
        on(after, "blue"),
        on(before, "green"),
        on(after, "green"),
    ));
    for (app, groups) in &after.apps {
        let was = before.apps.get(app).cloned().unwrap_or_default();
        if was != *groups {
            let fmt = |m: &BTreeMap<String, usize>| {
                m.iter()
                    .map(|(g, n)| format!("{n} on {g}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            say(&format!("    {app:<24} {} → {}", fmt(&was), fmt(groups)));
        }
    }

    cordoned
}

/// What was evicted, per step, and the invariants. Returns the violations.
fn evicted(h: &Harness) -> Vec<opsteps_sandbox::invariants::Violation> {
    say("What was evicted (eviction API, PodDisruptionBudgets honoured)");
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in h.step_mutation_records(0) {
        if r.subresource == "eviction" {
            by_user
                .entry(r.user.trim_start_matches("opsteps-").to_owned())
                .or_default()
                .push(format!("{}/{}", r.namespace, r.name));
        }
    }
    for (step, pods) in &by_user {
        let list = if pods.len() <= 3 {
            pods.join(", ")
        } else {
            format!("{}, … ({} more)", pods[..2].join(", "), pods.len() - 2)
        };
        let n = pods.len();
        let noun = if n == 1 { "pod " } else { "pods" };
        say(&format!("  {step:<16} {n:>3} {noun}: {list}"));
    }
    let violations = h.sandbox.invariants();
    say(&format!(
        "  invariants   {} (no budget breached, no protected pod evicted, no dry-run write)",
        if violations.is_empty() {
            "all held".to_owned()
        } else {
            format!("{} VIOLATED", violations.len())
        }
    ));

    violations
}

/// What is left to do.
fn left_to_do(h: &Harness, runs: &[Run], cordoned: usize) {
    say("What is left to do");
    say(&format!(
        "  - delete the blue node group ({cordoned} cordoned, empty nodes): it stays with Terraform"
    ));
    let old = h
        .pods("rails", &[("app", "storefront")])
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| age_hours(h, p) > 8.0)
        .count();
    say(&format!(
        "  - rails/storefront: {old} pods still older than {}: the lifetime-eviction cron takes one per owner per run",
        stages::LIFETIME
    ));
    // The last health check's FAIL findings are what is left; the pre-upgrade check ran before
    // the add-ons moved, so it is to be run again rather than read.
    if let Some(last) = runs.last() {
        for pod in last.workflow.pods().filter(|p| p.exit_code == Some(1)) {
            let report = pod.outputs.get("report-md").map(String::as_str);
            for f in stages::fail_findings(report.unwrap_or_default()) {
                say(&format!("  - {} says: {f}", last.title));
            }
        }
    }
    let before_addons: usize = runs.first().map_or(0, |r| {
        r.workflow
            .pods()
            .filter_map(|p| p.outputs.get("report-md"))
            .map(|m| stages::fail_findings(m).len())
            .sum()
    });
    say(&format!(
        "  - Kubernetes {}: run pre-upgrade-check again (before the add-on stage it had {before_addons} FAIL finding(s)), then upgrade the control plane",
        stages::NEXT_VERSION
    ));
}

/// Where the reports are. Returns the S3 object URLs.
fn reports(h: &Harness, runs: &[Run], work_dir: &Path) -> Vec<String> {
    say(&format!("Reports (under {})", rel(work_dir, work_dir)));
    for run in runs {
        // The exit handlers' reports (`report`) repeat the last verify.
        for pod in run
            .workflow
            .pods()
            .filter(|p| !p.display_name.starts_with("report"))
        {
            let Some(dir) = &pod.dir else { continue };
            for f in ["report.md", "report.json", "plan.json"] {
                let p = dir.join("outputs").join(f);
                if p.is_file() {
                    say(&format!(
                        "  {:<32} {}",
                        format!("{} {}", run.title, pod.display_name),
                        rel(work_dir, &p)
                    ));
                    break;
                }
            }
        }
    }
    let keys: Vec<String> = runs
        .iter()
        .flat_map(|r| r.workflow.pods())
        .filter_map(|p| p.outputs.get("s3-keys").cloned())
        .flat_map(|k| k.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    for key in &keys {
        let file = key
            .strip_prefix("s3://")
            .map(|k| h.s3_root.join(k))
            .map(|p| rel(work_dir, &p))
            .unwrap_or_default();
        say(&format!(
            "  S3 object                        {key}  (file: {file})"
        ));
    }
    say(&format!(
        "  per workflow: {}/<workflow>/argo-get.txt (the tree `argo get` prints) and a directory per pod with its stdout, stderr and outputs",
        rel(work_dir, &h.work_dir)
    ));

    keys
}

/// The `argo submit` command for the same pipeline on a real Ops cluster.
fn submit_command() {
    say(
        "Run the same pipeline on a real Ops cluster (Argo Workflows; see workflows/README.md to install)",
    );
    let params: Vec<String> = stages::ROTATION
        .iter()
        .map(|(k, v)| format!("-p {k}={v}"))
        .collect();
    say(&format!(
        "  argo submit -n argo --from workflowtemplate/nodegroup-rotation -p cluster=<your cluster> -p region=<its region> {}",
        params.join(" ")
    ));
}

fn age_hours(h: &Harness, p: &Value) -> f64 {
    let now = h.sandbox.with(|c| c.clock.now());
    p["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |t| now.duration_since(t).as_secs_f64() / 3600.0)
}
