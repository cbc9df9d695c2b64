//! Thin helpers over aws-sdk-s3.

use aws_sdk_s3::primitives::ByteStream;

use crate::exit::StepError;

/// An S3 client for `region`. With a custom endpoint (`AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL`, as in tests and the demo) path-style addressing is used, because
/// virtual-host buckets need DNS that a local endpoint does not have.
pub async fn client(region: Option<&str>) -> aws_sdk_s3::Client {
    let sdk = crate::aws::sdk_config(region).await;
    let custom = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(custom)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Uploads `body` to `s3://bucket/key`.
pub async fn put_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), StepError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| crate::aws::classify(format!("PutObject s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Parses `s3://bucket/prefix` into bucket and prefix (without a trailing slash).
pub fn parse_url(url: &str) -> Result<(String, String), StepError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        StepError::bad_input(format!(
            "{url:?} is not an S3 URL; expected s3://BUCKET[/PREFIX]"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StepError::bad_input(format!(
            "{url:?} has no bucket; expected s3://BUCKET[/PREFIX]"
        )));
    }
    Ok((bucket.to_owned(), prefix.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        assert_eq!(
            parse_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_url("https://b").is_err());
        assert!(parse_url("s3:///x").is_err());
    }
}
