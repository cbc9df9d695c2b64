//! Carrying out a plan: one update in flight at a time, attaching to a running one instead of
//! starting a second, each step waited for, every UpdateAddon audited.

use std::time::Instant as StdInstant;

use opsteps::audit::Target;
use opsteps::events::EventType;
use opsteps::step::Context;

use crate::api::{Eks, UpdateParams};
use crate::plan::{Action, AddonPlan};
use crate::report::{AddonResult, Status};
use crate::versions;
use crate::wait::{self, End, Settings};

/// The `clientRequestToken` of one step: the same for every run of the same workflow (an Argo
/// retry) on the same add-on and target, so a retry cannot start a second update; `None`
/// outside Argo (the SDK then sends a fresh one).
#[must_use]
pub fn client_request_token(
    workflow_uid: Option<&str>,
    cluster: &str,
    addon: &str,
    version: &str,
) -> Option<String> {
    let uid = workflow_uid?;
    let text = format!("{uid}\0{cluster}\0{addon}\0{version}");
    Some(format!(
        "bump-addon-{:016x}{:016x}",
        fnv(text.as_bytes(), 0xcbf2_9ce4_8422_2325),
        fnv(text.as_bytes(), 0x8422_2325_cbf2_9ce4)
    ))
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why a planned add-on is left where it is, if it is.
fn not_moved(p: &AddonPlan) -> Option<String> {
    match p.action {
        Action::Kept => Some(format!(
            "no {} version runs on both Kubernetes versions; it moves after the control-plane upgrade",
            p.name
        )),
        Action::SkippedDowngrade => Some(format!(
            "{} resolved to {}, older than the installed {}; --allow-downgrade moves it",
            p.name, p.to, p.from
        )),
        Action::Update | Action::Unchanged => None,
    }
}

/// What every add-on's updates share.
pub struct Run<'a> {
    /// EKS calls.
    pub eks: &'a Eks,
    /// The target cluster.
    pub kube: &'a kube::Client,
    /// Cluster name.
    pub cluster: &'a str,
    /// Wait settings.
    pub wait: Settings,
    /// UpdateAddon parameters but the token.
    pub params: UpdateParams,
    /// `$ARGO_WORKFLOW_UID`.
    pub workflow_uid: Option<String>,
    /// Context (audit, shutdown).
    pub ctx: &'a Context,
}

impl Run<'_> {
    /// Every add-on in plan order, one at a time; after one that did not finish (failed,
    /// still progressing, interrupted) the rest are not started.
    pub async fn all(&self, plans: &[AddonPlan]) -> Vec<AddonResult> {
        let total = plans.len() as u64;
        let mut results: Vec<AddonResult> = Vec::new();
        for (i, p) in plans.iter().enumerate() {
            let stopped = results
                .iter()
                .any(|r| r.status.exit() != opsteps::exit::ExitStatus::Done);
            let r = if stopped {
                AddonResult {
                    status: Status::NotStarted,
                    message: Some("not started: an earlier add-on did not finish".into()),
                    ..AddonResult::planned(p)
                }
            } else {
                self.addon(p).await
            };
            results.push(r);
            self.ctx.output.progress(i as u64 + 1, total);
        }
        results
    }

    /// Moves one add-on along its plan.
    #[tracing::instrument(skip_all, fields(addon = %p.name, from = %p.from, to = %p.to), ret)]
    pub async fn addon(&self, p: &AddonPlan) -> AddonResult {
        let started = StdInstant::now();
        let mut r = AddonResult {
            name: p.name.clone(),
            from: p.from.clone(),
            to: p.to.clone(),
            steps: p.steps.clone(),
            update_ids: Vec::new(),
            attached: Vec::new(),
            status: Status::Updated,
            seconds_waited: 0,
            degraded_reads: 0,
            health_issues: Vec::new(),
            errors: Vec::new(),
            message: None,
        };
        if let Some(message) = not_moved(p) {
            r.status = if p.action == Action::Kept {
                Status::Kept
            } else {
                Status::SkippedDowngrade
            };
            r.message = Some(message);
            return r;
        }
        // Steps done + attachments + 409s; bounded so a misbehaving API cannot loop us.
        let mut rounds = p.steps.len() * 2 + 4;
        loop {
            rounds = rounds.saturating_sub(1);
            if rounds == 0 {
                return self.end(
                    r,
                    started,
                    Status::Failed,
                    "the add-on did not converge on its target".into(),
                );
            }
            if self.ctx.shutdown.is_requested() {
                return self.end(
                    r,
                    started,
                    Status::Interrupted,
                    "interrupted by SIGTERM before the next update".into(),
                );
            }
            // Attach to an update already running (an earlier run, someone else).
            match self.eks.running_update(&p.name).await {
                Ok(Some(u)) => {
                    tracing::info!(update = %u.id, "attaching to the update in progress");
                    r.update_ids.push(u.id.clone());
                    r.attached.push(u.id.clone());
                    let version = u.version.clone().unwrap_or_else(|| p.to.clone());
                    if let Some(stop) = self.wait_for(&mut r, &u.id, &version, started).await {
                        return stop;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return self.error(r, started, &e),
            }
            let state = match self.eks.describe_addon(&p.name).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return self.end(
                        r,
                        started,
                        Status::Failed,
                        format!("{} is no longer installed", p.name),
                    );
                }
                Err(e) => return self.error(r, started, &e),
            };
            let config_done = self
                .params
                .configuration_values
                .as_deref()
                .is_none_or(|want| {
                    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
                    state.configuration_values.as_deref().and_then(parse) == parse(want)
                });
            if state.version == p.to && config_done {
                if r.update_ids.is_empty() {
                    r.status = Status::Unchanged;
                }
                r.seconds_waited = started.elapsed().as_secs();
                return r;
            }
            let next = match versions::steps(&p.name, &state.version, &p.to, "", &p.offered) {
                Ok(s) => s.into_iter().next().unwrap_or_else(|| p.to.clone()),
                Err(e) => return self.end(r, started, Status::Failed, e.to_string()),
            };
            if let Some(stop) = self.step(&mut r, &p.name, &next, started).await {
                return stop;
            }
        }
    }

    /// Starts the update of `addon` to `next` and waits for it; `Some(result)` when the
    /// add-on's run ends here. A 409 (an update started since we looked) returns `None`: the
    /// next round attaches to it.
    async fn step(
        &self,
        r: &mut AddonResult,
        addon: &str,
        next: &str,
        started: StdInstant,
    ) -> Option<AddonResult> {
        let params = UpdateParams {
            token: client_request_token(self.workflow_uid.as_deref(), self.cluster, addon, next),
            ..self.params.clone()
        };
        let target = Target::cluster("Addon", &format!("{}/{addon}", self.cluster));
        self.ctx.audit.sent("update-addon", &target, false);
        match self.eks.update_addon(addon, next, &params).await {
            Ok(u) => {
                self.ctx
                    .audit
                    .record("update-addon", target, false, Ok(200));
                tracing::info!(update = %u.id, version = %next, "update started");
                r.update_ids.push(u.id.clone());
                self.wait_for(r, &u.id, next, started).await
            }
            Err(Ok(in_use)) => {
                self.ctx.audit.record(
                    "update-addon",
                    target,
                    false,
                    Err((Some(409), in_use.to_string())),
                );
                tracing::info!(error = %in_use, "an update is already running; attaching");
                self.until_listed(r, addon, started).await
            }
            Err(Err(e)) => {
                self.ctx
                    .audit
                    .record("update-addon", target, false, Err((None, e.chain())));
                Some(self.error(r.clone(), started, &e))
            }
        }
    }

    /// After a 409: waits until the running update shows in ListUpdates (lists lag behind,
    /// eksctl#7269) or the add-on is no longer updating; the next round attaches to it.
    async fn until_listed(
        &self,
        r: &mut AddonResult,
        addon: &str,
        started: StdInstant,
    ) -> Option<AddonResult> {
        loop {
            match self.eks.running_update(addon).await {
                Ok(Some(_)) => return None,
                Ok(None) => {}
                Err(e) => return Some(self.error(r.clone(), started, &e)),
            }
            match self.eks.describe_addon(addon).await {
                Ok(Some(a)) if a.status != "UPDATING" => return None,
                Ok(_) => {}
                Err(e) => return Some(self.error(r.clone(), started, &e)),
            }
            match wait::pause(&self.wait).await {
                Ok(()) => {}
                Err(wait::Stop::Deadline) => {
                    return Some(self.end(
                        r.clone(),
                        started,
                        Status::Progressing,
                        format!("{addon} is being updated by someone else (409) and was still at --timeout"),
                    ));
                }
                Err(wait::Stop::Interrupted) => {
                    return Some(self.end(
                        r.clone(),
                        started,
                        Status::Interrupted,
                        "interrupted by SIGTERM".into(),
                    ));
                }
            }
        }
    }

    /// Waits for update `id`; `Some(result)` when the add-on's run ends here.
    async fn wait_for(
        &self,
        r: &mut AddonResult,
        id: &str,
        version: &str,
        started: StdInstant,
    ) -> Option<AddonResult> {
        match wait::update(self.eks, self.kube, &r.name, id, version, &self.wait).await {
            End::Healthy { degraded_reads } => {
                r.degraded_reads += degraded_reads;
                let message = format!("EKS add-on {} is at {version} (update {id})", r.name);
                crate::events::on_workloads(
                    self.kube,
                    self.ctx,
                    &r.name,
                    EventType::Normal,
                    "AddonUpdated",
                    &message,
                )
                .await;
                None
            }
            End::Failed {
                message,
                issues,
                errors,
            } => {
                r.health_issues = issues;
                r.errors = errors;
                crate::events::on_workloads(
                    self.kube,
                    self.ctx,
                    &r.name,
                    EventType::Warning,
                    "AddonUpdateFailed",
                    &message,
                )
                .await;
                Some(self.end(r.clone(), started, Status::Failed, message))
            }
            End::Timeout { phase, last } => Some(self.end(
                r.clone(),
                started,
                Status::Progressing,
                format!(
                    "still progressing at --timeout ({phase}: {last}); a re-run attaches to it"
                ),
            )),
            End::Interrupted => Some(self.end(
                r.clone(),
                started,
                Status::Interrupted,
                format!(
                    "interrupted by SIGTERM while waiting for update {id}; a re-run attaches to it"
                ),
            )),
            End::Error(m, s) => Some(self.end(
                r.clone(),
                started,
                if s == opsteps::exit::ExitStatus::Transient {
                    Status::Interrupted
                } else {
                    Status::Failed
                },
                m,
            )),
        }
    }

    fn error(
        &self,
        r: AddonResult,
        started: StdInstant,
        e: &opsteps::exit::StepError,
    ) -> AddonResult {
        let status = match e.status() {
            opsteps::exit::ExitStatus::Transient => Status::Interrupted,
            _ => Status::Failed,
        };
        self.end(r, started, status, e.chain())
    }

    #[allow(clippy::unused_self)]
    fn end(
        &self,
        mut r: AddonResult,
        started: StdInstant,
        status: Status,
        message: String,
    ) -> AddonResult {
        tracing::warn!(addon = %r.name, status = ?status, message = %message, "add-on not moved");
        r.status = status;
        r.message = Some(message);
        r.seconds_waited = started.elapsed().as_secs();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_deterministic_per_workflow_addon_and_target() {
        let t = |u: Option<&str>, a: &str, v: &str| client_request_token(u, "prod", a, v);
        assert_eq!(
            t(Some("u1"), "vpc-cni", "v1"),
            t(Some("u1"), "vpc-cni", "v1")
        );
        assert_ne!(
            t(Some("u1"), "vpc-cni", "v1"),
            t(Some("u2"), "vpc-cni", "v1")
        );
        assert_ne!(
            t(Some("u1"), "vpc-cni", "v1"),
            t(Some("u1"), "coredns", "v1")
        );
        assert_ne!(
            t(Some("u1"), "vpc-cni", "v1"),
            t(Some("u1"), "vpc-cni", "v2")
        );
        assert_eq!(t(None, "vpc-cni", "v1"), None);
        assert!(t(Some("u"), "a", "v").unwrap().len() <= 64);
    }
}
