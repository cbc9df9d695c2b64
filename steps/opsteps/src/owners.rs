//! Owner and availability resolution: from a pod's controller reference up to the workload
//! that keeps its replicas (a ReplicaSet's Deployment), and that workload's desired and
//! available replicas.
//!
//! Safety checks gate on these answers ("evict only while the owner is fully available",
//! "wait for replacements before the next node"), so a failed lookup must never read as a
//! harmless answer. Every lookup has three outcomes, kept apart:
//! - `Ok(Some(_))`: the object was read;
//! - `Ok(None)`: the API answered 404, the owner is gone (the pod is an orphan);
//! - `Err(_)`: anything else (5xx, 429 after retries, 403, a dropped connection): the caller
//!   does the safe thing (skip the pod and report it, count the owner as short, or stop).
//!
//! ```no_run
//! # async fn f(client: kube::Client, pod: k8s_openapi::api::core::v1::Pod) {
//! use opsteps::owners::{self, Owners};
//! let owners = Owners::new(client);
//! if let Some(c) = owners::controller_of(&pod) {
//!     match owners.resolve(&c).await {
//!         Ok(Some(w)) => println!("{} wants {:?} replicas", w.owner, w.desired()),
//!         Ok(None) => println!("{c} is gone"),
//!         Err(e) => println!("cannot tell: {e}"),
//!     }
//! }
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::{Client, ResourceExt};
use tracing::instrument;

use crate::retry::RetryPolicy;

/// The kinds whose replicas are read: the workloads whose pods come back after an eviction.
pub const TRACKED_KINDS: &[&str] = &["Deployment", "StatefulSet", "ReplicaSet"];

/// A namespaced owner: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerRef {
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace (the pod's).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl OwnerRef {
    /// An owner reference.
    #[must_use]
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for OwnerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Desired and available replicas of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replicas {
    /// `spec.replicas` (1 when unset, as the API defaults it).
    pub desired: i32,
    /// `status.availableReplicas`, or `readyReplicas` when the status has no availability
    /// count; 0 when neither is set.
    pub available: i32,
}

impl Replicas {
    /// Fewer replicas available than desired.
    #[must_use]
    pub fn is_short(&self) -> bool {
        self.available < self.desired
    }
}

/// The top controller of a pod, as far as gating needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The owner: the Deployment of a ReplicaSet that has one, else the controller itself.
    pub owner: OwnerRef,
    /// Replicas when the owner's kind has them ([`TRACKED_KINDS`]); `None` for other kinds,
    /// which are not read at all.
    pub replicas: Option<Replicas>,
    /// Its pods' selector (tracked kinds only).
    pub selector: Option<LabelSelector>,
    /// A paused Deployment (a template change does not roll out).
    pub paused: bool,
}

impl Workload {
    /// `spec.replicas`, for tracked kinds.
    #[must_use]
    pub fn desired(&self) -> Option<i32> {
        self.replicas.map(|r| r.desired)
    }
}

/// A lookup that failed for another reason than NotFound.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Reading the owner failed (after retrying transient errors).
    #[error("cannot read {owner}")]
    Get {
        /// The owner being read.
        owner: OwnerRef,
        /// The API or transport error.
        #[source]
        source: kube::Error,
    },
    /// The kind has no replica count to read (see [`TRACKED_KINDS`]).
    #[error("{owner}: the kind has no replicas to read")]
    Untracked {
        /// The owner.
        owner: OwnerRef,
    },
}

impl OwnerError {
    /// Whether a retry later may succeed (429, 5xx, transport); 403 and the like are not.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Get { source, .. } => crate::retry::is_transient_kube(source),
            Self::Untracked { .. } => false,
        }
    }

    /// The owner the lookup was about.
    #[must_use]
    pub fn owner(&self) -> &OwnerRef {
        match self {
            Self::Get { owner, .. } | Self::Untracked { owner } => owner,
        }
    }
}

/// The pod's controller reference (`controller: true`), in the pod's namespace.
#[must_use]
pub fn controller_of(pod: &Pod) -> Option<OwnerRef> {
    let r = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))?;
    Some(OwnerRef::new(
        &r.kind,
        &pod.namespace().unwrap_or_default(),
        &r.name,
    ))
}

/// Whether any owner reference of the pod is a DaemonSet, controller or not: the
/// descheduler's rule (`IsDaemonsetPod` looks at every reference), so a pod adopted by or
/// co-owned with a DaemonSet is protected like one it controls.
#[must_use]
pub fn has_daemonset_owner(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "DaemonSet")
}

/// Resolves owners through one client, retrying transient errors, and counts the requests it
/// sends (retries included) for the step's report.
pub struct Owners {
    client: Client,
    retry: RetryPolicy,
    requests: AtomicU64,
}

/// What a tracked kind's object gives: replicas, selector, paused, controller Deployment.
struct Read {
    replicas: Replicas,
    selector: LabelSelector,
    paused: bool,
    deployment: Option<String>,
}

/// The kinds whose replicas are read, reduced to what gating needs.
trait Tracked:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + fmt::Debug
{
    fn read(self) -> Read;
}

/// `spec.replicas` (the API defaults it to 1), and `availableReplicas`, else `readyReplicas`.
fn replicas(desired: Option<i32>, available: Option<i32>, ready: Option<i32>) -> Replicas {
    Replicas {
        desired: desired.unwrap_or(1),
        available: available.or(ready).unwrap_or(0),
    }
}

impl Tracked for Deployment {
    fn read(self) -> Read {
        let (spec, st) = (
            self.spec.unwrap_or_default(),
            self.status.unwrap_or_default(),
        );
        Read {
            replicas: replicas(spec.replicas, st.available_replicas, st.ready_replicas),
            selector: spec.selector,
            paused: spec.paused.unwrap_or(false),
            deployment: None,
        }
    }
}

impl Tracked for StatefulSet {
    fn read(self) -> Read {
        let (spec, st) = (
            self.spec.unwrap_or_default(),
            self.status.unwrap_or_default(),
        );
        Read {
            replicas: replicas(spec.replicas, st.available_replicas, st.ready_replicas),
            selector: spec.selector,
            paused: false,
            deployment: None,
        }
    }
}

impl Tracked for ReplicaSet {
    fn read(self) -> Read {
        let deployment = self
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true) && r.kind == "Deployment")
            .map(|r| r.name.clone());
        let (spec, st) = (
            self.spec.unwrap_or_default(),
            self.status.unwrap_or_default(),
        );
        Read {
            replicas: replicas(spec.replicas, st.available_replicas, st.ready_replicas),
            selector: spec.selector,
            paused: false,
            deployment,
        }
    }
}

impl Owners {
    /// A resolver with the default retry policy (no deadline).
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self::with_retry(client, RetryPolicy::default())
    }

    /// A resolver with `retry` (set its deadline to the step's).
    #[must_use]
    pub fn with_retry(client: Client, retry: RetryPolicy) -> Self {
        Self {
            client,
            retry,
            requests: AtomicU64::new(0),
        }
    }

    /// Requests sent so far.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The workload behind a controller reference: a ReplicaSet resolves to the Deployment
    /// that controls it (to the ReplicaSet itself when that Deployment is gone); Deployments
    /// and StatefulSets are read as they are; other kinds are returned without a request and
    /// without replicas. `Ok(None)`: the controller itself is gone.
    #[instrument(skip_all, fields(owner = %controller), err)]
    pub async fn resolve(&self, controller: &OwnerRef) -> Result<Option<Workload>, OwnerError> {
        if !TRACKED_KINDS.contains(&controller.kind.as_str()) {
            return Ok(Some(Workload {
                owner: controller.clone(),
                replicas: None,
                selector: None,
                paused: false,
            }));
        }
        let Some(read) = self.read(controller).await? else {
            return Ok(None);
        };
        if let Some(dep) = &read.deployment {
            let top = OwnerRef::new("Deployment", &controller.namespace, dep);
            if let Some(d) = self.read(&top).await? {
                return Ok(Some(workload(top, d)));
            }
        }
        Ok(Some(workload(controller.clone(), read)))
    }

    /// The owner's current replicas (one GET). `Ok(None)`: the owner is gone.
    #[instrument(skip_all, fields(owner = %owner), err)]
    pub async fn replicas(&self, owner: &OwnerRef) -> Result<Option<Replicas>, OwnerError> {
        if !TRACKED_KINDS.contains(&owner.kind.as_str()) {
            return Err(OwnerError::Untracked {
                owner: owner.clone(),
            });
        }
        Ok(self.read(owner).await?.map(|r| r.replicas))
    }

    async fn read(&self, owner: &OwnerRef) -> Result<Option<Read>, OwnerError> {
        match owner.kind.as_str() {
            "Deployment" => self.read_as::<Deployment>(owner).await,
            "StatefulSet" => self.read_as::<StatefulSet>(owner).await,
            "ReplicaSet" => self.read_as::<ReplicaSet>(owner).await,
            _ => Err(OwnerError::Untracked {
                owner: owner.clone(),
            }),
        }
    }

    async fn read_as<K: Tracked>(&self, owner: &OwnerRef) -> Result<Option<Read>, OwnerError> {
        let got = self
            .get::<K>(&owner.namespace, &owner.name, &owner.to_string())
            .await
            .map_err(|source| OwnerError::Get {
                owner: owner.clone(),
                source,
            })?;
        Ok(got.map(Tracked::read))
    }

    async fn get<K>(&self, ns: &str, name: &str, what: &str) -> Result<Option<K>, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        self.retry
            .run(what, || {
                self.requests.fetch_add(1, Ordering::Relaxed);
                api.get_opt(name)
            })
            .await
    }
}

fn workload(owner: OwnerRef, r: Read) -> Workload {
    Workload {
        owner,
        replicas: Some(r.replicas),
        selector: Some(r.selector),
        paused: r.paused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(refs: &serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "n", "ownerReferences": refs}}),
        )
        .unwrap()
    }

    #[test]
    fn any_daemonset_reference_protects() {
        let ds = |controller: bool| json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "d", "controller": controller});
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "r", "controller": true});
        assert!(has_daemonset_owner(&pod(&json!([ds(true)]))));
        assert!(
            has_daemonset_owner(&pod(&json!([rs.clone(), ds(false)]))),
            "a non-controller DaemonSet reference counts, as in the descheduler"
        );
        assert!(!has_daemonset_owner(&pod(&json!([rs]))));
        assert!(!has_daemonset_owner(&pod(&json!([]))));
    }

    #[test]
    fn controller_is_the_reference_marked_controller() {
        let p = pod(&json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "c"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}
        ]));
        assert_eq!(
            controller_of(&p),
            Some(OwnerRef::new("ReplicaSet", "n", "web-1"))
        );
        assert_eq!(controller_of(&pod(&json!([]))), None);
        assert_eq!(
            OwnerRef::new("ReplicaSet", "n", "web-1").to_string(),
            "ReplicaSet n/web-1"
        );
    }

    #[test]
    fn errors_classify_by_status() {
        let e = |code| OwnerError::Get {
            owner: OwnerRef::new("Deployment", "n", "d"),
            source: kube::Error::Api(
                kube::core::Status::failure("m", "R")
                    .with_code(code)
                    .boxed(),
            ),
        };
        assert!(e(503).is_transient());
        assert!(e(429).is_transient());
        assert!(!e(403).is_transient());
        assert_eq!(e(403).to_string(), "cannot read Deployment n/d");
        assert!(
            Replicas {
                desired: 3,
                available: 2
            }
            .is_short()
        );
    }
}
