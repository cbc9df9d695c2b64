//! The step's contract with workflows: it runs under exactly the RBAC its README lists (and
//! stops with exit 2 naming what is missing), and the JSON result and output files of a
//! representative run are reviewed snapshots.

use crate::common;

use common::*;
use opsteps::exit::ExitStatus;
use serde_json::{Value, json};

/// The RBAC rules the README's table lists: one rule per row, `(core)` being the "" group.
fn readme_rbac_rules() -> Vec<Value> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## RBAC")
        .nth(1)
        .expect("README has an RBAC section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let split = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|s| s.trim().trim_matches('`').to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let rules: Vec<Value> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() >= 3 && cells[0] != "API group" && !cells[0].starts_with("---"))
        .map(|cells| {
            let group = if cells[0] == "(core)" { "" } else { cells[0] };
            json!({"apiGroups": [group], "resources": split(cells[1]), "verbs": split(cells[2])})
        })
        .collect();
    assert!(rules.len() >= 5, "the RBAC table parses: {rules:?}");
    rules
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_under_exactly_the_rbac_its_readme_lists() {
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "evict-old-pods"}, "rules": readme_rbac_rules()});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "evict-old-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "evict-old-pods"},
        "subjects": [{"kind": "User", "name": "evicter"}]});
    let sb = start_yaml(&format!(
        "{HEAD}rbac: true
priorityClasses:
  - {{name: high, value: 1000}}
objects: [{role}, {binding}]
workloads:
  - {{name: single, namespace: a, replicas: 1, age: 10h}}
  - {{name: guarded, namespace: a, replicas: 2, age: 10h, pdb: {{maxUnavailable: 1}}}}
  - {{kind: StatefulSet, name: db, namespace: b, replicas: 2, age: 10h, pdb: {{maxUnavailable: 1}}}}
  - {{name: vip, namespace: b, replicas: 1, age: 10h, priorityClassName: high}}
"
    ))
    .await;
    let kc = sb.kubeconfig_for("evicter", false);
    // Every code path that needs a permission: owners (ReplicaSet → Deployment, StatefulSet),
    // gating (status and pod list), restart (patch), eviction, Event, PriorityClass.
    let out = step(
        &kc,
        &[
            "--max-pod-lifetime",
            "8h",
            "--mode",
            "restart",
            "--priority-threshold-class",
            "high",
        ],
    )
    .await;
    let denied: Vec<String> = sb
        .requests()
        .iter()
        .filter(|r| r.status == 403)
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert!(denied.is_empty(), "denied: {denied:?}");
    assert_eq!(out.status, ExitStatus::Done, "{}", out.result);
    assert_eq!(
        out.with_verdict("restarted-owner").len(),
        1,
        "{}",
        out.result
    );
    assert_eq!(out.with_verdict("evicted").len(), 4, "{}", out.result);
    assert_eq!(
        out.with_verdict("skipped-priority").len(),
        1,
        "{}",
        out.result
    );
    assert!(
        sb.requests()
            .iter()
            .any(|r| r.resource.starts_with("events") && r.verb == "create" && r.status == 201)
    );
    // A role without one of the rows is refused: the check above has teeth.
    assert!(
        sb.requests().iter().all(|r| r.user == "evicter"),
        "every request ran as the restricted user"
    );
    assert_clean(&sb);
}

// ---------------------------------------------------------------------------------------------
// Snapshots of the output contract: the JSON result and the output files of a representative
// run (changing values filtered), so a schema change is a reviewed diff.

fn contract_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[uid]",
        ),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
            "[time]",
        ),
        (r"\b(web|held|young)-[a-z0-9]{10}-[a-z0-9]{5}\b", "$1-[pod]"),
        (r"\bagent-[a-z0-9]{5}\b", "agent-[pod]"),
        (r"\bw-[0-9]\b", "[node]"),
        (r"[0-9a-f]{16,}", "[hex]"),
        (r#""apiRequests": \d+"#, r#""apiRequests": "[n]""#),
        (r#""durationMs": \d+"#, r#""durationMs": "[n]""#),
        // The scenario's pods are created on a running clock: ages may move by a second.
        (r#""(ageSeconds|inSeconds)": \d+"#, r#""$1": "[n]""#),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn output_contract_snapshot() {
    let sb = start(
        "workloads:
  - {kind: DaemonSet, name: agent, namespace: p, age: 30d, protected: true}
  - {name: web, namespace: a, replicas: 1, age: 10h}
  - {name: held, namespace: b, replicas: 1, age: 12h, pdb: {minAvailable: 1}}
  - {name: young, namespace: a, replicas: 1, age: 7h}
",
    )
    .await;
    // Through the binary: the result as a workflow reads it, `status` and `exitCode` included.
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_bin(
        sb.kubeconfig_path(),
        dir.path(),
        &["--max-pod-lifetime", "8h", "--pdb-retry-budget", "0s"],
    );
    let done = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.code(), Some(4), "blocked");
    let result: Value = serde_json::from_slice(&done.stdout).unwrap();
    let out = Out {
        status: ExitStatus::Blocked,
        result,
        dir,
    };
    let files = json!({
        "evicted-pods": out.output("evicted-pods"),
        "summary": serde_json::from_str::<Value>(&out.output("summary")).unwrap(),
        "report": serde_json::from_str::<Value>(&out.output("report")).unwrap(),
        "audit.jsonl": out.output("audit.jsonl").lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>(),
    });
    insta::with_settings!({filters => contract_filters()}, {
        insta::assert_json_snapshot!("result", out.result);
        insta::assert_json_snapshot!("output_files", files);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_permissions_stop_before_any_change_with_exit_2() {
    // The README's role without evictions and Events.
    let rules: Vec<Value> = readme_rbac_rules()
        .into_iter()
        .filter(|r| {
            !r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "pods/eviction" || x == "events")
        })
        .collect();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "partial"}, "rules": rules});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "partial"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "partial"},
        "subjects": [{"kind": "User", "name": "evicter"}]});
    let sb = start_yaml(&format!(
        "{HEAD}rbac: true
objects: [{role}, {binding}]
workloads:
  - {{name: web, namespace: a, replicas: 2, age: 10h}}
"
    ))
    .await;
    let kc = sb.kubeconfig_for("evicter", false);
    let out = step(&kc, &["--max-pod-lifetime", "8h"]).await;
    assert_eq!(out.status, ExitStatus::BadInput, "{}", out.result);
    let msg = out.result["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("create pods/eviction") && msg.contains("create events"),
        "{msg}"
    );
    assert!(sb.mutations().is_empty(), "{:?}", sb.mutations());
    assert!(
        !sb.requests()
            .iter()
            .any(|r| r.resource.starts_with("pods") && r.verb == "list"),
        "checked before the first list"
    );
    assert_eq!(original_pods(&sb, "a").len(), 2);
}
