//! Fault injection (scenario and run time), the request log, and the invariant checks.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use std::time::{Duration, Instant};

use common::{delete, expect, get, pdb, post, raw, running_pod, sandbox, send_as};
use http::Method;
use opsteps_sandbox::faults::{FaultAction, FaultRule};
use opsteps_sandbox::invariants::ViolationKind;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::json;

fn status(code: u16, retry_after: Option<u64>) -> FaultAction {
    FaultAction::Status {
        code,
        retry_after,
        message: None,
    }
}

#[tokio::test]
async fn status_faults_fire_the_configured_number_of_times() {
    let sb = sandbox().await;
    sb.add_fault(FaultRule::new("list", "pods", status(503, None)).times(2));
    for _ in 0..2 {
        let r = get(&sb, "/api/v1/pods").await;
        let b = expect(&r, 503);
        assert_eq!(b["kind"], "Status");
        assert_eq!(b["reason"], "ServiceUnavailable");
    }
    expect(&get(&sb, "/api/v1/pods").await, 200);
    expect(&get(&sb, "/api/v1/nodes").await, 200);
    assert_eq!(sb.with(|c| c.api.faults.fired_counts()), [2]);
    // 429 carries Retry-After in the header and the body.
    sb.clear_faults();
    sb.add_fault(FaultRule::new("create", "configmaps", status(429, Some(3))));
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "a"}}),
    )
    .await;
    assert_eq!(expect(&r, 429)["details"]["retryAfterSeconds"], 3);
    assert_eq!(r.headers.get("retry-after").unwrap(), "3");
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/configmaps/a")
            .await
            .status,
        404,
        "the create never happened"
    );
}

#[tokio::test]
async fn every_nth_and_per_user_rules() {
    let sb = sandbox().await;
    let mut rule = FaultRule::new("get", "namespaces", status(500, None));
    rule.every = Some(2);
    sb.add_fault(rule);
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&sb, "/api/v1/namespaces/default").await.status);
        }
        v
    };
    assert_eq!(codes, [200, 500, 200, 500]);
    sb.clear_faults();
    sb.add_fault(FaultRule::new("*", "pods", status(500, None)).for_user("alice"));
    let alice = sb.token_for("alice", false);
    let bob = sb.token_for("bob", false);
    assert_eq!(
        send_as(&sb, Some(&alice), Method::GET, "/api/v1/pods", None)
            .await
            .status,
        500
    );
    assert_eq!(
        send_as(&sb, Some(&bob), Method::GET, "/api/v1/pods", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn latency_and_dropped_connections() {
    let sb = sandbox().await;
    sb.add_fault(FaultRule::new("get", "namespaces", FaultAction::Latency { ms: 300 }).times(1));
    let t = Instant::now();
    expect(&get(&sb, "/api/v1/namespaces/default").await, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    sb.add_fault(FaultRule::new("evict", "pods", FaultAction::Drop).times(1));
    running_pod(&sb, "default", "p", "n1", json!({})).await;
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}});
    let r = raw(
        &sb,
        Some(sb.admin_token()),
        Method::POST,
        "/api/v1/namespaces/default/pods/p/eviction",
        Some(("application/json", body.to_string().into_bytes())),
        &[],
    )
    .await;
    assert!(r.is_err(), "connection closed without a response");
    assert!(
        get(&sb, "/api/v1/namespaces/default/pods/p").await.body["metadata"]["deletionTimestamp"]
            .is_null()
    );
    let rec = sb
        .requests()
        .into_iter()
        .find(|r| r.verb == "evict")
        .unwrap();
    assert_eq!(rec.status, 0, "logged as dropped");
}

#[tokio::test]
async fn watch_streams_closed_after_n_events() {
    let sb = sandbox().await;
    for i in 0..5 {
        expect(
            &post(
                &sb,
                "/api/v1/namespaces/default/configmaps",
                &json!({"metadata": {"name": format!("c{i}")}}),
            )
            .await,
            201,
        );
    }
    sb.add_fault(FaultRule::new(
        "watch",
        "configmaps",
        FaultAction::WatchClose {
            after_events: Some(2),
            after_seconds: None,
        },
    ));
    let r = get(&sb, "/api/v1/namespaces/default/configmaps?watch=true").await;
    let lines: Vec<&str> = r.body.as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 2, "closed after 2 of 5 events: {lines:?}");
}

#[tokio::test]
async fn faults_from_the_scenario_yaml() {
    let scenario = Scenario::from_yaml(
        "faults:\n- verbs: [list]\n  resource: nodes\n  action: {status: {code: 500, message: boom}}\n  times: 1\n",
    )
    .unwrap();
    let sb = Sandbox::start(
        Options::default()
            .scenario(scenario)
            .tls(false)
            .controllers(false),
    )
    .await
    .unwrap();
    let r = get(&sb, "/api/v1/nodes").await;
    assert_eq!(expect(&r, 500)["message"], "boom");
    expect(&get(&sb, "/api/v1/nodes").await, 200);
}

#[tokio::test]
async fn invariant_pdb_breach_by_delete_is_recorded() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    running_pod(&sb, "app", "web-1", "n2", json!({"app": "web"})).await;
    pdb(&sb, "app", "web", json!({"matchLabels": {"app": "web"}}), json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2})).await;
    let user = sb.token_for("careless", false);
    let r = send_as(
        &sb,
        Some(&user),
        Method::DELETE,
        "/api/v1/namespaces/app/pods/web-0",
        None,
    )
    .await;
    expect(&r, 200);
    let v = sb.invariants();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::PdbBreached);
    assert_eq!(v[0].user, "careless");
    assert_eq!(v[0].target, "app/web-0");
    assert_eq!(v[0].pdb.as_deref(), Some("app/web"));
    assert_eq!(
        (v[0].healthy_after, v[0].desired_healthy),
        (Some(1), Some(2))
    );
    assert_eq!(v[0].via, "delete");
    // Deleting the already-terminating pod again is no new breach.
    expect(
        &delete(&sb, "/api/v1/namespaces/app/pods/web-0", None).await,
        200,
    );
    assert_eq!(sb.invariants().len(), 1);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sb.assert_invariants()));
    assert!(caught.is_err(), "assert_invariants panics on a violation");
}

#[tokio::test]
async fn invariant_allows_evictions_within_the_budget() {
    let sb = sandbox().await;
    for i in 0..3 {
        running_pod(&sb, "app", &format!("web-{i}"), "n1", json!({"app": "web"})).await;
    }
    pdb(&sb, "app", "web", json!({"matchLabels": {"app": "web"}}), json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3})).await;
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}});
    expect(
        &post(&sb, "/api/v1/namespaces/app/pods/web-0/eviction", &body).await,
        201,
    );
    sb.assert_invariants();
    // A delete that bypasses the (now spent) budget is caught.
    expect(
        &delete(&sb, "/api/v1/namespaces/app/pods/web-1", None).await,
        200,
    );
    assert_eq!(sb.invariants()[0].kind, ViolationKind::PdbBreached);
}

#[tokio::test]
async fn invariant_protected_and_mirror_pods() {
    let sb = sandbox().await;
    running_pod(&sb, "kube-system", "static-n1", "n1", json!({})).await;
    common::patch(
        &sb,
        "/api/v1/namespaces/kube-system/pods/static-n1",
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "abc"}}}),
    )
    .await;
    running_pod(&sb, "app", "keep", "n1", json!({})).await;
    common::patch(
        &sb,
        "/api/v1/namespaces/app/pods/keep",
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"sandbox.opsteps.io/protected": "true"}}}),
    )
    .await;
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "keep"}});
    expect(
        &post(&sb, "/api/v1/namespaces/app/pods/keep/eviction", &body).await,
        201,
    );
    expect(
        &delete(&sb, "/api/v1/namespaces/kube-system/pods/static-n1", None).await,
        200,
    );
    let v = sb.invariants();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|v| v.kind == ViolationKind::ProtectedPod));
    assert_eq!(
        (v[0].target.as_str(), v[0].via.as_str()),
        ("app/keep", "eviction")
    );
    assert_eq!(
        (v[1].target.as_str(), v[1].via.as_str()),
        ("kube-system/static-n1", "delete")
    );
    // Dry-run removals are no violation.
    running_pod(&sb, "app", "keep2", "n1", json!({})).await;
    common::patch(
        &sb,
        "/api/v1/namespaces/app/pods/keep2",
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"sandbox.opsteps.io/protected": "true"}}}),
    )
    .await;
    expect(
        &delete(&sb, "/api/v1/namespaces/app/pods/keep2?dryRun=All", None).await,
        200,
    );
    assert_eq!(sb.invariants().len(), 2);
}

#[tokio::test]
async fn invariant_dry_run_clients_are_refused_and_recorded() {
    let sb = sandbox().await;
    let token = sb.token_for("planner", true);
    let cm = json!({"metadata": {"name": "c"}});
    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", cm.to_string().into_bytes())),
    )
    .await;
    let b = expect(&r, 400);
    assert!(b["message"].as_str().unwrap().contains("dry-run"), "{b}");
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/configmaps/c")
            .await
            .status,
        404,
        "nothing written"
    );
    let v = sb.invariants();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, ViolationKind::DryRunMutation);
    assert_eq!(v[0].user, "planner");
    // Reads and dryRun=All writes are fine.
    assert_eq!(
        send_as(
            &sb,
            Some(&token),
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            None
        )
        .await
        .status,
        200
    );
    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        Some(("application/json", cm.to_string().into_bytes())),
    )
    .await;
    expect(&r, 201);
    assert_eq!(sb.invariants().len(), 1);
    // The request log shows the refused mutation and the dry-run one.
    let log: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.user == "planner")
        .collect();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log[0].status, log[0].mutating, log[0].dry_run),
        (400, true, false)
    );
    assert_eq!(
        (log[2].status, log[2].mutating, log[2].dry_run),
        (201, true, true)
    );
    // kubeconfig_for writes a kubeconfig carrying a token of that identity.
    let path = sb.kubeconfig_for("planner", true);
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains("token: sandbox-") && text.contains("\"planner\""),
        "{text}"
    );
}

#[tokio::test]
async fn scenario_users_carry_tokens_and_dry_run_flags() {
    let scenario = Scenario::from_yaml(
        "users:\n- name: ci\n  token: tok-ci\n  groups: [ops]\n  dryRun: true\n- name: ops\n  token: tok-ops\n",
    )
    .unwrap();
    let sb = Sandbox::start(
        Options::default()
            .scenario(scenario)
            .tls(false)
            .controllers(false),
    )
    .await
    .unwrap();
    let cm = json!({"metadata": {"name": "c"}}).to_string().into_bytes();
    let r = send_as(
        &sb,
        Some("tok-ci"),
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", cm.clone())),
    )
    .await;
    expect(&r, 400);
    let r = send_as(
        &sb,
        Some("tok-ops"),
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", cm)),
    )
    .await;
    expect(&r, 201);
    let users: Vec<String> = sb.requests().into_iter().map(|r| r.user).collect();
    assert_eq!(users, ["ci", "ops"]);
    assert_eq!(sb.invariants().len(), 1);
    assert_eq!(
        sb.mutations().len(),
        2,
        "the refused one counts: it was attempted"
    );
}

#[tokio::test]
async fn watch_streams_closed_after_a_duration() {
    let sb = sandbox().await;
    sb.add_fault(FaultRule::new(
        "watch",
        "configmaps",
        FaultAction::WatchClose {
            after_events: None,
            after_seconds: Some(0.5),
        },
    ));
    let t = Instant::now();
    let r = get(
        &sb,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=30",
    )
    .await;
    assert_eq!(r.status, 200);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
