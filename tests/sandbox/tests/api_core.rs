//! Discovery, auth, CRUD, selectors, paging, patches, graceful deletion and dry-run over raw HTTP.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use common::{delete, expect, get, patch, post, put, running_pod, sandbox, send_as};
use http::Method;
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn discovery_documents() {
    let sb = sandbox().await;
    let api = expect(&get(&sb, "/api").await, 200).clone();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let core = expect(&get(&sb, "/api/v1").await, 200).clone();
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let find = |list: &Value, name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let ev = find(&core, "pods/eviction");
    assert_eq!(
        (
            ev["group"].as_str(),
            ev["version"].as_str(),
            ev["kind"].as_str()
        ),
        (Some("policy"), Some("v1"), Some("Eviction"))
    );
    assert_eq!(ev["verbs"], json!(["create"]));
    assert_eq!(ev["namespaced"], true);
    let pods = find(&core, "pods");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["singularName"], "pod");
    assert_eq!(pods["kind"], "Pod");
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    for sub in [
        "pods/status",
        "pods/proxy",
        "pods/log",
        "nodes/status",
        "namespaces/status",
    ] {
        find(&core, sub);
    }
    assert_eq!(find(&core, "nodes")["namespaced"], false);

    let groups = expect(&get(&sb, "/apis").await, 200).clone();
    assert_eq!(groups["kind"], "APIGroupList");
    let policy = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "policy")
        .unwrap();
    assert_eq!(
        policy["preferredVersion"],
        json!({"groupVersion": "policy/v1", "version": "v1"})
    );
    let apps = expect(&get(&sb, "/apis/apps/v1").await, 200).clone();
    let scale = find(&apps, "deployments/scale");
    assert_eq!(
        (
            scale["group"].as_str(),
            scale["version"].as_str(),
            scale["kind"].as_str()
        ),
        (Some("autoscaling"), Some("v1"), Some("Scale"))
    );
    assert_eq!(
        expect(&get(&sb, "/apis/policy").await, 200)["kind"],
        "APIGroup"
    );
    assert_eq!(get(&sb, "/apis/nope/v1").await.status, 404);

    let v = expect(&get(&sb, "/version").await, 200).clone();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));
    sb.with(|c| c.api.version_minor = 31);
    assert_eq!(get(&sb, "/version").await.body["minor"], "31");
    assert_eq!(get(&sb, "/healthz").await.body, json!("ok"));
    assert_eq!(get(&sb, "/openapi/v2").await.status, 200);
    let root = expect(&get(&sb, "/openapi/v3").await, 200).clone();
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = expect(&get(&sb, &url).await, 200).clone();
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
}

#[tokio::test]
async fn unknown_token_is_401_and_identity_is_logged() {
    let sb = sandbox().await;
    let r = send_as(&sb, Some("bogus"), Method::GET, "/api/v1/pods", None).await;
    let b = expect(&r, 401);
    assert_eq!(b["kind"], "Status");
    assert_eq!(b["reason"], "Unauthorized");
    let token = sb.token_for("alice", false);
    let r = send_as(
        &sb,
        Some(&token),
        Method::GET,
        "/api/v1/namespaces/default/pods?labelSelector=a%3Db",
        None,
    )
    .await;
    expect(&r, 200);
    let log = sb.requests();
    let bad = log.iter().find(|r| r.status == 401).unwrap();
    assert_eq!(bad.user, "");
    let alice = log.iter().find(|r| r.user == "alice").unwrap();
    assert_eq!(
        (
            alice.verb.as_str(),
            alice.resource.as_str(),
            alice.namespace.as_str()
        ),
        ("list", "pods", "default")
    );
    assert_eq!(alice.query, "labelSelector=a%3Db");
    assert!(!alice.mutating);
    assert!(!alice.virtual_time.is_empty() && !alice.real_time.is_empty());
}

#[tokio::test]
async fn create_validates_and_generates_names() {
    let sb = sandbox().await;
    // Namespace missing → 404.
    let r = post(
        &sb,
        "/api/v1/namespaces/nope/configmaps",
        &json!({"metadata": {"name": "a"}}),
    )
    .await;
    assert_eq!(expect(&r, 404)["message"], "namespaces \"nope\" not found");
    // Missing name → 422.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {}}),
    )
    .await;
    let b = expect(&r, 422);
    assert_eq!(b["reason"], "Invalid");
    // generateName.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}}),
    )
    .await;
    let b = expect(&r, 201).clone();
    let name = b["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
    assert_eq!(b["metadata"]["namespace"], "default");
    assert!(b["metadata"]["uid"].is_string() && b["metadata"]["resourceVersion"].is_string());
    // Duplicate → 409 AlreadyExists.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": name}}),
    )
    .await;
    assert_eq!(expect(&r, 409)["reason"], "AlreadyExists");
    // Namespace in body differs from the path → 400.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "x", "namespace": "kube-system"}}),
    )
    .await;
    expect(&r, 400);
    // Pods get apiserver defaults and Pending status.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/pods",
        &common::pod_obj("default", "p", None, json!({})),
    )
    .await;
    let p = expect(&r, 201);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
}

#[tokio::test]
async fn update_conflicts_on_stale_resource_version() {
    let sb = sandbox().await;
    let cm = expect(
        &post(
            &sb,
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
        )
        .await,
        201,
    )
    .clone();
    let mut v1 = cm.clone();
    v1["data"]["a"] = json!("2");
    let updated = expect(
        &put(&sb, "/api/v1/namespaces/default/configmaps/c", &v1).await,
        200,
    )
    .clone();
    assert_eq!(updated["data"]["a"], "2");
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        cm["metadata"]["resourceVersion"]
    );
    // Same stale resourceVersion again → 409.
    v1["data"]["a"] = json!("3");
    let r = put(&sb, "/api/v1/namespaces/default/configmaps/c", &v1).await;
    let b = expect(&r, 409);
    assert_eq!(b["reason"], "Conflict");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    // Name mismatch → 400; missing → 404.
    assert_eq!(
        put(&sb, "/api/v1/namespaces/default/configmaps/other", &updated)
            .await
            .status,
        400
    );
    let mut ghost = updated.clone();
    ghost["metadata"]["name"] = json!("ghost");
    assert_eq!(
        put(&sb, "/api/v1/namespaces/default/configmaps/ghost", &ghost)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn main_resource_updates_cannot_change_status() {
    let sb = sandbox().await;
    let p = running_pod(&sb, "default", "p", "n1", json!({})).await;
    let mut p2 = p.clone();
    p2["status"]["phase"] = json!("Failed");
    p2["metadata"]["labels"] = json!({"x": "y"});
    let r = expect(
        &put(&sb, "/api/v1/namespaces/default/pods/p", &p2).await,
        200,
    )
    .clone();
    assert_eq!(r["status"]["phase"], "Running");
    assert_eq!(r["metadata"]["labels"]["x"], "y");
}

#[tokio::test]
async fn label_and_field_selectors() {
    let sb = sandbox().await;
    running_pod(&sb, "a", "web-1", "n1", json!({"app": "web", "tier": "fe"})).await;
    running_pod(&sb, "a", "web-2", "n2", json!({"app": "web", "tier": "be"})).await;
    running_pod(&sb, "b", "db-1", "n1", json!({"app": "db"})).await;
    common::set_pod_status(&sb, "b", "db-1", "Succeeded", false).await;
    let q = |s: &str| {
        s.replace(' ', "%20")
            .replace(',', "%2C")
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('!', "%21")
    };
    for (query, want) in [
        ("labelSelector=app=web", vec!["web-1", "web-2"]),
        (
            "labelSelector=app in (web,db),tier notin (be)",
            vec!["db-1", "web-1"],
        ),
        ("labelSelector=!tier", vec!["db-1"]),
        ("labelSelector=app!=web", vec!["db-1"]),
        ("fieldSelector=spec.nodeName=n1", vec!["web-1", "db-1"]),
        (
            "fieldSelector=spec.nodeName=n1,status.phase!=Succeeded",
            vec!["web-1"],
        ),
        ("fieldSelector=metadata.namespace=b", vec!["db-1"]),
        (
            "fieldSelector=metadata.name=web-2&labelSelector=tier=be",
            vec!["web-2"],
        ),
    ] {
        let r = get(&sb, &format!("/api/v1/pods?{}", q(query))).await;
        let mut got = names(expect(&r, 200));
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{query}");
    }
    let r = get(&sb, "/api/v1/namespaces/a/pods?labelSelector=tier%3Dbe").await;
    assert_eq!(names(expect(&r, 200)), ["web-2"]);
    assert_eq!(
        get(&sb, "/api/v1/pods?labelSelector=a%20in%20b")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn paging_with_continue_and_410_when_compacted() {
    let sb = sandbox().await;
    for i in 0..7 {
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
    let mut seen = Vec::new();
    let mut path = "/api/v1/namespaces/default/configmaps?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let r = get(&sb, &path).await;
        let b = expect(&r, 200).clone();
        assert_eq!(b["kind"], "ConfigMapList");
        pages += 1;
        seen.extend(names(&b));
        match b["metadata"]["continue"].as_str() {
            Some(c) => path = format!("/api/v1/namespaces/default/configmaps?limit=3&continue={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    // A token from before a compaction → 410 Expired.
    let first = expect(
        &get(&sb, "/api/v1/namespaces/default/configmaps?limit=2").await,
        200,
    )
    .clone();
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    expect(
        &post(
            &sb,
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "later"}}),
        )
        .await,
        201,
    );
    sb.with(|c| c.store.compact());
    let r = get(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?limit=2&continue={token}"),
    )
    .await;
    let b = expect(&r, 410);
    assert_eq!(b["reason"], "Expired");
    assert_eq!(
        get(
            &sb,
            "/api/v1/namespaces/default/configmaps?continue=garbage"
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn patches_merge_strategic_json_and_apply() {
    let sb = sandbox().await;
    let p = running_pod(&sb, "default", "p", "n1", json!({"a": "1"})).await;
    let path = "/api/v1/namespaces/default/pods/p";
    // JSON merge patch.
    let r = patch(
        &sb,
        path,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"a": null, "b": "2"}}}),
    )
    .await;
    assert_eq!(expect(&r, 200)["metadata"]["labels"], json!({"b": "2"}));
    // Strategic merge: containers merge by name.
    let r = patch(
        &sb,
        path,
        "application/strategic-merge-patch+json",
        &json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}),
    )
    .await;
    let b = expect(&r, 200);
    assert_eq!(b["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(b["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(b["spec"]["containers"][0]["name"], "app");
    // JSON patch with a failing test op → 422, nothing changes.
    let r = patch(&sb, path, "application/json-patch+json", &json!([{"op": "test", "path": "/metadata/labels/b", "value": "nope"}, {"op": "add", "path": "/metadata/labels/c", "value": "3"}])).await;
    expect(&r, 422);
    let r = patch(
        &sb,
        path,
        "application/json-patch+json",
        &json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]),
    )
    .await;
    assert_eq!(expect(&r, 200)["metadata"]["labels"]["c"], "3");
    // Patches carrying a stale resourceVersion conflict.
    let r = patch(&sb, path, "application/merge-patch+json", &json!({"metadata": {"resourceVersion": p["metadata"]["resourceVersion"], "labels": {"d": "4"}}})).await;
    expect(&r, 409);
    // Unknown content type → 415.
    assert_eq!(patch(&sb, path, "text/plain", &json!({})).await.status, 415);
    // Node cordon as kubectl sends it, and deployment scale through /scale.
    let r = send_as(&sb, Some(sb.admin_token()), Method::PATCH, "/apis/apps/v1/namespaces/default/deployments/web", Some(("application/apply-patch+yaml", b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: app, image: nginx}]\n".to_vec()))).await;
    assert_eq!(
        expect(&r, 201)["spec"]["replicas"],
        2,
        "server-side apply creates"
    );
    let r = patch(
        &sb,
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 5}}),
    )
    .await;
    let scale = expect(&r, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    let s = expect(
        &get(
            &sb,
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        )
        .await,
        200,
    )
    .clone();
    assert_eq!(s["status"]["selector"], "app=web");
    assert_eq!(
        get(&sb, "/apis/apps/v1/namespaces/default/deployments/web")
            .await
            .body["spec"]["replicas"],
        5
    );
    let mut s2 = s.clone();
    s2["spec"]["replicas"] = json!(1);
    assert_eq!(
        expect(
            &put(
                &sb,
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                &s2
            )
            .await,
            200
        )["spec"]["replicas"],
        1
    );
}

#[tokio::test]
async fn graceful_pod_deletion_rules() {
    let sb = sandbox().await;
    let p = running_pod(&sb, "default", "p", "n1", json!({})).await;
    let path = "/api/v1/namespaces/default/pods/p";
    // Preconditions.
    let r = delete(&sb, path, Some(&json!({"preconditions": {"uid": "wrong"}}))).await;
    assert!(
        expect(&r, 409)["message"]
            .as_str()
            .unwrap()
            .contains("UID in precondition: wrong")
    );
    let r = delete(
        &sb,
        path,
        Some(&json!({"preconditions": {"resourceVersion": "1"}})),
    )
    .await;
    assert!(
        expect(&r, 409)["message"]
            .as_str()
            .unwrap()
            .contains("ResourceVersion in precondition: 1")
    );
    // Default grace = terminationGracePeriodSeconds (30): deletionTimestamp set, pod stays.
    let r = delete(&sb, path, Some(&json!({"preconditions": {"uid": p["metadata"]["uid"]}, "propagationPolicy": "Background"}))).await;
    let b = expect(&r, 200).clone();
    assert_eq!(b["metadata"]["deletionGracePeriodSeconds"], 30);
    let ts = |v: &Value| {
        v["metadata"]["deletionTimestamp"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let first = ts(&b);
    // A longer grace does not extend it; a shorter one shortens it.
    let b2 = expect(
        &delete(&sb, &format!("{path}?gracePeriodSeconds=60"), None).await,
        200,
    )
    .clone();
    assert_eq!(ts(&b2), first);
    let b3 = expect(
        &delete(&sb, path, Some(&json!({"gracePeriodSeconds": 5}))).await,
        200,
    )
    .clone();
    assert_eq!(
        ts(&b3),
        first - jiff::SignedDuration::from_secs(25),
        "moved by the difference in grace"
    );
    assert_eq!(b3["metadata"]["deletionGracePeriodSeconds"], 5);
    assert_eq!(
        get(&sb, path).await.status,
        200,
        "still there until the kubelet finishes it"
    );
    // Grace 0 removes at once.
    expect(
        &delete(&sb, &format!("{path}?gracePeriodSeconds=0"), None).await,
        200,
    );
    assert_eq!(get(&sb, path).await.status, 404);
    // Negative grace → 1.
    running_pod(&sb, "default", "q", "n1", json!({})).await;
    let b = expect(
        &delete(
            &sb,
            "/api/v1/namespaces/default/pods/q?gracePeriodSeconds=-5",
            None,
        )
        .await,
        200,
    )
    .clone();
    assert_eq!(b["metadata"]["deletionGracePeriodSeconds"], 1);
    // Unscheduled → 0 → gone at once.
    expect(
        &post(
            &sb,
            "/api/v1/namespaces/default/pods",
            &common::pod_obj("default", "u", None, json!({})),
        )
        .await,
        201,
    );
    expect(
        &delete(&sb, "/api/v1/namespaces/default/pods/u", None).await,
        200,
    );
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/pods/u").await.status,
        404
    );
    // Finalizers delay removal until they are cleared.
    let mut f = common::pod_obj("default", "f", None, json!({}));
    f["metadata"]["finalizers"] = json!(["example.com/hold"]);
    expect(&post(&sb, "/api/v1/namespaces/default/pods", &f).await, 201);
    let b = expect(
        &delete(&sb, "/api/v1/namespaces/default/pods/f", None).await,
        200,
    )
    .clone();
    assert!(b["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/pods/f").await.status,
        200
    );
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/f",
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    expect(&r, 200);
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/pods/f").await.status,
        404
    );
    // Other kinds go at once with a Success status.
    expect(
        &post(
            &sb,
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "c"}}),
        )
        .await,
        201,
    );
    assert_eq!(
        expect(
            &delete(&sb, "/api/v1/namespaces/default/configmaps/c", None).await,
            200
        )["status"],
        "Success"
    );
    assert_eq!(
        delete(&sb, "/api/v1/namespaces/default/configmaps/c", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn delete_collection_by_selector() {
    let sb = sandbox().await;
    for (n, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        expect(
            &post(
                &sb,
                "/api/v1/namespaces/default/configmaps",
                &json!({"metadata": {"name": n, "labels": {"app": app}}}),
            )
            .await,
            201,
        );
    }
    let r = delete(
        &sb,
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx",
        None,
    )
    .await;
    assert_eq!(names(expect(&r, 200)), ["a", "b"]);
    assert_eq!(
        names(&get(&sb, "/api/v1/namespaces/default/configmaps").await.body),
        ["c"]
    );
}

#[tokio::test]
async fn dry_run_all_writes_nothing() {
    let sb = sandbox().await;
    let p = running_pod(&sb, "default", "p", "n1", json!({"a": "1"})).await;
    let rv = sb.with(|c| c.store.resource_version());
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        &json!({"metadata": {"name": "c"}}),
    )
    .await;
    let b = expect(&r, 201);
    assert_eq!(b["metadata"]["name"], "c");
    assert!(b["metadata"]["uid"].is_string());
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p?dryRun=All",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"a": "2"}}}),
    )
    .await;
    assert_eq!(
        expect(&r, 200)["metadata"]["labels"]["a"],
        "2",
        "returns the would-be object"
    );
    let mut p2 = p.clone();
    p2["metadata"]["labels"]["a"] = json!("3");
    expect(
        &put(&sb, "/api/v1/namespaces/default/pods/p?dryRun=All", &p2).await,
        200,
    );
    let r = delete(&sb, "/api/v1/namespaces/default/pods/p?dryRun=All", None).await;
    assert!(expect(&r, 200)["metadata"]["deletionTimestamp"].is_string());
    expect(
        &delete(&sb, "/api/v1/namespaces/default?dryRun=All", None).await,
        200,
    );
    expect(
        &delete(&sb, "/api/v1/namespaces/default/pods?dryRun=All", None).await,
        200,
    );
    assert_eq!(
        sb.with(|c| c.store.resource_version()),
        rv,
        "no write happened"
    );
    let now = get(&sb, "/api/v1/namespaces/default/pods/p").await.body;
    assert_eq!(now["metadata"]["labels"]["a"], "1");
    assert!(now["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        get(&sb, "/api/v1/namespaces/default/configmaps/c")
            .await
            .status,
        404
    );
    let dry: Vec<_> = sb.requests().into_iter().filter(|r| r.dry_run).collect();
    assert_eq!(dry.len(), 6);
    assert!(sb.mutations().iter().all(|m| !m.dry_run));
}

#[tokio::test]
async fn table_output_for_pods_nodes_and_others() {
    let sb = sandbox().await;
    running_pod(&sb, "default", "p", "n1", json!({})).await;
    let accept = (
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    );
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/api/v1/namespaces/default/pods?limit=500",
        None,
        &[accept],
    )
    .await;
    let t = expect(&r, 200);
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"].as_array().unwrap()[..4],
        [json!("p"), json!("1/1"), json!("Running"), json!("0")]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/api/v1/namespaces/default/configmaps",
        None,
        &[accept],
    )
    .await;
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Age"]);
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}});
    expect(
        &post(&sb, "/apis/apps/v1/namespaces/default/deployments", &dep).await,
        201,
    );
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments",
        None,
        &[accept],
    )
    .await;
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = r.body["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(cells[..4], [json!("web"), json!("0/3"), json!(0), json!(0)]);
    assert_eq!(
        cells[5..],
        [json!("app"), json!("nginx:1.27"), json!("app=web")]
    );
}

#[tokio::test]
async fn date_header_carries_the_virtual_clock() {
    use opsteps_sandbox::sandbox::{Options, Sandbox};
    use opsteps_sandbox::scenario::Scenario;
    // A clock far from the real one, running at scale 60.
    let scenario =
        Scenario::from_yaml("clock: {start: 2024-02-29T23:59:00Z, scale: 60}\n").unwrap();
    let sb = Sandbox::start(
        Options::default()
            .tls(false)
            .controllers(false)
            .scenario(scenario),
    )
    .await
    .unwrap();
    let parse = |r: &common::Resp| {
        let d = r.headers["date"].to_str().unwrap().to_owned();
        // As the apiserver: without it kubectl's HTTP cache trusts the (virtual, ahead) Date and
        // never re-reads discovery, so a new CRD's group stays invisible.
        assert_eq!(r.headers["cache-control"], "no-cache, private");
        // RFC 7231 IMF-fixdate: `Thu, 29 Feb 2024 23:59:00 GMT`.
        let t = jiff::fmt::rfc2822::parse(&d)
            .unwrap_or_else(|e| panic!("{d}: {e}"))
            .timestamp();
        assert!(d.ends_with(" GMT"), "{d}");
        assert_eq!(d.len(), 29, "{d}");
        t
    };
    let before = sb.with(|c| c.clock.now());
    let ok = get(&sb, "/version").await;
    let missing = get(&sb, "/api/v1/namespaces/default/pods/nope").await;
    let denied = send_as(&sb, Some("bogus"), Method::GET, "/api/v1/pods", None).await;
    let after = sb.with(|c| c.clock.now());
    for r in [&ok, &missing, &denied] {
        let t = parse(r);
        // Whole seconds: the header truncates.
        assert!(
            t >= before - jiff::SignedDuration::from_secs(1) && t <= after,
            "{t} not within {before}..{after}"
        );
    }
    assert_eq!(missing.status, 404);
    assert_eq!(denied.status, 401);
    // It moves with jumps of the clock, as a step reading "now" from the API would see.
    sb.with(|c| c.clock.advance(std::time::Duration::from_hours(24)));
    let t = parse(&get(&sb, "/version").await);
    assert!(t >= before + jiff::SignedDuration::from_secs(86_399), "{t}");
}

#[tokio::test]
async fn writes_record_managed_fields_by_manager_and_api_version() {
    let sb = sandbox().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"k": "v", "j": "w"}});
    // No fieldManager: the manager is the User-Agent up to its first `/`.
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::POST,
        cms,
        Some(("application/json", cm.to_string().into_bytes())),
        &[("user-agent", "my-tool/1.2 (linux/amd64) abc")],
    )
    .await;
    let created = expect(&r, 201).clone();
    let mf = &created["metadata"]["managedFields"];
    assert_eq!(mf.as_array().map(Vec::len), Some(1), "{created}");
    assert_eq!(mf[0]["manager"], "my-tool");
    assert_eq!(mf[0]["operation"], "Update");
    assert_eq!(mf[0]["apiVersion"], "v1");
    assert_eq!(mf[0]["fieldsType"], "FieldsV1");
    assert_eq!(mf[0]["fieldsV1"], json!({"f:data": {"f:j": {}, "f:k": {}}}));
    assert_eq!(mf[0]["time"], created["metadata"]["creationTimestamp"]);

    // A patch takes the fields it changed from the other managers.
    let r = patch(
        &sb,
        &format!("{cms}/mf?fieldManager=patcher"),
        "application/merge-patch+json",
        &json!({"data": {"k": "changed"}}),
    )
    .await;
    let patched = expect(&r, 200).clone();
    let mf = patched["metadata"]["managedFields"].as_array().unwrap();
    let by = |m: &str| mf.iter().find(|e| e["manager"] == m).cloned();
    assert_eq!(
        by("my-tool").unwrap()["fieldsV1"],
        json!({"f:data": {"f:j": {}}})
    );
    assert_eq!(
        by("patcher").unwrap()["fieldsV1"],
        json!({"f:data": {"f:k": {}}})
    );

    // A PUT without managedFields keeps the stored ones; `[{}]` resets them.
    let mut body = patched.clone();
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let r = put(&sb, &format!("{cms}/mf?fieldManager=putter"), &body).await;
    let kept = expect(&r, 200);
    assert_eq!(
        kept["metadata"]["managedFields"], patched["metadata"]["managedFields"],
        "an update that changes nothing records nothing"
    );
    body["metadata"]["resourceVersion"] = kept["metadata"]["resourceVersion"].clone();
    body["metadata"]["managedFields"] = json!([{}]);
    let r = put(&sb, &format!("{cms}/mf"), &body).await;
    assert!(expect(&r, 200)["metadata"].get("managedFields").is_none());

    // Other groups record their group/version; a server-side apply is an `Apply`.
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let r = patch(
        &sb,
        "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=applier",
        "application/apply-patch+yaml",
        &dep,
    )
    .await;
    let applied = expect(&r, 201).clone();
    let mf = &applied["metadata"]["managedFields"];
    assert_eq!(mf[0]["manager"], "applier", "{applied}");
    assert_eq!(mf[0]["operation"], "Apply");
    assert_eq!(mf[0]["apiVersion"], "apps/v1");
    assert!(
        mf[0]["fieldsV1"]["f:spec"]["f:replicas"].is_null(),
        "defaults are not applied fields"
    );

    // A status write is recorded against the subresource; the main resource never owns status.
    let mut st = applied.clone();
    st["status"] = json!({"observedGeneration": 1});
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/d/status",
        Some(("application/json", st.to_string().into_bytes())),
        &[("user-agent", "kube-controller-manager/v1.33.0")],
    )
    .await;
    let mf = expect(&r, 200)["metadata"]["managedFields"].clone();
    let status = mf
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .unwrap();
    assert_eq!(status["subresource"], "status");
    assert_eq!(
        status["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}}})
    );
}

#[tokio::test]
async fn hpas_are_defaulted_and_printed_as_the_apiserver_does() {
    let sb = sandbox().await;
    let hpas = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
    let created = expect(&post(&sb, hpas, &hpa).await, 201).clone();
    assert_eq!(created["spec"]["minReplicas"], 1);
    assert_eq!(
        created["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    let r = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        hpas,
        None,
        &[(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )],
    )
    .await;
    let table = expect(&r, 200);
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Reference",
            "Targets",
            "MinPods",
            "MaxPods",
            "Replicas",
            "Age"
        ]
    );
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(
        cells[..6],
        json!(["web", "Deployment/web", "cpu: <unknown>/80%", "1", 5, 0])
            .as_array()
            .unwrap()[..]
    );
}

#[tokio::test]
async fn managed_fields_name_the_version_each_write_used() {
    let sb = sandbox().await;
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema}
            ]}
    });
    expect(
        &post(
            &sb,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .await,
        201,
    );
    let old = "/apis/example.com/v1beta1/namespaces/default/gadgets";
    let gadget = json!({"apiVersion": "example.com/v1beta1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 1, "color": "red"}});
    expect(
        &post(&sb, &format!("{old}?fieldManager=old-tool"), &gadget).await,
        201,
    );
    let new = "/apis/example.com/v1/namespaces/default/gadgets/g";
    let read = expect(&get(&sb, new).await, 200).clone();
    let mf = read["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 1, "{read}");
    assert_eq!(mf[0]["apiVersion"], "example.com/v1beta1");
    assert_eq!(mf[0]["manager"], "old-tool");

    // The same manager writing through v1 gets its own entry; the v1beta1 one keeps what it
    // still owns.
    let r = patch(
        &sb,
        &format!("{new}?fieldManager=old-tool"),
        "application/merge-patch+json",
        &json!({"spec": {"size": 2}}),
    )
    .await;
    let patched = expect(&r, 200);
    let entries: std::collections::BTreeMap<&str, &Value> = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["apiVersion"].as_str().unwrap(), &e["fieldsV1"]))
        .collect();
    assert_eq!(
        entries,
        std::collections::BTreeMap::from([
            ("example.com/v1beta1", &json!({"f:spec": {"f:color": {}}})),
            ("example.com/v1", &json!({"f:spec": {"f:size": {}}})),
        ]),
        "{patched}"
    );
}
