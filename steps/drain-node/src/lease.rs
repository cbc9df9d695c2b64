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
use opsteps::shutdown::Shutdown;

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

/// What the renewer knows about a held lease, shared with the drain.
#[derive(Debug, Default)]
struct State {
    /// Set once the lease is no longer ours.
    lost: opsteps::shutdown::Shutdown,
    /// Why.
    why: std::sync::Mutex<Option<String>>,
    /// The resourceVersion of our last write: release deletes only that version.
    resource_version: std::sync::Mutex<Option<String>>,
}

impl State {
    fn lose(&self, why: String) {
        tracing::warn!(reason = %why, "drain lease lost; stopping this node's drain");
        *self
            .why
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        self.lost.trigger();
    }

    fn set_version(&self, rv: Option<String>) {
        *self
            .resource_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rv;
    }

    fn version(&self) -> Option<String> {
        self.resource_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A handle on a held lease that tells whether it is still ours.
#[derive(Clone, Debug)]
pub struct Guard(Arc<State>);

impl Guard {
    /// Why the lease is no longer ours, if it is not.
    #[must_use]
    pub fn lost(&self) -> Option<String> {
        if !self.0.lost.is_requested() {
            return None;
        }
        self.0
            .why
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .or_else(|| Some("lease lost".into()))
    }

    /// Completes when the lease is lost, with why.
    pub async fn wait_lost(&self) -> String {
        self.0.lost.requested().await;
        self.lost().unwrap_or_default()
    }
}

/// A held lease; renewed in the background until released or dropped.
pub struct Held {
    api: Api<Lease>,
    namespace: String,
    name: String,
    state: Arc<State>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Held {
    /// A handle that tells whether the lease is still ours.
    #[must_use]
    pub fn guard(&self) -> Guard {
        Guard(self.state.clone())
    }

    /// Stops renewing and deletes the lease (a finished drain leaves no lock behind), only while
    /// it is still the version we wrote: a successor's lease is never deleted.
    #[tracing::instrument(skip_all, fields(lease = %self.name))]
    pub async fn release(self, audit: &Auditor) {
        self.renewer.abort();
        let target = Target::namespaced("Lease", &self.namespace, &self.name);
        if let Some(why) = self.guard().lost() {
            tracing::info!(reason = %why, "not releasing a lease that is no longer ours");
            return;
        }
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: self.state.version(),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        audit.sent("release-lease", &target, false);
        let r = self.api.delete(&self.name, &dp).await;
        let result = match &r {
            Ok(_) => Ok(200),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(404),
            Err(kube::Error::Api(s)) => {
                if s.code == 409 {
                    tracing::info!("the lease changed hands since our last renewal; left in place");
                }
                Err((Some(s.code), s.message.clone()))
            }
            Err(e) => Err((None, e.to_string())),
        };
        audit.record("release-lease", target, false, result);
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
#[tracing::instrument(skip_all, fields(node = %node), err)]
pub async fn acquire(
    client: &Client,
    namespace: &str,
    node: &str,
    me: &str,
    duration: Duration,
    audit: &Arc<Auditor>,
    shutdown: &Shutdown,
) -> Result<Result<Held, Busy>, StepError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(node);
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
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
                audit.sent("acquire-lease", &target, false);
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
                audit.sent("acquire-lease", &target, false);
                api.replace(&name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(lease) => {
                audit.record("acquire-lease", target.clone(), false, Ok(200));
                let state = Arc::new(State::default());
                state.set_version(lease.resource_version());
                let renewer = tokio::spawn(renew(
                    api.clone(),
                    target,
                    me.to_owned(),
                    duration,
                    audit.clone(),
                    state.clone(),
                    shutdown.clone(),
                ));
                return Ok(Ok(Held {
                    api,
                    namespace: namespace.to_owned(),
                    name: lease.name_any(),
                    state,
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

/// Renews every third of the lease duration. The lease is lost when someone else holds it, when
/// it is gone, or when no renewal succeeded for a whole lease duration (another drain may take
/// it then).
async fn renew(
    api: Api<Lease>,
    target: Target,
    me: String,
    duration: Duration,
    audit: Arc<Auditor>,
    state: Arc<State>,
    shutdown: Shutdown,
) {
    let name = target.name.clone();
    let mut renewed = tokio::time::Instant::now();
    loop {
        // No renewal after SIGTERM: a write; a retry of this workflow takes the lease over.
        tokio::select! {
            () = tokio::time::sleep(duration / 3) => {}
            () = shutdown.requested() => return,
        }
        let failed = |e: String| {
            tracing::debug!(lease = %name, error = %e, "lease renewal failed; will retry");
            if renewed.elapsed() >= duration {
                state.lose(format!(
                    "lease {name} not renewed for {}s: {e}",
                    duration.as_secs()
                ));
                return true;
            }
            false
        };
        let mut lease = match api.get_opt(&name).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                state.lose(format!("lease {name} was deleted by someone else"));
                return;
            }
            Err(e) => {
                if failed(e.to_string()) {
                    return;
                }
                continue;
            }
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(me.as_str()) {
            state.lose(format!(
                "lease {name} taken over by {}",
                spec.holder_identity.as_deref().unwrap_or("nobody")
            ));
            return;
        }
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        audit.sent("renew-lease", &target, false);
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(l) => {
                renewed = tokio::time::Instant::now();
                state.set_version(l.resource_version());
                audit.record("renew-lease", target.clone(), false, Ok(200));
            }
            Err(e) => {
                audit.record(
                    "renew-lease",
                    target.clone(),
                    false,
                    Err((None, e.to_string())),
                );
                if failed(e.to_string()) {
                    return;
                }
            }
        }
    }
}

/// Takes one Lease per node, all or nothing; stops (taking no more) on SIGTERM.
pub async fn take_all(
    client: &Client,
    namespace: &str,
    names: &[String],
    me: &str,
    duration: Duration,
    audit: &Arc<Auditor>,
    shutdown: &Shutdown,
) -> Result<Vec<Held>, StepError> {
    let mut held = Vec::new();
    for n in names {
        if shutdown.is_requested() {
            // No release either: releasing is a write, and a retry of this workflow takes the
            // leases over at once.
            return Err(StepError::transient(
                "SIGTERM while taking the drain leases",
            ));
        }
        match acquire(client, namespace, n, me, duration, audit, shutdown).await {
            Ok(Ok(h)) => held.push(h),
            other => {
                if !shutdown.is_requested() {
                    for h in held {
                        h.release(audit).await;
                    }
                }
                return Err(match other {
                    Ok(Err(busy)) => StepError::blocked(format!(
                        "node {n} is being drained by {} (lease renewed {}s ago); not touching it",
                        busy.holder, busy.renewed_secs_ago
                    )),
                    Err(e) => e,
                    Ok(Ok(_)) => unreachable!("handled above"),
                });
            }
        }
    }
    Ok(held)
}
