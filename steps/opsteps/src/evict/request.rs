//! The Eviction (or DELETE) request and what the API server's answer means.
//!
//! The Eviction request is built here rather than with `kube::Api::evict`: kube-rs 5.0 sends the
//! body as `{"delete_options": …, "metadata": …}`, a snake_case key the API server ignores, so a
//! grace period or UID precondition given through `EvictParams` never reaches the server. We
//! send a complete `policy/v1` Eviction with `deleteOptions`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use serde_json::json;

use crate::audit::{Auditor, Target};

/// Options of one eviction.
#[derive(Clone, Debug, Default)]
pub struct EvictOptions {
    /// `deleteOptions.gracePeriodSeconds`; `None` uses the pod's own.
    pub grace_period_seconds: Option<i64>,
    /// `dryRun=All`: the server checks budgets but persists nothing.
    pub dry_run: bool,
    /// UID precondition: never evict a same-name replacement.
    pub uid: Option<String>,
}

/// What the API server said to an eviction (or deletion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvictResult {
    /// Accepted: the pod is being deleted (or, in a dry run, would be).
    Evicted,
    /// 404: the pod is already gone.
    Gone,
    /// 409 on the UID precondition: the pod with that UID is gone, a replacement has the name.
    Replaced,
    /// 429: a PodDisruptionBudget allows no disruption now; retry later.
    Blocked {
        /// The server's message.
        message: String,
        /// The PDB named in the cause, when given.
        pdb: Option<String>,
        /// `details.retryAfterSeconds`.
        retry_after: Option<Duration>,
    },
    /// 500 "more than one PodDisruptionBudget": eviction can never succeed.
    MultiplePdbs {
        /// The server's message.
        message: String,
    },
    /// 403 with cause `NamespaceTerminating`.
    NamespaceTerminating,
    /// Anything else.
    Error {
        /// HTTP status, when the server answered.
        code: Option<u16>,
        /// Message.
        message: String,
        /// Throttling, 5xx, connection failure.
        transient: bool,
    },
}

impl EvictResult {
    fn from_kube(err: &kube::Error) -> Self {
        match err {
            kube::Error::Api(s) => {
                let causes = s
                    .details
                    .as_ref()
                    .map(|d| d.causes.as_slice())
                    .unwrap_or_default();
                match s.code {
                    404 => Self::Gone,
                    409 if s.message.contains("Precondition failed: UID")
                        || s.message.contains("UID in precondition") =>
                    {
                        Self::Replaced
                    }
                    429 => {
                        let pdb = causes
                            .iter()
                            .find(|c| c.reason == "DisruptionBudget")
                            .and_then(|c| pdb_from_cause(&c.message));
                        let retry_after = s
                            .details
                            .as_ref()
                            .map(|d| d.retry_after_seconds)
                            .filter(|&n| n > 0)
                            .map(|n| Duration::from_secs(u64::from(n)));
                        Self::Blocked {
                            message: s.message.clone(),
                            pdb,
                            retry_after,
                        }
                    }
                    500 if s.message.contains("more than one PodDisruptionBudget") => {
                        Self::MultiplePdbs {
                            message: s.message.clone(),
                        }
                    }
                    403 if causes.iter().any(|c| c.reason == "NamespaceTerminating")
                        || s.message.contains("being terminated") =>
                    {
                        Self::NamespaceTerminating
                    }
                    code => Self::Error {
                        code: Some(code),
                        message: s.message.clone(),
                        transient: crate::retry::is_transient_kube(err),
                    },
                }
            }
            other => Self::Error {
                code: None,
                message: other.to_string(),
                transient: crate::retry::is_transient_kube(other),
            },
        }
    }

    /// Short word for reports.
    #[must_use]
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Gone => "gone",
            Self::Replaced => "replaced",
            Self::Blocked { .. } => "blocked-by-pdb",
            Self::MultiplePdbs { .. } => "multiple-pdbs",
            Self::NamespaceTerminating => "namespace-terminating",
            Self::Error { .. } => "error",
        }
    }
}

/// "The disruption budget NAME needs 3 healthy pods and has 3 currently" → NAME.
fn pdb_from_cause(message: &str) -> Option<String> {
    let rest = message.strip_prefix("The disruption budget ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Sends a `policy/v1` Eviction for `namespace/name` and records it in the audit trail.
#[tracing::instrument(skip_all, fields(pod = %format_args!("{namespace}/{name}"), dry_run = opts.dry_run))]
pub async fn evict(
    client: &Client,
    namespace: &str,
    name: &str,
    opts: &EvictOptions,
    audit: &Auditor,
) -> EvictResult {
    let mut delete_options = serde_json::Map::new();
    if let Some(g) = opts.grace_period_seconds {
        delete_options.insert("gracePeriodSeconds".into(), json!(g));
    }
    if let Some(uid) = &opts.uid {
        delete_options.insert("preconditions".into(), json!({ "uid": uid }));
    }
    if opts.dry_run {
        delete_options.insert("dryRun".into(), json!(["All"]));
    }
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": delete_options,
    });
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods/{name}/eviction{}",
        if opts.dry_run { "?dryRun=All" } else { "" }
    );
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    let target = Target::namespaced("Pod", namespace, name);
    audit.sent("evict", &target, opts.dry_run);
    let result = match request {
        Ok(req) => match client.request::<serde_json::Value>(req).await {
            Ok(_) => EvictResult::Evicted,
            Err(e) => EvictResult::from_kube(&e),
        },
        Err(e) => EvictResult::Error {
            code: None,
            message: e.to_string(),
            transient: false,
        },
    };
    let audit_result = match &result {
        EvictResult::Evicted => Ok(201),
        EvictResult::Gone => Err((Some(404), "not found".to_owned())),
        EvictResult::Replaced => Err((Some(409), "UID precondition failed: replaced".to_owned())),
        EvictResult::Blocked { message, .. } => Err((Some(429), message.clone())),
        EvictResult::MultiplePdbs { message } => Err((Some(500), message.clone())),
        EvictResult::NamespaceTerminating => Err((Some(403), "namespace terminating".to_owned())),
        EvictResult::Error { code, message, .. } => Err((*code, message.clone())),
    };
    audit.record("evict", target, opts.dry_run, audit_result);
    result
}

/// Deletes `namespace/name` (bypassing PDBs, for `--disable-eviction`) and audits it.
#[tracing::instrument(skip_all, fields(pod = %format_args!("{namespace}/{name}"), dry_run = opts.dry_run))]
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    opts: &EvictOptions,
    audit: &Auditor,
) -> EvictResult {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut dp = kube::api::DeleteParams {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    dp.grace_period_seconds = opts
        .grace_period_seconds
        .and_then(|g| u32::try_from(g).ok());
    if let Some(uid) = &opts.uid {
        dp.preconditions = Some(kube::api::Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        });
    }
    let target = Target::namespaced("Pod", namespace, name);
    audit.sent("delete", &target, opts.dry_run);
    let result = match api.delete(name, &dp).await {
        Ok(_) => EvictResult::Evicted,
        Err(e) => EvictResult::from_kube(&e),
    };
    let audit_result = match &result {
        EvictResult::Evicted => Ok(200),
        other => Err((None, other.verdict().to_owned())),
    };
    audit.record("delete", target, opts.dry_run, audit_result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_api_answers() {
        let api =
            |v: serde_json::Value| kube::Error::Api(Box::new(serde_json::from_value(v).unwrap()));
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]}}),
        ));
        assert_eq!(
            r,
            EvictResult::Blocked {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                pdb: Some("web-pdb".into()),
                retry_after: None
            }
        );
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 500, "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
        ));
        assert!(matches!(r, EvictResult::MultiplePdbs { .. }));
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 404, "reason": "NotFound", "message": "pods \"x\" not found"}),
        ));
        assert_eq!(r, EvictResult::Gone);
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "pods \"x\" is forbidden: unable to create new content in namespace n because it is being terminated", "details": {"causes": [{"reason": "NamespaceTerminating"}]}}),
        ));
        assert_eq!(r, EvictResult::NamespaceTerminating);
        let r = EvictResult::from_kube(&api(
            json!({"status": "Failure", "code": 503, "message": "unavailable"}),
        ));
        assert!(matches!(
            r,
            EvictResult::Error {
                transient: true,
                ..
            }
        ));
    }
}
