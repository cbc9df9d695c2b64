//! The local runner for opsteps' WorkflowTemplates. It exists for tests and `cargo demo`; in
//! production Argo Workflows runs the templates in `workflows/`.
//!
//! The runner and the demo pipeline arrive with the workflows issue; until then [`DEMO_STATUS`]
//! says so.

/// What `cargo demo` prints while the demo pipeline has not landed.
pub const DEMO_STATUS: &str = "\
opsteps demo: not there yet.

`cargo demo` will run the blue/green node-group upgrade pipeline from workflows/ with the local
runner against the sandbox, showing progress and the final report. It arrives with the
workflows issue, after drain-node, bump-addon and verify-cluster.

What works today: `cargo test` (the library, the step binaries' command lines, the sandbox).";
