//! The API groups the steps and pipelines touch beyond core/apps/policy: batch, autoscaling/v2,
//! networking.k8s.io, storage.k8s.io, and CustomResourceDefinitions with their custom resources
//! (Argo's Workflow CRD); plus the `default` ServiceAccount and the `kubernetes` Service.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
use serde_json::{Value, json};

/// Argo's Workflow CRD, as its "minimal" install manifests shape it (open schemas).
const WORKFLOW_CRD: &str = r"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: workflows.argoproj.io
spec:
  group: argoproj.io
  names:
    kind: Workflow
    listKind: WorkflowList
    plural: workflows
    shortNames: [wf]
    singular: workflow
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {}
      schema:
        openAPIV3Schema:
          type: object
          required: [metadata, spec]
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

const WORKFLOW: &str = r"apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: hello
  namespace: default
spec:
  entrypoint: main
  templates:
    - name: main
      container: {image: busybox, command: [echo, hi]}
";

/// One object of each new built-in type, with its `kubectl get` name.
const OBJECTS: &[(&str, &str)] = &[
    (
        "job.batch/pi",
        r"apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl}]
",
    ),
    (
        "cronjob.batch/nightly",
        r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: default}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
"#,
    ),
    (
        "horizontalpodautoscaler.autoscaling/web",
        r"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
",
    ),
    (
        "ingress.networking.k8s.io/web",
        r"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules: [{host: web.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
",
    ),
    (
        "networkpolicy.networking.k8s.io/deny-all",
        r"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
",
    ),
    (
        "ingressclass.networking.k8s.io/alb",
        r"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: alb}
spec: {controller: ingress.k8s.aws/alb}
",
    ),
    (
        "storageclass.storage.k8s.io/gp3",
        r"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: gp3}
provisioner: ebs.csi.aws.com
parameters: {type: gp3}
",
    ),
    (
        "csidriver.storage.k8s.io/ebs.csi.aws.com",
        r"apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: ebs.csi.aws.com}
spec: {attachRequired: true}
",
    ),
];

async fn client(sb: &Sandbox) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn crd_serves_custom_resources_with_list_and_watch() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let client = client(&sb).await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(yaml(WORKFLOW_CRD)).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let stored = crds.get("workflows.argoproj.io").await.unwrap();
    let conditions = &stored.data["status"]["conditions"];
    assert!(
        conditions
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"),
        "{conditions}"
    );

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    );
    let wfs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    // A watch from now on sees the create.
    let watch = watcher(wfs.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let wf: DynamicObject = serde_json::from_value(yaml(WORKFLOW)).unwrap();
    let created = wfs.create(&PostParams::default(), &wf).await.unwrap();
    assert_eq!(created.data["spec"]["entrypoint"], "main");
    let seen = tokio::time::timeout(
        Duration::from_secs(20),
        watch
            .try_filter(|o| std::future::ready(o.metadata.name.as_deref() == Some("hello")))
            .next(),
    )
    .await
    .expect("watch event in time")
    .unwrap()
    .unwrap();
    assert_eq!(seen.types.unwrap().kind, "Workflow");
    let listed = wfs.list(&kube::api::ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    // Discovery lists the type with its short name.
    let disc: Value = client
        .request(
            http::Request::get("/apis/argoproj.io/v1alpha1")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(disc["resources"][0]["name"], "workflows", "{disc}");
    assert_eq!(disc["resources"][0]["shortNames"], json!(["wf"]), "{disc}");

    // Another sandbox in this process has no such CRD: no such resource.
    let other = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let other_wfs: Api<DynamicObject> =
        Api::namespaced_with(self::client(&other).await, "default", &ar);
    let err = other_wfs
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err}"
    );

    // Deleting the CRD deletes its objects and stops serving them.
    crds.delete("workflows.argoproj.io", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let err = wfs.get("hello").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err}"
    );
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let listed = wfs.list(&kube::api::ListParams::default()).await.unwrap();
    assert!(listed.items.is_empty(), "objects survived their CRD");
    sb.assert_invariants();
}

#[tokio::test]
async fn every_namespace_has_a_default_service_account() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let client = client(&sb).await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "kube-system");
    sas.get("default").await.unwrap();
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    let k = svc.get("kubernetes").await.unwrap();
    assert_eq!(k.spec.unwrap().ports.unwrap()[0].port, 443);

    // A namespace created later gets one from the controllers.
    let sb = Sandbox::start(Options::default()).await.unwrap();
    let client = self::client(&sb).await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap(),
    )
    .await
    .unwrap();
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "team-a");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sas.get_opt("default").await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no default ServiceAccount in team-a"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_creates_gets_and_deletes_each_new_type_and_custom_resources() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let versions = kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    let kc = sb.kubeconfig_path();
    // `--validate=false`: kubectl 1.27/1.28 validate `-f` input with OpenAPI v2, which is not
    // served yet (issue 10's OpenAPI item).
    for bin in &versions {
        let v = bin.display().to_string();
        for (i, (name, manifest)) in OBJECTS.iter().enumerate() {
            let file = dir.path().join(format!("o{i}.yaml"));
            std::fs::write(&file, manifest).unwrap();
            let f = file.to_str().unwrap();
            let _ = stdout_ok(
                &kubectl(bin, kc, &["create", "--validate=false", "-f", f]).await,
                &format!("{v}: create {name}"),
            );
            let got = stdout_ok(&kubectl(bin, kc, &["get", name, "-o", "name"]).await, &v);
            assert_eq!(got.trim(), *name, "{v}");
            let table = stdout_ok(&kubectl(bin, kc, &["get", name]).await, &v);
            assert!(table.starts_with("NAME"), "{v}: {table}");
            let _ = stdout_ok(
                &kubectl(bin, kc, &["delete", "-f", f]).await,
                &format!("{v}: delete {name}"),
            );
            let gone = kubectl(bin, kc, &["get", name]).await;
            assert!(!gone.status.success(), "{v}: {name} still there");
        }
        // Short names come from discovery.
        let _ = stdout_ok(
            &kubectl(bin, kc, &["get", "cj,hpa,ing,netpol,sc", "-A"]).await,
            &v,
        );
        let sa = stdout_ok(
            &kubectl(
                bin,
                kc,
                &["get", "sa", "default", "-n", "kube-public", "-o", "name"],
            )
            .await,
            &v,
        );
        assert_eq!(sa.trim(), "serviceaccount/default", "{v}");
        let svc = stdout_ok(
            &kubectl(
                bin,
                kc,
                &[
                    "get",
                    "svc",
                    "kubernetes",
                    "-n",
                    "default",
                    "-o",
                    "jsonpath={.spec.clusterIP}",
                ],
            )
            .await,
            &v,
        );
        assert_eq!(svc, "10.100.0.1", "{v}");

        // A CRD, then its custom resources.
        let crd = dir.path().join("crd.yaml");
        std::fs::write(&crd, WORKFLOW_CRD).unwrap();
        let _ = stdout_ok(
            &kubectl(
                bin,
                kc,
                &["apply", "--validate=false", "-f", crd.to_str().unwrap()],
            )
            .await,
            &format!("{v}: apply crd"),
        );
        let _ = stdout_ok(
            &kubectl(
                bin,
                kc,
                &[
                    "wait",
                    "--for",
                    "condition=established",
                    "--timeout=30s",
                    "crd/workflows.argoproj.io",
                ],
            )
            .await,
            &v,
        );
        let wf = dir.path().join("wf.yaml");
        std::fs::write(&wf, WORKFLOW).unwrap();
        let _ = stdout_ok(
            &kubectl(
                bin,
                kc,
                &["create", "--validate=false", "-f", wf.to_str().unwrap()],
            )
            .await,
            &format!("{v}: create wf"),
        );
        let entry = stdout_ok(
            &kubectl(
                bin,
                kc,
                &["get", "wf", "hello", "-o", "jsonpath={.spec.entrypoint}"],
            )
            .await,
            &v,
        );
        assert_eq!(entry, "main", "{v}");
        let listed = stdout_ok(
            &kubectl(bin, kc, &["get", "workflows.argoproj.io", "-o", "name"]).await,
            &v,
        );
        assert_eq!(listed.trim(), "workflow.argoproj.io/hello", "{v}");
        let _ = stdout_ok(
            &kubectl(bin, kc, &["delete", "workflow", "hello"]).await,
            &v,
        );
    }
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
async fn hpa_status_conditions_as_without_a_metrics_server() {
    let sb = Sandbox::start(Options::default()).await.unwrap();
    let client = client(&sb).await;
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    deploys
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), "default");
    let mut hpa = yaml(OBJECTS[2].1);
    hpa["spec"]["minReplicas"] = json!(3);
    hpas.create(
        &PostParams::default(),
        &serde_json::from_value(hpa.clone()).unwrap(),
    )
    .await
    .unwrap();
    hpa["metadata"]["name"] = json!("orphan");
    hpa["spec"]["scaleTargetRef"]["name"] = json!("missing");
    hpas.create(
        &PostParams::default(),
        &serde_json::from_value(hpa).unwrap(),
    )
    .await
    .unwrap();
    let cond = |h: &Value, t: &str| -> (String, String) {
        h["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| {
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let web = serde_json::to_value(hpas.get("web").await.unwrap()).unwrap();
        let orphan = serde_json::to_value(hpas.get("orphan").await.unwrap()).unwrap();
        let done =
            cond(&web, "ScalingLimited").0 == "True" && cond(&orphan, "AbleToScale").0 == "False";
        if done {
            assert_eq!(
                cond(&web, "AbleToScale"),
                ("True".into(), "SucceededGetScale".into())
            );
            assert_eq!(
                cond(&web, "ScalingActive"),
                ("False".into(), "FailedGetResourceMetric".into())
            );
            assert_eq!(cond(&web, "ScalingLimited").1, "TooFewReplicas");
            assert_eq!(web["status"]["currentReplicas"], 2);
            assert_eq!(web["status"]["desiredReplicas"], 3);
            assert_eq!(cond(&orphan, "AbleToScale").1, "FailedGetScale");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{web}\n{orphan}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The HPA never scales the target (no metrics).
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
}
