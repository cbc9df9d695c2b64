//! evict-old-pods against the sandbox: one test per rule of podlifetime.md §4, the issue's
//! acceptance items (seed policy, PDB on a 6-replica Deployment, dry runs, bad input). Each
//! test asserts on the cluster state afterwards, the request log and the sandbox invariants.
//!
//! Ages are measured at `--now` (the scenario clock's start unless a test says otherwise), so
//! they are exact whatever the virtual clock has done since; replacements created during the
//! test are younger than that instant and are never candidates.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::Parser;
use common::*;
use evict_old_pods::{Args, STEP};
use opsteps::exit::ExitStatus;
use opsteps::step::Context;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::Sandbox;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// §4 rule 1: age from creationTimestamp, not startTime or the container's startedAt.

#[tokio::test(flavor = "multi_thread")]
async fn rule1_age_is_from_creation_not_start_or_restarts() {
    let sb = start(
        "workloads:
  - {name: slowstart, namespace: a, replicas: 1, age: 10h, startDelay: 3h}
  - {name: restarting, namespace: a, replicas: 1, age: 10h, restarts: {count: 7, every: 1h}}
  - {name: young, namespace: a, replicas: 1, age: 7h}
",
    )
    .await;
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--wait-for-replacement=false"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    let evicted = out.with_verdict("evicted");
    assert_eq!(evicted.len(), 2, "{evicted:?}");
    assert!(
        evicted
            .iter()
            .all(|p| p.contains("slowstart") || p.contains("restarting"))
    );
    assert!(original_pods(&sb, "a").iter().all(|p| p.contains("young")));
    assert_clean(&sb);
}

// §4 rule 2: strictly greater, whole seconds; max + 0.9 s stays; a future creation never matches.

#[tokio::test(flavor = "multi_thread")]
async fn rule2_strictly_greater_in_whole_seconds_and_never_in_the_future() {
    let sb = start(
        "workloads:
  - {name: exact, namespace: a, replicas: 1, age: 8h}
  - {name: over, namespace: a, replicas: 1, age: 8h0m1s}
  - {name: future, namespace: b, replicas: 1, age: 1h}
  - {name: old, namespace: b, replicas: 1, age: 10h}
",
    )
    .await;
    // At max + 0.9 s the "exact" pod is 28800.9 s old: whole seconds 28800, not > 28800.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime-seconds",
            "28800",
            "--namespaces",
            "a",
            "--now",
            "2026-11-26T10:00:00.9Z",
            "--wait-for-replacement=false",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev.iter().next().unwrap().starts_with("a/over-"));
    assert_eq!(original_pods(&sb, "a").len(), 1);
    // Seen from two hours earlier, the 1h pod was created in the future: never a candidate,
    // even with a lifetime of 0; the 10h pod was 8 h old then.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "0s",
            "--namespaces",
            "b",
            "--now",
            "2026-11-26T08:00:00Z",
            "--wait-for-replacement=false",
        ],
    )
    .await;
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 1, "{}", out.result);
    assert!(ev.iter().next().unwrap().starts_with("b/old-"));
    assert!(
        original_pods(&sb, "b")
            .iter()
            .all(|p| p.starts_with("b/future-"))
    );
    assert_clean(&sb);
}

// §4 rule 3: candidates across all Ready nodes, oldest first.

#[tokio::test(flavor = "multi_thread")]
async fn rule3_oldest_first_across_nodes() {
    let sb = start(
        "workloads:
  - {name: web, namespace: a, replicas: 4, ageRange: [9h, 12h]}
  - {name: api, namespace: b, replicas: 3, ageRange: [9h30m, 13h30m]}
",
    )
    .await;
    let created: BTreeMap<String, String> = sb.with(|c| {
        c.store
            .list(well_known::pods(), None)
            .map(|p| {
                (
                    format!(
                        "{}/{}",
                        p["metadata"]["namespace"].as_str().unwrap(),
                        p["metadata"]["name"].as_str().unwrap()
                    ),
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    });
    let nodes: BTreeSet<String> = sb.with(|c| {
        c.store
            .list(well_known::pods(), None)
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
            .collect()
    });
    assert!(nodes.len() > 1, "pods spread over nodes: {nodes:?}");
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--max-total",
            "7",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    let order = evictions(&sb);
    assert_eq!(order.len(), 7, "{order:?}");
    let times: Vec<&String> = order.iter().map(|p| &created[p]).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(
        times, sorted,
        "eviction requests go oldest first: {order:?}"
    );
    // The report lists them in the same order.
    let reported: Vec<String> = out.result["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["created"].as_str().unwrap().to_owned())
        .collect();
    let mut r2 = reported.clone();
    r2.sort();
    assert_eq!(reported, r2);
    assert_clean(&sb);
}

// §4 rule 4: protections; unscheduled pods and pods on NotReady nodes; fewer than 2 Ready nodes.

#[tokio::test(flavor = "multi_thread")]
async fn rule4_protected_pods_are_never_evicted() {
    let sb = start(
        "workloads:
  - {kind: DaemonSet, name: agent, namespace: p, age: 30d, protected: true}
  - {kind: StaticPod, name: etcdish, age: 30d}
  - {name: critical, namespace: p, replicas: 1, age: 30d, priorityClassName: system-cluster-critical, protected: true}
  - {kind: Pod, name: bare, namespace: p, age: 30d, protected: true}
  - {name: scratch, namespace: p, replicas: 1, age: 30d, volumes: [{name: tmp, emptyDir: {}}], protected: true}
  - {name: hostpath, namespace: p, replicas: 1, age: 30d, volumes: [{name: h, hostPath: {path: /var/log}}], protected: true}
  - {name: stuck, namespace: p, replicas: 1, age: 30d, hangOnTermination: true}
  - {name: nowhere, namespace: p, replicas: 1, age: 30d, nodeSelector: {no: such-node}, protected: true}
  - {name: plain, namespace: p, replicas: 1, age: 30d}
",
    )
    .await;
    // A terminating pod: delete the "stuck" pod (it never finishes terminating).
    let stuck = pods(&sb, "p")
        .into_keys()
        .find(|k| k.contains("stuck"))
        .unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "p");
    api.delete(
        stuck.trim_start_matches("p/"),
        &kube::api::DeleteParams::default(),
    )
    .await
    .unwrap();
    let before = sb.requests().len();
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "1h", "--wait-for-replacement=false"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    let v = out.verdicts();
    let verdict_of = |prefix: &str| {
        v.iter()
            .filter(|(k, _)| k.contains(prefix))
            .map(|(_, v)| v.as_str())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(verdict_of("/agent-"), BTreeSet::from(["skipped-daemonset"]));
    assert_eq!(verdict_of("/etcdish-"), BTreeSet::from(["skipped-mirror"]));
    assert_eq!(
        verdict_of("/critical-"),
        BTreeSet::from(["skipped-system-critical"])
    );
    assert_eq!(verdict_of("p/bare"), BTreeSet::from(["skipped-bare"]));
    assert_eq!(
        verdict_of("/scratch-"),
        BTreeSet::from(["skipped-local-storage"])
    );
    assert_eq!(
        verdict_of("/hostpath-"),
        BTreeSet::from(["skipped-local-storage"])
    );
    assert_eq!(verdict_of(&stuck), BTreeSet::from(["skipped-terminating"]));
    assert_eq!(
        verdict_of("/nowhere-"),
        BTreeSet::from(["skipped-unscheduled"])
    );
    assert_eq!(verdict_of("/plain-"), BTreeSet::from(["evicted"]));
    let ev: Vec<String> = evictions(&sb);
    assert_eq!(ev.len(), 1, "only the plain pod: {ev:?}");
    assert!(
        sb.requests()[before..]
            .iter()
            .filter(|r| r.mutating)
            .all(|r| r.subresource == "eviction" || r.resource == "events")
    );
    assert_clean(&sb);

    // Protections can be turned off one by one, as the DefaultEvictor's switches.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "1h",
            "--wait-for-replacement=false",
            "--evict-local-storage-pods",
            "--namespaces",
            "p",
            "--selector",
            "app in (scratch,hostpath)",
        ],
    )
    .await;
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn rule4_pods_on_not_ready_nodes_are_skipped() {
    let sb = start_yaml(
        "cluster: {name: t}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: w, count: 3}
nodeEvents:
  - {after: 1s, node: w-2, state: NotReady}
workloads:
  - {name: sick, namespace: a, replicas: 2, age: 10h, placement: {nodes: [w-2]}}
  - {name: fine, namespace: a, replicas: 2, age: 10h, placement: {nodes: [w-0, w-1]}}
",
    )
    .await;
    // Wait for the node to go NotReady on the virtual clock.
    for _ in 0..200 {
        let ready = sb.with(|c| {
            c.store
                .get(well_known::nodes(), "", "w-2")
                .and_then(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
                })
                .is_some_and(|c| c["status"] == "True")
        });
        if !ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--wait-for-replacement=false"],
    )
    .await;
    assert_eq!(out.result["readyNodes"], 2, "{}", out.result);
    let v = out.verdicts();
    for (k, verdict) in &v {
        if k.contains("/sick-") {
            assert_eq!(verdict, "skipped-node-not-ready", "{k}");
        } else {
            assert_eq!(verdict, "evicted", "{k}");
        }
    }
    assert_eq!(out.with_verdict("evicted").len(), 2);
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn rule4_no_cycle_with_fewer_than_two_ready_nodes() {
    let sb = start_yaml(
        "cluster: {name: t}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: w, count: 1}
workloads:
  - {name: web, namespace: a, replicas: 2, age: 10h}
",
    )
    .await;
    let out = step(sb.kubeconfig_path(), &["--max-pod-lifetime", "8h"]).await;
    assert_eq!(out.status, ExitStatus::Done);
    assert!(
        out.result["cycleSkipped"]
            .as_str()
            .unwrap()
            .contains("1 Ready node"),
        "{}",
        out.result
    );
    assert!(sb.mutations().is_empty());
    assert_eq!(original_pods(&sb, "a").len(), 2);
}

// §4 rule 5: the evict annotation overrides protections, not the filters.

#[tokio::test(flavor = "multi_thread")]
async fn rule5_evict_annotation_overrides_protections_not_filters() {
    let ann = "podAnnotations: {descheduler.alpha.kubernetes.io/evict: \"false\"}";
    let sb = start(&format!(
        "workloads:
  - {{name: scratch, namespace: a, replicas: 1, age: 10h, volumes: [{{name: t, emptyDir: {{}}}}], {ann}}}
  - {{kind: Pod, name: bare, namespace: a, age: 10h, {ann}}}
  - {{name: young, namespace: a, replicas: 1, age: 1h, {ann}, protected: true}}
  - {{name: other, namespace: a, replicas: 1, age: 10h, labels: {{app: other, team: x}}, {ann}, protected: true}}
  - {{name: elsewhere, namespace: b, replicas: 1, age: 10h, {ann}, protected: true}}
"
    ))
    .await;
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--namespaces",
            "a",
            "--selector",
            "!team",
            "--wait-for-replacement=false",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().any(|p| p.starts_with("a/scratch-")) && ev.contains("a/bare"));
    assert_clean(&sb);
}

// §4 rule 6: limits total → node → namespace before the call; failures do not count; reset per run.

#[tokio::test(flavor = "multi_thread")]
async fn rule6_limits_are_checked_in_order_and_count_only_successes() {
    let sb = start(
        "workloads:
  - {name: locked, namespace: a, replicas: 2, age: 20h, pdb: {maxUnavailable: 0}}
  - {name: web, namespace: a, replicas: 3, age: 12h}
  - {name: api, namespace: b, replicas: 3, age: 11h}
",
    )
    .await;
    // Total 2: the two oldest pods are PDB-blocked (failures, not counted), so two others go.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--max-total",
            "2",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "0s",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.result);
    assert_eq!(
        out.with_verdict("blocked-by-locked").len(),
        2,
        "{}",
        out.result
    );
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|p| p.starts_with("a/web-")));
    // Hitting the total stops the plugin: the rest are not attempted.
    assert_eq!(
        out.with_verdict("skipped-limit-total").len(),
        4,
        "{}",
        out.result
    );
    assert_eq!(evictions(&sb).len(), 4);

    // Counters reset each run; per namespace 1 skips the pod and goes on.
    let n = evictions(&sb).len();
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--max-per-namespace",
            "1",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "0s",
            "--selector",
            "app!=locked",
        ],
    )
    .await;
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 2, "{}", out.result);
    assert!(ev.iter().any(|p| p.starts_with("a/")) && ev.iter().any(|p| p.starts_with("b/")));
    assert_eq!(out.with_verdict("skipped-limit-namespace").len(), 2);
    assert_eq!(
        evictions(&sb).len(),
        n + 2,
        "limits are checked before the call"
    );

    // Per node 1: at most one per node.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--max-per-node",
            "1",
            "--wait-for-replacement=false",
            "--selector",
            "app=api",
        ],
    )
    .await;
    let ev = out.with_verdict("evicted");
    let nodes: BTreeSet<String> = out.result["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["verdict"] == "evicted")
        .map(|p| p["node"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nodes.len(), ev.len(), "one per node: {}", out.result);
    assert_clean(&sb);
}

// §4 rule 7: a 429 is not retried within the cycle (retry budget 0); later replicas are tried.

#[tokio::test(flavor = "multi_thread")]
async fn rule7_pdb_refusal_moves_on_to_the_next_pod() {
    let sb = start(
        "workloads:
  - {name: web, namespace: a, replicas: 3, ageRange: [10h, 12h], pdb: {minAvailable: 2}}
",
    )
    .await;
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "0s",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 1);
    assert_eq!(out.with_verdict("blocked-by-web").len(), 2);
    let ev = evictions(&sb);
    assert_eq!(ev.len(), 3, "one request per pod, no retry: {ev:?}");
    assert_eq!(ev.iter().collect::<BTreeSet<_>>().len(), 3);
    assert_clean(&sb);

    // With a retry budget, the refused pods go once replacements are Ready.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "30s",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert!(original_pods(&sb, "a").is_empty());
    assert_clean(&sb);
}

// §4 rule 8: client dry-run evictions count toward limits and ignore PDBs.

#[tokio::test(flavor = "multi_thread")]
async fn rule8_client_dry_run_counts_toward_limits_and_ignores_pdbs() {
    let sb = start(
        "workloads:
  - {name: locked, namespace: a, replicas: 3, age: 10h, pdb: {maxUnavailable: 0}}
",
    )
    .await;
    let kc = sb.kubeconfig_for("dry-runner", true);
    let out = step(
        &kc,
        &[
            "--max-pod-lifetime",
            "8h",
            "--dry-run",
            "client",
            "--max-total",
            "2",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert_eq!(out.with_verdict("skipped-limit-total").len(), 1);
    assert!(sb.mutations().is_empty(), "{:?}", sb.mutations());
    assert_eq!(original_pods(&sb, "a").len(), 3);
    assert_clean(&sb);
}

// §4 rule 9: without states every phase qualifies; states: [Running] restricts.

#[tokio::test(flavor = "multi_thread")]
async fn rule9_states_restrict_the_phases() {
    let ann = "podAnnotations: {descheduler.alpha.kubernetes.io/evict: \"\"}";
    let yaml = format!(
        "workloads:
  - {{kind: Pod, name: done, namespace: a, age: 10h, phase: Succeeded, {ann}}}
  - {{kind: Pod, name: failed, namespace: a, age: 10h, phase: Failed, {ann}}}
  - {{name: web, namespace: a, replicas: 1, age: 10h}}
"
    );
    let sb = start(&yaml).await;
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--states",
            "Running",
            "--wait-for-replacement=false",
        ],
    )
    .await;
    let ev = out.with_verdict("evicted");
    assert_eq!(ev.len(), 1, "{}", out.result);
    assert!(ev.iter().next().unwrap().starts_with("a/web-"));
    assert!(pods(&sb, "a").contains_key("a/done") && pods(&sb, "a").contains_key("a/failed"));
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--wait-for-replacement=false"],
    )
    .await;
    let ev = out.with_verdict("evicted");
    assert_eq!(
        ev,
        BTreeSet::from(["a/done".to_owned(), "a/failed".to_owned()]),
        "{}",
        out.result
    );
    assert_clean(&sb);
}

// ---------------------------------------------------------------------------------------------
// Acceptance: the seed policy.

#[tokio::test(flavor = "multi_thread")]
async fn seed_policy_evicts_exactly_the_app_pods_older_than_8h() {
    let sb = start(
        "workloads:
  - {name: web, namespace: shop, replicas: 6, labels: {app: web}, ageRange: [2h, 12h]}
  - {name: api, namespace: shop, replicas: 2, labels: {app: api}, age: 20h, protected: true}
  - {name: web, namespace: other, replicas: 2, labels: {app: web}, age: 20h, protected: true}
",
    )
    .await;
    let created: BTreeMap<String, String> = sb.with(|c| {
        c.store
            .list(well_known::pods(), Some("shop"))
            .map(|p| {
                (
                    format!("shop/{}", p["metadata"]["name"].as_str().unwrap()),
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    });
    let cutoff = "2026-11-26T02:00:00Z"; // 8 h before --now
    let expected: BTreeSet<String> = created
        .iter()
        .filter(|(k, t)| k.starts_with("shop/web-") && t.as_str() < cutoff)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(expected.len(), 2, "ages 10h and 12h: {created:?}");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "PodLifeTime:
  enabled: true
  params:
    podLifeTime:
      maxPodLifeTimeSeconds: 28800
    namespaces:
      include: [\"shop\"]
    labelSelector:
      matchLabels:
        app: web
",
    )
    .unwrap();
    let out = step(
        sb.kubeconfig_path(),
        &["--policy", policy.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted"), expected, "{}", out.result);
    assert_eq!(
        evictions(&sb).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    // The 8h pod (exactly at the limit) stays, and is the next one due, one second later.
    assert_eq!(
        out.result["nextEvictionDue"]["time"], "2026-11-26T10:00:01Z",
        "{}",
        out.result
    );
    // Outputs, Events and the audit log.
    let lines: BTreeSet<String> = out
        .output("evicted-pods")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines, expected);
    let summary: Value = serde_json::from_str(&out.output("summary")).unwrap();
    assert_eq!(summary["totals"]["evicted"], 2);
    let report: Value = serde_json::from_str(&out.output("report")).unwrap();
    assert_eq!(report["pods"].as_array().unwrap().len(), 2);
    for p in report["pods"].as_array().unwrap() {
        assert_eq!(p["ownerKind"], "Deployment", "{p}");
        assert_eq!(p["ownerName"], "web", "{p}");
        assert!(p["ageSeconds"].as_i64().unwrap() > 28800, "{p}");
    }
    let events: Vec<Value> = sb.with(|c| {
        c.store
            .list(well_known::events(), Some("shop"))
            .map(|e| (**e).clone())
            .filter(|e| e["reason"] == "PodLifeTime")
            .collect()
    });
    let evented: BTreeSet<String> = events
        .iter()
        .map(|e| format!("shop/{}", e["involvedObject"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(evented, expected);
    assert_evictions_audited(&out.output("audit.jsonl"), 2);
    assert_clean(&sb);
}

// Acceptance: a PDB of maxUnavailable 1 on 6 replicas: never below 5, repeated runs retire all.

/// Healthy (Ready, not terminating) pods of app=web in `ns`, sampled until `stop`.
fn watch_min_ready(
    sb: &Sandbox,
    ns: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let shared = sb.shared();
    tokio::spawn(async move {
        let mut min = usize::MAX;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n = {
                let c = shared.lock();
                c.store
                    .list(well_known::pods(), Some(ns))
                    .filter(|p| {
                        p["metadata"]["deletionTimestamp"].is_null()
                            && p["status"]["conditions"].as_array().is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count()
            };
            min = min.min(n);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        min
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn pdb_max_unavailable_1_on_6_replicas_never_below_5() {
    let sb = start(
        "workloads:
  - {name: web, namespace: shop, replicas: 6, age: 10h, pdb: {maxUnavailable: 1}}
",
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_min_ready(&sb, "shop", stop.clone());
    // Default safety: wait for each replacement, so one run retires all six.
    let out = step(sb.kubeconfig_path(), &["--max-pod-lifetime", "8h"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 6, "{}", out.result);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let min = watcher.await.unwrap();
    assert!(min >= 5, "availability dropped to {min}");
    assert!(original_pods(&sb, "shop").is_empty());
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn pdb_max_unavailable_1_repeated_runs_without_gating_retire_all() {
    let sb = start(
        "workloads:
  - {name: web, namespace: shop, replicas: 6, age: 10h, pdb: {maxUnavailable: 1}}
",
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_min_ready(&sb, "shop", stop.clone());
    let mut runs = 0;
    while !original_pods(&sb, "shop").is_empty() {
        runs += 1;
        assert!(runs <= 60, "not retired after {runs} runs");
        let out = step(
            sb.kubeconfig_path(),
            &[
                "--max-pod-lifetime",
                "8h",
                "--wait-for-replacement=false",
                "--pdb-retry-budget",
                "0s",
            ],
        )
        .await;
        assert!(
            matches!(out.status, ExitStatus::Done | ExitStatus::Blocked),
            "{}",
            out.result
        );
        assert!(out.with_verdict("evicted").len() <= 1, "{}", out.result);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let min = watcher.await.unwrap();
    assert!(min >= 5, "availability dropped to {min}");
    assert!(runs >= 6);
    assert_clean(&sb);
}

// Acceptance: dry runs make no mutation; server dry-run verdicts match a real run.

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_mutate_nothing_and_server_verdicts_match_a_real_run() {
    let scenario = "workloads:
  - {name: budget, namespace: a, replicas: 3, ageRange: [10h, 12h], pdb: {minAvailable: 2}}
  - {name: locked, namespace: a, replicas: 2, age: 11h, pdb: {maxUnavailable: 0}}
  - {name: free, namespace: b, replicas: 2, ageRange: [9h, 9h30m]}
  - {name: young, namespace: b, replicas: 2, age: 1h}
";
    let sb = start(scenario).await;
    let args = [
        "--max-pod-lifetime",
        "8h",
        "--wait-for-replacement=false",
        "--pdb-retry-budget",
        "0s",
    ];
    let kc = sb.kubeconfig_for("dry-runner", true);
    let mut client_args = args.to_vec();
    client_args.extend(["--dry-run", "client"]);
    let client = step(&kc, &client_args).await;
    let mut server_args = args.to_vec();
    server_args.extend(["--dry-run", "server"]);
    let server = step(&kc, &server_args).await;
    assert!(sb.mutations().is_empty(), "{:?}", sb.mutations());
    assert!(sb.invariants().is_empty(), "{:?}", sb.invariants());
    // The client dry run ignores PDBs like the descheduler's; the server's are real.
    assert_eq!(client.with_verdict("evicted").len(), 7, "{}", client.result);
    assert_eq!(server.status, ExitStatus::Blocked, "{}", server.result);
    assert!(
        server.result["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["attempts"].as_u64() <= Some(1))
    );

    let real = step(sb.kubeconfig_path(), &args).await;
    assert_eq!(real.status, ExitStatus::Blocked, "{}", real.result);
    assert_eq!(
        server.verdicts(),
        real.verdicts(),
        "server dry run {} vs real {}",
        server.result,
        real.result
    );
    assert_eq!(real.with_verdict("evicted").len(), 3);
    assert_eq!(real.with_verdict("blocked-by-budget").len(), 2);
    assert_eq!(real.with_verdict("blocked-by-locked").len(), 2);
    assert_clean(&sb);
}

// Acceptance: bad input is exit 2 with no request beyond reads; the binary for a few cases.

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2_without_any_request() {
    let sb = start("workloads:\n  - {name: web, namespace: a, replicas: 1, age: 10h}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: descheduler/v1alpha2\nkind: DeschedulerPolicy\nprofiles:\n  - name: x\n    pluginConfig:\n      - name: PodLifeTime\n        args: {maxPodLifeTimeSeconds: 60, ownerKinds: {exclude: [Job]}}\n",
    )
    .unwrap();
    let kc = sb.kubeconfig_path().display().to_string();
    let p = policy.display().to_string();
    let bin = env!("CARGO_BIN_EXE_evict-old-pods");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--max-pod-lifetime=-8h"], "negative"),
        (
            vec!["--max-pod-lifetime", "8 hours"],
            "expected a Go duration",
        ),
        (
            vec!["--max-pod-lifetime", "8h", "--states", "Sleeping"],
            "accepted: Running",
        ),
        (
            vec![
                "--max-pod-lifetime",
                "8h",
                "--namespaces",
                "a",
                "--exclude-namespaces",
                "b",
            ],
            "only one of --namespaces",
        ),
        (
            vec!["--max-pod-lifetime", "8h", "--selector", "app in web"],
            "invalid label selector",
        ),
        (vec!["--policy", &p], "ownerKinds"),
    ];
    for (args, needle) in cases {
        let mut full = vec![
            "--kubeconfig",
            kc.as_str(),
            "--termination-log",
            "/dev/null",
        ];
        full.extend(&args);
        let full: Vec<String> = full.into_iter().map(str::to_owned).collect();
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            opsteps_testkit::run(bin, &refs)
        })
        .await
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains(needle), "{args:?}: {all}");
    }
    // In-process: the same refusals come from Config before any connection.
    for args in [
        vec!["--max-pod-lifetime", "8h", "--selector", "=x"],
        vec!["--max-pod-lifetime-seconds", "60", "--spread", "2m"],
        vec!["--policy", p.as_str()],
        vec!["--states", "Running,Nope"],
    ] {
        let out = step(sb.kubeconfig_path(), &args).await;
        assert_eq!(out.status, ExitStatus::BadInput, "{args:?}: {}", out.result);
    }
    assert!(sb.requests().is_empty(), "{:?}", sb.requests());
    assert_eq!(original_pods(&sb, "a").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Safer than the descheduler.

#[tokio::test(flavor = "multi_thread")]
async fn restart_mode_rolls_single_replica_and_pdb_less_owners() {
    let sb = start(
        "workloads:
  - {name: single, namespace: a, replicas: 1, age: 10h}
  - {name: nopdb, namespace: a, replicas: 3, age: 10h}
  - {name: guarded, namespace: a, replicas: 3, age: 10h, pdb: {maxUnavailable: 1}}
",
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--mode", "restart"],
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.result["totals"]["restartedOwners"], 2, "{}", out.result);
    assert_eq!(out.with_verdict("restarted-owner").len(), 4);
    assert_eq!(
        out.with_verdict("evicted").len(),
        3,
        "the guarded owner is evicted"
    );
    let ev = evictions(&sb);
    assert!(ev.iter().all(|p| p.starts_with("a/guarded-")), "{ev:?}");
    let annotated: Vec<String> = sb.with(|c| {
        c.store
            .list(well_known::deployments(), Some("a"))
            .filter(|d| !d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_null())
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    });
    assert_eq!(annotated, vec!["nopdb".to_owned(), "single".to_owned()]);
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn spread_and_per_owner_cap() {
    let sb = start(
        "workloads:
  - {name: web, namespace: a, replicas: 12, age: 8h30m}
",
    )
    .await;
    // All 12 are 30 min past 8h. With a 1h spread a pod's lifetime is 7h..8h, so every one is
    // due; with the lifetime at 9h and a 1h spread only pods whose offset exceeds 30 min are.
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "9h",
            "--spread",
            "1h",
            "--dry-run",
            "client",
        ],
    )
    .await;
    let n = out.with_verdict("evicted").len();
    assert!(
        n > 0 && n < 12,
        "spread splits replicas born together: {n} of 12: {}",
        out.result
    );
    for p in out.result["pods"].as_array().unwrap() {
        let l = p["lifetimeSeconds"].as_u64().unwrap();
        assert!((28801..=32400).contains(&l) && l < 30600, "{p}");
    }
    assert!(out.result["nextEvictionDue"].is_object());
    // The same run twice gives the same split (the offset is a hash of the UID).
    let again = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "9h",
            "--spread",
            "1h",
            "--dry-run",
            "client",
        ],
    )
    .await;
    assert_eq!(out.verdicts(), again.verdicts());
    // Per-owner cap.
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--max-per-owner", "2"],
    )
    .await;
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert_eq!(out.with_verdict("skipped-limit-owner").len(), 10);
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_not_fully_available_are_skipped_without_waiting() {
    let sb = start(
        "workloads:
  - {name: sick, namespace: a, replicas: 2, age: 10h, neverReady: true}
  - {name: web, namespace: a, replicas: 2, age: 10h}
",
    )
    .await;
    let t = std::time::Instant::now();
    let out = step(sb.kubeconfig_path(), &["--max-pod-lifetime", "8h"]).await;
    assert!(t.elapsed() < Duration::from_secs(20), "no 5-minute wait");
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-owner-unavailable").len(),
        2,
        "{}",
        out.result
    );
    assert_eq!(out.with_verdict("evicted").len(), 2);
    // Without gating, the descheduler's behaviour: both go (no PDB).
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--selector",
            "app=sick",
        ],
    )
    .await;
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_do_not_count_and_exit_3_lists_are_retried() {
    use opsteps_sandbox::faults::{FaultAction, FaultRule};
    let sb =
        start("workloads:\n  - {name: web, namespace: a, replicas: 3, ageRange: [10h, 12h]}\n")
            .await;
    // The first list of pods fails once (retried); the first eviction fails with a 503.
    sb.add_fault(
        FaultRule::new(
            "list",
            "pods",
            FaultAction::Status {
                code: 503,
                retry_after: None,
                message: None,
            },
        )
        .times(1),
    );
    sb.add_fault(
        FaultRule::new(
            "evict",
            "pods",
            FaultAction::Status {
                code: 503,
                retry_after: None,
                message: None,
            },
        )
        .times(1),
    );
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--max-total",
            "1",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Transient, "{}", out.result);
    assert_eq!(out.with_verdict("failed").len(), 1, "{}", out.result);
    assert_eq!(
        out.with_verdict("evicted").len(),
        1,
        "a failure does not use the limit"
    );
    assert_eq!(out.with_verdict("skipped-limit-total").len(), 1);
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_and_shutdown_start_no_eviction_and_exit_3() {
    let sb = start("workloads:\n  - {name: web, namespace: a, replicas: 2, age: 10h}\n").await;
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--timeout", "0s"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Transient, "{}", out.result);
    // The deadline bounds the lists too: the run stops there, outputs written, error named.
    assert!(
        out.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{}",
        out.result
    );
    assert!(out.output("summary").contains("totals"));
    assert!(evictions(&sb).is_empty());
    // SIGTERM before the first eviction.
    let dir = tempfile::tempdir().unwrap();
    let kc = sb.kubeconfig_path().display().to_string();
    let tl = dir.path().join("tl").display().to_string();
    let a = Args::try_parse_from([
        STEP,
        "--kubeconfig",
        &kc,
        "--termination-log",
        &tl,
        "--now",
        START,
        "--max-pod-lifetime",
        "8h",
    ])
    .unwrap();
    let ctx = Context::new(STEP, &a.common).unwrap();
    ctx.shutdown.trigger();
    let r = evict_old_pods::run(a, ctx).await.unwrap();
    assert_eq!(r.status, ExitStatus::Transient);
    assert!(
        r.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("interrupted")),
        "{}",
        r.result
    );
    assert!(evictions(&sb).is_empty());
    assert_eq!(original_pods(&sb, "a").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mode_server_dry_run_patches_nothing() {
    let sb = start("workloads:\n  - {name: single, namespace: a, replicas: 1, age: 10h}\n").await;
    let kc = sb.kubeconfig_for("dry-runner", true);
    let out = step(
        &kc,
        &[
            "--max-pod-lifetime",
            "8h",
            "--mode",
            "restart",
            "--dry-run",
            "server",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(
        out.with_verdict("restarted-owner").len(),
        1,
        "{}",
        out.result
    );
    assert!(sb.mutations().is_empty(), "{:?}", sb.mutations());
    assert!(sb.requests().iter().any(|r| r.verb == "patch" && r.dry_run));
    let annotated = sb.with(|c| {
        c.store.get(well_known::deployments(), "a", "single").unwrap()["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_null()
    });
    assert!(annotated, "nothing persisted");
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn rule4_optional_protections_mirror_the_default_evictor_switches() {
    let sb = start_yaml(&format!(
        "{HEAD}priorityClasses:
  - {{name: high, value: 1000}}
workloads:
  - {{name: hi, namespace: a, replicas: 1, age: 10h, priorityClassName: high}}
  - {{name: lo, namespace: a, replicas: 1, age: 10h}}
  - {{name: pvc, namespace: a, replicas: 1, age: 10h, volumes: [{{name: d, persistentVolumeClaim: {{claimName: data}}}}]}}
  - {{name: guarded, namespace: a, replicas: 2, age: 10h, pdb: {{maxUnavailable: 1}}}}
"
    ))
    .await;
    let verdicts = |out: &Out| -> BTreeMap<String, String> {
        out.verdicts()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.trim_start_matches("a/")
                        .split('-')
                        .next()
                        .unwrap()
                        .to_owned(),
                    v,
                )
            })
            .collect()
    };
    let run = |extra: &'static [&'static str]| {
        let kc = sb.kubeconfig_path().to_path_buf();
        async move {
            let mut args = vec!["--max-pod-lifetime", "8h", "--dry-run", "client"];
            args.extend_from_slice(extra);
            step(&kc, &args).await
        }
    };
    let v = verdicts(&run(&["--priority-threshold-class", "high"]).await);
    assert_eq!(v["hi"], "skipped-priority", "{v:?}");
    assert_eq!(v["lo"], "evicted");
    let v = verdicts(&run(&["--priority-threshold", "1001"]).await);
    assert_eq!(v["hi"], "evicted", "{v:?}");
    let v = verdicts(&run(&["--ignore-pvc-pods"]).await);
    assert_eq!(v["pvc"], "skipped-pvc", "{v:?}");
    assert_eq!(v["lo"], "evicted");
    let out = run(&["--ignore-pods-without-pdb"]).await;
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert!(
        out.with_verdict("evicted")
            .iter()
            .all(|p| p.starts_with("a/guarded-"))
    );
    let out = run(&["--min-replicas", "2"]).await;
    assert_eq!(
        out.with_verdict("skipped-min-replicas").len(),
        3,
        "{}",
        out.result
    );
    assert_eq!(out.with_verdict("evicted").len(), 2);
    let out = run(&["--min-pod-age", "11h"]).await;
    assert_eq!(
        out.with_verdict("skipped-min-pod-age").len(),
        5,
        "{}",
        out.result
    );
    let out = run(&["--min-pod-age", "9h"]).await;
    assert_eq!(out.with_verdict("evicted").len(), 5, "{}", out.result);
    let out = run(&["--priority-threshold-class", "nope"]).await;
    assert_eq!(out.status, ExitStatus::BadInput, "{}", out.result);
    assert!(sb.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn gating_waits_per_owner_while_other_owners_proceed() {
    // The slow owner's replacements take 10 min (10 s real at 60x) to become Ready.
    let sb = start(
        "workloads:
  - {name: slow, namespace: a, replicas: 2, ageRange: [12h, 13h], readyDelay: 10m}
  - {name: fast, namespace: b, replicas: 3, ageRange: [9h, 11h]}
",
    )
    .await;
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--replacement-timeout", "8s"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 4, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-owner-unavailable").len(),
        1,
        "{}",
        out.result
    );
    let reqs: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.subresource == "eviction")
        .collect();
    assert!(
        reqs[0].namespace == "a" && reqs[1].namespace == "b",
        "{reqs:?}"
    );
    let t = |i: usize| reqs[i].real_time.parse::<jiff::Timestamp>().unwrap();
    let gap = t(1).duration_since(t(0));
    // Waiting would take the 8 s replacement timeout (the replacement needs 10 s); 5 s leaves
    // room for a slow machine without hiding a wait.
    assert!(
        gap < jiff::SignedDuration::from_secs(5),
        "the fast owner did not wait for the slow one's replacement: {gap:?}"
    );
    assert_clean(&sb);
}

/// `n` evictions in the audit trail, each written ahead (`sent`) and then accepted (`ok`).
fn assert_evictions_audited(audit: &str, n: usize) {
    for outcome in ["sent", "ok"] {
        let tag = format!("\"outcome\":\"{outcome}\"");
        let count = audit
            .lines()
            .filter(|l| l.contains("\"evict\"") && l.contains(&tag))
            .count();
        assert_eq!(count, n, "{outcome}: {audit}");
    }
}
