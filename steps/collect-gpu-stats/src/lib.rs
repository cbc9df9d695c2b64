//! `collect-gpu-stats`: Scrape NVIDIA dcgm-exporter, aggregate per GPU, pod and owner, store the report in S3.
//!
//! Feeds GPU utilisation reviews: which owners hold idle GPUs. One run: list GPU nodes and
//! exporter pods, scrape every exporter (or read a Prometheus window), aggregate per GPU,
//! attribute GPUs to pods and owners, classify them (active, idle-held, idle, unallocated),
//! write the report locally and upload it to S3 (the one mutation, audited).

pub mod aggregation;
pub mod args;
pub mod attribution;
pub mod csv;
pub mod discovery;
pub mod env;
pub mod parse;
pub mod prometheus;
pub mod rbac;
pub mod report;
pub mod run;
pub mod sample;
pub mod scrape;
pub mod states;
pub mod stats;
pub mod upload;

pub use args::Args;

use opsteps::exit::StepError;
use opsteps::step::{Context, Report};

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "collect-gpu-stats";

/// Runs the step: checks the flags (exit 2, nothing sent), connects, checks permissions
/// (exit 2), collects, reports, uploads.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    run::run(args, ctx).await
}
