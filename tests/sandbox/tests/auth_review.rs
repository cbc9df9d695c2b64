//! SelfSubjectAccessReview and SelfSubjectReview: `kubectl auth can-i` and `auth whoami` answer
//! with the RBAC the sandbox enforces, and a dry-run client may ask.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{expect, sandbox, send_as};
use http::Method;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::store::res;
use opsteps_sandbox::testing::{kubectl, kubectl_versions};
use serde_json::{Value, json};

const SA: &str = "system:serviceaccount:ops:drainer";

/// A reader ClusterRole (pods, `/metrics`) bound to `ops:drainer`, and a Role in `shop` that
/// grants evictions to every ServiceAccount of `ops` (a group binding).
fn bind_reader(sb: &Sandbox) {
    let rbac = |p| res("rbac.authorization.k8s.io", p);
    let objects: [(&str, Value); 4] = [
        (
            "clusterroles",
            json!({"metadata": {"name": "reader"}, "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
            ]}),
        ),
        (
            "clusterrolebindings",
            json!({"metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "drainer", "namespace": "ops"}]}),
        ),
        (
            "roles",
            json!({"metadata": {"name": "evict", "namespace": "shop"}, "rules": [
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}
            ]}),
        ),
        (
            "rolebindings",
            json!({"metadata": {"name": "evict", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "evict"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ops"}]}),
        ),
    ];
    sb.with(|c| {
        let now = c.now();
        for (plural, obj) in objects {
            c.store.create(rbac(plural), obj, &now).unwrap();
        }
        c.api.rbac = true;
    });
}

fn ssar(attrs: &Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": attrs})
}

#[tokio::test]
async fn access_review_follows_rbac_and_is_open_to_dry_run_clients() {
    let sb = sandbox().await;
    bind_reader(&sb);
    // A dry-run client: reviews change nothing, so they are no violation.
    let token = sb.token_for(SA, true);
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let ask = |attrs: Value| {
        let body = serde_json::to_vec(&ssar(&attrs)).unwrap();
        let token = token.clone();
        let sb = &sb;
        async move {
            let r = send_as(
                sb,
                Some(&token),
                Method::POST,
                path,
                Some(("application/json", body)),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            assert_eq!(r.body["kind"], "SelfSubjectAccessReview");
            r.body["status"]["allowed"].as_bool().unwrap()
        }
    };
    let cases = [
        (
            json!({"resourceAttributes": {"verb": "list", "resource": "pods"}}),
            true,
        ),
        (
            json!({"resourceAttributes": {"verb": "delete", "resource": "pods", "namespace": "shop"}}),
            false,
        ),
        (
            json!({"resourceAttributes": {"verb": "create", "resource": "pods", "subresource": "eviction", "namespace": "shop"}}),
            true,
        ),
        (
            json!({"resourceAttributes": {"verb": "create", "resource": "pods", "subresource": "eviction", "namespace": "other"}}),
            false,
        ),
        (
            json!({"resourceAttributes": {"verb": "patch", "resource": "nodes"}}),
            false,
        ),
        (
            json!({"nonResourceAttributes": {"verb": "get", "path": "/metrics"}}),
            true,
        ),
        (
            json!({"nonResourceAttributes": {"verb": "get", "path": "/version"}}),
            true,
        ),
        (
            json!({"nonResourceAttributes": {"verb": "get", "path": "/logs"}}),
            false,
        ),
    ];
    for (attrs, want) in cases {
        assert_eq!(ask(attrs.clone()).await, want, "{attrs}");
    }
    // The review's answer is what enforcement does.
    let r = send_as(
        &sb,
        Some(&sb.token_for(SA, false)),
        Method::PATCH,
        "/api/v1/nodes/n1",
        Some(("application/merge-patch+json", b"{}".to_vec())),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Neither attributes nor both: 422.
    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        path,
        Some((
            "application/json",
            serde_json::to_vec(&ssar(&json!({}))).unwrap(),
        )),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // With RBAC off everything is allowed.
    sb.with(|c| c.api.rbac = false);
    assert!(ask(json!({"resourceAttributes": {"verb": "patch", "resource": "nodes"}})).await);
    assert!(sb.invariants().is_empty(), "{:?}", sb.invariants());
    let reviews: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.resource.starts_with("selfsubject"))
        .collect();
    assert_eq!(reviews.len(), 10);
    assert!(
        reviews.iter().all(|r| !r.mutating),
        "reviews are not mutations: {reviews:?}"
    );
    // Never stored: a GET of the collection is refused.
    let r = common::get(&sb, path).await;
    assert_eq!(r.status, 405, "{}", r.body);
}

#[tokio::test]
async fn self_subject_review_reports_user_and_implied_groups() {
    let sb = sandbox().await;
    let token = sb.token_for(SA, false);
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(("application/json", serde_json::to_vec(&body).unwrap())),
    )
    .await;
    let v = expect(&r, 201);
    assert_eq!(v["status"]["userInfo"]["username"], SA);
    let groups = v["status"]["userInfo"]["groups"].as_array().unwrap();
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:ops",
        "system:authenticated",
    ] {
        assert!(groups.iter().any(|x| x == g), "{g} missing: {groups:?}");
    }
    let disc = common::get(&sb, "/apis/authorization.k8s.io/v1").await;
    let list = expect(&disc, 200);
    assert_eq!(list["resources"][0]["name"], "selfsubjectaccessreviews");
    assert_eq!(list["resources"][0]["verbs"], json!(["create"]));
}

fn answer(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

async fn can_i(bin: &Path, kubeconfig: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = kubectl(bin, kubeconfig, &all).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("rror"),
        "{}: {all:?}: {stderr}",
        bin.display()
    );
    answer(&out)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_auth_can_i_and_whoami() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    bind_reader(&sb);
    let sa = sb.kubeconfig_for(SA, false);
    let admin = sb.kubeconfig_path();
    let versions = kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    for bin in &versions {
        let v = bin.display();
        let yes = (Some(0), "yes".to_owned());
        let no = (Some(1), "no".to_owned());
        assert_eq!(
            can_i(bin, &sa, &["list", "pods", "-n", "shop"]).await,
            yes,
            "{v}"
        );
        assert_eq!(
            can_i(bin, &sa, &["delete", "pods", "-n", "shop"]).await,
            no,
            "{v}"
        );
        assert_eq!(
            can_i(
                bin,
                &sa,
                &["create", "pods", "--subresource=eviction", "-n", "shop"]
            )
            .await,
            yes,
            "{v}"
        );
        assert_eq!(
            can_i(
                bin,
                &sa,
                &["create", "pods", "--subresource=eviction", "-n", "default"]
            )
            .await,
            no,
            "{v}"
        );
        assert_eq!(can_i(bin, &sa, &["patch", "nodes"]).await, no, "{v}");
        assert_eq!(can_i(bin, &sa, &["get", "/metrics"]).await, yes, "{v}");
        assert_eq!(can_i(bin, &sa, &["get", "/logs"]).await, no, "{v}");
        assert_eq!(can_i(bin, admin, &["patch", "nodes"]).await, yes, "{v}");
        // --quiet: the exit code alone.
        let (code, out) = can_i(bin, &sa, &["--quiet", "delete", "nodes"]).await;
        assert_eq!((code, out.as_str()), (Some(1), ""), "{v}");

        let out = kubectl(bin, &sa, &["auth", "whoami", "-o", "json"]).await;
        let (code, text) = answer(&out);
        assert_eq!(
            code,
            Some(0),
            "{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let review: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(review["status"]["userInfo"]["username"], SA, "{v}");
        let (code, text) = answer(&kubectl(bin, &sa, &["auth", "whoami"]).await);
        assert_eq!(code, Some(0), "{v}");
        assert!(
            text.contains(SA) && text.contains("system:serviceaccounts:ops"),
            "{v}: {text}"
        );
    }
    // RBAC off: every answer is yes.
    sb.with(|c| c.api.rbac = false);
    for bin in &versions {
        assert_eq!(
            can_i(bin, &sa, &["patch", "nodes"]).await,
            (Some(0), "yes".to_owned()),
            "{}",
            bin.display()
        );
    }
    sb.assert_invariants();
}
