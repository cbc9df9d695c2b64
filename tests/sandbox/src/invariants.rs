//! Invariant checks the API layer runs on every request that removes a pod, so tests can assert
//! after a run that no client broke a PDB, touched a protected pod, or wrote while in dry-run.

use serde::Serialize;
use serde_json::Value;

use crate::labels;
use crate::podutil;
use crate::resources::well_known;
use crate::store::Store;

/// Annotation that marks a pod no client may evict or delete.
pub const PROTECTED_ANNOTATION: &str = "sandbox.opsteps.io/protected";
/// Annotation the kubelet puts on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Which invariant was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ViolationKind {
    /// A healthy pod's eviction or deletion left fewer healthy pods than a PDB's desiredHealthy.
    PdbBreached,
    /// A protected or mirror pod was evicted or deleted.
    ProtectedPod,
    /// A client flagged dry-run sent a mutating request without `dryRun=All`.
    DryRunMutation,
}

/// One broken invariant.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Which invariant.
    pub kind: ViolationKind,
    /// The authenticated user.
    pub user: String,
    /// `namespace/name` of the pod (or the request path for dry-run violations).
    pub target: String,
    /// `namespace/name` of the PDB, for PDB violations.
    pub pdb: Option<String>,
    /// Healthy pods the PDB selects after the removal, for PDB violations.
    pub healthy_after: Option<i64>,
    /// The PDB's `status.desiredHealthy`, for PDB violations.
    pub desired_healthy: Option<i64>,
    /// `eviction`, `delete`, `deletecollection`, or `METHOD path` for dry-run violations.
    pub via: String,
    /// Human-readable summary.
    pub message: String,
    /// Virtual time.
    pub virtual_time: String,
}

/// Checks a non-dry-run removal of `pod` (before it is applied): PDB and protected-pod rules.
#[must_use]
pub fn check_pod_removal(
    store: &Store,
    pod: &Value,
    user: &str,
    via: &str,
    now: &str,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let (ns, name) = podutil::ns_name(pod);
    let target = format!("{ns}/{name}");
    let annotations = pod.pointer("/metadata/annotations");
    let protected = annotations
        .and_then(|a| a.get(PROTECTED_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true");
    let mirror = annotations.and_then(|a| a.get(MIRROR_ANNOTATION)).is_some();
    if protected || mirror {
        out.push(Violation {
            kind: ViolationKind::ProtectedPod,
            user: user.to_owned(),
            target: target.clone(),
            pdb: None,
            healthy_after: None,
            desired_healthy: None,
            via: via.to_owned(),
            message: format!(
                "{} pod {target} was removed by {user} via {via}",
                if mirror { "mirror" } else { "protected" }
            ),
            virtual_time: now.to_owned(),
        });
    }
    if !podutil::is_healthy(pod) {
        return out;
    }
    let pod_labels = labels::labels(pod);
    for pdb in store.list(well_known::pdbs(), Some(ns)) {
        if !labels::selector_matches(pdb.pointer("/spec/selector"), pod_labels) {
            continue;
        }
        let Some(desired) = pdb
            .pointer("/status/desiredHealthy")
            .and_then(Value::as_i64)
        else {
            continue;
        };
        let selector = pdb.pointer("/spec/selector");
        let healthy_after = store
            .list(well_known::pods(), Some(ns))
            .filter(|p| podutil::ns_name(p).1 != name)
            .filter(|p| {
                podutil::is_healthy(p) && labels::selector_matches(selector, labels::labels(p))
            })
            .count() as i64;
        if healthy_after < desired {
            let pdb_name = format!("{ns}/{}", podutil::ns_name(pdb).1);
            out.push(Violation {
                kind: ViolationKind::PdbBreached,
                user: user.to_owned(),
                target: target.clone(),
                pdb: Some(pdb_name.clone()),
                healthy_after: Some(healthy_after),
                desired_healthy: Some(desired),
                via: via.to_owned(),
                message: format!(
                    "{via} of {target} by {user} left {healthy_after} healthy pods for PDB {pdb_name}, which needs {desired}"
                ),
                virtual_time: now.to_owned(),
            });
        }
    }
    out
}

/// The violation recorded when a dry-run client sends a mutating request.
#[must_use]
pub fn dry_run_mutation(user: &str, method: &str, path: &str, now: &str) -> Violation {
    Violation {
        kind: ViolationKind::DryRunMutation,
        user: user.to_owned(),
        target: path.to_owned(),
        pdb: None,
        healthy_after: None,
        desired_healthy: None,
        via: format!("{method} {path}"),
        message: format!("{user} is in dry-run mode but sent {method} {path} without dryRun=All"),
        virtual_time: now.to_owned(),
    }
}

/// The invariant report `sandbox serve` writes on exit (`--invariants-out`) and serves at
/// `GET /sandbox/invariants`: `ok` is true when no invariant was broken.
#[must_use]
pub fn report(c: &crate::cluster::Cluster) -> Value {
    let (requests, mutations) = c.api.log.counts();
    serde_json::json!({
        "kind": "SandboxInvariantReport",
        "ok": c.api.violations.is_empty(),
        "virtualTime": c.now(),
        "requests": requests,
        "effectiveMutations": mutations,
        "violations": c.api.violations,
    })
}
