//! The sandbox through the `aws` CLI (v1, `pip install awscli`), as a user outside Rust would
//! reach it: `aws eks get-token` tokens are accepted on every shipped scenario (raw request and
//! kubectl's exec plugin), the describe/list calls parse, and an `update-nodegroup-config`
//! scale-down drains under a PDB without breaching it.
//!
//! The CLI reaches the EKS API through `AWS_ENDPOINT_URL_EKS` (or `--endpoint-url`) with fake
//! static credentials; `get-token` only presigns locally and needs neither.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

/// The newest versioned kubectl beside the one on PATH, for the exec-plugin check.
fn newest_kubectl() -> PathBuf {
    let all = opsteps_sandbox::testing::kubectl_versions();
    all.last()
        .cloned()
        .unwrap_or_else(|| panic!("no versioned kubectl beside the one on PATH: {all:?}"))
}

/// `aws <args>` with the sandbox's EKS endpoint and fake keys and nothing from the host's AWS
/// setup; the parsed JSON output.
fn aws(sb: &Sandbox, region: &str, args: &[&str]) -> Value {
    let out = aws_command(sb, region)
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("run aws (pip install awscli)");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "aws {args:?} output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn aws_command(sb: &Sandbox, region: &str) -> Command {
    let mut cmd = Command::new("aws");
    cmd.envs(opsteps_sandbox::eks::client_env(&sb.eks_url(), region))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS");
    cmd
}

fn shipped_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

async fn get_nodes(sb: &Sandbox, token: &str) -> (u16, Value) {
    let url = format!("{}/api/v1/nodes?limit=1", sb.url().trim_end_matches('/'));
    http_get(sb, &url, &[("Authorization", format!("Bearer {token}"))]).await
}

/// A GET over the sandbox's own TLS setup, through curl (always present where the aws CLI is).
async fn http_get(sb: &Sandbox, url: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, sb.ca_pem().unwrap_or("")).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}"]);
    if sb.ca_pem().is_some() {
        cmd.arg("--cacert").arg(&ca);
    }
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sandbox-aws-cli-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn get_token_is_accepted_on_every_shipped_scenario() {
    for file in shipped_scenarios() {
        let scenario = Scenario::from_file(&file).unwrap();
        let (cluster, region) = (
            scenario.cluster.name.clone(),
            scenario.cluster.region.clone(),
        );
        let sb = Sandbox::start(Options::default().scenario(scenario).controllers(false))
            .await
            .unwrap();
        let sb_ref = &sb;
        let cred = tokio::task::block_in_place(|| {
            aws(
                sb_ref,
                &region,
                &["eks", "get-token", "--cluster-name", &cluster],
            )
        });
        assert_eq!(cred["kind"], "ExecCredential", "{cred}");
        let token = cred["status"]["token"].as_str().unwrap();
        assert!(token.starts_with("k8s-aws-v1."), "{token}");
        let (code, body) = get_nodes(&sb, token).await;
        assert_eq!(code, 200, "{}: {body}", file.display());
        assert_eq!(body["kind"], "NodeList");
        let last = sb.requests().pop().unwrap();
        assert_eq!(
            last.user,
            opsteps_sandbox::eks::DEFAULT_ADMIN_USER,
            "{}",
            file.display()
        );
    }
}

/// kubectl (the newest on the machine) with the exec plugin `aws eks get-token`, as `aws eks
/// update-kubeconfig` writes it, on the small scenario (clock scale 60: the token is judged in
/// real time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn kubectl_with_the_get_token_exec_plugin_lists_nodes() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.yaml");
    let sb = Sandbox::start(
        Options::default()
            .scenario(Scenario::from_file(&file).unwrap())
            .controllers(false),
    )
    .await
    .unwrap();
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    let ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        sb.ca_pem().unwrap_or(""),
    );
    let env: Vec<Value> = opsteps_sandbox::eks::client_env(&sb.eks_url(), "us-east-1")
        .into_iter()
        .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
        .collect();
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "small",
        "clusters": [{"name": "small", "cluster": {"server": sb.url(), "certificate-authority-data": ca}}],
        "contexts": [{"name": "small", "context": {"cluster": "small", "user": "aws"}}],
        "users": [{"name": "aws", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["--region", "us-east-1", "eks", "get-token", "--cluster-name", "small", "--output", "json"],
            "env": env,
            "interactiveMode": "Never",
        }}}],
    });
    std::fs::write(&kubeconfig, config.to_string()).unwrap();
    let kubectl = newest_kubectl();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(kubectl)
            .args(["get", "nodes", "-o", "name", "--kubeconfig"])
            .arg(&kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
    })
    .await
    .unwrap()
    .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

const SCENARIO: &str = r#"
cluster: {name: prod-a, region: eu-west-1, version: "1.33"}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
kubelet: {startDelay: 2s, readyDelay: 10s}
nodeGroups:
  - {name: general, count: 3, instanceType: m5.xlarge}
workloads:
  - {kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {k8s-app: kube-proxy}}
  - {name: web, namespace: shop, replicas: 4, terminationGracePeriodSeconds: 20,
     placement: {nodes: [general-1, general-2]}, pdb: {maxUnavailable: 1}}
eks:
  nodegroups: [{name: general, minSize: 1, maxSize: 6}]
  timings: {nodegroupConfig: 10s}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn describe_and_list_calls_parse() {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(SCENARIO).unwrap()))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        let region = "eu-west-1";
        let cluster = aws(
            &sb,
            region,
            &["eks", "describe-cluster", "--name", "prod-a"],
        );
        assert_eq!(cluster["cluster"]["name"], "prod-a");
        assert_eq!(cluster["cluster"]["version"], "1.33");
        assert_eq!(cluster["cluster"]["status"], "ACTIVE");
        assert_eq!(
            cluster["cluster"]["endpoint"],
            sb.url().trim_end_matches('/')
        );
        let groups = aws(
            &sb,
            region,
            &["eks", "list-nodegroups", "--cluster-name", "prod-a"],
        );
        assert_eq!(groups["nodegroups"], serde_json::json!(["general"]));
        let group = aws(
            &sb,
            region,
            &[
                "eks",
                "describe-nodegroup",
                "--cluster-name",
                "prod-a",
                "--nodegroup-name",
                "general",
            ],
        );
        assert_eq!(group["nodegroup"]["scalingConfig"]["desiredSize"], 3);
        assert_eq!(group["nodegroup"]["status"], "ACTIVE");
        let addons = aws(
            &sb,
            region,
            &["eks", "list-addons", "--cluster-name", "prod-a"],
        );
        assert_eq!(
            addons["addons"],
            serde_json::json!(["coredns", "kube-proxy", "vpc-cni"])
        );
        let versions_out = aws(
            &sb,
            region,
            &[
                "eks",
                "describe-addon-versions",
                "--kubernetes-version",
                "1.33",
                "--addon-name",
                "coredns",
            ],
        );
        let versions = versions_out["addons"][0]["addonVersions"]
            .as_array()
            .unwrap();
        assert!(!versions.is_empty(), "{versions_out}");
        assert!(
            versions
                .iter()
                .any(|x| x["compatibilities"][0]["defaultVersion"] == true),
            "{versions_out}"
        );
        // --endpoint-url works as well as AWS_ENDPOINT_URL_EKS.
        let cluster = aws(
            &sb,
            region,
            &[
                "eks",
                "describe-cluster",
                "--name",
                "prod-a",
                "--endpoint-url",
                &sb.eks_url(),
            ],
        );
        assert_eq!(cluster["cluster"]["name"], "prod-a");
    });
    let ops: Vec<String> =
        sb.with(|c| c.eks.requests.iter().map(|r| r.operation.clone()).collect());
    for op in [
        "DescribeCluster",
        "ListNodegroups",
        "DescribeNodegroup",
        "ListAddons",
        "DescribeAddonVersions",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} not served: {ops:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn update_nodegroup_config_scale_down_drains_under_the_pdb() {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(SCENARIO).unwrap()))
        .await
        .unwrap();
    let r = "eu-west-1";
    let u = tokio::task::block_in_place(|| {
        aws(
            &sb,
            r,
            &[
                "eks",
                "update-nodegroup-config",
                "--cluster-name",
                "prod-a",
                "--nodegroup-name",
                "general",
                "--scaling-config",
                "desiredSize=1",
            ],
        )
    });
    assert_eq!(u["update"]["status"], "InProgress");
    let id = u["update"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_mins(2);
    let status = loop {
        let d = tokio::task::block_in_place(|| {
            aws(
                &sb,
                r,
                &[
                    "eks",
                    "describe-update",
                    "--name",
                    "prod-a",
                    "--nodegroup-name",
                    "general",
                    "--update-id",
                    &id,
                ],
            )
        });
        let s = d["update"]["status"].as_str().unwrap().to_owned();
        if s != "InProgress" {
            break s;
        }
        assert!(Instant::now() < deadline, "still InProgress");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, "Successful");
    let nodes: Vec<String> = sb.with(|c| {
        c.store
            .list(opsteps_sandbox::resources::well_known::nodes(), None)
            .map(|n| n["metadata"]["name"].as_str().unwrap_or("").to_owned())
            .collect()
    });
    assert_eq!(nodes, ["general-0"]);
    let refused = sb.with(|c| {
        c.eks
            .drain_events
            .iter()
            .filter(|e| e.action == "refused")
            .count()
    });
    assert!(refused > 0, "the PDB held evictions back");
    sb.assert_invariants();
}

const ADDON_SCENARIO: &str = r#"
cluster: {name: prod-a, region: us-east-1, version: "1.32"}
clock: {scale: 1}
eks:
  addons:
    - {name: kube-proxy, version: v1.32.0-eksbuild.2}
    - {name: coredns, version: v1.11.3-eksbuild.1, onUpdate: {result: Fail, code: ConfigurationConflict}}
"#;

async fn addon_sandbox() -> Sandbox {
    let scenario = Scenario::from_yaml(ADDON_SCENARIO).unwrap();
    Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .unwrap()
}

/// `aws --endpoint-url <sandbox> eks <args>`.
fn eks_cli(sb: &Sandbox, args: &[&str]) -> Value {
    let url = sb.eks_url();
    let mut all = vec!["--endpoint-url", url.as_str(), "eks"];
    all.extend_from_slice(args);
    aws(sb, "us-east-1", &all)
}

fn advance_eks(sb: &Sandbox, d: Duration) {
    sb.with(|c| {
        c.clock.advance(d);
        opsteps_sandbox::eks::tick(c);
    });
}

/// The add-on catalogue through the aws CLI with `--endpoint-url`: newest first, one default per
/// Kubernetes version, and the configuration schema as a JSON string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn addon_catalogue_parses_in_the_aws_cli() {
    let sb = addon_sandbox().await;
    tokio::task::block_in_place(|| {
        let v = eks_cli(
            &sb,
            &[
                "describe-addon-versions",
                "--kubernetes-version",
                "1.32",
                "--addon-name",
                "vpc-cni",
            ],
        );
        let versions = v["addons"][0]["addonVersions"].as_array().unwrap();
        let names: Vec<&str> = versions
            .iter()
            .map(|x| x["addonVersion"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "v1.20.4-eksbuild.1", "newest first: {names:?}");
        assert_eq!(names.last(), Some(&"v1.18.6-eksbuild.1"));
        let defaults: Vec<&str> = versions
            .iter()
            .filter(|x| x["compatibilities"][0]["defaultVersion"] == true)
            .map(|x| x["addonVersion"].as_str().unwrap())
            .collect();
        assert_eq!(defaults, ["v1.20.1-eksbuild.3"]);
        assert_eq!(versions[0]["compatibilities"][0]["clusterVersion"], "1.32");
        let schema = eks_cli(
            &sb,
            &[
                "describe-addon-configuration",
                "--addon-name",
                "coredns",
                "--addon-version",
                "v1.11.4-eksbuild.14",
            ],
        );
        let parsed: Value =
            serde_json::from_str(schema["configurationSchema"].as_str().unwrap()).unwrap();
        let replicas = &parsed["definitions"]["Config"]["properties"]["replicaCount"];
        assert_eq!(replicas["type"], "integer");
    });
}

/// The add-on update calls bump-addon makes, through the aws CLI with `--endpoint-url`: an
/// update whose `clientRequestToken` makes a repeat return the same update, DescribeUpdate and
/// ListUpdates while it runs and after, and a failed update's ConfigurationConflict in
/// DescribeUpdate's errors and DescribeAddon's health issues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aws cli"]
async fn addon_updates_parse_in_the_aws_cli() {
    let sb = addon_sandbox().await;
    let update = |addon: &str, version: &str, token: &str| {
        eks_cli(
            &sb,
            &[
                "update-addon",
                "--cluster-name",
                "prod-a",
                "--addon-name",
                addon,
                "--addon-version",
                version,
                "--resolve-conflicts",
                "PRESERVE",
                "--client-request-token",
                token,
            ],
        )
    };
    let describe_update = |addon: &str, id: &str| {
        eks_cli(
            &sb,
            &[
                "describe-update",
                "--name",
                "prod-a",
                "--update-id",
                id,
                "--addon-name",
                addon,
            ],
        )
    };
    let describe_addon = |addon: &str| {
        eks_cli(
            &sb,
            &[
                "describe-addon",
                "--cluster-name",
                "prod-a",
                "--addon-name",
                addon,
            ],
        )
    };
    tokio::task::block_in_place(|| {
        let first = update("kube-proxy", "v1.32.6-eksbuild.2", "bump-addon-test-token");
        let id = first["update"]["id"].as_str().unwrap().to_owned();
        assert_eq!(first["update"]["status"], "InProgress");
        assert_eq!(first["update"]["type"], "AddonUpdate");
        let again = update("kube-proxy", "v1.32.6-eksbuild.2", "bump-addon-test-token");
        assert_eq!(
            again["update"]["id"],
            id.as_str(),
            "same token, same update"
        );
        let running = describe_update("kube-proxy", &id);
        assert_eq!(running["update"]["status"], "InProgress");
        let params = running["update"]["params"].to_string();
        assert!(
            params.contains(r#""type":"AddonVersion","value":"v1.32.6-eksbuild.2""#),
            "{params}"
        );
        assert_eq!(describe_addon("kube-proxy")["addon"]["status"], "UPDATING");
        let listed = eks_cli(
            &sb,
            &[
                "list-updates",
                "--name",
                "prod-a",
                "--addon-name",
                "kube-proxy",
            ],
        );
        assert_eq!(listed["updateIds"], serde_json::json!([id]));
        advance_eks(&sb, Duration::from_mins(2));
        assert_eq!(
            describe_update("kube-proxy", &id)["update"]["status"],
            "Successful"
        );
        let addon = describe_addon("kube-proxy");
        assert_eq!(addon["addon"]["addonVersion"], "v1.32.6-eksbuild.2");
        assert_eq!(addon["addon"]["status"], "ACTIVE");

        let failed = update("coredns", "v1.11.4-eksbuild.14", "another-token");
        let fid = failed["update"]["id"].as_str().unwrap().to_owned();
        advance_eks(&sb, Duration::from_mins(2));
        let done = describe_update("coredns", &fid);
        assert_eq!(done["update"]["status"], "Failed");
        assert_eq!(
            done["update"]["errors"][0]["errorCode"],
            "ConfigurationConflict"
        );
        let addon = describe_addon("coredns");
        assert_eq!(addon["addon"]["status"], "UPDATE_FAILED");
        assert_eq!(
            addon["addon"]["health"]["issues"][0]["code"],
            "ConfigurationConflict"
        );
        assert_eq!(addon["addon"]["addonVersion"], "v1.11.3-eksbuild.1");
    });
}
