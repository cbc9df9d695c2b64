//! Helm release Secrets from a scenario's `helmReleases`, read through kube-rs as a Helm-aware
//! client reads them: list by `owner=helm` and `type=helm.sh/release.v1`, take `data.release`
//! (k8s-openapi undoes the Secret's base64), then base64 and gunzip Helm's string.

use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

const SCENARIO: &str = r#"
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
helmReleases:
  - {name: ingress, namespace: ingress-nginx, chart: ingress-nginx, version: 4.10.0,
     appVersion: 1.10.0, revision: 3, updated: 3d, notes: "Get the address with kubectl"}
  - {name: payments, namespace: shop, chart: payments, version: 2.1.0, appVersion: "2.1",
     status: pending-upgrade, revision: 2, updated: 2h}
  - name: search
    namespace: shop
    chart: opensearch
    version: 2.20.0
    status: failed
    revision: 4
    updated: 2026-11-25T08:00:00Z
    description: 'Upgrade "search" failed: timed out waiting for the condition'
    history:
      - {revision: 2, version: 2.18.0, status: superseded}
      - {revision: 3, version: 2.19.0, status: deployed, description: Upgrade complete}
  - {name: canary, chart: podinfo, version: 6.5.0, status: pending-install}
"#;

async fn start() -> (Sandbox, kube::Client) {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .expect("sandbox starts");
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    (sb, kube::Client::try_from(config).unwrap())
}

/// Helm's `decodeRelease`: base64, gunzip (when the gzip magic is there), JSON.
fn decode(helm_string: &[u8]) -> Value {
    let raw = STANDARD
        .decode(helm_string)
        .expect("Helm's string is base64");
    assert_eq!(&raw[..3], &[0x1f, 0x8b, 0x08], "Helm gzips releases");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut json)
        .expect("gzip");
    serde_json::from_slice(&json).expect("release JSON")
}

async fn releases(client: &kube::Client) -> Vec<(Secret, Value)> {
    let lp = ListParams::default()
        .labels("owner=helm")
        .fields("type=helm.sh/release.v1");
    let list = Api::<Secret>::all(client.clone()).list(&lp).await.unwrap();
    list.items
        .into_iter()
        .map(|s| {
            let data = &s.data.as_ref().unwrap()["release"];
            let r = decode(&data.0);
            (s, r)
        })
        .collect()
}

#[tokio::test]
async fn release_secrets_decode_as_helm_writes_them() {
    let (_sb, client) = start().await;
    let all = releases(&client).await;
    // ingress: 3 revisions, payments: 2, search: 3 (2 in history + newest), canary: 1.
    assert_eq!(
        all.len(),
        9,
        "{:?}",
        all.iter()
            .map(|(s, _)| s.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    for (s, r) in &all {
        let labels = s.metadata.labels.as_ref().unwrap();
        let rev = r["version"].as_u64().unwrap();
        assert_eq!(
            s.metadata.name.as_deref().unwrap(),
            format!("sh.helm.release.v1.{}.v{rev}", r["name"].as_str().unwrap())
        );
        assert_eq!(s.type_.as_deref(), Some("helm.sh/release.v1"));
        assert_eq!(labels["owner"], "helm");
        assert_eq!(labels["name"], r["name"].as_str().unwrap());
        assert_eq!(labels["status"], r["info"]["status"].as_str().unwrap());
        assert_eq!(labels["version"], rev.to_string());
        assert_eq!(s.metadata.namespace.as_deref(), r["namespace"].as_str());
    }
    let find = |name: &str, rev: u64| {
        all.iter()
            .find(|(_, r)| r["name"] == name && r["version"] == rev)
            .map_or_else(|| panic!("{name} v{rev}"), |(_, r)| r.clone())
    };
    let ingress = find("ingress", 3);
    assert_eq!(ingress["info"]["status"], "deployed");
    assert_eq!(ingress["info"]["last_deployed"], "2026-11-23T10:00:00Z");
    assert_eq!(ingress["info"]["first_deployed"], "2026-11-21T10:00:00Z");
    assert_eq!(ingress["info"]["deleted"], "");
    assert_eq!(ingress["info"]["notes"], "Get the address with kubectl");
    assert_eq!(ingress["chart"]["metadata"]["name"], "ingress-nginx");
    assert_eq!(ingress["chart"]["metadata"]["version"], "4.10.0");
    assert_eq!(ingress["chart"]["metadata"]["appVersion"], "1.10.0");
    assert_eq!(ingress["chart"]["metadata"]["apiVersion"], "v2");
    assert!(
        ingress["manifest"]
            .as_str()
            .unwrap()
            .contains("kind: Deployment")
    );
    assert_eq!(find("ingress", 1)["info"]["status"], "superseded");
    assert_eq!(find("ingress", 2)["info"]["status"], "superseded");
    // A pending upgrade leaves the previous revision deployed, as Helm does.
    assert_eq!(find("payments", 2)["info"]["status"], "pending-upgrade");
    assert_eq!(find("payments", 1)["info"]["status"], "deployed");
    let search = find("search", 4);
    assert_eq!(search["info"]["status"], "failed");
    assert_eq!(search["info"]["last_deployed"], "2026-11-25T08:00:00Z");
    assert!(
        search["info"]["description"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert_eq!(find("search", 3)["chart"]["metadata"]["version"], "2.19.0");
    assert_eq!(find("search", 3)["info"]["status"], "deployed");
    let canary = find("canary", 1);
    assert_eq!(canary["info"]["status"], "pending-install");
    assert_eq!(canary["namespace"], "default");
}

#[tokio::test]
async fn label_selectors_find_one_release_and_its_status() {
    let (_sb, client) = start().await;
    let api = Api::<Secret>::namespaced(client, "shop");
    let lp = ListParams::default().labels("owner=helm,name=search,status=failed");
    let list = api.list(&lp).await.unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["sh.helm.release.v1.search.v4"]);
}

#[test]
fn bad_status_is_a_scenario_error() {
    let yaml = "helmReleases: [{name: a, chart: c, version: 1.0.0, status: done}]";
    let scenario = Scenario::from_yaml(yaml).expect("parses");
    let err = opsteps_sandbox::scenario::cluster_from(&scenario)
        .err()
        .expect("loading fails");
    assert!(format!("{err:#}").contains("expected one of"), "{err:#}");
}
