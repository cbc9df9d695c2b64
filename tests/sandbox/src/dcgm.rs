//! dcgm-exporter endpoints: each Running exporter pod serves `/metrics` on its own pod IP at
//! port 9400, and the API's `pods/proxy` forwards to it, so direct and proxied scrapes return
//! the same bytes.
//!
//! Exporter pods are found by either label scheme: the Helm chart's
//! `app.kubernetes.io/name=dcgm-exporter` and the GPU Operator's `app=nvidia-dcgm-exporter`. The
//! body covers every GPU of the pod's node (`nvidia.com/gpu` capacity), with pod-mapping labels
//! for GPUs that pods on the node hold, and values from the scenario's `gpu:` section
//! ([`config::GpuConfig`], documented in `tests/scenarios/README.md`).
//!
//! ```no_run
//! # async fn demo(shared: opsteps_sandbox::cluster::Shared) -> anyhow::Result<()> {
//! use opsteps_sandbox::dcgm;
//! let config = dcgm::GpuConfig::from_value(None)?;
//! let exporters = dcgm::spawn(shared, config, tokio_util::sync::CancellationToken::new());
//! for (pod, addr) in exporters.listening() {
//!     println!("{pod}: http://{addr}/metrics");
//! }
//! # Ok(()) }
//! ```

pub mod config;
pub mod model;
pub mod prometheus;
pub mod proxy;
pub mod render;
pub mod serve;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use config::GpuConfig;
pub use proxy::pod_proxy;
pub use serve::Exporters;

use crate::cluster::Shared;
use crate::resources::well_known;

/// dcgm-exporter's port.
pub const PORT: u16 = 9400;

/// Exporter pod labels: the Helm chart's and the GPU Operator's.
pub const EXPORTER_LABELS: &[(&str, &str)] = &[
    ("app.kubernetes.io/name", "dcgm-exporter"),
    ("app", "nvidia-dcgm-exporter"),
];

/// Whether `pod` is a dcgm-exporter pod (either label scheme).
#[must_use]
pub fn is_exporter(pod: &Value) -> bool {
    let labels = crate::labels::labels(pod);
    EXPORTER_LABELS
        .iter()
        .any(|(k, v)| labels.get(*k).and_then(Value::as_str) == Some(*v))
}

/// The `/metrics` body of exporter pod `namespace/name` now (None when the pod is gone, is not
/// an exporter, or is not on a node).
#[must_use]
pub fn render_for_pod(
    shared: &Shared,
    config: &GpuConfig,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let (view, now) = {
        let c = shared.lock();
        let pod = c.store.get(well_known::pods(), namespace, name)?;
        if !is_exporter(&pod) {
            return None;
        }
        let node = crate::podutil::node_name(&pod)?;
        (render::node_view(&c, node)?, c.clock.now())
    };
    Some(render::render(&view, config, now))
}

/// Starts the exporter endpoints of a sandbox: a task that serves every Running exporter pod
/// until `shutdown` or drop. With `listen: false` nothing listens.
#[must_use]
pub fn spawn(shared: Shared, config: GpuConfig, shutdown: CancellationToken) -> Exporters {
    if config.listen {
        serve::spawn(shared, config, shutdown)
    } else {
        let idle = CancellationToken::new();
        idle.cancel();
        serve::spawn(shared, config, idle)
    }
}
