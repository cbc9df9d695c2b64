//! The sandbox's S3 endpoint (s3s + s3s-fs) through the real aws-sdk-s3: put/get/list
//! round-trips with path-style addressing and static credentials.

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use opsteps_sandbox::s3::{self, ACCESS_KEY, REGION, SECRET_KEY};
use opsteps_sandbox::sandbox::{Options, Sandbox};

async fn client(url: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new(
            access_key, secret_key, None, None, "sandbox",
        ))
        .endpoint_url(url)
        .load()
        .await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn keys(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("ListObjectsV2");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn put_get_list_round_trip() {
    let server = s3::start_temp().await.expect("S3 endpoint starts");
    let c = client(&server.url(), ACCESS_KEY, SECRET_KEY).await;

    c.create_bucket()
        .bucket("gpu-reports")
        .send()
        .await
        .expect("CreateBucket");
    let buckets = c.list_buckets().send().await.expect("ListBuckets");
    assert_eq!(
        buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        ["gpu-reports"]
    );

    let report = br#"{"cluster":"prod","gpus":16,"idleHeld":3}"#.to_vec();
    let objects = [
        ("reports/2026-11-26/prod.json", report.clone()),
        ("reports/2026-11-27/prod.json", b"{}".to_vec()),
        ("audit/drain-node.log", b"cordon ip-10-0-1-1\n".repeat(1000)),
    ];
    for (key, body) in &objects {
        c.put_object()
            .bucket("gpu-reports")
            .key(*key)
            .content_type("application/json")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
    }

    let got = c
        .get_object()
        .bucket("gpu-reports")
        .key("reports/2026-11-26/prod.json")
        .send()
        .await
        .expect("GetObject");
    assert_eq!(got.content_length(), Some(report.len() as i64));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.as_ref(), report.as_slice());

    let big = c
        .get_object()
        .bucket("gpu-reports")
        .key("audit/drain-node.log")
        .send()
        .await
        .expect("GetObject");
    let bytes = big.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.as_ref(), objects[2].1.as_slice());

    let mut listed = keys(&c, "gpu-reports", "reports/").await;
    listed.sort();
    assert_eq!(
        listed,
        [
            "reports/2026-11-26/prod.json",
            "reports/2026-11-27/prod.json"
        ]
    );
    assert_eq!(keys(&c, "gpu-reports", "").await.len(), 3);

    c.delete_object()
        .bucket("gpu-reports")
        .key("reports/2026-11-27/prod.json")
        .send()
        .await
        .expect("DeleteObject");
    assert_eq!(
        keys(&c, "gpu-reports", "reports/").await,
        ["reports/2026-11-26/prod.json"]
    );

    // The objects are plain files under the endpoint's directory.
    let on_disk = server
        .root()
        .join("gpu-reports/reports/2026-11-26/prod.json");
    assert_eq!(std::fs::read(on_disk).unwrap(), report);
}

#[tokio::test]
async fn missing_objects_and_wrong_credentials_fail_like_s3() {
    let server = s3::start_temp().await.expect("S3 endpoint starts");
    server.create_bucket("reports").expect("bucket helper");
    assert!(server.create_bucket("B").is_err(), "S3 naming rules");
    let c = client(&server.url(), ACCESS_KEY, SECRET_KEY).await;

    let err = c
        .get_object()
        .bucket("reports")
        .key("nope")
        .send()
        .await
        .expect_err("missing key");
    assert!(
        err.as_service_error()
            .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key),
        "{err:?}"
    );
    assert!(keys(&c, "reports", "").await.is_empty());

    let wrong = client(&server.url(), ACCESS_KEY, "not-the-secret").await;
    let err = wrong
        .list_objects_v2()
        .bucket("reports")
        .send()
        .await
        .expect_err("a bad signature is refused");
    let code = err
        .as_service_error()
        .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"), "{err:?}");
}

#[tokio::test]
async fn the_sandbox_serves_s3_on_demand() {
    let sb = Sandbox::start(Options::default().tls(false).controllers(false))
        .await
        .expect("sandbox starts");
    let url = sb.s3_bucket("opsteps-reports").await.expect("bucket");
    assert_eq!(url, sb.s3_url().await.unwrap(), "one endpoint per sandbox");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let c = client(&url, ACCESS_KEY, SECRET_KEY).await;
    c.put_object()
        .bucket("opsteps-reports")
        .key("gpu/2026-11-26.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect("PutObject");
    assert_eq!(
        keys(&c, "opsteps-reports", "gpu/").await,
        ["gpu/2026-11-26.json"]
    );
    let root = sb.s3().await.unwrap().root().to_owned();
    assert!(root.join("opsteps-reports/gpu/2026-11-26.json").is_file());
    drop(sb);
    assert!(
        !root.exists(),
        "the temporary directory goes with the sandbox"
    );
}
