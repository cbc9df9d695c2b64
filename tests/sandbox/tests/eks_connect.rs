//! `opsteps::connect` by `--eks-cluster` alone against the sandbox: DescribeCluster (through
//! `AWS_ENDPOINT_URL_EKS`) → endpoint and CA → EKS token → list nodes over HTTPS.
//!
//! The AWS settings come from the environment, which is process-global (and `set_var` is unsafe,
//! which the workspace forbids), so the client runs in a child process: this test binary
//! re-executed with only the ignored `child_connects_and_lists_nodes` test and `AWS_*` set.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use opsteps::cli::{AwsArgs, ClusterArgs};
use opsteps::connect::{Source, connect};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const CHILD: &str = "OPSTEPS_SANDBOX_EKS_CONNECT_CHILD";

const SCENARIO: &str = r#"
cluster: {name: prod-a, region: eu-west-1, version: "1.33"}
clock: {scale: 1}
nodeGroups:
  - {name: general, count: 3}
eks:
  tokenClock: virtual
  accessEntries:
    - {accessKeyId: AKIDSANDBOXTEST, username: ops-runner, groups: ["system:masters"]}
"#;

#[tokio::test]
async fn connect_by_eks_cluster_lists_nodes() {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap();
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "eks_connect::child_connects_and_lists_nodes",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .envs(opsteps_sandbox::eks::client_env(&sb.eks_url(), "eu-west-1"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KUBECONFIG");
    // The sandbox keeps serving on this runtime while the child runs on a blocking thread.
    let out = tokio::task::spawn_blocking(move || child.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("nodes listed: 3"), "{stdout}");
    assert_eq!(sb.with(|c| c.eks.requests_of("DescribeCluster").len()), 1);
    let listed: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/nodes" && r.verb == "list")
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].status, 200);
    assert_eq!(
        listed[0].user, "ops-runner",
        "the access entry maps the key"
    );
}

/// The pieces `connect` uses, in-process with explicit credentials: DescribeCluster through
/// aws-sdk-eks, the CA as root, opsteps' `TokenSource` and `BearerLayer`. The token is accepted,
/// then refused with 401 once the virtual clock has moved 16 minutes (it is only re-signed after
/// 80% of its real-time lifetime).
#[tokio::test]
async fn token_source_client_gets_401_after_fifteen_virtual_minutes() {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap();
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .unwrap();
    let creds = aws_credential_types::Credentials::new(
        "AKIDSANDBOXTEST",
        "connect-test-secret",
        None,
        None,
        "test",
    );
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new("eu-west-1"))
        .credentials_provider(creds.clone())
        .endpoint_url(sb.eks_url())
        .build();
    let eks = aws_sdk_eks::Client::from_conf(conf);
    let described = opsteps::eks::describe_cluster(&eks, "prod-a")
        .await
        .unwrap();
    let mut config = kube::Config::new(described.endpoint.unwrap().parse().unwrap());
    let pem = String::from_utf8(described.ca_pem.unwrap()).unwrap();
    let der = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    config.root_cert = Some(vec![
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, der).unwrap(),
    ]);
    let source = opsteps::eks_token::TokenSource::start(
        "prod-a",
        "eu-west-1",
        aws_credential_types::provider::SharedCredentialsProvider::new(creds),
        std::time::Duration::from_mins(10),
    )
    .await
    .unwrap();
    let client = opsteps::connect::build_client(config, Some(source)).unwrap();
    let nodes: Api<Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&kube::api::ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    sb.with(|c| c.clock.advance(std::time::Duration::from_mins(16)));
    match nodes.list(&kube::api::ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "run by connect_by_eks_cluster_lists_nodes in a child process with AWS_* set"]
async fn child_connects_and_lists_nodes() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let cluster = ClusterArgs {
        eks_cluster: Some("prod-a".into()),
        eks_token_lifetime: "10m".parse().unwrap(),
        ..ClusterArgs::default()
    };
    let aws = AwsArgs {
        region: Some("eu-west-1".into()),
    };
    let conn = connect(&cluster, &aws)
        .await
        .expect("connect by --eks-cluster");
    assert_eq!(conn.source, Source::Eks);
    assert_eq!(conn.identity.eks_name.as_deref(), Some("prod-a"));
    assert!(conn.identity.server.starts_with("https://127.0.0.1:"));
    let nodes: Api<Node> = Api::all(conn.client.clone());
    let list = nodes
        .list(&kube::api::ListParams::default())
        .await
        .expect("list nodes");
    #[allow(clippy::print_stdout)]
    {
        println!("nodes listed: {}", list.items.len());
    }
}
