//! The step's flags, and their checks that need more than one flag (done before connecting, so
//! bad input is exit 2 with no request sent).

use clap::{ArgAction, Parser};
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;
use opsteps::step::StepArgs;

use crate::{STEP, env};

/// Scrape NVIDIA dcgm-exporter, aggregate per GPU, pod and owner, store the report in S3.
#[derive(Parser, Debug, Clone)]
#[command(name = STEP, version, about, long_about = None)]
pub struct Args {
    /// Upload the report here: s3://BUCKET[/PREFIX]. The JSON report goes under
    /// PREFIX/gpu-report/ and the CSV rows under PREFIX/gpu-rows/, each keyed
    /// cluster=NAME/date=YYYY-MM-DD/hour=HH/ for Athena. Without it nothing is uploaded.
    #[arg(long, env = env::S3_URL, value_name = "URL")]
    pub s3_url: Option<String>,

    /// Cluster name in the report and the S3 key (default: --eks-cluster, else the kubeconfig
    /// context, else the cluster's server host).
    #[arg(long, env = env::CLUSTER_NAME, value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Scrape exporters through the API server (GET pods/proxy) instead of directly at
    /// <podIP>:9400: for runs from outside the cluster. Needs get on pods/proxy.
    #[arg(long, env = env::VIA_APISERVER)]
    pub via_apiserver: bool,

    /// Scrapes per exporter, --interval apart, for a window (1 = one point sample).
    #[arg(long, env = env::SAMPLES, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=120))]
    pub samples: u32,

    /// Time between two scrapes of one exporter (dcgm-exporter samples every 30s by default).
    #[arg(long, env = env::INTERVAL, value_name = "DURATION", default_value = "30s")]
    pub interval: GoDuration,

    /// Exporters scraped at once.
    #[arg(long, env = env::CONCURRENCY, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// Timeout of one scrape (exporters can take over 10 s on large nodes).
    #[arg(long, env = env::SCRAPE_TIMEOUT, value_name = "DURATION", default_value = "20s")]
    pub scrape_timeout: GoDuration,

    /// Give up after this long: lists, scrapes and the upload together (exit 3).
    #[arg(long, env = env::TIMEOUT, value_name = "DURATION", default_value = "10m")]
    pub timeout: GoDuration,

    /// A GPU whose mean utilisation is below this percentage does no work.
    #[arg(long, env = env::IDLE_UTIL_PERCENT, value_name = "PERCENT", default_value_t = 5.0)]
    pub idle_util_percent: f64,

    /// A held GPU doing no work with at least this much framebuffer used (MiB) is idle-held;
    /// below it, idle.
    #[arg(long, env = env::HELD_MEMORY_MIB, value_name = "MIB", default_value_t = 1024)]
    pub held_memory_mib: u64,

    /// Read the window from a Prometheus HTTP API (Amazon Managed Prometheus:
    /// https://aps-workspaces.REGION.amazonaws.com/workspaces/WS-ID) instead of scraping
    /// exporters: for windows longer than a run.
    #[arg(long, env = env::PROMETHEUS_URL, value_name = "URL")]
    pub prometheus_url: Option<String>,

    /// The window read from Prometheus, ending now (or at --now).
    #[arg(long, env = env::PROMETHEUS_WINDOW, value_name = "DURATION", default_value = "1h")]
    pub prometheus_window: GoDuration,

    /// Sign Prometheus requests with SigV4 for service "aps" (Amazon Managed Prometheus), with
    /// the AWS credential chain and --region. Default: on when the URL's host ends in
    /// .amazonaws.com.
    #[arg(long, env = env::PROMETHEUS_SIGV4, action = ArgAction::Set, value_name = "BOOL")]
    pub prometheus_sigv4: Option<bool>,

    /// The window's end (RFC 3339) for the report and the S3 key, instead of the clock: for
    /// replaying a run.
    #[arg(long, env = env::NOW, value_name = "TIME")]
    pub now: Option<jiff::Timestamp>,

    /// client: collect and report, upload nothing; server: the same (S3 has no server-side
    /// dry run).
    #[arg(long, env = opsteps::env::DRY_RUN, value_enum, default_value_t)]
    pub dry_run: DryRun,

    /// Flags shared by every step.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StepArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Where the report goes in S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Bucket.
    pub bucket: String,
    /// Key prefix, without a trailing slash (may be empty).
    pub prefix: String,
}

/// The checked settings of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Upload target, if any.
    pub destination: Option<Destination>,
    /// Prometheus base URL (no trailing slash), if the window comes from Prometheus.
    pub prometheus: Option<http::Uri>,
    /// Sign Prometheus requests for `aps`.
    pub sigv4: bool,
}

/// S3 bucket names: 3-63 of [a-z0-9.-], starting and ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

impl Config {
    /// Checks what clap cannot: the S3 URL, the Prometheus URL, thresholds.
    pub fn from_args(a: &Args) -> Result<Self, StepError> {
        let destination = match &a.s3_url {
            None => None,
            Some(url) => {
                let (bucket, prefix) = opsteps::s3::parse_url(url)?;
                if !valid_bucket(&bucket) {
                    return Err(StepError::bad_input(format!(
                        "--s3-url {url:?}: {bucket:?} is not a valid S3 bucket name; expected s3://BUCKET[/PREFIX] with 3-63 lower-case letters, digits, '.' or '-'"
                    )));
                }
                Some(Destination { bucket, prefix })
            }
        };
        if !(0.0..=100.0).contains(&a.idle_util_percent) {
            return Err(StepError::bad_input(format!(
                "--idle-util-percent {}: expected a percentage from 0 to 100",
                a.idle_util_percent
            )));
        }
        if a.interval.0.is_zero() && a.samples > 1 {
            return Err(StepError::bad_input(
                "--interval 0s with --samples above 1: expected an interval of at least 1s between scrapes",
            ));
        }
        if a.scrape_timeout.0.is_zero() || a.timeout.0.is_zero() {
            return Err(StepError::bad_input(
                "--scrape-timeout and --timeout must be above 0s",
            ));
        }
        let (prometheus, sigv4) = match &a.prometheus_url {
            None => (None, false),
            Some(u) => {
                let uri: http::Uri = u.trim_end_matches('/').parse().map_err(|e| {
                    StepError::bad_input(format!(
                        "--prometheus-url {u:?} is not a URL; expected http(s)://HOST[:PORT][/PATH]"
                    ))
                    .with_source(e)
                })?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(StepError::bad_input(format!(
                        "--prometheus-url {u:?}: expected http(s)://HOST[:PORT][/PATH]"
                    )));
                }
                if a.prometheus_window.0.is_zero() {
                    return Err(StepError::bad_input("--prometheus-window must be above 0s"));
                }
                let aws = uri.host().is_some_and(|h| h.ends_with(".amazonaws.com"));
                (Some(uri), a.prometheus_sigv4.unwrap_or(aws))
            }
        };
        if sigv4 && a.common.aws.region.is_none() {
            return Err(StepError::bad_input(
                "--prometheus-sigv4 needs --region (or $AWS_REGION): the workspace's region to sign for",
            ));
        }
        Ok(Self {
            destination,
            prometheus,
            sigv4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[&str]) -> Result<Config, StepError> {
        let mut v = vec![STEP];
        v.extend_from_slice(extra);
        Config::from_args(&Args::try_parse_from(v).unwrap())
    }

    #[test]
    fn s3_urls_are_checked_before_connecting() {
        let c = cfg(&["--s3-url", "s3://gpu-reports/eks/"]).unwrap();
        assert_eq!(
            c.destination,
            Some(Destination {
                bucket: "gpu-reports".into(),
                prefix: "eks".into()
            })
        );
        for bad in [
            "https://x",
            "s3://",
            "s3://Bad_Bucket/x",
            "s3://ab",
            "gpu-reports",
        ] {
            let e = cfg(&["--s3-url", bad]).unwrap_err();
            assert_eq!(e.status(), opsteps::exit::ExitStatus::BadInput, "{bad}");
            assert!(e.to_string().contains("s3://BUCKET"), "{bad}: {e}");
        }
    }

    #[test]
    fn prometheus_urls_and_signing() {
        assert!(cfg(&["--prometheus-url", "ftp://x"]).is_err());
        assert!(cfg(&["--prometheus-url", "not a url"]).is_err());
        let c = cfg(&["--prometheus-url", "http://prom:9090/"]).unwrap();
        assert_eq!(c.prometheus.unwrap().to_string(), "http://prom:9090/");
        assert!(!c.sigv4);
        let amp = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1";
        let e = cfg(&["--prometheus-url", amp]).unwrap_err();
        assert!(e.to_string().contains("--region"), "{e}");
        let c = cfg(&["--prometheus-url", amp, "--region", "eu-west-1"]).unwrap();
        assert!(c.sigv4);
    }

    #[test]
    fn thresholds() {
        assert!(cfg(&["--idle-util-percent", "101"]).is_err());
        assert!(cfg(&["--samples", "3", "--interval", "0s"]).is_err());
        assert!(Args::try_parse_from([STEP, "--samples", "0"]).is_err());
        assert!(cfg(&[]).unwrap().destination.is_none());
    }
}
