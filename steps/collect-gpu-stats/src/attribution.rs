//! Who holds a GPU: the pod from the exporter's labels, and the pod's owner.
//!
//! Label quirks (gpu.md §5): behind a Prometheus with `honorLabels: false` the workload's labels
//! arrive as `exported_pod`/`exported_namespace`/`exported_container`, so those win; old
//! exporters use `pod_name`/`pod_namespace`/`container_name`; and with the GPU Operator
//! (`honorLabels: true`) an unallocated GPU carries the *exporter's own* pod and namespace,
//! which must not read as a workload.
//!
//! Owners: Argo's `workflows.argoproj.io/workflow` label names the Workflow; otherwise the
//! controller reference resolved to the top controller through `opsteps::owners` (a
//! ReplicaSet's Deployment). A pod without a controller is its own owner. A failed lookup
//! keeps the controller reference and records the error; it never fails the run.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use opsteps::owners::{self, OwnerRef, Owners};

/// The label Argo puts on every pod of a workflow.
pub const ARGO_WORKFLOW_LABEL: &str = "workflows.argoproj.io/workflow";

/// A pod the exporter attributes a GPU to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container, when the exporter says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl PodRef {
    /// `namespace/pod`.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

fn first<'a>(labels: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| labels.get(*k).map(String::as_str).filter(|v| !v.is_empty()))
}

/// Exporter pod name prefixes (both charts), for sources that do not say which pod served the
/// series (Prometheus).
const EXPORTER_PREFIXES: &[&str] = &["nvidia-dcgm-exporter-", "dcgm-exporter-"];

/// The workload pod of a series, if any. `exporter` is the pod that served it (direct
/// scrapes); without it, pods named like an exporter are ignored.
#[must_use]
pub fn holder_from_labels(
    labels: &BTreeMap<String, String>,
    exporter: Option<(&str, &str)>,
) -> Option<PodRef> {
    let (pod, namespace, container) = if let Some(p) = first(labels, &["exported_pod"]) {
        (
            p,
            first(labels, &["exported_namespace"]),
            first(labels, &["exported_container"]),
        )
    } else {
        (
            first(labels, &["pod", "pod_name"])?,
            first(labels, &["namespace", "pod_namespace"]),
            first(labels, &["container", "container_name"]),
        )
    };
    let namespace = namespace?;
    let own = match exporter {
        Some((ns, name)) => ns == namespace && name == pod,
        None => EXPORTER_PREFIXES.iter().any(|p| pod.starts_with(p)),
    };
    if own {
        return None;
    }
    Some(PodRef {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.map(str::to_owned),
    })
}

/// A pod's owner as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Owner {
    /// Kind: `Deployment`, `StatefulSet`, `Job`, `Workflow`, `Pod` (no controller), …
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Owner {
    fn from_ref(r: &OwnerRef) -> Self {
        Self {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }

    /// `Kind/namespace/name`.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The outcome of one owner lookup.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The owner, when known.
    pub owner: Option<Owner>,
    /// Why the owner is only partly known (lookup error, pod gone).
    pub note: Option<String>,
}

/// Resolves owners, each controller once.
pub struct Attributor {
    owners: Owners,
    cache: HashMap<OwnerRef, Resolved>,
    /// Lookups that failed (API errors other than NotFound).
    pub errors: u64,
}

impl Attributor {
    /// With the step's owner resolver.
    #[must_use]
    pub fn new(owners: Owners) -> Self {
        Self {
            owners,
            cache: HashMap::new(),
            errors: 0,
        }
    }

    /// API requests sent.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.owners.requests()
    }

    /// The owner of `pod` (None: the pod was not found in the listing).
    pub async fn owner_of(&mut self, pod: Option<&Pod>) -> Resolved {
        let Some(pod) = pod else {
            return Resolved {
                owner: None,
                note: Some("pod not found (finished or deleted since the exporter saw it)".into()),
            };
        };
        let ns = pod.namespace().unwrap_or_default();
        if let Some(wf) = pod.labels().get(ARGO_WORKFLOW_LABEL) {
            return Resolved {
                owner: Some(Owner {
                    kind: "Workflow".into(),
                    namespace: ns,
                    name: wf.clone(),
                }),
                note: None,
            };
        }
        let Some(controller) = owners::controller_of(pod) else {
            return Resolved {
                owner: Some(Owner {
                    kind: "Pod".into(),
                    namespace: ns,
                    name: pod.name_any(),
                }),
                note: None,
            };
        };
        if let Some(r) = self.cache.get(&controller) {
            return r.clone();
        }
        let r = match self.owners.resolve(&controller).await {
            Ok(Some(w)) => Resolved {
                owner: Some(Owner::from_ref(&w.owner)),
                note: None,
            },
            Ok(None) => Resolved {
                owner: Some(Owner::from_ref(&controller)),
                note: Some(format!("{controller} is gone (orphan pod)")),
            },
            Err(e) => {
                self.errors += 1;
                tracing::warn!(owner = %controller, error = %e, "owner lookup failed; reporting the controller reference");
                Resolved {
                    owner: Some(Owner::from_ref(&controller)),
                    note: Some(format!("owner lookup failed: {e}")),
                }
            }
        };
        self.cache.insert(controller, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn exported_labels_win_and_the_exporter_itself_is_no_holder() {
        let l = labels(&[
            ("pod", "nvidia-dcgm-exporter-9v4gs"),
            ("namespace", "gpu-operator"),
            ("exported_pod", "vllm-0"),
            ("exported_namespace", "dynamo"),
            ("exported_container", "main"),
        ]);
        let h = holder_from_labels(&l, None).unwrap();
        assert_eq!(h.key(), "dynamo/vllm-0");
        assert_eq!(h.container.as_deref(), Some("main"));
        let own = labels(&[
            ("pod", "nvidia-dcgm-exporter-9v4gs"),
            ("namespace", "gpu-operator"),
        ]);
        assert_eq!(holder_from_labels(&own, None), None);
        assert_eq!(
            holder_from_labels(&own, Some(("gpu-operator", "nvidia-dcgm-exporter-9v4gs"))),
            None
        );
        let empty = labels(&[("pod", ""), ("namespace", ""), ("container", "")]);
        assert_eq!(holder_from_labels(&empty, None), None);
        let old = labels(&[
            ("pod_name", "t-1"),
            ("pod_namespace", "ml"),
            ("container_name", "c"),
        ]);
        assert_eq!(holder_from_labels(&old, None).unwrap().key(), "ml/t-1");
    }
}
