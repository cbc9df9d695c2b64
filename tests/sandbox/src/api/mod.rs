//! The HTTP API: routing of Kubernetes paths to verbs, authentication, faults, the dry-run
//! guard, the request log, and JSON/Table/watch responses.
//!
//! Every handler runs its state change under the cluster lock in one synchronous section and
//! serialises responses after releasing it, so a large list never blocks the controllers.

pub mod authz;
pub mod body;
pub mod crud;
pub mod discovery;
pub mod eviction;
pub mod fields;
pub mod managed;
pub mod metrics;
pub mod openapi;
pub mod protobuf;
pub mod ssa;
pub mod table;
pub mod validate;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::api_state::Identity;
use crate::cluster::Shared;
use crate::error::ApiError;
use crate::faults::{FaultAction, FaultRequest};
use crate::requestlog::RequestRecord;
use crate::resources::{self, ResourceInfo};

/// Returned instead of a response when a fault drops the connection; hyper then closes it.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub struct DropConnection;

/// Parsed query parameters (last value wins, as in the apiserver).
pub type Query = HashMap<String, String>;

/// Where a request path points.
#[derive(Debug)]
pub enum Route {
    /// `/version`, `/healthz`, `/api`, ... (path as given).
    NonResource(String),
    /// A resource path.
    Resource(ResourcePath),
    /// Anything else: 404.
    NotFound,
}

/// A parsed resource path.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    /// The resource table.
    pub res: &'static ResourceInfo,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
    /// The deprecated `/watch/` path prefix was used.
    pub watch_path: bool,
}

/// Parses a request path.
#[must_use]
pub fn route(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        [] | ["api" | "apis"] | ["apis", _] | ["api", "v1"] => {
            return Route::NonResource(path.to_owned());
        }
        ["apis", g, v] if resources::in_group_version(g, v).next().is_some() => {
            return Route::NonResource(path.to_owned());
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        [_, ..] => return Route::NonResource(path.to_owned()),
    };
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let find = |plural: &str| resources::find_version(group, plural, version);
    let parsed = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !matches!(*plural, "status" | "finalize")
                && find(plural).is_some_and(|r| r.namespaced) =>
        {
            (find(plural), Some((*ns).to_owned()), tail)
        }
        [plural, tail @ ..] => (
            find(plural).filter(|r| !r.namespaced || tail.is_empty()),
            None,
            tail,
        ),
        [] => return Route::NotFound,
    };
    let (Some(res), namespace, tail) = parsed else {
        return Route::NotFound;
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub, ..] => (Some((*name).to_owned()), Some((*sub).to_owned())),
    };
    if let Some(s) = &sub
        && !res.subresources.iter().any(|(n, _)| n == s)
    {
        return Route::NotFound;
    }
    Route::Resource(ResourcePath {
        res,
        namespace,
        name,
        sub,
        watch_path,
    })
}

/// The Kubernetes verb of a resource request.
#[must_use]
pub fn verb(method: &Method, p: &ResourcePath, query: &Query) -> &'static str {
    let watch = p.watch_path || query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if p.name.is_none() => "list",
        Method::POST if p.sub.as_deref() == Some("eviction") => "evict",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if p.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "get",
    }
}

fn is_mutating(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection" | "evict"
    )
}

/// A JSON response.
#[must_use]
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    bytes_response(
        code,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

fn bytes_response(code: u16, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A `Status` error response (with Retry-After when set).
#[must_use]
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.body);
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Everything a verb handler needs to know about the request besides the path.
pub struct Ctx {
    /// The caller.
    pub identity: Identity,
    /// Query parameters.
    pub query: Query,
    /// Accept header.
    pub accept: String,
    /// Content-Type header.
    pub content_type: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Request body.
    pub body: Bytes,
    /// User-Agent header (the field manager when no `fieldManager` is given).
    pub user_agent: String,
}

impl Ctx {
    /// Whether the client asked for a server-side Table.
    #[must_use]
    pub fn wants_table(&self) -> bool {
        self.accept
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    /// The body as a JSON object, decoded by Content-Type (JSON, YAML or protobuf; `{}` when
    /// empty).
    pub fn json_body(&self) -> Result<Value, ApiError> {
        body::decode(&self.content_type, &self.body)
    }
}

fn bearer(req: &Request<hyper::body::Incoming>) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

fn header_str(req: &Request<hyper::body::Incoming>, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Serves one request.
// The request pipeline reads top to bottom (auth, faults, dry-run guard, dispatch, log).
#[allow(clippy::too_many_lines)]
pub async fn handle(
    shared: Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let query: Query = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let token = bearer(&req);
    let accept = header_str(&req, header::ACCEPT);
    let content_type = header_str(&req, header::CONTENT_TYPE);
    let user_agent = header_str(&req, header::USER_AGENT);
    let host = header_str(&req, header::HOST);
    let route = route(&path);
    let (verb_name, res_name, sub, ns, name) = match &route {
        Route::Resource(p) => (
            verb(&method, p, &query),
            p.res.key().to_owned(),
            p.sub.clone().unwrap_or_default(),
            p.namespace.clone().unwrap_or_default(),
            p.name.clone().unwrap_or_default(),
        ),
        _ => (
            "",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    // Reviews (`auth can-i`) are creates that change nothing: dry-run clients may send them.
    let mutating = is_mutating(verb_name)
        && !matches!(&route, Route::Resource(p) if resources::create_only(p.res));

    let (identity, mut record) = {
        let mut c = shared.lock();
        let identity = match token.as_deref() {
            // Sandbox tokens first, then EKS (`k8s-aws-v1.`) tokens mapped by access entries.
            Some(t) => match c.api.tokens.get(t).cloned() {
                Some(i) => Some(i),
                None => crate::eks::authenticate(&mut c, t),
            },
            None => c.api.anonymous.clone(),
        };
        let record = RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            verb: verb_name.to_owned(),
            resource: res_name.clone(),
            subresource: sub,
            namespace: ns.clone(),
            name: name.clone(),
            status: 0,
            user: identity
                .as_ref()
                .map(|i| i.user.clone())
                .unwrap_or_default(),
            user_agent: user_agent.clone(),
            mutating,
            dry_run,
            virtual_time: c.now(),
            real_time: jiff::Timestamp::now().to_string(),
        };
        (identity, record)
    };

    let public = matches!(
        path.as_str(),
        "/healthz" | "/readyz" | "/livez" | "/version"
    );
    let identity = match identity {
        Some(i) => i,
        None if public => Identity {
            user: "system:anonymous".into(),
            groups: vec![],
            dry_run: false,
        },
        None => {
            return Ok(finish(
                &shared,
                &mut record,
                error_response(&ApiError::unauthorized()),
            ));
        }
    };

    let body =
        match axum::body::to_bytes(Body::new(req.into_body()), validate::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                let e = if format!("{e:?}").contains("LengthLimit") {
                    validate::body_too_large()
                } else {
                    ApiError::bad_request(format!("reading request body: {e}"))
                };
                return Ok(finish(&shared, &mut record, error_response(&e)));
            }
        };
    // DeleteOptions may carry dryRun in the body (DELETE, and an Eviction's deleteOptions, which
    // is how `kubectl drain --dry-run=server` and kube-rs send it).
    let dry_run = dry_run || body_dry_run(verb_name, &content_type, &body);
    record.dry_run = dry_run;

    if identity.dry_run && mutating && !dry_run {
        let mut c = shared.lock();
        let now = c.now();
        let v = crate::invariants::dry_run_mutation(&identity.user, method.as_str(), &path, &now);
        tracing::warn!(user = %identity.user, %path, "dry-run client sent a mutating request");
        c.api.violations.push(v);
        drop(c);
        let e = ApiError::bad_request(format!(
            "refused: user {:?} runs in dry-run mode and sent a mutating request ({verb_name}) without dryRun=All",
            identity.user
        ));
        return Ok(finish(&shared, &mut record, error_response(&e)));
    }

    // RBAC, when enabled: the verb of an eviction is `create` on `pods/eviction`.
    if let Route::Resource(p) = &route {
        let c = shared.lock();
        if c.api.rbac {
            let request = crate::rbac::Request {
                verb: if verb_name == "evict" {
                    "create"
                } else {
                    verb_name
                },
                group: p.res.group,
                resource: p.res.plural,
                subresource: p.sub.as_deref().unwrap_or(""),
                namespace: &ns,
                name: &name,
            };
            let subject = crate::rbac::Subject {
                user: &identity.user,
                groups: &identity.groups,
            };
            if let Err(e) = crate::rbac::authorize(&c.store, &subject, &request) {
                drop(c);
                return Ok(finish(&shared, &mut record, error_response(&e)));
            }
        }
    }

    // Faults apply to authenticated resource requests that passed the dry-run guard.
    let faults = match &route {
        Route::Resource(_) => shared.lock().api.faults.check(&FaultRequest {
            verb: verb_name,
            resource: &res_name,
            namespace: &ns,
            name: &name,
            user: &identity.user,
        }),
        _ => Vec::new(),
    };
    let mut watch_close = None;
    for f in &faults {
        match f {
            FaultAction::Latency { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            FaultAction::Drop => {
                tracing::debug!(%path, "fault: dropping connection");
                shared.lock().api.log.push(record);
                return Err(DropConnection);
            }
            FaultAction::Status {
                code,
                retry_after,
                message,
            } => {
                let msg = message
                    .clone()
                    .unwrap_or_else(|| format!("injected fault: HTTP {code}"));
                let e = if *code == 429 {
                    ApiError::too_many_requests(msg, *retry_after, None)
                } else {
                    let reason = match code {
                        500 => "InternalError",
                        503 => "ServiceUnavailable",
                        504 => "Timeout",
                        _ => "",
                    };
                    let mut e = ApiError::new(*code, reason, msg, None);
                    if let Some(s) = retry_after {
                        e.body["details"] = json!({"retryAfterSeconds": s});
                        e.retry_after = Some(*s);
                    }
                    e
                };
                return Ok(finish(&shared, &mut record, error_response(&e)));
            }
            FaultAction::WatchClose {
                after_events,
                after_seconds,
            } => {
                watch_close = Some((*after_events, after_seconds.map(Duration::from_secs_f64)));
            }
        }
    }

    let ctx = Ctx {
        identity,
        query,
        accept,
        content_type,
        dry_run,
        body,
        user_agent,
    };

    metrics::observe(&shared, &route);
    if let Some(resp) = metrics::serve(&shared, &path, &ctx.identity) {
        return Ok(finish(&shared, &mut record, resp));
    }
    let resp = match route {
        Route::NonResource(p) => non_resource(&shared, &p, &host, &ctx.accept),
        Route::NotFound => error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )),
        Route::Resource(p) => {
            if p.res.key() == "pods" && p.sub.as_deref() == Some("proxy") {
                // `pods/{name[:port]}/proxy/{path}`: forwarded to the pod (dcgm-exporter's
                // endpoints are the pods that answer).
                let name_port = p.name.clone().unwrap_or_default();
                let tail = path
                    .split_once(&format!("/pods/{name_port}/proxy"))
                    .map_or("", |(_, r)| r);
                let target = if raw_query.is_empty() {
                    tail.to_owned()
                } else {
                    format!("{tail}?{raw_query}")
                };
                let ns = p.namespace.clone().unwrap_or_default();
                let proxied = crate::dcgm::pod_proxy(&shared, &ns, &name_port, &target).await;
                return Ok(finish(&shared, &mut record, proxied));
            }
            if !crate::crds::served(&shared.lock(), p.res) {
                let e = ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                );
                return Ok(finish(&shared, &mut record, error_response(&e)));
            }
            if let Some(r) = authz::handle(&shared, &p, verb_name, &ctx) {
                return Ok(finish(&shared, &mut record, r));
            }
            if verb_name == "watch" {
                match watch::start(&shared, &p, &ctx, watch_close) {
                    Ok(body) => {
                        let mut r = Response::new(body);
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        r
                    }
                    Err(e) => error_response(&e),
                }
            } else {
                resource(&shared, &p, verb_name, &ctx)
            }
        }
    };
    Ok(finish(&shared, &mut record, resp))
}

/// Whether a DELETE's DeleteOptions or an Eviction's `deleteOptions` asks for `dryRun: [All]`.
fn body_dry_run(verb: &str, content_type: &str, body: &[u8]) -> bool {
    if !matches!(verb, "delete" | "deletecollection" | "evict") || body.is_empty() {
        return false;
    }
    let Ok(v) = body::decode(content_type, body) else {
        return false;
    };
    let opts = if verb == "evict" {
        &v["deleteOptions"]
    } else {
        &v
    };
    opts["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d == "All"))
}

fn finish(shared: &Shared, record: &mut RequestRecord, resp: Response<Body>) -> Response<Body> {
    record.status = resp.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, status = record.status, user = %record.user, "request");
    shared.lock().api.log.push(record.clone());
    resp
}

fn non_resource(shared: &Shared, path: &str, host: &str, accept: &str) -> Response<Body> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        ["version"] => json_response(200, &shared.lock().api.version_json()),
        ["sandbox", "invariants"] => json_response(200, &crate::invariants::report(&shared.lock())),
        ["api"] => json_response(200, &discovery::api_versions(host)),
        ["apis"] => json_response(200, &discovery::group_list()),
        ["apis", g] => discovery::group(g).map_or_else(
            || {
                error_response(&ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ))
            },
            |v| json_response(200, &v),
        ),
        ["openapi", "v2"] => {
            let (content_type, body) = openapi::v2(accept);
            let mut r = bytes_response(200, body);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        ["openapi", "v3"] => json_response(200, &openapi::v3_index()),
        ["openapi", "v3", rest @ ..] => openapi::v3_document(&rest.join("/")).map_or_else(
            || {
                error_response(&ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ))
            },
            |b| bytes_response(200, b),
        ),
        ["api", "v1"] => json_response(200, &discovery::resource_list("", "v1")),
        ["apis", g, v] => json_response(200, &discovery::resource_list(g, v)),
        _ => error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )),
    }
}

/// A resource request, with `fieldValidation` (400 under Strict, else `Warning` headers).
fn resource(shared: &Shared, p: &ResourcePath, verb: &str, ctx: &Ctx) -> Response<Body> {
    let warnings = match fields::check(p, verb, ctx) {
        Ok(w) => w,
        Err(e) => return error_response(&e),
    };
    let mut resp = resource_verb(shared, p, verb, ctx);
    if resp.status().is_success() {
        for w in warnings {
            if let Ok(v) = HeaderValue::from_str(&w) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
    }
    resp
}

fn resource_verb(shared: &Shared, p: &ResourcePath, verb: &str, ctx: &Ctx) -> Response<Body> {
    let result = match verb {
        "list" => {
            let page = {
                let c = shared.lock();
                crud::list(&c, p, &ctx.query)
            };
            return match page {
                Ok(page) => {
                    if ctx.wants_table() {
                        let now = shared.lock().clock.now();
                        json_response(
                            200,
                            &table::table(
                                p.res,
                                &page.items,
                                &page.meta(),
                                now,
                                &ctx.query,
                                &ctx.accept,
                            ),
                        )
                    } else {
                        bytes_response(200, crud::list_bytes(p.res, &page))
                    }
                }
                Err(e) => error_response(&e),
            };
        }
        "get" => {
            let c = shared.lock();
            crud::get(&c, p, ctx).map(|(code, v)| (code, ValueOrArc::Arc(v)))
        }
        "evict" => {
            let mut c = shared.lock();
            validate::dry_run("create", &ctx.query, None)
                .and_then(|()| eviction::evict(&mut c, p, ctx))
                .map(|v| (201, ValueOrArc::Value(v)))
        }
        _ => {
            let mut c = shared.lock();
            let r = crud::mutate(&mut c, p, verb, ctx);
            if let Ok((_, v)) = &r
                && !ctx.dry_run
                && p.res.key() == "customresourcedefinitions.apiextensions.k8s.io"
            {
                crate::crds::after_write(&mut c, verb, v);
            }
            r.map(|(code, v)| (code, ValueOrArc::Value(v)))
        }
    };
    match result {
        Ok((code, v)) => {
            let obj: &Value = match &v {
                ValueOrArc::Arc(a) => a,
                ValueOrArc::Value(v) => v,
            };
            if ctx.wants_table() && obj.get("metadata").is_some() && obj["kind"] != "Status" {
                let now = shared.lock().clock.now();
                let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
                json_response(
                    code,
                    &table::table(
                        p.res,
                        &[Arc::new(obj.clone())],
                        &meta,
                        now,
                        &ctx.query,
                        &ctx.accept,
                    ),
                )
            } else {
                json_response(code, obj)
            }
        }
        Err(e) => error_response(&e),
    }
}

enum ValueOrArc {
    Arc(Arc<Value>),
    Value(Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(p) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn routes() {
        let p = rp("/api/v1/namespaces/default/pods/web-0/eviction");
        assert_eq!(
            (
                p.res.plural,
                p.namespace.as_deref(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web-0"), Some("eviction"))
        );
        let p = rp("/api/v1/pods");
        assert_eq!((p.res.plural, p.namespace, p.name), ("pods", None, None));
        let p = rp("/api/v1/namespaces/kube-system");
        assert_eq!(
            (p.res.plural, p.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let p = rp("/api/v1/namespaces/x/status");
        assert_eq!(
            (p.res.plural, p.name.as_deref(), p.sub.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let p = rp("/apis/apps/v1/namespaces/d/deployments/web/scale");
        assert_eq!(
            (p.res.plural, p.sub.as_deref()),
            ("deployments", Some("scale"))
        );
        let p = rp("/api/v1/watch/namespaces/d/pods");
        assert!(p.watch_path);
        let p = rp("/api/v1/nodes/n1");
        assert_eq!((p.res.plural, p.name.as_deref()), ("nodes", Some("n1")));
        assert!(matches!(
            route("/api/v1/namespaces/d/nodes"),
            Route::NotFound
        ));
        assert!(matches!(
            route("/api/v1/namespaces/d/pods/a/bogus"),
            Route::NotFound
        ));
        assert!(matches!(
            route("/apis/apps/v2/deployments"),
            Route::NotFound
        ));
        assert!(matches!(route("/apis/apps/v1"), Route::NonResource(_)));
    }
}
