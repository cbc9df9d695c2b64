//! The step's flags and the checks that need no request.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use opsteps::cli::{CommonArgs, DryRun};
use opsteps::duration::GoDuration;
use opsteps::exit::StepError;
use opsteps::step::StepArgs;

use crate::STEP;
use crate::versions::Want;

mod env {
    pub const ADDON: &str = "OPSTEPS_BUMP_ADDON";
    pub const ALL: &str = "OPSTEPS_BUMP_ALL";
    pub const ADDON_VERSION: &str = "OPSTEPS_BUMP_ADDON_VERSION";
    pub const TARGET_KUBERNETES: &str = "OPSTEPS_BUMP_TARGET_KUBERNETES";
    pub const ALLOW_DOWNGRADE: &str = "OPSTEPS_BUMP_ALLOW_DOWNGRADE";
    pub const RESOLVE_CONFLICTS: &str = "OPSTEPS_BUMP_RESOLVE_CONFLICTS";
    pub const CONFIGURATION_VALUES: &str = "OPSTEPS_BUMP_CONFIGURATION_VALUES";
    pub const SERVICE_ACCOUNT_ROLE_ARN: &str = "OPSTEPS_BUMP_SERVICE_ACCOUNT_ROLE_ARN";
    pub const POD_IDENTITY: &str = "OPSTEPS_BUMP_POD_IDENTITY";
    pub const REPORT_ONLY: &str = "OPSTEPS_BUMP_REPORT_ONLY";
    pub const TIMEOUT: &str = "OPSTEPS_BUMP_TIMEOUT";
    pub const POLL_INTERVAL: &str = "OPSTEPS_BUMP_POLL_INTERVAL";
    pub const HEALTHY_READS: &str = "OPSTEPS_BUMP_HEALTHY_READS";
    pub const DEGRADED_GRACE: &str = "OPSTEPS_BUMP_DEGRADED_GRACE";
}

/// How EKS resolves differences between the add-on's manifests and what someone changed in
/// the cluster (UpdateAddon `resolveConflicts`).
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolveConflicts {
    /// Keep the cluster's edits to fields the add-on also sets (the default: an OVERWRITE
    /// once wiped vpc-cni's ENABLE_POD_ENI, amazon-vpc-cni-k8s#2268).
    #[default]
    Preserve,
    /// Replace the cluster's edits with the add-on's values.
    Overwrite,
    /// Change nothing the cluster edited; the update fails with ConfigurationConflict.
    None,
}

impl ResolveConflicts {
    /// The wire value.
    #[must_use]
    pub fn wire(self) -> &'static str {
        match self {
            Self::Preserve => "PRESERVE",
            Self::Overwrite => "OVERWRITE",
            Self::None => "NONE",
        }
    }
}

/// Move EKS managed add-ons to a compatible version and wait until they are healthy.
#[derive(Parser, Debug, Clone)]
#[command(name = STEP, version, about, long_about = None)]
pub struct Args {
    /// Add-on to move; repeat for several. NAME=VERSION pins that add-on to VERSION.
    #[arg(long = "addon", value_name = "NAME[=VERSION]", env = env::ADDON, value_delimiter = ',')]
    pub addons: Vec<String>,

    /// Every installed add-on (order: vpc-cni, kube-proxy, coredns, then the rest by name).
    #[arg(long, env = env::ALL, conflicts_with = "addons")]
    pub all: bool,

    /// Target version: latest, default (both for the cluster's Kubernetes version), next-safe
    /// (newest compatible with the cluster's and --target-kubernetes), or an exact version.
    /// (Named --addon-version because --version prints the step's own version.)
    #[arg(long, value_name = "MODE|VERSION", env = env::ADDON_VERSION, default_value = "default")]
    pub addon_version: String,

    /// The Kubernetes version of the next control-plane upgrade (next-safe, drift report).
    #[arg(long, value_name = "1.N", env = env::TARGET_KUBERNETES, value_parser = kubernetes_version)]
    pub target_kubernetes: Option<String>,

    /// Allow moving an add-on to an older version (never done otherwise).
    #[arg(long, env = env::ALLOW_DOWNGRADE)]
    pub allow_downgrade: bool,

    /// Conflict resolution for UpdateAddon (preserve keeps edits made in the cluster).
    #[arg(long, value_enum, env = env::RESOLVE_CONFLICTS, default_value_t)]
    pub resolve_conflicts: ResolveConflicts,

    /// configurationValues for the (single) add-on: inline JSON, or a file holding JSON.
    /// Validated against DescribeAddonConfiguration's schema before any update.
    #[arg(long, value_name = "FILE|JSON", env = env::CONFIGURATION_VALUES)]
    pub configuration_values: Option<String>,

    /// serviceAccountRoleArn for the (single) add-on, passed through unchanged.
    #[arg(long, value_name = "ARN", env = env::SERVICE_ACCOUNT_ROLE_ARN)]
    pub service_account_role_arn: Option<String>,

    /// Pod identity association SERVICE_ACCOUNT=ROLE_ARN for the (single) add-on; repeatable.
    #[arg(long, value_name = "SA=ARN", env = env::POD_IDENTITY, value_delimiter = ',')]
    pub pod_identity: Vec<String>,

    /// Change nothing: write the drift report (current, default and latest for this and the
    /// next Kubernetes version) for every installed add-on.
    #[arg(long, env = env::REPORT_ONLY)]
    pub report_only: bool,

    /// Give up waiting (exit 4) when an update is still progressing after this long.
    #[arg(long, value_name = "DURATION", env = env::TIMEOUT, default_value = "30m", value_parser = positive)]
    pub timeout: GoDuration,

    /// Between two reads of an update or add-on (jittered by up to 20%).
    #[arg(long, value_name = "DURATION", env = env::POLL_INTERVAL, default_value = "15s", value_parser = positive)]
    pub poll_interval: GoDuration,

    /// Consecutive ACTIVE reads without health issues that make an add-on healthy.
    #[arg(long, value_name = "N", env = env::HEALTHY_READS, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub healthy_reads: u32,

    /// How long an add-on may stay DEGRADED after its update before the step fails (exit 1).
    #[arg(long, value_name = "DURATION", env = env::DEGRADED_GRACE, default_value = "5m")]
    pub degraded_grace: GoDuration,

    /// Show the from → to plan without changing anything (the EKS API has no server-side dry
    /// run, so server behaves as client).
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

fn positive(s: &str) -> Result<GoDuration, String> {
    let d: GoDuration = s.parse().map_err(|e| format!("{e}"))?;
    if d.is_zero() {
        return Err("must be more than 0s".into());
    }
    Ok(d)
}

fn kubernetes_version(s: &str) -> Result<String, String> {
    crate::versions::kube_minor(s)
        .map(|m| format!("1.{m}"))
        .ok_or_else(|| format!("{s:?} is not a Kubernetes minor version such as 1.33"))
}

/// Which add-ons were asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every installed add-on.
    All,
    /// These, each with its own version if pinned.
    Named(BTreeMap<String, Option<String>>),
}

/// The checked request: what to move and how, before any request is sent.
#[derive(Clone, Debug)]
pub struct Request {
    /// Add-ons.
    pub selection: Selection,
    /// Default target mode.
    pub want: Want,
    /// Parsed configuration values (the raw text is sent).
    pub configuration: Option<(String, serde_json::Value)>,
    /// Pod identity associations (service account, role ARN).
    pub pod_identity: Vec<(String, String)>,
    /// Poll settings.
    pub poll: Duration,
}

impl Args {
    /// Checks the flags together (exit 2 on a contradiction), reading the configuration file.
    pub fn request(&self) -> Result<Request, StepError> {
        let want = Want::parse(&self.addon_version)?;
        if want == Want::NextSafe && self.target_kubernetes.is_none() {
            return Err(StepError::bad_input(
                "--addon-version next-safe needs --target-kubernetes (the Kubernetes version of the next upgrade, such as 1.34)",
            ));
        }
        let selection = if self.all || (self.report_only && self.addons.is_empty()) {
            Selection::All
        } else if self.addons.is_empty() {
            return Err(StepError::bad_input(
                "name the add-ons to move: --addon NAME (repeatable, NAME=VERSION pins one) or --all",
            ));
        } else {
            let mut named = BTreeMap::new();
            for a in &self.addons {
                let (name, pin) = match a.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
                    None => (a.trim(), None),
                };
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !valid || pin.as_deref() == Some("") {
                    return Err(StepError::bad_input(format!(
                        "--addon {a:?}: expected NAME or NAME=VERSION, NAME in lower case letters, digits and '-' (such as vpc-cni=v1.19.2-eksbuild.1)"
                    )));
                }
                if named.insert(name.to_owned(), pin).is_some() {
                    return Err(StepError::bad_input(format!(
                        "--addon {name} is given twice"
                    )));
                }
            }
            Selection::Named(named)
        };
        let single = matches!(&selection, Selection::Named(n) if n.len() == 1);
        let per_addon = self.configuration_values.is_some()
            || self.service_account_role_arn.is_some()
            || !self.pod_identity.is_empty();
        if per_addon && !single {
            return Err(StepError::bad_input(
                "--configuration-values, --service-account-role-arn and --pod-identity apply to one add-on: give exactly one --addon",
            ));
        }
        let configuration = self
            .configuration_values
            .as_deref()
            .map(read_configuration)
            .transpose()?;
        let mut pod_identity = Vec::new();
        for p in &self.pod_identity {
            match p.split_once('=') {
                Some((sa, arn)) if !sa.is_empty() && arn.starts_with("arn:") => {
                    pod_identity.push((sa.to_owned(), arn.to_owned()));
                }
                _ => {
                    return Err(StepError::bad_input(format!(
                        "--pod-identity {p:?}: expected SERVICE_ACCOUNT=ROLE_ARN (such as aws-node=arn:aws:iam::111122223333:role/cni)"
                    )));
                }
            }
        }
        if let Some(arn) = &self.service_account_role_arn
            && !arn.starts_with("arn:")
        {
            return Err(StepError::bad_input(format!(
                "--service-account-role-arn {arn:?} is not an ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            )));
        }
        Ok(Request {
            selection,
            want,
            configuration,
            pod_identity,
            poll: self.poll_interval.into(),
        })
    }
}

/// `--configuration-values`: inline JSON (starts with `{`), else a file holding JSON. Returns
/// the text to send and its parsed value.
fn read_configuration(v: &str) -> Result<(String, serde_json::Value), StepError> {
    let text = if v.trim_start().starts_with('{') {
        v.to_owned()
    } else {
        std::fs::read_to_string(v).map_err(|e| {
            StepError::bad_input(format!(
                "--configuration-values {v:?} is neither inline JSON (starting with '{{') nor a readable file"
            ))
            .with_source(e)
        })?
    };
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        StepError::bad_input("--configuration-values is not valid JSON (a JSON object is expected)")
            .with_source(e)
    })?;
    if !parsed.is_object() {
        return Err(StepError::bad_input(
            "--configuration-values must be a JSON object",
        ));
    }
    Ok((text, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Request, StepError> {
        let mut argv = vec![STEP];
        argv.extend_from_slice(v);
        Args::try_parse_from(argv).unwrap().request()
    }

    #[test]
    fn selection_and_pins() {
        let r = parse(&[
            "--addon",
            "vpc-cni=v1.19.2-eksbuild.1",
            "--addon",
            "coredns",
        ])
        .unwrap();
        let Selection::Named(n) = r.selection else {
            panic!()
        };
        assert_eq!(n["vpc-cni"].as_deref(), Some("v1.19.2-eksbuild.1"));
        assert_eq!(n["coredns"], None);
        assert_eq!(parse(&["--all"]).unwrap().selection, Selection::All);
        assert_eq!(parse(&["--report-only"]).unwrap().selection, Selection::All);
    }

    #[test]
    fn contradictions_are_bad_input() {
        for bad in [
            &[][..],
            &["--addon", "Bad_Name"],
            &["--addon", "a", "--addon", "a"],
            &["--addon", "a=", "--addon-version", "latest"],
            &["--all", "--addon-version", "next-safe"],
            &["--all", "--configuration-values", "{}"],
            &["--addon", "a", "--configuration-values", "[1]"],
            &["--addon", "a", "--configuration-values", "/no/such/file"],
            &["--addon", "a", "--pod-identity", "sa"],
            &["--addon", "a", "--service-account-role-arn", "role"],
            &["--addon", "a", "--addon-version", "v1"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status(), opsteps::exit::ExitStatus::BadInput, "{bad:?}");
        }
    }
}
