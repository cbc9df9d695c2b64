//! Snapshots of what workflows and operators read: `--help`, and the JSON result and output
//! files of a representative drain. A change to either is a reviewed diff (`cargo insta review`).

use crate::common;

use std::process::Command;

use common::Env;
use opsteps::exit::ExitStatus;

const BIN: &str = env!("CARGO_BIN_EXE_drain-node");

/// Generated names (ReplicaSet hashes, pod suffixes) and timings, replaced so that the snapshot
/// holds what the contract fixes.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"-[a-z0-9]{10}-[a-z0-9]{5}\b", "-[hash]-[id]"),
        (r"(ReplicaSet/[a-z-]+)-[a-z0-9]{10}\b", "$1-[hash]"),
        (r"(agent)-[a-z0-9]{5}\b", "$1-[id]"),
        (
            r#""seconds_blocked": \d+"#,
            r#""seconds_blocked": "[secs]""#,
        ),
    ]
}

#[test]
fn help() {
    let out = Command::new(BIN)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_and_outputs_of_a_drain() {
    let env = Env::new(
        r#"
clock: {scale: 60}
kubelet: {startDelay: 1s, readyDelay: 1s}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 2, requests: {cpu: 250m, memory: 256Mi}, placement: {nodes: [a]}, pdb: {maxUnavailable: 1}}
  - {name: slow, replicas: 1, terminationGracePeriodSeconds: 120, placement: {nodes: [a]}}
  - {name: dns, replicas: 1, priorityClassName: system-cluster-critical, placement: {nodes: [a]}}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
  - {kind: StaticPod, name: kube-proxy, namespace: kube-system, placement: {nodes: [a]}}
"#,
    )
    .await;
    // An earlier run's eviction: the drain only waits for this one. A 600 s grace (10 s real)
    // keeps it terminating however slowly the drain starts.
    let slow = env
        .pods_on("a")
        .into_iter()
        .find(|p| p.starts_with("default/slow-"))
        .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.client().await, "default");
    api.delete(
        slow.split('/').nth(1).unwrap(),
        &kube::api::DeleteParams::default().grace_period(600),
    )
    .await
    .unwrap();
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    insta::with_settings!({ filters => filters() }, {
        insta::assert_json_snapshot!("result", out.result);
        for name in ["summary", "drained-nodes", "blocked-pods", "plan"] {
            insta::assert_json_snapshot!(name, env.output(name));
        }
    });
}
