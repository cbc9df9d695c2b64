//! Real kubectl against the sandbox with its controllers running: `drain` on a node whose pods
//! have a PDB (it must block until replacements are Ready, then finish) and `rollout restart` +
//! `rollout status`, with kubectl 1.27 and 1.33; `delete --cascade=orphan|foreground` and
//! `rollout undo` with every kubectl on the machine.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

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

/// Every kubectl on the machine (1.27 to 1.33).
fn all_versions() -> Vec<PathBuf> {
    let all = kubectl_versions();
    assert!(!all.is_empty(), "no kubectl found");
    all
}

const CASCADE: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 2, instanceType: m5.xlarge}
workloads:
  - {kind: Deployment, name: kept, namespace: shop, replicas: 2}
  # Five virtual minutes of grace: its pods stay Terminating for about five real seconds.
  - {kind: Deployment, name: slow, namespace: shop, replicas: 2, terminationGracePeriodSeconds: 300}
";

fn owned_by(
    sb: &Sandbox,
    res: &'static opsteps_sandbox::resources::ResourceInfo,
    app: &str,
) -> Vec<Value> {
    sb.with(|c| {
        c.store
            .list(res, Some("shop"))
            .filter(|o| o["metadata"]["labels"]["app"] == app)
            .map(|o| (**o).clone())
            .collect()
    })
}

async fn cascade_one(bin: &Path) {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(CASCADE).unwrap()))
        .await
        .unwrap();
    let kc = sb.kubeconfig_path();
    // Orphan: the Deployment goes, its ReplicaSet and pods stay without the owner reference.
    let rs_before = owned_by(&sb, well_known::replicasets(), "kept");
    let pods_before = owned_by(&sb, well_known::pods(), "kept");
    assert_eq!((rs_before.len(), pods_before.len()), (1, 2));
    let out = stdout_ok(
        &kubectl(
            bin,
            kc,
            &[
                "delete",
                "deployment/kept",
                "-n",
                "shop",
                "--cascade=orphan",
                "--timeout=60s",
            ],
        )
        .await,
        "delete --cascade=orphan",
    );
    assert!(out.contains("deleted"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sb.with(|c| {
        c.store
            .get(well_known::deployments(), "shop", "kept")
            .is_none()
    }));
    let rs = owned_by(&sb, well_known::replicasets(), "kept");
    assert_eq!(rs.len(), 1, "the ReplicaSet stays");
    assert_eq!(rs[0]["metadata"]["uid"], rs_before[0]["metadata"]["uid"]);
    assert!(
        rs[0]["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "owner reference removed: {}",
        rs[0]["metadata"]
    );
    assert!(rs[0]["metadata"]["deletionTimestamp"].is_null());
    let pods = owned_by(&sb, well_known::pods(), "kept");
    assert_eq!(pods.len(), 2, "pods stay");
    assert!(pods.iter().all(|p| !podutil::is_terminating(p)));

    // Foreground: the Deployment stays, marked, until its ReplicaSet and pods are gone.
    let out = stdout_ok(
        &kubectl(
            bin,
            kc,
            &[
                "delete",
                "deployment/slow",
                "-n",
                "shop",
                "--cascade=foreground",
                "--wait=false",
            ],
        )
        .await,
        "delete --cascade=foreground",
    );
    assert!(out.contains("deleted"), "{out}");
    let got = stdout_ok(
        &kubectl(
            bin,
            kc,
            &["get", "deployment/slow", "-n", "shop", "-o", "json"],
        )
        .await,
        "get while deleting",
    );
    let d: Value = serde_json::from_str(&got).unwrap();
    assert!(
        !d["metadata"]["deletionTimestamp"].is_null(),
        "{}",
        d["metadata"]
    );
    assert_eq!(
        d["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    // `kubectl wait` fails when the object is already gone; either way it must be gone after.
    let _ = kubectl(
        bin,
        kc,
        &[
            "wait",
            "--for=delete",
            "deployment/slow",
            "-n",
            "shop",
            "--timeout=60s",
        ],
    )
    .await;
    let deadline = Instant::now() + Duration::from_mins(1);
    while sb.with(|c| {
        c.store
            .get(well_known::deployments(), "shop", "slow")
            .is_some()
    }) {
        assert!(
            Instant::now() < deadline,
            "foreground deletion never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(owned_by(&sb, well_known::replicasets(), "slow").is_empty());
    assert!(owned_by(&sb, well_known::pods(), "slow").is_empty());
    // The owner outlived every dependent: its DELETED event comes after theirs.
    let order: Vec<(String, String)> = sb.with(|c| {
        let from = c.store.oldest_resumable();
        let mut out = Vec::new();
        for res in [
            well_known::pods(),
            well_known::replicasets(),
            well_known::deployments(),
        ] {
            for e in c.store.events_since(res, from).unwrap() {
                if e.kind == opsteps_sandbox::store::EventType::Deleted
                    && e.object["metadata"]["labels"]["app"] == "slow"
                {
                    out.push((e.rv.to_string(), res.kind.to_owned()));
                }
            }
        }
        out.sort_by_key(|(rv, _)| rv.parse::<u64>().unwrap());
        out
    });
    let kinds: Vec<&str> = order.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["Pod", "Pod", "ReplicaSet", "Deployment"],
        "{order:?}"
    );
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn delete_cascade_orphan_and_foreground() {
    for bin in all_versions() {
        cascade_one(&bin).await;
    }
}

const UNDO: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 2, instanceType: m5.xlarge}
workloads:
  - {kind: Deployment, name: web, namespace: shop, replicas: 3, image: registry.example/web:1.0}
";

async fn undo_one(bin: &Path) {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(UNDO).unwrap()))
        .await
        .unwrap();
    let kc = sb.kubeconfig_path();
    let first = owned_by(&sb, well_known::replicasets(), "web");
    assert_eq!(first.len(), 1);
    let first_name = first[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let _ = stdout_ok(
        &kubectl(
            bin,
            kc,
            &[
                "set",
                "image",
                "deployment/web",
                "web=registry.example/web:2.0",
                "-n",
                "shop",
            ],
        )
        .await,
        "set image",
    );
    let _ = stdout_ok(
        &kubectl(
            bin,
            kc,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "shop",
                "--timeout=90s",
            ],
        )
        .await,
        "rollout status",
    );
    let _ = stdout_ok(
        &kubectl(
            bin,
            kc,
            &["rollout", "undo", "deployment/web", "-n", "shop"],
        )
        .await,
        "rollout undo",
    );
    let _ = stdout_ok(
        &kubectl(
            bin,
            kc,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "shop",
                "--timeout=90s",
            ],
        )
        .await,
        "rollout status after undo",
    );
    let sets = owned_by(&sb, well_known::replicasets(), "web");
    let summary: Vec<(String, i64)> = sets
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_owned(),
                rs["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sets.len(),
        2,
        "undo re-uses the first ReplicaSet: {summary:?}"
    );
    let back = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] == first_name.as_str())
        .expect("first ReplicaSet kept");
    assert_eq!(back["spec"]["replicas"], 3, "{summary:?}");
    assert_eq!(
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let other = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] != first_name.as_str())
        .unwrap();
    assert_eq!(other["spec"]["replicas"], 0, "{summary:?}");
    let pods = owned_by(&sb, well_known::pods(), "web");
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| !podutil::is_terminating(p))
        .collect();
    assert_eq!(running.len(), 3);
    assert!(
        running
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "registry.example/web:1.0")
    );
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn rollout_undo_scales_the_old_replicaset_back() {
    for bin in all_versions() {
        undo_one(&bin).await;
    }
}
