//! Flag groups every step flattens into its `Args`. Each flag has an environment fallback
//! (names in [`crate::env`]), because Argo passes configuration as flags or env, never files.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::duration::GoDuration;
use crate::env;

/// Where the target cluster is and how to authenticate to it.
///
/// Precedence: `--eks-cluster`, then `--in-cluster`, then the kubeconfig (`--kubeconfig`,
/// `$KUBECONFIG`, `~/.kube/config`) with `--context`; with none of them, the kubeconfig if one
/// exists, else the in-cluster ServiceAccount.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// Kubeconfig file to use. $KUBECONFIG may list several (a:b), merged as kubectl does.
    #[arg(long, env = env::KUBECONFIG, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context).
    #[arg(long, env = env::KUBE_CONTEXT, value_name = "NAME")]
    pub context: Option<String>,

    /// Use the pod's ServiceAccount token and the cluster it runs in.
    #[arg(long, env = env::IN_CLUSTER)]
    pub in_cluster: bool,

    /// Act on this EKS cluster: endpoint and CA from DescribeCluster, IAM token signed with the
    /// AWS credential chain and refreshed before it expires. Needs --region or $AWS_REGION.
    #[arg(long, env = env::EKS_CLUSTER, value_name = "NAME")]
    pub eks_cluster: Option<String>,

    /// Refuse to act (exit 2) unless the API server is this cluster: an EKS name, a kubeconfig
    /// cluster or context name, or the server URL.
    #[arg(long, env = env::EXPECT_CLUSTER, value_name = "NAME")]
    pub expect_cluster: Option<String>,

    /// How long one EKS token is used, between 1m and 15m. The API server accepts a token for 15
    /// minutes; a new one is signed after 80% of this lifetime.
    #[arg(long, env = env::EKS_TOKEN_LIFETIME, value_name = "DURATION", default_value = "15m", value_parser = eks_token_lifetime)]
    pub eks_token_lifetime: GoDuration,
}

/// Shortest `--eks-token-lifetime`: below it the token would be re-signed almost constantly.
pub const EKS_TOKEN_LIFETIME_MIN: std::time::Duration = std::time::Duration::from_mins(1);
/// Longest `--eks-token-lifetime`: the API server refuses a token older than 15 minutes (401).
pub const EKS_TOKEN_LIFETIME_MAX: std::time::Duration = std::time::Duration::from_mins(15);

/// Parses `--eks-token-lifetime`: a Go duration from 1m to 15m.
fn eks_token_lifetime(s: &str) -> Result<GoDuration, String> {
    let d: GoDuration = s.parse().map_err(|e| format!("{e}"))?;
    if d.0 < EKS_TOKEN_LIFETIME_MIN || d.0 > EKS_TOKEN_LIFETIME_MAX {
        return Err(format!(
            "{d} is outside the accepted range: from 1m to 15m (the API server accepts an EKS token for 15 minutes; a new one is signed after 80% of the lifetime)"
        ));
    }
    Ok(d)
}

/// AWS settings. Credentials come from the standard chain (environment, profile, IRSA, EKS Pod
/// Identity, IMDS); endpoints from `AWS_ENDPOINT_URL_EKS`, `AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL`.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "AWS")]
pub struct AwsArgs {
    /// AWS region of the EKS cluster and S3 bucket.
    #[arg(long, env = env::AWS_REGION, value_name = "REGION")]
    pub region: Option<String>,
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for Loki and friends).
    Json,
}

/// Logging: always to stderr, because stdout carries only the step's result.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format on stderr. The level comes from $RUST_LOG (default: info).
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// Where results, outputs, audit events and progress go.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Directory for named output files (Argo output parameters), created if missing.
    #[arg(long, env = env::OUTPUT_DIR, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// File for the one-line failure summary Kubernetes and Argo show.
    #[arg(long, env = env::TERMINATION_LOG, value_name = "PATH", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,

    /// JSON-lines audit log of every mutating API call (default: <output-dir>/audit.jsonl).
    #[arg(long, env = env::AUDIT_LOG, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// File for `N/M` progress; Argo sets it for the main container.
    #[arg(long, env = env::ARGO_PROGRESS_FILE, value_name = "PATH")]
    pub progress_file: Option<PathBuf>,
}

impl Default for OutputArgs {
    fn default() -> Self {
        Self {
            output_dir: None,
            termination_log: PathBuf::from("/dev/termination-log"),
            audit_log: None,
            progress_file: None,
        }
    }
}

/// Flags shared by every step.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// Target cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// AWS.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Outputs.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Dry-run modes, with kubectl's names and meaning.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    /// Act for real.
    #[default]
    None,
    /// Only plan and print; send no mutating request.
    Client,
    /// Send mutating requests with `dryRun=All`, so the server's verdicts (PDBs) are real but
    /// nothing is persisted.
    Server,
}

impl DryRun {
    /// Whether anything may be persisted.
    #[must_use]
    pub fn is_dry(self) -> bool {
        self != Self::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value = "5m")]
        timeout: GoDuration,
    }

    #[test]
    fn parses_flags_and_durations() {
        let t = T::try_parse_from([
            "t",
            "--eks-cluster",
            "prod",
            "--region",
            "eu-west-1",
            "--timeout",
            "1h30m",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(t.common.cluster.eks_cluster.as_deref(), Some("prod"));
        assert_eq!(t.common.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(t.timeout.as_secs(), 5400);
        assert_eq!(t.common.log.log_format, LogFormat::Json);
        assert_eq!(t.common.cluster.eks_token_lifetime.as_secs(), 900);
    }

    #[test]
    fn bad_duration_is_a_usage_error_naming_the_flag() {
        let e = T::try_parse_from(["t", "--timeout", "5"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("--timeout"), "{msg}");
        assert!(msg.contains("expected a Go duration"), "{msg}");
    }

    #[test]
    fn eks_token_lifetime_is_between_1m_and_15m() {
        for ok in ["1m", "60s", "10m", "15m", "14m59s"] {
            let t = T::try_parse_from(["t", "--eks-token-lifetime", ok])
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(t.common.cluster.eks_token_lifetime.as_secs() >= 60);
        }
        for bad in ["0s", "0", "59s", "15m1s", "16m", "1h", "87600h"] {
            let e = T::try_parse_from(["t", "--eks-token-lifetime", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            let msg = e.to_string();
            assert!(
                msg.contains("from 1m to 15m") && msg.contains("--eks-token-lifetime"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn unknown_flag_exits_2() {
        let e = T::try_parse_from(["t", "--no-such-flag"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
