//! The EKS add-on calls the step makes, each retried under one bounded policy (throttling and
//! 5xx, jittered backoff, the step's deadline and SIGTERM). The SDK's own retries are off so
//! that the deadline, not a hidden retry loop, decides how long a throttling burst is ridden out.

use std::time::Duration;

use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::{AddonPodIdentityAssociations, ResolveConflicts};
use opsteps::exit::{ExitStatus, StepError};
use opsteps::retry::{RetryError, RetryPolicy, Transient};
use tokio::time::Instant;

use crate::versions::Offered;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An EKS call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {target}: {code}: {message}")]
pub struct ApiError {
    /// Operation (`UpdateAddon`).
    pub operation: &'static str,
    /// What it was about (`vpc-cni`).
    pub target: String,
    /// EKS error code (`ResourceInUseException`), or the SDK error kind.
    pub code: String,
    /// Server message.
    pub message: String,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    transient: bool,
    #[source]
    source: Option<BoxError>,
}

/// Error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "ServerException",
    "ServiceUnavailableException",
    "InternalFailure",
];

impl ApiError {
    fn from_sdk<E>(
        operation: &'static str,
        target: &str,
        e: SdkError<E, aws_sdk_eks::config::http::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let message = e.message().unwrap_or_default().to_owned();
        let transport = matches!(
            e,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        );
        let transient = transport
            || code
                .as_deref()
                .is_some_and(|c| TRANSIENT_CODES.contains(&c))
            || status.is_some_and(|s| s == 429 || (s >= 500 && s != 501));
        Self {
            operation,
            target: target.to_owned(),
            code: code.unwrap_or_else(|| {
                if transport {
                    "ConnectionError"
                } else {
                    "Unknown"
                }
                .into()
            }),
            message,
            status,
            transient,
            source: Some(Box::new(e)),
        }
    }

    /// Whether EKS answered `code`.
    #[must_use]
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// The step error: unknown names and invalid parameters are bad input, transient errors
    /// transient, the rest failures.
    #[must_use]
    pub fn into_step_error(self) -> StepError {
        let status = if self.transient {
            ExitStatus::Transient
        } else if matches!(
            self.code.as_str(),
            "ResourceNotFoundException" | "InvalidParameterException"
        ) {
            ExitStatus::BadInput
        } else {
            ExitStatus::Failed
        };
        StepError::new(status, self.to_string())
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

/// Turns a retry outcome into a step error (interrupted and deadline: transient).
fn stop(e: RetryError<ApiError>) -> StepError {
    match e {
        RetryError::Interrupted(e) => StepError::new(
            ExitStatus::interrupted(),
            format!("{e}: interrupted by SIGTERM"),
        ),
        RetryError::Deadline(e) => StepError::transient(format!("{e} (deadline reached)")),
        RetryError::Exhausted { source, attempts } => {
            StepError::transient(format!("{source} (gave up after {attempts} attempts)"))
        }
        RetryError::Permanent(e) => e.into_step_error(),
    }
}

/// What DescribeAddon says.
#[derive(Clone, Debug, Default)]
pub struct AddonState {
    /// Installed version.
    pub version: String,
    /// `ACTIVE`, `DEGRADED`, `UPDATING`, ...
    pub status: String,
    /// `code: message` of each health issue.
    pub issues: Vec<String>,
    /// Installed `configurationValues`.
    pub configuration_values: Option<String>,
    /// Last change, epoch seconds.
    pub modified_at: Option<i64>,
}

/// An update as DescribeUpdate says.
#[derive(Clone, Debug, Default)]
pub struct UpdateState {
    /// Id.
    pub id: String,
    /// `InProgress`, `Successful`, `Failed`, `Cancelled`.
    pub status: String,
    /// `AddonVersion` param.
    pub version: Option<String>,
    /// `code: message` of each error.
    pub errors: Vec<String>,
}

/// The add-on calls for one cluster.
#[derive(Clone, Debug)]
pub struct Eks {
    client: aws_sdk_eks::Client,
    cluster: String,
    policy: RetryPolicy,
}

/// What UpdateAddon sends besides the version.
#[derive(Clone, Debug, Default)]
pub struct UpdateParams {
    /// `resolveConflicts`.
    pub resolve_conflicts: &'static str,
    /// `configurationValues`.
    pub configuration_values: Option<String>,
    /// `serviceAccountRoleArn`.
    pub role: Option<String>,
    /// `podIdentityAssociations`.
    pub pod_identity: Vec<(String, String)>,
    /// `clientRequestToken`.
    pub token: Option<String>,
}

impl Eks {
    /// A client for `cluster` from `sdk` with the SDK's retries off, retrying under `policy`.
    #[must_use]
    pub fn new(sdk: &aws_config::SdkConfig, cluster: &str, policy: RetryPolicy) -> Self {
        let conf = aws_sdk_eks::config::Builder::from(sdk)
            .retry_config(aws_sdk_eks::config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_eks::Client::from_conf(conf),
            cluster: cluster.to_owned(),
            policy,
        }
    }

    /// The same calls with `deadline` for retries.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.policy.deadline = Some(deadline);
        self
    }

    /// ListAddons, every page.
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster), err)]
    pub async fn list_addons(&self) -> Result<Vec<String>, StepError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .policy
                .retry("ListAddons", || async {
                    self.client
                        .list_addons()
                        .cluster_name(&self.cluster)
                        .set_next_token(next.clone())
                        .send()
                        .await
                        .map_err(|e| ApiError::from_sdk("ListAddons", &self.cluster, e))
                })
                .await
                .map_err(stop)?;
            out.extend(page.addons().iter().cloned());
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    /// DescribeAddon; `Ok(None)` when the add-on is not installed.
    #[tracing::instrument(skip_all, fields(addon), err)]
    pub async fn describe_addon(&self, addon: &str) -> Result<Option<AddonState>, StepError> {
        let r = self
            .policy
            .retry("DescribeAddon", || async {
                self.client
                    .describe_addon()
                    .cluster_name(&self.cluster)
                    .addon_name(addon)
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("DescribeAddon", addon, e))
            })
            .await;
        let out = match r {
            Ok(o) => o,
            Err(RetryError::Permanent(e))
                if e.is("ResourceNotFoundException") && e.message.contains("addon") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(stop(e)),
        };
        let Some(a) = out.addon else {
            return Ok(None);
        };
        Ok(Some(AddonState {
            version: a.addon_version.clone().unwrap_or_default(),
            status: a
                .status
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            issues: a
                .health
                .as_ref()
                .map(|h| {
                    h.issues()
                        .iter()
                        .map(|i| {
                            format!(
                                "{}: {}",
                                i.code().map_or("Unknown", |c| c.as_str()),
                                i.message().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            configuration_values: a.configuration_values.clone(),
            modified_at: a.modified_at.map(|t| t.secs()),
        }))
    }

    /// DescribeAddonVersions of `addon` for Kubernetes `kubernetes`.
    #[tracing::instrument(skip_all, fields(addon, kubernetes), err)]
    pub async fn versions(&self, addon: &str, kubernetes: &str) -> Result<Vec<Offered>, StepError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .policy
                .retry("DescribeAddonVersions", || async {
                    self.client
                        .describe_addon_versions()
                        .addon_name(addon)
                        .kubernetes_version(kubernetes)
                        .set_next_token(next.clone())
                        .send()
                        .await
                        .map_err(|e| ApiError::from_sdk("DescribeAddonVersions", addon, e))
                })
                .await
                .map_err(stop)?;
            for info in page
                .addons()
                .iter()
                .filter(|i| i.addon_name() == Some(addon))
            {
                for v in info.addon_versions() {
                    let default = v
                        .compatibilities()
                        .iter()
                        .any(|c| c.cluster_version() == Some(kubernetes) && c.default_version());
                    if let Some(version) = v.addon_version() {
                        out.push(Offered {
                            version: version.to_owned(),
                            default,
                        });
                    }
                }
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    /// DescribeAddonConfiguration: the JSON schema of `addon` `version`'s configuration values.
    #[tracing::instrument(skip_all, fields(addon, version), err)]
    pub async fn configuration_schema(
        &self,
        addon: &str,
        version: &str,
    ) -> Result<Option<String>, StepError> {
        let out = self
            .policy
            .retry("DescribeAddonConfiguration", || async {
                self.client
                    .describe_addon_configuration()
                    .addon_name(addon)
                    .addon_version(version)
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("DescribeAddonConfiguration", addon, e))
            })
            .await
            .map_err(stop)?;
        Ok(out.configuration_schema().map(str::to_owned))
    }

    /// The update of `addon` still InProgress, if any (ListUpdates, then DescribeUpdate of
    /// each, newest first).
    #[tracing::instrument(skip_all, fields(addon), err)]
    pub async fn running_update(&self, addon: &str) -> Result<Option<UpdateState>, StepError> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .policy
                .retry("ListUpdates", || async {
                    self.client
                        .list_updates()
                        .name(&self.cluster)
                        .addon_name(addon)
                        .set_next_token(next.clone())
                        .send()
                        .await
                        .map_err(|e| ApiError::from_sdk("ListUpdates", addon, e))
                })
                .await
                .map_err(stop)?;
            ids.extend(page.update_ids().iter().cloned());
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        for id in ids.iter().rev() {
            let u = self.describe_update(addon, id).await?;
            if u.status == "InProgress" {
                return Ok(Some(u));
            }
        }
        Ok(None)
    }

    /// DescribeUpdate `id` of `addon`.
    #[tracing::instrument(skip_all, fields(addon, id), err)]
    pub async fn describe_update(&self, addon: &str, id: &str) -> Result<UpdateState, StepError> {
        let out = self
            .policy
            .retry("DescribeUpdate", || async {
                self.client
                    .describe_update()
                    .name(&self.cluster)
                    .update_id(id)
                    .addon_name(addon)
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("DescribeUpdate", addon, e))
            })
            .await
            .map_err(stop)?;
        Ok(out.update.as_ref().map(update_state).unwrap_or_default())
    }

    /// UpdateAddon to `version`. A 409 (an update already running) comes back as
    /// `Err(Ok(()))` so the caller can attach to it; other errors as `Err(Err(step error))`.
    #[tracing::instrument(skip_all, fields(addon, version))]
    pub async fn update_addon(
        &self,
        addon: &str,
        version: &str,
        p: &UpdateParams,
    ) -> Result<UpdateState, Result<ApiError, StepError>> {
        let mut pia = Vec::new();
        for (sa, arn) in &p.pod_identity {
            pia.push(
                AddonPodIdentityAssociations::builder()
                    .service_account(sa)
                    .role_arn(arn)
                    .build()
                    .map_err(|e| Err(StepError::bad_input("--pod-identity").with_source(e)))?,
            );
        }
        let r = self
            .policy
            .retry("UpdateAddon", || async {
                self.client
                    .update_addon()
                    .cluster_name(&self.cluster)
                    .addon_name(addon)
                    .addon_version(version)
                    .resolve_conflicts(ResolveConflicts::from(p.resolve_conflicts))
                    .set_configuration_values(p.configuration_values.clone())
                    .set_service_account_role_arn(p.role.clone())
                    .set_pod_identity_associations((!pia.is_empty()).then(|| pia.clone()))
                    .set_client_request_token(p.token.clone())
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("UpdateAddon", addon, e))
            })
            .await;
        match r {
            Ok(out) => Ok(out.update.as_ref().map(update_state).unwrap_or_default()),
            Err(RetryError::Permanent(e)) if e.is("ResourceInUseException") => Err(Ok(e)),
            Err(e) => Err(Err(stop(e))),
        }
    }
}

fn update_state(u: &aws_sdk_eks::types::Update) -> UpdateState {
    UpdateState {
        id: u.id().unwrap_or_default().to_owned(),
        status: u
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        version: u
            .params()
            .iter()
            .find(|p| p.r#type().is_some_and(|t| t.as_str() == "AddonVersion"))
            .and_then(|p| p.value().map(str::to_owned)),
        errors: u
            .errors()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.error_code().map_or("Unknown", |c| c.as_str()),
                    e.error_message().unwrap_or_default()
                )
            })
            .collect(),
    }
}

/// The retry policy of EKS calls: 100 ms doubling to 5 s, 10 attempts (about 20 s), enough to
/// ride out a throttling burst; the deadline and SIGTERM end it sooner.
#[must_use]
pub fn policy(shutdown: &opsteps::shutdown::Shutdown) -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
        max_attempts: 10,
        deadline: None,
        shutdown: None,
    }
    .with_shutdown(shutdown)
}
