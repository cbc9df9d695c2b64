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
