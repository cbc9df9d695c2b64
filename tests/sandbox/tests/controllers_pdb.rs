//! PodDisruptionBudget status as the disruption controller computes it (drain.md §4).

use crate::world;

use std::time::Duration;

use opsteps_sandbox::cluster::Cluster;
use opsteps_sandbox::controllers;
use opsteps_sandbox::resources::well_known;
use serde_json::{Value, json};
use world::{cluster, delete_pod, edit, name, pods, settle};

const BASE: &str = r"
nodeGroups:
  - {name: n, count: 3, instanceType: m5.2xlarge}
workloads:
  - {kind: Deployment, name: web, namespace: shop, replicas: 3}
  - {kind: StatefulSet, name: db, namespace: shop, replicas: 4}
  - {kind: Pod, name: lonely, namespace: shop, labels: {app: lonely}}
  - {kind: DaemonSet, name: agent, namespace: shop}
";

fn with_pdbs(pdbs: &str) -> Cluster {
    cluster(&format!("{BASE}pdbs:\n{pdbs}"))
}

fn status(c: &Cluster, name: &str) -> Value {
    c.store.get(well_known::pdbs(), "shop", name).unwrap()["status"].clone()
}

fn numbers(st: &Value) -> (i64, i64, i64, i64) {
    (
        st["expectedPods"].as_i64().unwrap(),
        st["desiredHealthy"].as_i64().unwrap(),
        st["currentHealthy"].as_i64().unwrap(),
        st["disruptionsAllowed"].as_i64().unwrap(),
    )
}

fn condition(st: &Value) -> (String, String) {
    let c = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionAllowed")
        .unwrap();
    (
        c["status"].as_str().unwrap().to_owned(),
        c["reason"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn int_and_percent_min_available_and_max_unavailable() {
    let c = with_pdbs(
        r"
  - {name: min-int, namespace: shop, matchLabels: {app: web}, minAvailable: 2}
  - {name: min-pct, namespace: shop, matchLabels: {app: web}, minAvailable: '50%'}
  - {name: max-int, namespace: shop, matchLabels: {app: db}, maxUnavailable: 1}
  - {name: max-pct, namespace: shop, matchLabels: {app: db}, maxUnavailable: '30%'}
  - {name: max-zero, namespace: shop, matchLabels: {app: web}, maxUnavailable: 0}
  - {name: min-all, namespace: shop, matchLabels: {app: web}, minAvailable: '100%'}
  - {name: bare-max, namespace: shop, matchLabels: {app: lonely}, maxUnavailable: 1}
  - {name: bare-min, namespace: shop, matchLabels: {app: lonely}, minAvailable: 0}
  - {name: ds-pct, namespace: shop, matchLabels: {app: agent}, minAvailable: '50%'}
  - {name: nothing, namespace: shop, matchLabels: {app: none}, maxUnavailable: 1}
",
    );
    assert_eq!(numbers(&status(&c, "min-int")), (3, 2, 3, 1));
    assert_eq!(
        condition(&status(&c, "min-int")),
        ("True".into(), "SufficientPods".into())
    );
    // 50% of 3 rounds up to 2.
    assert_eq!(numbers(&status(&c, "min-pct")), (3, 2, 3, 1));
    assert_eq!(numbers(&status(&c, "max-int")), (4, 3, 4, 1));
    // 30% of 4 rounds up to 2 unavailable.
    assert_eq!(numbers(&status(&c, "max-pct")), (4, 2, 4, 2));
    assert_eq!(numbers(&status(&c, "max-zero")), (3, 3, 3, 0));
    assert_eq!(
        condition(&status(&c, "max-zero")),
        ("False".into(), "InsufficientPods".into())
    );
    assert_eq!(numbers(&status(&c, "min-all")), (3, 3, 3, 0));
    // A bare pod has no scale: maxUnavailable cannot be computed.
    let st = status(&c, "bare-max");
    assert_eq!(st["disruptionsAllowed"], 0);
    assert_eq!(condition(&st), ("False".into(), "SyncFailed".into()));
    // Integer minAvailable counts pods and works for bare pods.
    assert_eq!(numbers(&status(&c, "bare-min")), (1, 0, 1, 1));
    // DaemonSets have no scale subresource either.
    assert_eq!(condition(&status(&c, "ds-pct")).1, "SyncFailed");
    // No pods: expected 0, nothing allowed.
    assert_eq!(numbers(&status(&c, "nothing")), (0, 0, 0, 0));
    for n in ["min-int", "max-pct", "bare-max"] {
        assert_eq!(status(&c, n)["observedGeneration"], 1);
    }
}

#[test]
fn unready_and_terminating_pods_are_not_healthy_and_generation_is_observed() {
    let mut c =
        with_pdbs("  - {name: web, namespace: shop, matchLabels: {app: web}, minAvailable: 2}\n");
    let victim = name(&pods(&c, "shop", "app", "web")[0]);
    delete_pod(&mut c, "shop", &victim);
    controllers::tick(&mut c);
    // 3 pods match (one terminating, one replacement pending): expected counts them all.
    let st = status(&c, "web");
    assert_eq!(st["currentHealthy"], 2);
    assert_eq!(st["disruptionsAllowed"], 0);
    settle(&mut c, 6);
    assert_eq!(status(&c, "web")["currentHealthy"], 3);
    settle(&mut c, 30);
    assert_eq!(numbers(&status(&c, "web")), (3, 2, 3, 1));
    edit(&mut c, well_known::pdbs(), "shop", "web", |o| {
        o["spec"]["minAvailable"] = json!(1);
    });
    let pdb = c.store.get(well_known::pdbs(), "shop", "web").unwrap();
    assert_eq!(pdb["metadata"]["generation"], 2);
    controllers::tick(&mut c);
    let st = status(&c, "web");
    assert_eq!(st["observedGeneration"], 2);
    assert_eq!(st["disruptionsAllowed"], 2);
}

/// What the API's eviction does to the budget before deleting the pod.
fn record_eviction(c: &mut Cluster, pdb: &str, pod: &str) {
    let now = c.now();
    let mut o = (*c.store.get(well_known::pdbs(), "shop", pdb).unwrap()).clone();
    let allowed = o["status"]["disruptionsAllowed"].as_i64().unwrap();
    o["status"]["disruptionsAllowed"] = json!(allowed - 1);
    o["status"]["disruptedPods"][pod] = json!(now);
    c.store.put(well_known::pdbs(), o);
}

#[test]
fn disrupted_pods_expire_after_two_minutes() {
    let mut c =
        with_pdbs("  - {name: web, namespace: shop, matchLabels: {app: web}, minAvailable: 2}\n");
    let victim = name(&pods(&c, "shop", "app", "web")[0]);
    record_eviction(&mut c, "web", &victim);
    controllers::tick(&mut c);
    // The pod was "evicted" but never deleted: it stays out of currentHealthy for 2 minutes.
    let st = status(&c, "web");
    assert_eq!(numbers(&st), (3, 2, 2, 0));
    assert!(st["disruptedPods"].get(&victim).is_some());
    c.clock.advance(Duration::from_secs(119));
    controllers::tick(&mut c);
    assert_eq!(status(&c, "web")["currentHealthy"], 2);
    c.clock.advance(Duration::from_secs(1));
    controllers::tick(&mut c);
    let st = status(&c, "web");
    assert_eq!(numbers(&st), (3, 2, 3, 1));
    assert!(st.get("disruptedPods").is_none());

    // When the pod is deleted after the eviction, its entry goes at once.
    let victim = name(&pods(&c, "shop", "app", "web")[1]);
    record_eviction(&mut c, "web", &victim);
    controllers::tick(&mut c);
    assert!(status(&c, "web")["disruptedPods"].get(&victim).is_some());
    delete_pod(&mut c, "shop", &victim);
    controllers::tick(&mut c);
    let st = status(&c, "web");
    assert!(st.get("disruptedPods").is_none());
    assert_eq!(st["currentHealthy"], 2);
}

#[test]
fn idle_pdbs_do_not_write() {
    let mut c =
        with_pdbs("  - {name: web, namespace: shop, matchLabels: {app: web}, minAvailable: 2}\n");
    let rv = c.store.resource_version();
    for _ in 0..10 {
        c.clock.advance(Duration::from_mins(1));
        c.world.wake();
        controllers::tick(&mut c);
    }
    assert_eq!(c.store.resource_version(), rv);
}
