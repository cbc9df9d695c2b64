//! EKS tokens on the sandbox's Kubernetes API: a token signed like `aws eks get-token` (by
//! opsteps' own signer) is accepted; an expired one (virtual token clock), a malformed one, one
//! for another region or without the bound `x-k8s-aws-id` header gets 401 with a Status body.
//! Every shipped scenario accepts tokens, judged in real time.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use http::Method;
use opsteps::eks_token::presign;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::Value;

const SCENARIO: &str = r#"
cluster: {name: prod-a, region: eu-west-1, version: "1.33"}
clock: {scale: 1}
nodeGroups:
  - {name: general, count: 2}
eks:
  tokenClock: virtual
  defaultAdmin: false
  accessEntries:
    - {accessKeyId: AKIDADMIN, groups: ["system:masters"]}
    - {accessKeyId: AKIDVIEWER, username: viewer, groups: [viewers]}
    - {accessKeyId: AKIDSIGNED, username: signed, groups: [viewers], secretAccessKey: right-secret}
"#;

async fn start() -> Sandbox {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap();
    Sandbox::start(
        Options::default()
            .scenario(scenario)
            .tls(false)
            .controllers(false),
    )
    .await
    .unwrap()
}

fn token(key: &str, cluster: &str, region: &str) -> String {
    signed_token(key, "secret", cluster, region)
}

fn signed_token(key: &str, secret: &str, cluster: &str, region: &str) -> String {
    let creds = Credentials::new(key, secret, None, None, "test");
    presign(cluster, region, creds, SystemTime::now()).unwrap()
}

/// The shipped scenario files.
fn shipped_scenarios() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

/// On every shipped scenario (none has an `eks:` block), a token for its cluster signed ten
/// real minutes ago (like one the kubectl exec plugin has cached) is accepted: keys without an
/// access entry are admins by default, and age is judged in real time whatever the clock scale.
#[tokio::test]
async fn shipped_scenarios_accept_tokens_in_real_time() {
    for file in shipped_scenarios() {
        let scenario = Scenario::from_file(&file).unwrap();
        let (cluster, region) = (
            scenario.cluster.name.clone(),
            scenario.cluster.region.clone(),
        );
        let sb = Sandbox::start(
            Options::default()
                .scenario(scenario)
                .tls(false)
                .controllers(false),
        )
        .await
        .unwrap();
        let creds = Credentials::new("AKIDSTRANGER", "secret", None, None, "test");
        let cached = SystemTime::now() - Duration::from_mins(10);
        let t = presign(&cluster, &region, creds, cached).unwrap();
        let r = get_nodes(&sb, &t).await;
        assert_eq!(r.status, 200, "{}: {:?}", file.display(), r.body);
        assert_eq!(
            sb.requests().pop().unwrap().user,
            opsteps_sandbox::eks::DEFAULT_ADMIN_USER,
            "{}",
            file.display()
        );
    }
}

async fn get_nodes(sb: &Sandbox, token: &str) -> common::Resp {
    common::send_as(sb, Some(token), Method::GET, "/api/v1/nodes", None).await
}

fn assert_unauthorized(r: &common::Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {:?}", r.body);
    assert_eq!(r.body["kind"], "Status", "{what}");
    assert_eq!(r.body["code"], 401, "{what}");
    assert_eq!(r.body["reason"], "Unauthorized", "{what}");
}

#[tokio::test]
async fn eks_tokens_authenticate_and_map_access_keys() {
    let sb = start().await;
    let t = token("AKIDADMIN", "prod-a", "eu-west-1");
    let r = get_nodes(&sb, &t).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let last = sb.requests().pop().unwrap();
    assert_eq!(last.user, "arn:aws:iam::111122223333:user/AKIDADMIN");

    let v = token("AKIDVIEWER", "prod-a", "eu-west-1");
    assert_eq!(get_nodes(&sb, &v).await.status, 200);
    assert_eq!(sb.requests().pop().unwrap().user, "viewer");

    // defaultAdmin: false — a key without an access entry is not let in.
    let stranger = token("AKIDSTRANGER", "prod-a", "eu-west-1");
    assert_unauthorized(&get_nodes(&sb, &stranger).await, "no access entry");
}

#[tokio::test]
async fn with_the_secret_the_signature_binds_the_cluster_name() {
    let sb = start().await;
    let good = signed_token("AKIDSIGNED", "right-secret", "prod-a", "eu-west-1");
    let r = get_nodes(&sb, &good).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(sb.requests().pop().unwrap().user, "signed");
    let other_cluster = signed_token("AKIDSIGNED", "right-secret", "prod-b", "eu-west-1");
    assert_unauthorized(
        &get_nodes(&sb, &other_cluster).await,
        "x-k8s-aws-id is another cluster",
    );
    let wrong_secret = signed_token("AKIDSIGNED", "wrong-secret", "prod-a", "eu-west-1");
    assert_unauthorized(&get_nodes(&sb, &wrong_secret).await, "wrong secret");
    let with_session = {
        let creds = Credentials::new(
            "AKIDSIGNED",
            "right-secret",
            Some("session-token".into()),
            None,
            "test",
        );
        presign("prod-a", "eu-west-1", creds, SystemTime::now()).unwrap()
    };
    assert_eq!(
        get_nodes(&sb, &with_session).await.status,
        200,
        "session tokens are signed too"
    );
}

#[tokio::test]
async fn expired_and_malformed_tokens_get_401() {
    let sb = start().await;
    let t = token("AKIDADMIN", "prod-a", "eu-west-1");
    assert_eq!(get_nodes(&sb, &t).await.status, 200);
    // 16 virtual minutes later the same token has expired.
    sb.with(|c| c.clock.advance(Duration::from_mins(16)));
    assert_unauthorized(&get_nodes(&sb, &t).await, "expired");
    // A freshly signed one works again (a later second gives another signature).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = token("AKIDADMIN", "prod-a", "eu-west-1");
    assert_eq!(get_nodes(&sb, &fresh).await.status, 200);

    // Fast clocks age tokens faster: at 120× a token 10 real seconds old is 20 minutes old.
    let old = {
        let creds = Credentials::new("AKIDADMIN", "secret", None, None, "test");
        presign(
            "prod-a",
            "eu-west-1",
            creds,
            SystemTime::now() - Duration::from_secs(10),
        )
        .unwrap()
    };
    sb.with(|c| c.clock.set_scale(120.0));
    assert_unauthorized(&get_nodes(&sb, &old).await, "old at 120x");
    sb.with(|c| c.clock.set_scale(1.0));

    let other_region = token("AKIDADMIN", "prod-a", "us-east-1");
    assert_unauthorized(&get_nodes(&sb, &other_region).await, "other region");
    assert_unauthorized(&get_nodes(&sb, "k8s-aws-v1.not*base64").await, "bad base64");
    let unbound = opsteps_sandbox::eks::token::encode(&format!(
        "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDADMIN%2F20261126%2Feu-west-1%2Fsts%2Faws4_request\
         &X-Amz-Date={}&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        "0".repeat(64)
    ));
    assert_unauthorized(&get_nodes(&sb, &unbound).await, "x-k8s-aws-id not signed");
    let huge = format!("{t}{}", "A".repeat(4096));
    assert_unauthorized(&get_nodes(&sb, &huge).await, "over 4 KiB");
    let body: &Value = &get_nodes(&sb, "k8s-aws-v1.").await.body;
    assert_eq!(body["message"], "Unauthorized");
}
