//! `--mode restart`: for a Deployment/StatefulSet that cannot lose a pod safely (one replica,
//! or no PDB), patch its pod template once per run, as `kubectl rollout restart` does, instead
//! of evicting; the rollout starts the new pod before the old one goes.

use std::sync::atomic::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, Patch, PatchParams};
use opsteps::audit::Target;
use opsteps::cli::DryRun;
use serde_json::json;
use tracing::instrument;

use super::attempt::Attempt;
use super::owners::Owner;
use super::{Candidate, Run};
use crate::STEP;
use crate::classify::Skip;

/// Annotation a rollout restart sets on the pod template, as `kubectl rollout restart`.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

impl Run<'_> {
    /// Restarts `o` (once per run) for the candidate `c`; paused Deployments are skipped.
    #[instrument(skip_all, fields(namespace = %c.namespace, pod = %c.name, owner = %o.name))]
    pub(super) async fn restart(&mut self, c: &Candidate, o: &Owner) -> Attempt {
        let key = o.key(&c.namespace);
        if self.restarted.contains(&key) {
            return Attempt::Done {
                verdict: "restarted-owner".into(),
                message: Some(format!("{} {} restarted in this run", o.kind, o.name)),
            };
        }
        if o.paused {
            return Attempt::Done {
                verdict: Skip::OwnerPaused.verdict(),
                message: Some(format!(
                    "Deployment {} is paused: a restart would not roll out",
                    o.name
                )),
            };
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: self.now.to_string()}}}}});
        let pp = PatchParams {
            field_manager: Some(STEP.to_owned()),
            dry_run: self.cfg.dry_run == DryRun::Server,
            ..PatchParams::default()
        };
        let result: Result<(), kube::Error> = if self.cfg.dry_run == DryRun::Client {
            Ok(())
        } else {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let target = Target::namespaced(&o.kind, &c.namespace, &o.name);
            self.audit().sent("rollout-restart", &target, pp.dry_run);
            let r = if o.kind == "Deployment" {
                Api::<Deployment>::namespaced(self.client.clone(), &c.namespace)
                    .patch(&o.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            } else {
                Api::<StatefulSet>::namespaced(self.client.clone(), &c.namespace)
                    .patch(&o.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            };
            let audit = match &r {
                Ok(()) => Ok(200),
                Err(kube::Error::Api(s)) => Err((Some(s.code), s.message.clone())),
                Err(e) => Err((None, e.to_string())),
            };
            self.audit()
                .record("rollout-restart", target, pp.dry_run, audit);
            r
        };
        match result {
            Ok(()) => {
                self.restarted.insert(key.clone());
                self.count(c, Some(&key));
                self.report.totals.restarted_owners += 1;
                tracing::info!(namespace = %c.namespace, kind = %o.kind, owner = %o.name, "rollout restart");
                Attempt::Done {
                    verdict: "restarted-owner".into(),
                    message: Some(format!(
                        "{} {} rollout-restarted ({} replica(s){})",
                        o.kind,
                        o.name,
                        o.replicas.unwrap_or(0),
                        if c.pdb.is_none() { ", no PDB" } else { "" }
                    )),
                }
            }
            Err(e) => {
                let transient = opsteps::retry::is_transient_kube(&e);
                self.failed(transient);
                Attempt::Done {
                    verdict: "failed".into(),
                    message: Some(format!("rollout restart of {} {}: {e}", o.kind, o.name)),
                }
            }
        }
    }
}
