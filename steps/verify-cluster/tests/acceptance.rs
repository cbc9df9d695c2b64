//! The issue's acceptance runs: a pre-upgrade run names all five blockers; a ServiceAccount
//! lacking one permission still finishes with that check skipped; the checks that need two
//! sandboxes, a running update or an index file; and the report's JSON and Markdown as reviewed
//! snapshots. Every run is read-only.

use crate::common;

use common::{assert_read_only, assert_read_only_since, aws, marks, run, run_as, run_with, start};
use opsteps::exit::ExitStatus;

/// A 1.32 cluster before its upgrade to 1.33, with five blockers.
const FIVE: &str = r#"
cluster: {name: t, version: "1.32"}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
nodeGroups:
  - {name: workers, count: 3, instanceType: m5.2xlarge, version: v1.32.3-eks-473151a, zones: [us-east-1a, us-east-1b, us-east-1c]}
nodes:
  - {name: legacy-1, nodeGroup: workers, version: v1.29.15-eks-473151a, zone: us-east-1a}
eks:
  addons:
    - {name: vpc-cni, version: v1.18.6-eksbuild.1}
    - {name: coredns}
ec2:
  subnets:
    - {subnetId: subnet-full, availabilityZone: us-east-1a, cidrBlock: 10.1.0.0/24, availableIpAddressCount: 2}
    - {subnetId: subnet-ok, availabilityZone: us-east-1b, cidrBlock: 10.1.1.0/24, availableIpAddressCount: 180}
apiServer:
  requestedDeprecatedApis:
    - {group: flowcontrol.apiserver.k8s.io, version: v1beta3, resource: flowschemas, removedRelease: "1.32"}
helmReleases:
  - {name: payments, namespace: shop, chart: payments, version: 2.1.0, status: pending-upgrade, revision: 2, updated: 2h}
  - name: apf
    namespace: kube-system
    chart: apf-config
    version: 0.3.0
    manifest: "---\napiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata:\n  name: batch\n"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_upgrade_names_all_five_blockers() {
    let sb = start(FIVE).await;
    let out = run(&sb, &["--profile", "pre-upgrade"]).await;
    assert_eq!(out.status, ExitStatus::Failed, "{:#}", out.result);
    assert_eq!(out.result["targetKubernetes"], "1.33");
    for (check, object) in [
        (
            "apis.deprecated-requests",
            "APIResource flowschemas.flowcontrol.apiserver.k8s.io/v1beta3",
        ),
        ("helm.removed-apis", "HelmRelease kube-system/apf"),
        ("addons.compatibility", "Addon vpc-cni"),
        ("nodes.kubelet-skew", "Node legacy-1"),
        ("helm.stuck", "HelmRelease shop/payments"),
        ("cluster.subnet-ips", "Subnet subnet-full"),
    ] {
        assert_eq!(out.check_status(check), "fail", "{check}: {:#}", out.result);
        assert!(
            out.objects(check).contains(object),
            "{check} names {:?}",
            out.objects(check)
        );
    }
    assert!(
        !out.objects("cluster.subnet-ips")
            .contains("Subnet subnet-ok")
    );
    let md = out.output("report.md");
    for want in [
        "Node legacy-1",
        "Addon vpc-cni",
        "HelmRelease shop/payments",
        "Subnet subnet-full",
        "flowschemas",
    ] {
        assert!(md.contains(want), "report.md lacks {want}:\n{md}");
    }
    let file: serde_json::Value = serde_json::from_str(&out.output("report.json")).unwrap();
    assert_eq!(file["schemaVersion"], "opsteps.io/verify-cluster/v1");
    assert_eq!(
        file["findings"], out.result["findings"],
        "stdout and report.json agree below 100 findings"
    );
    assert_read_only(&sb);
    insta::assert_json_snapshot!("five_blockers_result", out.result);
    insta::assert_snapshot!("five_blockers_report_md", md);
}

/// The verify-cluster role from the README, less `list secrets`.
const RBAC: &str = r#"
cluster: {name: t, version: "1.33"}
clock: {start: 2026-11-26T10:00:00Z, scale: 60}
rbac: true
nodeGroups:
  - {name: workers, count: 2}
helmReleases:
  - {name: payments, namespace: shop, chart: payments, version: 2.1.0, status: failed, revision: 2}
objects:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: verify-cluster}
    rules:
      - {apiGroups: [""], resources: [nodes, pods], verbs: [list]}
      - {apiGroups: [apps], resources: [deployments, statefulsets, daemonsets], verbs: [list]}
      - {apiGroups: [policy], resources: [poddisruptionbudgets], verbs: [list]}
      - {apiGroups: [autoscaling], resources: [horizontalpodautoscalers], verbs: [list]}
      - {apiGroups: [rbac.authorization.k8s.io], resources: [roles, clusterroles, rolebindings, clusterrolebindings], verbs: [list]}
      - {nonResourceURLs: [/version, /metrics], verbs: [get]}
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: verify-cluster}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: verify-cluster}
    subjects: [{kind: ServiceAccount, name: verify-cluster, namespace: ops}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_skips_its_check_and_the_rest_run() {
    let sb = start(RBAC).await;
    let kc = sb.kubeconfig_for("system:serviceaccount:ops:verify-cluster", false);
    let out = run_as(&sb, &kc, Some("t"), &["--profile", "health"]).await;
    let helm = out.check("helm.stuck");
    assert_eq!(helm["status"], "skipped", "{helm:#}");
    let reason = helm["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot list resource \"secrets\""),
        "{reason}"
    );
    for id in [
        "nodes.ready",
        "workloads.rollout",
        "pdb.blocking",
        "access.exec",
        "addons.health",
    ] {
        assert_eq!(out.check_status(id), "pass", "{id}: {:#}", out.result);
    }
    // The failed release is not seen, so nothing fails: the run finishes with exit 0.
    assert_eq!(out.status, ExitStatus::Done, "{:#}", out.result);
    assert!(out.output("report.md").contains("cannot list resource"));
    assert!(
        sb.requests()
            .iter()
            .any(|r| r.resource == "secrets" && r.status == 403)
    );
    assert_read_only(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_version_compares_the_api_server_with_eks() {
    let here =
        start("cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 1}]\n").await;
    let elsewhere =
        start("cluster: {name: t, version: \"1.32\"}\nnodeGroups: [{name: w, count: 1}]\n").await;
    // The kubeconfig and the EKS name point at different clusters.
    let out = run_with(
        here.kubeconfig_path(),
        Some(aws(&elsewhere, "t")),
        &["--check", "cluster.version"],
    )
    .await;
    assert_eq!(
        out.check_status("cluster.version"),
        "fail",
        "{:#}",
        out.result
    );
    assert!(out.objects("cluster.version").contains("EksCluster t"));
    assert_eq!(out.status, ExitStatus::Failed);
    let out = run(&here, &["--check", "cluster.version"]).await;
    assert_eq!(
        out.check_status("cluster.version"),
        "pass",
        "{:#}",
        out.result
    );
    assert_read_only(&here);
    assert_read_only(&elsewhere);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_in_progress_fails_cluster_updates() {
    let sb = start("cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 1}]\neks: {timings: {clusterUpdate: 100h}}\n").await;
    let before = run(&sb, &["--check", "cluster.updates"]).await;
    assert_eq!(before.check_status("cluster.updates"), "pass");
    let id = aws(&sb, "t")
        .eks
        .update_cluster_version()
        .name("t")
        .version("1.34")
        .send()
        .await
        .unwrap()
        .update
        .unwrap()
        .id
        .unwrap();
    let since = marks(&sb);
    let out = run(&sb, &["--check", "cluster.updates"]).await;
    assert_eq!(
        out.check_status("cluster.updates"),
        "fail",
        "{:#}",
        out.result
    );
    assert!(
        out.objects("cluster.updates")
            .contains(&format!("EksUpdate {id}"))
    );
    assert_eq!(out.status, ExitStatus::Failed);
    assert_read_only_since(&sb, since);
}

/// A chart repository index: ingress-nginx has a minor update, cert-manager a major one.
const INDEX: &str = "apiVersion: v1\nentries:\n  ingress-nginx:\n    - {version: 4.11.2, created: \"2026-10-01T00:00:00Z\", appVersion: 1.11.2}\n    - {version: 4.10.1, created: \"2026-08-01T00:00:00Z\"}\n    - {version: 4.10.0, created: \"2026-06-01T00:00:00Z\"}\n    - {version: 5.0.0-rc.1, created: \"2026-11-01T00:00:00Z\"}\n  cert-manager:\n    - {version: 2.0.0, created: \"2026-11-20T00:00:00Z\"}\n    - {version: 1.15.3}\n  payments:\n    - {version: 2.1.0}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_outdated_reads_the_chart_index_like_a_dependency_dashboard() {
    let sb = start("cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 1}]\nhelmReleases:\n  - {name: ingress, namespace: ingress-nginx, chart: ingress-nginx, version: 4.10.0}\n  - {name: certs, namespace: cert-manager, chart: cert-manager, version: 1.15.3}\n  - {name: payments, namespace: shop, chart: payments, version: 2.1.0}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.yaml");
    std::fs::write(&index, INDEX).unwrap();
    let spec = format!("stable={}", index.display());
    let out = run(&sb, &["--check", "helm.outdated", "--helm-index", &spec]).await;
    let f = out.findings("helm.outdated");
    assert_eq!(f.len(), 2, "{f:#?}");
    let by = |name: &str| {
        f.iter()
            .find(|x| x["objects"][0]["name"] == name)
            .unwrap_or_else(|| panic!("no finding for {name}"))
    };
    assert_eq!(by("ingress")["severity"], "info");
    assert!(
        by("ingress")["message"]
            .as_str()
            .unwrap()
            .contains("4.11.2 (minor update, 2 newer version(s), released 2026-10-01T00:00:00Z)"),
        "{f:#?}"
    );
    assert_eq!(by("certs")["severity"], "warn");
    assert_eq!(out.check_status("helm.outdated"), "warn");
    assert_eq!(out.status, ExitStatus::Done);
    let strict = run(
        &sb,
        &[
            "--check",
            "helm.outdated",
            "--helm-index",
            &spec,
            "--fail-on",
            "warn",
        ],
    )
    .await;
    assert_eq!(strict.status, ExitStatus::Failed);
    assert_read_only(&sb);
}

/// Serves `INDEX` over HTTP: `/repo/index.yaml` redirects to `/real/index.yaml`; anything else
/// is 404. Returns the base URL.
async fn serve_index() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = match path.as_str() {
                    "/repo/index.yaml" => "HTTP/1.1 302 Found\r\nLocation: /real/index.yaml\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    "/real/index.yaml" => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{INDEX}",
                        INDEX.len()
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                };
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_index_by_url_follows_redirects_and_a_missing_index_is_an_error() {
    let sb = start("cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 1}]\nhelmReleases:\n  - {name: ingress, namespace: ingress-nginx, chart: ingress-nginx, version: 4.10.0}\n  - {name: certs, namespace: cert-manager, chart: cert-manager, version: 1.15.3}\n").await;
    let base = serve_index().await;
    // The repository URL, as `helm repo add` takes it: /index.yaml is appended.
    let spec = format!("stable={base}/repo");
    let out = run(&sb, &["--check", "helm.outdated", "--helm-index", &spec]).await;
    let f = out.findings("helm.outdated");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(out.check_status("helm.outdated"), "warn");
    assert_eq!(out.status, ExitStatus::Done);

    let missing = format!("gone={base}/missing/index.yaml");
    let out = run(&sb, &["--check", "helm.outdated", "--helm-index", &missing]).await;
    assert_eq!(
        out.check_status("helm.outdated"),
        "error",
        "{:#}",
        out.result
    );
    assert!(
        out.check("helm.outdated").to_string().contains("HTTP 404"),
        "{:#}",
        out.result
    );
    assert_ne!(out.status, ExitStatus::Done);
    assert_read_only(&sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_exit_2_before_any_request() {
    let sb = start("cluster: {name: t}\nnodeGroups: [{name: w, count: 1}]\n").await;
    for (args, says) in [
        (vec!["--check", "nodes.nope"], "unknown check id"),
        (vec!["--profile", "post-upgrade"], "--expect-kubernetes"),
        (
            vec!["--target-kubernetes", "1.34"],
            "only for --profile pre-upgrade",
        ),
        (vec!["--helm-index", "nofile"], "NAME=FILE"),
        (
            vec!["--helm-index", "stable=ftp://charts.example.com"],
            "only http:// and https://",
        ),
        (vec!["--exec-allow", "alice"], "Kind:name"),
    ] {
        let before = sb.requests().len();
        let out = run(&sb, &args).await;
        assert_eq!(out.status, ExitStatus::BadInput, "{args:?}");
        assert!(
            out.result["error"].as_str().unwrap().contains(says),
            "{args:?}: {}",
            out.result
        );
        assert_eq!(sb.requests().len(), before, "{args:?} sent requests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_keeps_failing_is_an_error_and_exit_3_while_the_rest_run() {
    let sb =
        start("cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 2}]\n").await;
    sb.add_fault(opsteps_sandbox::faults::FaultRule {
        verbs: vec!["list".into()],
        resource: Some("pods".into()),
        namespace: None,
        name: None,
        user: None,
        action: opsteps_sandbox::faults::FaultAction::Status {
            code: 503,
            retry_after: None,
            message: None,
        },
        times: None,
        every: None,
        probability: None,
        seed: None,
    });
    let out = run(&sb, &["--profile", "health", "--timeout", "3s"]).await;
    let pods = out.check("pods.crash-loop");
    assert_eq!(pods["status"], "error", "{pods:#}");
    assert_eq!(out.check_status("nodes.ready"), "pass");
    assert_eq!(out.result["summary"]["result"], "error");
    assert_eq!(out.status, ExitStatus::Transient, "{:#}", out.result);
    assert_read_only(&sb);
}
