//! Pod classification, eviction with PodDisruptionBudget handling, and waiting for deletion by
//! UID. Shared by `drain-node` and `evict-old-pods`.
//!
//! The Eviction request is built here rather than with `kube::Api::evict`: kube-rs 5.0 sends the
//! body as `{"delete_options": …, "metadata": …}`, a snake_case key the API server ignores, so a
//! grace period or UID precondition given through `EvictParams` never reaches the server. We
//! send a complete `policy/v1` Eviction with `deleteOptions`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, ObjectList};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::audit::{Auditor, Target};

/// Annotation of mirror pods (the API's view of static pods).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Karpenter's opt-out: `"true"` means never disrupt voluntarily.
pub const KARPENTER_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// Cluster Autoscaler's opt-out: `"false"` means not safe to evict.
pub const CA_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The descheduler's override annotation: any value makes the pod evictable despite the
/// evictor's protections.
pub const DESCHEDULER_EVICT: &str = "descheduler.alpha.kubernetes.io/evict";
/// Priority at and above which a pod is system-critical (`system-cluster-critical` is 2e9).
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// `namespace/name` of a pod.
#[must_use]
pub fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// The pod's phase, `Pending` when unset.
#[must_use]
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Succeeded or Failed.
#[must_use]
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Has a deletionTimestamp.
#[must_use]
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A mirror pod (static pod managed by the kubelet).
#[must_use]
pub fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(MIRROR_ANNOTATION)
}

/// The controller ownerReference, if any.
#[must_use]
pub fn controller(
    pod: &Pod,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Owned by a DaemonSet (`apps/v1` controller reference).
#[must_use]
pub fn is_daemonset_pod(pod: &Pod) -> bool {
    controller(pod).is_some_and(|r| r.kind == "DaemonSet" && r.api_version.starts_with("apps/"))
}

/// Uses an `emptyDir` volume (any medium): data lost on eviction.
#[must_use]
pub fn has_empty_dir(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.empty_dir.is_some())
}

/// Uses `emptyDir` or `hostPath` (the descheduler's "local storage").
#[must_use]
pub fn has_local_storage(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.empty_dir.is_some() || v.host_path.is_some())
}

/// Mounts a PersistentVolumeClaim.
#[must_use]
pub fn has_pvc(pod: &Pod) -> bool {
    volumes(pod).any(|v| v.persistent_volume_claim.is_some())
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
}

/// System-critical: priority class `system-cluster-critical`/`system-node-critical` or a
/// priority of at least 2e9.
#[must_use]
pub fn is_critical(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let class = spec
        .and_then(|s| s.priority_class_name.as_deref())
        .unwrap_or("");
    class == "system-cluster-critical"
        || class == "system-node-critical"
        || spec
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// The pod's own opt-out from voluntary disruption, if any: Karpenter's `do-not-disrupt:
/// "true"` or Cluster Autoscaler's `safe-to-evict: "false"`. Returns the annotation that says
/// so.
#[must_use]
pub fn opt_out(pod: &Pod) -> Option<&'static str> {
    let a = pod.annotations();
    if a.get(KARPENTER_DO_NOT_DISRUPT).is_some_and(|v| v == "true") {
        return Some(KARPENTER_DO_NOT_DISRUPT);
    }
    if a.get(CA_SAFE_TO_EVICT).is_some_and(|v| v == "false") {
        return Some(CA_SAFE_TO_EVICT);
    }
    None
}

/// Ready condition is True.
#[must_use]
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// CPU (millicores) and memory (bytes) requested by the pod: the sum over containers, or the
/// largest init container if larger, as the scheduler counts it.
#[must_use]
pub fn requests(pod: &Pod) -> (i64, f64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0.0);
    };
    let get = |c: &k8s_openapi::api::core::v1::Container, r: &str| {
        c.resources
            .as_ref()
            .and_then(|rr| rr.requests.as_ref())
            .and_then(|m| m.get(r))
            .map(|q| q.0.clone())
    };
    let (mut cpu, mut mem) = (0i64, 0f64);
    for c in &spec.containers {
        cpu += get(c, "cpu")
            .and_then(|q| crate::quantity::millicores(&q))
            .unwrap_or(0);
        mem += get(c, "memory")
            .and_then(|q| crate::quantity::parse(&q))
            .unwrap_or(0.0);
    }
    for c in spec.init_containers.iter().flatten() {
        cpu = cpu.max(
            get(c, "cpu")
                .and_then(|q| crate::quantity::millicores(&q))
                .unwrap_or(0),
        );
        mem = mem.max(
            get(c, "memory")
                .and_then(|q| crate::quantity::parse(&q))
                .unwrap_or(0.0),
        );
    }
    (cpu, mem)
}

/// Whether a PDB's selector selects `pod` (policy/v1: an empty selector selects every pod in the
/// namespace, a missing one selects none).
#[must_use]
pub fn pdb_selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.namespace() != pod.namespace() {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    label_selector_matches(sel, pod.labels())
}

/// `metav1.LabelSelector` matching.
#[must_use]
pub fn label_selector_matches(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for e in sel.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let vals = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|h| vals.contains(h)),
            "NotIn" => have.is_none_or(|h| !vals.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Why a PDB can never allow a disruption, if that is so (`maxUnavailable: 0`, or a
/// `minAvailable`/desired-healthy count that equals or exceeds the pods it covers).
#[must_use]
pub fn pdb_unsatisfiable(pdb: &PodDisruptionBudget, matching_pods: usize) -> Option<String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = pdb.spec.as_ref()?;
    match &spec.max_unavailable {
        Some(IntOrString::Int(0)) => return Some("maxUnavailable is 0".into()),
        Some(IntOrString::String(s))
            if s.trim_end_matches('%')
                .parse::<f64>()
                .is_ok_and(|p| p <= 0.0) =>
        {
            return Some(format!("maxUnavailable is {s}"));
        }
        _ => {}
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) if *n > 0 && (*n as usize) >= matching_pods => {
            return Some(format!(
                "minAvailable {n} needs all {matching_pods} matching pods"
            ));
        }
        Some(IntOrString::String(s))
            if s.trim_end_matches('%')
                .parse::<f64>()
                .is_ok_and(|p| p >= 100.0) =>
        {
            return Some(format!("minAvailable is {s}"));
        }
        _ => {}
    }
    let st = pdb.status.as_ref()?;
    if st.expected_pods > 0 && st.desired_healthy >= st.expected_pods {
        return Some(format!(
            "needs {} healthy of {} expected pods",
            st.desired_healthy, st.expected_pods
        ));
    }
    None
}

/// Options of one eviction.
#[derive(Clone, Debug, Default)]
pub struct EvictOptions {
    /// `deleteOptions.gracePeriodSeconds`; `None` uses the pod's own.
    pub grace_period_seconds: Option<i64>,
    /// `dryRun=All`: the server checks budgets but persists nothing.
    pub dry_run: bool,
    /// UID precondition: never evict a same-name replacement.
    pub uid: Option<String>,
}

/// What the API server said to an eviction (or deletion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvictResult {
    /// Accepted: the pod is being deleted (or, in a dry run, would be).
    Evicted,
    /// 404: the pod is already gone.
    Gone,
    /// 409 on the UID precondition: the pod with that UID is gone, a replacement has the name.
    Replaced,
    /// 429: a PodDisruptionBudget allows no disruption now; retry later.
    Blocked {
        /// The server's message.
        message: String,
        /// The PDB named in the cause, when given.
        pdb: Option<String>,
        /// `details.retryAfterSeconds`.
        retry_after: Option<Duration>,
    },
    /// 500 "more than one PodDisruptionBudget": eviction can never succeed.
    MultiplePdbs {
        /// The server's message.
        message: String,
    },
    /// 403 with cause `NamespaceTerminating`.
    NamespaceTerminating,
    /// Anything else.
    Error {
        /// HTTP status, when the server answered.
        code: Option<u16>,
        /// Message.
        message: String,
        /// Throttling, 5xx, connection failure.
        transient: bool,
    },
}

impl EvictResult {
    fn from_kube(err: &kube::Error) -> Self {
        match err {
            kube::Error::Api(s) => {
                let causes = s
                    .details
                    .as_ref()
                    .map(|d| d.causes.as_slice())
                    .unwrap_or_default();
                match s.code {
                    404 => Self::Gone,
                    409 if s.message.contains("Precondition failed: UID")
                        || s.message.contains("UID in precondition") =>
                    {
                        Self::Replaced
                    }
                    429 => {
                        let pdb = causes
                            .iter()
                            .find(|c| c.reason == "DisruptionBudget")
                            .and_then(|c| pdb_from_cause(&c.message));
                        let retry_after = s
                            .details
                            .as_ref()
                            .map(|d| d.retry_after_seconds)
                            .filter(|&n| n > 0)
                            .map(|n| Duration::from_secs(u64::from(n)));
                        Self::Blocked {
                            message: s.message.clone(),
                            pdb,
                            retry_after,
                        }
                    }
                    500 if s.message.contains("more than one PodDisruptionBudget") => {
                        Self::MultiplePdbs {
                            message: s.message.clone(),
                        }
                    }
                    403 if causes.iter().any(|c| c.reason == "NamespaceTerminating")
                        || s.message.contains("being terminated") =>
                    {
                        Self::NamespaceTerminating
                    }
                    code => Self::Error {
                        code: Some(code),
                        message: s.message.clone(),
                        transient: crate::retry::is_transient_kube(err),
                    },
                }
            }
            other => Self::Error {
                code: None,
                message: other.to_string(),
                transient: crate::retry::is_transient_kube(other),
            },
        }
    }

    /// Short word for reports.
    #[must_use]
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Gone => "gone",
            Self::Replaced => "replaced",
            Self::Blocked { .. } => "blocked-by-pdb",
            Self::MultiplePdbs { .. } => "multiple-pdbs",
            Self::NamespaceTerminating => "namespace-terminating",
            Self::Error { .. } => "error",
        }
    }
}

/// "The disruption budget NAME needs 3 healthy pods and has 3 currently" → NAME.
fn pdb_from_cause(message: &str) -> Option<String> {
    let rest = message.strip_prefix("The disruption budget ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Sends a `policy/v1` Eviction for `namespace/name` and records it in the audit trail.
pub async fn evict(
    client: &Client,
    namespace: &str,
    name: &str,
    opts: &EvictOptions,
    audit: &Auditor,
) -> EvictResult {
    let mut delete_options = serde_json::Map::new();
    if let Some(g) = opts.grace_period_seconds {
        delete_options.insert("gracePeriodSeconds".into(), json!(g));
    }
    if let Some(uid) = &opts.uid {
        delete_options.insert("preconditions".into(), json!({ "uid": uid }));
    }
    if opts.dry_run {
        delete_options.insert("dryRun".into(), json!(["All"]));
    }
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": delete_options,
    });
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods/{name}/eviction{}",
        if opts.dry_run { "?dryRun=All" } else { "" }
    );
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    let result = match request {
        Ok(req) => match client.request::<serde_json::Value>(req).await {
            Ok(_) => EvictResult::Evicted,
            Err(e) => EvictResult::from_kube(&e),
        },
        Err(e) => EvictResult::Error {
            code: None,
            message: e.to_string(),
            transient: false,
        },
    };
    let audit_result = match &result {
        EvictResult::Evicted => Ok(201),
        EvictResult::Gone => Err((Some(404), "not found".to_owned())),
        EvictResult::Replaced => Err((Some(409), "UID precondition failed: replaced".to_owned())),
        EvictResult::Blocked { message, .. } => Err((Some(429), message.clone())),
        EvictResult::MultiplePdbs { message } => Err((Some(500), message.clone())),
        EvictResult::NamespaceTerminating => Err((Some(403), "namespace terminating".to_owned())),
        EvictResult::Error { code, message, .. } => Err((*code, message.clone())),
    };
    audit.record(
        "evict",
        Target::namespaced("Pod", namespace, name),
        opts.dry_run,
        audit_result,
    );
    result
}

/// Deletes `namespace/name` (bypassing PDBs, for `--disable-eviction`) and audits it.
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    opts: &EvictOptions,
    audit: &Auditor,
) -> EvictResult {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut dp = kube::api::DeleteParams {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    dp.grace_period_seconds = opts
        .grace_period_seconds
        .and_then(|g| u32::try_from(g).ok());
    if let Some(uid) = &opts.uid {
        dp.preconditions = Some(kube::api::Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        });
    }
    let result = match api.delete(name, &dp).await {
        Ok(_) => EvictResult::Evicted,
        Err(e) => EvictResult::from_kube(&e),
    };
    let audit_result = match &result {
        EvictResult::Evicted => Ok(200),
        other => Err((None, other.verdict().to_owned())),
    };
    audit.record(
        "delete",
        Target::namespaced("Pod", namespace, name),
        opts.dry_run,
        audit_result,
    );
    result
}

/// Lists all pods matching `lp` in pages of 500, the way kubectl drain does.
pub async fn list_pods(api: &Api<Pod>, lp: &ListParams) -> Result<Vec<Pod>, kube::Error> {
    let mut out = Vec::new();
    let mut lp = lp.clone().limit(500);
    loop {
        let page: ObjectList<Pod> = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// The pods a watch currently sees: `namespace/name` → (UID, deletion time).
pub type PodSet = HashMap<String, (String, Option<jiff::Timestamp>)>;

/// A watch over a set of pods (one node's, for example) that answers "are these UIDs gone?"
/// without polling each pod. Stops when dropped.
#[derive(Debug)]
pub struct PodWatch {
    rx: watch::Receiver<WatchState>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`PodWatch`] knows.
#[derive(Clone, Debug)]
enum WatchState {
    /// The first list has not arrived.
    Pending,
    /// The pods seen now.
    Ready(Arc<PodSet>),
    /// The API server refuses the watch for good (401/403): waiting would only hang.
    Failed(String),
}

/// A watcher error that retrying will not fix: the credentials or RBAC are wrong.
#[must_use]
pub fn fatal_watch_error(e: &watcher::Error) -> Option<String> {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s.code,
        _ => return None,
    };
    matches!(code, 401 | 403).then(|| e.to_string())
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Starts watching the pods `api` and `config` select (re-listing on 410 with backoff).
    #[must_use]
    pub fn start(api: Api<Pod>, config: watcher::Config) -> Self {
        let (tx, rx) = watch::channel(WatchState::Pending);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
            let mut current = PodSet::new();
            let mut relist: Option<PodSet> = None;
            let mut refusals = 0;
            let entry = |p: &Pod| {
                let ts = p.metadata.deletion_timestamp.as_ref().map(|t| t.0);
                (key(p), (p.uid().unwrap_or_default(), ts))
            };
            while let Some(ev) = stream.next().await {
                let publish = |set: &PodSet| {
                    let _ = tx.send(WatchState::Ready(Arc::new(set.clone())));
                };
                match ev {
                    Ok(watcher::Event::Init) => relist = Some(PodSet::new()),
                    Ok(watcher::Event::InitApply(p)) => {
                        let (k, v) = entry(&p);
                        relist.get_or_insert_with(PodSet::new).insert(k, v);
                    }
                    Ok(watcher::Event::InitDone) => {
                        current = relist.take().unwrap_or_default();
                        refusals = 0;
                        publish(&current);
                    }
                    Ok(watcher::Event::Apply(p)) => {
                        let (k, v) = entry(&p);
                        current.insert(k, v);
                        publish(&current);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        // Only the deleted UID goes: a same-name replacement may already be there.
                        let (k, (uid, _)) = entry(&p);
                        if current.get(&k).is_some_and(|(u, _)| *u == uid) {
                            current.remove(&k);
                        }
                        publish(&current);
                    }
                    Err(e) => match fatal_watch_error(&e) {
                        // A refreshed token may race one refusal; three in a row are for real.
                        Some(msg) if refusals >= 2 => {
                            let _ = tx.send(WatchState::Failed(msg));
                            return;
                        }
                        Some(_) => refusals += 1,
                        None => {
                            tracing::debug!(error = %e, "pod watch error; re-listing with backoff");
                        }
                    },
                }
            }
        });
        Self { rx, task }
    }

    /// The pods seen now, once the first list has arrived; `Err` when the API server refuses
    /// the watch (401/403).
    pub async fn snapshot(&self) -> Result<Arc<PodSet>, String> {
        let mut rx = self.rx.clone();
        loop {
            match rx.borrow_and_update().clone() {
                WatchState::Ready(s) => return Ok(s),
                WatchState::Failed(e) => return Err(e),
                WatchState::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err("pod watch ended".into());
            }
        }
    }

    /// Waits until none of `uids` is present (a pod whose deletion started more than `skip_after`
    /// ago counts as gone, like kubectl's `--skip-wait-for-delete-timeout`), or until `deadline`.
    /// Returns the UIDs still present, or `Err` when the API server refuses the watch.
    pub async fn wait_gone(
        &self,
        uids: &HashSet<String>,
        skip_after: Option<Duration>,
        deadline: tokio::time::Instant,
    ) -> Result<HashSet<String>, String> {
        let mut rx = self.rx.clone();
        loop {
            rx.mark_unchanged();
            let remaining = self.present(uids, skip_after).await?;
            if remaining.is_empty() {
                return Ok(remaining);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Ok(remaining) },
                () = tokio::time::sleep_until(deadline) => return self.present(uids, skip_after).await,
                // Re-check now and then: skip-after depends on time passing, not on events.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Which of `uids` are still present.
    pub async fn present(
        &self,
        uids: &HashSet<String>,
        skip_after: Option<Duration>,
    ) -> Result<HashSet<String>, String> {
        let snap = self.snapshot().await?;
        let now = jiff::Timestamp::now();
        Ok(snap
            .values()
            .filter(|(uid, deleting)| {
                uids.contains(uid)
                    && !matches!((deleting, skip_after), (Some(t), Some(skip)) if now.duration_since(*t) > jiff::SignedDuration::try_from(skip).unwrap_or_default())
            })
            .map(|(uid, _)| uid.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn classifies_pods() {
        let ds = pod(
            json!({"metadata": {"name": "a", "namespace": "n", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]}}),
        );
        assert!(is_daemonset_pod(&ds));
        let mirror =
            pod(json!({"metadata": {"name": "m", "annotations": {MIRROR_ANNOTATION: "x"}}}));
        assert!(is_mirror(&mirror));
        let ed = pod(
            json!({"metadata": {"name": "e"}, "spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]}}),
        );
        assert!(has_empty_dir(&ed) && has_local_storage(&ed) && !has_pvc(&ed));
        let crit = pod(
            json!({"metadata": {"name": "c"}, "spec": {"containers": [], "priorityClassName": "system-node-critical"}}),
        );
        assert!(is_critical(&crit));
        let crit2 = pod(
            json!({"metadata": {"name": "c"}, "spec": {"containers": [], "priority": 2_000_001_000}}),
        );
        assert!(is_critical(&crit2));
        let dnd = pod(
            json!({"metadata": {"name": "d", "annotations": {KARPENTER_DO_NOT_DISRUPT: "true"}}}),
        );
        assert_eq!(opt_out(&dnd), Some(KARPENTER_DO_NOT_DISRUPT));
        let ste =
            pod(json!({"metadata": {"name": "d", "annotations": {CA_SAFE_TO_EVICT: "false"}}}));
        assert_eq!(opt_out(&ste), Some(CA_SAFE_TO_EVICT));
        let fine = pod(
            json!({"metadata": {"name": "d", "annotations": {CA_SAFE_TO_EVICT: "true"}}, "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(opt_out(&fine), None);
        assert!(is_finished(&fine));
        let req = pod(json!({"metadata": {"name": "r"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]}}));
        assert_eq!(requests(&req), (2000, 64.0 * 1024.0 * 1024.0));
    }

    fn pdb(
        min: Option<IntOrString>,
        max: Option<IntOrString>,
        status: Option<(i32, i32)>,
    ) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("n".into()),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector::default()),
                ..Default::default()
            }),
            status: status.map(|(desired, expected)| PodDisruptionBudgetStatus {
                desired_healthy: desired,
                expected_pods: expected,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn finds_unsatisfiable_budgets() {
        assert!(pdb_unsatisfiable(&pdb(None, Some(IntOrString::Int(0)), None), 3).is_some());
        assert!(
            pdb_unsatisfiable(&pdb(None, Some(IntOrString::String("0%".into())), None), 3)
                .is_some()
        );
        assert!(pdb_unsatisfiable(&pdb(Some(IntOrString::Int(3)), None, None), 3).is_some());
        assert!(
            pdb_unsatisfiable(
                &pdb(Some(IntOrString::String("100%".into())), None, None),
                3
            )
            .is_some()
        );
        assert!(
            pdb_unsatisfiable(&pdb(Some(IntOrString::Int(2)), None, Some((2, 3))), 3).is_none()
        );
        assert!(
            pdb_unsatisfiable(&pdb(None, Some(IntOrString::Int(1)), Some((2, 3))), 3).is_none()
        );
        assert!(
            pdb_unsatisfiable(
                &pdb(Some(IntOrString::String("50%".into())), None, Some((3, 3))),
                3
            )
            .is_some()
        );
    }

    #[test]
    fn pdb_selector_semantics() {
        let p = pod(json!({"metadata": {"name": "a", "namespace": "n", "labels": {"app": "web"}}}));
        let mut b = pdb(None, Some(IntOrString::Int(1)), None);
        assert!(
            pdb_selects(&b, &p),
            "empty selector selects all in namespace"
        );
        b.spec.as_mut().unwrap().selector = None;
        assert!(!pdb_selects(&b, &p), "null selector selects none");
        b.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: Some([("app".to_owned(), "db".to_owned())].into()),
            ..Default::default()
        });
        assert!(!pdb_selects(&b, &p));
        b.metadata.namespace = Some("other".into());
        b.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(!pdb_selects(&b, &p), "other namespace");
    }

    #[test]
    fn maps_api_answers() {
        let api =
            |v: serde_json::Value| kube::Error::Api(Box::new(serde_json::from_value(v).unwrap()));
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]}}),
        ));
        assert_eq!(
            r,
            EvictResult::Blocked {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                pdb: Some("web-pdb".into()),
                retry_after: None
            }
        );
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 500, "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
        ));
        assert!(matches!(r, EvictResult::MultiplePdbs { .. }));
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 404, "reason": "NotFound", "message": "pods \"x\" not found"}),
        ));
        assert_eq!(r, EvictResult::Gone);
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "pods \"x\" is forbidden: unable to create new content in namespace n because it is being terminated", "details": {"causes": [{"reason": "NamespaceTerminating"}]}}),
        ));
        assert_eq!(r, EvictResult::NamespaceTerminating);
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 503, "message": "unavailable"}),
        ));
        assert!(matches!(
            r,
            EvictResult::Error {
                transient: true,
                ..
            }
        ));
    }
}
