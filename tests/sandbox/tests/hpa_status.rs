//! HPA status from scenarios: an HPA pinned at maxReplicas, one within range, one the formula
//! scales, one without metrics and one whose target is missing; and `kubectl get hpa`.

use opsteps_sandbox::scenario::{Scenario, cluster_from};
use serde_json::Value;

const SCENARIO: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
nodeGroups: [{name: general, count: 3, instanceType: m5.4xlarge}]
workloads:
  - {name: api, replicas: 10, requests: {cpu: 100m},
     hpa: {minReplicas: 2, maxReplicas: 10, targetUtilization: 70, utilization: 95}}
  - {name: web, replicas: 3, hpa: {maxReplicas: 6, targetUtilization: 70, utilization: 65}}
  - {name: batch, kind: StatefulSet, replicas: 2, hpa: {maxReplicas: 5, utilization: 120}}
  - {name: blind, replicas: 2, hpa: {name: blind-hpa, minReplicas: 3, maxReplicas: 4}}
  - {name: plain, replicas: 2}
objects:
  - apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    metadata: {name: orphan}
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: gone}
      maxReplicas: 3
";

fn hpas() -> Vec<Value> {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let cluster = cluster_from(&scenario).expect("loads");
    let res = opsteps_sandbox::store::res("autoscaling", "horizontalpodautoscalers");
    cluster
        .store
        .list(res, None)
        .map(|h| (**h).clone())
        .collect()
}

fn find<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|h| h["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("hpa {name}"))
}

/// (status, reason) of condition `t`.
fn cond(h: &Value, t: &str) -> (String, String) {
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
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn pinned_at_max_reports_too_many_replicas() {
    let all = hpas();
    let api = find(&all, "api");
    assert_eq!(api["spec"]["maxReplicas"], 10);
    assert_eq!(api["status"]["currentReplicas"], 10);
    assert_eq!(api["status"]["desiredReplicas"], 10);
    assert_eq!(cond(api, "ScalingActive"), pair("True", "ValidMetricFound"));
    assert_eq!(cond(api, "ScalingLimited"), pair("True", "TooManyReplicas"));
    assert_eq!(cond(api, "AbleToScale"), pair("True", "SucceededGetScale"));
    assert_eq!(
        api["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        95
    );
}

#[test]
fn within_range_and_scaling_by_the_formula() {
    let all = hpas();
    let web = find(&all, "web");
    assert_eq!(
        web["status"]["desiredReplicas"], 3,
        "65% of 70% is within tolerance"
    );
    assert_eq!(
        cond(web, "ScalingLimited"),
        pair("False", "DesiredWithinRange")
    );
    let batch = find(&all, "batch");
    assert_eq!(batch["spec"]["scaleTargetRef"]["kind"], "StatefulSet");
    // ceil(2 × 120 / 80) = 3.
    assert_eq!(batch["status"]["currentReplicas"], 2);
    assert_eq!(batch["status"]["desiredReplicas"], 3);
}

#[test]
fn no_metrics_and_missing_targets() {
    let all = hpas();
    let blind = find(&all, "blind-hpa");
    assert_eq!(
        cond(blind, "ScalingActive"),
        pair("False", "FailedGetResourceMetric")
    );
    assert_eq!(
        cond(blind, "ScalingLimited"),
        pair("True", "TooFewReplicas")
    );
    assert!(blind["status"]["currentMetrics"].is_null());
    let orphan = find(&all, "orphan");
    assert_eq!(cond(orphan, "AbleToScale"), pair("False", "FailedGetScale"));
}

#[test]
fn daemonsets_cannot_have_an_hpa() {
    let yaml = "workloads: [{kind: DaemonSet, name: d, hpa: {maxReplicas: 2}}]";
    let scenario = Scenario::from_yaml(yaml).unwrap();
    let err = cluster_from(&scenario).err().expect("refused");
    assert!(format!("{err:#}").contains("cannot be scaled"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_get_hpa_renders() {
    use opsteps_sandbox::sandbox::{Options, Sandbox};
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .expect("sandbox starts");
    let versions = opsteps_sandbox::testing::kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    for bin in [versions.first().unwrap(), versions.last().unwrap()] {
        let out =
            opsteps_sandbox::testing::kubectl(bin, sb.kubeconfig_path(), &["get", "hpa", "-A"])
                .await;
        let text = opsteps_sandbox::testing::stdout_ok(&out, "kubectl get hpa");
        for name in ["api", "web", "batch", "blind-hpa", "orphan"] {
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(name)),
                "{}: {name} missing in\n{text}",
                bin.display()
            );
        }
        let out = opsteps_sandbox::testing::kubectl(
            bin,
            sb.kubeconfig_path(),
            &[
                "get",
                "hpa",
                "api",
                "-o",
                "jsonpath={.status.desiredReplicas}",
            ],
        )
        .await;
        assert_eq!(opsteps_sandbox::testing::stdout_ok(&out, "jsonpath"), "10");
    }
}

/// `kubectl get hpa` prints the apiserver's HPA columns, as a real cluster does:
/// `NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE`, targets as `cpu: 95%/70%`, and an
/// HPA created without metrics or minReplicas defaulted to `cpu: <unknown>/80%` and 1.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_get_hpa_prints_the_apiserver_columns() {
    use opsteps_sandbox::sandbox::{Options, Sandbox};
    use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hpa.yaml");
    std::fs::write(
        &file,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: plain}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: plain}\n  maxReplicas: 5\n",
    )
    .unwrap();
    let versions = kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl on PATH");
    let first = versions.first().unwrap();
    let created = stdout_ok(
        &kubectl(
            first,
            sb.kubeconfig_path(),
            &["create", "-f", file.to_str().unwrap()],
        )
        .await,
        "create hpa",
    );
    assert!(
        created.contains("horizontalpodautoscaler.autoscaling/plain created"),
        "{created}"
    );
    // Cells are separated by at least two spaces; a Targets cell holds single spaces.
    let table = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let want: &[[&str; 6]] = &[
        ["api", "Deployment/api", "cpu: 95%/70%", "2", "10", "10"],
        ["batch", "StatefulSet/batch", "cpu: 120%/80%", "1", "5", "2"],
        [
            "blind-hpa",
            "Deployment/blind",
            "cpu: <unknown>/80%",
            "3",
            "4",
            "2",
        ],
        [
            "plain",
            "Deployment/plain",
            "cpu: <unknown>/80%",
            "1",
            "5",
            "2",
        ],
        ["web", "Deployment/web", "cpu: 65%/70%", "1", "6", "3"],
    ];
    for bin in &versions {
        // The new HPA's REPLICAS comes with the controller's first status write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let rows = loop {
            let out = kubectl(bin, sb.kubeconfig_path(), &["get", "hpa"]).await;
            let rows = table(&stdout_ok(&out, "kubectl get hpa"));
            let settled = rows
                .iter()
                .any(|r| r[0] == "plain" && r.get(5).is_some_and(|c| c == "2"));
            if settled || std::time::Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert_eq!(
            rows[0],
            [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ],
            "{}",
            bin.display()
        );
        for w in want {
            let row = rows
                .iter()
                .find(|r| r[0] == w[0])
                .unwrap_or_else(|| panic!("{}: no row {} in {rows:?}", bin.display(), w[0]));
            assert_eq!(row[..6], w[..], "{}", bin.display());
            assert_eq!(row.len(), 7, "{row:?}");
        }
    }
}
