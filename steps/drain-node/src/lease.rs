//! One drain per node at a time: a `coordination.k8s.io` Lease per node, renewed while the drain
//! runs. The holder is the Argo workflow (name/uid) when there is one, so a Retry of the same
//! workflow takes the lease over at once, while a second workflow is refused until the holder
//! releases it or stops renewing it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use opsteps::audit::{Auditor, Target};
use opsteps::exit::StepError;

/// Who holds drain leases in this run.
#[must_use]
pub fn holder_identity() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var(opsteps::env::ARGO_WORKFLOW_NAME),
        var(opsteps::env::ARGO_WORKFLOW_UID),
    ) {
        (Some(name), Some(uid)) => format!("argo:{name}/{uid}"),
        (Some(name), None) => format!("argo:{name}"),
        _ => {
            let host = std::fs::read_to_string("/etc/hostname")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
            format!(
                "{}@{host}/{}",
                var("USER").unwrap_or_else(|| "user".into()),
                std::process::id()
            )
        }
    }
}

/// The lease name for a node.
#[must_use]
pub fn lease_name(node: &str) -> String {
    format!("opsteps-drain-{node}")
}

/// A held lease; renewed in the background until released or dropped.
pub struct Held {
    api: Api<Lease>,
    namespace: String,
    name: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Held {
    /// Stops renewing and deletes the lease (a finished drain leaves no lock behind).
    pub async fn release(self, audit: &Auditor) {
        self.renewer.abort();
        let r = self.api.delete(&self.name, &DeleteParams::default()).await;
        let result = match &r {
            Ok(_) => Ok(200),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(404),
            Err(e) => Err((None, e.to_string())),
        };
        audit.record(
            "release-lease",
            Target::namespaced("Lease", &self.namespace, &self.name),
            false,
            result,
        );
    }
}

/// Who else holds a node's lease.
#[derive(Debug, Clone)]
pub struct Busy {
    /// The holder.
    pub holder: String,
    /// Seconds since its last renewal.
    pub renewed_secs_ago: i64,
}

/// Takes the lease of `node` for `me`, unless another live holder has it.
pub async fn acquire(
    client: &Client,
    namespace: &str,
    node: &str,
    me: &str,
    duration: Duration,
    audit: &Arc<Auditor>,
) -> Result<Result<Held, Busy>, StepError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(node);
    let secs = duration.as_secs().max(1) as i32;
    for _attempt in 0..3 {
        let now = MicroTime(jiff::Timestamp::now());
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| StepError::kube(format!("get lease {namespace}/{name}"), e))?;
        let target = Target::namespaced("Lease", namespace, &name);
        let result = match existing {
            None => {
                let lease = Lease {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.to_owned()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(me.to_owned()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let renewed = spec.renew_time.as_ref().map(|t| t.0).unwrap_or_default();
                let ttl = i64::from(spec.lease_duration_seconds.unwrap_or(secs));
                let age = jiff::Timestamp::now().duration_since(renewed).as_secs();
                if !holder.is_empty() && holder != me && age <= ttl {
                    return Ok(Err(Busy {
                        holder,
                        renewed_secs_ago: age,
                    }));
                }
                if holder != me {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(me.to_owned());
                spec.lease_duration_seconds = Some(secs);
                spec.renew_time = Some(now);
                // The resourceVersion we read makes a concurrent taker fail with 409.
                api.replace(&name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(lease) => {
                audit.record("acquire-lease", target.clone(), false, Ok(200));
                let renewer = tokio::spawn(renew(
                    api.clone(),
                    target,
                    me.to_owned(),
                    duration,
                    audit.clone(),
                ));
                return Ok(Ok(Held {
                    api,
                    namespace: namespace.to_owned(),
                    name: lease.name_any(),
                    renewer,
                }));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                audit.record(
                    "acquire-lease",
                    target.clone(),
                    false,
                    Err((Some(409), s.message.clone())),
                );
            }
            Err(e) => {
                audit.record("acquire-lease", target, false, Err((None, e.to_string())));
                return Err(StepError::kube(format!("take lease {namespace}/{name}"), e));
            }
        }
    }
    Err(StepError::transient(format!(
        "lease {namespace}/{name} kept changing under us; retry"
    )))
}

/// Renews every third of the lease duration; stops if the lease was taken away.
async fn renew(
    api: Api<Lease>,
    target: Target,
    me: String,
    duration: Duration,
    audit: Arc<Auditor>,
) {
    let name = target.name.clone();
    loop {
        tokio::time::sleep(duration / 3).await;
        let Ok(Some(mut lease)) = api.get_opt(&name).await else {
            continue;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(me.as_str()) {
            tracing::warn!(lease = %name, holder = ?spec.holder_identity, "drain lease taken over; no longer renewing");
            return;
        }
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => audit.record("renew-lease", target.clone(), false, Ok(200)),
            Err(e) => {
                tracing::debug!(lease = %name, error = %e, "lease renewal failed; will retry");
                audit.record(
                    "renew-lease",
                    target.clone(),
                    false,
                    Err((None, e.to_string())),
                );
            }
        }
    }
}
