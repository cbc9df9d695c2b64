//! The eviction subresource, one test per rule of drain.md §4, asserting status and body.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use common::{expect, get, pdb, post, running_pod, sandbox, set_pod_status};
use opsteps_sandbox::sandbox::Sandbox;
use serde_json::{Value, json};

const VIOLATE: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn eviction(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}})
}

async fn evict(sb: &Sandbox, ns: &str, name: &str) -> common::Resp {
    post(
        sb,
        &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
        &eviction(ns, name),
    )
    .await
}

async fn pod(sb: &Sandbox, ns: &str, name: &str) -> Option<Value> {
    let r = get(sb, &format!("/api/v1/namespaces/{ns}/pods/{name}")).await;
    (r.status == 200).then_some(r.body)
}

async fn pdb_status(sb: &Sandbox, ns: &str, name: &str) -> Value {
    let r = get(
        sb,
        &format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}"),
    )
    .await;
    expect(&r, 200)["status"].clone()
}

fn budget(allowed: i64, current: i64, desired: i64) -> Value {
    json!({"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired, "expectedPods": current})
}

fn assert_success(r: &common::Resp) {
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.body);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["status"], "Success");
}

#[tokio::test]
async fn rule1_name_mismatch_is_400() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    let r = post(
        &sb,
        "/api/v1/namespaces/app/pods/web-0/eviction",
        &eviction("app", "web-1"),
    )
    .await;
    let b = expect(&r, 400);
    assert_eq!(b["reason"], "BadRequest");
    assert_eq!(
        b["message"],
        "name in URL does not match name in Eviction object"
    );
    assert!(pod(&sb, "app", "web-0").await.unwrap()["metadata"]["deletionTimestamp"].is_null());
}

#[tokio::test]
async fn rule1_missing_pod_is_404() {
    let sb = sandbox().await;
    let r = evict(&sb, "default", "ghost").await;
    let b = expect(&r, 404);
    assert_eq!(b["reason"], "NotFound");
    assert_eq!(b["message"], "pods \"ghost\" not found");
    assert_eq!(b["details"], json!({"name": "ghost", "kind": "pods"}));
}

#[tokio::test]
async fn rule1_terminating_namespace_is_403() {
    let sb = sandbox().await;
    running_pod(&sb, "gone", "web-0", "n1", json!({"app": "web"})).await;
    expect(
        &common::delete(&sb, "/api/v1/namespaces/gone", None).await,
        200,
    );
    let ns = get(&sb, "/api/v1/namespaces/gone").await;
    assert_eq!(ns.body["status"]["phase"], "Terminating");
    let r = evict(&sb, "gone", "web-0").await;
    let b = expect(&r, 403);
    assert_eq!(b["reason"], "Forbidden");
    assert_eq!(b["details"]["causes"][0]["reason"], "NamespaceTerminating");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("because it is being terminated")
    );
    // Creating in it is refused the same way.
    let r = post(
        &sb,
        "/api/v1/namespaces/gone/pods",
        &common::pod_obj("gone", "x", None, json!({})),
    )
    .await;
    assert_eq!(
        expect(&r, 403)["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
}

#[tokio::test]
async fn rule2_pending_finished_and_terminating_pods_bypass_the_pdb() {
    let sb = sandbox().await;
    common::ensure_ns(&sb, "app").await;
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(0, 1, 1),
    )
    .await;
    // Pending (unscheduled): removed at once.
    expect(
        &post(
            &sb,
            "/api/v1/namespaces/app/pods",
            &common::pod_obj("app", "pending", None, json!({"app": "web"})),
        )
        .await,
        201,
    );
    assert_success(&evict(&sb, "app", "pending").await);
    assert!(pod(&sb, "app", "pending").await.is_none());
    // Succeeded and Failed: removed at once (grace 0 for finished pods).
    for phase in ["Succeeded", "Failed"] {
        let name = phase.to_lowercase();
        running_pod(&sb, "app", &name, "n1", json!({"app": "web"})).await;
        set_pod_status(&sb, "app", &name, phase, false).await;
        assert_success(&evict(&sb, "app", &name).await);
        assert!(
            pod(&sb, "app", &name).await.is_none(),
            "{phase} pod removed"
        );
    }
    // Already terminating: no PDB check either.
    running_pod(&sb, "app", "term", "n1", json!({"app": "web"})).await;
    expect(
        &common::delete(&sb, "/api/v1/namespaces/app/pods/term", None).await,
        200,
    );
    assert_success(&evict(&sb, "app", "term").await);
    assert_eq!(
        pdb_status(&sb, "app", "web").await["disruptionsAllowed"],
        0,
        "never decremented"
    );
}

#[tokio::test]
async fn rule3_more_than_one_pdb_is_500_without_reason() {
    let sb = sandbox().await;
    running_pod(
        &sb,
        "app",
        "web-0",
        "n1",
        json!({"app": "web", "tier": "fe"}),
    )
    .await;
    pdb(
        &sb,
        "app",
        "a",
        json!({"matchLabels": {"app": "web"}}),
        budget(5, 3, 1),
    )
    .await;
    pdb(
        &sb,
        "app",
        "b",
        json!({"matchLabels": {"tier": "fe"}}),
        budget(5, 3, 1),
    )
    .await;
    let r = evict(&sb, "app", "web-0").await;
    let b = expect(&r, 500);
    assert_eq!(b["status"], "Failure");
    assert_eq!(b["code"], 500);
    assert_eq!(
        b["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    assert!(b.get("reason").is_none(), "no reason: {b}");
    assert!(pod(&sb, "app", "web-0").await.unwrap()["metadata"]["deletionTimestamp"].is_null());
}

#[tokio::test]
async fn rule3_no_pdb_deletes_gracefully_with_disruption_target() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    // A null selector matches nothing (policy/v1).
    let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "nosel", "namespace": "app"}, "spec": {"minAvailable": 1}});
    expect(
        &post(
            &sb,
            "/apis/policy/v1/namespaces/app/poddisruptionbudgets",
            &body,
        )
        .await,
        201,
    );
    let r = evict(&sb, "app", "web-0").await;
    assert_success(&r);
    assert_eq!(r.status, 201);
    let p = pod(&sb, "app", "web-0")
        .await
        .expect("graceful: still there");
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    let cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .expect("DisruptionTarget")
        .clone();
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "EvictionByEvictionAPI");
    assert_eq!(cond["message"], "Eviction API: evicting");
}

#[tokio::test]
async fn rule3_empty_selector_matches_every_pod_in_the_namespace() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "any", "n1", json!({"x": "y"})).await;
    pdb(&sb, "app", "all", json!({}), budget(0, 1, 1)).await;
    let r = evict(&sb, "app", "any").await;
    assert_eq!(
        expect(&r, 429)["details"]["causes"][0]["message"],
        "The disruption budget all needs 1 healthy pods and has 1 currently"
    );
}

#[tokio::test]
async fn rule4_unhealthy_pods_and_unhealthy_pod_eviction_policy() {
    let sb = sandbox().await;
    // AlwaysAllow: an unready pod goes even with no disruptions allowed, without a decrement.
    running_pod(&sb, "a", "p", "n1", json!({"app": "x"})).await;
    set_pod_status(&sb, "a", "p", "Running", false).await;
    let r = post(&sb, "/apis/policy/v1/namespaces/a/poddisruptionbudgets", &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "x", "namespace": "a"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "minAvailable": 3, "unhealthyPodEvictionPolicy": "AlwaysAllow"}})).await;
    expect(&r, 201);
    expect(
        &common::patch(
            &sb,
            "/apis/policy/v1/namespaces/a/poddisruptionbudgets/x/status",
            "application/merge-patch+json",
            &json!({"status": budget(0, 0, 3)}),
        )
        .await,
        200,
    );
    assert_success(&evict(&sb, "a", "p").await);
    assert!(pod(&sb, "a", "p").await.unwrap()["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pdb_status(&sb, "a", "x").await["disruptionsAllowed"], 0);

    // IfHealthyBudget (default): budget met (current >= desired > 0) → deleted without decrement.
    running_pod(&sb, "b", "p", "n1", json!({"app": "y"})).await;
    set_pod_status(&sb, "b", "p", "Running", false).await;
    pdb(
        &sb,
        "b",
        "y",
        json!({"matchLabels": {"app": "y"}}),
        budget(1, 2, 2),
    )
    .await;
    assert_success(&evict(&sb, "b", "p").await);
    assert_eq!(
        pdb_status(&sb, "b", "y").await["disruptionsAllowed"],
        1,
        "no decrement"
    );

    // Budget not met → falls through to checkAndDecrement → 429.
    running_pod(&sb, "c", "p", "n1", json!({"app": "z"})).await;
    set_pod_status(&sb, "c", "p", "Running", false).await;
    pdb(
        &sb,
        "c",
        "z",
        json!({"matchLabels": {"app": "z"}}),
        budget(0, 1, 2),
    )
    .await;
    let r = evict(&sb, "c", "p").await;
    assert_eq!(expect(&r, 429)["message"], VIOLATE);
    assert!(pod(&sb, "c", "p").await.unwrap()["metadata"]["deletionTimestamp"].is_null());
}

#[tokio::test]
async fn rule5_pdb_not_yet_observed_is_429_with_retry_after_10() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    let mut st = budget(3, 3, 1);
    st["observedGeneration"] = json!(0);
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        st,
    )
    .await;
    let r = evict(&sb, "app", "web-0").await;
    let b = expect(&r, 429);
    assert_eq!(b["reason"], "TooManyRequests");
    assert_eq!(b["message"], VIOLATE);
    assert_eq!(b["details"]["retryAfterSeconds"], 10);
    assert_eq!(
        b["details"]["causes"],
        json!([{"reason": "DisruptionBudget", "message": "The disruption budget web is still being processed by the server."}])
    );
    assert_eq!(r.headers.get("retry-after").unwrap(), "10");
}

#[tokio::test]
async fn rule5_zero_disruptions_allowed_is_429_without_retry_after() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(0, 2, 2),
    )
    .await;
    let r = evict(&sb, "app", "web-0").await;
    let b = expect(&r, 429);
    assert_eq!(b["message"], VIOLATE);
    assert_eq!(
        b["details"]["causes"],
        json!([{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
    );
    assert!(b["details"].get("retryAfterSeconds").is_none());
    assert!(r.headers.get("retry-after").is_none());
    assert!(pod(&sb, "app", "web-0").await.unwrap()["metadata"]["deletionTimestamp"].is_null());
}

#[tokio::test]
async fn rule5_negative_allowed_and_too_many_disrupted_pods_are_403() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(-1, 2, 2),
    )
    .await;
    let r = evict(&sb, "app", "web-0").await;
    assert_eq!(
        expect(&r, 403)["message"],
        "pdb disruptions allowed is negative"
    );

    running_pod(&sb, "big", "web-0", "n1", json!({"app": "web"})).await;
    let mut st = budget(5, 2, 1);
    st["disruptedPods"] = (0..2001)
        .map(|i| (format!("p{i}"), json!("2026-11-26T10:00:00Z")))
        .collect::<serde_json::Map<_, _>>()
        .into();
    pdb(
        &sb,
        "big",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        st,
    )
    .await;
    let r = evict(&sb, "big", "web-0").await;
    assert_eq!(
        expect(&r, 403)["message"],
        "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
    );
}

#[tokio::test]
async fn rule5_decrements_records_disrupted_pod_and_sets_condition_at_zero() {
    let sb = sandbox().await;
    for i in 0..3 {
        running_pod(&sb, "app", &format!("web-{i}"), "n1", json!({"app": "web"})).await;
    }
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(2, 3, 1),
    )
    .await;
    let r = evict(&sb, "app", "web-0").await;
    assert_success(&r);
    let st = pdb_status(&sb, "app", "web").await;
    assert_eq!(st["disruptionsAllowed"], 1);
    assert!(st["disruptedPods"]["web-0"].is_string());
    assert!(st.get("conditions").is_none_or(|c| {
        c.as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "DisruptionAllowed")
    }));

    assert_success(&evict(&sb, "app", "web-1").await);
    let st = pdb_status(&sb, "app", "web").await;
    assert_eq!(st["disruptionsAllowed"], 0);
    assert!(st["disruptedPods"]["web-1"].is_string());
    let cond = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionAllowed")
        .unwrap();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "InsufficientPods");

    // And now the budget is spent.
    assert_eq!(evict(&sb, "app", "web-2").await.status, 429);
    sb.assert_invariants();
}

#[tokio::test]
async fn dry_run_checks_without_writing() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(1, 2, 1),
    )
    .await;
    let rv_before =
        get(&sb, "/api/v1/namespaces/app/pods/web-0").await.body["metadata"]["resourceVersion"]
            .clone();
    let r = post(
        &sb,
        "/api/v1/namespaces/app/pods/web-0/eviction?dryRun=All",
        &eviction("app", "web-0"),
    )
    .await;
    assert_success(&r);
    let p = pod(&sb, "app", "web-0").await.unwrap();
    assert_eq!(p["metadata"]["resourceVersion"], rv_before, "pod untouched");
    assert!(p["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        pdb_status(&sb, "app", "web").await["disruptionsAllowed"],
        1,
        "budget untouched"
    );
    // The check still runs: with no budget left, dry-run answers 429 too.
    expect(
        &common::patch(
            &sb,
            "/apis/policy/v1/namespaces/app/poddisruptionbudgets/web/status",
            "application/merge-patch+json",
            &json!({"status": {"disruptionsAllowed": 0}}),
        )
        .await,
        200,
    );
    let r = post(
        &sb,
        "/api/v1/namespaces/app/pods/web-0/eviction?dryRun=All",
        &eviction("app", "web-0"),
    )
    .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn v1beta1_bodies_are_accepted() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    let body = json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "web-0", "namespace": "app"}, "deleteOptions": {"gracePeriodSeconds": 5}});
    let r = post(&sb, "/api/v1/namespaces/app/pods/web-0/eviction", &body).await;
    assert_success(&r);
    assert_eq!(
        pod(&sb, "app", "web-0").await.unwrap()["metadata"]["deletionGracePeriodSeconds"],
        5
    );
}

#[tokio::test]
async fn delete_options_preconditions_mismatch_is_409() {
    let sb = sandbox().await;
    let p = running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    let mut body = eviction("app", "web-0");
    body["deleteOptions"] = json!({"preconditions": {"uid": "not-the-uid"}});
    let r = post(&sb, "/api/v1/namespaces/app/pods/web-0/eviction", &body).await;
    let b = expect(&r, 409);
    assert_eq!(b["reason"], "Conflict");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("Precondition failed: UID in precondition: not-the-uid"),
        "{b}"
    );
    body["deleteOptions"] = json!({"preconditions": {"uid": p["metadata"]["uid"]}});
    assert_success(&post(&sb, "/api/v1/namespaces/app/pods/web-0/eviction", &body).await);
}

/// `kubectl drain --dry-run=server` and kube-rs put dryRun in the Eviction's deleteOptions.
#[tokio::test]
async fn dry_run_in_delete_options_body_writes_nothing() {
    let sb = sandbox().await;
    running_pod(&sb, "app", "web-0", "n1", json!({"app": "web"})).await;
    pdb(
        &sb,
        "app",
        "web",
        json!({"matchLabels": {"app": "web"}}),
        budget(1, 2, 1),
    )
    .await;
    let rv = sb.with(|c| c.store.resource_version());
    let mut body = eviction("app", "web-0");
    body["deleteOptions"] = json!({"dryRun": ["All"]});
    let planner = sb.token_for("planner", true);
    let r = common::send_as(
        &sb,
        Some(&planner),
        http::Method::POST,
        "/api/v1/namespaces/app/pods/web-0/eviction",
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await;
    assert_success(&r);
    let r = common::send_as(
        &sb,
        Some(&planner),
        http::Method::DELETE,
        "/api/v1/namespaces/app/pods/web-0",
        Some((
            "application/json",
            json!({"dryRun": ["All"]}).to_string().into_bytes(),
        )),
    )
    .await;
    expect(&r, 200);
    assert_eq!(
        sb.with(|c| c.store.resource_version()),
        rv,
        "nothing written"
    );
    sb.assert_invariants();
    assert!(
        sb.requests()
            .iter()
            .filter(|r| r.user == "planner")
            .all(|r| r.dry_run)
    );
}
