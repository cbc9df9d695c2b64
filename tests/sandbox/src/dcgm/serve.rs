//! Real listeners: every Running exporter pod gets `http://<podIP>:9400/metrics` (and
//! `/health`) on its own loopback address. A task watches the store and starts and stops
//! listeners as exporter pods come and go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{ExporterFault, GpuConfig};
use super::{PORT, is_exporter, render_for_pod};
use crate::cluster::Shared;
use crate::resources::well_known;

/// How long to wait before retrying a pod address that could not be bound (another sandbox in
/// this machine may hold the same loopback address for a while).
const BIND_RETRY: Duration = Duration::from_secs(2);

/// One exporter pod's listener.
struct Listener {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    /// `namespace/name` → listener.
    listeners: BTreeMap<String, Listener>,
    /// Pods whose address could not be bound yet (warned about once each).
    unbound: std::collections::BTreeSet<String>,
}

/// The running exporter endpoints of one sandbox; stops them on drop.
pub struct Exporters {
    inner: Arc<Mutex<Inner>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct PodState {
    shared: Shared,
    config: Arc<GpuConfig>,
    namespace: String,
    name: String,
}

/// The fault configured for the node exporter pod `namespace/name` runs on.
fn fault_of(
    shared: &Shared,
    config: &GpuConfig,
    namespace: &str,
    name: &str,
) -> Option<ExporterFault> {
    let c = shared.lock();
    let pod = c.store.get(well_known::pods(), namespace, name)?;
    let node = crate::podutil::node_name(&pod)?;
    let obj = c.store.get(well_known::nodes(), "", node)?;
    config.exporter_fault(node, crate::labels::labels(&obj))
}

async fn metrics(State(s): State<PodState>) -> Response {
    if fault_of(&s.shared, &s.config, &s.namespace, &s.name) == Some(ExporterFault::Hang) {
        // A hung exporter: the connection stays open and no answer ever comes.
        std::future::pending::<()>().await;
    }
    let body = render_for_pod(&s.shared, &s.config, &s.namespace, &s.name);
    match body {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (StatusCode::NOT_FOUND, "exporter pod is gone\n").into_response(),
    }
}

async fn health() -> &'static str {
    "OK"
}

/// Running exporter pods with an IP: `namespace/name` → address (not those whose exporter is
/// `down`: nothing listens for them).
fn desired(shared: &Shared, config: &GpuConfig) -> BTreeMap<String, SocketAddr> {
    let c = shared.lock();
    c.store
        .list(well_known::pods(), None)
        .filter(|p| is_exporter(p) && crate::podutil::phase(p) == "Running")
        .filter(|p| {
            let Some(node) = crate::podutil::node_name(p) else {
                return true;
            };
            let labels = c
                .store
                .get(well_known::nodes(), "", node)
                .map(|n| crate::labels::labels(&n).clone())
                .unwrap_or_default();
            config.exporter_fault(node, &labels) != Some(ExporterFault::Down)
        })
        .filter_map(|p| {
            let ip: std::net::IpAddr = p["status"]["podIP"].as_str()?.parse().ok()?;
            let (ns, name) = crate::podutil::ns_name(p);
            Some((format!("{ns}/{name}"), SocketAddr::new(ip, PORT)))
        })
        .collect()
}

/// Brings the listeners in line with the exporter pods; true when some could not be bound yet.
async fn reconcile(shared: &Shared, config: &Arc<GpuConfig>, inner: &Arc<Mutex<Inner>>) -> bool {
    let want = desired(shared, config);
    let mut to_start = Vec::new();
    {
        let mut g = inner.lock().expect("dcgm listeners lock");
        g.listeners.retain(|key, l| {
            let keep = want.get(key) == Some(&l.addr) && !l.task.is_finished();
            if !keep {
                l.task.abort();
            }
            keep
        });
        g.unbound.retain(|k| want.contains_key(k));
        for (key, addr) in &want {
            if !g.listeners.contains_key(key) {
                to_start.push((key.clone(), *addr));
            }
        }
    }
    let mut pending = false;
    for (key, addr) in to_start {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                if inner
                    .lock()
                    .expect("dcgm listeners lock")
                    .unbound
                    .insert(key.clone())
                {
                    tracing::warn!(pod = %key, %addr, error = %e, "dcgm-exporter: cannot listen yet, retrying");
                }
                pending = true;
                continue;
            }
        };
        let (ns, name) = key.split_once('/').unwrap_or(("", &key));
        let state = PodState {
            shared: shared.clone(),
            config: Arc::clone(config),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        };
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(health))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        tracing::debug!(pod = %key, %addr, "dcgm-exporter listening");
        let mut g = inner.lock().expect("dcgm listeners lock");
        g.unbound.remove(&key);
        g.listeners.insert(key, Listener { addr, task });
    }
    pending
}

/// Starts the watcher; it serves every Running exporter pod until `shutdown` or drop.
#[must_use]
pub fn spawn(shared: Shared, config: GpuConfig, shutdown: CancellationToken) -> Exporters {
    let inner = Arc::new(Mutex::new(Inner::default()));
    let config = Arc::new(config);
    let task = {
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let mut events = shared.lock().store.subscribe();
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let pending = reconcile(&shared, &config, &inner).await;
                // Wait for a change to an exporter pod (or retry a failed bind).
                let retry = tokio::time::sleep(if pending {
                    BIND_RETRY
                } else {
                    Duration::from_hours(1)
                });
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => {
                            for (_, l) in std::mem::take(&mut inner.lock().expect("dcgm listeners lock").listeners) {
                                l.task.abort();
                            }
                            return;
                        }
                        () = &mut retry => break,
                        ev = events.recv() => match ev {
                            Ok(ev) if ev.resource.key() == well_known::pods().key() && is_exporter(&ev.object) => break,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
        })
    };
    Exporters { inner, task }
}

impl Exporters {
    /// Listening exporter pods: `(namespace/name, address)`.
    #[must_use]
    pub fn listening(&self) -> Vec<(String, SocketAddr)> {
        self.inner
            .lock()
            .expect("dcgm listeners lock")
            .listeners
            .iter()
            .map(|(k, l)| (k.clone(), l.addr))
            .collect()
    }

    /// Waits (real time) until the exporter pod `namespace/name` is served; its address.
    pub async fn wait_listening(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Option<SocketAddr> {
        let key = format!("{namespace}/{name}");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .inner
                .lock()
                .expect("dcgm listeners lock")
                .listeners
                .get(&key)
            {
                return Some(l.addr);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the watcher and every listener.
    pub fn stop(&self) {
        self.task.abort();
        for (_, l) in std::mem::take(&mut self.inner.lock().expect("dcgm listeners lock").listeners)
        {
            l.task.abort();
        }
    }
}

impl Drop for Exporters {
    fn drop(&mut self) {
        self.stop();
    }
}
