//! The opsteps library: everything the step binaries share, so that no step re-implements it.
//!
//! - [`connect`]: a `kube::Client` for the target cluster (kubeconfig, in-cluster, or EKS by
//!   name with a self-refreshing IAM token from [`eks_token`]), guarded by `--expect-cluster`;
//! - [`cli`]: flag groups with env fallbacks ([`env`]), Go-format [`duration`]s;
//! - [`exit`]: exit codes 0–4 and the step error type; [`output`]: stdout result, output files,
//!   progress; [`audit`]: one event per mutating call; [`retry`]: bounded, jittered,
//!   Retry-After-aware retries; [`shutdown`]: SIGTERM; [`telemetry`]: logs on stderr;
//! - [`aws`], [`eks`], [`s3`]: thin AWS SDK helpers with endpoints from `AWS_ENDPOINT_URL_*`;
//!   [`tls`]: the one root store (bundled Mozilla roots plus any system ones) every HTTPS
//!   client trusts;
//! - [`list`]: paged lists with retries, a deadline and SIGTERM; [`access`]: the permission
//!   pre-check; [`selector`]: label selectors (strings, objects, matching);
//! - [`step`]: the life cycle every `main.rs` delegates to.
//!
//! A step's `main.rs`:
//!
//! ```no_run
//! use clap::Parser;
//! use opsteps::step::{Context, Report, StepArgs};
//! use opsteps::exit::StepError;
//!
//! /// Says hello to the cluster.
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     common: opsteps::cli::CommonArgs,
//! }
//!
//! impl StepArgs for Args {
//!     fn common(&self) -> &opsteps::cli::CommonArgs { &self.common }
//! }
//!
//! async fn run(args: Args, _ctx: Context) -> Result<Report, StepError> {
//!     let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
//!     let v = conn.client.apiserver_version().await.map_err(|e| StepError::kube("GET /version", e))?;
//!     Ok(Report::done("hello", serde_json::json!({ "version": v.git_version })))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     opsteps::step::main("hello", run)
//! }
//! ```
#![warn(missing_docs)]

pub mod access;
pub mod audit;
pub mod aws;
pub mod cli;
pub mod connect;
pub mod duration;
pub mod eks;
pub mod eks_token;
pub mod env;
pub mod events;
pub mod evict;
pub mod exit;
pub mod list;
pub mod nodes;
pub mod output;
pub mod owners;
pub mod quantity;
pub mod retry;
pub mod s3;
pub mod selector;
pub mod shutdown;
pub mod step;
pub mod telemetry;
pub mod tls;
