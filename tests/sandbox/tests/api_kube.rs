//! kube-rs against the sandbox over HTTPS: typed lists, `runtime::watcher` (list-watch and
//! streaming lists), evictions, patches, deletes.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use serde_json::{Value, json};

async fn start() -> (Sandbox, kube::Client) {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    // Tests must see each 429/5xx, not kube's retries.
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    (sb, client)
}

/// Writes an object straight into the store (the API's own create path is tested elsewhere).
fn seed(sb: &Sandbox, res: &'static opsteps_sandbox::resources::ResourceInfo, obj: Value) {
    sb.with(|c| {
        let now = c.now();
        c.store.create(res, obj, &now).unwrap();
    });
}

fn ready_pod(ns: &str, name: &str, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

#[tokio::test]
async fn typed_lists_with_selectors_and_pages() {
    let (sb, client) = start().await;
    for i in 0..12 {
        seed(
            &sb,
            well_known::pods(),
            ready_pod(
                "default",
                &format!("p{i:02}"),
                if i % 2 == 0 { "even" } else { "odd" },
            ),
        );
    }
    seed(
        &sb,
        well_known::nodes(),
        json!({"metadata": {"name": "n1", "labels": {"eks.amazonaws.com/nodegroup": "ng-a"}}}),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let even = pods
        .list(&ListParams::default().labels("app=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 6);
    let mut all = Vec::new();
    let mut lp = ListParams::default().limit(5);
    loop {
        let page = pods.list(&lp).await.unwrap();
        all.extend(page.items.into_iter().map(|p| p.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(all.len(), 12);
    let on_node: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        on_node
            .list(&ListParams::default().fields("spec.nodeName=n1,status.phase=Running"))
            .await
            .unwrap()
            .items
            .len(),
        12
    );
    let nodes: Api<Node> = Api::all(client);
    let ng = nodes
        .list(&ListParams::default().labels("eks.amazonaws.com/nodegroup=ng-a"))
        .await
        .unwrap();
    assert_eq!(ng.items[0].metadata.name.as_deref(), Some("n1"));
}

async fn watch_sees_changes(cfg: watcher::Config) {
    let (sb, client) = start().await;
    seed(&sb, well_known::pods(), ready_pod("default", "a", "x"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut stream = watcher(pods.clone(), cfg).boxed();
    let mut init = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(p) => init.push(p.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(init, ["a"]);
    seed(&sb, well_known::pods(), ready_pod("default", "b", "x"));
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Apply(p) => assert_eq!(p.metadata.name.as_deref(), Some("b")),
        other => panic!("unexpected {other:?}"),
    }
    pods.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Delete(p) => assert_eq!(p.metadata.name.as_deref(), Some("a")),
        other => panic!("unexpected {other:?}"),
    }
    // A compaction under a live watch is invisible; a resume after it re-lists (410 handled).
    sb.with(|c| c.store.compact());
    seed(&sb, well_known::pods(), ready_pod("default", "c", "x"));
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Apply(p) => assert_eq!(p.metadata.name.as_deref(), Some("c")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watcher_list_watch() {
    watch_sees_changes(watcher::Config::default()).await;
}

#[tokio::test]
async fn watcher_streaming_lists() {
    watch_sees_changes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn evictions_through_kube() {
    let (sb, client) = start().await;
    seed(&sb, well_known::pods(), ready_pod("default", "a", "web"));
    seed(&sb, well_known::pods(), ready_pod("default", "b", "web"));
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    })).unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}});
    pdbs.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // Dry-run through kube-rs: only `post_options.dry_run` works (query `dryRun=All`). kube 5
    // serialises `delete_options` under the key `delete_options`, which the apiserver (and the
    // sandbox) ignores, so its `dry_run`, grace period and preconditions never take effect.
    let dry = EvictParams {
        post_options: PostParams {
            dry_run: true,
            ..PostParams::default()
        },
        ..EvictParams::default()
    };
    pods.evict("a", &dry).await.unwrap();
    assert!(
        pods.get("a")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert_eq!(
        pdbs.get_status("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        1
    );
    assert!(sb.requests().iter().any(|r| r.verb == "evict" && r.dry_run));
    let ok = pods.evict("a", &EvictParams::default()).await.unwrap();
    assert_eq!(ok.code, 201);
    assert!(
        pods.get("a")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    match pods.evict("b", &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 429);
            assert_eq!(
                s.message,
                "Cannot evict pod as it would violate the pod's disruption budget."
            );
            let d = s.details.unwrap();
            assert_eq!(d.causes[0].reason, "DisruptionBudget");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    let after = pdbs.get_status("web").await.unwrap().status.unwrap();
    assert_eq!(after.disruptions_allowed, 0);
    assert!(after.disrupted_pods.unwrap().contains_key("a"));
    sb.assert_invariants();
}

#[tokio::test]
async fn patches_and_deletes_through_kube() {
    let (sb, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let m = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k2": "v2"}})),
        )
        .await
        .unwrap();
    assert_eq!(m.data.unwrap().len(), 2);
    let s = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"b": "2"}}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.labels.unwrap().len(), 2);
    // (JSON patch needs kube's `jsonpatch` feature, which the workspace does not enable; the
    // raw-HTTP tests cover it.)
    let applied = cms
        .patch("c", &PatchParams::apply("opsteps-test"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k3": "v3"}})))
        .await
        .unwrap();
    assert_eq!(
        applied.data.unwrap().get("k3").map(String::as_str),
        Some("v3")
    );
    // Dry-run patch returns the result but changes nothing.
    let dry = cms
        .patch(
            "c",
            &PatchParams {
                dry_run: true,
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"dry": "x"}})),
        )
        .await
        .unwrap();
    assert!(dry.data.unwrap().contains_key("dry"));
    assert!(
        !cms.get("c")
            .await
            .unwrap()
            .data
            .unwrap()
            .contains_key("dry")
    );
    // Stale update → 409.
    let mut stale = cms.get("c").await.unwrap();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    stale.data.as_mut().unwrap().insert("z".into(), "z".into());
    match cms.replace("c", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409, got {other:?}"),
    }
    // Delete answers Status for non-pods (kube's Either::Right).
    assert!(
        cms.delete("c", &DeleteParams::default())
            .await
            .unwrap()
            .is_right()
    );
    assert!(matches!(cms.get("c").await, Err(kube::Error::Api(s)) if s.code == 404));
    // And the server version.
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    sb.assert_invariants();
}
