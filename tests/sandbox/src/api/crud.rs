//! get, list, create, update, patch, delete and deletecollection, plus the `status`, `scale`
//! and `binding` subresources, with the apiserver's validation, defaulting and errors.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Ctx, Query, ResourcePath, managed};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::invariants;
use crate::patch::{self, PatchType};
use crate::podutil;
use crate::resources::{ResourceInfo, well_known};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::ObjectKey;

/// One page of a list.
pub struct Page {
    /// The objects, shared with the store (no deep copies).
    pub items: Vec<Arc<Value>>,
    /// resourceVersion of the list.
    pub rv: u64,
    /// Continue token when more objects follow.
    pub cont: Option<String>,
}

impl Page {
    /// The list's `metadata`.
    #[must_use]
    pub fn meta(&self) -> Value {
        let mut m = json!({"resourceVersion": self.rv.to_string()});
        if let Some(c) = &self.cont {
            m["continue"] = json!(c);
        }
        m
    }
}

fn encode_continue(rv: u64, key: &ObjectKey) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": key.namespace, "name": key.name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    Ok((
        rv,
        ObjectKey::new(
            v["ns"].as_str().unwrap_or(""),
            v["name"].as_str().ok_or_else(bad)?,
        ),
    ))
}

/// Parsed label and field selectors of a request.
pub struct Selectors {
    /// labelSelector.
    pub labels: LabelSelector,
    /// fieldSelector.
    pub fields: FieldSelector,
}

impl Selectors {
    /// From the query.
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
            fields: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))?,
        })
    }

    /// Whether the object matches both selectors.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// A page of a list (`limit`/`continue`; a continue token older than the event history → 410).
///
/// Pages after the first are served from the current state rather than a snapshot at the
/// token's resourceVersion; objects are never repeated or skipped because keys are ordered.
pub fn list(c: &Cluster, p: &ResourcePath, q: &Query) -> Result<Page, ApiError> {
    super::validate::list_options(q, false)?;
    let sel = Selectors::parse(q)?;
    crate::selectors::check_supported(p.res, &sel.fields)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let ns = p.namespace.as_deref();
    let store = &c.store;
    let (rv, after) = match q.get("continue").filter(|t| !t.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            if rv < store.oldest_resumable() {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    None,
                ));
            }
            (rv, Some(key))
        }
        None => (store.resource_version(), None),
    };
    let single: Vec<Arc<Value>>;
    let exact = exact_rv(c, p, q)?;
    let rv = exact.as_ref().map_or(rv, |(rv, _)| *rv);
    let iter: Box<dyn Iterator<Item = &Arc<Value>>> =
        match (&after, sel.fields.equals("metadata.name")) {
            // resourceVersionMatch=Exact: the state at that version.
            (None, _) if exact.is_some() => Box::new(
                exact
                    .as_ref()
                    .map(|(_, items)| items.iter())
                    .into_iter()
                    .flatten(),
            ),
            // One named object (kubectl wait, watches on one object): skip the table scan.
            (None, Some(name)) if ns.is_some() || !p.res.namespaced => {
                single = store
                    .get(p.res, ns.unwrap_or(""), name)
                    .into_iter()
                    .collect();
                Box::new(single.iter())
            }
            (Some(key), _) => Box::new(store.list_after(p.res, ns, key)),
            (None, _) => Box::new(store.list(p.res, ns)),
        };
    let mut items = Vec::new();
    let mut cont = None;
    for obj in iter.filter(|o| sel.matches(o)) {
        if limit.is_some_and(|l| items.len() >= l) {
            let last: &Arc<Value> = items.last().expect("limit > 0");
            cont = Some(encode_continue(rv, &ObjectKey::of(last)));
            break;
        }
        items.push(Arc::clone(obj));
    }
    Ok(Page { items, rv, cont })
}

/// A list at one resourceVersion.
type Snapshot = (u64, Vec<Arc<Value>>);

/// For `resourceVersionMatch=Exact`: the requested version and the objects as they were then.
/// An old version the history no longer holds is 410, a future one 504 (the apiserver's
/// "Too large resource version").
fn exact_rv(c: &Cluster, p: &ResourcePath, q: &Query) -> Result<Option<Snapshot>, ApiError> {
    if q.get("resourceVersionMatch").map(String::as_str) != Some("Exact")
        || q.get("continue").is_some_and(|t| !t.is_empty())
    {
        return Ok(None);
    }
    let raw = q.get("resourceVersion").map_or("", String::as_str);
    let rv: u64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {raw}")))?;
    let current = c.store.resource_version();
    if rv > current {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {rv}, current: {current}"),
            Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    let items = c
        .store
        .list_at(p.res, p.namespace.as_deref(), rv)
        .map_err(|_| {
            ApiError::new(
                410,
                "Expired",
                "The resourceVersion for the provided list is too old.",
                None,
            )
        })?;
    Ok(Some((rv, items)))
}

/// Serialises a list page straight from the shared objects.
#[must_use]
pub fn list_bytes(res: &ResourceInfo, page: &Page) -> Bytes {
    let mut buf = Vec::with_capacity(256 + page.items.len() * 2048);
    buf.extend_from_slice(br#"{"kind":""#);
    buf.extend_from_slice(res.list_kind().as_bytes());
    buf.extend_from_slice(br#"","apiVersion":""#);
    buf.extend_from_slice(res.api_version().as_bytes());
    buf.extend_from_slice(br#"","metadata":"#);
    serde_json::to_writer(&mut buf, &page.meta()).expect("writing to a Vec");
    buf.extend_from_slice(br#","items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut buf, &**item).expect("writing to a Vec");
    }
    buf.extend_from_slice(b"]}");
    Bytes::from(buf)
}

fn current(c: &Cluster, p: &ResourcePath) -> Result<Arc<Value>, ApiError> {
    let name = p.name.as_deref().unwrap_or("");
    c.store
        .get(p.res, p.namespace.as_deref().unwrap_or(""), name)
        .ok_or_else(|| ApiError::not_found(p.res, name))
}

/// GET of one object or of its `status`/`scale` subresource.
pub fn get(c: &Cluster, p: &ResourcePath, _ctx: &Ctx) -> Result<(u16, Arc<Value>), ApiError> {
    match p.sub.as_deref() {
        None | Some("status") => Ok((200, current(c, p)?)),
        Some("scale") => {
            let cur = current(c, p)?;
            Ok((200, Arc::new(scale_of(&cur))))
        }
        Some("log") => {
            current(c, p)?;
            Err(ApiError::new(
                404,
                "NotFound",
                "the sandbox does not serve container logs",
                None,
            ))
        }
        Some(_) => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )),
    }
}

/// The `autoscaling/v1` Scale of a workload.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let sel = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map_or_else(String::new, |ml| {
            ml.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        });
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": sel},
    })
}

/// 404 when a namespaced request's namespace does not exist, 403 when it is terminating.
pub fn check_namespace_for_create(
    c: &Cluster,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !res.namespaced {
        return Ok(());
    }
    let Some(nsobj) = c.store.get(well_known::namespaces(), "", ns) else {
        return Err(ApiError::not_found(well_known::namespaces(), ns));
    };
    if podutil::is_terminating(&nsobj)
        || nsobj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    {
        return Err(namespace_terminating(res, ns, name));
    }
    Ok(())
}

/// The NamespaceLifecycle admission error.
#[must_use]
pub fn namespace_terminating(res: &ResourceInfo, ns: &str, name: &str) -> ApiError {
    let mut details = json!({"name": name, "kind": res.plural, "causes": [{
        "reason": "NamespaceTerminating",
        "message": format!("namespace {ns} is being terminated"),
        "field": "metadata.namespace",
    }]});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    ApiError::forbidden(
        format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.plural
        ),
        Some(details),
    )
}

fn random_suffix() -> String {
    // The apiserver's alphabet: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_kind(res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != res.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            res.kind
        )));
    }
    Ok(())
}

/// Defaults the apiserver applies on create, and the status it resets.
fn defaults(res: &ResourceInfo, obj: &mut Value) {
    let o = obj.as_object_mut().expect("objects are JSON objects");
    let spec = o.entry("spec").or_insert_with(|| json!({}));
    let set = |v: &mut Value, k: &str, d: Value| {
        if let Some(m) = v.as_object_mut() {
            m.entry(k.to_owned()).or_insert(d);
        }
    };
    match res.key() {
        "pods" => {
            super::validate::pod_spec_defaults(spec);
            set(spec, "priority", json!(0));
            let has_requests = spec["containers"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.pointer("/resources/requests").is_some()
                        || c.pointer("/resources/limits").is_some()
                })
            });
            o.insert("status".into(), json!({"phase": "Pending", "qosClass": if has_requests { "Burstable" } else { "BestEffort" }}));
        }
        "deployments.apps" => {
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            set(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            o.insert("status".into(), json!({}));
        }
        "replicasets.apps" => {
            set(spec, "replicas", json!(1));
            o.insert("status".into(), json!({"replicas": 0}));
        }
        "statefulsets.apps" => {
            set(spec, "replicas", json!(1));
            set(spec, "podManagementPolicy", json!("OrderedReady"));
            set(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set(spec, "revisionHistoryLimit", json!(10));
            o.insert(
                "status".into(),
                json!({"replicas": 0, "availableReplicas": 0}),
            );
        }
        "daemonsets.apps" => {
            set(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            set(spec, "revisionHistoryLimit", json!(10));
            o.insert("status".into(), json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}));
        }
        "horizontalpodautoscalers.autoscaling" => {
            // autoscaling/v2's defaults (not `behavior`): one replica, 80% CPU without metrics.
            set(spec, "minReplicas", json!(1));
            if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        "poddisruptionbudgets.policy" => {
            o.insert("status".into(), json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}));
        }
        "namespaces" => {
            set(spec, "finalizers", json!(["kubernetes"]));
            o.insert("status".into(), json!({"phase": "Active"}));
            let name = o["metadata"]["name"].clone();
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.entry("labels")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|l| l.insert("kubernetes.io/metadata.name".into(), name));
            }
        }
        _ => {
            if o.get("spec")
                .is_some_and(|s| s.as_object().is_some_and(Map::is_empty))
                && !matches!(res.key(), "nodes")
            {
                o.remove("spec");
            }
        }
    }
}

/// The managedFields entry a write by `ctx` to `p` records.
fn field_write<'a>(c: &Cluster, p: &'a ResourcePath, ctx: &Ctx, apply: bool) -> managed::Write<'a> {
    managed::Write {
        manager: managed::manager(&ctx.query, &ctx.user_agent),
        apply,
        api_version: p.res.api_version(),
        subresource: p.sub.as_deref(),
        has_status: p.res.subresources.iter().any(|(s, _)| *s == "status"),
        time: c.now(),
    }
}

fn create(
    c: &mut Cluster,
    p: &ResourcePath,
    ctx: &Ctx,
    apply: bool,
) -> Result<(u16, Value), ApiError> {
    let mut obj = ctx.json_body()?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    }
    check_kind(p.res, &obj)?;
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let path_ns = p.namespace.clone().unwrap_or_default();
    if p.res.namespaced {
        match obj["metadata"].get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => obj["metadata"]["namespace"] = json!(path_ns),
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if name.is_empty() {
        if let Some(g) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| !g.is_empty())
        {
            name = format!("{g}{}", random_suffix());
            obj["metadata"]["name"] = json!(name);
        } else {
            return Err(ApiError::invalid(
                p.res,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    }
    check_namespace_for_create(c, p.res, &path_ns, &name)?;
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
    }
    let applied = apply.then(|| obj.clone());
    defaults(p.res, &mut obj);
    super::validate::object(p.res, &obj, None)?;
    managed::record(
        None,
        &mut obj,
        &field_write(c, p, ctx, apply),
        applied.as_ref(),
    );
    super::validate::object_size(&obj)?;
    let now = c.now();
    if ctx.dry_run {
        if c.store.get(p.res, &path_ns, &name).is_some() {
            return Err(ApiError::already_exists(p.res, &name));
        }
        obj["apiVersion"] = json!(p.res.api_version());
        obj["kind"] = json!(p.res.kind);
        obj["metadata"]["uid"] = json!(c.store.next_uid());
        obj["metadata"]["creationTimestamp"] = json!(now);
        obj["metadata"]["generation"] = json!(1);
        return Ok((201, obj));
    }
    let stored = c.store.create(p.res, obj, &now)?;
    Ok((201, (*stored).clone()))
}

/// Builds the object a PUT or PATCH would store (not yet written).
fn prepare_write(cur: &Value, p: &ResourcePath, mut new: Value) -> Result<Value, ApiError> {
    if !new.is_object() {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    }
    let has_status_sub = p.res.subresources.iter().any(|(s, _)| *s == "status");
    match p.sub.as_deref() {
        Some("status") => {
            // Only status changes through /status; the rest comes from the stored object.
            let mut out = cur.clone();
            out["status"] = new.get("status").cloned().unwrap_or(json!({}));
            if let Some(rv) = new.pointer("/metadata/resourceVersion") {
                out["metadata"]["resourceVersion"] = rv.clone();
            }
            return Ok(out);
        }
        None if has_status_sub => match cur.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        },
        _ => {}
    }
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    new["metadata"]["name"] = cur["metadata"]["name"].clone();
    if p.res.namespaced {
        new["metadata"]["namespace"] = cur["metadata"]["namespace"].clone();
    }
    Ok(new)
}

/// The request behind a PUT or PATCH: who writes, and a server-side apply's configuration.
struct Writer<'a> {
    ctx: &'a Ctx,
    applied: Option<&'a Value>,
}

fn write(
    c: &mut Cluster,
    p: &ResourcePath,
    cur: &Value,
    mut new: Value,
    by: &Writer<'_>,
) -> Result<(u16, Value), ApiError> {
    let dry_run = by.ctx.dry_run;
    if p.res.key() == "pods" && p.sub.is_none() {
        super::validate::pod_spec_defaults(&mut new["spec"]);
    }
    super::validate::object(p.res, &new, Some(cur))?;
    let fw = field_write(c, p, by.ctx, by.applied.is_some());
    managed::record(Some(cur), &mut new, &fw, by.applied);
    super::validate::object_size(&new)?;
    if dry_run {
        let want = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !want.is_empty()
            && Some(want)
                != cur
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(p.res, p.name.as_deref().unwrap_or("")));
        }
        let mut out = new;
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "resourceVersion",
            "generation",
        ] {
            if let Some(v) = cur["metadata"].get(f) {
                out["metadata"][f] = v.clone();
            }
        }
        return Ok((200, out));
    }
    let stored = c.store.update(p.res, new)?;
    Ok((200, (*stored).clone()))
}

fn update(c: &mut Cluster, p: &ResourcePath, ctx: &Ctx) -> Result<(u16, Value), ApiError> {
    let body = ctx.json_body()?;
    let plain = Writer { ctx, applied: None };
    let name = p.name.as_deref().unwrap_or("");
    if p.sub.as_deref() == Some("scale") {
        let cur = current(c, p)?;
        let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
        let mut new = (*cur).clone();
        new["spec"]["replicas"] = replicas;
        if let Some(rv) = body.pointer("/metadata/resourceVersion") {
            new["metadata"]["resourceVersion"] = rv.clone();
        }
        let (code, v) = write(c, p, &cur, new, &plain)?;
        return Ok((code, scale_of(&v)));
    }
    check_kind(p.res, &body)?;
    if let Some(bn) = body.pointer("/metadata/name").and_then(Value::as_str)
        && bn != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({bn}) does not match the name on the URL ({name})"
        )));
    }
    let cur = current(c, p)?;
    let new = if p.sub.as_deref() == Some("finalize") {
        let mut n = (*cur).clone();
        n["spec"]["finalizers"] = body
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        n
    } else {
        prepare_write(&cur, p, body)?
    };
    write(c, p, &cur, new, &plain)
}

fn patch(c: &mut Cluster, p: &ResourcePath, ctx: &Ctx) -> Result<(u16, Value), ApiError> {
    let kind = PatchType::from_content_type(&ctx.content_type)?;
    let body = super::ssa::with_last_applied(kind, &ctx.query, patch::parse_body(kind, &ctx.body)?);
    let name = p.name.as_deref().unwrap_or("");
    let cur = match current(c, p) {
        Ok(cur) => cur,
        Err(e) if kind == PatchType::Apply && p.sub.is_none() => {
            // Server-side apply creates missing objects.
            let _ = e;
            let mut obj = body;
            obj["metadata"]["name"] = json!(name);
            let ctx2 = Ctx {
                identity: ctx.identity.clone(),
                query: ctx.query.clone(),
                accept: ctx.accept.clone(),
                content_type: "application/json".into(),
                dry_run: ctx.dry_run,
                body: Bytes::from(serde_json::to_vec(&obj).unwrap_or_default()),
                user_agent: ctx.user_agent.clone(),
            };
            return create(c, p, &ctx2, true);
        }
        Err(e) => return Err(e),
    };
    let plain = Writer {
        ctx,
        applied: (kind == PatchType::Apply).then_some(&body),
    };
    if p.sub.as_deref() == Some("scale") {
        let patched = patch::apply(kind, &scale_of(&cur), &body)?;
        let mut new = (*cur).clone();
        new["spec"]["replicas"] = patched
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(json!(0));
        new["metadata"]["resourceVersion"] = patched["metadata"]["resourceVersion"].clone();
        let (code, v) = write(c, p, &cur, new, &plain)?;
        return Ok((code, scale_of(&v)));
    }
    let patched = patch::apply(kind, &cur, &body)?;
    let new = prepare_write(&cur, p, patched)?;
    write(c, p, &cur, new, &plain)
}

/// DeleteOptions from the body and query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// gracePeriodSeconds.
    pub grace: Option<i64>,
    /// preconditions.uid.
    pub uid: Option<String>,
    /// preconditions.resourceVersion.
    pub resource_version: Option<String>,
    /// propagationPolicy (or the deprecated orphanDependents): Orphan, Background, Foreground.
    pub propagation: Option<String>,
}

impl DeleteOptions {
    /// Reads a DeleteOptions JSON object (body, or an Eviction's `deleteOptions`) and the query.
    #[must_use]
    pub fn from(body: &Value, q: Option<&Query>) -> Self {
        let grace = body
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| {
                q.and_then(|q| q.get("gracePeriodSeconds"))
                    .and_then(|g| g.parse().ok())
            });
        let propagation = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| q.and_then(|q| q.get("propagationPolicy")).cloned())
            .or_else(|| {
                let orphan = body
                    .get("orphanDependents")
                    .and_then(Value::as_bool)
                    .or_else(|| {
                        q.and_then(|q| q.get("orphanDependents"))
                            .map(|v| v == "true")
                    });
                orphan.map(|o| if o { "Orphan" } else { "Background" }.to_owned())
            });
        Self {
            grace,
            propagation,
            uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            resource_version: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// 409 when a precondition does not hold for `obj`.
    pub fn check(&self, res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        let name = podutil::ns_name(obj).1;
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = self.uid.as_deref().filter(|w| *w != uid) {
            return Err(ApiError::conflict_msg(
                res,
                name,
                format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = self.resource_version.as_deref().filter(|w| *w != rv) {
            return Err(ApiError::conflict_msg(
                res,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        Ok(())
    }
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Graceful pod deletion (drain.md §4): the grace period comes from the options, else the pod's
/// terminationGracePeriodSeconds (default 30); unscheduled or finished pods get 0; negative
/// becomes 1. Grace > 0 sets deletionTimestamp and leaves removal to the kubelet; a second
/// delete can only shorten it. Finalizers keep the object until they are removed.
pub fn delete_pod(
    c: &mut Cluster,
    pod: &Arc<Value>,
    opts: &DeleteOptions,
    dry_run: bool,
    user: &str,
    via: &str,
) -> Result<Value, ApiError> {
    let res = well_known::pods();
    opts.check(res, pod)?;
    let mut grace = opts
        .grace
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    let phase = podutil::phase(pod);
    if podutil::node_name(pod).is_none() || phase == "Succeeded" || phase == "Failed" {
        grace = 0;
    }
    if grace < 0 {
        grace = 1;
    }
    let now_ts = c.clock.now();
    let now = crate::clock::rfc3339(now_ts);
    if !dry_run && !podutil::is_terminating(pod) {
        let found = invariants::check_pod_removal(&c.store, pod, user, via, &now);
        for v in &found {
            tracing::warn!(kind = ?v.kind, user, target = %v.target, "invariant violated");
        }
        c.api.violations.extend(found);
    }
    let mut new = (**pod).clone();
    let existing = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(crate::clock::parse);
    let existing_grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (existing, existing_grace) {
        // Already terminating: only a shorter grace period changes anything, and it moves the
        // deadline by the difference (the apiserver's BeforeDelete).
        (Some(ts), Some(old)) => {
            if grace >= old {
                return Ok(new);
            }
            let deadline =
                ts - jiff::SignedDuration::from_secs(old) + jiff::SignedDuration::from_secs(grace);
            new["metadata"]["deletionTimestamp"] = json!(crate::clock::rfc3339(deadline));
        }
        // Terminating without a grace period recorded: delete now.
        (Some(_), None) => grace = 0,
        _ => {
            let deadline = now_ts + jiff::SignedDuration::from_secs(grace);
            new["metadata"]["deletionTimestamp"] = json!(crate::clock::rfc3339(deadline));
        }
    }
    new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    let (ns, name) = podutil::ns_name(pod);
    if dry_run {
        return Ok(new);
    }
    if grace == 0 && !has_finalizers(pod) {
        let removed = c
            .store
            .remove(res, ns, name)
            .ok_or_else(|| ApiError::not_found(res, name))?;
        return Ok((*removed).clone());
    }
    Ok((*c.store.put(res, new)).clone())
}

fn status_success(res: &ResourceInfo, obj: &Value) -> Value {
    let mut details =
        json!({"name": obj["metadata"]["name"], "kind": res.plural, "uid": obj["metadata"]["uid"]});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// DELETE of one object (pods graceful, namespaces to Terminating, finalizers honoured).
pub fn delete_one(
    c: &mut Cluster,
    res: &'static ResourceInfo,
    obj: &Arc<Value>,
    opts: &DeleteOptions,
    ctx: &Ctx,
    via: &str,
) -> Result<Value, ApiError> {
    if res.key() == "pods" {
        return delete_pod(c, obj, opts, ctx.dry_run, &ctx.identity.user, via);
    }
    opts.check(res, obj)?;
    let (ns, name) = podutil::ns_name(obj);
    let now = c.now();
    if res.key() == "namespaces" {
        let mut new = (**obj).clone();
        if !podutil::is_terminating(obj) {
            new["metadata"]["deletionTimestamp"] = json!(now);
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        new["status"]["phase"] = json!("Terminating");
        if ctx.dry_run {
            return Ok(new);
        }
        return Ok((*c.store.put(res, new)).clone());
    }
    // Orphan and Foreground deletion of an owner: the apiserver adds the finalizer the garbage
    // collector acts on, and the owner stays until the collector removes it.
    let gc_finalizer = match opts.propagation.as_deref() {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    }
    .filter(|_| crate::controllers::gc::is_owner_kind(res));
    if has_finalizers(obj) || gc_finalizer.is_some() {
        let mut new = (**obj).clone();
        if let Some(f) = gc_finalizer {
            let list = new["metadata"]
                .as_object_mut()
                .expect("objects are JSON objects")
                .entry("finalizers")
                .or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut()
                && !a.iter().any(|x| x == f)
            {
                a.push(json!(f));
            }
        }
        if !podutil::is_terminating(obj) {
            new["metadata"]["deletionTimestamp"] = json!(now);
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if ctx.dry_run {
            return Ok(new);
        }
        return Ok((*c.store.put(res, new)).clone());
    }
    if ctx.dry_run {
        return Ok(status_success(res, obj));
    }
    let removed = c
        .store
        .remove(res, ns, name)
        .ok_or_else(|| ApiError::not_found(res, name))?;
    Ok(status_success(res, &removed))
}

fn delete(c: &mut Cluster, p: &ResourcePath, ctx: &Ctx) -> Result<(u16, Value), ApiError> {
    let opts = DeleteOptions::from(&ctx.json_body()?, Some(&ctx.query));
    let obj = current(c, p)?;
    Ok((200, delete_one(c, p.res, &obj, &opts, ctx, "delete")?))
}

fn delete_collection(
    c: &mut Cluster,
    p: &ResourcePath,
    ctx: &Ctx,
) -> Result<(u16, Value), ApiError> {
    let opts = DeleteOptions::from(&ctx.json_body()?, Some(&ctx.query));
    let mut q = ctx.query.clone();
    q.remove("limit");
    q.remove("continue");
    let page = list(c, p, &q)?;
    let mut items = Vec::new();
    for obj in &page.items {
        let v = delete_one(c, p.res, obj, &opts, ctx, "deletecollection")?;
        items.push(if v["kind"] == "Status" {
            (**obj).clone()
        } else {
            v
        });
    }
    Ok((
        200,
        json!({"kind": p.res.list_kind(), "apiVersion": p.res.api_version(), "metadata": {"resourceVersion": c.store.resource_version().to_string()}, "items": items}),
    ))
}

fn binding(c: &mut Cluster, p: &ResourcePath, ctx: &Ctx) -> Result<(u16, Value), ApiError> {
    let body = ctx.json_body()?;
    let node = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let cur = current(c, p)?;
    if podutil::node_name(&cur).is_some() {
        return Err(ApiError::conflict_msg(
            p.res,
            p.name.as_deref().unwrap_or(""),
            format!(
                "Operation cannot be fulfilled on pods/binding \"{}\": pod {} is already assigned to node \"{}\"",
                p.name.as_deref().unwrap_or(""),
                p.name.as_deref().unwrap_or(""),
                podutil::node_name(&cur).unwrap_or("")
            ),
        ));
    }
    let mut new = (*cur).clone();
    new["spec"]["nodeName"] = json!(node);
    if !ctx.dry_run {
        c.store.update(p.res, new)?;
    }
    Ok((
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Dispatches a mutating verb (not eviction).
pub fn mutate(
    c: &mut Cluster,
    p: &ResourcePath,
    verb: &str,
    ctx: &Ctx,
) -> Result<(u16, Value), ApiError> {
    let method_not_allowed = || {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    };
    let delete_body = verb
        .starts_with("delete")
        .then(|| ctx.json_body().ok())
        .flatten();
    super::validate::dry_run(verb, &ctx.query, delete_body.as_ref())?;
    match (verb, p.sub.as_deref()) {
        ("create", None) => create(c, p, ctx, false),
        ("create", Some("binding")) => binding(c, p, ctx),
        ("update", None | Some("status" | "scale" | "finalize")) => update(c, p, ctx),
        ("patch", None | Some("status" | "scale")) => patch(c, p, ctx),
        ("delete", None) => delete(c, p, ctx),
        ("deletecollection", None) => delete_collection(c, p, ctx),
        _ => Err(method_not_allowed()),
    }
}
