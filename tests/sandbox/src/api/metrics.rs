//! The API server's `/metrics` (Prometheus text format 0.0.4), with what a cluster checker reads:
//!
//! - `apiserver_requested_deprecated_apis{group,removed_release,resource,subresource,version}`
//!   gauges: the scenario's `apiServer.requestedDeprecatedApis`, plus every request the sandbox
//!   served for a CustomResourceDefinition version marked `deprecated: true` (with an empty
//!   `removed_release`, as the apiserver records CRD deprecations);
//! - `apiserver_request_total` from the request log, `apiserver_storage_objects` from the store,
//!   `kubernetes_build_info` and `process_start_time_seconds`.
//!
//! Under RBAC (`rbac: true`) it needs `get` on the non-resource URL `/metrics` (ClusterRole
//! `nonResourceURLs`), else 403 `forbidden: User "u" cannot get path "/metrics"`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::body::Body;
use http::{HeaderValue, Response, header};
use serde::Deserialize;
use serde_json::Value;

use super::{ResourcePath, Route};
use crate::api_state::Identity;
use crate::cluster::{Cluster, Shared};
use crate::error::ApiError;

/// The scenario's `apiServer:` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSpec {
    /// Deprecated APIs clients requested before the scenario starts.
    #[serde(default)]
    pub requested_deprecated_apis: Vec<DeprecatedApi>,
}

/// One `apiserver_requested_deprecated_apis` series.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeprecatedApi {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version, e.g. `v1beta1`.
    pub version: String,
    /// Resource (plural), e.g. `flowschemas`.
    pub resource: String,
    /// Subresource (default empty).
    #[serde(default)]
    pub subresource: String,
    /// Release that removes it, e.g. `1.32` (empty when none is planned).
    #[serde(default)]
    pub removed_release: String,
}

/// What `/metrics` remembers: deprecated APIs requested so far.
#[derive(Clone, Debug, Default)]
pub struct MetricsState {
    /// Series of `apiserver_requested_deprecated_apis`.
    pub deprecated: BTreeSet<DeprecatedApi>,
}

/// Loads the scenario's `apiServer` section.
pub fn load(cluster: &mut Cluster, spec: Option<&ApiServerSpec>) {
    if let Some(s) = spec {
        cluster
            .metrics
            .deprecated
            .extend(s.requested_deprecated_apis.iter().cloned());
    }
}

/// Records a request for a deprecated CRD version.
pub fn observe(shared: &Shared, route: &Route) {
    let Route::Resource(p) = route else {
        return;
    };
    if !crate::resources::custom::all()
        .iter()
        .any(|r| std::ptr::eq(*r, p.res))
    {
        return;
    }
    let mut c = shared.lock();
    if deprecated_crd_version(&c, p) {
        let api = DeprecatedApi {
            group: p.res.group.to_owned(),
            version: p.res.version.to_owned(),
            resource: p.res.plural.to_owned(),
            subresource: p.sub.clone().unwrap_or_default(),
            removed_release: String::new(),
        };
        c.metrics.deprecated.insert(api);
    }
}

fn deprecated_crd_version(c: &Cluster, p: &ResourcePath) -> bool {
    let crds = crate::store::res("apiextensions.k8s.io", "customresourcedefinitions");
    c.store.list(crds, None).any(|crd| {
        crd.pointer("/spec/group").and_then(Value::as_str) == Some(p.res.group)
            && crd.pointer("/spec/names/plural").and_then(Value::as_str) == Some(p.res.plural)
            && crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| {
                    v["name"].as_str() == Some(p.res.version)
                        && v["deprecated"].as_bool() == Some(true)
                })
    })
}

/// The answer to `GET /metrics`, or None for other paths.
pub fn serve(shared: &Shared, path: &str, identity: &Identity) -> Option<Response<Body>> {
    if path.trim_end_matches('/') != "/metrics" {
        return None;
    }
    let c = shared.lock();
    if c.api.rbac {
        let subject = crate::rbac::Subject {
            user: &identity.user,
            groups: &identity.groups,
        };
        if !crate::rbac::allows_non_resource(&c.store, &subject, "get", "/metrics") {
            let e = ApiError::new(
                403,
                "Forbidden",
                format!(
                    "forbidden: User {:?} cannot get path \"/metrics\"",
                    identity.user
                ),
                Some(serde_json::json!({})),
            );
            return Some(super::error_response(&e));
        }
    }
    let mut r = Response::new(Body::from(render(&c)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Some(r)
}

/// Prometheus label value escaping.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics text.
#[must_use]
pub fn render(c: &Cluster) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "apiserver_requested_deprecated_apis",
        "gauge",
        "[STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.",
    );
    for d in &c.metrics.deprecated {
        let _ = writeln!(
            out,
            "apiserver_requested_deprecated_apis{{group=\"{}\",removed_release=\"{}\",resource=\"{}\",subresource=\"{}\",version=\"{}\"}} 1",
            esc(&d.group),
            esc(&d.removed_release),
            esc(&d.resource),
            esc(&d.subresource),
            esc(&d.version)
        );
    }
    request_totals(c, &mut out);
    family(
        &mut out,
        "apiserver_storage_objects",
        "gauge",
        "[STABLE] Number of stored objects at the time of last check split by kind. In case of a fetching error, the value will be -1.",
    );
    let mut keys: Vec<_> = crate::resources::all();
    keys.sort_by_key(|r| r.key());
    keys.dedup_by_key(|r| r.key());
    for r in keys {
        let _ = writeln!(
            out,
            "apiserver_storage_objects{{resource=\"{}\"}} {}",
            esc(r.key()),
            c.store.count(r)
        );
    }
    let v = c.api.version_json();
    let s = |k: &str| esc(v[k].as_str().unwrap_or(""));
    family(
        &mut out,
        "kubernetes_build_info",
        "gauge",
        "[ALPHA] A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running.",
    );
    let _ = writeln!(
        out,
        "kubernetes_build_info{{build_date=\"{}\",compiler=\"{}\",git_commit=\"{}\",git_tree_state=\"{}\",git_version=\"{}\",go_version=\"{}\",major=\"{}\",minor=\"{}\",platform=\"{}\"}} 1",
        s("buildDate"),
        s("compiler"),
        s("gitCommit"),
        s("gitTreeState"),
        s("gitVersion"),
        s("goVersion"),
        s("major"),
        s("minor"),
        s("platform")
    );
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let started = c.clock.now().as_second() - 6 * 3600;
    let _ = writeln!(out, "process_start_time_seconds {started}");
    out
}

/// `apiserver_request_total` from the request log (resource requests only).
fn request_totals(c: &Cluster, out: &mut String) {
    family(
        out,
        "apiserver_request_total",
        "counter",
        "[STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
    );
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in c.api.log.all() {
        if r.verb.is_empty() || r.resource.is_empty() {
            continue;
        }
        let (resource, group) = r.resource.split_once('.').unwrap_or((&r.resource, ""));
        let version = match super::route(&r.path) {
            Route::Resource(p) => p.res.version,
            _ => "",
        };
        let verb = match r.verb.as_str() {
            "create" | "evict" => "POST".to_owned(),
            "update" => "PUT".to_owned(),
            other => other.to_uppercase(),
        };
        let scope = if !r.namespace.is_empty() {
            "namespace"
        } else if !r.name.is_empty() {
            "resource"
        } else {
            "cluster"
        };
        let dry_run = if r.dry_run { "All" } else { "" };
        let key = format!(
            "code=\"{}\",component=\"apiserver\",dry_run=\"{dry_run}\",group=\"{}\",resource=\"{}\",scope=\"{scope}\",subresource=\"{}\",verb=\"{verb}\",version=\"{version}\"",
            r.status,
            esc(group),
            esc(resource),
            esc(&r.subresource)
        );
        *counts.entry(key).or_default() += 1;
    }
    for (labels, n) in counts {
        let _ = writeln!(out, "apiserver_request_total{{{labels}}} {n}");
    }
}
