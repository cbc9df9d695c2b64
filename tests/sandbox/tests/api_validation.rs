//! What the apiserver refuses, and how: status code and `Status` body (kind, reason, message,
//! details.causes) for invalid names, labels and pods, pod spec updates, oversized bodies and
//! objects, unsupported field selectors, bad label selectors, bad `dryRun` values and list
//! options. Nothing refused may be stored.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use common::{delete, expect, patch, pod_obj, post, put, running_pod, sandbox, send_as};
use http::Method;
use opsteps_sandbox::resources::well_known;
use serde_json::{Value, json};

/// GET as the admin, failing rather than hanging when the answer never ends (a watch the server
/// should have refused).
async fn get(sb: &opsteps_sandbox::sandbox::Sandbox, path: &str) -> common::Resp {
    tokio::time::timeout(std::time::Duration::from_secs(10), common::get(sb, path))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete answer within 10 s"))
}

/// Asserts a Status body: code, reason, and a message containing `msg`.
#[track_caller]
fn status(r: &common::Resp, code: u16, reason: &str, msg: &str) -> Value {
    // Bodies here can be megabytes: show only their start.
    let shown: String = r.body.to_string().chars().take(600).collect();
    assert_eq!(r.status, code, "unexpected status; body: {shown}");
    let b = r.body.clone();
    assert_eq!(b["kind"], "Status", "{b}");
    assert_eq!(b["apiVersion"], "v1", "{b}");
    assert_eq!(b["status"], "Failure", "{b}");
    assert_eq!(b["code"], code, "{b}");
    if reason.is_empty() {
        assert!(b.get("reason").is_none(), "{b}");
    } else {
        assert_eq!(b["reason"], reason, "{b}");
    }
    let m = b["message"].as_str().unwrap();
    assert!(m.contains(msg), "message {m:?} lacks {msg:?}");
    b
}

/// `(field, reason)` of each cause.
fn causes(b: &Value) -> Vec<(String, String)> {
    b["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("no causes: {b}"))
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pod_count(sb: &opsteps_sandbox::sandbox::Sandbox) -> usize {
    sb.with(|c| c.store.count(well_known::pods()))
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

#[tokio::test]
async fn invalid_names_are_422() {
    let sb = sandbox().await;
    for name in ["../evil", "Bad_Name", "a/b", "-lead"] {
        let r = post(
            &sb,
            "/api/v1/namespaces/default/pods",
            &pod_obj("default", name, None, json!({})),
        )
        .await;
        let b = status(
            &r,
            422,
            "Invalid",
            &format!(
                "Pod \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": {SUBDOMAIN}"
            ),
        );
        assert_eq!(b["details"]["kind"], "Pod");
        assert_eq!(b["details"]["name"], name);
        assert_eq!(
            causes(&b),
            vec![("metadata.name".to_owned(), "FieldValueInvalid".to_owned())]
        );
    }
    // Namespaces are RFC 1123 labels: no dots.
    let r = post(&sb, "/api/v1/namespaces", &common::ns_obj("a.b")).await;
    let b = status(
        &r,
        422,
        "Invalid",
        "Namespace \"a.b\" is invalid: metadata.name",
    );
    assert!(b["message"].as_str().unwrap().contains("RFC 1123 label"));
    // Grouped kinds name their group.
    let r = post(
        &sb,
        "/apis/apps/v1/namespaces/default/deployments",
        &json!({"metadata": {"name": "Web"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    )
    .await;
    let b = status(&r, 422, "Invalid", "Deployment.apps \"Web\" is invalid");
    assert_eq!(b["details"]["group"], "apps");
    assert_eq!(pod_count(&sb), 0);
    sb.with(|c| assert!(c.store.get(well_known::namespaces(), "", "a.b").is_none()));
}

#[tokio::test]
async fn invalid_pods_and_labels_are_422() {
    let sb = sandbox().await;
    let mut p = pod_obj("default", "empty", None, json!({}));
    p["spec"]["containers"] = json!([]);
    let r = post(&sb, "/api/v1/namespaces/default/pods", &p).await;
    let b = status(
        &r,
        422,
        "Invalid",
        "Pod \"empty\" is invalid: spec.containers: Required value",
    );
    assert_eq!(
        causes(&b),
        vec![(
            "spec.containers".to_owned(),
            "FieldValueRequired".to_owned()
        )]
    );

    let r = post(
        &sb,
        "/api/v1/namespaces/default/pods",
        &pod_obj("default", "lbl", None, json!({"app": "not ok!"})),
    )
    .await;
    let b = status(
        &r,
        422,
        "Invalid",
        "Pod \"lbl\" is invalid: metadata.labels: Invalid value: \"not ok!\": a valid label must be an empty string",
    );
    assert_eq!(
        causes(&b),
        vec![("metadata.labels".to_owned(), "FieldValueInvalid".to_owned())]
    );
    // Two errors: both listed, in brackets.
    let mut p = pod_obj("default", "Two_Bad", None, json!({"bad key!": "v"}));
    p["spec"]["containers"] = json!([]);
    let r = post(&sb, "/api/v1/namespaces/default/pods", &p).await;
    let b = status(&r, 422, "Invalid", "Pod \"Two_Bad\" is invalid: [");
    assert_eq!(causes(&b).len(), 3, "{b}");
    assert_eq!(pod_count(&sb), 0);

    // Labels are checked on update too, and nothing changes.
    running_pod(&sb, "default", "ok", "n1", json!({"app": "web"})).await;
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/ok",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "-bad-"}}}),
    )
    .await;
    status(
        &r,
        422,
        "Invalid",
        "metadata.labels: Invalid value: \"-bad-\"",
    );
    let cur = expect(&get(&sb, "/api/v1/namespaces/default/pods/ok").await, 200).clone();
    assert_eq!(cur["metadata"]["labels"]["app"], "web");
}

#[tokio::test]
async fn bound_pod_spec_is_immutable_but_image_is_not() {
    let sb = sandbox().await;
    let pod = running_pod(&sb, "default", "p", "n1", json!({"app": "web"})).await;
    let rv = pod["metadata"]["resourceVersion"].clone();
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p",
        "application/merge-patch+json",
        &json!({"spec": {"nodeName": "n2"}}),
    )
    .await;
    let b = status(
        &r,
        422,
        "Invalid",
        "Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`",
    );
    assert_eq!(
        causes(&b),
        vec![("spec".to_owned(), "FieldValueForbidden".to_owned())]
    );
    // A PUT moving it is refused the same way.
    let mut moved = pod.clone();
    moved["spec"]["nodeName"] = json!("n2");
    let r = put(&sb, "/api/v1/namespaces/default/pods/p", &moved).await;
    status(
        &r,
        422,
        "Invalid",
        "spec: Forbidden: pod updates may not change",
    );
    let cur = expect(&get(&sb, "/api/v1/namespaces/default/pods/p").await, 200).clone();
    assert_eq!(cur["spec"]["nodeName"], "n1");
    assert_eq!(cur["metadata"]["resourceVersion"], rv);
    // What may change: images, tolerations, activeDeadlineSeconds; labels of course.
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"v": "2"}}, "spec": {"activeDeadlineSeconds": 60, "tolerations": [{"key": "k", "operator": "Exists"}]}}),
    )
    .await;
    expect(&r, 200);
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p",
        "application/strategic-merge-patch+json",
        &json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}),
    )
    .await;
    assert_eq!(
        expect(&r, 200)["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    // A PUT of what GET returned, without the defaulted fields, is fine: they are defaulted.
    let mut same = expect(&get(&sb, "/api/v1/namespaces/default/pods/p").await, 200).clone();
    for k in ["dnsPolicy", "schedulerName", "enableServiceLinks"] {
        same["spec"].as_object_mut().unwrap().remove(k);
    }
    expect(
        &put(&sb, "/api/v1/namespaces/default/pods/p", &same).await,
        200,
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_and_oversized_objects_refused() {
    let sb = sandbox().await;
    // Over 3 MiB of body.
    let big = "x".repeat(3 * 1024 * 1024 + 10);
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "big"}, "data": {"k": big}}),
    )
    .await;
    let b = status(
        &r,
        413,
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728",
    );
    assert_eq!(b["message"], "Request entity too large: limit is 3145728");
    // Under the body limit but over etcd's 1.5 MiB: etcd refuses it, and the apiserver passes
    // that on as a 500 without a reason (kubernetes/kubernetes#112152).
    let data: serde_json::Map<String, Value> = (0..2)
        .map(|i| (format!("k{i}"), json!("y".repeat(900 * 1024))))
        .collect();
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "big"}, "data": data}),
    )
    .await;
    status(&r, 500, "", "etcdserver: request is too large");
    // Annotations over 256 KiB are a validation error.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "big", "annotations": {"a": "z".repeat(300 * 1024)}}}),
    )
    .await;
    let b = status(
        &r,
        422,
        "Invalid",
        "ConfigMap \"big\" is invalid: metadata.annotations: Too long: must have at most 262144 bytes",
    );
    assert_eq!(
        causes(&b),
        vec![(
            "metadata.annotations".to_owned(),
            "FieldValueTooLong".to_owned()
        )]
    );
    sb.with(|c| {
        assert!(
            c.store
                .get(
                    opsteps_sandbox::store::res("", "configmaps"),
                    "default",
                    "big"
                )
                .is_none()
        );
    });
    // A large object under every limit is fine.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "ok"}, "data": {"k": "y".repeat(1024 * 1024)}}),
    )
    .await;
    expect(&r, 201);
}

#[tokio::test]
async fn unsupported_field_selectors_are_400_on_list_and_watch() {
    let sb = sandbox().await;
    running_pod(&sb, "default", "p", "n1", json!({})).await;
    for path in [
        "/api/v1/pods?fieldSelector=spec.bogus%3Dx",
        "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx",
        "/api/v1/namespaces/default/pods?watch=true&fieldSelector=spec.bogus%3Dx",
        "/api/v1/pods?watch=true&resourceVersion=1&fieldSelector=spec.nodeName%3Dn1,spec.bogus%3Dx",
    ] {
        let b = status(
            &get(&sb, path).await,
            400,
            "BadRequest",
            "field label not supported: spec.bogus",
        );
        assert_eq!(
            b["message"], "field label not supported: spec.bogus",
            "{path}"
        );
    }
    // Every pod field the apiserver registers works.
    for f in [
        "metadata.name=p",
        "metadata.namespace=default",
        "spec.nodeName=n1",
        "spec.restartPolicy=Always",
        "spec.schedulerName=default-scheduler",
        "spec.serviceAccountName=",
        "spec.hostNetwork=false",
        "status.phase=Running",
        "status.podIP=10.1.0.5",
        "status.nominatedNodeName=",
    ] {
        let r = get(
            &sb,
            &format!("/api/v1/namespaces/default/pods?fieldSelector={f}"),
        )
        .await;
        let items = expect(&r, 200)["items"].as_array().unwrap().len();
        assert_eq!(items, 1, "{f}");
    }
    // Other kinds: their own fields, with their own wording.
    expect(
        &get(
            &sb,
            "/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse",
        )
        .await,
        200,
    );
    status(
        &get(&sb, "/api/v1/nodes?fieldSelector=status.phase%3DReady").await,
        400,
        "BadRequest",
        "field label not supported: status.phase",
    );
    status(
        &get(
            &sb,
            "/api/v1/namespaces/default/configmaps?fieldSelector=data.k%3Dv",
        )
        .await,
        400,
        "BadRequest",
        "field label \"data.k\" not supported for \"ConfigMap\"",
    );
    status(
        &get(
            &sb,
            "/apis/apps/v1/deployments?fieldSelector=spec.replicas%3D1",
        )
        .await,
        400,
        "BadRequest",
        "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
    );
}

#[tokio::test]
async fn unparseable_label_selectors_are_400() {
    let sb = sandbox().await;
    for sel in [
        "app%20in%20web",
        "a%20b",
        "app%3D(web",
        "bad%20key!%3Dx",
        "%3Dv",
    ] {
        for watch in ["", "&watch=true"] {
            let r = get(
                &sb,
                &format!("/api/v1/namespaces/default/pods?labelSelector={sel}{watch}"),
            )
            .await;
            status(&r, 400, "BadRequest", "unable to parse requirement");
        }
    }
    expect(
        &get(
            &sb,
            "/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%20in%20(a,%20b),!x",
        )
        .await,
        200,
    );
}

#[tokio::test]
async fn dry_run_values_other_than_all_are_422_and_never_write() {
    let sb = sandbox().await;
    running_pod(&sb, "default", "p", "n1", json!({})).await;
    let before = sb.mutations().len();
    let rv = sb.with(|c| c.store.resource_version());
    let cm = json!({"metadata": {"name": "c"}});
    let check = |r: common::Resp, kind: &str| {
        let b = status(
            &r,
            422,
            "Invalid",
            &format!(
                "{kind}.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \"Sometimes\": supported values: \"All\""
            ),
        );
        assert_eq!(b["details"]["kind"], kind);
        assert_eq!(b["details"]["group"], "meta.k8s.io");
        assert_eq!(
            causes(&b),
            vec![("dryRun".to_owned(), "FieldValueNotSupported".to_owned())]
        );
    };
    check(
        post(
            &sb,
            "/api/v1/namespaces/default/configmaps?dryRun=Sometimes",
            &cm,
        )
        .await,
        "CreateOptions",
    );
    check(
        patch(
            &sb,
            "/api/v1/namespaces/default/pods/p?dryRun=Sometimes",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await,
        "PatchOptions",
    );
    let pod = expect(&get(&sb, "/api/v1/namespaces/default/pods/p").await, 200).clone();
    check(
        put(
            &sb,
            "/api/v1/namespaces/default/pods/p?dryRun=Sometimes",
            &pod,
        )
        .await,
        "UpdateOptions",
    );
    check(
        delete(
            &sb,
            "/api/v1/namespaces/default/pods/p?dryRun=Sometimes",
            None,
        )
        .await,
        "DeleteOptions",
    );
    check(
        delete(
            &sb,
            "/api/v1/namespaces/default/pods/p",
            Some(&json!({"dryRun": ["Sometimes"]})),
        )
        .await,
        "DeleteOptions",
    );
    check(
        delete(
            &sb,
            "/api/v1/namespaces/default/pods?dryRun=Sometimes",
            None,
        )
        .await,
        "DeleteOptions",
    );
    check(
        post(
            &sb,
            "/api/v1/namespaces/default/pods/p/eviction?dryRun=Sometimes",
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"}}),
        )
        .await,
        "CreateOptions",
    );
    // Nothing was written: same resourceVersion, the pod untouched, no configmap.
    assert_eq!(sb.with(|c| c.store.resource_version()), rv);
    let after = expect(&get(&sb, "/api/v1/namespaces/default/pods/p").await, 200).clone();
    assert_eq!(after, pod);
    // The log records them as mutating requests that failed.
    let failed: Vec<_> = sb.mutations().into_iter().skip(before).collect();
    assert_eq!(failed.len(), 7);
    assert!(failed.iter().all(|r| r.status == 422));
}

#[tokio::test]
async fn list_options_are_checked() {
    let sb = sandbox().await;
    for path in [
        "/api/v1/pods?watch=true&timeoutSeconds=abc",
        "/api/v1/pods?timeoutSeconds=abc",
        "/api/v1/pods?limit=ten",
    ] {
        status(&get(&sb, path).await, 400, "BadRequest", "invalid syntax");
    }
    let b = status(
        &get(&sb, "/api/v1/pods?resourceVersionMatch=Exact").await,
        422,
        "Invalid",
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
    );
    assert_eq!(
        causes(&b),
        vec![(
            "resourceVersionMatch".to_owned(),
            "FieldValueForbidden".to_owned()
        )]
    );
    status(
        &get(
            &sb,
            "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=0",
        )
        .await,
        422,
        "Invalid",
        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
    );
    status(
        &get(
            &sb,
            "/api/v1/pods?watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan",
        )
        .await,
        422,
        "Invalid",
        "resourceVersionMatch is forbidden for watch",
    );
    // Plain HTTP without a token is the admin here; send_as keeps the import honest.
    let r = send_as(&sb, None, Method::GET, "/api/v1/pods?limit=1", None).await;
    expect(&r, 200);
}

#[tokio::test]
async fn field_validation_strict_warn_and_ignore() {
    let sb = sandbox().await;
    let bogus = || {
        let mut p = pod_obj("default", "p", None, json!({"app": "web"}));
        p["spec"]["bogus"] = json!(1);
        p
    };
    // Strict: 400, nothing stored.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/pods?fieldValidation=Strict",
        &bogus(),
    )
    .await;
    let b = status(
        &r,
        400,
        "BadRequest",
        "strict decoding error: unknown field \"spec.bogus\"",
    );
    assert_eq!(
        b["message"],
        "strict decoding error: unknown field \"spec.bogus\""
    );
    assert_eq!(pod_count(&sb), 0);
    // Several, nested in lists too.
    let mut pod = bogus();
    pod["spec"]["containers"][0]["colour"] = json!("red");
    pod["extra"] = json!({});
    let r = post(
        &sb,
        "/api/v1/namespaces/default/pods?fieldValidation=Strict",
        &pod,
    )
    .await;
    let b = status(&r, 400, "BadRequest", "strict decoding error: ");
    let m = b["message"].as_str().unwrap();
    for f in ["extra", "spec.bogus", "spec.containers[0].colour"] {
        assert!(m.contains(&format!("unknown field \"{f}\"")), "{m}");
    }
    // Warn (and the default): stored, one Warning header per field.
    for q in ["?fieldValidation=Warn", ""] {
        let r = post(
            &sb,
            &format!("/api/v1/namespaces/default/pods{q}"),
            &bogus(),
        )
        .await;
        expect(&r, 201);
        let warnings: Vec<&str> = r
            .headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            warnings,
            vec![r#"299 - "unknown field \"spec.bogus\"""#],
            "{q}"
        );
        expect(
            &delete(
                &sb,
                "/api/v1/namespaces/default/pods/p",
                Some(&json!({"gracePeriodSeconds": 0})),
            )
            .await,
            200,
        );
    }
    // Ignore: no warning.
    let r = post(
        &sb,
        "/api/v1/namespaces/default/pods?fieldValidation=Ignore",
        &bogus(),
    )
    .await;
    expect(&r, 201);
    assert!(r.headers.get("warning").is_none());
    // Patches: the body's fields count; strategic-merge directives are not fields.
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p?fieldValidation=Strict",
        "application/merge-patch+json",
        &json!({"metadata": {"labelz": {"a": "b"}}}),
    )
    .await;
    status(
        &r,
        400,
        "BadRequest",
        "strict decoding error: unknown field \"metadata.labelz\"",
    );
    let r = patch(
        &sb,
        "/api/v1/namespaces/default/pods/p?fieldValidation=Strict",
        "application/strategic-merge-patch+json",
        &json!({"metadata": {"labels": {"v": "2"}}, "spec": {"$setElementOrder/containers": [{"name": "app"}], "containers": [{"name": "app", "image": "nginx:1.28"}]}}),
    )
    .await;
    expect(&r, 200);
    // A full, valid Deployment passes Strict.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"}, "creationTimestamp": null},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"nvidia.com/gpu": 1}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                        "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}},
                    "tolerations": [{"operator": "Exists"}],
                },
            },
        },
        "status": {},
    });
    let r = post(
        &sb,
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
        &deployment,
    )
    .await;
    expect(&r, 201);
    assert!(r.headers.get("warning").is_none());
}
