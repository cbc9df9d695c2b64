//! EC2 DescribeSubnets on the sandbox's AWS endpoint through aws-sdk-ec2 (the Query protocol's
//! form body and XML answers), consistent with DescribeCluster's `resourcesVpcConfig`.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::Filter;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

const SCENARIO: &str = r"
cluster: {name: prod, region: eu-west-1}
clock: {start: 2026-11-26T10:00:00Z, scale: 1}
nodeGroups:
  - {name: general, count: 3, zones: [eu-west-1a, eu-west-1b]}
workloads:
  - {name: web, replicas: 4, placement: {nodeGroup: general}}
ec2:
  vpcId: vpc-0prod
  subnets:
    - {subnetId: subnet-aaa, availabilityZone: eu-west-1a, cidrBlock: 10.1.0.0/24,
       tags: {Name: prod-private-a}}
    - {subnetId: subnet-bbb, availabilityZone: eu-west-1b, cidrBlock: 10.1.1.0/24,
       availableIpAddressCount: 3}
    - {subnetId: subnet-other, vpcId: vpc-0other, availabilityZone: eu-west-1c,
       cidrBlock: 10.9.0.0/20, cluster: false}
";

async fn start(yaml: &str) -> (Sandbox, aws_sdk_ec2::Client, aws_sdk_eks::Client) {
    let scenario = Scenario::from_yaml(yaml).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario).controllers(false))
        .await
        .expect("sandbox starts");
    let creds = aws_credential_types::Credentials::new("AKIDSANDBOXTEST", "s", None, None, "t");
    let region = aws_sdk_ec2::config::Region::new(sb.region());
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(creds.clone())
            .endpoint_url(sb.eks_url())
            .build(),
    );
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new(sb.region()))
            .credentials_provider(creds)
            .endpoint_url(sb.eks_url())
            .build(),
    );
    (sb, ec2, eks)
}

#[tokio::test]
async fn cluster_subnets_are_described_and_match_describe_cluster() {
    let (sb, ec2, eks) = start(SCENARIO).await;
    let cluster = eks.describe_cluster().name("prod").send().await.unwrap();
    let vpc = cluster.cluster().unwrap().resources_vpc_config().unwrap();
    assert_eq!(vpc.vpc_id(), Some("vpc-0prod"));
    let ids: Vec<String> = vpc.subnet_ids().to_vec();
    assert_eq!(ids, ["subnet-aaa", "subnet-bbb"]);

    let out = ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    let subnets = out.subnets();
    assert_eq!(subnets.len(), 2);
    let a = &subnets[0];
    assert_eq!(a.subnet_id(), Some("subnet-aaa"));
    assert_eq!(a.vpc_id(), Some("vpc-0prod"));
    assert_eq!(a.availability_zone(), Some("eu-west-1a"));
    assert_eq!(a.cidr_block(), Some("10.1.0.0/24"));
    assert_eq!(
        a.state().map(aws_sdk_ec2::types::SubnetState::as_str),
        Some("available")
    );
    assert_eq!(a.tags()[0].key(), Some("Name"));
    assert_eq!(a.tags()[0].value(), Some("prod-private-a"));
    // Computed: 256 - 5 reserved - the nodes in eu-west-1a and their pods.
    let (nodes, pods) = sb.with(|c| {
        let nodes: Vec<String> = c
            .store
            .list(opsteps_sandbox::resources::well_known::nodes(), None)
            .filter(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "eu-west-1a")
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        let pods = c
            .store
            .list(opsteps_sandbox::resources::well_known::pods(), None)
            .filter(|p| {
                nodes
                    .iter()
                    .any(|n| p["spec"]["nodeName"].as_str() == Some(n))
            })
            .count();
        (nodes.len(), pods)
    });
    assert_eq!(nodes, 2);
    assert!(pods > 0);
    assert_eq!(
        a.available_ip_address_count(),
        Some(i32::try_from(256 - 5 - nodes - pods).unwrap())
    );
    assert_eq!(subnets[1].available_ip_address_count(), Some(3));
    let logged = sb.with(|c| c.ec2.requests.clone());
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].action, "DescribeSubnets");
    assert_eq!(logged[0].status, 200);
}

#[tokio::test]
async fn filters_select_by_vpc_and_subnet_id() {
    let (_sb, ec2, _) = start(SCENARIO).await;
    let by_vpc = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values("vpc-0other")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = by_vpc
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id())
        .collect();
    assert_eq!(ids, ["subnet-other"]);
    let by_id = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("subnet-id")
                .values("subnet-bbb")
                .values("subnet-zzz")
                .build(),
        )
        .filters(Filter::builder().name("vpc-id").values("vpc-0prod").build())
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = by_id
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id())
        .collect();
    assert_eq!(ids, ["subnet-bbb"]);
    let all = ec2.describe_subnets().send().await.unwrap();
    assert_eq!(all.subnets().len(), 3);
}

#[tokio::test]
async fn unknown_subnet_ids_are_the_real_not_found_error() {
    let (sb, ec2, _) = start(SCENARIO).await;
    let err = ec2
        .describe_subnets()
        .subnet_ids("subnet-aaa")
        .subnet_ids("subnet-0missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSubnetID.NotFound"));
    assert_eq!(
        err.message(),
        Some("The subnet ID 'subnet-0missing' does not exist")
    );
    let err = ec2
        .describe_subnets()
        .subnet_ids("nonsense")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSubnetID.Malformed"));
    let err = ec2
        .describe_subnets()
        .filters(Filter::builder().name("bogus").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let statuses: Vec<u16> = sb.with(|c| c.ec2.requests.iter().map(|r| r.status).collect());
    assert_eq!(statuses, [400, 400, 400]);
}

#[tokio::test]
async fn pages_with_max_results() {
    let subnets: Vec<String> = (0..7)
        .map(|i| {
            format!("    - {{subnetId: subnet-{i:03}, availabilityZone: us-east-1a, cidrBlock: 10.0.{i}.0/24}}")
        })
        .collect();
    let subnets = subnets.join("\n");
    let yaml = format!("ec2:\n  subnets:\n{subnets}\n");
    let (_sb, ec2, _) = start(&yaml).await;
    let first = ec2.describe_subnets().max_results(5).send().await.unwrap();
    assert_eq!(first.subnets().len(), 5);
    let token = first.next_token().expect("a second page").to_owned();
    let second = ec2
        .describe_subnets()
        .max_results(5)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.subnets().len(), 2);
    assert!(second.next_token().is_none());
}

#[tokio::test]
async fn default_subnets_are_the_clusters() {
    let (_sb, ec2, eks) = start("cluster: {name: sandbox}").await;
    let cluster = eks.describe_cluster().name("sandbox").send().await.unwrap();
    let vpc = cluster
        .cluster()
        .unwrap()
        .resources_vpc_config()
        .unwrap()
        .clone();
    let out = ec2
        .describe_subnets()
        .set_subnet_ids(Some(vpc.subnet_ids().to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.subnets().len(), 3);
    for s in out.subnets() {
        assert_eq!(s.vpc_id(), vpc.vpc_id());
        // An empty cluster: a /19 less AWS's five.
        assert_eq!(s.available_ip_address_count(), Some(8192 - 5));
    }
}

#[tokio::test]
async fn unsigned_requests_fail_auth() {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .unwrap();
    let resp = reqwest_free_post(&sb.eks_url(), "Action=DescribeSubnets&Version=2016-11-15").await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(resp.contains("<Code>AuthFailure</Code>"), "{resp}");
}

/// A raw unsigned POST over TCP; the response's head and body as text.
async fn reqwest_free_post(url: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// `aws ec2 describe-subnets` with the sandbox's environment; its JSON output, or the error.
fn aws_ec2(sb: &Sandbox, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new("aws")
        .envs(opsteps_sandbox::eks::client_env(
            &sb.eks_url(),
            &sb.region(),
        ))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .args(["ec2", "describe-subnets", "--output", "json"])
        .args(args)
        .output()
        .expect("run aws (pip install awscli)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("aws prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs aws cli"]
async fn aws_cli_describes_subnets() {
    let (sb, _, _) = start(SCENARIO).await;
    let url = sb.eks_url();
    let out = aws_ec2(
        &sb,
        &[
            "--endpoint-url",
            &url,
            "--filters",
            "Name=vpc-id,Values=vpc-0prod",
        ],
    )
    .unwrap();
    let subnets = out["Subnets"].as_array().unwrap();
    let ids: Vec<&str> = subnets
        .iter()
        .filter_map(|s| s["SubnetId"].as_str())
        .collect();
    assert_eq!(ids, ["subnet-aaa", "subnet-bbb"]);
    assert_eq!(subnets[1]["AvailableIpAddressCount"], 3);
    assert_eq!(subnets[0]["AvailabilityZone"], "eu-west-1a");
    assert_eq!(subnets[0]["Tags"][0]["Value"], "prod-private-a");
    // AWS_ENDPOINT_URL_EC2 from client_env, without --endpoint-url.
    let out = aws_ec2(&sb, &["--subnet-ids", "subnet-bbb"]).unwrap();
    assert_eq!(out["Subnets"][0]["CidrBlock"], "10.1.1.0/24");
    let err = aws_ec2(&sb, &["--subnet-ids", "subnet-0missing"]).unwrap_err();
    assert!(
        err.contains("(InvalidSubnetID.NotFound)")
            && err.contains("The subnet ID 'subnet-0missing' does not exist"),
        "{err}"
    );
}
