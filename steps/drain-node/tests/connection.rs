//! How the binary reaches a cluster: `$KUBECONFIG` lists as kubectl reads them, and the IAM
//! bearer token never over plain http.

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const BIN: &str = env!("CARGO_BIN_EXE_drain-node");

const SCENARIO: &str = r#"
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 2, placement: {nodes: [a]}}
eks:
  accessEntries:
    - {accessKeyId: AKIDSANDBOXTEST, username: ops-runner, groups: ["system:masters"]}
"#;

async fn sandbox(tls: bool) -> Sandbox {
    Sandbox::start(
        Options::default()
            .tls(tls)
            .scenario(Scenario::from_yaml(SCENARIO).unwrap()),
    )
    .await
    .unwrap()
}

fn out_flags(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--output-dir".into(),
        dir.join("out").display().to_string(),
        "--termination-log".into(),
        dir.join("termination-log").display().to_string(),
    ]
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_list_in_the_environment_is_merged_as_kubectl_does() {
    let sb = sandbox(true).await;
    let dir = tempfile::tempdir().unwrap();
    // The first file sets nothing that matters; the second has the sandbox and its context.
    let first = dir.path().join("first");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\nclusters:\n- {name: elsewhere, cluster: {server: 'https://127.0.0.1:1'}}\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let list = std::env::join_paths([
        dir.path().join("missing"),
        first,
        sb.kubeconfig_path().to_owned(),
    ])
    .unwrap();
    let mut args = vec![
        "--node".to_owned(),
        "a".into(),
        "--dry-run".into(),
        "client".into(),
    ];
    args.extend(out_flags(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = opsteps_testkit::run_env(BIN, &args, &[("KUBECONFIG", list.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        sb.requests().iter().any(|r| r.resource == "nodes"),
        "the step reached the sandbox through the merged kubeconfig"
    );
    assert!(sb.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_kubernetes_endpoint_from_describe_cluster_is_refused() {
    // Without TLS the sandbox's DescribeCluster answers an http:// endpoint.
    let sb = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--node".to_owned(),
        "a".into(),
        "--eks-cluster".into(),
        "sandbox".into(),
    ];
    args.extend(out_flags(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = opsteps_sandbox::eks::client_env(&sb.eks_url(), "us-east-1");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = opsteps_testkit::run_env(BIN, &args, &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not https"), "{}", stderr(&out));
    assert!(
        sb.requests().is_empty(),
        "no Kubernetes request, so no token sent: {:?}",
        sb.requests()
    );
}

#[test]
fn an_http_eks_api_endpoint_is_accepted_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--node".to_owned(),
        "a".into(),
        "--eks-cluster".into(),
        "prod".into(),
        "--region".into(),
        "eu-west-1".into(),
    ];
    args.extend(out_flags(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (var, url) in [
        ("AWS_ENDPOINT_URL_EKS", "http://10.255.255.1:9"),
        ("AWS_ENDPOINT_URL", "http://eks.internal.example"),
    ] {
        let started = std::time::Instant::now();
        let out = opsteps_testkit::run_env(BIN, &args, &[(var, url)]);
        assert_eq!(out.status.code(), Some(2), "{var}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("must be https") && stderr(&out).contains(var),
            "{}",
            stderr(&out)
        );
        // Refused before any connection attempt (10.255.255.1 would time out).
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
