//! Running the bump-addon binary against a sandbox (its EKS API through `AWS_ENDPOINT_URL_EKS`,
//! its Kubernetes API through DescribeCluster and an EKS token), and reading what it left.
//!
//! The step runs as a child process: the AWS settings are process-wide environment, and the
//! SIGKILL/SIGTERM tests need a process to signal.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_bump-addon");

/// Mutating EKS operations; the step may send only UpdateAddon.
pub const MUTATING: &[&str] = &[
    "UpdateAddon",
    "CreateAddon",
    "DeleteAddon",
    "UpdateClusterVersion",
    "UpdateNodegroupConfig",
    "UpdateNodegroupVersion",
    "CreateNodegroup",
    "DeleteNodegroup",
];

/// A 1.32 cluster whose add-on workloads run the installed versions' images.
pub fn scenario(addons: &str, extra_eks: &str) -> String {
    let img = |repo: &str, tag: &str| {
        format!("602401143452.dkr.ecr.us-east-1.amazonaws.com/{repo}:{tag}")
    };
    format!(
        r#"
cluster: {{name: prod-a, region: us-east-1, version: "1.32"}}
kubelet: {{startDelay: 0s, readyDelay: 0s}}
nodeGroups:
  - {{name: general, count: 2, instanceType: m5.xlarge}}
workloads:
  - {{kind: DaemonSet, name: aws-node, namespace: kube-system, labels: {{k8s-app: aws-node}}, image: "{vpc}"}}
  - {{kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {{k8s-app: kube-proxy}}, image: "{proxy}"}}
  - {{kind: Deployment, name: coredns, namespace: kube-system, replicas: 2, labels: {{k8s-app: kube-dns}}, image: "{dns}"}}
eks:
  addons:
{addons}
{extra_eks}
"#,
        vpc = img("amazon-k8s-cni", "v1.18.6-eksbuild.1"),
        proxy = img("eks/kube-proxy", "v1.32.0-eksbuild.2"),
        dns = img("eks/coredns", "v1.11.3-eksbuild.1"),
    )
}

/// The default add-ons of [`scenario`]: old versions on 1.32.
pub const ADDONS: &str = "    - {name: vpc-cni, version: v1.18.6-eksbuild.1}
    - {name: kube-proxy, version: v1.32.0-eksbuild.2}
    - {name: coredns, version: v1.11.3-eksbuild.1}";

pub struct Env {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
}

/// One finished run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub result: Value,
    pub stderr: String,
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

    pub fn termination_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("termination-log")).unwrap_or_default()
    }

    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.out().join(name))
            .unwrap_or_else(|e| panic!("output {name}: {e}"))
    }

    /// The step's command: the sandbox cluster, this test's outputs, fast polling (100ms, 2
    /// healthy reads, 20s grace, 60s timeout, through the env fallbacks) and `extra`;
    /// `ARGO_WORKFLOW_UID=wf-1` unless the caller sets another.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = opsteps_testkit::clean_command(BIN);
        if !extra.contains(&"--eks-cluster") {
            cmd.args(["--eks-cluster", "prod-a"]);
        }
        cmd.args(["--region", "us-east-1"])
            .arg("--output-dir")
            .arg(self.out())
            .arg("--termination-log")
            .arg(self.dir.path().join("termination-log"))
            .args(extra)
            .envs(opsteps_sandbox::eks::client_env(
                &self.sb.eks_url(),
                "us-east-1",
            ))
            .env("ARGO_WORKFLOW_UID", "wf-1")
            // Defaults through the env fallbacks, so a test's own flag wins.
            .env("OPSTEPS_BUMP_POLL_INTERVAL", "100ms")
            .env("OPSTEPS_BUMP_HEALTHY_READS", "2")
            .env("OPSTEPS_BUMP_DEGRADED_GRACE", "20s")
            .env("OPSTEPS_BUMP_TIMEOUT", "60s")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub async fn run(&self, extra: &[&str]) -> Run {
        let mut cmd = self.command(extra);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("run bump-addon");
        finished(&out)
    }

    /// Starts the step without waiting for it.
    pub fn spawn(&self, extra: &[&str]) -> Child {
        self.command(extra).spawn().expect("spawn bump-addon")
    }

    /// EKS requests of `operation` answered `status` (any status when `None`).
    pub fn eks_requests(&self, operation: &str, status: Option<u16>) -> usize {
        self.sb.with(|c| {
            c.eks
                .requests
                .iter()
                .filter(|r| r.operation == operation && status.is_none_or(|s| r.status == s))
                .count()
        })
    }

    /// Mutating EKS requests (any answer) and effective Kubernetes mutations.
    pub fn mutations(&self) -> (Vec<String>, usize) {
        let eks = self.sb.with(|c| {
            c.eks
                .requests
                .iter()
                .filter(|r| MUTATING.contains(&r.operation.as_str()))
                .map(|r| format!("{} {}", r.operation, r.status))
                .collect()
        });
        (eks, self.sb.mutations().len())
    }

    /// (version, status) of an installed add-on.
    pub fn addon(&self, name: &str) -> (String, String) {
        self.sb.with(|c| {
            let a = &c.eks.addons[name];
            (a.version.clone(), a.status.clone())
        })
    }

    /// The `AddonVersion` of each update of `addon`, oldest first, with its status.
    pub fn updates(&self, addon: &str) -> Vec<(String, String)> {
        self.sb.with(|c| {
            c.eks
                .updates
                .iter()
                .filter(|u| u.target == opsteps_sandbox::eks::Target::Addon(addon.into()))
                .map(|u| {
                    let v = u
                        .params
                        .iter()
                        .find(|(t, _)| t == "AddonVersion")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    (v, u.status.clone())
                })
                .collect()
        })
    }

    /// The image of the first container of a kube-system DaemonSet or Deployment.
    pub fn image(&self, daemonset: bool, name: &str) -> String {
        let res = if daemonset {
            well_known::daemonsets()
        } else {
            well_known::deployments()
        };
        self.sb.with(|c| {
            c.store
                .get(res, "kube-system", name)
                .and_then(|o| {
                    o.pointer("/spec/template/spec/containers/0/image")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default()
        })
    }

    /// Waits (real time) until `cond` holds; panics after `secs`.
    pub async fn until(&self, secs: u64, what: &str, cond: impl Fn(&Self) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parses a finished run: stdout is one JSON line.
pub fn finished(out: &std::process::Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON line: {stdout}\n{stderr}"
    );
    Run {
        code: out.status.code(),
        result: serde_json::from_str(&stdout).expect("stdout is JSON"),
        stderr,
    }
}

/// The result entry of `addon`.
pub fn entry<'a>(r: &'a Run, addon: &str) -> &'a Value {
    r.result["addons"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == addon))
        .unwrap_or_else(|| panic!("{addon} not in {}", r.result))
}
