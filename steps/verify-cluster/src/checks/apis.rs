//! Removed APIs: objects applied with an API the target no longer serves, and clients that
//! still request one (the API server's `apiserver_requested_deprecated_apis`).

use std::collections::BTreeMap;

use super::{Ctx, MAX_OBJECTS};
use crate::finding::{Findings, ObjectRef};
use crate::version::Minor;

/// Removed `group/version` + kind → (the minor that removed it, the replacement). Kubernetes
/// 1.22–1.32 removals (see the README for the source); `*` as kind means every kind.
pub const REMOVED: &[(&str, &str, (u32, u32), &str)] = &[
    (
        "extensions/v1beta1",
        "Ingress",
        (1, 22),
        "networking.k8s.io/v1",
    ),
    (
        "networking.k8s.io/v1beta1",
        "*",
        (1, 22),
        "networking.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "*",
        (1, 22),
        "admissionregistration.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        "*",
        (1, 22),
        "apiextensions.k8s.io/v1",
    ),
    (
        "apiregistration.k8s.io/v1beta1",
        "*",
        (1, 22),
        "apiregistration.k8s.io/v1",
    ),
    (
        "authentication.k8s.io/v1beta1",
        "*",
        (1, 22),
        "authentication.k8s.io/v1",
    ),
    (
        "authorization.k8s.io/v1beta1",
        "*",
        (1, 22),
        "authorization.k8s.io/v1",
    ),
    (
        "certificates.k8s.io/v1beta1",
        "*",
        (1, 22),
        "certificates.k8s.io/v1",
    ),
    (
        "coordination.k8s.io/v1beta1",
        "*",
        (1, 22),
        "coordination.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io/v1beta1",
        "*",
        (1, 22),
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io/v1beta1",
        "*",
        (1, 22),
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "CSIDriver",
        (1, 22),
        "storage.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "StorageClass",
        (1, 22),
        "storage.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "VolumeAttachment",
        (1, 22),
        "storage.k8s.io/v1",
    ),
    ("batch/v1beta1", "CronJob", (1, 25), "batch/v1"),
    (
        "discovery.k8s.io/v1beta1",
        "EndpointSlice",
        (1, 25),
        "discovery.k8s.io/v1",
    ),
    (
        "events.k8s.io/v1beta1",
        "Event",
        (1, 25),
        "events.k8s.io/v1",
    ),
    (
        "autoscaling/v2beta1",
        "HorizontalPodAutoscaler",
        (1, 25),
        "autoscaling/v2",
    ),
    (
        "policy/v1beta1",
        "PodDisruptionBudget",
        (1, 25),
        "policy/v1",
    ),
    (
        "policy/v1beta1",
        "PodSecurityPolicy",
        (1, 25),
        "Pod Security Admission",
    ),
    (
        "node.k8s.io/v1beta1",
        "RuntimeClass",
        (1, 25),
        "node.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "*",
        (1, 26),
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        (1, 26),
        "autoscaling/v2",
    ),
    (
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        (1, 27),
        "storage.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "*",
        (1, 29),
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "*",
        (1, 32),
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The removal of `api_version`/`kind`, if it is removed: (minor, replacement).
#[must_use]
pub fn removal(api_version: &str, kind: &str) -> Option<(Minor, &'static str)> {
    REMOVED
        .iter()
        .find(|(a, k, _, _)| *a == api_version && (*k == "*" || *k == kind))
        .map(|(_, _, (ma, mi), r)| (Minor::new(*ma, *mi), *r))
}

/// The minor removals count against: the target before an upgrade, else the current one.
#[must_use]
pub fn horizon(cx: &Ctx<'_>) -> Option<Minor> {
    cx.target.or(cx.inv.server_minor())
}

/// `apis.removed`.
pub fn removed(cx: &Ctx<'_>, f: &mut Findings) {
    let Some(h) = horizon(cx) else { return };
    let mut groups: BTreeMap<(String, String, Minor, &str), Vec<ObjectRef>> = BTreeMap::new();
    for u in &cx.inv.api_usage {
        if let Some((m, repl)) = removal(&u.api_version, &u.kind)
            && m <= h
        {
            groups
                .entry((u.api_version.clone(), u.kind.clone(), m, repl))
                .or_default()
                .push(u.object.clone());
        }
    }
    for ((api, kind, m, repl), objs) in groups {
        let n = objs.len();
        f.add(
            format!("{n} object(s) were applied as {api} {kind}, removed in {m} (use {repl})"),
            objs.into_iter().take(MAX_OBJECTS).collect(),
        );
    }
}

/// `apis.deprecated-requests`.
pub fn deprecated_requests(cx: &Ctx<'_>, f: &mut Findings) {
    let (Ok(list), Some(h)) = (&cx.inv.metrics, horizon(cx)) else {
        return;
    };
    for d in list {
        let Some(m) = d.removed_release else { continue };
        if m <= h {
            let gv = if d.group.is_empty() {
                d.version.clone()
            } else {
                format!("{}/{}", d.group, d.version)
            };
            f.add(
                format!(
                    "clients requested {gv} {} since the API server started; it is removed in {m}",
                    d.resource
                ),
                vec![ObjectRef::cluster(
                    "APIResource",
                    &format!("{}.{gv}", d.resource),
                )],
            );
        }
    }
}
