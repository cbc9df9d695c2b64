//! What the EKS and EC2 APIs say about the cluster: DescribeCluster and its updates, node
//! groups, add-ons with the versions compatible with the current and target minors, upgrade
//! insights, and the free addresses of the cluster's subnets. Read-only calls, each source at
//! once; AccessDenied skips the checks that need it.

use std::collections::BTreeMap;

use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use futures::StreamExt as _;

use crate::inventory::{Loaded, Source, Unavailable, UnavailableKind};
use crate::version::Minor;

/// The AWS clients and the EKS cluster name.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// EKS.
    pub eks: aws_sdk_eks::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// The EKS cluster.
    pub cluster: String,
}

impl AwsClients {
    /// Clients from the default AWS configuration (credential chain, `--region`,
    /// `AWS_ENDPOINT_URL_EKS`/`_EC2`).
    pub async fn from_env(region: Option<&str>, cluster: String) -> Self {
        let conf = opsteps::aws::sdk_config(region).await;
        Self {
            eks: aws_sdk_eks::Client::new(&conf),
            ec2: aws_sdk_ec2::Client::new(&conf),
            cluster,
        }
    }
}

/// A health issue or update error: code, message, resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Code (`InsufficientNumberOfReplicas`, `PodEvictionFailure`, ...).
    pub code: String,
    /// Message.
    pub message: String,
    /// Resource ids named.
    pub resources: Vec<String>,
}

/// A cluster update.
#[derive(Clone, Debug)]
pub struct Update {
    /// Update id.
    pub id: String,
    /// `VersionUpdate`, `ConfigUpdate`, ...
    pub kind: String,
    /// `InProgress`, `Failed`, `Cancelled`, `Successful`.
    pub status: String,
    /// Its errors.
    pub errors: Vec<Issue>,
    /// Creation time (seconds since the epoch), for ordering.
    pub created: i64,
}

/// DescribeCluster and ListUpdates.
#[derive(Clone, Debug)]
pub struct EksCluster {
    /// Name.
    pub name: String,
    /// `ACTIVE`, `UPDATING`, ...
    pub status: String,
    /// Kubernetes minor as EKS reports it.
    pub version: Option<Minor>,
    /// `health.issues`.
    pub issues: Vec<Issue>,
    /// `resourcesVpcConfig.subnetIds`.
    pub subnet_ids: Vec<String>,
    /// Cluster updates (not add-on or node group ones), newest first.
    pub updates: Vec<Update>,
}

/// A managed node group.
#[derive(Clone, Debug)]
pub struct Nodegroup {
    /// Name.
    pub name: String,
    /// `ACTIVE`, `DEGRADED`, ...
    pub status: String,
    /// `scalingConfig.desiredSize`.
    pub desired: Option<i32>,
    /// `health.issues`.
    pub issues: Vec<Issue>,
}

/// An add-on and where its version is listed.
#[derive(Clone, Debug)]
pub struct Addon {
    /// Name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// `ACTIVE`, `DEGRADED`, ...
    pub status: String,
    /// `health.issues`.
    pub issues: Vec<Issue>,
    /// For each minor asked about: whether the installed version is compatible, and the
    /// default version there.
    pub compatible: BTreeMap<Minor, (bool, Option<String>)>,
}

/// An upgrade insight.
#[derive(Clone, Debug)]
pub struct Insight {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `PASSING`, `WARNING`, `ERROR`, `UNKNOWN`.
    pub status: String,
    /// Why.
    pub reason: String,
    /// The minor it is about.
    pub kubernetes_version: Option<Minor>,
    /// DescribeInsight's recommendation.
    pub recommendation: Option<String>,
    /// Resources named (Kubernetes URIs or ARNs).
    pub resources: Vec<String>,
    /// Clients of deprecated APIs: `usage` and the user agents calling it.
    pub clients: Vec<(String, Vec<String>)>,
}

/// A subnet and its free addresses.
#[derive(Clone, Debug)]
pub struct Subnet {
    /// Subnet id.
    pub id: String,
    /// `AvailableIpAddressCount`.
    pub available: i64,
    /// Availability zone.
    pub zone: String,
}

/// Everything EKS/EC2 gave.
#[derive(Debug)]
pub struct EksData {
    /// DescribeCluster + updates.
    pub cluster: Loaded<EksCluster>,
    /// Node groups.
    pub nodegroups: Loaded<Vec<Nodegroup>>,
    /// Add-ons.
    pub addons: Loaded<Vec<Addon>>,
    /// Insights for the target minor.
    pub insights: Loaded<Vec<Insight>>,
    /// Cluster subnets.
    pub subnets: Loaded<Vec<Subnet>>,
}

impl EksData {
    /// No EKS cluster to ask about: every source says so.
    #[must_use]
    pub fn not_configured() -> Self {
        fn n<T>() -> Loaded<T> {
            Err(Unavailable::new(
                UnavailableKind::NotConfigured,
                "no EKS cluster name: pass --eks-cluster (or --cluster-name with a kubeconfig) to run the EKS checks",
            ))
        }
        Self {
            cluster: n(),
            nodegroups: n(),
            addons: n(),
            insights: n(),
            subnets: n(),
        }
    }
}

/// Classifies an SDK error: AccessDenied/403 → forbidden, throttling/5xx/transport →
/// transient, the rest → failed.
fn unavailable<E, R>(what: &str, e: &SdkError<E, R>) -> Unavailable
where
    E: ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default();
    let message = format!(
        "{what}: {}{}",
        if code.is_empty() {
            String::new()
        } else {
            format!("{code}: ")
        },
        e.message().unwrap_or(&format!("{e}"))
    );
    let kind = if code.contains("AccessDenied")
        || code == "UnauthorizedOperation"
        || code == "UnauthorizedException"
    {
        UnavailableKind::Forbidden
    } else if matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || code.contains("Throttl")
        || code.contains("ServerException")
        || code.contains("ServiceUnavailable")
        || code == "RequestLimitExceeded"
        || code == "InternalError"
    {
        UnavailableKind::Transient
    } else {
        UnavailableKind::Failed
    };
    Unavailable::new(kind, message)
}

fn issues<'a>(
    it: impl IntoIterator<Item = (Option<String>, Option<&'a str>, &'a [String])>,
) -> Vec<Issue> {
    it.into_iter()
        .map(|(code, message, res)| Issue {
            code: code.unwrap_or_default(),
            message: message.unwrap_or_default().to_owned(),
            resources: res.to_vec(),
        })
        .collect()
}

async fn cluster(c: &AwsClients) -> Loaded<EksCluster> {
    let out = c
        .eks
        .describe_cluster()
        .name(&c.cluster)
        .send()
        .await
        .map_err(|e| unavailable("DescribeCluster", &e))?;
    let cl = out.cluster.ok_or_else(|| {
        Unavailable::new(
            UnavailableKind::Failed,
            "DescribeCluster returned no cluster",
        )
    })?;
    let ids = c
        .eks
        .list_updates()
        .name(&c.cluster)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable("ListUpdates", &e))?;
    let described = describe_bounded(ids.iter().map(|id| {
        c.eks
            .describe_update()
            .name(&c.cluster)
            .update_id(id)
            .send()
    }))
    .await;
    let mut updates = Vec::new();
    for d in described {
        let d = d.map_err(|e| unavailable("DescribeUpdate", &e))?;
        if let Some(u) = d.update {
            updates.push(Update {
                id: u.id().unwrap_or_default().to_owned(),
                kind: u
                    .r#type()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
                status: u
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                errors: issues(u.errors().iter().map(|e| {
                    (
                        e.error_code().map(|c| c.as_str().to_owned()),
                        e.error_message(),
                        e.resource_ids(),
                    )
                })),
                created: u
                    .created_at()
                    .map_or(0, aws_sdk_eks::primitives::DateTime::secs),
            });
        }
    }
    updates.sort_by_key(|u| std::cmp::Reverse(u.created));
    Ok(EksCluster {
        name: cl.name().unwrap_or(&c.cluster).to_owned(),
        status: cl
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        version: cl.version().and_then(Minor::parse_loose),
        issues: issues(
            cl.health()
                .map(aws_sdk_eks::types::ClusterHealth::issues)
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    (
                        i.code().map(|c| c.as_str().to_owned()),
                        i.message(),
                        i.resource_ids(),
                    )
                }),
        ),
        subnet_ids: cl
            .resources_vpc_config()
            .map(|v| v.subnet_ids().to_vec())
            .unwrap_or_default(),
        updates,
    })
}

/// Describe calls in flight at once: a cluster's update history grows for years, and an
/// unbounded burst of DescribeUpdate calls is what EKS throttles.
const DESCRIBE_CONCURRENCY: usize = 8;

/// Runs the Describe calls with at most [`DESCRIBE_CONCURRENCY`] in flight, results in order.
async fn describe_bounded<F: std::future::Future>(
    calls: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    futures::stream::iter(calls)
        .buffered(DESCRIBE_CONCURRENCY)
        .collect()
        .await
}

async fn nodegroups(c: &AwsClients) -> Loaded<Vec<Nodegroup>> {
    let names = c
        .eks
        .list_nodegroups()
        .cluster_name(&c.cluster)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable("ListNodegroups", &e))?;
    let described = describe_bounded(names.iter().map(|n| {
        c.eks
            .describe_nodegroup()
            .cluster_name(&c.cluster)
            .nodegroup_name(n)
            .send()
    }))
    .await;
    let mut out = Vec::new();
    for d in described {
        let d = d.map_err(|e| unavailable("DescribeNodegroup", &e))?;
        if let Some(ng) = d.nodegroup {
            out.push(Nodegroup {
                name: ng.nodegroup_name().unwrap_or_default().to_owned(),
                status: ng
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                desired: ng
                    .scaling_config()
                    .and_then(aws_sdk_eks::types::NodegroupScalingConfig::desired_size),
                issues: issues(
                    ng.health()
                        .map(aws_sdk_eks::types::NodegroupHealth::issues)
                        .unwrap_or_default()
                        .iter()
                        .map(|i| {
                            (
                                i.code().map(|c| c.as_str().to_owned()),
                                i.message(),
                                i.resource_ids(),
                            )
                        }),
                ),
            });
        }
    }
    Ok(out)
}

/// Whether `version` of `addon` is listed for `minor`, and the default there.
async fn listed(
    c: &AwsClients,
    addon: &str,
    version: &str,
    minor: Minor,
) -> Loaded<(bool, Option<String>)> {
    let mut found = false;
    let mut default = None;
    let mut infos = c
        .eks
        .describe_addon_versions()
        .addon_name(addon)
        .kubernetes_version(minor.to_string())
        .into_paginator()
        .items()
        .send();
    while let Some(info) = infos.next().await {
        let info = info.map_err(|e| unavailable("DescribeAddonVersions", &e))?;
        for v in info.addon_versions() {
            let here = v
                .compatibilities()
                .iter()
                .any(|c| c.cluster_version().and_then(Minor::parse_loose) == Some(minor));
            if here && v.addon_version() == Some(version) {
                found = true;
            }
            if v.compatibilities().iter().any(|c| {
                c.cluster_version().and_then(Minor::parse_loose) == Some(minor)
                    && c.default_version()
            }) {
                default = v.addon_version().map(str::to_owned);
            }
        }
    }
    Ok((found, default))
}

async fn addons(c: &AwsClients, minors: &[Minor]) -> Loaded<Vec<Addon>> {
    let names: Vec<String> = c
        .eks
        .list_addons()
        .cluster_name(&c.cluster)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable("ListAddons", &e))?;
    let described = describe_bounded(names.iter().map(|n| async move {
        let d = c
            .eks
            .describe_addon()
            .cluster_name(&c.cluster)
            .addon_name(n)
            .send()
            .await
            .map_err(|e| unavailable("DescribeAddon", &e))?;
        let Some(a) = d.addon else { return Ok(None) };
        let version = a.addon_version().unwrap_or_default().to_owned();
        let mut compatible = BTreeMap::new();
        for m in minors {
            compatible.insert(*m, listed(c, n, &version, *m).await?);
        }
        Ok::<_, Unavailable>(Some(Addon {
            name: n.clone(),
            version,
            status: a
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            issues: issues(
                a.health()
                    .map(aws_sdk_eks::types::AddonHealth::issues)
                    .unwrap_or_default()
                    .iter()
                    .map(|i| {
                        (
                            i.code().map(|c| c.as_str().to_owned()),
                            i.message(),
                            i.resource_ids(),
                        )
                    }),
            ),
            compatible,
        }))
    }))
    .await;
    described
        .into_iter()
        .filter_map(Result::transpose)
        .collect()
}

async fn insights(c: &AwsClients, target: Option<Minor>) -> Loaded<Vec<Insight>> {
    let mut req = c.eks.list_insights().cluster_name(&c.cluster);
    if let Some(t) = target {
        req = req.filter(
            aws_sdk_eks::types::InsightsFilter::builder()
                .kubernetes_versions(t.to_string())
                .build(),
        );
    }
    let summaries = req
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| unavailable("ListInsights", &e))?;
    let mut out = Vec::new();
    for s in summaries {
        let status = s
            .insight_status()
            .and_then(|i| i.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let mut insight = Insight {
            id: s.id().unwrap_or_default().to_owned(),
            name: s.name().unwrap_or_default().to_owned(),
            reason: s
                .insight_status()
                .and_then(|i| i.reason())
                .unwrap_or_default()
                .to_owned(),
            kubernetes_version: s.kubernetes_version().and_then(Minor::parse_loose),
            recommendation: None,
            resources: Vec::new(),
            clients: Vec::new(),
            status,
        };
        // Details only for the insights that will be reported.
        if insight.status != "PASSING" {
            let d = c
                .eks
                .describe_insight()
                .cluster_name(&c.cluster)
                .id(&insight.id)
                .send()
                .await
                .map_err(|e| unavailable("DescribeInsight", &e))?;
            if let Some(i) = d.insight {
                insight.recommendation = i.recommendation().map(str::to_owned);
                insight.resources = i
                    .resources()
                    .iter()
                    .filter_map(|r| r.kubernetes_resource_uri().or(r.arn()).map(str::to_owned))
                    .collect();
                if let Some(sum) = i.category_specific_summary() {
                    for dd in sum.deprecation_details() {
                        let agents = dd
                            .client_stats()
                            .iter()
                            .filter_map(|c| c.user_agent().map(str::to_owned))
                            .collect();
                        insight
                            .clients
                            .push((dd.usage().unwrap_or_default().to_owned(), agents));
                    }
                }
            }
        }
        out.push(insight);
    }
    Ok(out)
}

async fn subnets(c: &AwsClients, cluster: &Loaded<EksCluster>) -> Loaded<Vec<Subnet>> {
    let cl = cluster.as_ref().map_err(Clone::clone)?;
    if cl.subnet_ids.is_empty() {
        return Err(Unavailable::new(
            UnavailableKind::NotConfigured,
            "DescribeCluster lists no subnets (resourcesVpcConfig.subnetIds)",
        ));
    }
    let out = c
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(cl.subnet_ids.clone()))
        .send()
        .await
        .map_err(|e| unavailable("DescribeSubnets", &e))?;
    Ok(out
        .subnets()
        .iter()
        .map(|s| Subnet {
            id: s.subnet_id().unwrap_or_default().to_owned(),
            available: i64::from(s.available_ip_address_count().unwrap_or(0)),
            zone: s.availability_zone().unwrap_or_default().to_owned(),
        })
        .collect())
}

fn skip<T>() -> Loaded<T> {
    Err(Unavailable::new(
        UnavailableKind::NotConfigured,
        "not read: no selected check needs it",
    ))
}

/// Reads the EKS/EC2 sources in `needs`; `minors` are the versions add-ons are checked against,
/// `target` the minor insights are listed for.
pub async fn load(
    c: &AwsClients,
    needs: &std::collections::BTreeSet<Source>,
    minors: &[Minor],
    target: Option<Minor>,
) -> EksData {
    let want = |s| needs.contains(&s);
    let cluster_f = async {
        if want(Source::EksCluster) || want(Source::Subnets) {
            let cl = cluster(c).await;
            let sn = if want(Source::Subnets) {
                subnets(c, &cl).await
            } else {
                skip()
            };
            (cl, sn)
        } else {
            (skip(), skip())
        }
    };
    let ((cluster, subnets), nodegroups, addons, insights) = tokio::join!(
        Box::pin(cluster_f),
        Box::pin(async {
            if want(Source::EksNodegroups) {
                nodegroups(c).await
            } else {
                skip()
            }
        }),
        Box::pin(async {
            if want(Source::EksAddons) {
                addons(c, minors).await
            } else {
                skip()
            }
        }),
        Box::pin(async {
            if want(Source::EksInsights) {
                insights(c, target).await
            } else {
                skip()
            }
        }),
    );
    EksData {
        cluster,
        nodegroups,
        addons,
        insights,
        subnets,
    }
}
