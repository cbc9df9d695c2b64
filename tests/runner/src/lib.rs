//! The local runner for opsteps' WorkflowTemplates. It exists for tests and `cargo demo`; in
//! production Argo Workflows runs the templates in `workflows/`.
//!
//! It runs the subset of Argo Workflows our templates use (README.md lists it) and rejects
//! anything else when loading, naming the construct and the file.

mod load;
mod runner;
mod tree;
mod workflow;

pub use load::{Catalog, LoadError};
pub use runner::{RetryOptions, RunError, RunRequest, Runner, RunnerConfig, Submit};
pub use workflow::{Event, Node, NodeKind, Phase, Workflow};
