//! Workloads: rollouts complete, and the pre-upgrade practices eksup checks (replicas,
//! minReadySeconds, probes, requests, grace periods, docker.sock, spread).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{Ctx, MAX_OBJECTS, obj};
use crate::finding::{Findings, ObjectRef};

/// A Deployment or StatefulSet as the practice checks see it.
pub struct Workload<'a> {
    /// Kind.
    pub kind: &'static str,
    /// Metadata.
    pub meta: &'a ObjectMeta,
    /// Desired replicas (`None` for DaemonSets).
    pub replicas: Option<i32>,
    /// minReadySeconds.
    pub min_ready_seconds: i32,
    /// The pod template's spec.
    pub pod: Option<&'a PodSpec>,
    /// The pod selector.
    pub selector: &'a LabelSelector,
    /// The pod template's labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

/// Deployments and StatefulSets (and DaemonSets when `daemonsets`).
#[must_use]
pub fn workloads<'a>(cx: &'a Ctx<'_>, daemonsets: bool) -> Vec<Workload<'a>> {
    let mut out = Vec::new();
    for d in cx.inv.deployments() {
        let Some(s) = &d.spec else { continue };
        out.push(Workload {
            kind: "Deployment",
            meta: &d.metadata,
            replicas: Some(s.replicas.unwrap_or(1)),
            min_ready_seconds: s.min_ready_seconds.unwrap_or(0),
            pod: s.template.spec.as_ref(),
            selector: &s.selector,
            labels: s.template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        });
    }
    for d in cx.inv.statefulsets() {
        let Some(s) = &d.spec else { continue };
        out.push(Workload {
            kind: "StatefulSet",
            meta: &d.metadata,
            replicas: Some(s.replicas.unwrap_or(1)),
            min_ready_seconds: s.min_ready_seconds.unwrap_or(0),
            pod: s.template.spec.as_ref(),
            selector: &s.selector,
            labels: s.template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        });
    }
    if daemonsets {
        for d in cx.inv.daemonsets() {
            let Some(s) = &d.spec else { continue };
            out.push(Workload {
                kind: "DaemonSet",
                meta: &d.metadata,
                replicas: None,
                min_ready_seconds: s.min_ready_seconds.unwrap_or(0),
                pod: s.template.spec.as_ref(),
                selector: &s.selector,
                labels: s.template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            });
        }
    }
    out
}

/// `workloads.rollout`.
pub fn rollout(cx: &Ctx<'_>, f: &mut Findings) {
    deployments(cx, f);
    statefulsets(cx, f);
    daemonsets(cx, f);
}

fn deployments(cx: &Ctx<'_>, f: &mut Findings) {
    for d in cx.inv.deployments() {
        let (Some(spec), st) = (&d.spec, d.status.clone().unwrap_or_default()) else {
            continue;
        };
        let want = spec.replicas.unwrap_or(1);
        let mut why = Vec::new();
        if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
            why.push("the controller has not seen the latest spec".to_owned());
        }
        if st.updated_replicas.unwrap_or(0) < want {
            why.push(format!(
                "{}/{want} updated",
                st.updated_replicas.unwrap_or(0)
            ));
        }
        if st.available_replicas.unwrap_or(0) < want {
            why.push(format!(
                "{}/{want} available",
                st.available_replicas.unwrap_or(0)
            ));
        }
        if st.replicas.unwrap_or(0) > want {
            why.push(format!(
                "{} old replicas still running",
                st.replicas.unwrap_or(0) - want
            ));
        }
        if let Some(c) = st.conditions.iter().flatten().find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }) {
            why.push(format!(
                "ProgressDeadlineExceeded: {}",
                c.message.clone().unwrap_or_default()
            ));
        }
        if !why.is_empty() {
            f.add(
                format!(
                    "Deployment {}/{} is not rolled out: {}",
                    d.metadata.namespace.as_deref().unwrap_or_default(),
                    d.metadata.name.as_deref().unwrap_or_default(),
                    why.join(", ")
                ),
                vec![obj("Deployment", &d.metadata)],
            );
        }
    }
}

fn statefulsets(cx: &Ctx<'_>, f: &mut Findings) {
    for s in cx.inv.statefulsets() {
        let (Some(spec), st) = (&s.spec, s.status.clone().unwrap_or_default()) else {
            continue;
        };
        let want = spec.replicas.unwrap_or(1);
        let mut why = Vec::new();
        if s.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
            why.push("the controller has not seen the latest spec".to_owned());
        }
        if st.ready_replicas.unwrap_or(0) < want {
            why.push(format!("{}/{want} ready", st.ready_replicas.unwrap_or(0)));
        }
        if st.updated_replicas.unwrap_or(0) < want
            && st.update_revision.is_some()
            && st.current_revision != st.update_revision
        {
            why.push(format!(
                "{}/{want} updated",
                st.updated_replicas.unwrap_or(0)
            ));
        }
        if !why.is_empty() {
            f.add(
                format!(
                    "StatefulSet {}/{} is not rolled out: {}",
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    s.metadata.name.as_deref().unwrap_or_default(),
                    why.join(", ")
                ),
                vec![obj("StatefulSet", &s.metadata)],
            );
        }
    }
}

fn daemonsets(cx: &Ctx<'_>, f: &mut Findings) {
    for d in cx.inv.daemonsets() {
        let st = d.status.clone().unwrap_or_default();
        let want = st.desired_number_scheduled;
        let mut why = Vec::new();
        if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
            why.push("the controller has not seen the latest spec".to_owned());
        }
        if st.number_available.unwrap_or(0) < want {
            why.push(format!(
                "{}/{want} available",
                st.number_available.unwrap_or(0)
            ));
        }
        if st.updated_number_scheduled.unwrap_or(0) < want {
            why.push(format!(
                "{}/{want} updated",
                st.updated_number_scheduled.unwrap_or(0)
            ));
        }
        if st.number_misscheduled > 0 {
            why.push(format!("{} misscheduled", st.number_misscheduled));
        }
        if !why.is_empty() {
            f.add(
                format!(
                    "DaemonSet {}/{} is not rolled out: {}",
                    d.metadata.namespace.as_deref().unwrap_or_default(),
                    d.metadata.name.as_deref().unwrap_or_default(),
                    why.join(", ")
                ),
                vec![obj("DaemonSet", &d.metadata)],
            );
        }
    }
}

fn label(w: &Workload<'_>) -> String {
    format!(
        "{} {}/{}",
        w.kind,
        w.meta.namespace.as_deref().unwrap_or_default(),
        w.meta.name.as_deref().unwrap_or_default()
    )
}

/// `workloads.single-replica`.
pub fn single_replica(cx: &Ctx<'_>, f: &mut Findings) {
    for w in workloads(cx, false) {
        if w.replicas == Some(1) {
            f.add(
                format!("{} runs a single replica", label(&w)),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}

/// `workloads.min-ready-seconds`.
pub fn min_ready_seconds(cx: &Ctx<'_>, f: &mut Findings) {
    for w in workloads(cx, false) {
        if w.min_ready_seconds == 0 {
            f.add(
                format!("{} has minReadySeconds 0", label(&w)),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}

/// Adds one finding per workload whose containers `bad` picks, naming them.
fn per_container(
    cx: &Ctx<'_>,
    f: &mut Findings,
    what: &str,
    bad: impl Fn(&k8s_openapi::api::core::v1::Container) -> bool,
) {
    for w in workloads(cx, true) {
        let Some(pod) = w.pod else { continue };
        let names: Vec<&str> = pod
            .containers
            .iter()
            .filter(|c| bad(c))
            .map(|c| c.name.as_str())
            .collect();
        if !names.is_empty() {
            f.add(
                format!("{}: container(s) {} {what}", label(&w), names.join(", ")),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}

/// `workloads.readiness-probe`.
pub fn readiness_probe(cx: &Ctx<'_>, f: &mut Findings) {
    per_container(cx, f, "have no readinessProbe", |c| {
        c.readiness_probe.is_none()
    });
}

/// `workloads.resource-requests`.
pub fn resource_requests(cx: &Ctx<'_>, f: &mut Findings) {
    per_container(cx, f, "do not request both cpu and memory", |c| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        !r.is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
    });
}

/// `workloads.termination-grace`.
pub fn termination_grace(cx: &Ctx<'_>, f: &mut Findings) {
    for w in workloads(cx, true) {
        if w.pod.and_then(|p| p.termination_grace_period_seconds) == Some(0) {
            f.add(
                format!("{} has terminationGracePeriodSeconds 0", label(&w)),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}

/// `workloads.docker-socket`.
pub fn docker_socket(cx: &Ctx<'_>, f: &mut Findings) {
    for w in workloads(cx, true) {
        let Some(pod) = w.pod else { continue };
        let hits: Vec<&str> = pod
            .volumes
            .iter()
            .flatten()
            .filter(|v| {
                v.host_path
                    .as_ref()
                    .is_some_and(|h| h.path.ends_with("docker.sock"))
            })
            .map(|v| v.name.as_str())
            .collect();
        if !hits.is_empty() {
            f.add(
                format!(
                    "{} mounts docker.sock (volume {})",
                    label(&w),
                    hits.join(", ")
                ),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}

/// `workloads.topology`: a workload with several replicas whose Running pods all sit on one
/// node, or in one zone of a multi-zone cluster, loses every replica with that node or zone.
pub fn topology(cx: &Ctx<'_>, f: &mut Findings) {
    let zone_of: BTreeMap<&str, &str> = cx
        .inv
        .nodes()
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                n.metadata
                    .labels
                    .as_ref()?
                    .get("topology.kubernetes.io/zone")?
                    .as_str(),
            ))
        })
        .collect();
    let zones: BTreeSet<&str> = zone_of.values().copied().collect();
    // Pods by namespace for the selector match.
    let mut by_ns: BTreeMap<&str, Vec<&crate::inventory::PodInfo>> = BTreeMap::new();
    for p in cx.inv.pods() {
        if p.phase == "Running" && !p.terminating {
            by_ns.entry(p.namespace.as_str()).or_default().push(p);
        }
    }
    for w in workloads(cx, false) {
        if w.replicas.unwrap_or(0) < 2 {
            continue;
        }
        let ns = w.meta.namespace.as_deref().unwrap_or_default();
        let nodes: BTreeSet<&str> = by_ns
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|p| opsteps::selector::label_selector_matches(w.selector, &p.labels))
            .filter_map(|p| p.node.as_deref())
            .collect();
        if nodes.len() < 2 && !nodes.is_empty() {
            let on: Vec<ObjectRef> = nodes
                .iter()
                .take(MAX_OBJECTS)
                .map(|n| ObjectRef::cluster("Node", n))
                .collect();
            let mut objects = vec![obj(w.kind, w.meta)];
            objects.extend(on);
            f.add(
                format!(
                    "{}: all {} replicas run on one node",
                    label(&w),
                    w.replicas.unwrap_or(0)
                ),
                objects,
            );
            continue;
        }
        let used: BTreeSet<&str> = nodes
            .iter()
            .filter_map(|n| zone_of.get(n).copied())
            .collect();
        if zones.len() > 1 && used.len() == 1 {
            f.add(
                format!(
                    "{}: all replicas run in zone {}",
                    label(&w),
                    used.iter().next().copied().unwrap_or_default()
                ),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}
