//! Scheduler, kubelet and node lifecycle on the virtual clock.

use crate::world;

use std::time::Duration;

use opsteps_sandbox::controllers;
use opsteps_sandbox::podutil;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::world::NodeDownReason;
use serde_json::{Value, json};
use world::{cluster, create, delete_pod, edit, pod, settle};

const NODES: &str = r"
nodeGroups:
  - name: cpu
    count: 2
    capacity: {cpu: '2', memory: 4Gi, pods: 10}
  - name: gpu
    count: 1
    instanceType: g5.xlarge
    taints: [{key: nvidia.com/gpu, value: 'true', effect: NoSchedule}]
";

fn bare(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn requests(cpu: &str, mem: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
}

fn scheduled(c: &opsteps_sandbox::cluster::Cluster, name: &str) -> Option<String> {
    pod(c, "default", name).and_then(|p| podutil::node_name(&p).map(str::to_owned))
}

fn unschedulable_message(c: &opsteps_sandbox::cluster::Cluster, name: &str) -> String {
    let p = pod(c, "default", name).unwrap();
    let cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap()
        .clone();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    cond["message"].as_str().unwrap().to_owned()
}

#[test]
fn scheduler_respects_resources_selectors_taints_and_cordon() {
    let mut c = cluster(NODES);
    // Too big for any cpu node (allocatable < 2 cores).
    create(
        &mut c,
        well_known::pods(),
        bare("huge", requests("2", "1Gi")),
    );
    // Fits.
    create(
        &mut c,
        well_known::pods(),
        bare("small", requests("500m", "512Mi")),
    );
    // Needs a GPU but does not tolerate the GPU taint.
    create(
        &mut c,
        well_known::pods(),
        bare(
            "gpu-untolerated",
            json!({"containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}),
        ),
    );
    // Needs a GPU and tolerates the taint.
    create(
        &mut c,
        well_known::pods(),
        bare(
            "gpu-ok",
            json!({
        "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}),
        ),
    );
    // A second GPU pod: the only GPU is taken.
    create(
        &mut c,
        well_known::pods(),
        bare(
            "gpu-second",
            json!({
        "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}),
        ),
    );
    // nodeSelector on a label no node has.
    create(
        &mut c,
        well_known::pods(),
        bare("selector", json!({"nodeSelector": {"disk": "ssd"}})),
    );
    // Required node affinity to one node.
    create(
        &mut c,
        well_known::pods(),
        bare(
            "affinity",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["cpu-1"]}]}]}}}}),
        ),
    );
    controllers::tick(&mut c);
    assert_eq!(scheduled(&c, "huge"), None);
    let m = unschedulable_message(&c, "huge");
    assert!(m.starts_with("0/3 nodes are available:"), "{m}");
    assert!(m.contains("2 Insufficient cpu"), "{m}");
    assert!(
        m.contains("1 node(s) had untolerated taint {nvidia.com/gpu: true}"),
        "{m}"
    );
    assert!(scheduled(&c, "small").unwrap().starts_with("cpu-"));
    assert_eq!(scheduled(&c, "gpu-untolerated"), None);
    assert_eq!(scheduled(&c, "gpu-ok").as_deref(), Some("gpu-0"));
    assert_eq!(scheduled(&c, "gpu-second"), None);
    assert!(unschedulable_message(&c, "gpu-second").contains("Insufficient nvidia.com/gpu"));
    assert_eq!(scheduled(&c, "selector"), None);
    assert!(
        unschedulable_message(&c, "selector").contains("didn't match Pod's node affinity/selector")
    );
    assert_eq!(scheduled(&c, "affinity").as_deref(), Some("cpu-1"));

    // Cordon both cpu nodes: the controller adds the taint; new pods go nowhere.
    for n in ["cpu-0", "cpu-1"] {
        edit(&mut c, well_known::nodes(), "", n, |o| {
            o["spec"]["unschedulable"] = json!(true);
        });
    }
    controllers::tick(&mut c);
    let node = c.store.get(well_known::nodes(), "", "cpu-0").unwrap();
    let taints = node["spec"]["taints"].as_array().unwrap();
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unschedulable" && t["effect"] == "NoSchedule")
    );
    create(&mut c, well_known::pods(), bare("after-cordon", json!({})));
    controllers::tick(&mut c);
    assert_eq!(scheduled(&c, "after-cordon"), None);
    // Uncordon: the taint goes and the pending pod is scheduled.
    edit(&mut c, well_known::nodes(), "", "cpu-1", |o| {
        o["spec"]["unschedulable"] = json!(false);
    });
    controllers::tick(&mut c);
    let node = c.store.get(well_known::nodes(), "", "cpu-1").unwrap();
    assert!(node["spec"].get("taints").is_none(), "{}", node["spec"]);
    assert_eq!(scheduled(&c, "after-cordon").as_deref(), Some("cpu-1"));
    // Freeing the GPU lets the second GPU pod in.
    delete_pod(&mut c, "default", "gpu-ok");
    settle(&mut c, 31);
    assert!(pod(&c, "default", "gpu-ok").is_none());
    assert_eq!(scheduled(&c, "gpu-second").as_deref(), Some("gpu-0"));
}

#[test]
fn kubelet_starts_readies_and_terminates_on_the_virtual_clock() {
    let mut c = cluster(&format!(
        "{NODES}\nkubelet: {{startDelay: 4s, readyDelay: 6s}}\n"
    ));
    create(
        &mut c,
        well_known::pods(),
        bare("p", json!({"terminationGracePeriodSeconds": 20})),
    );
    controllers::tick(&mut c);
    let p = pod(&c, "default", "p").unwrap();
    assert!(podutil::node_name(&p).is_some());
    assert_eq!(podutil::phase(&p), "Pending");
    settle(&mut c, 3);
    assert_eq!(podutil::phase(&pod(&c, "default", "p").unwrap()), "Pending");
    settle(&mut c, 1);
    let p = pod(&c, "default", "p").unwrap();
    assert_eq!(podutil::phase(&p), "Running");
    assert!(!podutil::is_ready(&p));
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with("127.") && !ip.starts_with("127.0."), "{ip}");
    assert!(
        p["status"]["hostIP"]
            .as_str()
            .unwrap()
            .starts_with("127.25")
    );
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
            .as_str()
            .unwrap()
            .len(),
        20
    );
    assert!(p["status"]["startTime"].is_string());
    settle(&mut c, 5);
    assert!(!podutil::is_ready(&pod(&c, "default", "p").unwrap()));
    settle(&mut c, 1);
    let p = pod(&c, "default", "p").unwrap();
    assert!(podutil::is_ready(&p));
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);

    // Graceful deletion: not Ready at once, gone after the grace period.
    delete_pod(&mut c, "default", "p");
    controllers::tick(&mut c);
    let p = pod(&c, "default", "p").unwrap();
    assert!(podutil::is_terminating(&p));
    assert!(!podutil::is_ready(&p));
    settle(&mut c, 19);
    assert!(pod(&c, "default", "p").is_some());
    settle(&mut c, 1);
    assert!(pod(&c, "default", "p").is_none());
}

#[test]
fn unique_loopback_ips() {
    let mut c = cluster(NODES);
    for i in 0..20 {
        create(
            &mut c,
            well_known::pods(),
            bare(&format!("p{i}"), json!({})),
        );
    }
    settle(&mut c, 3);
    let mut ips: Vec<String> = c
        .store
        .list(well_known::pods(), None)
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_owned())
        .collect();
    let n = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n);
    assert!(ips.iter().all(|ip| ip != "127.0.0.1"));
}

#[test]
fn hang_on_termination_and_finalizers() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Pod, name: stuck, hangOnTermination: true}}\n  - {{kind: Pod, name: normal, terminationGracePeriodSeconds: 5}}\n"
    ));
    delete_pod(&mut c, "default", "stuck");
    delete_pod(&mut c, "default", "normal");
    settle(&mut c, 600);
    let p = pod(&c, "default", "stuck").expect("still terminating");
    assert!(podutil::is_terminating(&p));
    assert!(!podutil::is_ready(&p));
    assert!(pod(&c, "default", "normal").is_none());
    // Releasing the hang lets the kubelet finish it.
    c.world.set_hanging("default", "stuck", false);
    c.world.pod_rules.clear();
    controllers::tick(&mut c);
    assert!(pod(&c, "default", "stuck").is_none());

    // A per-pod hang set at run time.
    create(
        &mut c,
        well_known::pods(),
        bare("later", json!({"terminationGracePeriodSeconds": 1})),
    );
    settle(&mut c, 6);
    c.world.set_hanging("default", "later", true);
    delete_pod(&mut c, "default", "later");
    settle(&mut c, 60);
    assert!(pod(&c, "default", "later").is_some());
}

#[test]
fn restarts_and_oomkilled() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Pod, name: leaky, restarts: {{count: 4, reason: OOMKilled, every: 10m}}}}\n"
    ));
    let p = pod(&c, "default", "leaky").unwrap();
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 4);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
    let created = p["metadata"]["creationTimestamp"].clone();
    c.clock.advance(Duration::from_mins(10));
    controllers::tick(&mut c);
    let p = pod(&c, "default", "leaky").unwrap();
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 5);
    assert!(!podutil::is_ready(&p), "restarting container is not ready");
    assert_eq!(
        p["metadata"]["creationTimestamp"], created,
        "restarts keep the pod's age"
    );
    settle(&mut c, 3);
    assert!(podutil::is_ready(&pod(&c, "default", "leaky").unwrap()));
}

#[test]
fn not_ready_nodes_taint_and_unready_their_pods() {
    let mut c = cluster(&format!(
        "{NODES}\nnodeEvents:\n  - {{after: 5m, node: cpu-0, state: NotReady}}\n  - {{after: 10m, node: cpu-0, state: Ready}}\nworkloads:\n  - {{kind: Pod, name: p, placement: {{nodes: [cpu-0]}}}}\n"
    ));
    assert!(podutil::is_ready(&pod(&c, "default", "p").unwrap()));
    c.clock.advance(Duration::from_mins(5));
    controllers::tick(&mut c);
    let n = c.store.get(well_known::nodes(), "", "cpu-0").unwrap();
    assert!(!podutil::condition_true(&n, "Ready"));
    let taints: Vec<String> = n["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        taints.contains(&"node.kubernetes.io/not-ready:NoSchedule".to_owned()),
        "{taints:?}"
    );
    assert!(
        taints.contains(&"node.kubernetes.io/not-ready:NoExecute".to_owned()),
        "{taints:?}"
    );
    assert!(!podutil::is_ready(&pod(&c, "default", "p").unwrap()));
    c.clock.advance(Duration::from_mins(5));
    controllers::tick(&mut c);
    let n = c.store.get(well_known::nodes(), "", "cpu-0").unwrap();
    assert!(podutil::condition_true(&n, "Ready"));
    assert!(n["spec"].get("taints").is_none());
    settle(&mut c, 1);
    assert!(podutil::is_ready(&pod(&c, "default", "p").unwrap()));
    // Unreachable at run time.
    c.world
        .set_node_ready("cpu-1", false, NodeDownReason::Unreachable);
    controllers::tick(&mut c);
    let n = c.store.get(well_known::nodes(), "", "cpu-1").unwrap();
    let ready = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "Unknown");
    assert!(
        n["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable")
    );
}

#[test]
fn pods_on_a_down_node_stay_terminating_until_it_returns() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Pod, name: p, placement: {{nodes: [cpu-0]}}, terminationGracePeriodSeconds: 5}}\n"
    ));
    c.world
        .set_node_ready("cpu-0", false, NodeDownReason::Unreachable);
    controllers::tick(&mut c);
    delete_pod(&mut c, "default", "p");
    settle(&mut c, 60);
    let p = pod(&c, "default", "p").expect("kubelet unreachable: still terminating");
    assert!(podutil::is_terminating(&p));
    c.world
        .set_node_ready("cpu-0", true, NodeDownReason::Unreachable);
    controllers::tick(&mut c);
    assert!(pod(&c, "default", "p").is_none());
}

#[test]
fn taint_manager_evicts_after_toleration_seconds() {
    let mut c = cluster(&format!(
        "{NODES}\nworkloads:\n  - {{kind: Deployment, name: web, replicas: 2, placement: {{nodes: [cpu-0]}}}}\n  - {{kind: DaemonSet, name: agent}}\n  - {{kind: Pod, name: tolerant, placement: {{nodes: [cpu-0]}}, tolerations: [{{operator: Exists}}]}}\n"
    ));
    c.world
        .set_node_ready("cpu-0", false, NodeDownReason::NotReady);
    controllers::tick(&mut c);
    let web = world::pods(&c, "default", "app", "web");
    assert!(web.iter().all(|p| podutil::node_name(p) == Some("cpu-0")));
    assert_eq!(
        web[0]["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["tolerationSeconds"] == 300)
            .count(),
        2
    );
    settle(&mut c, 299);
    assert!(
        world::pods(&c, "default", "app", "web")
            .iter()
            .all(|p| !podutil::is_terminating(p))
    );
    settle(&mut c, 1);
    let web = world::pods(&c, "default", "app", "web");
    assert_eq!(
        web.iter().filter(|p| podutil::is_terminating(p)).count(),
        2,
        "default tolerations ran out"
    );
    settle(&mut c, 10);
    let web = world::pods(&c, "default", "app", "web");
    let running: Vec<_> = web.iter().filter(|p| podutil::is_ready(p)).collect();
    assert_eq!(running.len(), 2);
    assert!(
        running
            .iter()
            .all(|p| podutil::node_name(p) != Some("cpu-0")),
        "replacements elsewhere"
    );
    // DaemonSet pods and pods tolerating everything stay.
    assert!(
        world::pods(&c, "default", "app", "agent")
            .iter()
            .any(|p| podutil::node_name(p) == Some("cpu-0") && !podutil::is_terminating(p))
    );
    assert!(!podutil::is_terminating(
        &pod(&c, "default", "tolerant").unwrap()
    ));
}
