//! drain-node keeps its documented contract: dry runs agree with the real run, one output shape
//! in every outcome, pods only waited for are `awaited`, evicted pods get an Event, the exit
//! codes, and the README's RBAC list is exactly enough.

use crate::common;

use std::collections::BTreeSet;

use common::{BLUE_GREEN, Env};
use opsteps::exit::ExitStatus;
use serde_json::{Value, json};

fn one_node(extra: &str) -> String {
    format!(
        r#"
clock: {{scale: 60}}
kubelet: {{startDelay: 1s, readyDelay: 1s}}
nodes:
  - {{name: a, capacity: {{cpu: "8", memory: 32Gi, pods: 50}}}}
  - {{name: b, capacity: {{cpu: "8", memory: 32Gi, pods: 50}}}}
workloads:
{extra}
"#
    )
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_dry_run_reports_a_budget_held_at_zero_as_blocked() {
    let yaml = format!(
        "{}pdbs:\n  - {{name: front, matchLabels: {{tier: front}}, maxUnavailable: 1}}\n",
        one_node(
            "  - {name: web, replicas: 2, labels: {app: web, tier: front}, placement: {nodes: [a]}}\n  - {name: broken, replicas: 1, labels: {app: broken, tier: front}, neverReady: true, placement: {nodes: [b]}}"
        )
    );
    let env = Env::new(&yaml).await;
    for mode in ["server", "client"] {
        let out = env.run(&["--node", "a", "--dry-run", mode]).await;
        assert_eq!(out.status, ExitStatus::Blocked, "{mode}: {}", out.summary);
        assert_eq!(out.result["summary"]["evicted"], 0, "{mode}");
        let verdicts = &out.result["nodes"][0]["dry_run"];
        assert!(
            verdicts
                .as_object()
                .unwrap()
                .values()
                .all(|v| v.as_str().unwrap().starts_with("blocked-by-pdb")),
            "{mode}: {verdicts}"
        );
    }
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_output_shape_in_every_outcome() {
    let done = Env::new(&one_node(
        "  - {name: web, replicas: 2, placement: {nodes: [a]}}",
    ))
    .await;
    let ok = done.run(&["--node", "a"]).await;
    assert_eq!(ok.status, ExitStatus::Done, "{}", ok.summary);
    let refused = Env::new(&one_node(
        "  - {name: db, replicas: 2, placement: {nodes: [a]}, pdb: {maxUnavailable: 0}}",
    ))
    .await;
    let no = refused.run(&["--node", "a"]).await;
    assert_eq!(no.status, ExitStatus::Blocked, "{}", no.summary);
    assert_eq!(keys(&ok.result), keys(&no.result));
    assert_eq!(keys(&ok.result["summary"]), keys(&no.result["summary"]));
    for k in [
        "nodes", "cordoned", "drained", "evicted", "awaited", "blocked",
    ] {
        assert!(no.result["summary"].get(k).is_some(), "summary.{k}");
    }
    assert_eq!(no.result["summary"]["blocked"], 2);
    let nodes = no.result["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["status"], "refused");
    assert_eq!(keys(&nodes[0]), keys(&ok.result["nodes"][0]));
    assert_eq!(
        keys(&done.output("summary")),
        keys(&refused.output("summary"))
    );
    let (b_ok, b_no) = (done.output("blocked-pods"), refused.output("blocked-pods"));
    assert!(b_ok.as_array().unwrap().is_empty());
    assert!(keys(&b_no[0]).contains("pod") && keys(&b_no[0]).contains("last_message"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_only_waited_for_are_awaited_not_evicted() {
    let env = Env::new(&one_node(
        "  - {name: slow, replicas: 1, terminationGracePeriodSeconds: 120, placement: {nodes: [a]}}\n  - {name: web, replicas: 1, placement: {nodes: [a]}}",
    ))
    .await;
    let slow = env
        .pods_on("a")
        .into_iter()
        .find(|p| p.starts_with("default/slow-"))
        .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.client().await, "default");
    api.delete(
        slow.split('/').nth(1).unwrap(),
        &kube::api::DeleteParams::default(),
    )
    .await
    .unwrap();
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let node = &out.result["nodes"][0];
    assert_eq!(node["awaited"], json!([slow]));
    assert!(
        !node["evicted"].as_array().unwrap().contains(&json!(slow)),
        "{node}"
    );
    let accepted = env
        .audit_lines()
        .iter()
        .filter(|l| l["action"] == "evict" && l["http_status"] == 201)
        .count();
    assert_eq!(out.result["summary"]["evicted"], accepted);
    assert_eq!(out.result["summary"]["awaited"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_pods_get_an_event_naming_the_drain_and_node() {
    let env = Env::new(&one_node(
        "  - {name: web, replicas: 2, placement: {nodes: [a]}}",
    ))
    .await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let evicted: Vec<String> = out.result["nodes"][0]["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(evicted.len(), 2);
    let me = drain_node::lease::holder_identity();
    let events = env.events();
    for pod in &evicted {
        let ev = events
            .iter()
            .find(|(reason, obj, _)| reason == "Evicted" && obj == pod)
            .unwrap_or_else(|| panic!("no Evicted event on {pod}: {events:?}"));
        assert!(ev.2.contains("node a") && ev.2.contains(&me), "{}", ev.2);
    }
    // One audit action for every Event written.
    let actions: BTreeSet<String> = env
        .audit_lines()
        .iter()
        .filter(|l| l["target"]["kind"] == "Event")
        .map(|l| l["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, BTreeSet::from(["create-event".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_under_two_budgets_at_eviction_time_is_blocked_exit_4() {
    let yaml = format!(
        "{}faults:\n  - {{verb: evict, resource: pods, name: db-0, action: {{status: {{code: 500, message: 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.'}}}}}}\n",
        one_node("  - {kind: StatefulSet, name: db, replicas: 1, placement: {nodes: [a]}}")
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--timeout", "20s"]).await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(
        out.summary.contains("more than one PodDisruptionBudget"),
        "{}",
        out.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_eviction_exits_1_and_persistent_5xx_exits_3() {
    for (code, want) in [(422, ExitStatus::Failed), (503, ExitStatus::Transient)] {
        let yaml = format!(
            "{}faults:\n  - {{verb: evict, resource: pods, name: db-0, action: {{status: {{code: {code}}}}}}}\n",
            one_node("  - {kind: StatefulSet, name: db, replicas: 1, placement: {nodes: [a]}}")
        );
        let env = Env::new(&yaml).await;
        let out = env.run(&["--node", "a", "--timeout", "60s"]).await;
        assert_eq!(out.status, want, "{code}: {}", out.summary);
        assert_eq!(
            out.result["nodes"][0]["status"],
            if code == 422 { "failed" } else { "transient" }
        );
        assert!(env.pods_on("a").contains(&"default/db-0".to_owned()));
        assert!(env.output("summary").get("blocked").is_some());
    }
}

/// The README's RBAC table: (resource, API group, verbs, scope).
fn readme_rbac() -> Vec<(String, String, Vec<String>, String)> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## RBAC")
        .nth(1)
        .expect("an RBAC section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.contains("---") && !l.contains("Resource"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            let group = if cells[1] == "core" {
                String::new()
            } else {
                cells[1].clone()
            };
            let verbs = cells[2].split(',').map(|v| v.trim().to_owned()).collect();
            (cells[0].clone(), group, verbs, cells[3].clone())
        })
        .collect()
}

/// The README's rows as `(verb, group, resource[/subresource], scope)`.
fn readme_permissions(
    rows: &[(String, String, Vec<String>, String)],
) -> BTreeSet<(String, String, String, String)> {
    rows.iter()
        .flat_map(|(res, group, verbs, scope)| {
            verbs
                .iter()
                .map(move |v| (v.clone(), group.clone(), res.clone(), scope.clone()))
        })
        .collect()
}

#[test]
fn the_access_pre_check_asks_for_exactly_the_readme_table() {
    let mut asked = BTreeSet::new();
    for flags in [&["--wait-for-replacements"][..], &["--disable-eviction"]] {
        let mut argv = vec!["drain-node", "--node", "a"];
        argv.extend_from_slice(flags);
        let parsed = <drain_node::Args as clap::Parser>::try_parse_from(argv).unwrap();
        for p in parsed.permissions() {
            let resource = match &p.subresource {
                Some(s) => format!("{}/{s}", p.resource),
                None => p.resource.clone(),
            };
            let scope = if p.namespace.is_some() {
                "lease namespace"
            } else {
                "cluster"
            };
            asked.insert((p.verb, p.group, resource, scope.to_owned()));
        }
    }
    assert_eq!(asked, readme_permissions(&readme_rbac()));
}

/// The README's table as a ClusterRole (cluster rows) and a Role in kube-system (lease rows)
/// bound to user `drainer`, leaving out the rows `skip` rejects.
fn rbac_objects(skip: impl Fn(&str) -> bool) -> Value {
    let rows: Vec<_> = readme_rbac().into_iter().filter(|r| !skip(&r.0)).collect();
    let rule = |(res, group, verbs, _): &(String, String, Vec<String>, String)| json!({"apiGroups": [group], "resources": [res], "verbs": verbs});
    let cluster: Vec<Value> = rows.iter().filter(|r| r.3 == "cluster").map(rule).collect();
    let leases: Vec<Value> = rows
        .iter()
        .filter(|r| r.3 == "lease namespace")
        .map(rule)
        .collect();
    assert_eq!(cluster.len() + leases.len(), rows.len(), "scopes: {rows:?}");
    let subject =
        json!([{"kind": "User", "name": "drainer", "apiGroup": "rbac.authorization.k8s.io"}]);
    json!([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "drain-node"}, "rules": cluster},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "drain-node"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "drain-node"}, "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "drain-node-leases", "namespace": "kube-system"}, "rules": leases},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "drain-node-leases", "namespace": "kube-system"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "drain-node-leases"}, "subjects": subject},
    ])
}

fn rbac_scenario(objects: &Value) -> String {
    format!(
        "{BLUE_GREEN}rbac: true\nusers:\n  - {{name: drainer}}\nobjects: {}\n",
        serde_json::to_string(objects).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_named_before_any_change() {
    let env = Env::new(&rbac_scenario(&rbac_objects(|r| r == "pods/eviction"))).await;
    let out = env
        .run_as(
            env.sb.kubeconfig_for("drainer", false),
            &["--node", "blue-0"],
        )
        .await;
    assert_eq!(out.status, ExitStatus::BadInput, "{}", out.summary);
    assert!(
        out.summary.contains("create pods/eviction"),
        "{}",
        out.summary
    );
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
    assert!(!env.unschedulable("blue-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_under_exactly_the_rbac_its_readme_lists() {
    let env = Env::new(&rbac_scenario(&rbac_objects(|_| false))).await;
    let kubeconfig = env.sb.kubeconfig_for("drainer", false);
    let out = env
        .run_as(
            kubeconfig,
            &[
                "--nodegroup",
                "blue",
                "--max-nodes",
                "2",
                "--wait-for-replacements",
            ],
        )
        .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let denied: Vec<String> = env
        .sb
        .requests()
        .iter()
        .filter(|r| r.user == "drainer" && r.status == 403)
        .map(|r| format!("{} {} {}", r.verb, r.resource, r.subresource))
        .collect();
    assert!(denied.is_empty(), "denied: {denied:?}");
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_server_refuses_is_bad_input_not_an_empty_node() {
    let yaml = format!(
        "{}faults:\n  - {{verbs: [list], resource: pods, action: {{status: {{code: 400, message: 'field label not supported: spec.nodeName'}}}}}}\n",
        one_node("  - {name: web, replicas: 2, placement: {nodes: [a]}}")
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::BadInput, "{}", out.summary);
    assert!(
        out.summary.contains("field label not supported"),
        "{}",
        out.summary
    );
    assert_eq!(out.result["nodes"][0]["status"], "not-started");
    assert!(out.result["summary"].get("blocked").is_some());
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
    assert_eq!(env.pods_on("a").len(), 2);
}
