//! Shared AWS SDK setup: the default credential chain, the region from the flags, endpoints from
//! the standard `AWS_ENDPOINT_URL_*` variables (so tests and the demo point at the sandbox), the
//! bundled TLS roots, and one classification of SDK errors into exit statuses.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};

use crate::exit::StepError;

/// The SDK configuration for `region` (or the chain's region when `None`). Its HTTPS client,
/// used by the services and the credential providers (STS web identity, Pod Identity, IMDS)
/// alike, trusts [`crate::tls::roots`].
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::tls::roots().aws_http_client());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    loader.load().await
}

/// Error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServerException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
];

/// Maps an SDK error to a step error: not-found → bad input (the name is wrong, nothing was
/// changed), throttling/5xx/transport → transient, the rest → failed. `context` says what was
/// attempted.
pub fn classify<E, R>(context: String, err: SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    let detail = match (&code, &message) {
        (Some(c), Some(m)) => format!("{context}: {c}: {m}"),
        (Some(c), None) => format!("{context}: {c}"),
        _ => context,
    };
    let status = match (&err, code.as_deref()) {
        (
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_),
            _,
        ) => crate::exit::ExitStatus::Transient,
        (_, Some(c)) if TRANSIENT_CODES.contains(&c) => crate::exit::ExitStatus::Transient,
        (_, Some("ResourceNotFoundException" | "NoSuchBucket" | "InvalidParameterException")) => {
            crate::exit::ExitStatus::BadInput
        }
        _ => crate::exit::ExitStatus::Failed,
    };
    StepError::new(status, detail).with_source(err)
}
