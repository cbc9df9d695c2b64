//! Response bodies validate against the Kubernetes OpenAPI v3 schemas, read in place from the
//! shared directory (`OPSTEPS_SHARED_DIR`, default `<workspace>/../shared`).
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{expect, get, post, running_pod};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use serde_json::{Value, json};

fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("OPSTEPS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let schemas = dir.join("schemas/kubernetes");
    assert!(
        schemas.is_dir(),
        "Kubernetes OpenAPI schemas not found at {}: set OPSTEPS_SHARED_DIR to the shared directory (the one holding schemas/kubernetes)",
        schemas.display()
    );
    schemas
}

/// Validators per `apiVersion/kind`, built from the OpenAPI documents' component schemas.
struct Schemas {
    docs: HashMap<&'static str, Value>,
}

impl Schemas {
    fn load() -> Self {
        let dir = shared_dir();
        let mut docs = HashMap::new();
        for (gv, file) in [
            ("v1", "api__v1_openapi.json"),
            ("apps/v1", "apis__apps__v1_openapi.json"),
            ("policy/v1", "apis__policy__v1_openapi.json"),
        ] {
            let text = std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("reading {file}: {e}"));
            docs.insert(gv, serde_json::from_str(&text).unwrap());
        }
        Self { docs }
    }

    fn validator(&self, gv: &'static str, component: &str) -> jsonschema::Validator {
        let doc = &self.docs[gv];
        assert!(
            doc["components"]["schemas"].get(component).is_some(),
            "no schema {component} in {gv}"
        );
        // OpenAPI 3.0 schemas are close to draft 4; `$ref`s point into `#/components/schemas`,
        // so the wrapper carries the components beside the reference.
        let wrapper = json!({"components": doc["components"], "$ref": format!("#/components/schemas/{component}")});
        jsonschema::draft4::options()
            .should_validate_formats(false)
            .build(&wrapper)
            .expect("schema compiles")
    }

    /// Panics with every error when `body` does not validate as `component`.
    fn check(&self, gv: &'static str, component: &str, body: &Value) {
        let v = self.validator(gv, component);
        let errors: Vec<String> = v
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{component} invalid:\n{}\nbody: {body:#}",
            errors.join("\n")
        );
    }
}

fn component(kind: &str, group: &str) -> String {
    match (group, kind) {
        ("apps", k) => format!("io.k8s.api.apps.v1.{k}"),
        ("policy", k) => format!("io.k8s.api.policy.v1.{k}"),
        (_, k) => format!("io.k8s.api.core.v1.{k}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn served_bodies_validate_against_openapi_v3() {
    let schemas = Schemas::load();
    let sb = Sandbox::start(Options::default().tls(false).scale(600.0))
        .await
        .unwrap();
    post(
        &sb,
        "/api/v1/nodes",
        &common::node_obj(
            "ip-10-0-0-1",
            json!({"kubernetes.io/hostname": "ip-10-0-0-1"}),
        ),
    )
    .await;
    running_pod(&sb, "app", "bare", "ip-10-0-0-1", json!({"app": "bare"})).await;
    let tmpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "10m"}}}]}});
    for (plural, kind, extra) in [
        ("deployments", "Deployment", json!({"replicas": 2})),
        (
            "statefulsets",
            "StatefulSet",
            json!({"replicas": 1, "serviceName": "web"}),
        ),
        ("daemonsets", "DaemonSet", json!({})),
    ] {
        let mut spec = json!({"selector": {"matchLabels": {"app": "web"}}, "template": tmpl});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let body = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": format!("web-{plural}")}, "spec": spec});
        let r = post(
            &sb,
            &format!("/apis/apps/v1/namespaces/app/{plural}"),
            &body,
        )
        .await;
        expect(&r, 201);
    }
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    expect(
        &post(
            &sb,
            "/apis/policy/v1/namespaces/app/poddisruptionbudgets",
            &pdb,
        )
        .await,
        201,
    );
    // Let the controllers (if running) fill in statuses and pods.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut checked = 0;
    for (gv, group, list_path) in [
        ("v1", "", "/api/v1/pods"),
        ("v1", "", "/api/v1/nodes"),
        ("v1", "", "/api/v1/namespaces"),
        ("apps/v1", "apps", "/apis/apps/v1/deployments"),
        ("apps/v1", "apps", "/apis/apps/v1/replicasets"),
        ("apps/v1", "apps", "/apis/apps/v1/statefulsets"),
        ("apps/v1", "apps", "/apis/apps/v1/daemonsets"),
        (
            "policy/v1",
            "policy",
            "/apis/policy/v1/poddisruptionbudgets",
        ),
    ] {
        let list = expect(&get(&sb, list_path).await, 200).clone();
        let list_kind = list["kind"].as_str().unwrap().to_owned();
        schemas.check(gv, &component(&list_kind, group), &list);
        for item in list["items"].as_array().unwrap() {
            let kind = item["kind"].as_str().unwrap();
            schemas.check(gv, &component(kind, group), item);
            checked += 1;
        }
    }
    assert!(checked >= 10, "checked {checked} objects");

    // Status bodies: 404, 409, 422, 429 with causes, and eviction success.
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    let not_found = get(&sb, "/api/v1/namespaces/app/pods/ghost").await.body;
    schemas.check("v1", status, &not_found);
    let conflict = post(&sb, "/api/v1/namespaces", &common::ns_obj("app"))
        .await
        .body;
    schemas.check("v1", status, &conflict);
    let invalid = post(
        &sb,
        "/api/v1/namespaces/app/configmaps",
        &json!({"metadata": {}}),
    )
    .await
    .body;
    schemas.check("v1", status, &invalid);
    common::patch(
        &sb,
        "/apis/policy/v1/namespaces/app/poddisruptionbudgets/web/status",
        "application/merge-patch+json",
        &json!({"status": {"observedGeneration": 0}}),
    )
    .await;
    let generation = get(
        &sb,
        "/apis/policy/v1/namespaces/app/poddisruptionbudgets/web",
    )
    .await
    .body["metadata"]["generation"]
        .clone();
    assert_eq!(generation, 1);
    let sb_pods = get(&sb, "/api/v1/namespaces/app/pods?labelSelector=app%3Dbare")
        .await
        .body;
    schemas.check("v1", "io.k8s.api.core.v1.PodList", &sb_pods);
    let ev = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "bare"}});
    let ok = post(&sb, "/api/v1/namespaces/app/pods/bare/eviction", &ev).await;
    schemas.check("v1", status, &ok.body);
    let evicted = get(&sb, "/api/v1/namespaces/app/pods/bare").await.body;
    if evicted["kind"] == "Pod" {
        schemas.check("v1", "io.k8s.api.core.v1.Pod", &evicted);
    }
    let single_ns = get(&sb, "/api/v1/namespaces/app").await.body;
    schemas.check("v1", "io.k8s.api.core.v1.Namespace", &single_ns);
}

#[test]
fn the_check_can_fail() {
    let schemas = Schemas::load();
    let v = schemas.validator("v1", "io.k8s.api.core.v1.Pod");
    let good = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]},
                      "status": {"containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "i", "imageID": ""}]}});
    assert!(v.is_valid(&good));
    let mut bad = good.clone();
    bad["status"]["containerStatuses"][0]["restartCount"] = json!("zero");
    assert!(!v.is_valid(&bad), "a string restartCount is caught");
    let mut missing = good;
    missing["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert!(
        !v.is_valid(&missing),
        "a container without a name is caught"
    );
    let pdb = schemas.validator("policy/v1", "io.k8s.api.policy.v1.PodDisruptionBudget");
    assert!(!pdb.is_valid(&json!({"status": {"disruptionsAllowed": "1"}})));
}

/// `/openapi/v3` serves the shared 1.35 documents byte for byte (the index points at each), a
/// generated one for group/versions without a shared document, and `/openapi/v2` carries the
/// same definitions with their group/version/kind, as JSON or as gnostic protobuf.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_serves_the_shared_documents() {
    let dir = shared_dir();
    let sb = common::sandbox().await;
    let index = expect(&get(&sb, "/openapi/v3").await, 200).clone();
    for (gv, file) in [
        ("api/v1", "api__v1_openapi.json"),
        ("apis/apps/v1", "apis__apps__v1_openapi.json"),
        ("apis/policy/v1", "apis__policy__v1_openapi.json"),
        (
            "apis/rbac.authorization.k8s.io/v1",
            "apis__rbac.authorization.k8s.io__v1_openapi.json",
        ),
    ] {
        let url = index["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{gv} not in {index}"));
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
        let served = expect(&get(&sb, url).await, 200).clone();
        let shared: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        assert!(served == shared, "{gv} differs from {file}");
    }
    // Every served group/version has a document, generated when none is shared.
    for (gv, entry) in index["paths"].as_object().unwrap() {
        let doc = expect(
            &get(&sb, entry["serverRelativeURL"].as_str().unwrap()).await,
            200,
        )
        .clone();
        assert_eq!(doc["openapi"], "3.0.0", "{gv}");
    }
    assert_eq!(get(&sb, "/openapi/v3/apis/bogus/v1").await.status, 404);

    let v2 = expect(&get(&sb, "/openapi/v2").await, 200).clone();
    assert_eq!(v2["swagger"], "2.0");
    let pod = &v2["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert_eq!(
        pod["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    let containers = &v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        containers["items"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    let max_surge =
        &v2["definitions"]["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]["maxSurge"];
    assert_eq!(
        max_surge["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    );
    let post = &v2["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"];
    assert_eq!(post["x-kubernetes-action"], "post");
    assert!(
        post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
        "{post}"
    );
    // What kubectl 1.27/1.28 ask for.
    let pb = common::send_headers(
        &sb,
        Some(sb.admin_token()),
        http::Method::GET,
        "/openapi/v2",
        None,
        &[(
            "accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )],
    )
    .await;
    assert_eq!(pb.status, 200);
    assert_eq!(
        pb.headers["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let bytes = pb.body.as_str().unwrap_or_default();
    assert!(bytes.starts_with("\n\u{3}2.0"), "field 1 (swagger) first");
}
