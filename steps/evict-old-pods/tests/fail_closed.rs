//! evict-old-pods fails closed (issue 9): an owner that cannot be read is never "no owner",
//! any DaemonSet owner reference protects, SIGTERM is exit 3 in every phase with the outputs
//! written, real v1alpha1 policies drop in, and the stdout result lists what was done first.

use crate::common;

use std::time::Duration;

use common::*;
use opsteps::exit::ExitStatus;
use opsteps_sandbox::resources::well_known;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn owner_lookup_errors_skip_the_pod_never_read_as_ownerless() {
    use opsteps_sandbox::faults::FaultRule;
    let sb = start(
        "workloads:
  - {name: web, namespace: a, replicas: 2, age: 10h}
  - {name: api, namespace: b, replicas: 2, age: 10h}
  - {name: job, namespace: c, replicas: 2, age: 10h}
",
    )
    .await;
    // 5xx on the Deployment: gating cannot be checked, so nothing is evicted and the run is
    // transient (exit 3), every pod reported with the reason.
    sb.add_fault(FaultRule::new("get", "deployments", status(503)));
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--namespaces", "a"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Transient, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-owner-error").len(),
        2,
        "{}",
        out.result
    );
    let msg = out.result["pods"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("Deployment a/web"), "{msg}");
    assert!(evictions(&sb).is_empty(), "{:?}", evictions(&sb));
    sb.clear_faults();

    // 429 on the ReplicaSet with --max-per-owner and no gating: the cap cannot be applied to
    // an unknown owner, so the pods are skipped rather than all evicted.
    sb.add_fault(FaultRule::new("get", "replicasets", status(429)));
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--namespaces",
            "b",
            "--wait-for-replacement=false",
            "--max-per-owner",
            "1",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Transient, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-owner-error").len(),
        2,
        "{}",
        out.result
    );
    assert!(evictions(&sb).is_empty(), "{:?}", evictions(&sb));
    // Looked up once per owner, not once per pod (the lookup retries inside).
    let rs_gets = sb
        .requests()
        .iter()
        .filter(|r| r.verb == "get" && r.resource.starts_with("replicasets") && r.namespace == "b")
        .count();
    assert!((1..=6).contains(&rs_gets), "{rs_gets} GETs");
    sb.clear_faults();

    // 403 (RBAC): a retry will not help, so exit 1.
    sb.add_fault(FaultRule::new("get", "replicasets", status(403)));
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--namespaces", "c"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Failed, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-owner-error").len(),
        2,
        "{}",
        out.result
    );
    assert!(evictions(&sb).is_empty());
    sb.clear_faults();

    // A selector the server refuses (400, as a real API server answers a field or label
    // selector it cannot parse) is bad input, never "nothing matched".
    sb.add_fault(FaultRule::new("list", "pods", status(400)));
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--namespaces", "c"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::BadInput, "{}", out.result);
    assert!(
        out.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{}",
        out.result
    );
    assert!(evictions(&sb).is_empty());
    sb.clear_faults();

    // Healthy again: the same run evicts.
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--namespaces", "c"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_selector_that_cannot_be_read_never_switches_gating_off() {
    let sb = start(
        "workloads:
  - {name: web, namespace: a, replicas: 2, age: 10h}
",
    )
    .await;
    // An operator label selectors do not have: the owner's pods cannot be counted.
    sb.with(|c| {
        let name = c
            .store
            .list(well_known::deployments(), Some("a"))
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .next()
            .unwrap();
        opsteps_sandbox::controllers::util::mutate(
            &mut c.store,
            well_known::deployments(),
            "a",
            &name,
            |o| {
                o["spec"]["selector"]["matchExpressions"] =
                    json!([{"key": "tier", "operator": "Gt", "values": ["1"]}]);
            },
        );
    });
    let out = step(sb.kubeconfig_path(), &["--max-pod-lifetime", "8h"]).await;
    assert!(evictions(&sb).is_empty(), "{:?}", evictions(&sb));
    assert_eq!(
        out.with_verdict("skipped-owner-error").len(),
        2,
        "{}",
        out.result
    );
    assert_ne!(out.status, ExitStatus::Done, "{}", out.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemonset_owner_reference_protects_even_when_not_the_controller() {
    let sb = start(
        "workloads:
  - {kind: DaemonSet, name: agent, namespace: a, age: 30d, protected: true}
  - {name: web, namespace: a, replicas: 1, age: 10h}
",
    )
    .await;
    // A pod a Job controls and the DaemonSet also owns (not as controller).
    sb.with(|c| {
        let (ds, ds_uid) = c
            .store
            .list(well_known::daemonsets(), Some("a"))
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap().to_owned(),
                    o["metadata"]["uid"].as_str().unwrap().to_owned(),
                )
            })
            .next()
            .unwrap();
        let now = c.now();
        c.store
            .create(
                well_known::pods(),
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "shared", "namespace": "a",
                        "creationTimestamp": "2026-11-20T10:00:00Z", "labels": {"app": "shared"},
                        "ownerReferences": [
                            {"apiVersion": "batch/v1", "kind": "Job", "name": "batch", "uid": "job-uid", "controller": true},
                            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds, "uid": ds_uid}]},
                    "spec": {"nodeName": "w-0", "containers": [{"name": "c", "image": "busybox"}]},
                    "status": {"phase": "Running", "startTime": "2026-11-20T10:00:00Z",
                        "conditions": [{"type": "Ready", "status": "True"}]}}),
                &now,
            )
            .unwrap();
    });
    let out = step(
        sb.kubeconfig_path(),
        &["--max-pod-lifetime", "8h", "--wait-for-replacement=false"],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(
        out.verdicts()["a/shared"],
        "skipped-daemonset",
        "{}",
        out.result
    );
    assert!(!evictions(&sb).contains(&"a/shared".to_owned()));
    assert_eq!(
        out.with_verdict("evicted").len(),
        1,
        "the web pod: {}",
        out.result
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_pods_list_evicted_and_blocked_before_skipped() {
    // 1,001 old unscheduled pods (skipped) and, younger, pods that are evicted or blocked.
    let sb = start(
        "workloads:
  - {name: stuck, namespace: p, replicas: 1001, age: 30d, nodeSelector: {no: such-node}}
  - {name: web, namespace: a, replicas: 2, age: 10h}
  - {name: held, namespace: b, replicas: 1, age: 10h, pdb: {minAvailable: 1}}
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
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.result["totals"]);
    let pods = out.result["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1000);
    assert_eq!(out.result["podsOmitted"], 4);
    assert_eq!(out.with_verdict("evicted").len(), 2);
    assert_eq!(out.with_verdict("blocked-by-held").len(), 1);
    assert!(
        pods[..3]
            .iter()
            .all(|p| !p["verdict"].as_str().unwrap().starts_with("skipped-")),
        "{:?}",
        &pods[..3]
    );
    // The report file keeps every entry, oldest first.
    let report: Value = serde_json::from_str(&out.output("report")).unwrap();
    assert_eq!(report["pods"].as_array().unwrap().len(), 1004);
    assert_eq!(report["pods"][0]["verdict"], "skipped-unscheduled");
}

#[tokio::test(flavor = "multi_thread")]
async fn v1alpha1_policies_drop_in_disabled_and_node_fit() {
    let sb = start("workloads:\n  - {name: web, namespace: a, replicas: 2, age: 10h}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let disabled = dir.path().join("disabled.yaml");
    std::fs::write(
        &disabled,
        "apiVersion: descheduler/v1alpha1\nkind: DeschedulerPolicy\nstrategies:\n  RemoveDuplicates: {enabled: false}\n  PodLifeTime:\n    enabled: false\n    params:\n      podLifeTime: {maxPodLifeTimeSeconds: 60}\n",
    )
    .unwrap();
    let out = step(
        sb.kubeconfig_path(),
        &["--policy", disabled.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert!(
        out.result["cycleSkipped"]
            .as_str()
            .is_some_and(|s| s.contains("not enabled")),
        "{}",
        out.result
    );
    assert!(sb.requests().is_empty(), "nothing to do, nothing sent");
    assert!(out.output("summary").contains("not enabled"));

    let node_fit = dir.path().join("nodefit.yaml");
    std::fs::write(
        &node_fit,
        "PodLifeTime:\n  enabled: true\n  params:\n    podLifeTime: {maxPodLifeTimeSeconds: 28800}\n    nodeFit: true\n",
    )
    .unwrap();
    let out = step(
        sb.kubeconfig_path(),
        &[
            "--policy",
            node_fit.to_str().unwrap(),
            "--wait-for-replacement=false",
        ],
    )
    .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(out.with_verdict("evicted").len(), 2, "{}", out.result);
    assert!(
        out.result["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("nodeFit")),
        "{}",
        out.result
    );
    assert_clean(&sb);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_budget_retries_are_pending_exits_3_with_outputs() {
    let sb = start(
        "workloads:
  - {name: held, namespace: a, replicas: 2, age: 10h, pdb: {minAvailable: 2}}
",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_bin(
        sb.kubeconfig_path(),
        dir.path(),
        &[
            "--max-pod-lifetime",
            "8h",
            "--wait-for-replacement=false",
            "--pdb-retry-budget",
            "10m",
        ],
    );
    // The first pass is over once both pods were refused; the step is then in its retry pass.
    wait_until("two refused evictions", Duration::from_mins(1), || {
        sb.requests()
            .iter()
            .filter(|r| r.subresource == "eviction" && r.status == 429)
            .count()
            >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(std::time::Instant::now() < end, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(
        code,
        Some(3),
        "SIGTERM is transient in every phase: {stdout}"
    );
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["status"], "transient");
    assert_eq!(result["totals"]["blocked"], 2, "{result}");
    let out = dir.path().join("out");
    for f in ["summary", "report", "evicted-pods"] {
        assert!(out.join(f).exists(), "{f} written");
    }
    let tl = std::fs::read_to_string(dir.path().join("tl")).unwrap();
    assert!(tl.starts_with("transient"), "{tl}");
    assert_eq!(original_pods(&sb, "a").len(), 2);
    assert_clean(&sb);
}
