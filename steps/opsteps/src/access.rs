//! Permission pre-check: before its first mutation a step asks the API server, with one
//! `SelfSubjectAccessReview` per permission, whether it may do everything it is about to do,
//! and stops with exit 2 naming every missing verb and resource. Without it a least-privilege
//! role that lacks one verb fails half-way through with a 403, some nodes cordoned and some
//! pods evicted.
//!
//! ```no_run
//! # async fn f(client: kube::Client) -> Result<(), opsteps::exit::StepError> {
//! use opsteps::access::{Permission, require};
//!
//! let needed = [
//!     Permission::new("patch", "", "nodes"),
//!     Permission::new("create", "", "pods").subresource("eviction"),
//!     Permission::new("watch", "policy", "poddisruptionbudgets"),
//!     Permission::new("create", "", "events").namespace("kube-system"),
//! ];
//! require(&client, &needed, &opsteps::retry::RetryPolicy::default()).await?;
//! # Ok(()) }
//! ```
//!
//! Every authenticated user may create a SelfSubjectAccessReview (the `system:basic-user`
//! role), so the check needs no RBAC of its own. An API server without the endpoint (404) is
//! logged and the step goes on: the check is there for a clear early message; a missing
//! permission still stops the step later with its 403.

use std::fmt;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::exit::StepError;
use crate::retry::RetryPolicy;

/// One thing a step needs to be allowed to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`, ...
    pub verb: String,
    /// API group; `""` for the core group.
    pub group: String,
    /// Resource plural (`pods`, `nodes`, `poddisruptionbudgets`).
    pub resource: String,
    /// Subresource (`eviction`, `status`), if any.
    pub subresource: Option<String>,
    /// Namespace; `None` means every namespace (or a cluster-scoped resource).
    pub namespace: Option<String>,
}

impl Permission {
    /// `verb` on `group`/`resource` in every namespace.
    #[must_use]
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: None,
            namespace: None,
        }
    }

    /// The same permission on a subresource (`pods/eviction`).
    #[must_use]
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_owned());
        self
    }

    /// The same permission in one namespace only.
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    fn review(&self) -> SelfSubjectAccessReview {
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(self.verb.clone()),
                    group: Some(self.group.clone()),
                    resource: Some(self.resource.clone()),
                    subresource: self.subresource.clone(),
                    namespace: self.namespace.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        }
    }
}

/// As an RBAC rule reads: `create pods/eviction`, `watch poddisruptionbudgets.policy`,
/// `create events (namespace kube-system)`.
impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(s) = &self.subresource {
            write!(f, "/{s}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " (namespace {ns})"),
            None => Ok(()),
        }
    }
}

/// The API server's answer for each permission: those it denies, in the order given. `None`
/// when the server has no SelfSubjectAccessReview endpoint (404).
pub async fn missing(
    client: &Client,
    needed: &[Permission],
    retry: &RetryPolicy,
) -> Result<Option<Vec<Permission>>, StepError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let reviews = needed.iter().map(|p| {
        let api = api.clone();
        async move {
            let review = p.review();
            let pp = PostParams::default();
            let what = format!("SelfSubjectAccessReview {p}");
            retry
                .retry(&what, || api.create(&pp, &review))
                .await
                .map(|r| (p, r))
        }
    });
    let mut denied = Vec::new();
    for answer in futures::future::join_all(reviews).await {
        match answer {
            Ok((p, r)) => {
                if !r.status.is_some_and(|s| s.allowed) {
                    denied.push(p.clone());
                }
            }
            Err(crate::retry::RetryError::Permanent(kube::Error::Api(s))) if s.code == 404 => {
                return Ok(None);
            }
            Err(e) => return Err(e.into_step_error("check permissions (SelfSubjectAccessReview)")),
        }
    }
    Ok(Some(denied))
}

/// Checks `needed` and returns a bad-input error (exit 2, nothing changed) naming every
/// permission the API server denies. Call it before the first mutation.
#[tracing::instrument(skip_all, fields(permissions = needed.len()), err)]
pub async fn require(
    client: &Client,
    needed: &[Permission],
    retry: &RetryPolicy,
) -> Result<(), StepError> {
    match missing(client, needed, retry).await? {
        None => {
            tracing::warn!(
                "the API server has no SelfSubjectAccessReview endpoint; permissions not checked in advance"
            );
            Ok(())
        }
        Some(denied) if denied.is_empty() => Ok(()),
        Some(denied) => {
            let list: Vec<String> = denied.iter().map(ToString::to_string).collect();
            Err(StepError::bad_input(format!(
                "missing permissions: {}; grant them to this step's identity (the step's README lists the RBAC it needs); nothing was changed",
                list.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests;
