//! Logging to stderr (text or JSON) with an `EnvFilter` from `RUST_LOG`, and the root span that
//! ties every line to its Argo workflow and node.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};
use crate::env;

/// Installs the global subscriber. A second call (tests running steps in-process) is a no-op.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_from_env(env::RUST_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match args.log_format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed: keep the first one.
    drop(result);
}

/// The root span of a step run, carrying Argo's workflow name and node id when present.
#[must_use]
pub fn step_span(step: &'static str) -> tracing::Span {
    let var = |k| std::env::var(k).unwrap_or_default();
    tracing::info_span!(
        "step",
        step,
        workflow = %var(env::ARGO_WORKFLOW_NAME),
        node_id = %var(env::ARGO_NODE_ID),
    )
}
