//! Watches: newline-delimited JSON events streamed from the store's history and live broadcast.
//!
//! Initial state is sent as ADDED events when the client gives no resourceVersion, "0", or
//! `sendInitialEvents=true` (then followed by a BOOKMARK annotated
//! `k8s.io/initial-events-end: "true"`). Otherwise events after the given resourceVersion are
//! replayed from history; a version older than the history gets an ERROR event with a 410
//! Status, as the apiserver sends. With selectors, every event (replayed or live) is judged by
//! the object's state before and after it: objects moving into or out of the selection are sent
//! as ADDED and DELETED, as the apiserver's watch cache does. With `allowWatchBookmarks`,
//! BOOKMARKs come every `bookmark_interval` and 2 s before `timeoutSeconds` ends, as the
//! apiserver sends one before a watch's deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::crud::Selectors;
use super::{Ctx, ResourcePath};
use crate::cluster::Shared;
use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::store::{EventType, ObjectKey, WatchEvent};

fn event_bytes(kind: &str, object: &Value) -> Bytes {
    let mut buf = Vec::with_capacity(1024);
    buf.extend_from_slice(br#"{"type":""#);
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(br#"","object":"#);
    serde_json::to_writer(&mut buf, object).expect("writing to a Vec");
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

fn bookmark(res: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_bytes(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

/// An initial event, serialised outside the cluster lock.
enum Pending {
    Obj(&'static str, Arc<Value>),
    Raw(Bytes),
}

/// Server-side Table output for watches (`kubectl get -w`): each event carries a one-row Table;
/// only the first one has column definitions, as the apiserver sends them.
struct TableMode {
    clock: Arc<crate::clock::Clock>,
    query: super::Query,
    accept: String,
    first: bool,
}

struct Filter {
    table: Option<TableMode>,
    res: &'static ResourceInfo,
    namespace: Option<String>,
    sel: Selectors,
    /// Whether a selector is set (then events are judged by the states before and after).
    tracking: bool,
}

impl Filter {
    fn encode(&mut self, kind: &str, object: &Value) -> Bytes {
        let Some(t) = &mut self.table else {
            return event_bytes(kind, object);
        };
        let mut table = super::table::table(
            self.res,
            &[Arc::new(object.clone())],
            &json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
            t.clock.now(),
            &t.query,
            &t.accept,
        );
        if !t.first
            && let Some(m) = table.as_object_mut()
        {
            m.remove("columnDefinitions");
        }
        t.first = false;
        event_bytes(kind, &table)
    }

    /// The event to send for a change, or None to skip it. With selectors, each event is judged
    /// by the object's state before and after it, as the apiserver's watch cache does: entering
    /// the selection is ADDED, leaving it DELETED (the previous state at the event's
    /// resourceVersion), a change inside it MODIFIED and a deletion inside it DELETED.
    fn translate(&self, e: &WatchEvent) -> Option<(&'static str, Arc<Value>)> {
        if e.resource.key() != self.res.key() {
            return None;
        }
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != ObjectKey::of(&e.object).namespace)
        {
            return None;
        }
        if !self.tracking {
            return Some((e.kind.as_str(), Arc::clone(&e.object)));
        }
        let deleted = e.kind == EventType::Deleted;
        let now_in = !deleted && self.sel.matches(&e.object);
        let was_in = e.prev.as_deref().is_some_and(|p| self.sel.matches(p));
        match (was_in, now_in) {
            (false, false) => None,
            (false, true) => Some(("ADDED", Arc::clone(&e.object))),
            (true, true) => Some(("MODIFIED", Arc::clone(&e.object))),
            (true, false) => {
                let mut last = e.prev.as_deref().cloned().unwrap_or(Value::Null);
                last["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                Some(("DELETED", Arc::new(last)))
            }
        }
    }
}

/// Starts a watch; the returned body streams events until timeout, fault, or disconnect.
// Snapshot and subscription must happen under one lock hold, so they stay in one function.
#[allow(clippy::too_many_lines)]
pub fn start(
    shared: &Shared,
    p: &ResourcePath,
    ctx: &Ctx,
    close: Option<(Option<u64>, Option<Duration>)>,
) -> Result<Body, ApiError> {
    let q = &ctx.query;
    super::validate::list_options(q, true)?;
    let mut sel = Selectors::parse(q)?;
    crate::selectors::check_supported(p.res, &sel.fields)?;
    if let Some(name) = &p.name {
        // GET .../pods/NAME?watch=true watches one object.
        let extra = format!("metadata.name={name}");
        let fs = q.get("fieldSelector").map_or(extra.clone(), |f| {
            if f.is_empty() {
                extra.clone()
            } else {
                format!("{f},{extra}")
            }
        });
        sel.fields = crate::selectors::FieldSelector::parse(&fs)?;
    }
    let tracking = !sel.labels.is_empty() || !sel.fields.is_empty();
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let want_bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut filter = Filter {
        table: None,
        res: p.res,
        namespace: p.namespace.clone(),
        sel,
        tracking,
    };

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // Objects are collected under the lock and serialised by the stream task after it.
    let mut initial: Vec<Pending> = Vec::new();
    let (live, start_rv, interval) = {
        let c = shared.lock();
        let live = c.store.subscribe();
        let now_rv = c.store.resource_version();
        let interval = c.api.bookmark_interval;
        if ctx.wants_table() {
            filter.table = Some(TableMode {
                clock: c.clock.clone(),
                query: ctx.query.clone(),
                accept: ctx.accept.clone(),
                first: true,
            });
        }
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            let list_q = {
                let mut l = q.clone();
                if let Some(name) = &p.name {
                    l.insert("fieldSelector".into(), format!("metadata.name={name}"));
                }
                l.remove("limit");
                l.remove("continue");
                l.remove("resourceVersionMatch");
                l
            };
            let page = super::crud::list(
                &c,
                &super::ResourcePath {
                    name: None,
                    sub: None,
                    ..p.clone()
                },
                &list_q,
            )?;
            for obj in &page.items {
                if filter.sel.matches(obj) {
                    initial.push(Pending::Obj("ADDED", Arc::clone(obj)));
                }
            }
            if send_initial {
                initial.push(Pending::Raw(bookmark(p.res, now_rv, true)));
            }
            (live, now_rv, interval)
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            match c.store.events_since(p.res, rv) {
                Ok(events) => {
                    for e in &events {
                        if let Some((kind, obj)) = filter.translate(e) {
                            initial.push(Pending::Obj(kind, obj));
                        }
                    }
                    (live, now_rv, interval)
                }
                Err(gone) => {
                    drop(c);
                    return Ok(stream_body(vec![event_bytes("ERROR", &gone.body)]));
                }
            }
        }
    };
    let (after_events, after_time) = close.unwrap_or((None, None));
    let deadline = [timeout, after_time].into_iter().flatten().min();
    let res = p.res;
    tokio::spawn(async move {
        run(
            tx,
            initial,
            live,
            filter,
            start_rv,
            res,
            want_bookmarks.then_some(interval),
            deadline,
            timeout,
            after_events,
        )
        .await;
    });
    Ok(Body::from_stream(futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) },
    )))
}

fn stream_body(chunks: Vec<Bytes>) -> Body {
    Body::from_stream(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Pending>,
    mut live: broadcast::Receiver<Arc<WatchEvent>>,
    mut filter: Filter,
    start_rv: u64,
    res: &'static ResourceInfo,
    bookmarks: Option<Duration>,
    deadline: Option<Duration>,
    client_timeout: Option<Duration>,
    close_after: Option<u64>,
) {
    let mut sent = 0u64;
    let mut last_rv = start_rv;
    let end = deadline.map(|d| tokio::time::Instant::now() + d);
    let sleep_until_end = async {
        match end {
            Some(e) => tokio::time::sleep_until(e).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until_end);
    // The apiserver also sends a bookmark 2 s before the watch's deadline, so the client can
    // resume from the latest version.
    let started = tokio::time::Instant::now();
    let pre_deadline = client_timeout
        .and_then(|t| (started + t).checked_sub(Duration::from_secs(2)))
        .filter(|t| bookmarks.is_some() && *t > tokio::time::Instant::now());
    let mut pre_sent = pre_deadline.is_none();
    let sleep_until_pre = async {
        match pre_deadline {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until_pre);
    let mut tick = tokio::time::interval(bookmarks.unwrap_or(Duration::from_hours(1)));
    tick.tick().await;
    for pending in initial {
        let chunk = match pending {
            Pending::Obj(kind, obj) => filter.encode(kind, &obj),
            Pending::Raw(b) => b,
        };
        if close_after.is_some_and(|n| sent >= n) || tx.send(chunk).await.is_err() {
            return;
        }
        sent += 1;
    }
    loop {
        if close_after.is_some_and(|n| sent >= n) {
            return;
        }
        tokio::select! {
            () = &mut sleep_until_end => return,
            () = tx.closed() => return,
            () = &mut sleep_until_pre, if !pre_sent => {
                pre_sent = true;
                if tx.send(bookmark(res, last_rv, false)).await.is_err() {
                    return;
                }
            }
            _ = tick.tick(), if bookmarks.is_some() => {
                if tx.send(bookmark(res, last_rv, false)).await.is_err() {
                    return;
                }
            }
            ev = live.recv() => match ev {
                Ok(e) => {
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    if let Some((kind, obj)) = filter.translate(&e) {
                        if tx.send(filter.encode(kind, &obj)).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow a consumer: end with 410 so the client re-lists, as the
                    // apiserver does when its watch cache overflows.
                    let gone = ApiError::gone(last_rv, last_rv + 1);
                    let _ = tx.send(event_bytes("ERROR", &gone.body)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
