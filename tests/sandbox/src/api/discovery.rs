//! Discovery documents, shaped like the apiserver's legacy (unaggregated) discovery. kubectl asks
//! for aggregated discovery first and falls back to these when the response is plain JSON.

use serde_json::{Value, json};

use crate::resources::{self, ResourceInfo};

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Groups served, in the apiserver's priority order, with their versions.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in resources::all() {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// `GET /api`.
#[must_use]
pub fn api_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    })
}

fn group_json(name: &str) -> Value {
    let versions: Vec<Value> = groups()
        .into_iter()
        .filter(|(g, _)| *g == name)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

/// `GET /apis`.
#[must_use]
pub fn group_list() -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in groups() {
        if !names.contains(&g) {
            names.push(g);
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": names.iter().map(|g| group_json(g)).collect::<Vec<_>>()})
}

/// `GET /apis/{group}`, or `None` for an unknown group.
#[must_use]
pub fn group(name: &str) -> Option<Value> {
    groups().iter().any(|(g, _)| *g == name).then(|| {
        let mut v = group_json(name);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

fn subresource_entry(r: &ResourceInfo, sub: &str, kind: &str) -> Value {
    let (group, version, verbs): (&str, &str, &[&str]) = match sub {
        "eviction" => ("policy", "v1", &["create"]),
        "scale" => ("autoscaling", "v1", &["get", "patch", "update"]),
        "status" => (r.group, r.version, &["get", "patch", "update"]),
        "proxy" => (
            r.group,
            r.version,
            &["create", "delete", "get", "patch", "update"],
        ),
        "binding" => (r.group, r.version, &["create"]),
        "finalize" => (r.group, r.version, &["update"]),
        // `log` and anything else: read-only.
        _ => (r.group, r.version, &["get"]),
    };
    let mut e = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if group != r.group || version != r.version {
        e["group"] = json!(group);
        e["version"] = json!(version);
    }
    e
}

/// `GET /api/v1` or `/apis/{group}/{version}`.
#[must_use]
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut items = Vec::new();
    for r in resources::in_group_version(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": if resources::create_only(r) { &["create"][..] } else { ALL_VERBS },
            "storageVersionHash": format!("{:x}", r.key().len() * 7919 + r.kind.len()),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if matches!(
            r.plural,
            "pods"
                | "services"
                | "deployments"
                | "replicasets"
                | "statefulsets"
                | "daemonsets"
                | "horizontalpodautoscalers"
                | "jobs"
                | "cronjobs"
        ) {
            e["categories"] = json!(["all"]);
        }
        items.push(e);
        for (sub, kind) in r.subresources {
            items.push(subresource_entry(r, sub, kind));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group/versions served, core first.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("", "v1")];
    out.extend(groups());
    out
}

/// `GET /openapi/v3`: where each group/version's document lives.
#[must_use]
pub fn openapi_v3_root() -> Value {
    let paths: serde_json::Map<String, Value> = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let p = gv_path(g, v);
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=sandbox-{}", p.len())}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn schema_name(r: &ResourceInfo) -> String {
    let short = match r.group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("io.k8s.api.{short}.{}.{}", r.version, r.kind)
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`: a minimal OpenAPI v3 document. It lists every write
/// operation with its GVK and the `fieldValidation` parameter, which is what kubectl reads to
/// choose server-side validation for `create -f` and `apply -f`; the object schemas are
/// open (no properties), so kubectl computes apply patches from its compiled-in types.
#[must_use]
pub fn openapi_v3_gv(rest: &str) -> Option<Value> {
    let (group, version) = group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == rest)?;
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
    ]);
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in resources::in_group_version(group, version) {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let name = schema_name(r);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "requestBody": {"content": {"application/json": {"schema": reference}}},
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
            })
        };
        let base = format!(
            "/{}{}",
            gv_path(group, version),
            if r.namespaced {
                "/namespaces/{namespace}"
            } else {
                ""
            }
        );
        paths.insert(format!("{base}/{}", r.plural), json!({"post": op("post")}));
        paths.insert(
            format!("{base}/{}/{{name}}", r.plural),
            json!({"put": op("put"), "patch": op("patch")}),
        );
        schemas.insert(
            name,
            json!({"type": "object", "x-kubernetes-group-version-kind": [gvk]}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
