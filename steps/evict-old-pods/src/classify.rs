//! Per-pod decisions, pure and unit-tested: state filter, age and spread, and the
//! DefaultEvictor's protections with the `descheduler.alpha.kubernetes.io/evict` override.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use opsteps::evict;

use crate::config::{Config, Evictor};

/// Why a pod past its lifetime was not evicted (the report's `skipped-<reason>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// No `spec.nodeName`: the descheduler never sees unscheduled pods.
    Unscheduled,
    /// On a node that is not Ready (or not listed).
    NodeNotReady,
    /// A mirror pod.
    Mirror,
    /// A static pod.
    Static,
    /// Already terminating.
    Terminating,
    /// Any owner reference is a DaemonSet (controller or not), as in the descheduler.
    Daemonset,
    /// System-critical priority.
    SystemCritical,
    /// Priority at or above the threshold.
    Priority,
    /// No owner.
    Bare,
    /// emptyDir or hostPath volume.
    LocalStorage,
    /// Mounts a PVC (with `--ignore-pvc-pods`).
    Pvc,
    /// No PDB selects it (with `--ignore-pods-without-pdb`).
    NoPdb,
    /// Its owner has fewer pods than `--min-replicas`.
    MinReplicas,
    /// Started less than `--min-pod-age` ago, or not started.
    MinPodAge,
    /// karpenter.sh/do-not-disrupt or safe-to-evict=false.
    OptOut,
    /// The total limit was reached.
    LimitTotal,
    /// The node's limit was reached.
    LimitNode,
    /// The namespace's limit was reached.
    LimitNamespace,
    /// The owner's limit was reached.
    LimitOwner,
    /// The owner did not have all replicas Ready within the replacement timeout.
    OwnerUnavailable,
    /// The owner could not be read (an API error other than NotFound), so replacement gating,
    /// the per-owner limit and restart mode could not be checked.
    OwnerError,
    /// The owner is a paused Deployment (`--mode restart` would not roll it).
    OwnerPaused,
    /// The run's timeout passed first.
    Deadline,
    /// SIGTERM came first.
    Shutdown,
}

impl Skip {
    /// `skipped-<reason>`.
    #[must_use]
    pub fn verdict(self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        format!("skipped-{}", v.as_str().unwrap_or("unknown"))
    }
}

/// 64-bit FNV-1a: stable across runs, versions and platforms (unlike std's `DefaultHasher`),
/// so a pod keeps its spread offset from one run to the next.
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The pod's own lifetime: `max - (fnv1a(uid) mod spread)` seconds (`max` when spread is 0).
#[must_use]
pub fn effective_lifetime(max: u64, spread: u64, uid: &str) -> u64 {
    if spread == 0 {
        return max;
    }
    max.saturating_sub(fnv1a(uid.as_bytes()) % spread)
}

/// Age in whole seconds, truncated like Go's `int(d.Seconds())`; negative for a creation time
/// in the future; `None` without a creationTimestamp.
#[must_use]
pub fn age_seconds(pod: &Pod, now: jiff::Timestamp) -> Option<i64> {
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    let d = now.duration_since(created);
    Some(d.as_secs())
}

/// Whether the pod is past `lifetime` (strictly greater, as the descheduler compares).
#[must_use]
pub fn is_past(age: i64, lifetime: u64) -> bool {
    age > 0 && age.cast_unsigned() > lifetime
}

fn statuses_match(list: Option<&Vec<ContainerStatus>>, states: &[String]) -> bool {
    list.into_iter().flatten().any(|cs| {
        let st = cs.state.as_ref();
        let waiting = st
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_ref());
        let terminated = st
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_ref());
        waiting.is_some_and(|r| states.contains(r))
            || terminated.is_some_and(|r| states.contains(r))
    })
}

/// The descheduler's `states` filter: phase, pod reason, or a container's waiting/terminated
/// reason (init and ephemeral containers only when asked). Empty `states` matches all.
#[must_use]
pub fn matches_states(pod: &Pod, cfg: &Config) -> bool {
    let wanted = &cfg.states;
    if wanted.is_empty() {
        return true;
    }
    let pod_status = pod.status.as_ref();
    let phase = evict::phase(pod);
    if wanted.iter().any(|s| s == phase) {
        return true;
    }
    if pod_status
        .and_then(|s| s.reason.as_ref())
        .is_some_and(|r| wanted.contains(r))
    {
        return true;
    }
    let Some(s) = pod_status else { return false };
    statuses_match(s.container_statuses.as_ref(), wanted)
        || (cfg.including_init_containers
            && statuses_match(s.init_container_statuses.as_ref(), wanted))
        || (cfg.including_ephemeral_containers
            && statuses_match(s.ephemeral_container_statuses.as_ref(), wanted))
}

/// Whether a pod is static (created by the kubelet from a file or URL, not the API).
#[must_use]
pub fn is_static(pod: &Pod) -> bool {
    pod.annotations()
        .get("kubernetes.io/config.source")
        .is_some_and(|s| s != "api")
}

/// The DefaultEvictor's verdict, except `minReplicas` (which needs the counts of the whole
/// listing; see [`min_replicas_skip`]). `None` = evictable. The evict annotation overrides
/// every check here, as in the descheduler.
#[must_use]
pub fn protection(
    pod: &Pod,
    ev: &Evictor,
    priority_threshold: Option<i32>,
    pdbs: &[PodDisruptionBudget],
    now: jiff::Timestamp,
) -> Option<Skip> {
    if pod.annotations().contains_key(evict::DESCHEDULER_EVICT) {
        return None;
    }
    if evict::is_mirror(pod) {
        return Some(Skip::Mirror);
    }
    if is_static(pod) {
        return Some(Skip::Static);
    }
    if evict::is_terminating(pod) {
        return Some(Skip::Terminating);
    }
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    if owners.is_empty() && !(ev.evict_failed_bare && evict::phase(pod) == "Failed") {
        return Some(Skip::Bare);
    }
    if !ev.evict_daemonset && opsteps::owners::has_daemonset_owner(pod) {
        return Some(Skip::Daemonset);
    }
    if !ev.evict_system_critical {
        if evict::is_critical(pod) {
            return Some(Skip::SystemCritical);
        }
        if let Some(t) = priority_threshold
            && pod
                .spec
                .as_ref()
                .and_then(|s| s.priority)
                .is_some_and(|p| p >= t)
        {
            return Some(Skip::Priority);
        }
    }
    if !ev.evict_local_storage && evict::has_local_storage(pod) {
        return Some(Skip::LocalStorage);
    }
    if ev.ignore_pvc && evict::has_pvc(pod) {
        return Some(Skip::Pvc);
    }
    if let Some(min) = ev.min_pod_age_seconds {
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0);
        let min = i64::try_from(min).unwrap_or(i64::MAX);
        let young = started.is_none_or(|t| now.duration_since(t).as_secs() < min);
        if young {
            return Some(Skip::MinPodAge);
        }
    }
    if ev.ignore_without_pdb && !pdbs.iter().any(|p| evict::pdb_selects(p, pod)) {
        return Some(Skip::NoPdb);
    }
    if ev.honor_opt_out && evict::opt_out(pod).is_some() {
        return Some(Skip::OptOut);
    }
    None
}

/// The UID `minReplicas` counts by: the first owner reference's.
#[must_use]
pub fn first_owner_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.as_str())
}

/// `minReplicas` (applies when > 1): skip when the first owner has fewer pods.
#[must_use]
pub fn min_replicas_skip(
    min: Option<u32>,
    owner_pods: Option<u32>,
    overridden: bool,
) -> Option<Skip> {
    match (min, owner_pods) {
        (Some(m), Some(n)) if m > 1 && !overridden && n < m => Some(Skip::MinReplicas),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn owned(extra: serde_json::Value) -> Pod {
        let mut base = json!({"metadata": {"name": "p", "namespace": "n", "uid": "u1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o1", "controller": true}]},
            "spec": {"containers": [], "nodeName": "a"}, "status": {"phase": "Running"}});
        json_merge(&mut base, extra);
        pod(base)
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-11-26T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn age_is_truncated_whole_seconds_and_strictly_greater() {
        let p = owned(json!({"metadata": {"creationTimestamp": "2026-11-26T02:00:00Z"}}));
        let at = |s: &str| age_seconds(&p, s.parse().unwrap()).unwrap();
        assert_eq!(at("2026-11-26T10:00:00Z"), 28800);
        assert!(!is_past(at("2026-11-26T10:00:00Z"), 28800));
        assert!(
            !is_past(at("2026-11-26T10:00:00.9Z"), 28800),
            "max + 0.9 s stays"
        );
        assert!(is_past(at("2026-11-26T10:00:01Z"), 28800));
        let future = owned(json!({"metadata": {"creationTimestamp": "2026-11-26T11:00:00Z"}}));
        let age = age_seconds(&future, now()).unwrap();
        assert!(age < 0 && !is_past(age, 0), "future creation never matches");
    }

    #[test]
    fn spread_is_stable_and_bounded() {
        assert_eq!(effective_lifetime(100, 0, "x"), 100);
        let a = effective_lifetime(28800, 3600, "uid-a");
        assert_eq!(a, effective_lifetime(28800, 3600, "uid-a"));
        assert!((25201..=28800).contains(&a));
        let distinct: std::collections::HashSet<u64> = (0..50)
            .map(|i| effective_lifetime(28800, 3600, &format!("uid-{i}")))
            .collect();
        assert!(distinct.len() > 40, "replicas born together expire apart");
    }

    #[test]
    fn states_match_phase_reason_and_containers() {
        let mut cfg = crate::config::Config::from_args(
            &<crate::Args as clap::Parser>::try_parse_from([crate::STEP, "--states", "Running"])
                .unwrap(),
        )
        .unwrap();
        assert!(matches_states(&owned(json!({})), &cfg));
        cfg.states = vec!["CrashLoopBackOff".into()];
        assert!(!matches_states(&owned(json!({})), &cfg));
        let crash = owned(
            json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
        );
        assert!(matches_states(&crash, &cfg));
        cfg.states = vec!["OOMKilled".into()];
        let init = owned(
            json!({"status": {"initContainerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}),
        );
        assert!(!matches_states(&init, &cfg));
        cfg.including_init_containers = true;
        assert!(matches_states(&init, &cfg));
        cfg.states = vec!["NodeLost".into()];
        assert!(matches_states(
            &owned(json!({"status": {"reason": "NodeLost"}})),
            &cfg
        ));
    }

    #[test]
    fn protections_and_the_evict_annotation() {
        let ev = Evictor {
            honor_opt_out: true,
            ..Evictor::default()
        };
        let p = |v| protection(&owned(v), &ev, None, &[], now());
        assert_eq!(p(json!({})), None);
        assert_eq!(
            p(
                json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "d", "controller": true}]}})
            ),
            Some(Skip::Daemonset)
        );
        // Any owner reference, not only the controller's, as the descheduler checks.
        assert_eq!(
            p(json!({"metadata": {"ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o1", "controller": true},
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "d"}]}})),
            Some(Skip::Daemonset)
        );
        assert_eq!(
            p(json!({"spec": {"volumes": [{"name": "t", "emptyDir": {}}]}})),
            Some(Skip::LocalStorage)
        );
        assert_eq!(
            p(json!({"spec": {"priorityClassName": "system-cluster-critical"}})),
            Some(Skip::SystemCritical)
        );
        assert_eq!(
            p(json!({"metadata": {"deletionTimestamp": "2026-11-26T09:00:00Z"}})),
            Some(Skip::Terminating)
        );
        assert_eq!(
            p(json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})),
            Some(Skip::Mirror)
        );
        assert_eq!(
            p(json!({"metadata": {"annotations": {"karpenter.sh/do-not-disrupt": "true"}}})),
            Some(Skip::OptOut)
        );
        let bare = pod(json!({"metadata": {"name": "b"}, "status": {"phase": "Failed"}}));
        assert_eq!(protection(&bare, &ev, None, &[], now()), Some(Skip::Bare));
        let allow = Evictor {
            evict_failed_bare: true,
            ..Evictor::default()
        };
        assert_eq!(protection(&bare, &allow, None, &[], now()), None);
        // The evict annotation overrides every protection, even "false".
        assert_eq!(
            p(
                json!({"metadata": {"annotations": {"descheduler.alpha.kubernetes.io/evict": "false"}},
                "spec": {"volumes": [{"name": "t", "emptyDir": {}}], "priorityClassName": "system-node-critical"}})
            ),
            None
        );
        // Priority threshold: evictable only below it; no priority passes.
        let pr = owned(json!({"spec": {"priority": 1000}}));
        assert_eq!(
            protection(&pr, &ev, Some(1000), &[], now()),
            Some(Skip::Priority)
        );
        assert_eq!(protection(&pr, &ev, Some(1001), &[], now()), None);
        assert_eq!(
            protection(&owned(json!({})), &ev, Some(0), &[], now()),
            None
        );
        // minPodAge counts from startTime; no startTime is not evictable.
        let min = Evictor {
            min_pod_age_seconds: Some(600),
            ..Evictor::default()
        };
        assert_eq!(
            protection(&owned(json!({})), &min, None, &[], now()),
            Some(Skip::MinPodAge)
        );
        let started = owned(json!({"status": {"startTime": "2026-11-26T09:00:00Z"}}));
        assert_eq!(protection(&started, &min, None, &[], now()), None);
        assert_eq!(
            min_replicas_skip(Some(3), Some(2), false),
            Some(Skip::MinReplicas)
        );
        assert_eq!(min_replicas_skip(Some(3), Some(2), true), None);
        assert_eq!(min_replicas_skip(Some(1), Some(0), false), None);
    }

    #[test]
    fn verdict_names() {
        assert_eq!(Skip::NodeNotReady.verdict(), "skipped-node-not-ready");
        assert_eq!(Skip::LimitTotal.verdict(), "skipped-limit-total");
    }
}
