//! Pods: crash loops, image pulls, long Pending, OOM kills. Findings are grouped by owner, so a
//! Deployment of a thousand crashing pods is one finding naming it and a few of its pods.

use std::collections::BTreeMap;

use super::{Ctx, MAX_OBJECTS};
use crate::finding::{Findings, ObjectRef};
use crate::inventory::PodInfo;

/// The workload a pod belongs to: a ReplicaSet's Deployment (by the `<deploy>-<hash>` naming),
/// its StatefulSet/DaemonSet/Job, or the pod itself.
fn owner(p: &PodInfo) -> ObjectRef {
    match &p.owner {
        Some((kind, name)) if kind == "ReplicaSet" => match name.rsplit_once('-') {
            Some((d, _)) => ObjectRef::ns("Deployment", &p.namespace, d),
            None => ObjectRef::ns(kind, &p.namespace, name),
        },
        Some((kind, name)) if kind != "Node" => ObjectRef::ns(kind, &p.namespace, name),
        _ => ObjectRef::ns("Pod", &p.namespace, &p.name),
    }
}

/// Groups matching pods by owner and adds one finding per owner.
fn by_owner<'a>(pods: impl Iterator<Item = (&'a PodInfo, String)>, f: &mut Findings, what: &str) {
    let mut groups: BTreeMap<ObjectRef, Vec<(&PodInfo, String)>> = BTreeMap::new();
    for (p, detail) in pods {
        groups.entry(owner(p)).or_default().push((p, detail));
    }
    for (o, list) in groups {
        let n = list.len();
        let mut objects = vec![o.clone()];
        if o.kind != "Pod" {
            objects.extend(
                list.iter()
                    .take(MAX_OBJECTS)
                    .map(|(p, _)| ObjectRef::ns("Pod", &p.namespace, &p.name)),
            );
        }
        let first = &list[0].1;
        let msg = if o.kind == "Pod" {
            format!(
                "pod {}/{} {what}: {first}",
                o.namespace.as_deref().unwrap_or_default(),
                o.name
            )
        } else {
            format!("{n} pod(s) of {o} {what}: {first}")
        };
        f.add(msg, objects);
    }
}

fn waiting(cx: &Ctx<'_>, f: &mut Findings, reasons: &[&str], what: &str) {
    let hits = cx.inv.pods().iter().filter_map(|p| {
        let w = p
            .waiting
            .iter()
            .find(|w| reasons.contains(&w.reason.as_str()))?;
        Some((
            p,
            format!(
                "container {} {} ({} restarts)",
                w.container, w.reason, w.restarts
            ),
        ))
    });
    by_owner(hits, f, what);
}

/// `pods.crash-loop`.
pub fn crash_loop(cx: &Ctx<'_>, f: &mut Findings) {
    waiting(cx, f, &["CrashLoopBackOff"], "crash-looping");
}

/// `pods.image-pull`.
pub fn image_pull(cx: &Ctx<'_>, f: &mut Findings) {
    waiting(
        cx,
        f,
        &["ImagePullBackOff", "ErrImagePull", "InvalidImageName"],
        "cannot pull an image",
    );
}

/// `pods.pending`.
pub fn pending(cx: &Ctx<'_>, f: &mut Findings) {
    let limit =
        jiff::SignedDuration::try_from(cx.cfg.pending_after).unwrap_or(jiff::SignedDuration::MAX);
    let hits = cx.inv.pods().iter().filter_map(|p| {
        if p.phase != "Pending" || p.terminating {
            return None;
        }
        let age = cx.cfg.now.duration_since(p.created?);
        (age > limit).then(|| (p, format!("Pending for {}s", age.as_secs())))
    });
    by_owner(hits, f, "Pending too long");
}

/// `pods.oom-killed`: containers the OOM killer ended within the window, with their memory
/// request/limit and restarts (the signal for tuning memory).
pub fn oom_killed(cx: &Ctx<'_>, f: &mut Findings) {
    let window =
        jiff::SignedDuration::try_from(cx.cfg.oom_window).unwrap_or(jiff::SignedDuration::MAX);
    let hits = cx.inv.pods().iter().filter_map(|p| {
        let k = p.oom.iter().find(|k| {
            k.at.is_none_or(|at| cx.cfg.now.duration_since(at) <= window)
        })?;
        Some((
            p,
            format!(
                "container {} OOMKilled (memory request {}, limit {}, {} restarts)",
                k.container,
                k.memory_request.as_deref().unwrap_or("none"),
                k.memory_limit.as_deref().unwrap_or("none"),
                k.restarts
            ),
        ))
    });
    by_owner(hits, f, "were OOMKilled");
}
