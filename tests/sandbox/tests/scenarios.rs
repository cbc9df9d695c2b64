//! Scenario files: parsing, loading a settled cluster, the generated large scenario.

use std::path::PathBuf;
use std::time::Duration;

use opsteps_sandbox::controllers;
use opsteps_sandbox::podutil;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::scenario::{self, Scenario};
use serde_json::Value;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

#[test]
fn small_loads_settled() {
    let s = Scenario::from_file(&path("small.yaml")).unwrap();
    let mut c = scenario::cluster_from(&s).unwrap();
    let pods = well_known::pods();
    // 3 kube-proxy + 3 node-agent + 3 web + 2 db + 1 debug + 1 cache.
    assert_eq!(c.store.count(pods), 13);
    for p in c.store.list(pods, None) {
        assert_eq!(podutil::phase(p), "Running", "{}", p["metadata"]["name"]);
        assert!(podutil::is_ready(p), "{}", p["metadata"]["name"]);
        assert!(podutil::node_name(p).is_some());
    }
    let rv = c.store.resource_version();
    c.clock.advance(Duration::from_mins(10));
    controllers::tick(&mut c);
    assert_eq!(
        c.store.resource_version(),
        rv,
        "a settled cluster stays idle"
    );
    let pdb = c.store.get(well_known::pdbs(), "shop", "web").unwrap();
    assert_eq!(pdb["status"]["currentHealthy"], 3);
    assert_eq!(pdb["status"]["desiredHealthy"], 2);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1);
    assert_eq!(pdb["status"]["expectedPods"], 3);
    let d = c
        .store
        .get(well_known::deployments(), "shop", "web")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 3);
    assert_eq!(d["status"]["updatedReplicas"], 3);
    let ds = c
        .store
        .get(well_known::daemonsets(), "kube-system", "kube-proxy")
        .unwrap();
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3);
    assert_eq!(ds["status"]["numberReady"], 3);
    let _: Option<&Value> = None;
}

#[test]
fn demo_loads_settled() {
    let s = Scenario::from_file(&path("demo.yaml")).unwrap();
    let c = scenario::cluster_from(&s).unwrap();
    assert_eq!(c.store.count(well_known::nodes()), 11);
    for p in c.store.list(well_known::pods(), None) {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(podutil::is_ready(p), "{name}");
        let node = podutil::node_name(p).unwrap();
        // Applications start on blue; green is empty but for daemons.
        if p["metadata"]["namespace"] != "kube-system" && !node.starts_with("gpu") {
            assert!(node.starts_with("blue-"), "{name} on {node}");
        }
    }
    // Both dcgm-exporter label schemes run on their GPU nodes, each with a loopback IP.
    let helm: Vec<_> = c
        .store
        .list(well_known::pods(), Some("gpu-monitoring"))
        .collect();
    assert_eq!(helm.len(), 2);
    let operator: Vec<_> = c
        .store
        .list(well_known::pods(), Some("gpu-operator"))
        .collect();
    assert_eq!(operator.len(), 1);
    for p in helm.iter().chain(operator.iter()) {
        let ip = p["status"]["podIP"].as_str().unwrap();
        assert!(ip.starts_with("127.") && ip != "127.0.0.1");
    }
    // GPUs: 2 on gpu-helm (1 each) + 4 on gpu-operator; three trainers use three.
    let trainers: Vec<_> = c.store.list(well_known::pods(), Some("ml")).collect();
    assert_eq!(trainers.len(), 3);
    let green = c.store.get(well_known::nodes(), "", "green-0").unwrap();
    assert_eq!(
        green["status"]["nodeInfo"]["kubeletVersion"],
        "v1.33.1-eks-b9d6c5b"
    );
    assert_eq!(
        green["metadata"]["labels"]["eks.amazonaws.com/nodegroup"],
        "green"
    );
    for pdb in c.store.list(well_known::pdbs(), None) {
        assert!(
            pdb["status"]["disruptionsAllowed"].as_i64().unwrap() >= 1,
            "{}",
            pdb["metadata"]["name"]
        );
    }
}

#[test]
fn bad_scenarios_are_rejected() {
    for (yaml, why) in [
        (
            "workloads: [{kind: Deployment, name: x, replicaz: 3}]",
            "unknown field",
        ),
        ("workloads: [{kind: Cronjob, name: x}]", "unknown kind"),
        (
            "workloads: [{name: x, pdb: {minAvailable: 1, maxUnavailable: 1}}]",
            "both budgets",
        ),
        ("clock: {scale: 0}", "zero scale"),
    ] {
        assert!(Scenario::from_yaml(yaml).is_err(), "{why}");
    }
    for (yaml, why) in [
        ("workloads: [{name: x, age: 10y}]", "bad duration"),
        (
            "nodeEvents: [{after: 1m, node: n, state: Sleepy}]",
            "bad state",
        ),
        (
            "objects: [{apiVersion: v1, kind: Gizmo, metadata: {name: g}}]",
            "unserved kind",
        ),
        (
            "workloads: [{kind: Pod, name: x, phase: Exploded}]\nnodes: [{name: n}]",
            "bad phase",
        ),
    ] {
        let s = Scenario::from_yaml(yaml).unwrap();
        assert!(scenario::cluster_from(&s).is_err(), "{why}");
    }
}

#[test]
fn raw_objects_are_reconciled() {
    let s = Scenario::from_yaml(
        r"
clock: {start: 2026-11-26T10:00:00Z}
nodes: [{name: n1}]
objects:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: raw, namespace: apps}
    spec: {replicas: 2, selector: {matchLabels: {app: raw}}, template: {metadata: {labels: {app: raw}}, spec: {containers: [{name: c, image: nginx}]}}}
",
    )
    .unwrap();
    let mut c = scenario::cluster_from(&s).unwrap();
    assert!(c.store.get(well_known::namespaces(), "", "apps").is_some());
    assert_eq!(c.store.list(well_known::pods(), Some("apps")).count(), 2);
    for _ in 0..10 {
        c.clock.advance(Duration::from_secs(1));
        controllers::tick(&mut c);
    }
    let d = c
        .store
        .get(well_known::deployments(), "apps", "raw")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 2);
}

#[test]
fn eks_scaling_adds_group_nodes() {
    let s = Scenario::from_file(&path("small.yaml")).unwrap();
    let mut c = scenario::cluster_from(&s).unwrap();
    let names = scenario::add_group_nodes(&mut c, &s.cluster, &s.node_groups[0], 3..5).unwrap();
    assert_eq!(names, ["workers-3", "workers-4"]);
    let n = c.store.get(well_known::nodes(), "", "workers-4").unwrap();
    assert_eq!(
        n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"],
        "workers"
    );
    assert_eq!(
        n["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        "m5.xlarge"
    );
    assert_eq!(n["metadata"]["creationTimestamp"], c.now());
    assert!(podutil::condition_true(&n, "Ready"));
    let ip = n["status"]["addresses"][0]["address"].as_str().unwrap();
    assert!(ip.starts_with("127.25"), "{ip}");
    for _ in 0..6 {
        c.clock.advance(Duration::from_secs(1));
        controllers::tick(&mut c);
    }
    let proxies: Vec<_> = c
        .store
        .list(well_known::pods(), Some("kube-system"))
        .filter(|p| p["metadata"]["labels"]["k8s-app"] == "kube-proxy")
        .filter(|p| podutil::is_ready(p))
        .collect();
    assert_eq!(proxies.len(), 5, "the DaemonSet covers the new nodes");
}

#[test]
fn large_yaml_is_generated() {
    let generated = scenario::generate_large();
    let p = path("large.yaml");
    if std::env::var_os("SANDBOX_REGENERATE").is_some() {
        std::fs::write(&p, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&p).unwrap();
    assert!(
        committed == generated,
        "tests/scenarios/large.yaml is stale: run with SANDBOX_REGENERATE=1"
    );
}

#[test]
fn large_loads_2000_nodes_18000_pods() {
    let t = std::time::Instant::now();
    let s = Scenario::from_file(&path("large.yaml")).unwrap();
    let parsed = t.elapsed();
    let mut c = scenario::cluster_from(&s).unwrap();
    let loaded = t.elapsed();
    assert_eq!(c.store.count(well_known::nodes()), scenario::LARGE_NODES);
    assert_eq!(c.store.count(well_known::pods()), scenario::LARGE_PODS);
    let mut not_ready = 0;
    for p in c.store.list(well_known::pods(), None) {
        if !(podutil::is_ready(p) && podutil::node_name(p).is_some()) {
            not_ready += 1;
        }
    }
    assert_eq!(not_ready, 0, "every pod is placed and Ready");
    // 500 storefront pods are older than 8 h at the scenario's start (not at now: loading
    // takes real time, and the clock runs at scale 1).
    let now = s.clock.start.expect("large.yaml sets clock.start");
    let old = c
        .store
        .list(well_known::pods(), Some("rails"))
        .filter(|p| {
            let created: jiff::Timestamp = p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            now.duration_since(created).as_secs() > 28_800
        })
        .count();
    assert_eq!(old, 500);
    // An idle tick with nothing due is free; one forced full pass is measured.
    let rv = c.store.resource_version();
    let t2 = std::time::Instant::now();
    for _ in 0..1000 {
        controllers::tick(&mut c);
    }
    let idle = t2.elapsed();
    c.world.wake();
    let t3 = std::time::Instant::now();
    controllers::tick(&mut c);
    let full = t3.elapsed();
    assert_eq!(
        c.store.resource_version(),
        rv,
        "settled: a full pass writes nothing"
    );
    eprintln!(
        "large scenario: parse {parsed:?}, load {loaded:?}, 1000 idle ticks {idle:?}, one full pass {full:?}"
    );
    // Speed is measured by `opsteps-bench sandbox` (start-up of this scenario against its
    // 5 s target), not asserted here: a loaded CI machine is no measure.
}
