//! CustomResourceDefinitions: a CRD written through the API registers its served versions as
//! resources (`crate::resources::custom`), so their objects get the generic CRUD, list, watch,
//! discovery and namespace cleanup every built-in resource has, and the CRD reports
//! `NamesAccepted` and `Established` as the apiextensions-apiserver does once it serves them.

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::resources::custom::{self, Spec};
use crate::resources::{self, ResourceInfo};

fn crd_resource() -> &'static ResourceInfo {
    resources::find("apiextensions.k8s.io", "customresourcedefinitions")
        .expect("customresourcedefinitions are served")
}

/// The served versions of `crd`, as resource specs (empty when the CRD is malformed).
#[must_use]
pub fn specs(crd: &Value) -> Vec<Spec> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let (group, plural, kind) = (s(&spec["group"]), s(&names["plural"]), s(&names["kind"]));
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = Some(s(&names["singular"]))
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| Spec {
            group: group.clone(),
            version: s(&v["name"]),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced: spec["scope"] != "Cluster",
            short_names: short_names.clone(),
            status: v["subresources"]["status"].is_object(),
        })
        .filter(|sp| !sp.version.is_empty())
        .collect()
}

/// Serves the versions of the CRD `name` and marks it established.
pub fn install(cluster: &mut Cluster, name: &str) {
    let Some(crd) = cluster.store.get(crd_resource(), "", name) else {
        return;
    };
    let specs = specs(&crd);
    if specs.is_empty() {
        return;
    }
    for spec in &specs {
        custom::register(spec);
    }
    let now = cluster.now();
    crate::controllers::util::mutate(&mut cluster.store, crd_resource(), "", name, |o| {
        let condition = |kind: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": "True", "lastTransitionTime": now,
                   "reason": reason, "message": message})
        };
        o["status"]["acceptedNames"] = o["spec"]["names"].clone();
        o["status"]["storedVersions"] = json!([specs[0].version]);
        o["status"]["conditions"] = json!([
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted"
            ),
        ]);
    });
}

/// Installs every CRD in the store (after a scenario load).
pub fn install_all(cluster: &mut Cluster) {
    let names: Vec<String> = cluster
        .store
        .list(crd_resource(), None)
        .map(|o| crate::podutil::ns_name(o).1.to_owned())
        .collect();
    for n in names {
        install(cluster, &n);
    }
}

/// Whether `res` is served by this cluster: built-in resources always, custom ones while the
/// cluster has a CRD serving that version (registration is process-wide, CRDs are not).
#[must_use]
pub fn served(cluster: &Cluster, res: &ResourceInfo) -> bool {
    if resources::RESOURCES.iter().any(|r| std::ptr::eq(r, res)) {
        return true;
    }
    cluster
        .store
        .get(crd_resource(), "", &format!("{}.{}", res.plural, res.group))
        .is_some_and(|crd| specs(&crd).iter().any(|s| s.version == res.version))
}

/// Deletes the custom objects of the deleted CRD `name` (`<plural>.<group>`, every version), as
/// the apiextensions-apiserver's finalizer does.
pub fn uninstall(cluster: &mut Cluster, name: &str) {
    for res in custom::all().into_iter().filter(|r| r.key() == name) {
        let objs: Vec<(String, String)> = cluster
            .store
            .list(res, None)
            .map(|o| {
                let (ns, name) = crate::podutil::ns_name(o);
                (ns.to_owned(), name.to_owned())
            })
            .collect();
        for (ns, name) in objs {
            cluster.store.remove(res, &ns, &name);
        }
    }
}

/// After a CRD write through the API: serve it, or on deletion remove its objects. `obj` is
/// what the API answered (the CRD, or for a deletion its last state).
pub fn after_write(cluster: &mut Cluster, verb: &str, obj: &Value) {
    // A deletion answers with the object or, once it is gone, a Status naming it.
    let Some(name) = obj
        .pointer("/metadata/name")
        .or_else(|| obj.pointer("/details/name"))
        .and_then(Value::as_str)
    else {
        return;
    };
    if cluster.store.get(crd_resource(), "", name).is_some() {
        install(cluster, name);
    } else if verb == "delete" {
        uninstall(cluster, name);
    }
}
