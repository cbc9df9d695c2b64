//! The local runner for opsteps' WorkflowTemplates. It exists for tests and `cargo demo`; in
//! production Argo Workflows runs the templates in `workflows/`.
//!
//! The pipelines are in `workflows/`; the runner that drives them has not landed, and until it
//! does [`DEMO_STATUS`] says so.

/// What `cargo demo` prints while the demo pipeline has not landed.
pub const DEMO_STATUS: &str = "\
opsteps demo: not there yet.

`cargo demo` will run the blue/green node-group upgrade pipeline from workflows/ with the local
runner against the sandbox, showing progress and the final report. The pipelines and their
offline validation are in workflows/ (`just validate-workflows`); the local runner that drives
them arrives with the runner issue.

What works today: `cargo test` (the five steps against the sandbox, the sandbox itself, and the
workflows' validation).";
