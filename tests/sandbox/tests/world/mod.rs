//! Helpers for controller tests: clusters from inline scenarios, stepping the virtual clock.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use opsteps_sandbox::cluster::Cluster;
use opsteps_sandbox::controllers;
use opsteps_sandbox::podutil;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::scenario::{self, Scenario};
use serde_json::Value;

/// A loaded cluster from inline scenario YAML (clock fixed at 2026-11-26T10:00:00Z unless set).
pub fn cluster(yaml: &str) -> Cluster {
    let mut s = Scenario::from_yaml(yaml).expect("scenario parses");
    if s.clock.start.is_none() {
        s.clock.start = Some("2026-11-26T10:00:00Z".parse().unwrap());
    }
    // Tests step the clock themselves: real time must not move it noticeably.
    s.clock.scale = 1e-9;
    scenario::cluster_from(&s).expect("scenario loads")
}

/// Advances the clock by `step` `n` times, ticking after each step; `check` runs after every tick.
pub fn run(c: &mut Cluster, step: Duration, n: usize, mut check: impl FnMut(&Cluster)) {
    for _ in 0..n {
        c.clock.advance(step);
        controllers::tick(c);
        check(c);
    }
}

/// Advances `secs` virtual seconds in 1 s steps.
pub fn settle(c: &mut Cluster, secs: usize) {
    run(c, Duration::from_secs(1), secs, |_| {});
}

/// Pods in `ns` carrying label `key=value`.
pub fn pods(c: &Cluster, ns: &str, key: &str, value: &str) -> Vec<Arc<Value>> {
    c.store
        .list(well_known::pods(), Some(ns))
        .filter(|p| {
            opsteps_sandbox::labels::labels(p)
                .get(key)
                .and_then(Value::as_str)
                == Some(value)
        })
        .cloned()
        .collect()
}

/// One pod.
pub fn pod(c: &Cluster, ns: &str, name: &str) -> Option<Arc<Value>> {
    c.store.get(well_known::pods(), ns, name)
}

/// Deletes a pod as the API's graceful DELETE does.
pub fn delete_pod(c: &mut Cluster, ns: &str, name: &str) {
    let now = c.clock.now();
    assert!(
        controllers::pods::delete(&mut c.store, well_known::pods(), ns, name, now),
        "pod {ns}/{name} deleted"
    );
}

/// Name of a pod.
pub fn name(p: &Value) -> String {
    podutil::ns_name(p).1.to_owned()
}

/// Count of pods that are healthy (Ready, not terminating).
pub fn healthy(ps: &[Arc<Value>]) -> usize {
    ps.iter().filter(|p| podutil::is_healthy(p)).count()
}

/// Count of pods that are not terminating.
pub fn active(ps: &[Arc<Value>]) -> usize {
    ps.iter().filter(|p| !podutil::is_terminating(p)).count()
}

/// Creates an object from JSON in its table.
pub fn create(
    c: &mut Cluster,
    res: &'static opsteps_sandbox::resources::ResourceInfo,
    obj: Value,
) -> Arc<Value> {
    let now = c.now();
    c.store.create(res, obj, &now).expect("created")
}

/// Applies `f` to a stored object and writes it back (as an update through the API would,
/// bumping generation when spec changes).
pub fn edit(
    c: &mut Cluster,
    res: &'static opsteps_sandbox::resources::ResourceInfo,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) {
    let mut o = (*c.store.get(res, ns, name).expect("object exists")).clone();
    f(&mut o);
    c.store.update(res, o).expect("updated");
}
