//! Disruption budgets: blocking, selecting nothing, overlapping, missing.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::{Ctx, MAX_OBJECTS, obj};
use crate::finding::{Findings, ObjectRef};
use crate::inventory::PodInfo;

fn matches(pdb: &PodDisruptionBudget, p: &PodInfo) -> bool {
    pdb.metadata.namespace.as_deref() == Some(p.namespace.as_str())
        && pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            // A PDB without a selector selects nothing (policy/v1), an empty one everything.
            .is_some_and(|s| opsteps::selector::label_selector_matches(s, &p.labels))
}

/// PDBs by namespace.
fn by_ns<'a>(cx: &Ctx<'a>) -> BTreeMap<&'a str, Vec<&'a PodDisruptionBudget>> {
    let mut m: BTreeMap<&str, Vec<&PodDisruptionBudget>> = BTreeMap::new();
    for p in cx.inv.pdbs() {
        m.entry(p.metadata.namespace.as_deref().unwrap_or_default())
            .or_default()
            .push(p);
    }
    m
}

fn live(p: &PodInfo) -> bool {
    !p.terminating && !matches!(p.phase.as_str(), "Succeeded" | "Failed")
}

/// `pdb.blocking`: zero disruptions allowed while it covers pods.
pub fn blocking(cx: &Ctx<'_>, f: &mut Findings) {
    for p in cx.inv.pdbs() {
        let Some(st) = &p.status else { continue };
        if st.expected_pods > 0 && st.disruptions_allowed == 0 {
            f.add(
                format!(
                    "PDB {}/{} allows 0 disruptions ({} of {} pods healthy, {} needed)",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default(),
                    st.current_healthy,
                    st.expected_pods,
                    st.desired_healthy
                ),
                vec![obj("PodDisruptionBudget", &p.metadata)],
            );
        }
    }
}

/// `pdb.no-match`.
pub fn no_match(cx: &Ctx<'_>, f: &mut Findings) {
    let pdbs = by_ns(cx);
    let mut hit: BTreeMap<(&str, &str), bool> = BTreeMap::new();
    for p in cx.inv.pods().iter().filter(|p| live(p)) {
        for pdb in pdbs.get(p.namespace.as_str()).into_iter().flatten() {
            if matches(pdb, p) {
                hit.insert(
                    (
                        p.namespace.as_str(),
                        pdb.metadata.name.as_deref().unwrap_or_default(),
                    ),
                    true,
                );
            }
        }
    }
    for pdb in cx.inv.pdbs() {
        let key = (
            pdb.metadata.namespace.as_deref().unwrap_or_default(),
            pdb.metadata.name.as_deref().unwrap_or_default(),
        );
        if !hit.contains_key(&key) {
            f.add(
                format!("PDB {}/{} selects no pod", key.0, key.1),
                vec![obj("PodDisruptionBudget", &pdb.metadata)],
            );
        }
    }
}

/// `pdb.overlap`: pods that two or more PDBs select (the eviction API refuses them).
pub fn overlap(cx: &Ctx<'_>, f: &mut Findings) {
    let pdbs = by_ns(cx);
    let mut groups: BTreeMap<Vec<ObjectRef>, Vec<&PodInfo>> = BTreeMap::new();
    for p in cx.inv.pods().iter().filter(|p| live(p)) {
        let hits: Vec<ObjectRef> = pdbs
            .get(p.namespace.as_str())
            .into_iter()
            .flatten()
            .filter(|b| matches(b, p))
            .map(|b| obj("PodDisruptionBudget", &b.metadata))
            .collect();
        if hits.len() > 1 {
            groups.entry(hits).or_default().push(p);
        }
    }
    for (budgets, pods) in groups {
        let names: Vec<String> = budgets.iter().map(|b| b.name.clone()).collect();
        let mut objects = budgets.clone();
        objects.extend(
            pods.iter()
                .take(MAX_OBJECTS)
                .map(|p| ObjectRef::ns("Pod", &p.namespace, &p.name)),
        );
        f.add(
            format!(
                "{} pod(s) are selected by several PDBs ({}); their evictions fail",
                pods.len(),
                names.join(", ")
            ),
            objects,
        );
    }
}

/// `pdb.missing`: Deployments and StatefulSets with two or more replicas whose pod template no
/// PDB selects.
pub fn missing(cx: &Ctx<'_>, f: &mut Findings) {
    let pdbs = by_ns(cx);
    for w in super::workloads::workloads(cx, false) {
        if w.replicas.unwrap_or(0) < 2 {
            continue;
        }
        let ns = w.meta.namespace.as_deref().unwrap_or_default();
        let probe = PodInfo {
            namespace: ns.to_owned(),
            labels: w.labels.cloned().unwrap_or_default(),
            ..PodInfo::default()
        };
        let covered = pdbs
            .get(ns)
            .into_iter()
            .flatten()
            .any(|b| matches(b, &probe));
        if !covered {
            f.add(
                format!(
                    "{} {ns}/{} has {} replicas and no PDB",
                    w.kind,
                    w.meta.name.as_deref().unwrap_or_default(),
                    w.replicas.unwrap_or(0)
                ),
                vec![obj(w.kind, w.meta)],
            );
        }
    }
}
