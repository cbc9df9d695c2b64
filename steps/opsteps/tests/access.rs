//! `opsteps::access` against the sandbox's RBAC: a least-privilege user learns every missing
//! permission at once, before any mutation.

use opsteps::access::{Permission, missing, require};
use opsteps::exit::ExitStatus;
use opsteps::retry::RetryPolicy;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::store::res;
use serde_json::{Value, json};

const USER: &str = "ops-drainer";

/// A ClusterRole that can read nodes and pods and patch nodes, bound to [`USER`]; RBAC on.
fn bind(sb: &Sandbox) {
    let rbac = |p| res("rbac.authorization.k8s.io", p);
    let objects: [(&str, Value); 2] = [
        (
            "clusterroles",
            json!({"metadata": {"name": "drainer"}, "rules": [
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ]}),
        ),
        (
            "clusterrolebindings",
            json!({"metadata": {"name": "drainer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "drainer"},
            "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]}),
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

async fn client(sb: &Sandbox, user: Option<&str>) -> kube::Client {
    let path = match user {
        Some(u) => sb.kubeconfig_for(u, false),
        None => sb.kubeconfig_path().to_owned(),
    };
    opsteps::connect::connect(
        &opsteps::cli::ClusterArgs {
            kubeconfig: Some(path),
            ..Default::default()
        },
        &opsteps::cli::AwsArgs::default(),
    )
    .await
    .unwrap()
    .client
}

fn needed() -> Vec<Permission> {
    vec![
        Permission::new("list", "", "nodes"),
        Permission::new("patch", "", "nodes"),
        Permission::new("watch", "", "pods"),
        Permission::new("create", "", "pods").subresource("eviction"),
        Permission::new("watch", "policy", "poddisruptionbudgets"),
        Permission::new("create", "", "events").namespace("default"),
    ]
}

#[tokio::test]
async fn a_least_privilege_user_is_told_every_missing_permission_before_any_mutation() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    bind(&sb);
    let before = sb.mutations().len();
    let limited = client(&sb, Some(USER)).await;
    let e = require(&limited, &needed(), &RetryPolicy::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), ExitStatus::BadInput);
    let msg = e.to_string();
    for want in [
        "create pods/eviction",
        "watch poddisruptionbudgets.policy",
        "create events (namespace default)",
    ] {
        assert!(msg.contains(want), "{want}: {msg}");
    }
    for granted in ["list nodes", "patch nodes", "watch pods"] {
        assert!(!msg.contains(granted), "{granted}: {msg}");
    }
    // The admin may do everything.
    let admin = client(&sb, None).await;
    require(&admin, &needed(), &RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        missing(&admin, &needed(), &RetryPolicy::default())
            .await
            .unwrap(),
        Some(vec![])
    );
    let reviews = sb
        .requests()
        .iter()
        .filter(|r| r.resource.starts_with("selfsubjectaccessreviews"))
        .count();
    assert_eq!(reviews, 3 * needed().len(), "one review per permission");
    assert_eq!(sb.mutations().len(), before, "reviews change nothing");
}
