//! The checks, one file per family. Each reads the shared [`Inventory`] and adds findings;
//! none sends a request.

pub mod access;
pub mod addons;
pub mod apis;
pub mod autoscaling;
pub mod cluster;
pub mod disruption;
pub mod gpu;
pub mod helm;
pub mod nodes;
pub mod pods;
pub mod workloads;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::args::Config;
use crate::finding::ObjectRef;
use crate::inventory::Inventory;
use crate::version::Minor;

/// What a check reads.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The snapshot.
    pub inv: &'a Inventory,
    /// The run's configuration.
    pub cfg: &'a Config,
    /// pre-upgrade: the minor the control plane moves to (flag, else the API server's + 1).
    pub target: Option<Minor>,
}

/// A namespaced object's reference from its metadata.
#[must_use]
pub fn obj(kind: &str, meta: &ObjectMeta) -> ObjectRef {
    match &meta.namespace {
        Some(ns) => ObjectRef::ns(kind, ns, meta.name.as_deref().unwrap_or_default()),
        None => ObjectRef::cluster(kind, meta.name.as_deref().unwrap_or_default()),
    }
}

/// At most this many objects are named per finding (the count is in the message).
pub const MAX_OBJECTS: usize = 10;
