//! Pods, kept compact: a large cluster has tens of thousands, and the checks need a few fields
//! of each, so every page is reduced as it arrives and the full objects are dropped.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// A container waiting for a reason the checks report (`CrashLoopBackOff`, `ImagePullBackOff`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerIssue {
    /// Container name.
    pub container: String,
    /// The waiting reason.
    pub reason: String,
    /// Restarts so far.
    pub restarts: i32,
}

/// A container whose last termination was OOMKilled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomKill {
    /// Container name.
    pub container: String,
    /// When it was killed (`lastState.terminated.finishedAt`), if recorded.
    pub at: Option<Timestamp>,
    /// Restarts so far.
    pub restarts: i32,
    /// Memory request, as written.
    pub memory_request: Option<String>,
    /// Memory limit, as written.
    pub memory_limit: Option<String>,
}

/// What the checks need of one pod.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (PDB selectors, exporter labels).
    pub labels: BTreeMap<String, String>,
    /// The node it is bound to.
    pub node: Option<String>,
    /// `status.phase`.
    pub phase: String,
    /// Ready condition true.
    pub ready: bool,
    /// `creationTimestamp`.
    pub created: Option<Timestamp>,
    /// The controlling owner: kind and name.
    pub owner: Option<(String, String)>,
    /// Containers waiting for a reason worth reporting.
    pub waiting: Vec<ContainerIssue>,
    /// Containers last terminated by the OOM killer.
    pub oom: Vec<OomKill>,
    /// Whether it is being deleted.
    pub terminating: bool,
}

impl PodInfo {
    /// Reduces a pod.
    #[must_use]
    pub fn from_pod(p: Pod) -> Self {
        let meta = p.metadata;
        let spec = p.spec.unwrap_or_default();
        let status = p.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.clone(), o.name.clone()));
        let mut waiting = Vec::new();
        let mut oom = Vec::new();
        for cs in status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
        {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
                && let Some(reason) = &w.reason
                && matches!(
                    reason.as_str(),
                    "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
                )
            {
                waiting.push(ContainerIssue {
                    container: cs.name.clone(),
                    reason: reason.clone(),
                    restarts: cs.restart_count,
                });
            }
            let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            let now = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
            if let Some(t) = last
                .into_iter()
                .chain(now)
                .find(|t| t.reason.as_deref() == Some("OOMKilled"))
            {
                let res = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .find(|c| c.name == cs.name)
                    .and_then(|c| c.resources.clone())
                    .unwrap_or_default();
                let mem = |m: &Option<
                    BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
                >| {
                    m.as_ref()
                        .and_then(|m| m.get("memory"))
                        .map(|q| q.0.clone())
                };
                oom.push(OomKill {
                    container: cs.name.clone(),
                    at: t.finished_at.as_ref().map(|t| t.0),
                    restarts: cs.restart_count,
                    memory_request: mem(&res.requests),
                    memory_limit: mem(&res.limits),
                });
            }
        }
        Self {
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default(),
            node: spec.node_name,
            phase: status.phase.unwrap_or_default(),
            ready,
            created: meta.creation_timestamp.map(|t| t.0),
            owner,
            waiting,
            oom,
            terminating: meta.deletion_timestamp.is_some(),
        }
    }
}
