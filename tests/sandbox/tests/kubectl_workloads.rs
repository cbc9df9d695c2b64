//! Real kubectl against the sandbox with its controllers running: `drain` on a node whose pods
//! have a PDB (it must block until replacements are Ready, then finish) and `rollout restart` +
//! `rollout status`, with kubectl 1.27 and 1.33.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opsteps_sandbox::podutil;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
use serde_json::Value;

/// kubectl 1.27 and 1.33 (the oldest and newest we support).
fn versions() -> Vec<PathBuf> {
    let all = kubectl_versions();
    let picked: Vec<PathBuf> = all
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n == "kubectl.1.27" || n == "kubectl.1.33")
        })
        .cloned()
        .collect();
    assert!(
        !picked.is_empty(),
        "kubectl 1.27/1.33 not found among {all:?}"
    );
    picked
}

const DRAIN: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 3, instanceType: m5.xlarge}
workloads:
  - {kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {k8s-app: kube-proxy}, requests: {cpu: 100m}}
  # All three replicas start on the node we drain; the budget lets one go at a time.
  - {kind: Deployment, name: web, namespace: shop, replicas: 3, requests: {cpu: 200m, memory: 128Mi},
     placement: {nodes: [workers-0]}, pdb: {minAvailable: 2}, ageRange: [1h, 3h]}
  - {kind: Deployment, name: cache, namespace: shop, replicas: 1, placement: {nodes: [workers-0]},
     volumes: [{name: scratch, emptyDir: {}}]}
  - {kind: Deployment, name: api, namespace: shop, replicas: 2, placement: {nodes: [workers-1]}}
";

fn pods_on(sb: &Sandbox, node: &str) -> Vec<Value> {
    sb.with(|c| {
        c.store
            .list(well_known::pods(), None)
            .filter(|p| podutil::node_name(p) == Some(node))
            .map(|p| (**p).clone())
            .collect()
    })
}

async fn drain_one(bin: &Path) {
    let scenario = Scenario::from_yaml(DRAIN).unwrap();
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .unwrap();
    let web_before: Vec<String> = sb.with(|c| {
        c.store
            .list(well_known::pods(), Some("shop"))
            .filter(|p| p["metadata"]["labels"]["app"] == "web")
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    });
    assert_eq!(web_before.len(), 3);
    assert_eq!(
        pods_on(&sb, "workers-0").len(),
        5,
        "3 web + cache + kube-proxy on the drained node"
    );
    let started = Instant::now();
    let out = kubectl(
        bin,
        sb.kubeconfig_path(),
        &[
            "drain",
            "workers-0",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ],
    )
    .await;
    let elapsed = started.elapsed();
    let stdout = stdout_ok(&out, "kubectl drain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{}: drain took {elapsed:?}\n{stdout}\n{stderr}",
        bin.display()
    );
    assert!(stdout.contains("node/workers-0 cordoned"), "{stdout}");
    assert!(stdout.contains("node/workers-0 drained"), "{stdout}");
    // It blocked on the budget at least once before finishing.
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "drain never hit the PDB:\n{stderr}"
    );
    // The node is cordoned, only the DaemonSet pod remains, and the apps run elsewhere.
    let node = sb.with(|c| c.store.get(well_known::nodes(), "", "workers-0").unwrap());
    assert_eq!(node["spec"]["unschedulable"], true);
    let left = pods_on(&sb, "workers-0");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["metadata"]["labels"]["k8s-app"], "kube-proxy");
    // Let the last replacement finish starting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sb.with(|c| {
        let web: Vec<_> = c
            .store
            .list(well_known::pods(), Some("shop"))
            .filter(|p| p["metadata"]["labels"]["app"] == "web")
            .cloned()
            .collect();
        assert_eq!(web.len(), 3);
        for p in &web {
            assert_ne!(podutil::node_name(p), Some("workers-0"));
            assert!(podutil::is_ready(p));
            assert!(
                !web_before.contains(&p["metadata"]["uid"].as_str().unwrap().to_owned()),
                "replaced with new UIDs"
            );
        }
        let cache = c
            .store
            .list(well_known::pods(), Some("shop"))
            .filter(|p| p["metadata"]["labels"]["app"] == "cache")
            .count();
        assert_eq!(cache, 1);
    });
    // The budget was never violated on the way.
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn drain_blocks_on_pdb_until_replacements_ready() {
    for bin in versions() {
        drain_one(&bin).await;
    }
}

const ROLLOUT: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 3, instanceType: m5.xlarge}
workloads:
  - {kind: Deployment, name: web, namespace: shop, replicas: 4, requests: {cpu: 100m}, pdb: {maxUnavailable: 1}}
  - {kind: StatefulSet, name: db, namespace: shop, replicas: 3}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
";

fn uids(sb: &Sandbox, ns: &str, key: &str, value: &str) -> Vec<String> {
    sb.with(|c| {
        c.store
            .list(well_known::pods(), Some(ns))
            .filter(|p| p["metadata"]["labels"][key] == value && !podutil::is_terminating(p))
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    })
}

async fn rollout_one(bin: &Path) {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(ROLLOUT).unwrap()))
        .await
        .unwrap();
    let kc = sb.kubeconfig_path();
    for (kind, ns, label, n) in [
        ("deployment/web", "shop", "web", 4),
        ("statefulset/db", "shop", "db", 3),
        ("daemonset/agent", "kube-system", "agent", 3),
    ] {
        let before = uids(&sb, ns, "app", label);
        assert_eq!(before.len(), n);
        let out = stdout_ok(
            &kubectl(bin, kc, &["rollout", "restart", kind, "-n", ns]).await,
            "rollout restart",
        );
        assert!(out.contains("restarted"), "{out}");
        let started = Instant::now();
        let out = kubectl(
            bin,
            kc,
            &["rollout", "status", kind, "-n", ns, "--timeout=90s"],
        )
        .await;
        let status = stdout_ok(&out, "rollout status");
        eprintln!(
            "{}: {kind} rolled out in {:?}\n{status}",
            bin.display(),
            started.elapsed()
        );
        // StatefulSets with a (defaulted) partition report "partitioned roll out complete", as upstream.
        assert!(
            status.contains("successfully rolled out") || status.contains("roll out complete"),
            "{status}"
        );
        let after = uids(&sb, ns, "app", label);
        assert_eq!(after.len(), n, "{kind}");
        assert!(
            after.iter().all(|u| !before.contains(u)),
            "{kind}: every pod replaced"
        );
    }
    let history = stdout_ok(
        &kubectl(
            bin,
            kc,
            &["rollout", "history", "deployment/web", "-n", "shop"],
        )
        .await,
        "rollout history",
    );
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn rollout_restart_and_status_complete() {
    for bin in versions() {
        rollout_one(&bin).await;
    }
}
