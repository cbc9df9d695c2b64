//! Reads the Kubernetes sources: every list paged through `opsteps::list::Lister` (retries,
//! deadline, SIGTERM), all of them at once, each reduced as its pages arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use opsteps::list::{ListError, Lister, Page};
use opsteps::retry::RetryError;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{
    ApiUsage, DeprecatedRequest, Loaded, PodInfo, Rbac, ServerVersion, Source, Unavailable,
    UnavailableKind,
};
use crate::finding::ObjectRef;
use crate::helm;
use crate::version::Minor;

/// How lists are made.
#[derive(Clone, Debug)]
pub struct ListOpts {
    /// Items per page.
    pub page_size: u32,
    /// The run's deadline.
    pub deadline: Instant,
    /// SIGTERM.
    pub shutdown: opsteps::shutdown::Shutdown,
}

/// What the Kubernetes API gave.
#[derive(Debug)]
pub struct KubeParts {
    /// Nodes.
    pub nodes: Loaded<Vec<Node>>,
    /// Pods.
    pub pods: Loaded<Vec<PodInfo>>,
    /// Deployments.
    pub deployments: Loaded<Vec<Deployment>>,
    /// StatefulSets.
    pub statefulsets: Loaded<Vec<StatefulSet>>,
    /// DaemonSets.
    pub daemonsets: Loaded<Vec<DaemonSet>>,
    /// PDBs.
    pub pdbs: Loaded<Vec<PodDisruptionBudget>>,
    /// HPAs.
    pub hpas: Loaded<Vec<HorizontalPodAutoscaler>>,
    /// RBAC.
    pub rbac: Loaded<Rbac>,
    /// Helm releases (latest revision each).
    pub helm: Loaded<Vec<helm::Release>>,
    /// `/metrics` deprecated API counters.
    pub metrics: Loaded<Vec<DeprecatedRequest>>,
    /// API versions applied.
    pub api_usage: Vec<ApiUsage>,
}

fn not_needed<T>() -> Loaded<T> {
    Err(Unavailable::new(
        UnavailableKind::NotConfigured,
        "not read: no selected check needs it",
    ))
}

/// Maps a list failure: 403 → forbidden (the check is skipped with the API server's message),
/// 404 → not served, deadline/SIGTERM/transient → transient, the rest → failed.
fn unavailable(e: &ListError) -> Unavailable {
    match e {
        ListError::Api { source, .. } => {
            from_kube(source.last(), matches!(source, RetryError::Permanent(_)))
        }
        ListError::Refused { message, .. } => {
            Unavailable::new(UnavailableKind::Failed, message.clone())
        }
        other => Unavailable::new(UnavailableKind::Transient, other.to_string()),
    }
}

fn from_kube(e: &kube::Error, permanent: bool) -> Unavailable {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            Unavailable::new(UnavailableKind::Forbidden, s.message.clone())
        }
        kube::Error::Api(s) if s.code == 404 => Unavailable::new(
            UnavailableKind::NotConfigured,
            format!("not served by this API server: {}", s.message),
        ),
        e if !permanent || opsteps::retry::is_transient_kube(e) => {
            Unavailable::new(UnavailableKind::Transient, e.to_string())
        }
        e => Unavailable::new(UnavailableKind::Failed, e.to_string()),
    }
}

/// Lists every `K` (cluster-wide), reducing each item with `each` as pages arrive.
async fn list<K, T>(
    client: &Client,
    opts: &ListOpts,
    lp: ListParams,
    mut each: impl FnMut(K) -> Option<T>,
) -> Loaded<Vec<T>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut out = Vec::new();
    Lister::new(K::plural(&()).into_owned())
        .page_size(opts.page_size)
        .deadline(opts.deadline)
        .shutdown(&opts.shutdown)
        .for_each_page(&api, &lp, |page| match page {
            Page::Items(items) => out.extend(items.into_iter().filter_map(&mut each)),
            Page::Restart => out.clear(),
        })
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(out)
}

/// Records which API version each object was applied with, then drops the managed fields and
/// the last-applied annotation (the largest parts of most objects, read by nothing else).
fn take_applied(kind: &str, meta: &mut ObjectMeta, out: &mut Vec<ApiUsage>) {
    let object = match &meta.namespace {
        Some(ns) => ObjectRef::ns(kind, ns, meta.name.as_deref().unwrap_or_default()),
        None => ObjectRef::cluster(kind, meta.name.as_deref().unwrap_or_default()),
    };
    if let Some(a) = meta.annotations.as_mut()
        && let Some(last) = a.remove("kubectl.kubernetes.io/last-applied-configuration")
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&last)
        && let Some(api) = v["apiVersion"].as_str()
    {
        out.push(ApiUsage {
            object: object.clone(),
            api_version: api.to_owned(),
            kind: v["kind"].as_str().unwrap_or(kind).to_owned(),
            via: "last-applied-configuration",
        });
    }
    let mut seen = BTreeSet::new();
    for mf in meta.managed_fields.take().into_iter().flatten() {
        if let Some(api) = mf.api_version
            && seen.insert(api.clone())
        {
            out.push(ApiUsage {
                object: object.clone(),
                api_version: api,
                kind: kind.to_owned(),
                via: "managedFields",
            });
        }
    }
}

/// `GET /version`.
pub async fn version(client: &Client) -> Loaded<ServerVersion> {
    let v = client
        .apiserver_version()
        .await
        .map_err(|e| from_kube(&e, true))?;
    let minor = Minor::parse_loose(&format!("{}.{}", v.major, v.minor.trim_end_matches('+')))
        .or_else(|| Minor::parse_loose(&v.git_version))
        .ok_or_else(|| {
            Unavailable::new(
                UnavailableKind::Failed,
                format!("cannot read the version {:?}", v.git_version),
            )
        })?;
    Ok(ServerVersion {
        minor,
        git_version: v.git_version,
    })
}

/// Reads `apiserver_requested_deprecated_apis` from `/metrics`.
async fn metrics(client: &Client) -> Loaded<Vec<DeprecatedRequest>> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| Unavailable::new(UnavailableKind::Failed, e.to_string()))?;
    let text = client
        .request_text(req)
        .await
        .map_err(|e| from_kube(&e, true))?;
    Ok(parse_deprecated(&text))
}

/// The `apiserver_requested_deprecated_apis` samples of a Prometheus text exposition.
#[must_use]
pub fn parse_deprecated(text: &str) -> Vec<DeprecatedRequest> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_requested_deprecated_apis{") else {
            continue;
        };
        let Some((labels, _value)) = rest.split_once('}') else {
            continue;
        };
        let mut m = BTreeMap::new();
        for part in labels.split("\",") {
            if let Some((k, v)) = part.split_once("=\"") {
                m.insert(
                    k.trim().trim_start_matches(','),
                    v.trim_end_matches('"').to_owned(),
                );
            }
        }
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        out.push(DeprecatedRequest {
            group: get("group"),
            version: get("version"),
            resource: get("resource"),
            removed_release: m.get("removed_release").and_then(|r| Minor::parse_loose(r)),
        });
    }
    out
}

async fn rbac(client: &Client, opts: &ListOpts) -> Loaded<Rbac> {
    let lp = ListParams::default;
    let (roles, cluster_roles, role_bindings, cluster_role_bindings) = tokio::join!(
        list::<Role, _>(client, opts, lp(), Some),
        list::<ClusterRole, _>(client, opts, lp(), Some),
        list::<RoleBinding, _>(client, opts, lp(), Some),
        list::<ClusterRoleBinding, _>(client, opts, lp(), Some),
    );
    Ok(Rbac {
        roles: roles?,
        cluster_roles: cluster_roles?,
        role_bindings: role_bindings?,
        cluster_role_bindings: cluster_role_bindings?,
    })
}

async fn helm_releases(client: &Client, opts: &ListOpts) -> Loaded<Vec<helm::Release>> {
    let lp = ListParams::default()
        .labels(helm::SELECTOR)
        .fields(&format!("type={}", helm::SECRET_TYPE));
    let releases = list::<Secret, _>(client, opts, lp, |s| {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let data = s.data.as_ref().and_then(|d| d.get("release")).map(|b| b.0.as_slice());
        match helm::decode(&ns, &name, data) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(namespace = %ns, secret = %name, error = %e, "skipping an unreadable Helm release");
                None
            }
        }
    })
    .await?;
    Ok(helm::latest(releases))
}

/// `f` when `want`, else "not needed" without running it.
async fn gated<T>(want: bool, f: impl Future<Output = Loaded<T>>) -> Loaded<T> {
    if want { f.await } else { not_needed() }
}

/// Lists every `K` when `want`, noting the API versions it was applied with.
async fn applied<K>(
    client: &Client,
    opts: &ListOpts,
    want: bool,
    kind: &'static str,
) -> (Loaded<Vec<K>>, Vec<ApiUsage>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if !want {
        return (not_needed(), Vec::new());
    }
    let mut usage = Vec::new();
    let listed = list::<K, _>(client, opts, ListParams::default(), |mut o| {
        take_applied(kind, o.meta_mut(), &mut usage);
        Some(o)
    })
    .await;
    (listed, usage)
}

/// Reads every Kubernetes source in `needs`, all at once.
pub async fn load_kube(client: &Client, needs: &BTreeSet<Source>, opts: &ListOpts) -> KubeParts {
    let want = |s| needs.contains(&s);
    let nodes = list::<Node, _>(client, opts, ListParams::default(), |mut n| {
        n.metadata.managed_fields = None;
        if let Some(s) = n.status.as_mut() {
            s.images = None;
        }
        Some(n)
    });
    let pods = list::<Pod, _>(client, opts, ListParams::default(), |p| {
        Some(PodInfo::from_pod(p))
    });
    let (nodes, pods, deployments, statefulsets, daemonsets, pdbs, hpas, rbac, helm, metrics) = tokio::join!(
        Box::pin(gated(want(Source::Nodes), nodes)),
        Box::pin(gated(want(Source::Pods), pods)),
        Box::pin(applied::<Deployment>(
            client,
            opts,
            want(Source::Deployments),
            "Deployment"
        )),
        Box::pin(applied::<StatefulSet>(
            client,
            opts,
            want(Source::StatefulSets),
            "StatefulSet"
        )),
        Box::pin(applied::<DaemonSet>(
            client,
            opts,
            want(Source::DaemonSets),
            "DaemonSet"
        )),
        Box::pin(applied::<PodDisruptionBudget>(
            client,
            opts,
            want(Source::Pdbs),
            "PodDisruptionBudget"
        )),
        Box::pin(applied::<HorizontalPodAutoscaler>(
            client,
            opts,
            want(Source::Hpas),
            "HorizontalPodAutoscaler"
        )),
        Box::pin(gated(want(Source::Rbac), rbac(client, opts))),
        Box::pin(gated(
            want(Source::HelmReleases),
            helm_releases(client, opts)
        )),
        Box::pin(gated(want(Source::Metrics), metrics(client))),
    );
    let mut api_usage: Vec<ApiUsage> = [
        &deployments.1,
        &statefulsets.1,
        &daemonsets.1,
        &pdbs.1,
        &hpas.1,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    api_usage.sort_by(|a, b| a.object.cmp(&b.object));
    KubeParts {
        nodes,
        pods,
        deployments: deployments.0,
        statefulsets: statefulsets.0,
        daemonsets: daemonsets.0,
        pdbs: pdbs.0,
        hpas: hpas.0,
        rbac,
        helm,
        metrics,
        api_usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deprecated_api_samples() {
        let text = "# HELP apiserver_requested_deprecated_apis x\n# TYPE apiserver_requested_deprecated_apis gauge\napiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.32\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1\napiserver_requested_deprecated_apis{group=\"\",removed_release=\"\",resource=\"endpoints\",subresource=\"\",version=\"v1\"} 1\nother_metric 3\n";
        let d = parse_deprecated(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].resource, "flowschemas");
        assert_eq!(d[0].removed_release, Some(Minor::new(1, 32)));
        assert_eq!(d[1].group, "");
        assert_eq!(d[1].removed_release, None);
    }
}
