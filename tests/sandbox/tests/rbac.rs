//! RBAC enforcement: bindings loaded as ordinary objects decide, and denials carry the
//! apiserver's 403 message.

use crate::common;

use common::{expect, post, running_pod, sandbox, send_as};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn service_account_without_eviction_rights_gets_403_on_eviction() {
    let sb = sandbox().await;
    running_pod(&sb, "default", "web-1", "n1", json!({"app": "web"})).await;
    // A role that can read and patch but not evict, bound to ops/drainer.
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    expect(&post(&sb, &format!("{rbac}/clusterroles"), &json!({"metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch", "patch"]}
    ]})).await, 201);
    expect(&post(&sb, &format!("{rbac}/clusterrolebindings"), &json!({"metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "drainer", "namespace": "ops"}]})).await, 201);
    sb.with(|c| c.api.rbac = true);
    let token = sb.token_for("system:serviceaccount:ops:drainer", false);
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "default"}});
    let body = Some(("application/json", serde_json::to_vec(&eviction).unwrap()));

    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        "/api/v1/namespaces/default/pods/web-1/eviction",
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(
        r.body["message"],
        "pods \"web-1\" is forbidden: User \"system:serviceaccount:ops:drainer\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"default\""
    );
    // Reads are allowed by the same binding; the pod is still there.
    let r = send_as(
        &sb,
        Some(&token),
        Method::GET,
        "/api/v1/namespaces/default/pods/web-1",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Granting pods/eviction create makes the same request succeed.
    expect(
        &post(
            &sb,
            &format!("{rbac}/namespaces/default/roles"),
            &json!({"metadata": {"name": "evict", "namespace": "default"}, "rules": [
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}
            ]}),
        )
        .await,
        201,
    );
    expect(
        &post(
            &sb,
            &format!("{rbac}/namespaces/default/rolebindings"),
            &json!({"metadata": {"name": "evict", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "evict"},
        "subjects": [{"kind": "ServiceAccount", "name": "drainer", "namespace": "ops"}]}),
        )
        .await,
        201,
    );
    let r = send_as(
        &sb,
        Some(&token),
        Method::POST,
        "/api/v1/namespaces/default/pods/web-1/eviction",
        body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The admin is never subject to RBAC.
    let r = send_as(
        &sb,
        Some(sb.admin_token()),
        Method::DELETE,
        "/api/v1/nodes/n1",
        None,
    )
    .await;
    assert_ne!(r.status, 403);
}

#[tokio::test]
async fn scenarios_opt_in_with_rbac_true() {
    let yaml = r#"
rbac: true
nodes: [{name: n1}]
objects:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: node-reader}
    rules: [{apiGroups: [""], resources: [nodes], verbs: [get, list]}]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: node-reader}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-reader}
    subjects: [{kind: User, name: viewer}]
"#;
    let scenario = opsteps_sandbox::scenario::Scenario::from_yaml(yaml).unwrap();
    let sb = opsteps_sandbox::sandbox::Sandbox::start(
        opsteps_sandbox::sandbox::Options::default()
            .tls(false)
            .controllers(false)
            .scenario(scenario),
    )
    .await
    .unwrap();
    let viewer = sb.token_for("viewer", false);
    assert_eq!(
        send_as(&sb, Some(&viewer), Method::GET, "/api/v1/nodes", None)
            .await
            .status,
        200
    );
    let r = send_as(
        &sb,
        Some(&viewer),
        Method::PATCH,
        "/api/v1/nodes/n1",
        Some((
            "application/merge-patch+json",
            b"{\"spec\":{\"unschedulable\":true}}".to_vec(),
        )),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["message"],
        "nodes \"n1\" is forbidden: User \"viewer\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let node = sb.with(|c| {
        (*c.store
            .get(opsteps_sandbox::resources::well_known::nodes(), "", "n1")
            .unwrap())
        .clone()
    });
    assert!(
        node["spec"]["unschedulable"].is_null(),
        "the refused patch changed nothing"
    );
}
