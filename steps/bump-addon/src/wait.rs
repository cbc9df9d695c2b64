//! Waiting for one add-on update, in three phases, all bounded by the step's deadline and
//! ended by SIGTERM:
//! 1. the update: DescribeUpdate by id until it leaves InProgress (no stock waiter fits: the
//!    SDK's AddonActive fails on a transient DEGRADED and ignores UPDATE_FAILED);
//! 2. the add-on's health: ACTIVE without health issues for `healthy_reads` reads in a row,
//!    DEGRADED tolerated for `degraded_grace` (a rollout in progress reports
//!    InsufficientNumberOfReplicas), UPDATE_FAILED a failure;
//! 3. its workloads in the cluster: each DaemonSet/Deployment observed at its generation, every
//!    replica updated and available, its container at the new version's image tag.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use opsteps::shutdown::Shutdown;
use tokio::time::Instant;

use crate::api::Eks;

/// Settings of a wait.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Nothing waits past this.
    pub deadline: Instant,
    /// Between two reads (jittered ±20%).
    pub poll: Duration,
    /// ACTIVE reads in a row that make the add-on healthy.
    pub healthy_reads: u32,
    /// How long DEGRADED is tolerated.
    pub degraded_grace: Duration,
    /// SIGTERM.
    pub shutdown: Shutdown,
}

/// How a wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Update successful, add-on healthy, workloads rolled out; how many reads found it
    /// DEGRADED (within the grace period) on the way.
    Healthy {
        /// DEGRADED reads tolerated.
        degraded_reads: u32,
    },
    /// The update failed or the add-on stayed unhealthy: `message`, health issues, update
    /// errors, verbatim.
    Failed {
        /// One line for operators.
        message: String,
        /// Health issues.
        issues: Vec<String>,
        /// Update errors.
        errors: Vec<String>,
    },
    /// Still progressing at the deadline, in `phase`.
    Timeout {
        /// `update`, `health` or `rollout`.
        phase: &'static str,
        /// Last observed state.
        last: String,
    },
    /// SIGTERM.
    Interrupted,
    /// An API error that is not the add-on's (transient when retries ran out).
    Error(String, opsteps::exit::ExitStatus),
}

/// Why a pause ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The deadline passed.
    Deadline,
    /// SIGTERM.
    Interrupted,
}

/// Sleeps one jittered poll interval, cut short by the deadline (then `Deadline`) or SIGTERM.
pub async fn pause(s: &Settings) -> Result<(), Stop> {
    if s.shutdown.is_requested() {
        return Err(Stop::Interrupted);
    }
    let now = Instant::now();
    if now >= s.deadline {
        return Err(Stop::Deadline);
    }
    let jitter = rand::random_range(0.8..1.2);
    let wake = (now + s.poll.mul_f64(jitter)).min(s.deadline);
    tokio::select! {
        () = tokio::time::sleep_until(wake) => Ok(()),
        () = s.shutdown.requested() => Err(Stop::Interrupted),
    }
}

fn stopped(stop: Stop, phase: &'static str, last: String) -> End {
    match stop {
        Stop::Deadline => End::Timeout { phase, last },
        Stop::Interrupted => End::Interrupted,
    }
}

fn api_error(e: &opsteps::exit::StepError, s: &Settings, phase: &'static str) -> End {
    if s.shutdown.is_requested() {
        End::Interrupted
    } else if Instant::now() >= s.deadline {
        End::Timeout {
            phase,
            last: e.chain(),
        }
    } else {
        End::Error(e.chain(), e.status())
    }
}

/// Waits for update `id` of `addon` to `version`, then for health and the rollout.
#[tracing::instrument(skip_all, fields(addon, update = id, version))]
pub async fn update(
    eks: &Eks,
    kube: &kube::Client,
    addon: &str,
    id: &str,
    version: &str,
    s: &Settings,
) -> End {
    // 1. The update.
    let u = loop {
        let u = match eks.describe_update(addon, id).await {
            Ok(u) => u,
            Err(e) => return api_error(&e, s, "update"),
        };
        if u.status != "InProgress" {
            break u;
        }
        if let Err(stop) = pause(s).await {
            return stopped(stop, "update", format!("update {id} InProgress"));
        }
    };
    tracing::info!(status = %u.status, errors = ?u.errors, "update ended");
    if u.status != "Successful" {
        let issues = match eks.describe_addon(addon).await {
            Ok(Some(a)) => a.issues,
            _ => Vec::new(),
        };
        let detail = issues
            .first()
            .or(u.errors.first())
            .cloned()
            .unwrap_or_default();
        return End::Failed {
            message: format!(
                "update {id} of {addon} to {version} ended {}: {detail}",
                u.status
            ),
            issues,
            errors: u.errors,
        };
    }
    // 2. Health.
    let mut good = 0;
    let mut degraded_reads = 0;
    let mut degraded_since: Option<Instant> = None;
    loop {
        let a = match eks.describe_addon(addon).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return End::Failed {
                    message: format!("{addon} disappeared while waiting for it"),
                    issues: vec![],
                    errors: vec![],
                };
            }
            Err(e) => return api_error(&e, s, "health"),
        };
        match a.status.as_str() {
            "ACTIVE" if a.issues.is_empty() => {
                good += 1;
                degraded_since = None;
                if good >= s.healthy_reads {
                    break;
                }
            }
            "DEGRADED" | "ACTIVE" => {
                good = 0;
                degraded_reads += 1;
                let since = *degraded_since.get_or_insert_with(Instant::now);
                if since.elapsed() > s.degraded_grace {
                    return End::Failed {
                        message: format!(
                            "{addon} stayed {} for more than {}s after its update: {}",
                            a.status,
                            s.degraded_grace.as_secs(),
                            a.issues.join("; ")
                        ),
                        issues: a.issues,
                        errors: vec![],
                    };
                }
            }
            "UPDATE_FAILED" | "CREATE_FAILED" | "DELETE_FAILED" | "DELETING" => {
                return End::Failed {
                    message: format!("{addon} is {}: {}", a.status, a.issues.join("; ")),
                    issues: a.issues,
                    errors: vec![],
                };
            }
            _ => good = 0,
        }
        if let Err(stop) = pause(s).await {
            return stopped(stop, "health", format!("{addon} {}", a.status));
        }
    }
    // 3. The workloads.
    loop {
        let pending = match unfinished(kube, addon, version).await {
            Ok(p) => p,
            Err(e) => return api_error(&e, s, "rollout"),
        };
        if pending.is_empty() {
            return End::Healthy { degraded_reads };
        }
        if let Err(stop) = pause(s).await {
            return stopped(stop, "rollout", pending.join("; "));
        }
    }
}

/// An add-on's in-cluster workload.
pub struct Workload {
    /// DaemonSet (else Deployment).
    pub daemonset: bool,
    /// Name in kube-system.
    pub name: &'static str,
    /// The container that runs the add-on's image.
    pub container: &'static str,
}

/// The workloads EKS runs for `addon` in kube-system (none known for other add-ons).
#[must_use]
pub fn workloads(addon: &str) -> &'static [Workload] {
    const fn w(daemonset: bool, name: &'static str, container: &'static str) -> Workload {
        Workload {
            daemonset,
            name,
            container,
        }
    }
    const VPC: &[Workload] = &[w(true, "aws-node", "aws-node")];
    const PROXY: &[Workload] = &[w(true, "kube-proxy", "kube-proxy")];
    const DNS: &[Workload] = &[w(false, "coredns", "coredns")];
    const EBS: &[Workload] = &[
        w(false, "ebs-csi-controller", "ebs-plugin"),
        w(true, "ebs-csi-node", "ebs-plugin"),
    ];
    match addon {
        "vpc-cni" => VPC,
        "kube-proxy" => PROXY,
        "coredns" => DNS,
        "aws-ebs-csi-driver" => EBS,
        _ => &[],
    }
}

/// Whether image `image`'s tag is add-on version `version`'s release: the tag equals the
/// upstream part (`v1.19.2` of `v1.19.2-eksbuild.1`) or starts with it and a `-`.
fn at_version(image: &str, version: &str) -> bool {
    let upstream = version.split('-').next().unwrap_or(version);
    let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
    tag == upstream || tag.starts_with(&format!("{upstream}-"))
}

/// What is still rolling out, one line each (empty: done). Workloads absent from the cluster
/// are not waited for.
async fn unfinished(
    kube: &kube::Client,
    addon: &str,
    version: &str,
) -> Result<Vec<String>, opsteps::exit::StepError> {
    let mut out = Vec::new();
    for w in workloads(addon) {
        let what = format!(
            "{}/kube-system/{}",
            if w.daemonset {
                "DaemonSet"
            } else {
                "Deployment"
            },
            w.name
        );
        let get_err = |e: kube::Error| opsteps::exit::StepError::kube(format!("get {what}"), e);
        let (generation, observed, want, updated, available, image) = if w.daemonset {
            let api: Api<DaemonSet> = Api::namespaced(kube.clone(), "kube-system");
            let Some(d) = api.get_opt(w.name).await.map_err(get_err)? else {
                continue;
            };
            let st = d.status.clone().unwrap_or_default();
            (
                d.metadata.generation.unwrap_or(0),
                st.observed_generation.unwrap_or(0),
                st.desired_number_scheduled,
                st.updated_number_scheduled.unwrap_or(0),
                st.number_available.unwrap_or(0),
                image_of(d.spec.and_then(|s| s.template.spec), w.container),
            )
        } else {
            let api: Api<Deployment> = Api::namespaced(kube.clone(), "kube-system");
            let Some(d) = api.get_opt(w.name).await.map_err(get_err)? else {
                continue;
            };
            let st = d.status.clone().unwrap_or_default();
            let spec = d.spec.unwrap_or_default();
            (
                d.metadata.generation.unwrap_or(0),
                st.observed_generation.unwrap_or(0),
                spec.replicas.unwrap_or(1),
                st.updated_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                image_of(spec.template.spec, w.container),
            )
        };
        if !at_version(&image, version) {
            out.push(format!("{what} runs {image}, not {version}"));
        } else if observed < generation || updated < want || available < want {
            out.push(format!(
                "{what}: {updated}/{want} updated, {available}/{want} available"
            ));
        }
    }
    Ok(out)
}

fn image_of(spec: Option<k8s_openapi::api::core::v1::PodSpec>, container: &str) -> String {
    let Some(spec) = spec else {
        return String::new();
    };
    spec.containers
        .iter()
        .find(|c| c.name == container)
        .or_else(|| spec.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_match_the_upstream_release() {
        let repo = "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni";
        assert!(at_version(
            &format!("{repo}:v1.19.2-eksbuild.1"),
            "v1.19.2-eksbuild.1"
        ));
        assert!(at_version(
            &format!("{repo}:v1.33.0-minimal-eksbuild.2"),
            "v1.33.0-eksbuild.2"
        ));
        assert!(at_version(&format!("{repo}:v1.48.0"), "v1.48.0-eksbuild.2"));
        assert!(!at_version(
            &format!("{repo}:v1.19.20"),
            "v1.19.2-eksbuild.1"
        ));
        assert!(!at_version(
            &format!("{repo}:v1.18.6-eksbuild.1"),
            "v1.19.2-eksbuild.1"
        ));
    }
}
