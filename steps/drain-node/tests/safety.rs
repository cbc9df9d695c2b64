//! drain-node fails closed: prior cordons are kept, unknown replacement state waits, SIGTERM
//! stops every mutation, every wait has a deadline, a lost lease stops the drain, and the
//! watches re-list on deletions and 410s.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{BLUE_GREEN, Env};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use opsteps::exit::ExitStatus;
use serde_json::json;

/// Node `a` to drain, node `b` with room, plus `extra` workloads.
fn one_node(extra: &str) -> String {
    format!(
        r#"
clock: {{scale: 60}}
kubelet: {{startDelay: 1s, readyDelay: 1s}}
nodes:
  - {{name: a, labels: {{disk: ssd}}, capacity: {{cpu: "8", memory: 32Gi, pods: 50}}}}
  - {{name: b, capacity: {{cpu: "8", memory: 32Gi, pods: 50}}}}
workloads:
{extra}
"#
    )
}

/// Two pods whose replacements cannot schedule (nodeSelector): after one eviction the budget
/// never has room again.
const PINNED: &str = "  - {name: pinned, replicas: 2, nodeSelector: {disk: ssd}, placement: {nodes: [a]}, pdb: {minAvailable: 1}}";

/// A budget held at 0 by an unready pod on another node: draining `a` must wait.
fn held_budget() -> String {
    format!(
        "{}pdbs:\n  - {{name: front, matchLabels: {{tier: front}}, maxUnavailable: 1}}\n",
        one_node(
            "  - {name: web, replicas: 2, labels: {app: web, tier: front}, placement: {nodes: [a]}}\n  - {name: broken, replicas: 1, labels: {app: broken, tier: front}, neverReady: true, placement: {nodes: [b]}}"
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncordon_on_failure_never_uncordons_an_operator_cordoned_node() {
    let env = Env::new(&one_node(PINNED)).await;
    // The operator cordoned `a` before any drain.
    let nodes: Api<Node> = Api::all(env.client().await);
    nodes
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    for run in ["first", "re-run"] {
        let out = env
            .run(&[
                "--node",
                "a",
                "--skip-capacity-check",
                "--timeout",
                "3s",
                "--uncordon-on-failure",
            ])
            .await;
        assert_eq!(out.status, ExitStatus::Blocked, "{run}: {}", out.summary);
        assert!(env.unschedulable("a"), "{run}: the operator's cordon stays");
        assert_eq!(
            env.node("a")["metadata"]["annotations"][drain_node::ANN_PRIOR],
            "true",
            "{run}"
        );
    }
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_state_that_cannot_be_read_counts_as_short() {
    let yaml = format!(
        "{BLUE_GREEN}faults:\n  - {{verbs: [get], resource: deployments, action: {{status: {{code: 500}}}}}}\n"
    );
    let env = Env::new(&yaml).await;
    let started = Instant::now();
    let out = env
        .run(&[
            "--nodegroup",
            "blue",
            "--max-nodes",
            "2",
            "--wait-for-replacements",
            "--replacement-timeout",
            "12s",
        ])
        .await;
    assert_eq!(out.status, ExitStatus::Blocked, "{}", out.summary);
    let nodes = out.result["nodes"].as_array().unwrap();
    assert_eq!(nodes[1]["node"], "blue-1");
    assert_eq!(nodes[1]["status"], "not-started", "{nodes:?}");
    assert!(
        env.pods_on("blue-1")
            .iter()
            .any(|p| p.starts_with("shop/web")),
        "the next node was not drained"
    );
    // Backoff, not a GET per owner per second.
    let gets = env
        .sb
        .requests()
        .iter()
        .filter(|r| r.resource == "deployments" && r.verb == "get")
        .count();
    assert!(gets <= 8, "{gets} GETs in {:?}", started.elapsed());
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_planning_takes_no_lease_and_cordons_nothing() {
    let yaml = format!(
        "{}faults:\n  - {{verbs: [list], resource: pods, action: {{latency: {{ms: 1500}}}}}}\n",
        one_node("  - {name: web, replicas: 2, placement: {nodes: [a]}}")
    );
    let env = Env::new(&yaml).await;
    let out = env
        .run_with(
            env.sb.kubeconfig_path().to_owned(),
            &["--node", "a"],
            |ctx| {
                let s = ctx.shutdown.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    s.trigger();
                });
            },
        )
        .await;
    assert_eq!(out.status, ExitStatus::Transient, "{}", out.summary);
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
    assert!(!env.unschedulable("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_watch_first_list_has_a_deadline() {
    let yaml = format!(
        "{}faults:\n  - {{verbs: [list], resource: pods, action: {{status: {{code: 500}}}}}}\n",
        one_node("  - {name: web, replicas: 1, placement: {nodes: [a]}}")
    );
    let env = Env::new(&yaml).await;
    let watch = opsteps::evict::PodWatch::start(
        Api::<Pod>::all(env.client().await),
        kube::runtime::watcher::Config::default().fields("spec.nodeName=a"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_gone(&HashSet::from(["x".to_owned()]), None, deadline),
    )
    .await
    .expect("wait_gone returns at its deadline even without a first list");
    assert!(r.is_err(), "no list, no answer: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_drain_and_the_successor_keeps_it() {
    let env = Env::new(&one_node(PINNED)).await;
    let client = env.client().await;
    let started = Instant::now();
    let drain = env.run(&[
        "--node",
        "a",
        "--skip-capacity-check",
        "--timeout",
        "60s",
        "--lease-duration",
        "3s",
        "--uncordon-on-failure",
    ]);
    let takeover = async {
        env.until(20, "the cordon", |e| e.unschedulable("a")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        // The step renews every second: a renewal between our read and write is a 409, so
        // read and write again, as a real successor would.
        for attempt in 0.. {
            let mut lease = api.get("opsteps-drain-a").await.unwrap();
            let spec = lease.spec.as_mut().unwrap();
            spec.holder_identity = Some("argo:successor/1".into());
            spec.lease_duration_seconds = Some(600);
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                jiff::Timestamp::now(),
            ));
            match api
                .replace("opsteps-drain-a", &PostParams::default(), &lease)
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {}
                Err(e) => panic!("take the lease over: {e}"),
            }
        }
    };
    let (out, ()) = tokio::join!(drain, takeover);
    assert_ne!(out.status, ExitStatus::Done, "{}", out.summary);
    // The node is the successor's now: no outcome annotation, no uncordon, from us.
    assert_eq!(
        env.node("a")["metadata"]["annotations"][drain_node::ANN_STATE],
        "draining"
    );
    assert!(env.unschedulable("a"));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "stopped when the lease was lost, not at --timeout: {:?}",
        started.elapsed()
    );
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    let lease = api.get_opt("opsteps-drain-a").await.unwrap();
    assert_eq!(
        lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .as_deref(),
        Some("argo:successor/1"),
        "the successor's lease is not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_never_deletes_a_successors_lease() {
    let env = Env::new(&one_node(
        "  - {name: web, replicas: 1, placement: {nodes: [a]}}",
    ))
    .await;
    let client = env.client().await;
    let audit = std::sync::Arc::new(
        opsteps::audit::Auditor::new(opsteps::audit::Actor::from_env("test"), None).unwrap(),
    );
    // A long lease: our renewer has not noticed the takeover when we release.
    let held = drain_node::lease::acquire(
        &client,
        "kube-system",
        "a",
        "argo:first/1",
        Duration::from_mins(10),
        &audit,
        &opsteps::shutdown::Shutdown::new(),
    )
    .await
    .unwrap()
    .expect("free lease");
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    let mut lease = api.get("opsteps-drain-a").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("argo:successor/2".into());
    api.replace("opsteps-drain-a", &PostParams::default(), &lease)
        .await
        .unwrap();
    held.release(&audit).await;
    let left = api.get_opt("opsteps-drain-a").await.unwrap();
    assert_eq!(
        left.and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .as_deref(),
        Some("argo:successor/2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waiting_on_a_deleted_budget_proceeds() {
    let env = Env::new(&held_budget()).await;
    let client = env.client().await;
    let started = Instant::now();
    let drain = env.run(&["--node", "a", "--timeout", "60s"]);
    let delete = async {
        env.until(20, "the cordon", |e| e.unschedulable("a")).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
        api.delete("front", &DeleteParams::default()).await.unwrap();
    };
    let (out, ()) = tokio::join!(drain, delete);
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(env.pods_on("a").is_empty(), "{:?}", env.pods_on("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answered_410_relists() {
    let yaml = format!(
        "{}faults:\n  - {{verbs: [watch], resource: pods, action: {{status: {{code: 410}}}}, times: 2}}\n",
        one_node(
            "  - {name: web, replicas: 1, terminationGracePeriodSeconds: 30, placement: {nodes: [a]}}"
        )
    );
    let env = Env::new(&yaml).await;
    let out = env.run(&["--node", "a", "--timeout", "60s"]).await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    let reqs: Vec<_> = env
        .sb
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "pods"
                && r.query.contains("nodeName")
                && matches!(r.verb.as_str(), "list" | "watch")
        })
        .collect();
    let gone: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.verb == "watch" && r.status == 410)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(gone.len(), 2, "{reqs:?}");
    for i in gone {
        let next = reqs.get(i + 1).map(|r| r.verb.as_str());
        assert_eq!(
            next,
            Some("list"),
            "a 410 watch is followed by a re-list: {reqs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_skip_wait_timeout_skips_nothing() {
    let env = Env::new(&one_node(
        "  - {name: slow, replicas: 1, terminationGracePeriodSeconds: 120, placement: {nodes: [a]}}",
    ))
    .await;
    let slow = env.pods_on("a").pop().unwrap();
    let api: Api<Pod> = Api::namespaced(env.client().await, "default");
    // A 600 s grace (10 s real) keeps it terminating however slowly the drain starts.
    api.delete(
        slow.split('/').nth(1).unwrap(),
        &DeleteParams::default().grace_period(600),
    )
    .await
    .unwrap();
    let out = env
        .run(&[
            "--node",
            "a",
            "--skip-wait-for-delete-timeout",
            &u64::MAX.to_string(),
        ])
        .await;
    assert_eq!(out.status, ExitStatus::Done, "{}", out.summary);
    assert_eq!(out.result["plan"][0]["pods"][0]["action"], "wait");
    assert_eq!(out.result["nodes"][0]["awaited"], json!([slow]));
    assert!(env.pods_on("a").is_empty(), "waited until it was gone");
}
