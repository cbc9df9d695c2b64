//! `apis.removed` finds objects last written through a removed API version by their
//! `metadata.managedFields` alone (no last-applied annotation), as the sandbox keeps them: a
//! scenario's objects keep the entries they were given, later writes through `policy/v1` add
//! their own, and the removed version stops counting once its entry owns no field any more.

use crate::common;

use common::{assert_read_only_since, marks, run, start};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use opsteps::exit::ExitStatus;
use opsteps_sandbox::resources::well_known as wk;
use serde_json::{Value, json};

const SCENARIO: &str = r#"cluster: {name: t, version: "1.33"}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 2, instanceType: m5.2xlarge}
objects:
  - apiVersion: policy/v1
    kind: PodDisruptionBudget
    metadata:
      name: legacy
      namespace: shop
      managedFields:
        - {manager: kubectl-client-side-apply, operation: Update, apiVersion: policy/v1beta1, time: "2021-03-01T10:00:00Z", fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:maxUnavailable": {}, "f:selector": {}}}}
    spec: {maxUnavailable: 1, selector: {matchLabels: {app: legacy}}}
  - apiVersion: policy/v1
    kind: PodDisruptionBudget
    metadata:
      name: current
      namespace: shop
      managedFields:
        - {manager: helm, operation: Update, apiVersion: policy/v1, time: "2025-03-01T10:00:00Z", fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:maxUnavailable": {}, "f:selector": {}}}}
    spec: {maxUnavailable: 1, selector: {matchLabels: {app: current}}}
"#;

const CHECK: &str = "apis.removed";

fn managed_versions(sb: &opsteps_sandbox::sandbox::Sandbox, name: &str) -> Vec<String> {
    sb.with(|c| {
        let pdb = c.store.get(wk::pdbs(), "shop", name).expect("PDB stored");
        pdb["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["apiVersion"].as_str().unwrap_or("").to_owned())
            .collect()
    })
}

async fn pdbs(sb: &opsteps_sandbox::sandbox::Sandbox) -> Api<PodDisruptionBudget> {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    Api::namespaced(kube::Client::try_from(cfg).unwrap(), "shop")
}

async fn patch(api: &Api<PodDisruptionBudget>, name: &str, body: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_versions_are_found_through_managed_fields() {
    let sb = start(SCENARIO).await;
    let since = marks(&sb);
    let out = run(&sb, &["--check", CHECK]).await;
    assert_read_only_since(&sb, since);
    assert_eq!(out.check_status(CHECK), "fail", "{:#}", out.result);
    assert_eq!(out.status, ExitStatus::Failed);
    let objects = out.objects(CHECK);
    assert!(
        objects.contains("PodDisruptionBudget shop/legacy"),
        "{objects:?}"
    );
    assert!(
        !objects.contains("PodDisruptionBudget shop/current"),
        "{objects:?}"
    );
    assert!(
        out.findings(CHECK).iter().any(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("policy/v1beta1 PodDisruptionBudget, removed in 1.25")),
        "{:#}",
        out.result["findings"]
    );

    // A label written through policy/v1 adds an entry; the old one still owns the spec.
    let api = pdbs(&sb).await;
    patch(
        &api,
        "legacy",
        json!({"metadata": {"labels": {"team": "shop"}}}),
    )
    .await;
    let versions = managed_versions(&sb, "legacy");
    assert!(
        versions.contains(&"policy/v1beta1".to_owned()),
        "{versions:?}"
    );
    assert!(versions.contains(&"policy/v1".to_owned()), "{versions:?}");
    let since = marks(&sb);
    let out = run(&sb, &["--check", CHECK]).await;
    assert_read_only_since(&sb, since);
    assert!(
        out.objects(CHECK)
            .contains("PodDisruptionBudget shop/legacy"),
        "{:#}",
        out.result
    );

    // Rewriting every field it owned through policy/v1 leaves the old entry nothing: it goes.
    patch(
        &api,
        "legacy",
        json!({"spec": {"maxUnavailable": 2, "selector": {"matchLabels": {"app": "legacy", "tier": "web"}}}}),
    )
    .await;
    assert_eq!(managed_versions(&sb, "legacy"), ["policy/v1"]);
    let since = marks(&sb);
    let out = run(&sb, &["--check", CHECK]).await;
    assert_read_only_since(&sb, since);
    assert_eq!(out.check_status(CHECK), "pass", "{:#}", out.result);
}
