//! API errors as the apiserver sends them: a `Status` body with code, reason, message, details.

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// An error response: HTTP status plus `Status` object (and an optional Retry-After header).
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `Status` body.
    pub body: Value,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.body["message"].as_str().unwrap_or("")
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A Status with `reason` (omitted when empty) and `details`.
    #[must_use]
    pub fn new(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "code": code,
        });
        if !reason.is_empty() {
            body["reason"] = json!(reason);
        }
        if let Some(d) = details {
            body["details"] = d;
        }
        Self {
            code,
            body,
            retry_after: None,
        }
    }

    fn details(resource: &ResourceInfo, name: &str) -> Value {
        let mut d = json!({ "name": name, "kind": resource.plural });
        if !resource.group.is_empty() {
            d["group"] = json!(resource.group);
        }
        d
    }

    fn qualified(resource: &ResourceInfo) -> String {
        if resource.group.is_empty() {
            resource.plural.to_owned()
        } else {
            format!("{}.{}", resource.plural, resource.group)
        }
    }

    /// 404 `<plural> "<name>" not found`.
    #[must_use]
    pub fn not_found(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", Self::qualified(resource)),
            Some(Self::details(resource, name)),
        )
    }

    /// 409 AlreadyExists.
    #[must_use]
    pub fn already_exists(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", Self::qualified(resource)),
            Some(Self::details(resource, name)),
        )
    }

    /// 409 Conflict on a stale resourceVersion.
    #[must_use]
    pub fn conflict(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                Self::qualified(resource)
            ),
            Some(Self::details(resource, name)),
        )
    }

    /// 409 Conflict with a custom message (failed UID/resourceVersion precondition).
    #[must_use]
    pub fn conflict_msg(resource: &ResourceInfo, name: &str, message: impl Into<String>) -> Self {
        Self::new(
            409,
            "Conflict",
            message,
            Some(Self::details(resource, name)),
        )
    }

    /// 422 Invalid.
    #[must_use]
    pub fn invalid(resource: &ResourceInfo, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", resource.kind),
            Some(Self::details(resource, name)),
        )
    }

    /// 400 BadRequest.
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 410 Gone for a watch or continue token older than the history.
    #[must_use]
    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
            None,
        )
    }

    /// 403 Forbidden.
    #[must_use]
    pub fn forbidden(message: impl Into<String>, details: Option<Value>) -> Self {
        Self::new(403, "Forbidden", message, details)
    }

    /// 429 TooManyRequests, optionally with Retry-After.
    #[must_use]
    pub fn too_many_requests(
        message: impl Into<String>,
        retry_after: Option<u64>,
        details: Option<Value>,
    ) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message, details);
        if let Some(s) = retry_after {
            if e.body.get("details").is_none() {
                e.body["details"] = json!({});
            }
            e.body["details"]["retryAfterSeconds"] = json!(s);
        }
        e.retry_after = retry_after;
        e
    }

    /// 500 InternalError (or a bare 500 when `reason` is empty).
    #[must_use]
    pub fn internal(reason: &str, message: impl Into<String>) -> Self {
        Self::new(500, reason, message, None)
    }

    /// 401 Unauthorized.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }
}
