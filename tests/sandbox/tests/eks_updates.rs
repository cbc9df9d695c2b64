//! Seeded EKS update history (`eks.updates`) through aws-sdk-eks: failed and stuck updates of
//! the cluster, a node group and an add-on, as a checker lists and describes them.

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{ClusterStatus, NodegroupStatus, UpdateStatus, UpdateType};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const SCENARIO: &str = r"
cluster: {name: prod, region: us-east-1, version: '1.32'}
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
nodeGroups: [{name: general, count: 1}]
eks:
  addons: [{name: coredns}]
  updates:
    - {status: Successful, version: '1.32', age: 30d}
    - status: Failed
      nodegroup: general
      version: '1.32'
      age: 2d
      errors: [{errorCode: PodEvictionFailure, errorMessage: Reached max retries, resourceIds: [general-0]}]
    - {status: InProgress, addon: coredns, version: v1.11.4-eksbuild.14, age: 3h}
    - {status: InProgress, age: 5h, version: '1.33'}
";

async fn start(yaml: &str) -> (Sandbox, aws_sdk_eks::Client) {
    let scenario = Scenario::from_yaml(yaml).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .expect("sandbox starts");
    let creds = aws_credential_types::Credentials::new("AKIDSANDBOXTEST", "s", None, None, "t");
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new(sb.region()))
            .credentials_provider(creds)
            .endpoint_url(sb.eks_url())
            .build(),
    );
    (sb, eks)
}

async fn describe(
    eks: &aws_sdk_eks::Client,
    id: &str,
    nodegroup: Option<&str>,
    addon: Option<&str>,
) -> aws_sdk_eks::types::Update {
    eks.describe_update()
        .name("prod")
        .update_id(id)
        .set_nodegroup_name(nodegroup.map(str::to_owned))
        .set_addon_name(addon.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .update
        .unwrap()
}

#[tokio::test]
async fn failed_and_stuck_updates_are_listed_and_described() {
    let (_sb, eks) = start(SCENARIO).await;
    let cluster_ids = eks.list_updates().name("prod").send().await.unwrap();
    let ids = cluster_ids.update_ids();
    assert_eq!(ids.len(), 2);
    let old = describe(&eks, &ids[0], None, None).await;
    assert_eq!(old.status(), Some(&UpdateStatus::Successful));
    assert_eq!(old.r#type(), Some(&UpdateType::VersionUpdate));
    let stuck = describe(&eks, &ids[1], None, None).await;
    assert_eq!(stuck.status(), Some(&UpdateStatus::InProgress));
    assert_eq!(stuck.params()[0].value(), Some("1.33"));
    assert_eq!(
        stuck.created_at().unwrap().secs(),
        "2026-11-26T05:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    );
    let cluster = eks.describe_cluster().name("prod").send().await.unwrap();
    assert_eq!(
        cluster.cluster().unwrap().status(),
        Some(&ClusterStatus::Updating)
    );
    // A stuck cluster update blocks another, as on EKS.
    let e = eks
        .update_cluster_version()
        .name("prod")
        .version("1.33")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceInUseException"), "{e:?}");

    let ng = eks
        .list_updates()
        .name("prod")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap();
    let failed = describe(&eks, &ng.update_ids()[0], Some("general"), None).await;
    assert_eq!(failed.status(), Some(&UpdateStatus::Failed));
    let err = &failed.errors()[0];
    assert_eq!(
        err.error_code().map(aws_sdk_eks::types::ErrorCode::as_str),
        Some("PodEvictionFailure")
    );
    assert_eq!(err.resource_ids(), ["general-0"]);
    let group = eks
        .describe_nodegroup()
        .cluster_name("prod")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap();
    assert_eq!(
        group.nodegroup().unwrap().status(),
        Some(&NodegroupStatus::Active),
        "a failed update leaves the group ACTIVE"
    );

    let addon = eks
        .list_updates()
        .name("prod")
        .addon_name("coredns")
        .send()
        .await
        .unwrap();
    let a = describe(&eks, &addon.update_ids()[0], None, Some("coredns")).await;
    assert_eq!(a.r#type(), Some(&UpdateType::AddonUpdate));
    assert_eq!(a.status(), Some(&UpdateStatus::InProgress));
    assert_eq!(
        a.params()[0]
            .r#type()
            .map(aws_sdk_eks::types::UpdateParamType::as_str),
        Some("AddonVersion")
    );
}

#[tokio::test]
async fn bad_updates_are_scenario_errors() {
    for (yaml, want) in [
        (
            "eks: {updates: [{status: Stuck}]}",
            "expected one of InProgress",
        ),
        (
            "eks: {updates: [{status: Failed, nodegroup: nope}]}",
            "no node group",
        ),
        (
            "eks: {updates: [{status: Failed, type: Bogus}]}",
            "expected one of VersionUpdate",
        ),
    ] {
        let scenario = Scenario::from_yaml(yaml).expect("parses");
        let err = Sandbox::start(Options::default().scenario(scenario).controllers(false))
            .await
            .err()
            .expect("refused");
        assert!(format!("{err:#}").contains(want), "{yaml}: {err:#}");
    }
}
