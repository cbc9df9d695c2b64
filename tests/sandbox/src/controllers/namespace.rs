//! Namespace lifecycle: namespaces get `status.phase: Active`; a namespace with a
//! deletionTimestamp is `Terminating`, its objects are deleted (pods gracefully), and the
//! namespace is removed once it is empty.

use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::pods;
use super::util;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::{RESOURCES, well_known};

/// One pass.
pub fn run(cluster: &mut Cluster, ctx: &mut Ctx) {
    let namespaces: Vec<Arc<Value>> = cluster
        .store
        .list(well_known::namespaces(), None)
        .cloned()
        .collect();
    for ns in namespaces {
        let name = podutil::ns_name(&ns).1.to_owned();
        let terminating = ns
            .ptr("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        if !terminating {
            if ns.ptr("/status/phase").is_none() {
                util::mutate(
                    &mut cluster.store,
                    well_known::namespaces(),
                    "",
                    &name,
                    |o| o["status"]["phase"] = json!("Active"),
                );
            }
            continue;
        }
        util::mutate(
            &mut cluster.store,
            well_known::namespaces(),
            "",
            &name,
            |o| o["status"]["phase"] = json!("Terminating"),
        );
        let mut remaining = 0usize;
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            let objs: Vec<Arc<Value>> = cluster.store.list(res, Some(&name)).cloned().collect();
            remaining += objs.len();
            for o in objs {
                let n = podutil::ns_name(&o).1;
                pods::delete(&mut cluster.store, res, &name, n, ctx.now);
            }
        }
        if remaining == 0 {
            tracing::info!(namespace = %name, "namespace deleted");
            cluster.store.remove(well_known::namespaces(), "", &name);
        }
    }
}
