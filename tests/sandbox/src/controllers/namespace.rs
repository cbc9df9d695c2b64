//! Namespace lifecycle: namespaces get `status.phase: Active`; a namespace with a
//! deletionTimestamp is `Terminating`, its objects are deleted (pods gracefully), and the
//! namespace is removed once it is empty. Every active namespace has the `default`
//! ServiceAccount (the ServiceAccount controller's work), and `default` has the `kubernetes`
//! Service (the apiserver's).

use std::sync::Arc;

use super::util::Ptr as _;
use serde_json::{Value, json};

use super::Ctx;
use super::pods;
use super::util;
use crate::cluster::Cluster;
use crate::podutil;
use crate::resources::{self, well_known};

/// Creates what every namespace has when missing: the `default` ServiceAccount, and in
/// `default` the `kubernetes` Service (EKS's service CIDR is 10.100.0.0/16).
pub fn ensure_defaults(cluster: &mut Cluster, ns: &str) {
    let now = cluster.now();
    let sa = resources::find("", "serviceaccounts").expect("serviceaccounts are served");
    if cluster.store.get(sa, ns, "default").is_none() {
        let obj = json!({"metadata": {"name": "default", "namespace": ns}});
        let _ = cluster.store.create(sa, obj, &now);
    }
    let svc = resources::find("", "services").expect("services are served");
    if ns == "default" && cluster.store.get(svc, ns, "kubernetes").is_none() {
        let obj = json!({
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": "10.100.0.1", "clusterIPs": ["10.100.0.1"], "type": "ClusterIP",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        });
        let _ = cluster.store.create(svc, obj, &now);
    }
}

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
            ensure_defaults(cluster, &name);
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
        for res in resources::all().into_iter().filter(|r| r.namespaced) {
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
