//! Real kubectl, every version on the machine, on what kubectl 1.32+ sends as protobuf (the
//! `create` generators, `run`, and the DeleteOptions of `drain --disable-eviction`) and on the
//! OpenAPI documents (`explain`): protobuf and JSON clients must leave the same objects.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use std::path::{Path, PathBuf};

use common::node_obj;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
use serde_json::{Value, json};

fn versions() -> Vec<PathBuf> {
    let v = kubectl_versions();
    assert!(!v.is_empty(), "no kubectl on PATH");
    v
}

/// `kubectl.1.33` → `v1-33`.
fn tag(bin: &Path) -> String {
    bin.file_name()
        .unwrap()
        .to_string_lossy()
        .replace("kubectl.", "v")
        .replace('.', "-")
}

async fn sandbox() -> Sandbox {
    Sandbox::start(Options::default().tls(false).controllers(false))
        .await
        .unwrap()
}

fn stored(sb: &Sandbox, group: &str, plural: &str, ns: &str, name: &str) -> Value {
    sb.with(|c| {
        let v = c
            .store
            .get(opsteps_sandbox::store::res(group, plural), ns, name)
            .unwrap_or_else(|| panic!("{plural} {ns}/{name} not stored"));
        (*v).clone()
    })
}

/// The object without what differs between two creations (identity, times, status), with the
/// per-version names replaced.
fn normalized(mut v: Value, tag: &str) -> String {
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "namespace",
        "name",
        "managedFields",
    ] {
        v["metadata"].as_object_mut().unwrap().remove(k);
    }
    v.as_object_mut().unwrap().remove("status");
    serde_json::to_string_pretty(&v)
        .unwrap()
        .replace(tag, "TAG")
}

/// What a generator creates: group, plural, name.
type Target = (&'static str, &'static str, String);

/// The generators, each with the resource it creates.
fn generators(ns: &str, tag: &str) -> Vec<(Vec<String>, Target)> {
    let n = |s: &str| s.to_owned();
    let cmd = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain(["-n".to_owned(), ns.to_owned()])
            .collect()
    };
    vec![
        (
            cmd(&[
                "create",
                "configmap",
                "cfg",
                "--from-literal=a=1",
                "--from-literal=b=two",
            ]),
            ("", "configmaps", n("cfg")),
        ),
        (
            cmd(&[
                "create",
                "secret",
                "generic",
                "creds",
                "--from-literal=password=s3cr3t",
            ]),
            ("", "secrets", n("creds")),
        ),
        (
            cmd(&[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.27",
                "--replicas=0",
                "--port=80",
            ]),
            ("apps", "deployments", n("web")),
        ),
        (
            cmd(&["create", "service", "clusterip", "web", "--tcp=80:8080"]),
            ("", "services", n("web")),
        ),
        (
            cmd(&["create", "serviceaccount", "robot"]),
            ("", "serviceaccounts", n("robot")),
        ),
        (
            cmd(&[
                "create",
                "poddisruptionbudget",
                "web",
                "--selector=app=web",
                "--min-available=0",
            ]),
            ("policy", "poddisruptionbudgets", n("web")),
        ),
        (
            cmd(&[
                "create",
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods",
            ]),
            ("rbac.authorization.k8s.io", "roles", n("reader")),
        ),
        (
            cmd(&[
                "create",
                "rolebinding",
                "reader",
                "--role=reader",
                &format!("--serviceaccount={ns}:robot"),
            ]),
            ("rbac.authorization.k8s.io", "rolebindings", n("reader")),
        ),
        (
            cmd(&[
                "create",
                "clusterrole",
                &format!("nodes-{tag}"),
                "--verb=get",
                "--resource=nodes",
            ]),
            (
                "rbac.authorization.k8s.io",
                "clusterroles",
                format!("nodes-{tag}"),
            ),
        ),
        (
            cmd(&[
                "create",
                "priorityclass",
                &format!("low-{tag}"),
                "--value=0",
                "--description=test",
            ]),
            ("scheduling.k8s.io", "priorityclasses", format!("low-{tag}")),
        ),
        (
            cmd(&["create", "job", "once", "--image=busybox:1.36"]),
            ("batch", "jobs", n("once")),
        ),
        (
            cmd(&[
                "run",
                "one",
                "--image=nginx:1.27",
                "--labels=app=one",
                "--env=A=b",
                "--port=8080",
                "--restart=Never",
            ]),
            ("", "pods", n("one")),
        ),
    ]
    .into_iter()
    // Only what the sandbox serves (Secrets and Jobs come with its next API groups).
    .filter(|(_, (group, plural, _))| opsteps_sandbox::resources::find(group, plural).is_some())
    .collect()
}

/// kubectl 1.32+ sends the generators' objects as protobuf, older ones as JSON: every version
/// must create the same objects, with Go's pointer zeros (`replicas: 0`, `minAvailable: 0`)
/// kept and its empty non-pointer fields dropped.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn create_generators_store_the_same_objects_on_every_version() {
    let sb = sandbox().await;
    let mut reference: Option<(String, Vec<String>)> = None;
    for bin in versions() {
        let tag = tag(&bin);
        let ns = format!("gen-{tag}");
        let out = kubectl(&bin, sb.kubeconfig_path(), &["create", "namespace", &ns]).await;
        assert_eq!(
            stdout_ok(&out, "create namespace").trim(),
            format!("namespace/{ns} created"),
            "{}",
            bin.display()
        );
        let mut objects = vec![normalized(stored(&sb, "", "namespaces", "", &ns), &tag)];
        for (args, (group, plural, name)) in generators(&ns, &tag) {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kubectl(&bin, sb.kubeconfig_path(), &refs).await;
            let text = stdout_ok(&out, &args.join(" "));
            assert!(
                text.trim().ends_with(&format!("{name} created")),
                "{}: {}: {text}",
                bin.display(),
                args.join(" ")
            );
            let scope = if matches!(plural, "clusterroles" | "priorityclasses") {
                ""
            } else {
                ns.as_str()
            };
            objects.push(normalized(stored(&sb, group, plural, scope, &name), &tag));
        }

        // What the JSON and protobuf paths must both keep.
        if opsteps_sandbox::resources::find("", "secrets").is_some() {
            let secret = stored(&sb, "", "secrets", &ns, "creds");
            assert_eq!(secret["data"]["password"], "czNjcjN0", "base64 of s3cr3t");
        }
        let deploy = stored(&sb, "apps", "deployments", &ns, "web");
        assert_eq!(deploy["spec"]["replicas"], 0, "{deploy:#}");
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80}])
        );
        assert!(
            deploy["metadata"].get("generateName").is_none(),
            "{deploy:#}"
        );
        let svc = stored(&sb, "", "services", &ns, "web");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        let pdb = stored(&sb, "policy", "poddisruptionbudgets", &ns, "web");
        assert_eq!(pdb["spec"]["minAvailable"], 0, "{pdb:#}");
        let pod = stored(&sb, "", "pods", &ns, "one");
        assert_eq!(
            pod["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "b"}])
        );
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let pc = stored(
            &sb,
            "scheduling.k8s.io",
            "priorityclasses",
            "",
            &format!("low-{tag}"),
        );
        assert_eq!(pc["value"], 0, "{pc:#}");

        match &reference {
            None => reference = Some((bin.display().to_string(), objects)),
            Some((first, expected)) => {
                for (want, got) in expected.iter().zip(&objects) {
                    assert_eq!(
                        got,
                        want,
                        "{} stored a different object than {first}",
                        bin.display()
                    );
                }
            }
        }
    }
    let creates: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.verb == "create")
        .collect();
    let per_version = 1 + generators("x", "x").len();
    assert_eq!(creates.len(), versions().len() * per_version);
    assert!(creates.iter().all(|r| r.status == 201), "{creates:?}");
    sb.assert_invariants();
}

/// `kubectl explain` reads the OpenAPI documents: v2 (protobuf) on 1.27/1.28, v3 after.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn explain_reads_the_served_schemas_on_every_version() {
    let sb = sandbox().await;
    for bin in versions() {
        let out = kubectl(&bin, sb.kubeconfig_path(), &["explain", "pod.spec"]).await;
        let text = stdout_ok(&out, "explain pod.spec");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(lines[0], "KIND:       Pod", "{}: {text}", bin.display());
        assert_eq!(lines[1], "VERSION:    v1");
        assert!(lines.contains(&"FIELD: spec <PodSpec>"), "{text}");
        assert!(
            lines.contains(&"containers\t<[]Container> -required-"),
            "{}: {text}",
            bin.display()
        );
        assert!(
            lines.contains(&"nodeSelector\t<map[string]string>"),
            "{text}"
        );
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"],
        )
        .await;
        let text = stdout_ok(&out, "explain maxSurge");
        assert!(text.contains("GROUP:      apps"), "{text}");
        assert!(
            text.contains("FIELD: maxSurge <IntOrString>"),
            "{}: {text}",
            bin.display()
        );
    }
}

/// `kubectl drain --disable-eviction` deletes with DeleteOptions (protobuf on 1.32+). Without a
/// kubelet only `gracePeriodSeconds: 0` removes a running pod at once, so the drain finishes
/// only if the options were read.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn drain_disable_eviction_deletes_with_the_sent_options() {
    for bin in versions() {
        let sb = sandbox().await;
        sb.with(|c| {
            let now = c.now();
            c.store
                .create(well_known::nodes(), node_obj("ip-10-0-0-1", json!({})), &now)
                .unwrap();
            for i in 0..2 {
                let mut obj = common::pod_obj(
                    "default",
                    &format!("web-{i}"),
                    Some("ip-10-0-0-1"),
                    json!({"app": "web"}),
                );
                obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1", "controller": true}]);
                obj["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
                c.store.create(well_known::pods(), obj, &now).unwrap();
            }
        });
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &[
                "drain",
                "ip-10-0-0-1",
                "--disable-eviction",
                "--ignore-daemonsets",
                "--grace-period=0",
                "--timeout=30s",
            ],
        )
        .await;
        let text = stdout_ok(&out, "drain --disable-eviction");
        assert!(
            text.contains("pod/web-0 deleted"),
            "{}: {text}",
            bin.display()
        );
        assert!(text.contains("node/ip-10-0-0-1 drained"), "{text}");
        let left = sb.with(|c| c.store.list(well_known::pods(), None).count());
        assert_eq!(left, 0, "{}", bin.display());
        let reqs = sb.requests();
        let deletes: Vec<_> = reqs.iter().filter(|r| r.verb == "delete").collect();
        assert_eq!(deletes.len(), 2, "{}: {deletes:?}", bin.display());
        assert!(deletes.iter().all(|r| r.status == 200 && !r.dry_run));
        assert!(!reqs.iter().any(|r| r.verb == "evict"));
        sb.assert_invariants();
    }
}

/// `apply --server-side` then a client-side `apply`: as on a cluster, the server-side apply
/// recorded the last-applied configuration (field manager `kubectl`), so the client-side apply
/// neither warns about a missing annotation nor keeps a key the file no longer has.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn server_side_then_client_side_apply() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    for bin in versions() {
        let name = format!("ssa-{}", tag(&bin));
        let file = dir.path().join(format!("{name}.yaml"));
        let write = |data: &str| {
            std::fs::write(
                &file,
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}"
                ),
            )
            .unwrap();
        };
        let f = file.to_str().unwrap();
        write("  a: \"1\"\n  b: \"2\"\n");
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &["apply", "--server-side", "-f", f],
        )
        .await;
        assert_eq!(
            stdout_ok(&out, "apply --server-side").trim(),
            format!("configmap/{name} serverside-applied"),
            "{}",
            bin.display()
        );
        let cm = stored(&sb, "", "configmaps", "default", &name);
        let last =
            cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no last-applied annotation: {cm:#}", bin.display()))
                .to_owned();
        let last: Value = serde_json::from_str(&last).unwrap();
        assert_eq!(last["data"], json!({"a": "1", "b": "2"}));

        write("  a: \"1\"\n");
        let out = kubectl(&bin, sb.kubeconfig_path(), &["apply", "-f", f]).await;
        assert_eq!(
            stdout_ok(&out, "apply").trim(),
            format!("configmap/{name} configured")
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("missing the kubectl.kubernetes.io/last-applied-configuration"),
            "{}: {stderr}",
            bin.display()
        );
        let cm = stored(&sb, "", "configmaps", "default", &name);
        assert_eq!(cm["data"], json!({"a": "1"}), "{}: b pruned", bin.display());
    }
}

/// managedFields as on a cluster: `get` hides them unless `--show-managed-fields`; each of
/// kubectl's commands writes as its own field manager (`kubectl-create`, `kubectl-label`,
/// `kubectl-client-side-apply`, and `kubectl` applying server-side).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn get_shows_managed_fields_only_when_asked() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    for bin in versions() {
        let run = async |args: &[&str]| {
            let out = kubectl(&bin, sb.kubeconfig_path(), args).await;
            stdout_ok(&out, &args.join(" "))
        };
        let name = format!("mf-{}", tag(&bin));
        run(&["create", "configmap", &name, "--from-literal=k=v"]).await;
        run(&["label", "configmap", &name, "x=y"]).await;
        let yaml = run(&["get", "configmap", &name, "-o", "yaml"]).await;
        assert!(!yaml.contains("managedFields"), "{}: {yaml}", bin.display());
        assert!(yaml.contains("k: v"), "{yaml}");
        let shown = run(&[
            "get",
            "configmap",
            &name,
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
        assert!(
            shown.contains("managedFields:"),
            "{}: {shown}",
            bin.display()
        );
        let json: Value = serde_json::from_str(
            &run(&[
                "get",
                "configmap",
                &name,
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .await,
        )
        .unwrap();
        let mf = json["metadata"]["managedFields"].as_array().unwrap();
        let entry = |m: &str| {
            mf.iter()
                .find(|e| e["manager"] == m)
                .unwrap_or_else(|| panic!("{}: no {m} in {mf:#?}", bin.display()))
        };
        let created = entry("kubectl-create");
        assert_eq!(created["operation"], "Update");
        assert_eq!(created["apiVersion"], "v1");
        assert_eq!(created["fieldsType"], "FieldsV1");
        assert_eq!(created["fieldsV1"], json!({"f:data": {"f:k": {}}}));
        assert_eq!(
            entry("kubectl-label")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:x": {}}}})
        );

        let file = dir.path().join(format!("{name}.yaml"));
        let f = file.to_str().unwrap();
        for (manager, op, args) in [
            (
                "kubectl-client-side-apply",
                "Update",
                vec!["apply", "-f", f],
            ),
            ("kubectl", "Apply", vec!["apply", "--server-side", "-f", f]),
        ] {
            let applied = format!("{name}-{op}").to_lowercase();
            std::fs::write(
                &file,
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {applied}\ndata:\n  a: \"1\"\n"),
            )
            .unwrap();
            run(&args).await;
            let cm = stored(&sb, "", "configmaps", "default", &applied);
            let mf = &cm["metadata"]["managedFields"];
            assert_eq!(mf[0]["manager"], manager, "{}: {cm:#}", bin.display());
            assert_eq!(mf[0]["operation"], op);
        }
    }
}
