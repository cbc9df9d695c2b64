//! Thin helpers over aws-sdk-eks.

use base64::Engine;

use crate::exit::StepError;

pub use crate::aws::sdk_config;

/// Refuses an EKS API endpoint (`AWS_ENDPOINT_URL_EKS`, else `AWS_ENDPOINT_URL`) that is
/// plain http to anything but a loopback address: DescribeCluster's answer (the Kubernetes
/// endpoint and CA) decides where the bearer token goes, so it must not be open to tampering.
/// Loopback http is how tests and the sandbox run. `eks` and `global` are the variables' values.
pub fn check_api_endpoint(eks: Option<&str>, global: Option<&str>) -> Result<(), StepError> {
    let (var, url) = match (
        eks.filter(|s| !s.is_empty()),
        global.filter(|s| !s.is_empty()),
    ) {
        (Some(u), _) => ("AWS_ENDPOINT_URL_EKS", u),
        (None, Some(u)) => ("AWS_ENDPOINT_URL", u),
        (None, None) => return Ok(()),
    };
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| StepError::bad_input(format!("${var} {url:?} is not a URL")).with_source(e))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if uri.host().is_some_and(is_loopback) => Ok(()),
        _ => Err(StepError::bad_input(format!(
            "${var} {url:?}: the EKS API endpoint must be https (plain http is accepted only for a loopback address such as 127.0.0.1, for tests)"
        ))),
    }
}

/// Whether `host` is `localhost` or a loopback IP (`127.0.0.0/8`, `::1`).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a Kubernetes endpoint from DescribeCluster that is not https: the IAM bearer token
/// is never sent in clear text, not even to a loopback address.
pub fn check_cluster_endpoint(name: &str, endpoint: &str) -> Result<http::Uri, StepError> {
    let uri: http::Uri = endpoint.parse().map_err(|e| {
        StepError::failed(format!("EKS endpoint {endpoint:?} is not a URL")).with_source(e)
    })?;
    if uri.scheme_str() != Some("https") {
        return Err(StepError::bad_input(format!(
            "EKS cluster {name}: DescribeCluster gave the endpoint {endpoint:?}, which is not https; refusing to send a bearer token over it (check $AWS_ENDPOINT_URL_EKS points at the real EKS API)"
        )));
    }
    Ok(uri)
}

/// What the steps need from DescribeCluster.
#[derive(Clone, Debug, Default)]
pub struct DescribedCluster {
    /// API server URL.
    pub endpoint: Option<String>,
    /// Decoded certificate authority (PEM bytes).
    pub ca_pem: Option<Vec<u8>>,
    /// Cluster status (`ACTIVE`, `UPDATING`, ...).
    pub status: Option<String>,
    /// Kubernetes version (`1.33`).
    pub version: Option<String>,
    /// Cluster ARN.
    pub arn: Option<String>,
}

/// DescribeCluster, with errors classified (unknown name → exit 2).
pub async fn describe_cluster(
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<DescribedCluster, StepError> {
    let out = client
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| crate::aws::classify(format!("DescribeCluster {name}"), e))?;
    let c = out
        .cluster
        .ok_or_else(|| StepError::failed(format!("DescribeCluster {name} returned no cluster")))?;
    let ca_pem = match c.certificate_authority.and_then(|ca| ca.data) {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    StepError::failed(format!(
                        "EKS cluster {name}: certificate authority data is not base64"
                    ))
                    .with_source(e)
                })?,
        ),
        None => None,
    };
    Ok(DescribedCluster {
        endpoint: c.endpoint,
        ca_pem,
        status: c.status.map(|s| s.as_str().to_owned()),
        version: c.version,
        arn: c.arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;

    #[test]
    fn eks_api_endpoint_http_only_on_loopback() {
        for ok in [
            (None, None),
            (Some("https://eks.eu-west-1.amazonaws.com"), None),
            (Some("http://127.0.0.1:4566"), None),
            (Some("http://localhost:4566"), None),
            (Some("http://[::1]:4566"), None),
            (Some("http://127.8.9.10"), Some("http://10.0.0.1")),
            (None, Some("https://vpce.example")),
        ] {
            check_api_endpoint(ok.0, ok.1).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            (Some("http://10.0.0.1:4566"), None, "AWS_ENDPOINT_URL_EKS"),
            (Some("http://eks.internal"), None, "AWS_ENDPOINT_URL_EKS"),
            (
                Some("http://127.0.0.1.evil.example"),
                None,
                "AWS_ENDPOINT_URL_EKS",
            ),
            (None, Some("http://192.168.1.1"), "AWS_ENDPOINT_URL"),
            (Some("ftp://127.0.0.1"), None, "AWS_ENDPOINT_URL_EKS"),
        ] {
            let e = check_api_endpoint(bad.0, bad.1).unwrap_err();
            assert_eq!(e.status(), ExitStatus::BadInput, "{bad:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(bad.2) && msg.contains("must be https"),
                "{msg}"
            );
        }
    }

    #[test]
    fn cluster_endpoint_must_be_https() {
        check_cluster_endpoint("prod", "https://ABC.gr7.eu-west-1.eks.amazonaws.com").unwrap();
        for bad in ["http://127.0.0.1:6443", "http://abc.eks.amazonaws.com"] {
            let e = check_cluster_endpoint("prod", bad).unwrap_err();
            assert_eq!(e.status(), ExitStatus::BadInput);
            assert!(e.to_string().contains("not https"), "{e}");
        }
    }
}
