//! Thin helpers over aws-sdk-eks.

use base64::Engine;

use crate::exit::StepError;

pub use crate::aws::sdk_config;

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
