//! Running drain-node in-process against a sandbox, and reading the resulting cluster state.

#![allow(dead_code)]

use std::path::PathBuf;

use clap::Parser;
use opsteps::exit::ExitStatus;
use opsteps::step::Context;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

pub struct Env {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
}

pub struct Outcome {
    pub status: ExitStatus,
    pub summary: String,
    pub result: Value,
}

impl Env {
    pub async fn new(yaml: &str) -> Self {
        let scenario = Scenario::from_yaml(yaml).expect("scenario");
        let sb = Sandbox::start(Options::default().scenario(scenario))
            .await
            .expect("sandbox");
        Self {
            sb,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The step's flags with the sandbox's kubeconfig and this test's output paths.
    pub fn argv(&self, kubeconfig: &std::path::Path, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![drain_node::STEP.into()];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v.extend([
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--output-dir".into(),
            self.out().display().to_string(),
            "--termination-log".into(),
            self.dir
                .path()
                .join("termination-log")
                .display()
                .to_string(),
            "--progress-interval".into(),
            "1s".into(),
        ]);
        v
    }

    pub async fn run(&self, extra: &[&str]) -> Outcome {
        self.run_as(self.sb.kubeconfig_path().to_owned(), extra)
            .await
    }

    pub async fn run_as(&self, kubeconfig: PathBuf, extra: &[&str]) -> Outcome {
        self.run_with(kubeconfig, extra, |_| {}).await
    }

    /// Runs with a hook on the context first (to trigger its shutdown later, for example).
    pub async fn run_with(
        &self,
        kubeconfig: PathBuf,
        extra: &[&str],
        hook: impl FnOnce(&Context),
    ) -> Outcome {
        let args = drain_node::Args::try_parse_from(self.argv(&kubeconfig, extra)).expect("args");
        let ctx = Context::new(drain_node::STEP, &args.common).expect("context");
        hook(&ctx);
        match drain_node::run(args, ctx).await {
            Ok(r) => Outcome {
                status: r.status,
                summary: r.summary,
                result: r.result,
            },
            Err(e) => Outcome {
                status: e.status(),
                summary: e.chain(),
                result: Value::Null,
            },
        }
    }

    /// A kube client with the sandbox's admin identity (the operator, another drain).
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(self.sb.kubeconfig_path()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Waits (real time) until `cond` holds; panics after `secs`.
    pub async fn until(&self, secs: u64, what: &str, cond: impl Fn(&Self) -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                std::time::Instant::now() < end,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The pods' Events in the store: (reason, involved pod `namespace/name`, message).
    pub fn events(&self) -> Vec<(String, String, String)> {
        self.sb.with(|c| {
            c.store
                .list(well_known::events(), None)
                .map(|e| {
                    (
                        e["reason"].as_str().unwrap_or("").to_owned(),
                        format!(
                            "{}/{}",
                            e["involvedObject"]["namespace"].as_str().unwrap_or(""),
                            e["involvedObject"]["name"].as_str().unwrap_or("")
                        ),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
    }

    pub fn pods(&self) -> Vec<Value> {
        self.sb.with(|c| {
            c.store
                .list(well_known::pods(), None)
                .map(|p| (**p).clone())
                .collect()
        })
    }

    /// `namespace/name` of the pods bound to `node` (terminating ones included).
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods()
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .map(|p| {
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap(),
                    p["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    }

    pub fn node(&self, name: &str) -> Value {
        self.sb
            .with(|c| (*c.store.get(well_known::nodes(), "", name).expect("node")).clone())
    }

    pub fn unschedulable(&self, name: &str) -> bool {
        self.node(name)["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
    }

    /// Mutating requests that took effect (not dry-run).
    pub fn mutations(&self) -> Vec<String> {
        self.sb
            .mutations()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn output(&self, name: &str) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.out().join(name))
                .unwrap_or_else(|e| panic!("output {name}: {e}")),
        )
        .unwrap()
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.out().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Two blue nodes to drain, two green nodes to receive the pods.
pub const BLUE_GREEN: &str = r#"
clock: {scale: 60}
kubelet: {startDelay: 2s, readyDelay: 3s}
nodeGroups:
  - {name: blue, count: 2, capacity: {cpu: "4", memory: 16Gi, pods: 30}}
  - {name: green, count: 2, capacity: {cpu: "4", memory: 16Gi, pods: 30}}
workloads:
  - name: web
    namespace: shop
    replicas: 4
    requests: {cpu: 250m, memory: 256Mi}
    placement: {nodeGroup: blue}
    pdb: {maxUnavailable: 1}
    terminationGracePeriodSeconds: 10
  - kind: DaemonSet
    name: node-exporter
    namespace: monitoring
    requests: {cpu: 50m, memory: 64Mi}
"#;
