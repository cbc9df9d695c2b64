//! Watches over raw HTTP: initial events, resume, 410, bookmarks, selectors, timeouts.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use crate::common;

use std::time::Duration;

use common::{expect, post, raw, sandbox};
use http::Method;
use http_body_util::BodyExt;
use opsteps_sandbox::sandbox::Sandbox;
use serde_json::{Value, json};

/// A watch stream read line by line.
struct Stream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Stream {
    async fn open(sb: &Sandbox, path: &str) -> Self {
        let r = raw(sb, Some(sb.admin_token()), Method::GET, path, None, &[])
            .await
            .expect("watch answered");
        assert_eq!(r.status(), 200);
        Self {
            body: r.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next event, or None when the stream ended (or nothing came within 15 s: long
    /// enough that a None in a test means the server ended it, even on a slow machine).
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("event is JSON"));
            }
            match tokio::time::timeout(Duration::from_secs(15), self.body.frame()).await {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                _ => return None,
            }
        }
    }

    async fn next_ok(&mut self) -> (String, Value) {
        let e = self.next().await.expect("an event");
        (e["type"].as_str().unwrap().to_owned(), e["object"].clone())
    }
}

async fn cm(sb: &Sandbox, name: &str, labels: Value) -> Value {
    expect(
        &post(
            sb,
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": name, "labels": labels}}),
        )
        .await,
        201,
    )
    .clone()
}

#[tokio::test]
async fn initial_events_then_live_changes() {
    let sb = sandbox().await;
    cm(&sb, "a", json!({})).await;
    let mut w = Stream::open(&sb, "/api/v1/namespaces/default/configmaps?watch=true").await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("a"))
    );
    cm(&sb, "b", json!({})).await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("b"))
    );
    common::patch(
        &sb,
        "/api/v1/namespaces/default/configmaps/a",
        "application/merge-patch+json",
        &json!({"data": {"k": "v"}}),
    )
    .await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["data"]["k"].as_str()),
        ("MODIFIED", Some("v"))
    );
    common::delete(&sb, "/api/v1/namespaces/default/configmaps/b", None).await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("b"))
    );
    // Other namespaces and kinds are not seen.
    common::ensure_ns(&sb, "other").await;
    expect(
        &post(
            &sb,
            "/api/v1/namespaces/other/configmaps",
            &json!({"metadata": {"name": "x"}}),
        )
        .await,
        201,
    );
    cm(&sb, "c", json!({})).await;
    assert_eq!(w.next_ok().await.1["metadata"]["name"], "c");
}

#[tokio::test]
async fn resume_from_resource_version_and_410_when_too_old() {
    let sb = sandbox().await;
    let a = cm(&sb, "a", json!({})).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    cm(&sb, "b", json!({})).await;
    common::delete(&sb, "/api/v1/namespaces/default/configmaps/a", None).await;
    let mut w = Stream::open(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"),
    )
    .await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("b")),
        "only changes after rv"
    );
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("a"))
    );
    // Compacted history: 200 with an ERROR event carrying a 410 Status, then the end.
    sb.with(|c| c.store.compact());
    cm(&sb, "c", json!({})).await;
    let mut w = Stream::open(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"),
    )
    .await;
    let (t, o) = w.next_ok().await;
    assert_eq!(t, "ERROR");
    assert_eq!(o["kind"], "Status");
    assert_eq!(o["code"], 410);
    assert_eq!(o["reason"], "Expired");
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn selectors_turn_changes_into_added_and_deleted() {
    let sb = sandbox().await;
    cm(&sb, "a", json!({"app": "x"})).await;
    cm(&sb, "b", json!({"app": "y"})).await;
    let list = common::get(
        &sb,
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx",
    )
    .await
    .body;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = Stream::open(&sb, &format!("/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dx&resourceVersion={rv}")).await;
    let relabel = |name: &'static str, app: &'static str| {
        let sb = &sb;
        async move {
            common::patch(
                sb,
                &format!("/api/v1/namespaces/default/configmaps/{name}"),
                "application/merge-patch+json",
                &json!({"metadata": {"labels": {"app": app}}}),
            )
            .await;
        }
    };
    relabel("b", "x").await;
    assert_eq!(
        w.next_ok().await,
        ("ADDED".to_owned(), w_obj(&sb, "b").await)
    );
    relabel("a", "z").await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("a"))
    );
    relabel("a", "q").await;
    relabel("b", "x2").await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("b")),
        "changes outside the selection are not sent"
    );
}

async fn w_obj(sb: &Sandbox, name: &str) -> Value {
    common::get(sb, &format!("/api/v1/namespaces/default/configmaps/{name}"))
        .await
        .body
}

#[tokio::test]
async fn send_initial_events_ends_with_annotated_bookmark_and_periodic_bookmarks() {
    let sb = sandbox().await;
    sb.with(|c| c.api.bookmark_interval = Duration::from_millis(200));
    cm(&sb, "a", json!({})).await;
    let mut w = Stream::open(&sb, "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true").await;
    assert_eq!(w.next_ok().await.0, "ADDED");
    let (t, o) = w.next_ok().await;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(
        o["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(o["kind"], "ConfigMap");
    let rv_now = sb.with(|c| c.store.resource_version()).to_string();
    assert_eq!(o["metadata"]["resourceVersion"], rv_now.as_str());
    let (t, o) = w.next_ok().await;
    assert_eq!(t, "BOOKMARK", "periodic bookmark");
    assert!(o["metadata"].get("annotations").is_none());
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let sb = sandbox().await;
    let started = std::time::Instant::now();
    let mut w = Stream::open(
        &sb,
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
    )
    .await;
    assert!(w.next().await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended by the 1 s timeout, not by the reader's 15 s"
    );
}

#[tokio::test]
async fn watch_of_one_named_object_with_field_selector() {
    let sb = sandbox().await;
    cm(&sb, "a", json!({})).await;
    cm(&sb, "b", json!({})).await;
    let list = common::get(
        &sb,
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Da",
    )
    .await
    .body;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = Stream::open(&sb, &format!("/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&fieldSelector=metadata.name%3Da&resourceVersion={rv}&timeoutSeconds=30")).await;
    common::delete(&sb, "/api/v1/namespaces/default/configmaps/b", None).await;
    common::delete(&sb, "/api/v1/namespaces/default/configmaps/a", None).await;
    let (t, o) = w.next_ok().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("a"))
    );
}

#[tokio::test]
async fn table_watches_for_kubectl_get_w() {
    let sb = sandbox().await;
    cm(&sb, "a", json!({})).await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let r = raw(
        &sb,
        Some(sb.admin_token()),
        Method::GET,
        "/api/v1/namespaces/default/configmaps?watch=true",
        None,
        &[("Accept", accept)],
    )
    .await
    .unwrap();
    let mut w = Stream {
        body: r.into_body(),
        buf: Vec::new(),
    };
    let (t, first) = w.next_ok().await;
    assert_eq!(t, "ADDED");
    assert_eq!(first["kind"], "Table");
    assert_eq!(first["columnDefinitions"][0]["name"], "Name");
    assert_eq!(first["rows"][0]["cells"][0], "a");
    cm(&sb, "b", json!({})).await;
    let (_, second) = w.next_ok().await;
    assert_eq!(second["rows"][0]["cells"][0], "b");
    assert!(
        second.get("columnDefinitions").is_none(),
        "only the first event carries columns"
    );
}

#[tokio::test]
async fn bookmark_comes_shortly_before_the_timeout() {
    let sb = sandbox().await;
    // No periodic bookmark within the test: only the one before the deadline.
    sb.with(|c| c.api.bookmark_interval = Duration::from_hours(1));
    let a = cm(&sb, "a", json!({})).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = std::time::Instant::now();
    let mut w = Stream::open(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=4&resourceVersion={rv}"),
    )
    .await;
    cm(&sb, "b", json!({})).await;
    let (t, _) = w.next_ok().await;
    assert_eq!(t, "ADDED");
    let now_rv = sb.with(|c| c.store.resource_version()).to_string();
    let (t, o) = w.next_ok().await;
    let at = started.elapsed();
    assert_eq!(t, "BOOKMARK");
    assert_eq!(o["kind"], "ConfigMap");
    assert_eq!(o["metadata"]["resourceVersion"], now_rv.as_str());
    // 2 s before the 4 s deadline (the apiserver's pre-timeout bookmark), not on a tick.
    assert!(
        at >= Duration::from_millis(1500) && at < Duration::from_millis(3900),
        "bookmark after {at:?}"
    );
    // Then the stream ends at the deadline.
    assert!(w.next().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(12));

    // Without allowWatchBookmarks there is none.
    let mut w = Stream::open(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=3&resourceVersion={now_rv}"),
    )
    .await;
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn default_bookmarks_come_before_the_timeout_not_on_a_short_tick() {
    // The apiserver sends a bookmark roughly every minute and 2 s before the deadline; a 9 s
    // watch on a quiet cluster therefore sees its first bookmark at about 7 s, never at 5 s.
    let sb = sandbox().await;
    let a = cm(&sb, "a", json!({})).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = std::time::Instant::now();
    let mut w = Stream::open(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=9&resourceVersion={rv}"),
    )
    .await;
    // `next` gives up after 15 s of silence; ask again should it ever, until the deadline.
    let mut first = None;
    while first.is_none() && started.elapsed() < Duration::from_secs(10) {
        first = w.next().await.map(|e| (e, started.elapsed()));
    }
    let (e, at) = first.expect("a bookmark before the deadline");
    assert_eq!(e["type"], "BOOKMARK");
    assert!(
        at >= Duration::from_millis(6500) && at < Duration::from_millis(8900),
        "first bookmark after {at:?}: expected 2 s before the 9 s deadline"
    );
}

#[tokio::test]
async fn exact_resource_version_lists_the_past_state() {
    let sb = sandbox().await;
    let rv_of = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let rv1 = rv_of(&cm(&sb, "a", json!({"v": "1"})).await);
    let rv2 = rv_of(
        &common::patch(
            &sb,
            "/api/v1/namespaces/default/configmaps/a",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"v": "2"}}}),
        )
        .await
        .body,
    );
    let rv3 = rv_of(&cm(&sb, "b", json!({"v": "1"})).await);
    common::delete(&sb, "/api/v1/namespaces/default/configmaps/a", None).await;
    let list = |rv: String| {
        let sb = &sb;
        async move {
            let r = common::get(
                sb,
                &format!("/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact&resourceVersion={rv}"),
            )
            .await;
            let b = expect(&r, 200).clone();
            assert_eq!(b["metadata"]["resourceVersion"], rv.as_str());
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    format!(
                        "{}:{}",
                        o["metadata"]["name"].as_str().unwrap(),
                        o["metadata"]["labels"]["v"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(rv1.clone()).await, ["a:1"]);
    assert_eq!(list(rv2).await, ["a:2"]);
    assert_eq!(list(rv3).await, ["a:2", "b:1"]);
    let now = sb.with(|c| c.store.resource_version()).to_string();
    assert_eq!(list(now.clone()).await, ["b:1"]);
    // A labelSelector applies to the past state.
    let r = common::get(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact&resourceVersion={rv1}&labelSelector=v%3D2"),
    )
    .await;
    assert!(expect(&r, 200)["items"].as_array().unwrap().is_empty());
    // A version in the future: the apiserver's "Too large resource version" (504, retry).
    let future = (now.parse::<u64>().unwrap() + 100).to_string();
    let r = common::get(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact&resourceVersion={future}"),
    )
    .await;
    let b = expect(&r, 504);
    assert_eq!(b["reason"], "Timeout");
    assert_eq!(
        b["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version")
    );
    // Compacted: 410 Expired.
    sb.with(|c| c.store.compact());
    cm(&sb, "c", json!({})).await;
    let r = common::get(
        &sb,
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact&resourceVersion={rv1}"
        ),
    )
    .await;
    let b = expect(&r, 410);
    assert_eq!(b["kind"], "Status");
    assert_eq!(b["reason"], "Expired");
    assert_eq!(
        b["message"],
        "The resourceVersion for the provided list is too old."
    );
    // NotOlderThan (and a plain resourceVersion) serve the current state.
    let r = common::get(
        &sb,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersionMatch=NotOlderThan&resourceVersion={rv1}"),
    )
    .await;
    assert_eq!(expect(&r, 200)["items"].as_array().unwrap().len(), 2);
}
