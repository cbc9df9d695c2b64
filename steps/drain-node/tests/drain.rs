//! drain-node against the sandbox: one test per filter rule and per API answer class, budgets,
//! the pre-flight refusals, dry runs and resumption, asserting on the resulting cluster state,
//! the audit trail and the sandbox's invariants.

use crate::common;

use common::{BLUE_GREEN, Env};
use opsteps::exit::ExitStatus;
use serde_json::json;

/// A single node `a` to drain and a roomy node `b` to receive pods, plus `extra` workloads.
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

/// Each eviction's or delete's result (not its `sent` line): pod and HTTP status.
fn evictions(env: &Env) -> Vec<(String, String)> {
    env.audit_lines()
        .iter()
        .filter(|l| (l["action"] == "evict" || l["action"] == "delete") && l["outcome"] != "sent")
        .map(|l| {
            (
                format!(
                    "{}/{}",
                    l["target"]["namespace"].as_str().unwrap_or(""),
                    l["target"]["name"].as_str().unwrap_or("")
                ),
                l["http_status"].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_a_node_group_without_breaking_the_budget() {
    let env = Env::new(BLUE_GREEN).await;
    let out = env.run(&["--nodegroup", "blue", "--max-nodes", "2"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    for n in ["blue-0", "blue-1"] {
        assert!(env.unschedulable(n), "{n} cordoned");
        let left = env.pods_on(n);
        assert!(
            left.iter()
                .all(|p| p.starts_with("monitoring/node-exporter")),
            "{n} still runs {left:?}"
        );
        assert_eq!(
            env.node(n)["metadata"]["annotations"][drain_node::ANN_STATE],
            "drained"
        );
    }
    assert!(!env.unschedulable("green-0"));
    let web_on_green = env
        .pods_on("green-0")
        .iter()
        .chain(env.pods_on("green-1").iter())
        .filter(|p| p.starts_with("shop/web"))
        .count();
    assert_eq!(web_on_green, 4, "replacements run on green");
    // The budget (maxUnavailable 1) had no room while replacements started, and the drain
    // resumed as they became Ready; it never went below the budget.
    env.sb.assert_invariants();
    let ev = evictions(&env);
    // Each eviction after the first waited for the previous replacement to start and become
    // Ready (2 s + 3 s of virtual time).
    let times: Vec<jiff::Timestamp> = env
        .sb
        .requests()
        .iter()
        .filter(|r| r.subresource == "eviction" && r.status == 201)
        .map(|r| r.virtual_time.parse().unwrap())
        .collect();
    let spread = times.last().unwrap().duration_since(times[0]);
    assert!(
        spread >= jiff::SignedDuration::from_secs(15),
        "evictions waited for replacements: {spread:?}"
    );
    assert_eq!(
        ev.iter().filter(|(_, code)| code == "201").count(),
        4,
        "one accepted eviction per pod: {ev:?}"
    );
    assert_eq!(env.output("drained-nodes"), json!(["blue-0", "blue-1"]));
    assert_eq!(env.output("summary")["evicted"], 4);
    assert!(env.output("blocked-pods").as_array().unwrap().is_empty());
    // No lease is left behind.
    let leases = env.sb.with(|c| {
        c.store
            .count(opsteps_sandbox::resources::well_known::leases())
    });
    assert_eq!(leases, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_pods_are_skipped_by_default_and_refuse_the_drain_without_ignore() {
    let yaml = one_node(
        "  - {kind: DaemonSet, name: agent, namespace: kube-system}\n  - {name: app, replicas: 1, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--ignore-daemonsets=false"]).await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(out.summary.contains("DaemonSet-managed"), "{}", out.summary);
    assert!(!env.unschedulable("a"), "nothing cordoned");
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());

    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let left = env.pods_on("a");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("kube-system/agent-"));
    assert!(
        evictions(&env)
            .iter()
            .all(|(p, _)| !p.starts_with("kube-system/agent"))
    );
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_pods_are_left_alone() {
    let yaml = one_node(
        "  - {kind: StaticPod, name: kube-proxy, namespace: kube-system, placement: {nodes: [a]}}\n  - {name: app, replicas: 1, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert_eq!(
        env.pods_on("a"),
        vec!["kube-system/kube-proxy-a".to_owned()]
    );
    let plan = env.output("plan");
    let mirror = plan[0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"] == "kube-system/kube-proxy-a")
        .unwrap();
    assert_eq!(mirror["action"], "skip");
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptydir_pods_need_delete_emptydir_data() {
    let yaml = one_node(
        "  - {name: cache, replicas: 1, placement: {nodes: [a]}, volumes: [{name: scratch, emptyDir: {}}]}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Blocked);
    assert!(
        out.summary.contains("local storage") && out.summary.contains("--delete-emptydir-data"),
        "{}",
        out.summary
    );
    assert!(env.mutations().is_empty());
    let out = env.run(&["--node", "a", "--delete-emptydir-data"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert!(env.pods_on("a").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreplicated_pods_need_force_and_do_not_come_back() {
    let yaml = one_node(
        "  - {kind: Pod, name: debug, placement: {nodes: [a]}}\n  - {kind: Pod, name: done, phase: Succeeded, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Blocked);
    assert!(
        out.summary.contains("declare no controller") && out.summary.contains("--force"),
        "{}",
        out.summary
    );
    let plan = env.output("plan");
    let done = plan[0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"] == "default/done")
        .unwrap();
    assert_eq!(
        done["action"], "evict",
        "finished bare pods are fine without --force"
    );
    assert!(env.mutations().is_empty());
    let out = env.run(&["--node", "a", "--force"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert!(
        env.pods().iter().all(|p| p["metadata"]["name"] != "debug"),
        "bare pod deleted, not recreated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_selector_limits_the_pods_considered() {
    let yaml = one_node(
        "  - {name: web, replicas: 2, placement: {nodes: [a]}}\n  - {name: batch, replicas: 2, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--pod-selector", "app=web"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let left = env.pods_on("a");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|p| p.starts_with("default/batch-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disrupt_pods_block_unless_overridden() {
    for (annotation, value) in [
        ("karpenter.sh/do-not-disrupt", "true"),
        ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
    ] {
        let yaml = one_node(&format!(
            "  - {{name: train, replicas: 1, placement: {{nodes: [a]}}, podAnnotations: {{{annotation}: \"{value}\"}}}}"
        ));
        let env = Env::new(&yaml).await;
        let out = env.run(&["--node", "a"]).await;
        assert_eq!(out.status, ExitStatus::Blocked, "{annotation}");
        assert!(
            out.summary.contains(annotation) && out.summary.contains("--ignore-do-not-disrupt"),
            "{}",
            out.summary
        );
        assert!(!env.unschedulable("a") && env.mutations().is_empty());
        let out = env.run(&["--node", "a", "--ignore-do-not-disrupt"]).await;
        assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
        assert!(env.pods_on("a").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_budgets_refuse_before_cordoning() {
    for pdb in [
        "{minAvailable: 3}",
        "{maxUnavailable: 0}",
        "{minAvailable: \"100%\"}",
    ] {
        let yaml = one_node(&format!(
            "  - {{name: db, replicas: 3, placement: {{nodes: [a]}}, pdb: {pdb}}}"
        ));
        let env = Env::new(&yaml).await;
        let out = env.run(&["--node", "a"]).await;
        assert_eq!(out.status, ExitStatus::Blocked, "{pdb}: {}", out.summary);
        assert!(
            out.summary.contains("can never allow a disruption"),
            "{}",
            out.summary
        );
        assert!(!env.unschedulable("a"), "nothing cordoned");
        assert!(env.mutations().is_empty(), "{:?}", env.mutations());
        let blocked = env.output("blocked-pods");
        assert_eq!(blocked.as_array().unwrap().len(), 3);
        assert_eq!(blocked[0]["pdb"], "default/db");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_under_two_budgets_refuse_before_cordoning() {
    let yaml = format!(
        "{}pdbs:\n  - {{name: one, matchLabels: {{app: web}}, maxUnavailable: 1}}\n  - {{name: two, selectAll: true, maxUnavailable: 1}}\n",
        one_node("  - {name: web, replicas: 2, placement: {nodes: [a]}}")
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(
        out.summary.contains("more than one PodDisruptionBudget"),
        "{}",
        out.summary
    );
    assert!(env.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_capacity_refuses_before_cordoning() {
    let yaml = r#"
clock: {scale: 60}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "2", memory: 4Gi, pods: 50}}
workloads:
  - {name: big, replicas: 3, requests: {cpu: "1", memory: 1Gi}, placement: {nodes: [a]}}
"#;
    let env = Env::new(yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(
        out.summary.contains("insufficient capacity"),
        "{}",
        out.summary
    );
    assert!(env.mutations().is_empty());
    let blocked = env.output("blocked-pods");
    assert_eq!(
        blocked.as_array().unwrap().len(),
        2,
        "one of three fits on b: {blocked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_make_no_mutations_and_report_the_plan() {
    for mode in ["client", "server"] {
        let env = Env::new(BLUE_GREEN).await;
        let out = env
            .run(&["--nodegroup", "blue", "--max-nodes", "2", "--dry-run", mode])
            .await;
        assert_eq!(out.status, ExitStatus::Done, "{mode}: {}", out.summary);
        assert!(env.mutations().is_empty(), "{mode}: {:?}", env.mutations());
        assert!(!env.unschedulable("blue-0") && !env.unschedulable("blue-1"));
        assert_eq!(out.result["summary"]["evicted"], 4, "{mode}");
        let server_checked = env
            .sb
            .requests()
            .iter()
            .filter(|r| r.subresource == "eviction" && r.dry_run)
            .count();
        assert_eq!(
            server_checked,
            if mode == "server" { 4 } else { 0 },
            "{mode}"
        );
        assert!(
            env.audit_lines().iter().all(|l| l["dry_run"] == true),
            "{mode}"
        );
        env.sb.assert_invariants();
    }
}

/// The WorkflowTemplate always passes `--wait-for-replacements`; a dry run of several nodes
/// (the rotation's plan) must still plan every node, not stop after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_with_wait_for_replacements_plan_every_node() {
    for mode in ["client", "server"] {
        let env = Env::new(BLUE_GREEN).await;
        let out = env
            .run(&[
                "--nodegroup",
                "blue",
                "--max-nodes",
                "2",
                "--dry-run",
                mode,
                "--wait-for-replacements",
            ])
            .await;
        assert_eq!(out.status, ExitStatus::Done, "{mode}: {}", out.summary);
        assert_eq!(out.result["summary"]["evicted"], 4, "{mode}");
        assert!(env.mutations().is_empty(), "{mode}: {:?}", env.mutations());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_run_reports_real_budget_verdicts() {
    // Two of three replicas are not Ready: the budget (minAvailable 1) has no room, which only
    // the server knows.
    let yaml = one_node(
        "  - {name: web, replicas: 2, placement: {nodes: [a]}, pdb: {minAvailable: 2}}\n  - {name: spare, replicas: 1, placement: {nodes: [b]}}",
    );
    let yaml = yaml.replace("pdb: {minAvailable: 2}", "pdb: {maxUnavailable: 0}");
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--dry-run", "server"]).await;
    assert_eq!(
        out.status,
        ExitStatus::Blocked,
        "plan refuses a maxUnavailable 0 budget: {}",
        out.summary
    );
    assert!(env.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_404_503_and_namespace_terminating() {
    let yaml = format!(
        "{}faults:\n  - {{verb: evict, resource: pods, name: gone-0, action: {{status: {{code: 404}}}}, times: 1}}\n  - {{verb: evict, resource: pods, name: flaky-0, action: {{status: {{code: 503}}}}, times: 2}}\n  - {{verb: evict, resource: pods, name: ending-0, action: {{status: {{code: 403, message: 'pods \"ending-0\" is forbidden: unable to create new content in namespace default because it is being terminated'}}}}, times: 1}}\n",
        one_node(
            "  - {kind: StatefulSet, name: gone, replicas: 1, placement: {nodes: [a]}}\n  - {kind: StatefulSet, name: flaky, replicas: 1, placement: {nodes: [a]}}\n  - {kind: StatefulSet, name: ending, replicas: 1, placement: {nodes: [a]}}"
        )
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--timeout", "60s"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let ev = evictions(&env);
    let codes = |pod: &str| {
        ev.iter()
            .filter(|(p, _)| p == pod)
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>()
    };
    // 404: done at once, no retry (kubectl's rule); the pod the fault hid is left where it is.
    assert_eq!(codes("default/gone-0"), ["404"]);
    assert!(env.pods_on("a").contains(&"default/gone-0".to_owned()));
    // 503: transient, retried until accepted.
    assert_eq!(codes("default/flaky-0"), ["503", "503", "201"], "{ev:?}");
    // 403 namespace terminating on a pod not yet deleting: retried after 5 s, then accepted.
    assert_eq!(codes("default/ending-0"), ["403", "201"], "{ev:?}");
    for p in ["default/flaky-0", "default/ending-0"] {
        assert!(
            !env.pods_on("a").contains(&p.to_owned()),
            "{p} left the node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_pods_go_last() {
    let yaml = one_node(
        "  - {name: dns, replicas: 1, priorityClassName: system-cluster-critical, placement: {nodes: [a]}}\n  - {name: web, replicas: 3, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let order: Vec<String> = evictions(&env)
        .into_iter()
        .filter(|(_, c)| c == "201")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert!(
        order.last().unwrap().starts_with("default/dns-"),
        "{order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_terminating_pods_are_waited_for_not_evicted_again() {
    let yaml = one_node(
        "  - {name: slow, replicas: 1, terminationGracePeriodSeconds: 120, placement: {nodes: [a]}}\n  - {name: web, replicas: 1, placement: {nodes: [a]}}",
    );
    let env = Env::new(&yaml).await;
    let slow = env
        .pods_on("a")
        .into_iter()
        .find(|p| p.starts_with("default/slow-"))
        .unwrap();
    let name = slow.split('/').nth(1).unwrap().to_owned();
    // Someone else deletes it first (120 s virtual grace = 2 s real).
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(env.sb.kubeconfig_path()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "default");
    api.delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert!(
        evictions(&env).iter().all(|(p, _)| *p != slow),
        "no second eviction of {slow}"
    );
    assert!(
        !env.pods_on("a").contains(&slow),
        "waited until it was gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_until_the_deadline_exits_4_and_can_uncordon() {
    // The replacement cannot schedule anywhere (nodeSelector), so after the first eviction the
    // budget never has room again.
    let yaml = one_node("  - {name: pinned, replicas: 2, nodeSelector: {disk: ssd}, placement: {nodes: [a]}, pdb: {minAvailable: 1}}")
        .replace("- {name: a, capacity", "- {name: a, labels: {disk: ssd}, capacity");
    let env = Env::new(&yaml).await;
    let out = env
        .run(&[
            "--node",
            "a",
            "--skip-capacity-check",
            "--timeout",
            "4s",
            "--uncordon-on-failure",
        ])
        .await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(out.summary.contains("default/pinned-"), "{}", out.summary);
    let blocked = env.output("blocked-pods");
    assert_eq!(blocked.as_array().unwrap().len(), 1, "{blocked}");
    assert_eq!(blocked[0]["pdb"], "default/pinned");
    assert!(
        blocked[0]["seconds_blocked"].as_u64().unwrap() >= 2,
        "{blocked}"
    );
    assert!(
        blocked[0]["last_message"]
            .as_str()
            .unwrap()
            .contains("PodDisruptionBudget default/pinned"),
        "{blocked}"
    );
    assert!(
        !env.unschedulable("a"),
        "--uncordon-on-failure restored the node"
    );
    assert!(
        env.node("a")["metadata"]["annotations"]
            .get(drain_node::ANN_OWNER)
            .is_none()
    );
    env.sb.assert_invariants();
    let tl = std::fs::read_to_string(env.dir.path().join("termination-log")).unwrap_or_default();
    assert!(
        tl.is_empty(),
        "in-process runs leave the termination log to opsteps::step::finish"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_held_by_another_drain_is_refused() {
    let env = Env::new(&one_node(
        "  - {name: web, replicas: 1, placement: {nodes: [a]}}",
    ))
    .await;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    env.sb.with(|c| {
        let now_v = c.now();
        c.store
            .create(
                opsteps_sandbox::resources::well_known::leases(),
                json!({"metadata": {"name": "opsteps-drain-a", "namespace": "kube-system"}, "spec": {"holderIdentity": "argo:other/123", "leaseDurationSeconds": 600, "renewTime": now}}),
                &now_v,
            )
            .unwrap();
    });
    let out = env.run(&["--node", "a"]).await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    assert!(out.summary.contains("argo:other/123"), "{}", out.summary);
    assert!(!env.unschedulable("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_completion_finishes_quickly_without_new_evictions() {
    let env = Env::new(BLUE_GREEN).await;
    let out = env.run(&["--node", "blue-0"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let before = evictions(&env).len();
    let started = std::time::Instant::now();
    let out = env.run(&["--node", "blue-0"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert_eq!(evictions(&env).len(), before, "no eviction on the re-run");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(out.result["summary"]["evicted"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_nodes_and_oversized_selections_are_bad_input() {
    let env = Env::new(BLUE_GREEN).await;
    let out = env.run(&["--node", "nope"]).await;
    assert_eq!(out.status, ExitStatus::BadInput);
    assert!(
        out.summary.contains("\"nope\" not found"),
        "{}",
        out.summary
    );
    let out = env.run(&["--nodegroup", "purple"]).await;
    assert_eq!(out.status, ExitStatus::BadInput);
    let out = env
        .run(&[
            "--selector",
            "eks.amazonaws.com/nodegroup",
            "--max-nodes",
            "3",
        ])
        .await;
    assert_eq!(out.status, ExitStatus::BadInput);
    assert!(
        out.summary.contains("more than --max-nodes 3"),
        "{}",
        out.summary
    );
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_replacements_between_nodes() {
    let env = Env::new(BLUE_GREEN).await;
    let out = env
        .run(&[
            "--nodegroup",
            "blue",
            "--max-nodes",
            "2",
            "--wait-for-replacements",
        ])
        .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let dep = env.sb.with(|c| {
        (*c.store
            .get(
                opsteps_sandbox::resources::well_known::deployments(),
                "shop",
                "web",
            )
            .unwrap())
        .clone()
    });
    assert_eq!(dep["status"]["availableReplicas"], 4);
    env.sb.assert_invariants();
}
