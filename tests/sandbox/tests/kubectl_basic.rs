//! Real kubectl (every version installed beside `kubectl`, at least 1.27 and 1.33) against the
//! sandbox over HTTPS: output must read as against a real cluster, and state must change.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{expect, get, node_obj, patch, post, running_pod};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
use serde_json::{Value, json};

fn versions() -> Vec<PathBuf> {
    let v = kubectl_versions();
    assert!(!v.is_empty(), "no kubectl on PATH");
    v
}

fn name(bin: &std::path::Path) -> String {
    bin.file_name()
        .unwrap()
        .to_string_lossy()
        .replace('.', "-")
        .replace("kubectl-", "v")
}

/// HTTPS sandbox without controllers (tests set every state themselves; objects are created
/// in the store directly because the raw-HTTP helpers speak plain HTTP only).
async fn https_sandbox() -> Sandbox {
    Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap()
}

fn create(sb: &Sandbox, res: &str, obj: Value) {
    let r = opsteps_sandbox::store::res(
        if res == "nodes" || res == "pods" || res == "namespaces" {
            ""
        } else {
            "apps"
        },
        res,
    );
    sb.with(|c| {
        let now = c.now();
        c.store.create(r, obj, &now).unwrap();
    });
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn get_nodes_prints_status_roles_version() {
    let sb = https_sandbox().await;
    create(
        &sb,
        "nodes",
        node_obj("ip-10-0-0-1", json!({"node-role.kubernetes.io/worker": ""})),
    );
    let mut cordoned = node_obj("ip-10-0-0-2", json!({}));
    cordoned["spec"]["unschedulable"] = json!(true);
    create(&sb, "nodes", cordoned);
    for bin in versions() {
        let out = stdout_ok(
            &kubectl(&bin, sb.kubeconfig_path(), &["get", "nodes"]).await,
            "get nodes",
        );
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            "{}: {out}",
            bin.display()
        );
        assert_eq!(lines[1][..3], ["ip-10-0-0-1", "Ready", "worker"]);
        assert_eq!(lines[1][4], "v1.33.4-eks-3025e55");
        assert_eq!(
            lines[2][..3],
            ["ip-10-0-0-2", "Ready,SchedulingDisabled", "<none>"]
        );
        let wide = stdout_ok(
            &kubectl(&bin, sb.kubeconfig_path(), &["get", "nodes", "-o", "wide"]).await,
            "get nodes -o wide",
        );
        assert!(
            wide.lines().next().unwrap().contains("INTERNAL-IP"),
            "{wide}"
        );
        assert!(wide.contains("10.0.0.1"), "{wide}");
    }
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn get_pods_all_namespaces_wide_and_json() {
    let sb = Sandbox::start(Options::default().controllers(false).tls(false))
        .await
        .unwrap();
    running_pod(&sb, "web", "web-0", "ip-10-0-0-1", json!({"app": "web"})).await;
    running_pod(&sb, "db", "db-0", "ip-10-0-0-2", json!({"app": "db"})).await;
    let r = post(
        &sb,
        "/api/v1/namespaces/web/pods",
        &common::pod_obj("web", "pending-0", None, json!({})),
    )
    .await;
    expect(&r, 201);
    for bin in versions() {
        let out = stdout_ok(
            &kubectl(
                &bin,
                sb.kubeconfig_path(),
                &["get", "pods", "-A", "-o", "wide"],
            )
            .await,
            "get pods -A -o wide",
        );
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED",
                "NODE",
                "READINESS",
                "GATES"
            ],
            "{}: {out}",
            bin.display()
        );
        let db = lines.iter().find(|l| l[1] == "db-0").expect("db-0 listed");
        assert_eq!(db[..5], ["db", "db-0", "1/1", "Running", "0"]);
        assert_eq!(db[6..8], ["10.1.0.5", "ip-10-0-0-2"]);
        let pending = lines
            .iter()
            .find(|l| l[1] == "pending-0")
            .expect("pending listed");
        assert_eq!(pending[..4], ["web", "pending-0", "0/1", "Pending"]);
        assert_eq!(lines.len(), 4);

        let json_out = stdout_ok(
            &kubectl(
                &bin,
                sb.kubeconfig_path(),
                &["get", "pods", "-n", "web", "-o", "json"],
            )
            .await,
            "get -o json",
        );
        let v: Value = serde_json::from_str(&json_out).expect("kubectl -o json is JSON");
        assert_eq!(v["kind"], "List");
        let names: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["pending-0", "web-0"]);
        assert_eq!(v["items"][1]["status"]["phase"], "Running");
        assert_eq!(v["items"][1]["kind"], "Pod");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn cordon_and_uncordon_change_the_node() {
    let sb = https_sandbox().await;
    create(&sb, "nodes", node_obj("ip-10-0-0-1", json!({})));
    let unschedulable = |sb: &Sandbox| {
        let n = sb.with(|c| {
            c.store
                .get(
                    opsteps_sandbox::resources::well_known::nodes(),
                    "",
                    "ip-10-0-0-1",
                )
                .unwrap()
        });
        n.pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    for bin in versions() {
        let out = stdout_ok(
            &kubectl(&bin, sb.kubeconfig_path(), &["cordon", "ip-10-0-0-1"]).await,
            "cordon",
        );
        assert_eq!(out.trim(), "node/ip-10-0-0-1 cordoned", "{}", bin.display());
        assert!(unschedulable(&sb));
        let out = stdout_ok(
            &kubectl(&bin, sb.kubeconfig_path(), &["cordon", "ip-10-0-0-1"]).await,
            "cordon again",
        );
        assert_eq!(out.trim(), "node/ip-10-0-0-1 already cordoned");
        let out = stdout_ok(
            &kubectl(&bin, sb.kubeconfig_path(), &["uncordon", "ip-10-0-0-1"]).await,
            "uncordon",
        );
        assert_eq!(out.trim(), "node/ip-10-0-0-1 uncordoned");
        assert!(!unschedulable(&sb));
    }
    let log = sb.requests();
    assert!(
        log.iter()
            .all(|r| r.user == "system:admin" && r.user_agent.starts_with("kubectl")),
        "identity and user agent logged"
    );
    let patches = sb
        .mutations()
        .into_iter()
        .filter(|r| r.verb == "patch" && r.resource == "nodes")
        .count();
    assert_eq!(
        patches,
        2 * versions().len(),
        "one PATCH per cordon/uncordon that changed the node"
    );
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn wait_for_delete_returns_when_the_pod_goes() {
    let sb = Sandbox::start(Options::default().controllers(false).tls(false))
        .await
        .unwrap();
    for (i, bin) in versions().into_iter().enumerate() {
        let pod = format!("victim-{}", name(&bin));
        running_pod(
            &sb,
            "default",
            &pod,
            "ip-10-0-0-1",
            json!({"i": i.to_string()}),
        )
        .await;
        let kubeconfig = sb.kubeconfig_path().to_path_buf();
        let target = format!("pod/{pod}");
        let waiter = tokio::spawn(async move {
            kubectl(
                &bin,
                &kubeconfig,
                &["wait", "--for=delete", &target, "--timeout=20s"],
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!waiter.is_finished(), "wait returned while the pod existed");
        // A graceful delete first: the pod stays (Terminating), so wait must keep waiting.
        let r = common::delete(&sb, &format!("/api/v1/namespaces/default/pods/{pod}"), None).await;
        assert!(expect(&r, 200)["metadata"]["deletionTimestamp"].is_string());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiter.is_finished(),
            "wait returned while the pod was only terminating"
        );
        let r = common::delete(
            &sb,
            &format!("/api/v1/namespaces/default/pods/{pod}?gracePeriodSeconds=0"),
            None,
        )
        .await;
        expect(&r, 200);
        let Ok(out) = tokio::time::timeout(Duration::from_secs(25), waiter).await else {
            panic!(
                "wait did not return; requests: {:#?}",
                sb.requests()
                    .iter()
                    .map(|r| format!("{} {}?{} {}", r.method, r.path, r.query, r.status))
                    .collect::<Vec<_>>()
            );
        };
        let out = out.unwrap();
        let text = stdout_ok(&out, "wait --for=delete");
        assert!(text.contains(&format!("pod/{pod} condition met")), "{text}");
        assert_eq!(
            get(&sb, &format!("/api/v1/namespaces/default/pods/{pod}"))
                .await
                .status,
            404
        );
    }
    let _ = patch;
}

/// The same over HTTPS (HTTP/2 watch), with kubectl doing the deletes too.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn wait_for_delete_over_https_with_kubectl_delete() {
    let sb = https_sandbox().await;
    for bin in versions() {
        let pod = format!("victim-{}", name(&bin));
        let mut obj = common::pod_obj("default", &pod, Some("ip-10-0-0-1"), json!({}));
        obj["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        sb.with(|c| {
            let now = c.now();
            c.store
                .create(opsteps_sandbox::resources::well_known::pods(), obj, &now)
                .unwrap();
        });
        let (kc, b2, target) = (
            sb.kubeconfig_path().to_path_buf(),
            bin.clone(),
            format!("pod/{pod}"),
        );
        let waiter = tokio::spawn(async move {
            kubectl(
                &b2,
                &kc,
                &["wait", "--for=delete", &target, "--timeout=20s"],
            )
            .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &["delete", "pod", &pod, "--wait=false"],
        )
        .await;
        assert_eq!(
            stdout_ok(&out, "delete").trim(),
            format!("pod \"{pod}\" deleted")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished(), "pod is only terminating");
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &["delete", "pod", &pod, "--grace-period=0", "--force"],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = tokio::time::timeout(Duration::from_secs(15), waiter)
            .await
            .expect("wait returns")
            .unwrap();
        assert!(stdout_ok(&out, "wait").contains("condition met"));
        assert!(
            sb.with(|c| c.store.get(
                opsteps_sandbox::resources::well_known::pods(),
                "default",
                &pod
            ))
            .is_none()
        );
    }
}

/// A dry-run identity: `--dry-run=server` passes; a real write is refused and recorded.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn dry_run_identity_with_kubectl() {
    let sb = https_sandbox().await;
    create(&sb, "nodes", node_obj("ip-10-0-0-1", json!({})));
    let kc = sb.kubeconfig_for("opsteps-plan", true);
    let bin = versions().pop().unwrap();
    let out = kubectl(&bin, &kc, &["cordon", "ip-10-0-0-1", "--dry-run=server"]).await;
    assert!(stdout_ok(&out, "cordon --dry-run=server").contains("cordoned (server dry run)"));
    sb.assert_invariants();
    let out = kubectl(&bin, &kc, &["cordon", "ip-10-0-0-1"]).await;
    // (kubectl cordon reports the error on stderr; its exit code varies by version.)
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dry-run mode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = sb.invariants();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].user, "opsteps-plan");
    let node = sb.with(|c| {
        c.store
            .get(
                opsteps_sandbox::resources::well_known::nodes(),
                "",
                "ip-10-0-0-1",
            )
            .unwrap()
    });
    assert!(
        node.pointer("/spec/unschedulable").is_none(),
        "nothing written"
    );
    let reqs: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.user == "opsteps-plan" && r.verb == "patch")
        .collect();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].dry_run && reqs[0].status == 200);
    assert!(!reqs[1].dry_run && reqs[1].status == 400);
}

/// `kubectl drain --dry-run=server` from a dry-run identity: everything checked, nothing written.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn drain_server_dry_run_writes_nothing() {
    let sb = https_sandbox().await;
    create(&sb, "nodes", node_obj("ip-10-0-0-1", json!({})));
    for i in 0..2 {
        let mut obj = common::pod_obj(
            "default",
            &format!("web-{i}"),
            Some("ip-10-0-0-1"),
            json!({"app": "web"}),
        );
        obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1", "controller": true}]);
        obj["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        sb.with(|c| {
            let now = c.now();
            c.store
                .create(opsteps_sandbox::resources::well_known::pods(), obj, &now)
                .unwrap();
        });
    }
    let kc = sb.kubeconfig_for("opsteps-plan", true);
    for bin in versions() {
        let rv = sb.with(|c| c.store.resource_version());
        let out = kubectl(
            &bin,
            &kc,
            &[
                "drain",
                "ip-10-0-0-1",
                "--dry-run=server",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=20s",
            ],
        )
        .await;
        let text = stdout_ok(&out, "drain --dry-run=server");
        assert!(
            text.contains("cordoned (server dry run)"),
            "{}: {text}",
            bin.display()
        );
        assert!(
            text.contains("evicting pod default/web-0 (server dry run)")
                || text.contains("pod/web-0 evicted (server dry run)"),
            "{text}"
        );
        assert_eq!(
            sb.with(|c| c.store.resource_version()),
            rv,
            "{}: nothing written",
            bin.display()
        );
    }
    sb.assert_invariants();
    let evictions = sb
        .requests()
        .into_iter()
        .filter(|r| r.verb == "evict")
        .collect::<Vec<_>>();
    assert_eq!(evictions.len(), 2 * versions().len());
    assert!(evictions.iter().all(|r| r.dry_run && r.status == 201));
}

/// `create -f`, `apply -f` (client- and server-side) and `delete -f`, with kubectl's own
/// validation: 1.29+ read the OpenAPI v3 documents to find `fieldValidation`, 1.27 and 1.28
/// also load the protobuf OpenAPI v2 (the sandbox derives it from the v3 documents).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn create_apply_and_delete_from_files() {
    let sb = https_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    for bin in versions() {
        let file = dir.path().join(format!("cm-{}.yaml", name(&bin)));
        let write = |v: &str| {
            std::fs::write(
                &file,
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"{v}\"\n"
                ),
            )
            .unwrap();
        };
        let f = file.to_str().unwrap();
        let validate = "--validate=strict";
        write("1");
        let out = kubectl(&bin, sb.kubeconfig_path(), &["create", "-f", f, validate]).await;
        assert_eq!(
            stdout_ok(&out, "create -f").trim(),
            "configmap/cfg created",
            "{}",
            bin.display()
        );
        write("2");
        let out = kubectl(&bin, sb.kubeconfig_path(), &["apply", "-f", f, validate]).await;
        assert!(stdout_ok(&out, "apply -f").contains("configmap/cfg configured"));
        write("3");
        let out = kubectl(
            &bin,
            sb.kubeconfig_path(),
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                f,
                validate,
            ],
        )
        .await;
        assert!(stdout_ok(&out, "apply --server-side").contains("serverside-applied"));
        let data = sb.with(|c| {
            c.store
                .get(
                    opsteps_sandbox::store::res("", "configmaps"),
                    "default",
                    "cfg",
                )
                .unwrap()
        });
        assert_eq!(data["data"]["a"], "3");
        let out = kubectl(&bin, sb.kubeconfig_path(), &["delete", "-f", f]).await;
        assert_eq!(
            stdout_ok(&out, "delete -f").trim(),
            "configmap \"cfg\" deleted"
        );
    }
}
