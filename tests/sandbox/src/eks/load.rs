//! Building the EKS view from a scenario: its `cluster`, `nodeGroups` and optional `eks:`
//! section.

use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};

use super::{Addon, Behaviour, DEFAULT_ACCOUNT, EksState, Nodegroup, Timings, catalog, spec, uuid};
use crate::cluster::Cluster;
use crate::controllers::util::{fnv, parse_duration};
use crate::scenario::{NodeGroupSpec, Scenario};

pub(super) fn release_for(version: &str) -> String {
    format!("{version}.0-20251001")
}

fn ami_type(spec: &NodeGroupSpec) -> String {
    if spec.capacity.gpu.is_some_and(|g| g > 0)
        || spec
            .instance_type
            .as_deref()
            .is_some_and(|t| t.starts_with('p') || t.starts_with('g'))
    {
        "AL2023_x86_64_NVIDIA".into()
    } else {
        "AL2023_x86_64_STANDARD".into()
    }
}

/// The minor of a kubelet version (`v1.32.3-eks-473151a` → `1.32`).
pub(super) fn kubelet_minor(v: &str) -> Option<String> {
    let mut it = v.trim_start_matches('v').split('.');
    Some(format!("{}.{}", it.next()?, it.next()?))
}

pub(super) fn new_nodegroup(spec: NodeGroupSpec, version: String, at: Timestamp) -> Nodegroup {
    let count = spec.count;
    Nodegroup {
        status: "ACTIVE".into(),
        min_size: 0,
        max_size: (count * 2).max(1),
        desired_size: count,
        release_version: release_for(&version),
        version,
        ami_type: ami_type(&spec),
        max_unavailable: 1,
        health_issues: Vec::new(),
        created_at: at,
        modified_at: at,
        on_update: None,
        due: None,
        subnets: Vec::new(),
        node_role: String::new(),
        next_index: count,
        image: None,
        spec,
    }
}

fn default_insights(minor: u32) -> Vec<spec::InsightSpec> {
    let next = format!("1.{}", minor + 1);
    [
        (
            "Kubelet version skew",
            "All nodes run a kubelet version supported by the next Kubernetes version.",
        ),
        (
            &*format!("Deprecated APIs removed in Kubernetes v{next}"),
            "No requests to APIs removed in the next version were seen in the last 30 days.",
        ),
        (
            "EKS add-on version compatibility",
            "Installed add-on versions are compatible with the next Kubernetes version.",
        ),
        ("Cluster health issues", "The cluster has no health issues."),
    ]
    .iter()
    .map(|(name, description)| spec::InsightSpec {
        name: (*name).to_owned(),
        description: Some((*description).to_owned()),
        kubernetes_version: Some(next.clone()),
        ..spec::InsightSpec::default()
    })
    .collect()
}

/// Builds [`Cluster::eks`] from `scenario` (after the scenario's nodes exist) and sets the
/// Kubernetes `/version` minor from `cluster.version`.
// One pass over the `eks:` section, in the order of its fields.
#[allow(clippy::too_many_lines)]
pub fn load(cluster: &mut Cluster, scenario: &Scenario) -> anyhow::Result<()> {
    let eks_spec = scenario.eks.clone().unwrap_or_default();
    let now = cluster.clock.now();
    let mut s = EksState {
        name: scenario.cluster.name.clone(),
        region: scenario.cluster.region.clone(),
        account: eks_spec
            .account_id
            .clone()
            .unwrap_or_else(|| DEFAULT_ACCOUNT.into()),
        version: scenario.cluster.version.clone(),
        platform_version: scenario.cluster.platform_version.clone(),
        created_at: now - SignedDuration::from_hours(24 * 200),
        health_issues: eks_spec.health_issues.clone(),
        default_admin: eks_spec.default_admin,
        token_clock: eks_spec.token_clock,
        access: eks_spec.access_entries.clone(),
        ..EksState::default()
    };
    let minor = s.minor();
    anyhow::ensure!(
        catalog::MINORS.contains(&minor),
        "cluster.version {:?}: the EKS API simulates 1.31 to 1.35",
        s.version
    );
    let t = &eks_spec.timings;
    let d = |v: &Option<String>, default: Duration| -> anyhow::Result<Duration> {
        v.as_deref().map_or(Ok(default), parse_duration)
    };
    let dt = Timings::default();
    s.timings = Timings {
        cluster_update: d(&t.cluster_update, dt.cluster_update)?,
        addon_update: d(&t.addon_update, dt.addon_update)?,
        nodegroup_update: d(&t.nodegroup_update, dt.nodegroup_update)?,
        nodegroup_config: d(&t.nodegroup_config, dt.nodegroup_config)?,
        nodegroup_create: d(&t.nodegroup_create, dt.nodegroup_create)?,
        nodegroup_delete: d(&t.nodegroup_delete, dt.nodegroup_delete)?,
        pod_eviction_timeout: d(&t.pod_eviction_timeout, dt.pod_eviction_timeout)?,
    };
    let created = s.created_at;
    for g in &scenario.node_groups {
        let version = g
            .version
            .as_deref()
            .and_then(kubelet_minor)
            .unwrap_or_else(|| s.version.clone());
        s.nodegroups
            .insert(g.name.clone(), new_nodegroup(g.clone(), version, created));
    }
    for o in &eks_spec.nodegroups {
        let ng = s
            .nodegroups
            .get_mut(&o.name)
            .with_context(|| format!("eks.nodegroups: {} is not in nodeGroups", o.name))?;
        if let Some(v) = o.min_size {
            ng.min_size = v;
        }
        if let Some(v) = o.max_size {
            ng.max_size = v;
        }
        anyhow::ensure!(
            ng.min_size <= ng.desired_size && ng.desired_size <= ng.max_size,
            "eks.nodegroups {}: need minSize <= count <= maxSize",
            o.name
        );
        if let Some(v) = &o.release_version {
            ng.release_version.clone_from(v);
        }
        if let Some(v) = &o.ami_type {
            ng.ami_type.clone_from(v);
        }
        ng.health_issues.clone_from(&o.health_issues);
        if !ng.health_issues.is_empty() {
            ng.status = "DEGRADED".into();
        }
        if let Some(b) = &o.on_update {
            ng.on_update = Some(Behaviour::from_spec(b, "PodEvictionFailure")?);
        }
    }
    let addons = eks_spec.addons.clone().unwrap_or_else(|| {
        ["vpc-cni", "kube-proxy", "coredns"]
            .iter()
            .map(|n| spec::AddonSpec {
                name: (*n).to_owned(),
                ..spec::AddonSpec::default()
            })
            .collect()
    });
    for a in &addons {
        let version = match &a.version {
            Some(v) => v.clone(),
            None => catalog::default_version(&a.name, minor)
                .with_context(|| {
                    format!(
                        "eks.addons {}: give a version (not in the catalogue)",
                        a.name
                    )
                })?
                .to_owned(),
        };
        if catalog::known(&a.name) {
            anyhow::ensure!(
                catalog::exists(&a.name, &version),
                "eks.addons {}: version {version} is not in the catalogue ({:?})",
                a.name,
                catalog::versions_for(&a.name, minor)
            );
        }
        if let Some(cv) = &a.configuration_values {
            catalog::validate_configuration(&a.name, cv)
                .map_err(|e| anyhow::anyhow!("eks.addons {}: configurationValues: {e}", a.name))?;
        }
        let on_update = a
            .on_update
            .as_ref()
            .map(|b| Behaviour::from_spec(b, "InsufficientNumberOfReplicas"))
            .transpose()?;
        s.addons.insert(
            a.name.clone(),
            Addon {
                name: a.name.clone(),
                version,
                status: a.status.clone().unwrap_or_else(|| "ACTIVE".into()),
                health_issues: a.health_issues.clone(),
                configuration_values: a.configuration_values.clone(),
                service_account_role_arn: a.service_account_role_arn.clone(),
                created_at: created,
                modified_at: created,
                conflict: a.conflict,
                on_update,
                degraded_until: None,
                awaiting_rollout: false,
            },
        );
    }
    let mut insights = eks_spec
        .insights
        .clone()
        .unwrap_or_else(|| default_insights(minor));
    for i in &mut insights {
        spec::check_insight(i)?;
        if i.id.is_none() {
            i.id = Some(uuid(fnv(i.name.as_bytes())));
        }
        if i.kubernetes_version.is_none() {
            i.kubernetes_version = Some(format!("1.{}", minor + 1));
        }
    }
    s.insights = insights;
    for f in &eks_spec.faults {
        s.add_fault(f);
    }
    cluster.api.version_minor = minor;
    cluster.eks = s;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eks::Outcome;
    use crate::scenario::cluster_from;

    fn cluster(yaml: &str) -> Cluster {
        let s = Scenario::from_yaml(yaml).unwrap();
        let mut c = cluster_from(&s).unwrap();
        load(&mut c, &s).unwrap();
        c
    }

    #[test]
    fn load_reads_the_eks_section_and_sets_version() {
        let c = cluster(
            r"
cluster: {name: prod-a, region: eu-west-1, version: '1.32'}
nodeGroups: [{name: gpu, count: 2, instanceType: p4d.24xlarge}]
eks:
  addons: [{name: coredns}, {name: vpc-cni, version: v1.19.2-eksbuild.1, onUpdate: {result: Degrade}}]
  nodegroups: [{name: gpu, minSize: 1, maxSize: 4}]
",
        );
        assert_eq!(c.api.version_minor, 32);
        assert_eq!(c.eks.addons["coredns"].version, "v1.11.4-eksbuild.2");
        assert_eq!(
            c.eks.addons["vpc-cni"].on_update.as_ref().unwrap().outcome,
            Outcome::Degrade
        );
        let g = &c.eks.nodegroups["gpu"];
        assert_eq!((g.min_size, g.max_size, g.desired_size), (1, 4, 2));
        assert_eq!(g.ami_type, "AL2023_x86_64_NVIDIA");
        assert_eq!(c.eks.insights.len(), 4);
        assert_eq!(
            c.eks.insights[0].kubernetes_version.as_deref(),
            Some("1.33")
        );
        for bad in [
            "cluster: {version: '1.29'}",
            "eks: {addons: [{name: coredns, version: v9}]}",
            "eks: {nodegroups: [{name: missing}]}",
            "eks: {addons: [{name: coredns, configurationValues: '{\"nope\": 1}'}]}",
        ] {
            let s = Scenario::from_yaml(bad).unwrap();
            let mut c = cluster_from(&s).unwrap();
            assert!(load(&mut c, &s).is_err(), "{bad}");
        }
    }
}
