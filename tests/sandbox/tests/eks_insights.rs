//! EKS upgrade insights as a cluster checker reads them through aws-sdk-eks: every status, the
//! category and version filters, paging, and the details (recommendation, resources,
//! deprecation details with client stats).

use aws_sdk_eks::types::{Category, InsightStatusValue, InsightsFilter};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const SCENARIO: &str = r#"
cluster: {name: prod, region: us-east-1, version: "1.32"}
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
eks:
  insights:
    - name: Deprecated APIs removed in Kubernetes v1.33
      status: ERROR
      reason: Deprecated API usage detected within last 30 days.
      recommendation: Update manifests and clients to use newer Kubernetes APIs.
      resources:
        - {kubernetesResourceUri: /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas/catch-all,
           insightStatus: {status: ERROR, reason: Requested in the last 30 days}}
      deprecationDetails:
        - usage: /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas
          replacedWith: /apis/flowcontrol.apiserver.k8s.io/v1/flowschemas
          stopServingVersion: "1.32"
          startServingReplacementVersion: "1.29"
          clientStats:
            - {userAgent: legacy-operator/1.0, numberOfRequestsLast30Days: 42, lastRequestTime: 1764100000}
    - {name: Kubelet version skew, status: WARNING, reason: Nodes run kubelet 1.30}
    - {name: EKS add-on version compatibility, status: UNKNOWN}
    - {name: Cluster health issues, status: PASSING}
    - {name: Amazon Linux 2 compatibility, status: PASSING, kubernetesVersion: "1.34"}
    - {name: Hybrid nodes, category: MISCONFIGURATION, status: WARNING}
"#;

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

#[tokio::test]
async fn statuses_filters_and_details() {
    let (_sb, eks) = start(SCENARIO).await;
    let next = InsightsFilter::builder()
        .categories(Category::UpgradeReadiness)
        .kubernetes_versions("1.33")
        .build();
    let out = eks
        .list_insights()
        .cluster_name("prod")
        .filter(next)
        .send()
        .await
        .unwrap();
    let statuses: Vec<(&str, &str)> = out
        .insights()
        .iter()
        .map(|i| {
            (
                i.name().unwrap(),
                i.insight_status().unwrap().status().unwrap().as_str(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("Deprecated APIs removed in Kubernetes v1.33", "ERROR"),
            ("Kubelet version skew", "WARNING"),
            ("EKS add-on version compatibility", "UNKNOWN"),
            ("Cluster health issues", "PASSING"),
        ]
    );
    assert!(
        out.insights()
            .iter()
            .all(|i| i.kubernetes_version() == Some("1.33")
                && i.category() == Some(&Category::UpgradeReadiness))
    );

    let error = &out.insights()[0];
    let detail = eks
        .describe_insight()
        .cluster_name("prod")
        .id(error.id().unwrap())
        .send()
        .await
        .unwrap()
        .insight
        .unwrap();
    assert_eq!(
        detail.recommendation(),
        Some("Update manifests and clients to use newer Kubernetes APIs.")
    );
    assert_eq!(
        detail.insight_status().unwrap().reason(),
        Some("Deprecated API usage detected within last 30 days.")
    );
    let res = &detail.resources()[0];
    assert_eq!(
        res.kubernetes_resource_uri(),
        Some("/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas/catch-all")
    );
    assert_eq!(
        res.insight_status().unwrap().status(),
        Some(&InsightStatusValue::Error)
    );
    let dep = &detail
        .category_specific_summary()
        .unwrap()
        .deprecation_details()[0];
    assert_eq!(
        dep.usage(),
        Some("/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas")
    );
    assert_eq!(dep.stop_serving_version(), Some("1.32"));
    assert_eq!(dep.start_serving_replacement_version(), Some("1.29"));
    let stats = &dep.client_stats()[0];
    assert_eq!(stats.user_agent(), Some("legacy-operator/1.0"));
    assert_eq!(stats.number_of_requests_last30_days(), 42);
    assert_eq!(
        stats
            .last_request_time()
            .map(aws_sdk_eks::primitives::DateTime::secs),
        Some(1_764_100_000)
    );

    let misconfig = eks
        .list_insights()
        .cluster_name("prod")
        .filter(
            InsightsFilter::builder()
                .categories(Category::Misconfiguration)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(misconfig.insights().len(), 1);
    assert_eq!(misconfig.insights()[0].name(), Some("Hybrid nodes"));
}

#[tokio::test]
async fn insights_page_with_max_results() {
    let (_sb, eks) = start(SCENARIO).await;
    let mut names = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let out = eks
            .list_insights()
            .cluster_name("prod")
            .max_results(4)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(out.insights().len() <= 4);
        names.extend(
            out.insights()
                .iter()
                .filter_map(|i| i.name().map(str::to_owned)),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names.len(), 6, "{names:?}");
}

#[tokio::test]
async fn default_insights_pass_for_the_next_minor() {
    let (_sb, eks) = start("cluster: {name: prod, version: \"1.31\"}").await;
    let out = eks
        .list_insights()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(out.insights().len(), 4);
    for i in out.insights() {
        assert_eq!(i.kubernetes_version(), Some("1.32"));
        assert_eq!(
            i.insight_status().unwrap().status(),
            Some(&InsightStatusValue::Passing)
        );
    }
}

#[tokio::test]
async fn an_unknown_status_is_a_scenario_error() {
    let scenario = Scenario::from_yaml("eks: {insights: [{name: x, status: FAILING}]}").unwrap();
    let err = Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .err()
        .expect("loading fails");
    assert!(
        format!("{err:#}").contains("expected one of PASSING"),
        "{err:#}"
    );
}
