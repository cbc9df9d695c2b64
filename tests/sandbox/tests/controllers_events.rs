//! Events from the controllers, as a real cluster writes them: reasons, involved objects,
//! sources, counts, and the bound on how many are kept.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::world;

use std::time::Duration;

use opsteps_sandbox::cluster::Cluster;
use opsteps_sandbox::controllers;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use opsteps_sandbox::testing::{kubectl, kubectl_versions, stdout_ok};
use opsteps_sandbox::world::NodeDownReason;
use serde_json::{Value, json};
use world::{cluster, create, edit, settle};

const NODES: &str = r"
nodeGroups:
  - {name: n, count: 2, instanceType: m5.2xlarge}
";

fn events(c: &Cluster) -> Vec<Value> {
    c.store
        .list(well_known::events(), None)
        .map(|e| (**e).clone())
        .collect()
}

fn with_reason<'a>(evs: &'a [Value], reason: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["reason"] == reason).collect()
}

fn deployment(replicas: i64) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
            },
        },
    })
}

#[test]
fn workload_lifecycle_writes_the_events_of_a_real_cluster() {
    let mut c = cluster(NODES);
    assert!(events(&c).is_empty(), "a settled start writes no events");
    create(&mut c, well_known::deployments(), deployment(3));
    settle(&mut c, 10);
    let evs = events(&c);

    let scaling = with_reason(&evs, "ScalingReplicaSet");
    assert_eq!(scaling.len(), 1, "{scaling:?}");
    let s = scaling[0];
    assert_eq!(s["involvedObject"]["kind"], "Deployment");
    assert_eq!(s["involvedObject"]["apiVersion"], "apps/v1");
    assert_eq!(s["involvedObject"]["name"], "web");
    assert_eq!(s["source"]["component"], "deployment-controller");
    let rs_name = s["message"]
        .as_str()
        .unwrap()
        .strip_prefix("Scaled up replica set ")
        .and_then(|m| m.strip_suffix(" from 0 to 3"))
        .unwrap_or_else(|| panic!("{s}"))
        .to_owned();

    let created = with_reason(&evs, "SuccessfulCreate");
    assert_eq!(created.len(), 3, "{created:?}");
    for e in &created {
        assert_eq!(e["involvedObject"]["kind"], "ReplicaSet");
        assert_eq!(e["involvedObject"]["name"], rs_name.as_str());
        assert_eq!(e["source"]["component"], "replicaset-controller");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("Created pod: web-")
        );
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["count"], 1);
    }
    let scheduled = with_reason(&evs, "Scheduled");
    assert_eq!(scheduled.len(), 3);
    let e = scheduled[0];
    assert_eq!(e["source"]["component"], "default-scheduler");
    assert_eq!(e["involvedObject"]["kind"], "Pod");
    assert_eq!(e["metadata"]["namespace"], "default");
    let pod = e["involvedObject"]["name"].as_str().unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Successfully assigned default/{pod} to n-")),
        "{e}"
    );
    // The kubelet's sequence, per container, in order.
    let kubelet: Vec<&str> = evs
        .iter()
        .filter(|e| e["involvedObject"]["name"] == pod && e["source"]["component"] == "kubelet")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(kubelet, ["Pulling", "Pulled", "Created", "Started"]);
    let pulling = with_reason(&evs, "Pulling");
    assert_eq!(pulling[0]["message"], "Pulling image \"nginx:1.27\"");
    assert_eq!(
        pulling[0]["involvedObject"]["fieldPath"],
        "spec.containers{nginx}"
    );
    assert!(
        pulling[0]["source"]["host"]
            .as_str()
            .unwrap()
            .starts_with("n-")
    );

    // Scale down: the Deployment scales, the ReplicaSet deletes, the kubelet kills.
    edit(&mut c, well_known::deployments(), "default", "web", |d| {
        d["spec"]["replicas"] = json!(1);
    });
    settle(&mut c, 40);
    let evs = events(&c);
    let down: Vec<_> = with_reason(&evs, "ScalingReplicaSet")
        .into_iter()
        .filter(|e| e["message"] == format!("Scaled down replica set {rs_name} from 3 to 1"))
        .collect();
    assert_eq!(down.len(), 1, "{evs:?}");
    assert_eq!(with_reason(&evs, "SuccessfulDelete").len(), 2);
    let killing = with_reason(&evs, "Killing");
    assert_eq!(killing.len(), 2);
    assert_eq!(killing[0]["message"], "Stopping container nginx");

    // A pod that fits nowhere: one FailedScheduling warning, not one per pass.
    create(
        &mut c,
        well_known::pods(),
        json!({"metadata": {"name": "big", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "500"}}}]}}),
    );
    settle(&mut c, 20);
    let evs = events(&c);
    let failed = with_reason(&evs, "FailedScheduling");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["type"], "Warning");
    assert_eq!(failed[0]["count"], 1);
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("0/2 nodes are available"),
        "{}",
        failed[0]
    );

    // Node lifecycle: NotReady from the node controller, Ready again from the kubelet; a
    // second outage counts on the same Event.
    for _ in 0..2 {
        c.world
            .set_node_ready("n-0", false, NodeDownReason::NotReady);
        controllers::tick(&mut c);
        c.world
            .set_node_ready("n-0", true, NodeDownReason::NotReady);
        controllers::tick(&mut c);
    }
    let evs = events(&c);
    let not_ready = with_reason(&evs, "NodeNotReady");
    assert_eq!(not_ready.len(), 1, "{not_ready:?}");
    assert_eq!(not_ready[0]["count"], 2);
    assert_eq!(not_ready[0]["involvedObject"]["kind"], "Node");
    assert_eq!(not_ready[0]["source"]["component"], "node-controller");
    assert_eq!(
        not_ready[0]["message"],
        "Node n-0 status is now: NodeNotReady"
    );
    assert_eq!(not_ready[0]["metadata"]["namespace"], "default");
    assert_eq!(with_reason(&evs, "NodeReady")[0]["count"], 2);

    // Idle: nothing more is written.
    let rv = c.store.resource_version();
    settle(&mut c, 30);
    assert_eq!(c.store.resource_version(), rv);
}

#[test]
fn events_are_bounded() {
    let mut c = cluster(NODES);
    c.world.event_log.limit = 20;
    create(&mut c, well_known::deployments(), deployment(10));
    settle(&mut c, 10);
    let evs = events(&c);
    assert_eq!(evs.len(), 20, "{}", evs.len());
    // The newest are kept: the last pod's Started is there.
    assert!(with_reason(&evs, "Started").len() >= 2);
}

/// `kubectl get events` and `kubectl events` (1.28+ shows it without `alpha`) against a live
/// sandbox.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kubectl"]
async fn kubectl_shows_controller_events() {
    let scenario = Scenario::from_yaml(&format!(
        "{NODES}\nclock: {{start: \"2026-11-26T10:00:00Z\", scale: 30}}\n"
    ))
    .unwrap();
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .unwrap();
    sb.with(|c| {
        let now = c.now();
        c.store
            .create(well_known::deployments(), deployment(2), &now)
            .unwrap();
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sb.with(|c| {
        c.store
            .list(well_known::events(), None)
            .filter(|e| e["reason"] == "Started")
            .count()
    }) < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "no Started events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for bin in kubectl_versions() {
        let v = bin.display();
        let out = stdout_ok(
            &kubectl(
                &bin,
                sb.kubeconfig_path(),
                &["get", "events", "-n", "default", "-o", "json"],
            )
            .await,
            "get events",
        );
        let list: Value = serde_json::from_str(&out).unwrap();
        let reasons: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["reason"].as_str())
            .collect();
        for r in [
            "ScalingReplicaSet",
            "SuccessfulCreate",
            "Scheduled",
            "Pulling",
            "Started",
        ] {
            assert!(reasons.contains(&r), "{v}: {r} missing from {reasons:?}");
        }
        let out = stdout_ok(
            &kubectl(
                &bin,
                sb.kubeconfig_path(),
                &[
                    "get",
                    "events",
                    "-n",
                    "default",
                    "--field-selector",
                    "reason=Scheduled",
                    "-o",
                    "name",
                ],
            )
            .await,
            "get events --field-selector",
        );
        assert_eq!(out.lines().count(), 2, "{v}: {out}");
        // `describe` finds a pod's events by involvedObject field selectors.
        let pod = sb.with(|c| {
            c.store
                .list(well_known::pods(), Some("default"))
                .next()
                .map(|p| opsteps_sandbox::podutil::ns_name(p).1.to_owned())
                .unwrap()
        });
        let out = stdout_ok(
            &kubectl(
                &bin,
                sb.kubeconfig_path(),
                &["describe", "pod", "-n", "default", &pod],
            )
            .await,
            "describe pod",
        );
        let events = out.split_once("Events:").map_or("", |(_, e)| e);
        for needle in ["Scheduled", "default-scheduler", "Started", "kubelet"] {
            assert!(events.contains(needle), "{v}: {needle} missing from\n{out}");
        }
    }
}
