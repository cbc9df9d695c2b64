//! The sandbox's EKS API driven through aws-sdk-eks: every operation, the linked Kubernetes
//! behaviour (node group scaling → nodes, add-on update → workload image, cluster upgrade →
//! `/version`), the insight gate, add-on conflicts and flaps, and injected AWS faults. How
//! scale-downs and version updates drain nodes is in `nodegroup_drain.rs`.

use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::update_addon::UpdateAddonError;
use aws_sdk_eks::operation::update_cluster_version::UpdateClusterVersionError;
use aws_sdk_eks::operation::update_nodegroup_config::UpdateNodegroupConfigError;
use aws_sdk_eks::types::{
    AddonIssueCode, AddonStatus, ClusterStatus, InsightStatusValue, InsightsFilter,
    NodegroupScalingConfig, NodegroupStatus, ResolveConflicts, UpdateStatus, UpdateType,
};
use base64::Engine;
use opsteps_sandbox::resources::well_known;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

const SCENARIO: &str = r#"
cluster: {name: prod-a, region: eu-west-1, version: "1.33", platformVersion: eks.9}
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
kubelet: {startDelay: 0s, readyDelay: 0s}
nodeGroups:
  - {name: general, count: 2, instanceType: m5.xlarge}
workloads:
  - {kind: DaemonSet, name: aws-node, namespace: kube-system, labels: {k8s-app: aws-node},
     image: "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.5-eksbuild.3"}
  - {kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {k8s-app: kube-proxy}}
  - {kind: Deployment, name: coredns, namespace: kube-system, replicas: 2, labels: {k8s-app: kube-dns}}
eks:
  addons:
    - {name: vpc-cni, version: v1.19.5-eksbuild.3}
    - {name: kube-proxy, version: v1.33.0-eksbuild.2}
    - {name: coredns, version: v1.11.4-eksbuild.14, conflict: true}
    - {name: aws-ebs-csi-driver, version: v1.46.0-eksbuild.1, onUpdate: {result: Flap, degradedFor: 2m}}
  nodegroups:
    - {name: general, minSize: 1, maxSize: 5}
  insights:
    - name: Deprecated APIs removed in Kubernetes v1.34
      status: ERROR
      reason: Deprecated API usage detected within last 30 days.
      deprecationDetails:
        - usage: /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas
          replacedWith: /apis/flowcontrol.apiserver.k8s.io/v1/flowschemas
          stopServingVersion: "1.32"
          clientStats: [{userAgent: "legacy-operator/1.0", numberOfRequestsLast30Days: 42}]
    - {name: Kubelet version skew, status: PASSING}
"#;

/// A sandbox and its EKS API's URL.
struct Env {
    sb: Sandbox,
    url: String,
}

async fn start() -> Env {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .expect("sandbox starts");
    Env {
        url: sb.eks_url(),
        sb,
    }
}

fn client_for(url: &str, region: &str) -> Client {
    let creds = aws_credential_types::Credentials::new(
        "AKIDSANDBOXTEST",
        "sandbox-secret",
        None,
        None,
        "test",
    );
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new(region.to_owned()))
        .credentials_provider(creds)
        .endpoint_url(url)
        .retry_config(
            aws_sdk_eks::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    Client::from_conf(conf)
}

fn client(env: &Env) -> Client {
    client_for(&env.url, "eu-west-1")
}

fn advance(sb: &Sandbox, by: Duration) {
    sb.with(|c| {
        c.clock.advance(by);
        opsteps_sandbox::eks::tick(c);
    });
}

/// Advances the clock in steps of 10 s (letting the controllers act in between) until update
/// `id` of node group `ng` has left InProgress: scale-downs and version updates drain nodes,
/// which takes several steps.
async fn run_until_done(sb: &Sandbox, eks: &Client, id: &str, ng: &str) -> UpdateStatus {
    for _ in 0..200 {
        let s = update_status(eks, id, None, Some(ng)).await;
        if s != UpdateStatus::InProgress {
            return s;
        }
        advance(sb, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("update {id} still InProgress after 2000 virtual seconds");
}

fn group_nodes(sb: &Sandbox, group: &str) -> usize {
    sb.with(|c| {
        c.store
            .list(well_known::nodes(), None)
            .filter(|n| {
                n.pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
                    .and_then(Value::as_str)
                    == Some(group)
            })
            .count()
    })
}

fn template_image(sb: &Sandbox, daemonset: bool, name: &str) -> String {
    let res = if daemonset {
        well_known::daemonsets()
    } else {
        well_known::deployments()
    };
    sb.with(|c| {
        c.store
            .get(res, "kube-system", name)
            .and_then(|o| {
                o.pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    })
}

async fn update_status(
    eks: &Client,
    id: &str,
    addon: Option<&str>,
    ng: Option<&str>,
) -> UpdateStatus {
    eks.describe_update()
        .name("prod-a")
        .update_id(id)
        .set_addon_name(addon.map(str::to_owned))
        .set_nodegroup_name(ng.map(str::to_owned))
        .send()
        .await
        .expect("DescribeUpdate")
        .update
        .and_then(|u| u.status)
        .expect("update status")
}

#[tokio::test]
async fn describe_cluster_points_at_the_sandbox_api_and_ca() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let list = eks.list_clusters().send().await.unwrap();
    assert_eq!(list.clusters(), ["prod-a"]);
    let c = eks
        .describe_cluster()
        .name("prod-a")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.endpoint(), Some(sb.url().as_str()));
    let ca = base64::engine::general_purpose::STANDARD
        .decode(c.certificate_authority().and_then(|a| a.data()).unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), sb.ca_pem().unwrap());
    assert_eq!(c.version(), Some("1.33"));
    assert_eq!(c.platform_version(), Some("eks.9"));
    assert_eq!(c.status(), Some(&ClusterStatus::Active));
    assert_eq!(
        c.arn(),
        Some("arn:aws:eks:eu-west-1:111122223333:cluster/prod-a")
    );
    assert!(
        c.identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .unwrap()
            .starts_with("https://oidc.eks.eu-west-1.amazonaws.com/id/")
    );
    assert!(c.health().unwrap().issues().is_empty());
    assert!(c.created_at().is_some());

    // Unknown name, and the right name in another region: ResourceNotFound.
    let e = eks
        .describe_cluster()
        .name("prod-b")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        e.into_service_error(),
        DescribeClusterError::ResourceNotFoundException(_)
    ));
    let other = client_for(&env.url.clone(), "us-west-2");
    assert!(
        other
            .list_clusters()
            .send()
            .await
            .unwrap()
            .clusters()
            .is_empty()
    );
    let e = other
        .describe_cluster()
        .name("prod-a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn nodegroup_scaling_adds_and_removes_kubernetes_nodes() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    assert_eq!(
        eks.list_nodegroups()
            .cluster_name("prod-a")
            .send()
            .await
            .unwrap()
            .nodegroups(),
        ["general"]
    );
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    let sc = ng.scaling_config().unwrap();
    assert_eq!(
        (sc.min_size(), sc.max_size(), sc.desired_size()),
        (Some(1), Some(5), Some(2))
    );
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    assert_eq!(ng.version(), Some("1.33"));
    assert_eq!(ng.instance_types(), ["m5.xlarge"]);
    assert_eq!(group_nodes(sb, "general"), 2);

    let scale = |n: i32| {
        eks.update_nodegroup_config()
            .cluster_name("prod-a")
            .nodegroup_name("general")
            .scaling_config(NodegroupScalingConfig::builder().desired_size(n).build())
            .send()
    };
    let up = scale(4).await.unwrap().update.unwrap();
    assert_eq!(up.r#type(), Some(&UpdateType::ConfigUpdate));
    assert_eq!(up.status(), Some(&UpdateStatus::InProgress));
    let e = scale(3).await.unwrap_err();
    assert!(matches!(
        e.into_service_error(),
        UpdateNodegroupConfigError::ResourceInUseException(_)
    ));
    assert_eq!(
        group_nodes(sb, "general"),
        2,
        "nothing changes before the update completes"
    );
    advance(sb, Duration::from_secs(90));
    assert_eq!(
        update_status(&eks, up.id().unwrap(), None, Some("general")).await,
        UpdateStatus::Successful
    );
    assert_eq!(group_nodes(sb, "general"), 4);
    let ids = eks
        .list_updates()
        .name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap();
    assert_eq!(ids.update_ids(), [up.id().unwrap()]);

    let down = scale(1).await.unwrap().update.unwrap();
    advance(sb, Duration::from_secs(90));
    assert_eq!(
        run_until_done(sb, &eks, down.id().unwrap(), "general").await,
        UpdateStatus::Successful
    );
    assert_eq!(group_nodes(sb, "general"), 1);
    let e = scale(9).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("InvalidParameterException"),
        "desired above maxSize"
    );
}

#[tokio::test]
async fn create_and_delete_nodegroup_create_and_remove_nodes() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let ng = eks
        .create_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("green")
        .node_role("arn:aws:iam::111122223333:role/node")
        .subnets("subnet-1")
        .instance_types("m6i.large")
        .labels("pool", "green")
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(4)
                .desired_size(3)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.status(), Some(&NodegroupStatus::Creating));
    let again = eks
        .create_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("green")
        .node_role("r")
        .subnets("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("ResourceInUseException"));
    advance(sb, Duration::from_secs(200));
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("green")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    assert_eq!(group_nodes(sb, "green"), 3);
    let labelled = sb.with(|c| {
        c.store
            .list(well_known::nodes(), None)
            .filter(|n| n.pointer("/metadata/labels/pool").and_then(Value::as_str) == Some("green"))
            .count()
    });
    assert_eq!(labelled, 3);
    let mut names = eks
        .list_nodegroups()
        .cluster_name("prod-a")
        .send()
        .await
        .unwrap()
        .nodegroups()
        .to_vec();
    names.sort();
    assert_eq!(names, ["general", "green"]);

    let del = eks
        .delete_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("green")
        .send()
        .await
        .unwrap();
    assert_eq!(
        del.nodegroup.unwrap().status(),
        Some(&NodegroupStatus::Deleting)
    );
    advance(sb, Duration::from_secs(200));
    let gone = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("green")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));
    assert_eq!(group_nodes(sb, "green"), 0);
}

#[tokio::test]
// One scenario told as a story: each step depends on the state the previous one left.
#[allow(clippy::too_many_lines)]
async fn cluster_upgrade_is_gated_by_insights_and_changes_version() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let errors = eks
        .list_insights()
        .cluster_name("prod-a")
        .filter(
            InsightsFilter::builder()
                .statuses(InsightStatusValue::Error)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(errors.insights().len(), 1);
    let summary = &errors.insights()[0];
    assert_eq!(summary.kubernetes_version(), Some("1.34"));
    let all = eks
        .list_insights()
        .cluster_name("prod-a")
        .send()
        .await
        .unwrap();
    assert_eq!(all.insights().len(), 2);
    let detail = eks
        .describe_insight()
        .cluster_name("prod-a")
        .id(summary.id().unwrap())
        .send()
        .await
        .unwrap()
        .insight
        .unwrap();
    let dep = &detail
        .category_specific_summary()
        .unwrap()
        .deprecation_details()[0];
    assert_eq!(
        dep.replaced_with(),
        Some("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas")
    );
    assert_eq!(
        dep.client_stats()[0].user_agent(),
        Some("legacy-operator/1.0")
    );
    assert_eq!(dep.client_stats()[0].number_of_requests_last30_days(), 42);
    let missing = eks
        .describe_insight()
        .cluster_name("prod-a")
        .id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    let upgrade = |v: &'static str, force: bool| {
        eks.update_cluster_version()
            .name("prod-a")
            .version(v)
            .force(force)
            .send()
    };
    let e = upgrade("1.35", true).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("InvalidParameterException"),
        "one minor at a time"
    );
    let e = upgrade("1.34", false).await.unwrap_err();
    assert!(matches!(
        e.into_service_error(),
        UpdateClusterVersionError::InvalidStateException(_)
    ));
    let u = upgrade("1.34", true).await.unwrap().update.unwrap();
    assert_eq!(u.r#type(), Some(&UpdateType::VersionUpdate));
    let e = upgrade("1.34", true).await.unwrap_err();
    assert!(matches!(
        e.into_service_error(),
        UpdateClusterVersionError::ResourceInUseException(_)
    ));
    let c = eks
        .describe_cluster()
        .name("prod-a")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.status(), Some(&ClusterStatus::Updating));
    let minor = || sb.with(|c| c.api.version_json()["minor"].as_str().unwrap().to_owned());
    assert_eq!(minor(), "33");
    advance(sb, Duration::from_mins(9));
    assert_eq!(
        update_status(&eks, u.id().unwrap(), None, None).await,
        UpdateStatus::Successful
    );
    assert_eq!(minor(), "34", "/version changes when the update completes");
    let c = eks
        .describe_cluster()
        .name("prod-a")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(
        (c.version(), c.status()),
        (Some("1.34"), Some(&ClusterStatus::Active))
    );
    let ids = eks.list_updates().name("prod-a").send().await.unwrap();
    assert_eq!(ids.update_ids(), [u.id().unwrap()]);

    // The node group follows with UpdateNodegroupVersion: kubelets report 1.34.
    let nu = eks
        .update_nodegroup_version()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    advance(sb, Duration::from_mins(6));
    assert_eq!(
        run_until_done(sb, &eks, nu.id().unwrap(), "general").await,
        UpdateStatus::Successful
    );
    let kubelets: Vec<String> = sb.with(|c| {
        c.store
            .list(well_known::nodes(), None)
            .map(|n| {
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    });
    assert!(
        kubelets.iter().all(|k| k.starts_with("v1.34.")),
        "{kubelets:?}"
    );
    let e = eks
        .update_nodegroup_version()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .version("1.35")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("InvalidParameterException"),
        "never newer than the control plane"
    );
}

#[tokio::test]
async fn addon_catalogue_and_configuration_schema() {
    let env = start().await;
    let eks = client(&env);
    let out = eks
        .describe_addon_versions()
        .kubernetes_version("1.33")
        .addon_name("kube-proxy")
        .send()
        .await
        .unwrap();
    let info = &out.addons()[0];
    assert_eq!(info.addon_name(), Some("kube-proxy"));
    let versions: Vec<&str> = info
        .addon_versions()
        .iter()
        .filter_map(|v| v.addon_version())
        .collect();
    assert_eq!(
        versions,
        ["v1.33.3-eksbuild.4", "v1.33.0-eksbuild.2"],
        "newest first"
    );
    let defaults: Vec<&str> = info
        .addon_versions()
        .iter()
        .filter(|v| {
            v.compatibilities()
                .iter()
                .any(aws_sdk_eks::types::Compatibility::default_version)
        })
        .filter_map(|v| v.addon_version())
        .collect();
    assert_eq!(defaults, ["v1.33.0-eksbuild.2"]);
    let all = eks
        .describe_addon_versions()
        .kubernetes_version("1.35")
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = all.addons().iter().filter_map(|a| a.addon_name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
    );

    let schema = eks
        .describe_addon_configuration()
        .addon_name("coredns")
        .addon_version("v1.11.4-eksbuild.14")
        .send()
        .await
        .unwrap();
    let schema: Value = serde_json::from_str(schema.configuration_schema().unwrap()).unwrap();
    assert!(schema["definitions"]["Config"]["properties"]["replicaCount"].is_object());

    let mut listed = eks
        .list_addons()
        .cluster_name("prod-a")
        .send()
        .await
        .unwrap()
        .addons()
        .to_vec();
    listed.sort();
    assert_eq!(
        listed,
        ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
    );
    let bad = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("coredns")
        .configuration_values(r#"{"replicas": 3}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("InvalidParameterException"));
    assert!(
        bad.message().unwrap().contains("$.replicas"),
        "{:?}",
        bad.message()
    );
    let incompatible = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("kube-proxy")
        .addon_version("v1.34.1-eksbuild.2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(incompatible.code(), Some("InvalidParameterException"));
    let missing = eks
        .describe_addon()
        .cluster_name("prod-a")
        .addon_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
// One scenario told as a story: each step depends on the state the previous one left.
#[allow(clippy::too_many_lines)]
async fn addon_update_rolls_the_workload_image() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let before = template_image(sb, true, "aws-node");
    let u = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("vpc-cni")
        .addon_version("v1.20.4-eksbuild.1")
        .resolve_conflicts(ResolveConflicts::Preserve)
        .configuration_values(r#"{"env": {"ENABLE_PREFIX_DELEGATION": "true"}}"#)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(u.r#type(), Some(&UpdateType::AddonUpdate));
    let busy = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        busy.into_service_error(),
        UpdateAddonError::ResourceInUseException(_)
    ));
    let a = eks
        .describe_addon()
        .cluster_name("prod-a")
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.status(), Some(&AddonStatus::Updating));
    let want = "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.20.4-eksbuild.1";
    assert_ne!(before, want);
    assert_eq!(template_image(sb, true, "aws-node"), want);
    // The DaemonSet controller replaces the pods with the new image.
    let mut rolled = false;
    for _ in 0..200 {
        advance(sb, Duration::from_secs(5));
        let images: Vec<String> = sb.with(|c| {
            c.store
                .list(well_known::pods(), Some("kube-system"))
                .filter(|p| {
                    p.pointer("/metadata/labels/k8s-app")
                        .and_then(Value::as_str)
                        == Some("aws-node")
                })
                .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                .map(|p| {
                    p.pointer("/spec/containers/0/image")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        });
        if images.len() == 2 && images.iter().all(|i| i == want) {
            rolled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rolled, "aws-node pods run the new image");
    advance(sb, Duration::from_mins(1));
    assert_eq!(
        update_status(&eks, u.id().unwrap(), Some("vpc-cni"), None).await,
        UpdateStatus::Successful
    );
    // Health follows the DaemonSet's status (DEGRADED until it reports the rollout done).
    let mut a = None;
    for _ in 0..100 {
        let now = eks
            .describe_addon()
            .cluster_name("prod-a")
            .addon_name("vpc-cni")
            .send()
            .await
            .unwrap()
            .addon
            .unwrap();
        if now.status() == Some(&AddonStatus::Active) {
            a = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = a.expect("vpc-cni turns ACTIVE");
    assert_eq!(a.addon_version(), Some("v1.20.4-eksbuild.1"));
    assert_eq!(
        a.configuration_values(),
        Some(r#"{"env": {"ENABLE_PREFIX_DELEGATION": "true"}}"#)
    );
    let ids = eks
        .list_updates()
        .name("prod-a")
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap();
    assert_eq!(ids.update_ids(), [u.id().unwrap()]);
}

#[tokio::test]
// One scenario told as a story: each step depends on the state the previous one left.
#[allow(clippy::too_many_lines)]
async fn addon_conflict_fails_without_overwrite_and_flap_recovers() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let dns_before = template_image(sb, false, "coredns");
    let u = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("coredns")
        .addon_version("v1.12.2-eksbuild.4")
        .resolve_conflicts(ResolveConflicts::None)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    advance(sb, Duration::from_secs(70));
    let d = eks
        .describe_update()
        .name("prod-a")
        .update_id(u.id().unwrap())
        .addon_name("coredns")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(d.status(), Some(&UpdateStatus::Failed));
    assert_eq!(
        d.errors()[0]
            .error_code()
            .map(aws_sdk_eks::types::ErrorCode::as_str),
        Some("ConfigurationConflict")
    );
    let a = eks
        .describe_addon()
        .cluster_name("prod-a")
        .addon_name("coredns")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.status(), Some(&AddonStatus::UpdateFailed));
    assert_eq!(
        a.health().unwrap().issues()[0].code(),
        Some(&AddonIssueCode::ConfigurationConflict)
    );
    assert_eq!(a.addon_version(), Some("v1.11.4-eksbuild.14"));
    assert_eq!(
        template_image(sb, false, "coredns"),
        dns_before,
        "nothing applied"
    );
    let u = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("coredns")
        .addon_version("v1.12.2-eksbuild.4")
        .resolve_conflicts(ResolveConflicts::Overwrite)
        .configuration_values("replicaCount: 3")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    advance(sb, Duration::from_secs(70));
    assert_eq!(
        update_status(&eks, u.id().unwrap(), Some("coredns"), None).await,
        UpdateStatus::Successful
    );
    assert!(template_image(sb, false, "coredns").ends_with("eks/coredns:v1.12.2-eksbuild.4"));
    let replicas = sb.with(|c| {
        c.store
            .get(well_known::deployments(), "kube-system", "coredns")
            .unwrap()["spec"]["replicas"]
            .clone()
    });
    assert_eq!(replicas, 3, "configurationValues.replicaCount is applied");

    // The EBS CSI driver flaps: DEGRADED after its update, ACTIVE two minutes later.
    let u = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("aws-ebs-csi-driver")
        .addon_version("v1.48.0-eksbuild.2")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    advance(sb, Duration::from_secs(70));
    assert_eq!(
        update_status(&eks, u.id().unwrap(), Some("aws-ebs-csi-driver"), None).await,
        UpdateStatus::Successful
    );
    let a = eks
        .describe_addon()
        .cluster_name("prod-a")
        .addon_name("aws-ebs-csi-driver")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.status(), Some(&AddonStatus::Degraded));
    assert_eq!(
        a.health().unwrap().issues()[0].code(),
        Some(&AddonIssueCode::InsufficientNumberOfReplicas)
    );
    advance(sb, Duration::from_secs(130));
    let a = eks
        .describe_addon()
        .cluster_name("prod-a")
        .addon_name("aws-ebs-csi-driver")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.status(), Some(&AddonStatus::Active));
    assert!(a.health().unwrap().issues().is_empty());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_by_the_sdk() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let fault = |error: &str, count: u32| opsteps_sandbox::eks::AwsFaultSpec {
        error: error.into(),
        operations: vec!["DescribeCluster".into()],
        count: Some(count),
        ..Default::default()
    };
    sb.with(|c| c.eks.add_fault(&fault("ThrottlingException", 2)));
    eks.describe_cluster()
        .name("prod-a")
        .send()
        .await
        .expect("third attempt succeeds");
    let seen = sb.with(|c| c.eks.requests_of("DescribeCluster"));
    let statuses: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);

    sb.with(|c| c.eks.add_fault(&fault("ServerException", 1)));
    eks.describe_cluster()
        .name("prod-a")
        .send()
        .await
        .expect("retried after a 500");

    sb.with(|c| c.eks.add_fault(&fault("ThrottlingException", 5)));
    let e = eks
        .describe_cluster()
        .name("prod-a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("ThrottlingException"),
        "a long burst outlasts 3 attempts"
    );
    // Other operations are not affected.
    eks.list_clusters().send().await.unwrap();
}

#[tokio::test]
async fn requests_without_sigv4_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = start().await;
    let addr = env.url.clone().trim_start_matches("http://").to_owned();
    let send = |auth: &'static str| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let req =
                format!("GET /clusters HTTP/1.1\r\nHost: eks\r\n{auth}Connection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out.to_lowercase()
        }
    };
    let r = send("").await;
    assert!(r.starts_with("http/1.1 403"), "{r}");
    assert!(
        r.contains("x-amzn-errortype: missingauthenticationtokenexception"),
        "{r}"
    );
    let r = send("Authorization: Bearer x\r\n").await;
    assert!(r.starts_with("http/1.1 403"), "{r}");
    assert!(
        r.contains("x-amzn-errortype: incompletesignatureexception"),
        "{r}"
    );
    let r = send("Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261126/eu-west-1/eks/aws4_request, SignedHeaders=host, Signature=abc\r\n").await;
    assert!(r.starts_with("http/1.1 200"), "{r}");
    assert!(r.contains(r#""clusters":["prod-a"]"#), "{r}");
}

#[tokio::test]
async fn lists_page_and_nodegroup_labels_reach_the_nodes() {
    let env = start().await;
    let sb = &env.sb;
    let eks = client(&env);
    let first = eks
        .list_addons()
        .cluster_name("prod-a")
        .max_results(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.addons().len(), 3);
    let token = first.next_token().expect("a second page").to_owned();
    let second = eks
        .list_addons()
        .cluster_name("prod-a")
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.addons().len(), 1);
    assert!(second.next_token().is_none());

    let u = eks
        .update_nodegroup_config()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .labels(
            aws_sdk_eks::types::UpdateLabelsPayload::builder()
                .add_or_update_labels("team", "platform")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let params: Vec<(String, String)> = u
        .params()
        .iter()
        .map(|p| {
            (
                p.r#type()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
                p.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        params,
        [(
            "LabelsToAdd".to_owned(),
            r#"{"team":"platform"}"#.to_owned()
        )]
    );
    advance(sb, Duration::from_mins(2));
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(
        ng.labels().unwrap().get("team").map(String::as_str),
        Some("platform")
    );
    let labelled = sb.with(|c| {
        c.store
            .list(well_known::nodes(), None)
            .filter(|n| {
                n.pointer("/metadata/labels/team").and_then(Value::as_str) == Some("platform")
            })
            .count()
    });
    assert_eq!(labelled, 2);
}

#[tokio::test]
async fn addon_is_degraded_until_its_workload_has_rolled_out() {
    let scenario = Scenario::from_yaml(
        r"
cluster: {name: prod-a, region: eu-west-1, version: '1.33'}
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
kubelet: {startDelay: 0s, readyDelay: 0s}
nodeGroups: [{name: general, count: 2}]
workloads:
  - {kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {k8s-app: kube-proxy}, neverReady: true}
eks:
  addons: [{name: kube-proxy, version: v1.33.0-eksbuild.2}]
",
    )
    .unwrap();
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .unwrap();
    let eks = client_for(&sb.eks_url(), "eu-west-1");
    let u = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("kube-proxy")
        .addon_version("v1.33.3-eksbuild.4")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    advance(&sb, Duration::from_mins(2));
    assert_eq!(
        update_status(&eks, u.id().unwrap(), Some("kube-proxy"), None).await,
        UpdateStatus::Successful
    );
    let describe = || async {
        eks.describe_addon()
            .cluster_name("prod-a")
            .addon_name("kube-proxy")
            .send()
            .await
            .unwrap()
            .addon
            .unwrap()
    };
    let a = describe().await;
    assert_eq!(a.status(), Some(&AddonStatus::Degraded));
    let issue = &a.health().unwrap().issues()[0];
    assert_eq!(
        issue.code(),
        Some(&AddonIssueCode::InsufficientNumberOfReplicas)
    );
    assert_eq!(issue.resource_ids(), ["kube-proxy"]);
    assert_eq!(a.addon_version(), Some("v1.33.3-eksbuild.4"));
    // The readiness probe starts passing: the rollout finishes and the add-on turns ACTIVE.
    sb.with(|c| {
        c.world.pod_rules.clear();
        c.world.wake();
    });
    let mut active = false;
    for _ in 0..200 {
        advance(&sb, Duration::from_secs(5));
        if describe().await.status() == Some(&AddonStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(active, "ACTIVE once kube-proxy has rolled out");
}

/// UpdateAddon's `clientRequestToken` is an idempotency token, as AWS keeps it: a repeat with
/// the same token (while the update runs, and after it ended) gets the same update back and
/// starts nothing, where a request without one gets the 409 of an update in flight; vpc-cni
/// refuses to move more than one minor version at a time.
#[tokio::test]
async fn addon_update_token_is_idempotent_and_vpc_cni_moves_one_minor_at_a_time() {
    let env = start().await;
    let eks = client(&env);
    let send = |token: Option<&str>, version: &str| {
        eks.update_addon()
            .cluster_name("prod-a")
            .addon_name("kube-proxy")
            .addon_version(version)
            .set_client_request_token(token.map(str::to_owned))
            .send()
    };
    let first = send(Some("tok-1"), "v1.33.3-eksbuild.4").await.unwrap();
    let id = first.update().and_then(|u| u.id()).unwrap().to_owned();
    let again = send(Some("tok-1"), "v1.33.3-eksbuild.4").await.unwrap();
    assert_eq!(again.update().and_then(|u| u.id()), Some(id.as_str()));
    let e = send(None, "v1.33.3-eksbuild.4").await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceInUseException"));
    let e = send(Some("tok-2"), "v1.33.3-eksbuild.4").await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceInUseException"));
    advance(&env.sb, Duration::from_mins(2));
    assert_eq!(
        update_status(&eks, &id, Some("kube-proxy"), None).await,
        UpdateStatus::Successful
    );
    let late = send(Some("tok-1"), "v1.33.3-eksbuild.4").await.unwrap();
    assert_eq!(late.update().and_then(|u| u.id()), Some(id.as_str()));
    let ids = eks
        .list_updates()
        .name("prod-a")
        .addon_name("kube-proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids.update_ids(),
        std::slice::from_ref(&id),
        "one update for one token"
    );

    // vpc-cni v1.19.5 on 1.33: v1.18 is not offered on 1.33, so step within what is offered.
    env.sb.with(|c| {
        "v1.18.6-eksbuild.1".clone_into(&mut c.eks.addons.get_mut("vpc-cni").unwrap().version);
        "1.32".clone_into(&mut c.eks.version);
    });
    let jump = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("vpc-cni")
        .addon_version("v1.20.4-eksbuild.1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(jump.code(), Some("InvalidParameterException"));
    assert!(
        jump.message()
            .unwrap_or_default()
            .contains("1 minor version at a time"),
        "{jump:?}"
    );
    eks.update_addon()
        .cluster_name("prod-a")
        .addon_name("vpc-cni")
        .addon_version("v1.19.6-eksbuild.7")
        .send()
        .await
        .expect("one minor up is accepted");
}

/// DescribeAddonConfiguration answers the schema of the version asked for: kube-proxy's `mode`
/// enum gains `nftables` from v1.33, and UpdateAddon checks the target version's schema.
#[tokio::test]
async fn addon_configuration_schema_depends_on_the_version() {
    let env = start().await;
    let eks = client(&env);
    let modes = |version: &'static str| {
        let eks = eks.clone();
        async move {
            let out = eks
                .describe_addon_configuration()
                .addon_name("kube-proxy")
                .addon_version(version)
                .send()
                .await
                .unwrap();
            let schema: Value = serde_json::from_str(out.configuration_schema().unwrap()).unwrap();
            schema["definitions"]["Config"]["properties"]["mode"]["enum"].clone()
        }
    };
    assert_eq!(
        modes("v1.32.6-eksbuild.2").await,
        serde_json::json!(["iptables", "ipvs"])
    );
    assert_eq!(
        modes("v1.33.3-eksbuild.4").await,
        serde_json::json!(["iptables", "ipvs", "nftables"])
    );
    let ok = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("kube-proxy")
        .addon_version("v1.33.3-eksbuild.4")
        .configuration_values(r#"{"mode": "nftables"}"#)
        .send()
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let refused = eks
        .update_addon()
        .cluster_name("prod-a")
        .addon_name("coredns")
        .addon_version("v1.11.4-eksbuild.14")
        .configuration_values(r#"{"replicaCount": 0}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidParameterException"));
    assert!(
        refused
            .message()
            .unwrap_or_default()
            .contains("minimum value of 1"),
        "{refused:?}"
    );
}
