//! A drain that outlives its EKS token keeps working: the token is re-signed in the background.
//!
//! `--eks-token-lifetime` accepts 1m to 15m, but at clock scale 60 the sandbox accepts a token
//! for 15 real seconds, so this test needs a 5 s lifetime, below what the flag allows. It sets
//! it on the parsed `Args` and runs the drain in-process. The AWS settings come from the
//! environment (process-global; `set_var` is unsafe, which the workspace forbids), so the drain
//! runs in a child process: this test binary re-executed with only the ignored child test.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use opsteps::duration::GoDuration;
use opsteps::exit::ExitStatus;
use opsteps::step::Context;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const CHILD: &str = "DRAIN_NODE_EKS_TOKEN_CHILD_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_token_drain_longer_than_the_token_lifetime_keeps_working_in_process() {
    // At scale 60 an EKS token is accepted for 15 real seconds. Slow readiness (90 s virtual =
    // 1.5 s real per replacement) and a budget of one make this drain take longer than that.
    let yaml = r#"
clock: {scale: 60}
kubelet: {startDelay: 1s, readyDelay: 90s}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 12, terminationGracePeriodSeconds: 5, placement: {nodes: [a]}, pdb: {maxUnavailable: 1}}
eks:
  # Tokens age on the virtual clock (the sandbox's default is real time), so 15 real seconds.
  tokenClock: virtual
  accessEntries:
    - {accessKeyId: AKIDSANDBOXTEST, username: ops-runner, groups: ["system:masters"]}
"#;
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(yaml).unwrap()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "eks_token_refresh::child_drains_with_a_short_token_lifetime",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD, dir.path())
        .envs(opsteps_sandbox::eks::client_env(&sb.eks_url(), "us-east-1"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KUBECONFIG");
    let started = std::time::Instant::now();
    // The sandbox keeps serving on this runtime while the child runs on a blocking thread.
    let out = tokio::task::spawn_blocking(move || child.output())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child test ran"
    );
    assert!(
        took > Duration::from_secs(16),
        "the drain must outlive one token to test anything ({took:?})"
    );
    let left = sb.with(|c| {
        c.store
            .list(opsteps_sandbox::store::res("", "pods"), None)
            .filter(|p| p["spec"]["nodeName"] == "a")
            .count()
    });
    assert_eq!(left, 0, "node a drained");
    let unauthorized = sb.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(unauthorized, 0, "every request carried a live token");
    let evictions = sb
        .requests()
        .iter()
        .filter(|r| r.subresource == "eviction" && r.status == 201)
        .count();
    assert_eq!(evictions, 12);
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by eks_token_drain_longer_than_the_token_lifetime_keeps_working_in_process in a child process with AWS_* set"]
async fn child_drains_with_a_short_token_lifetime() {
    let Some(dir) = std::env::var_os(CHILD).map(PathBuf::from) else {
        return;
    };
    let path = |p: &str| dir.join(p).display().to_string();
    let mut args = drain_node::Args::try_parse_from([
        drain_node::STEP,
        "--node",
        "a",
        "--eks-cluster",
        "sandbox",
        "--output-dir",
        &path("out"),
        "--termination-log",
        &path("termination-log"),
        "--progress-interval",
        "1s",
    ])
    .unwrap();
    args.common.cluster.eks_token_lifetime = GoDuration(Duration::from_secs(5));
    let ctx = Context::new(drain_node::STEP, &args.common).unwrap();
    let report = drain_node::run(args, ctx).await.unwrap();
    assert_eq!(report.status, ExitStatus::Done, "{}", report.summary);
}
