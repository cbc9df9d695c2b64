//! Helpers shared by the sandbox test binaries: start a scenario, run the step in-process with
//! EKS/EC2 clients pointed at the sandbox, read the report.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Parser;
use opsteps::exit::ExitStatus;
use opsteps::step::Context;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::{Value, json};
use verify_cluster::aws::AwsClients;
use verify_cluster::{Args, Config, STEP};

pub const NOW: &str = "2026-11-26T10:00:00Z";

pub async fn start(yaml: &str) -> Sandbox {
    let s = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("scenario: {e:#}\n{yaml}"));
    Sandbox::start(Options::default().scenario(s))
        .await
        .expect("sandbox starts")
}

/// EKS and EC2 clients for the sandbox's cluster `name`, with static test keys.
pub fn aws(sb: &Sandbox, name: &str) -> AwsClients {
    let creds =
        aws_sdk_eks::config::Credentials::new("AKIDSANDBOXTEST", "secret", None, None, "test");
    let region = aws_sdk_eks::config::Region::new(sb.region());
    let eks = aws_sdk_eks::Config::builder()
        .behavior_version_latest()
        .region(region.clone())
        .credentials_provider(creds.clone())
        .endpoint_url(sb.eks_url())
        .build();
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version_latest()
        .region(region)
        .credentials_provider(creds)
        .endpoint_url(ec2_url(sb))
        .build();
    AwsClients {
        eks: aws_sdk_eks::Client::from_conf(eks),
        ec2: aws_sdk_ec2::Client::from_conf(ec2),
        cluster: name.to_owned(),
    }
}

/// Where the sandbox serves EC2.
pub fn ec2_url(sb: &Sandbox) -> String {
    sb.eks_url()
}

pub struct Out {
    pub status: ExitStatus,
    pub result: Value,
    pub dir: tempfile::TempDir,
}

impl Out {
    pub fn check(&self, id: &str) -> &Value {
        self.result["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no check {id} in {:#}", self.result))
    }

    pub fn check_status(&self, id: &str) -> String {
        self.check(id)["status"].as_str().unwrap().to_owned()
    }

    /// Findings of check `id`.
    pub fn findings(&self, id: &str) -> Vec<&Value> {
        self.result["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["check"] == id)
            .collect()
    }

    /// `Kind ns/name` (or `Kind name`) of every object the findings of `id` name.
    pub fn objects(&self, id: &str) -> BTreeSet<String> {
        self.findings(id)
            .iter()
            .flat_map(|f| f["objects"].as_array().unwrap().iter())
            .map(|o| match o["namespace"].as_str() {
                Some(ns) => format!(
                    "{} {ns}/{}",
                    o["kind"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
                None => format!(
                    "{} {}",
                    o["kind"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
            })
            .collect()
    }

    /// Findings above info, as `check: message`.
    pub fn above_info(&self) -> Vec<String> {
        self.result["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["severity"] != "info")
            .map(|f| {
                format!(
                    "{}: {}",
                    f["check"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect()
    }

    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("out").join(name)).unwrap_or_default()
    }
}

/// Runs the step in-process with `args` (plus `--now NOW` unless given), the sandbox's EKS
/// cluster `eks` when given.
pub async fn run_as(
    sb: &Sandbox,
    kubeconfig: &std::path::Path,
    eks: Option<&str>,
    args: &[&str],
) -> Out {
    run_with(kubeconfig, eks.map(|name| aws(sb, name)), args).await
}

/// Runs the step in-process against `kubeconfig` with these AWS clients.
pub async fn run_with(
    kubeconfig: &std::path::Path,
    clients: Option<AwsClients>,
    args: &[&str],
) -> Out {
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
        v.extend(["--now".into(), NOW.into()]);
    }
    v.extend(args.iter().map(|s| (*s).to_owned()));
    let a = Args::try_parse_from(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    let ctx = Context::new(STEP, &a.common).unwrap();
    let outcome = async {
        let cfg = Config::from_args(&a)?;
        let conn = opsteps::connect::connect(&a.common.cluster, &a.common.aws).await?;
        verify_cluster::verify(&cfg, &conn.client, clients.as_ref(), &ctx).await
    }
    .await;
    let (status, result) = match outcome {
        Ok(r) => (r.status, r.result),
        Err(e) => (e.status(), json!({"error": e.chain()})),
    };
    Out {
        status,
        result,
        dir,
    }
}

/// [`run_as`] with the admin kubeconfig and the scenario's EKS cluster `t`.
pub async fn run(sb: &Sandbox, args: &[&str]) -> Out {
    run_as(sb, sb.kubeconfig_path(), Some("t"), args).await
}

/// Asserts the run sent no mutating request (Kubernetes or EKS).
pub fn assert_read_only(sb: &Sandbox) {
    let m = sb.mutations();
    assert!(m.is_empty(), "mutating requests: {m:?}");
    let eks: Vec<String> = sb.with(|c| {
        c.eks
            .requests
            .iter()
            .map(|r| r.operation.clone())
            .filter(|op| !(op.starts_with("Describe") || op.starts_with("List")))
            .collect()
    });
    assert!(eks.is_empty(), "mutating EKS calls: {eks:?}");
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

/// Requests so far: (Kubernetes, EKS), to check a run's own requests with [`assert_read_only_since`].
pub fn marks(sb: &Sandbox) -> (usize, usize) {
    (sb.requests().len(), sb.with(|c| c.eks.requests.len()))
}

/// Asserts the requests after `since` contain no mutation (Kubernetes or AWS).
pub fn assert_read_only_since(sb: &Sandbox, since: (usize, usize)) {
    let k: Vec<String> = sb
        .requests()
        .into_iter()
        .skip(since.0)
        .filter(|r| r.mutating)
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.namespace, r.name))
        .collect();
    assert!(k.is_empty(), "mutating requests: {k:?}");
    let eks: Vec<String> = sb.with(|c| {
        c.eks
            .requests
            .iter()
            .skip(since.1)
            .map(|r| r.operation.clone())
            .filter(|op| !(op.starts_with("Describe") || op.starts_with("List")))
            .collect()
    });
    assert!(eks.is_empty(), "mutating EKS calls: {eks:?}");
}

/// Rewrites an object in the sandbox's store (for states no scenario field makes).
pub fn edit(
    sb: &Sandbox,
    resource: &'static opsteps_sandbox::resources::ResourceInfo,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) {
    sb.with(|c| {
        let mut obj = (*c
            .store
            .get(resource, ns, name)
            .unwrap_or_else(|| panic!("no {ns}/{name}")))
        .clone();
        f(&mut obj);
        c.store.put(resource, obj);
    });
}

/// The first pod of namespace `ns` whose name starts with `prefix`.
pub fn pod_named(sb: &Sandbox, ns: &str, prefix: &str) -> String {
    sb.with(|c| {
        c.store
            .list(opsteps_sandbox::resources::well_known::pods(), Some(ns))
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .filter(|n| n.starts_with(prefix))
            .min()
            .unwrap_or_else(|| panic!("no pod {ns}/{prefix}*"))
    })
}
