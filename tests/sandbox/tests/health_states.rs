//! Unhealthy starting states from scenarios: containers waiting in CrashLoopBackOff or
//! ImagePullBackOff (kept as time passes), and node pressure conditions with their taints.

use std::time::Duration;

use opsteps_sandbox::cluster::Cluster;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::scenario::{Scenario, cluster_from};
use serde_json::Value;

const SCENARIO: &str = r"
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
nodeGroups:
  - {name: general, count: 2}
  - {name: batch, count: 2}
workloads:
  - {name: crashy, replicas: 2, waiting: CrashLoopBackOff,
     restarts: {count: 7, reason: Error, exitCode: 2}, placement: {nodeGroup: general}}
  - {name: pully, replicas: 1, waiting: ImagePullBackOff, image: registry.example/nope:9.9,
     placement: {nodeGroup: general}}
  - {name: fine, replicas: 2, placement: {nodeGroup: general}}
nodeConditions:
  - {nodeGroup: batch, type: MemoryPressure}
  - {node: general-1, type: DiskPressure}
";

fn pods_of(c: &Cluster, app: &str) -> Vec<Value> {
    c.store
        .list(well_known::pods(), Some("default"))
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .map(|p| (**p).clone())
        .collect()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn check_waiting(c: &Cluster) {
    let crashy = pods_of(c, "crashy");
    assert_eq!(crashy.len(), 2);
    for p in &crashy {
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff", "{p}");
        assert!(
            cs["state"]["waiting"]["message"]
                .as_str()
                .unwrap()
                .starts_with("back-off 5m0s restarting failed container=crashy")
        );
        assert_eq!(cs["restartCount"], 7);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(cs["ready"], false);
        assert!(!ready(p));
    }
    let pully = pods_of(c, "pully");
    assert_eq!(pully.len(), 1);
    let p = &pully[0];
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"]["nodeName"].is_string(), "scheduled, not started");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "ImagePullBackOff");
    assert_eq!(
        cs["state"]["waiting"]["message"],
        "Back-off pulling image \"registry.example/nope:9.9\""
    );
    assert!(!ready(p));
    assert!(pods_of(c, "fine").iter().all(ready));
}

#[test]
fn waiting_states_load_and_last() {
    let scenario = Scenario::from_yaml(SCENARIO).expect("parses");
    let mut c = cluster_from(&scenario).expect("loads");
    check_waiting(&c);
    let d = c
        .store
        .get(well_known::deployments(), "default", "crashy")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"].as_i64().unwrap_or(0), 0);
    // An hour later the kubelet has neither started nor readied them.
    c.clock.advance(Duration::from_hours(1));
    opsteps_sandbox::controllers::tick(&mut c);
    check_waiting(&c);
}

#[test]
fn pressure_conditions_and_taints() {
    let scenario = Scenario::from_yaml(SCENARIO).expect("parses");
    let mut c = cluster_from(&scenario).expect("loads");
    c.clock.advance(Duration::from_mins(10));
    opsteps_sandbox::controllers::tick(&mut c);
    let node = |n: &str| c.store.get(well_known::nodes(), "", n).unwrap();
    let cond = |n: &Value, t: &str| -> (String, String) {
        let x = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == t)
            .unwrap();
        (
            x["status"].as_str().unwrap().to_owned(),
            x["reason"].as_str().unwrap().to_owned(),
        )
    };
    let taints = |n: &Value| -> Vec<String> {
        n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect()
    };
    for n in ["batch-0", "batch-1"] {
        let n = node(n);
        assert_eq!(
            cond(&n, "MemoryPressure"),
            ("True".into(), "KubeletHasInsufficientMemory".into())
        );
        assert_eq!(cond(&n, "Ready").0, "True");
        assert_eq!(
            taints(&n),
            ["node.kubernetes.io/memory-pressure:NoSchedule"]
        );
    }
    let g1 = node("general-1");
    assert_eq!(
        cond(&g1, "DiskPressure"),
        ("True".into(), "KubeletHasDiskPressure".into())
    );
    assert_eq!(
        cond(&node("general-0"), "DiskPressure"),
        ("False".into(), "KubeletHasNoDiskPressure".into())
    );
    assert!(taints(&node("general-0")).is_empty());
}

#[test]
fn bad_inputs_are_scenario_errors() {
    for (yaml, want) in [
        (
            "workloads: [{name: a, waiting: Sleeping}]",
            "expected one of CrashLoopBackOff",
        ),
        (
            "nodes: [{name: n}]\nnodeConditions: [{node: n, type: Hot}]",
            "expected MemoryPressure",
        ),
        (
            "nodes: [{name: n}]\nnodeConditions: [{node: m, type: DiskPressure}]",
            "selects no node",
        ),
    ] {
        let scenario = Scenario::from_yaml(yaml).expect("parses");
        let err = cluster_from(&scenario).err().expect("refused");
        assert!(format!("{err:#}").contains(want), "{yaml}: {err:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_shows_the_waiting_reasons() {
    use opsteps_sandbox::sandbox::{Options, Sandbox};
    let scenario = Scenario::from_yaml(SCENARIO).expect("parses");
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .expect("sandbox starts");
    let versions = opsteps_sandbox::testing::kubectl_versions();
    let bin = versions.last().expect("kubectl on PATH");
    let out = opsteps_sandbox::testing::kubectl(bin, sb.kubeconfig_path(), &["get", "pods"]).await;
    let text = opsteps_sandbox::testing::stdout_ok(&out, "kubectl get pods");
    let status_of = |prefix: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        status_of("crashy-"),
        ["CrashLoopBackOff", "CrashLoopBackOff"],
        "{text}"
    );
    assert_eq!(status_of("pully-"), ["ImagePullBackOff"], "{text}");
}

#[test]
fn removed_api_traces_in_objects_are_kept() {
    let yaml = r#"
objects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: legacy
      annotations:
        kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"policy/v1beta1","kind":"PodDisruptionBudget"}'
      managedFields:
        - {manager: helm, operation: Update, apiVersion: flowcontrol.apiserver.k8s.io/v1beta3,
           time: "2026-01-01T00:00:00Z", fieldsType: FieldsV1, fieldsV1: {"f:data": {}}}
"#;
    let c = cluster_from(&Scenario::from_yaml(yaml).unwrap()).unwrap();
    let cm = c
        .store
        .get(
            opsteps_sandbox::store::res("", "configmaps"),
            "default",
            "legacy",
        )
        .unwrap();
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("policy/v1beta1")
    );
    assert_eq!(
        cm["metadata"]["managedFields"][0]["apiVersion"],
        "flowcontrol.apiserver.k8s.io/v1beta3"
    );
}

#[test]
fn limits_probes_and_spread_reach_the_pods() {
    let yaml = r"
nodeGroups: [{name: general, count: 2}]
workloads:
  - name: api
    replicas: 2
    requests: {cpu: 250m, memory: 256Mi}
    limits: {memory: 512Mi}
    readinessProbe: {httpGet: {path: /healthz, port: 8080}}
    livenessProbe: {tcpSocket: {port: 8080}}
    topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: api}}}
    restarts: {count: 4, reason: OOMKilled}
";
    let c = cluster_from(&Scenario::from_yaml(yaml).unwrap()).unwrap();
    let pods = pods_of(&c, "api");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let ctr = &p["spec"]["containers"][0];
        assert_eq!(ctr["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(ctr["resources"]["requests"]["memory"], "256Mi");
        assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(ctr["livenessProbe"]["tcpSocket"]["port"], 8080);
        assert_eq!(
            p["spec"]["topologySpreadConstraints"][0]["topologyKey"],
            "topology.kubernetes.io/zone"
        );
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 4);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
    }
    let d = c
        .store
        .get(well_known::deployments(), "default", "api")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "512Mi"
    );
}
