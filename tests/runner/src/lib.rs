//! The local runner for opsteps' WorkflowTemplates. It exists for tests and `cargo demo`; in
//! production Argo Workflows runs the templates in `workflows/`.
//!
//! It runs the subset of Argo Workflows our templates use (README.md lists it) and rejects
//! anything else when loading, naming the construct and the file. `Runner::terminate` stops
//! runs as `argo terminate` does; dropping a `run` future stops its steps too.

mod dag;
mod engine;
mod engine_dag;
mod expr;
mod load;
mod model;
mod pod;
mod retry;
mod runner;
mod scope;
mod subset;
mod tree;
mod workflow;

pub use load::{Catalog, LoadError};
pub use runner::{Observer, RetryOptions, RunError, RunRequest, Runner, RunnerConfig, Submit};
pub use workflow::{Event, Node, NodeKind, Phase, Workflow};
