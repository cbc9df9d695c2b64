//! The API server's `/metrics`: `apiserver_requested_deprecated_apis` from the scenario and from
//! requests for deprecated CRD versions, the standard families, and the non-resource RBAC rule.

use crate::common;

use common::{expect, post, send_as};
use http::Method;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::json;

const SCENARIO: &str = r#"
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
apiServer:
  requestedDeprecatedApis:
    - {group: flowcontrol.apiserver.k8s.io, version: v1beta3, resource: flowschemas, removedRelease: "1.32"}
    - {group: autoscaling, version: v2beta2, resource: horizontalpodautoscalers, removedRelease: "1.26"}
"#;

async fn start() -> Sandbox {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    Sandbox::start(
        Options::default()
            .scenario(scenario)
            .tls(false)
            .controllers(false),
    )
    .await
    .expect("sandbox starts")
}

/// `GET /metrics` as the admin, parsed.
async fn scrape(sb: &Sandbox) -> String {
    let r = send_as(sb, Some(sb.admin_token()), Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    r.body.as_str().expect("text").to_owned()
}

/// The exposition of `text`, which must parse whole.
fn parse(text: &str) -> prom_text::Exposition<'_> {
    let e = prom_text::parse(text);
    assert!(e.skipped.is_empty(), "not Prometheus text: {:?}", e.skipped);
    e
}

fn deprecated(text: &str) -> Vec<(String, String, String, String)> {
    parse(text)
        .samples
        .iter()
        .filter(|s| s.name == "apiserver_requested_deprecated_apis")
        .map(|s| {
            let l = |k: &str| s.labels.get(k).unwrap_or("").to_owned();
            (
                l("group"),
                l("version"),
                l("resource"),
                l("removed_release"),
            )
        })
        .collect()
}

#[tokio::test]
async fn scenario_deprecated_apis_and_standard_families() {
    let sb = start().await;
    let text = scrape(&sb).await;
    let scraped = parse(&text);
    let samples = &scraped.samples;
    assert_eq!(
        deprecated(&text),
        [
            (
                "autoscaling".into(),
                "v2beta2".into(),
                "horizontalpodautoscalers".into(),
                "1.26".into()
            ),
            (
                "flowcontrol.apiserver.k8s.io".into(),
                "v1beta3".into(),
                "flowschemas".into(),
                "1.32".into()
            ),
        ]
    );
    let namespaces = samples
        .iter()
        .find(|s| {
            s.name == "apiserver_storage_objects" && s.labels.get("resource") == Some("namespaces")
        })
        .expect("apiserver_storage_objects for namespaces");
    assert!(namespaces.value >= 4.0, "{namespaces:?}");
    assert_eq!(
        scraped.family("apiserver_storage_objects").map(|f| f.kind),
        Some(prom_text::MetricType::Gauge)
    );
    let build = samples
        .iter()
        .find(|s| s.name == "kubernetes_build_info")
        .expect("kubernetes_build_info");
    assert_eq!(build.labels.get("minor"), Some("33"));
    // Resource requests are counted from the request log.
    let r = send_as(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/api/v1/namespaces",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let text = scrape(&sb).await;
    let scraped = parse(&text);
    let list = scraped
        .samples
        .iter()
        .find(|s| {
            s.name == "apiserver_request_total"
                && s.labels.get("verb") == Some("LIST")
                && s.labels.get("resource") == Some("namespaces")
        })
        .expect("LIST namespaces counted");
    assert_eq!(list.labels.get("code"), Some("200"));
    assert_eq!(list.labels.get("version"), Some("v1"));
    assert_eq!(list.labels.get("scope"), Some("cluster"));
}

#[tokio::test]
async fn requests_for_a_deprecated_crd_version_are_recorded() {
    let sb = start().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1beta1", "served": true, "storage": false, "deprecated": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
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
    let r = send_as(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/apis/example.com/v1/namespaces/default/widgets",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        deprecated(&scrape(&sb).await).len(),
        2,
        "v1 is not deprecated"
    );
    let r = send_as(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/apis/example.com/v1beta1/namespaces/default/widgets",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = deprecated(&scrape(&sb).await);
    assert!(
        d.contains(&(
            "example.com".into(),
            "v1beta1".into(),
            "widgets".into(),
            String::new()
        )),
        "{d:?}"
    );
}

#[tokio::test]
async fn rbac_needs_get_on_the_metrics_url() {
    let sb = start().await;
    sb.with(|c| c.api.rbac = true);
    let token = sb.token_for("system:serviceaccount:ops:checker", false);
    let r = send_as(&sb, Some(&token), Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(
        r.body["message"],
        "forbidden: User \"system:serviceaccount:ops:checker\" cannot get path \"/metrics\""
    );
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    expect(
        &post(
            &sb,
            &format!("{rbac}/clusterroles"),
            &json!({"metadata": {"name": "metrics-reader"},
                "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
        )
        .await,
        201,
    );
    expect(&post(&sb, &format!("{rbac}/clusterrolebindings"), &json!({"metadata": {"name": "checker-metrics"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "checker", "namespace": "ops"}]})).await, 201);
    let r = send_as(&sb, Some(&token), Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .as_str()
            .unwrap()
            .contains("apiserver_requested_deprecated_apis{")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_get_raw_metrics() {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .expect("sandbox starts");
    let versions = opsteps_sandbox::testing::kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    for bin in [versions.first().unwrap(), versions.last().unwrap()] {
        let out = opsteps_sandbox::testing::kubectl(
            bin,
            sb.kubeconfig_path(),
            &["get", "--raw", "/metrics"],
        )
        .await;
        let text = opsteps_sandbox::testing::stdout_ok(&out, "kubectl get --raw /metrics");
        assert!(
            text.contains(
                "apiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.32\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1"
            ),
            "{}: {text}",
            bin.display()
        );
    }
}
