//! End-to-end harness for opsteps' pipelines: the sandbox with RBAC enforced from
//! `workflows/rbac/`, one EKS identity per step, the local runner (`opsteps_runner`) running
//! the step binaries, and the checks every run ends with. The tests are in `tests/`; the
//! `demo` binary (`cargo demo`) drives the same harness.

pub mod binaries;
pub mod harness;
pub mod rbac;

pub use harness::{Harness, Setup};

/// The workspace root (this crate is `tests/e2e`).
#[must_use]
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(std::path::Path::parent)
        .map_or_else(|| here.to_path_buf(), std::path::Path::to_path_buf)
}
