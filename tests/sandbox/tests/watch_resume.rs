//! Resumed selector watches, checked with an independent client: curl over HTTPS, reading the
//! newline-delimited JSON event stream (not kube-rs's watcher). Each replayed event must be judged
//! by the object's state before and after *that* event, as the apiserver's watch cache does.
// Each test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::Command;

use opsteps_sandbox::sandbox::{Options, Sandbox};
use serde_json::{Value, json};

/// A TLS sandbox without controllers, and the CA file curl trusts.
struct Fixture {
    sb: Sandbox,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let sb = Sandbox::start(Options::default().controllers(false))
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sb.ca_pem().expect("TLS sandbox")).unwrap();
    Fixture { sb, ca, _dir: dir }
}

impl Fixture {
    /// One request with curl; returns the status and the body text.
    async fn curl(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let url = format!("{}{path}", self.sb.url());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&self.ca)
            .args(["-X", method, "-H"])
            .arg(format!("Authorization: Bearer {}", self.sb.admin_token()))
            .args(["-w", "\n%{http_code}"]);
        if let Some(b) = body {
            let ct = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            cmd.args(["-H", &format!("Content-Type: {ct}"), "--data-binary"])
                .arg(b.to_string());
        }
        cmd.arg(url);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("curl runs (install curl to run these tests)");
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status code"), body.to_owned())
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, text) = self.curl(method, path, body).await;
        assert!((200..300).contains(&code), "{method} {path}: {code} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The current resourceVersion, from a list.
    async fn rv(&self) -> String {
        let l = self
            .ok("GET", "/api/v1/namespaces/default/pods", None)
            .await;
        l["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The events a watch replays from `rv` (the server ends it after one second).
    async fn replay(&self, path: &str, query: &str, rv: &str) -> Vec<(String, Value)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (code, text) = self
            .curl(
                "GET",
                &format!("{path}{sep}watch=true&timeoutSeconds=1&resourceVersion={rv}{query}"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{text}");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let e: Value = serde_json::from_str(l).expect("event is JSON");
                (e["type"].as_str().unwrap().to_owned(), e["object"].clone())
            })
            .collect()
    }

    async fn pod(&self, name: &str, node: Option<&str>, labels: Value) -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        });
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        self.ok("POST", "/api/v1/namespaces/default/pods", Some(p))
            .await
    }

    async fn remove(&self, name: &str) {
        self.ok(
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/{name}"),
            Some(json!({"gracePeriodSeconds": 0})),
        )
        .await;
    }
}

/// `(type, name, spec.nodeName)` of each event.
fn summary(events: &[(String, Value)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|(t, o)| {
            (
                t.clone(),
                o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                o["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn ev(t: &str, name: &str, node: &str) -> (String, String, String) {
    (t.to_owned(), name.to_owned(), node.to_owned())
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn node_name_watch_resumed_across_a_deletion_reports_it() {
    let f = fixture().await;
    f.pod("web-1", Some("n1"), json!({"app": "web"})).await;
    f.pod("other", Some("n2"), json!({"app": "web"})).await;
    let rv = f.rv().await;
    f.remove("web-1").await;
    f.remove("other").await;
    let events = f
        .replay(PODS, "&fieldSelector=spec.nodeName%3Dn1", &rv)
        .await;
    assert_eq!(summary(&events), vec![ev("DELETED", "web-1", "n1")]);
    // The DELETED event carries the deletion's resourceVersion, after the one resumed from.
    let del_rv: u64 = events[0].1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(del_rv > rv.parse::<u64>().unwrap());

    // Created and deleted after the resume point: both events.
    let rv = f.rv().await;
    f.pod("web-2", Some("n1"), json!({})).await;
    f.remove("web-2").await;
    let events = f
        .replay(PODS, "&fieldSelector=spec.nodeName%3Dn1", &rv)
        .await;
    assert_eq!(
        summary(&events),
        vec![ev("ADDED", "web-2", "n1"), ev("DELETED", "web-2", "n1")]
    );
}

#[tokio::test]
async fn replacement_pod_on_another_node_is_not_reported_on_the_old_one() {
    let f = fixture().await;
    // A StatefulSet-style replacement: same name, new pod, scheduled elsewhere.
    f.pod("db-0", Some("n1"), json!({"app": "db"})).await;
    let rv = f.rv().await;
    f.remove("db-0").await;
    f.pod("db-0", None, json!({"app": "db"})).await;
    f.ok(
        "POST",
        "/api/v1/namespaces/default/pods/db-0/binding",
        Some(json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "db-0"}, "target": {"kind": "Node", "name": "n2"}})),
    )
    .await;
    let on_n1 = f
        .replay(PODS, "&fieldSelector=spec.nodeName%3Dn1", &rv)
        .await;
    assert_eq!(summary(&on_n1), vec![ev("DELETED", "db-0", "n1")]);
    let on_n2 = f
        .replay(PODS, "&fieldSelector=spec.nodeName%3Dn2", &rv)
        .await;
    assert_eq!(summary(&on_n2), vec![ev("ADDED", "db-0", "n2")]);
    // Unscheduled pods (`spec.nodeName=`): the replacement enters, then leaves when bound; the
    // DELETED event shows the state it left (still unbound) at the binding's resourceVersion.
    let pending = f.replay(PODS, "&fieldSelector=spec.nodeName%3D", &rv).await;
    assert_eq!(
        summary(&pending),
        vec![ev("ADDED", "db-0", ""), ev("DELETED", "db-0", "")]
    );
    let bound = f.ok("GET", &format!("{PODS}/db-0"), None).await;
    assert_eq!(
        pending[1].1["metadata"]["resourceVersion"],
        bound["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn label_watch_resumed_sees_entering_and_leaving() {
    let f = fixture().await;
    f.pod("p", Some("n1"), json!({"app": "a"})).await;
    f.pod("q", Some("n1"), json!({"app": "b"})).await;
    let rv = f.rv().await;
    let relabel = |name: &'static str, app: &'static str| {
        let f = &f;
        async move {
            f.ok(
                "PATCH",
                &format!("{PODS}/{name}"),
                Some(json!({"metadata": {"labels": {"app": app}}})),
            )
            .await;
        }
    };
    relabel("p", "b").await; // p leaves
    relabel("q", "a").await; // q enters
    relabel("p", "a").await; // p comes back
    f.ok(
        "PATCH",
        &format!("{PODS}/q"),
        Some(json!({"metadata": {"annotations": {"x": "y"}}})),
    )
    .await; // q changes inside
    f.remove("q").await; // q deleted inside
    f.remove("p").await; // p deleted inside
    let events = f.replay(PODS, "&labelSelector=app%3Da", &rv).await;
    let got: Vec<(String, String, String)> = events
        .iter()
        .map(|(t, o)| {
            (
                t.clone(),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
                o["metadata"]["labels"]["app"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("DELETED", "p", "a"), // leaving: the state it left, as the apiserver sends it
        ("ADDED", "q", "a"),
        ("ADDED", "p", "a"),
        ("MODIFIED", "q", "a"),
        ("DELETED", "q", "a"),
        ("DELETED", "p", "a"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(t, n, a)| ((*t).to_owned(), (*n).to_owned(), (*a).to_owned()))
        .collect();
    assert_eq!(got, want);
    // Resource versions rise, each the event's own.
    let rvs: Vec<u64> = events
        .iter()
        .map(|(_, o)| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
}

#[tokio::test]
async fn metadata_name_watch_resumed_sees_only_that_object() {
    let f = fixture().await;
    f.pod("noise", Some("n1"), json!({})).await;
    let rv = f.rv().await;
    f.pod("target", Some("n1"), json!({})).await;
    f.ok(
        "PATCH",
        &format!("{PODS}/target"),
        Some(json!({"metadata": {"labels": {"k": "v"}}})),
    )
    .await;
    f.ok(
        "PATCH",
        &format!("{PODS}/noise"),
        Some(json!({"metadata": {"labels": {"k": "v"}}})),
    )
    .await;
    f.remove("target").await;
    let want = vec![
        ev("ADDED", "target", "n1"),
        ev("MODIFIED", "target", "n1"),
        ev("DELETED", "target", "n1"),
    ];
    let by_selector = f
        .replay(PODS, "&fieldSelector=metadata.name%3Dtarget", &rv)
        .await;
    assert_eq!(summary(&by_selector), want);
    // Cluster-wide, with the namespace in the selector too.
    let all = f
        .replay(
            "/api/v1/pods",
            "&fieldSelector=metadata.name%3Dtarget,metadata.namespace%3Ddefault",
            &rv,
        )
        .await;
    assert_eq!(summary(&all), want);
    // The single-object form, GET .../pods/NAME?watch=true.
    let by_path = f.replay(&format!("{PODS}/target"), "", &rv).await;
    assert_eq!(summary(&by_path), want);
}
