//! Parity with `kubectl drain`: on identical sandboxes, kubectl and drain-node with the same
//! flags evict, skip and refuse the same pods. Runs every kubectl version on the machine.

use crate::common;

use std::collections::BTreeSet;

use common::Env;
use opsteps::exit::ExitStatus;
use opsteps_sandbox::testing::{kubectl, kubectl_versions};

/// One node with every kind of pod kubectl's filters care about, and a node to move to.
const MIXED: &str = r#"
clock: {scale: 60}
kubelet: {startDelay: 1s, readyDelay: 1s}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 2, placement: {nodes: [a]}, pdb: {maxUnavailable: 1}}
  - {kind: StatefulSet, name: db, replicas: 1, placement: {nodes: [a]}}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
  - {kind: StaticPod, name: etcd-proxy, namespace: kube-system, placement: {nodes: [a]}}
  - {name: cache, replicas: 1, placement: {nodes: [a]}, volumes: [{name: tmp, emptyDir: {}}]}
  - {kind: Pod, name: debug, placement: {nodes: [a]}}
  - {kind: Pod, name: finished, phase: Succeeded, placement: {nodes: [a]}}
"#;

/// Pods left on node `a`, with generated suffixes cut so two sandboxes compare equal.
fn left(env: &Env) -> BTreeSet<String> {
    env.pods_on("a").into_iter().map(|p| stable(&p)).collect()
}

/// `default/web-7d9f-abcde` → `default/web`; `kube-system/agent-xyz12` → `kube-system/agent`.
fn stable(pod: &str) -> String {
    let (ns, name) = pod.split_once('/').unwrap();
    let base = [
        "web",
        "db",
        "agent",
        "etcd-proxy",
        "cache",
        "debug",
        "finished",
    ]
    .into_iter()
    .find(|b| name.starts_with(b))
    .unwrap_or(name);
    format!("{ns}/{base}")
}

/// Pods named in kubectl's "cannot delete ..." error lines.
fn refused_by_kubectl(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter(|l| l.contains("cannot delete"))
        .flat_map(|l| l.split([' ', ',']).map(str::to_owned).collect::<Vec<_>>())
        .filter(|w| w.contains('/') && !w.starts_with(['(', '-']) && !w.contains('"'))
        .map(|w| stable(w.trim_end_matches([',', '.', ':'])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kubectl"]
async fn same_pods_evicted_skipped_and_refused_as_kubectl_drain() {
    let versions = kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    let flag_sets: [&[&str]; 3] = [
        &["--ignore-daemonsets"],
        &["--ignore-daemonsets", "--delete-emptydir-data"],
        &["--ignore-daemonsets", "--delete-emptydir-data", "--force"],
    ];
    for bin in &versions {
        for flags in flag_sets {
            let theirs = Env::new(MIXED).await;
            let mut args = vec!["drain", "a", "--timeout", "60s"];
            args.extend_from_slice(flags);
            let out = kubectl(bin, theirs.sb.kubeconfig_path(), &args).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

            let ours = Env::new(MIXED).await;
            let mut args = vec!["--node", "a"];
            args.extend(flags.iter().filter(|f| **f != "--ignore-daemonsets"));
            let result = ours.run(&args).await;

            let label = format!("{} {flags:?}", bin.display());
            if out.status.success() {
                assert_eq!(
                    result.status,
                    ExitStatus::Done,
                    "{label}: kubectl drained, we did not: {}",
                    result.summary
                );
                assert_eq!(
                    left(&theirs),
                    left(&ours),
                    "{label}: different pods left on the node"
                );
            } else {
                assert_eq!(
                    result.status,
                    ExitStatus::Blocked,
                    "{label}: kubectl refused ({stderr}), we did not"
                );
                let ours_refused: BTreeSet<String> = ours
                    .output("blocked-pods")
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| stable(b["pod"].as_str().unwrap()))
                    .collect();
                assert_eq!(
                    refused_by_kubectl(&stderr),
                    ours_refused,
                    "{label}: different pods refused\n{stderr}"
                );
                // kubectl cordons before refusing; we refuse before cordoning.
                assert!(!ours.unschedulable("a"));
            }
            theirs.sb.assert_invariants();
            ours.sb.assert_invariants();
        }
    }
}
