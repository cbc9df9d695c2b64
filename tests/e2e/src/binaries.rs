//! The five step binaries from this workspace's target directory, built when missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The steps, in the order the pipelines meet them.
pub const STEPS: [&str; 5] = [
    "verify-cluster",
    "bump-addon",
    "drain-node",
    "evict-old-pods",
    "collect-gpu-stats",
];

/// The directory holding the workspace's debug binaries: the directory of the running
/// executable (`target/debug/demo`) or its parent (`target/debug/deps/<test>`).
#[must_use]
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

fn missing(dir: &Path) -> Vec<&'static str> {
    STEPS
        .iter()
        .copied()
        .filter(|s| !dir.join(s).is_file())
        .collect()
}

/// `cargo build --locked -p opsteps-e2e -p <step>... --bin <step>...` for `steps` (all five
/// when `always`, else only the missing ones), with the `CARGO` the process was started by (else
/// `cargo` on PATH). Selecting `opsteps-e2e` too resolves the dependencies' features as for the
/// demo binary itself (`cargo demo`), so the steps reuse its build of them: built alone, the steps
/// select fewer features and recompile much of the dependency graph (7 minutes on a cold CI run).
pub fn build(dir: &Path, always: bool) -> Result<()> {
    let steps: Vec<&str> = if always { STEPS.to_vec() } else { missing(dir) };
    if steps.is_empty() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(crate::workspace_root()).args([
        "build",
        "--locked",
        "--quiet",
        "-p",
        "opsteps-e2e",
    ]);
    for s in &steps {
        cmd.args(["-p", s, "--bin", s]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", steps.join(", "));
    }
    Ok(())
}

/// Container `command[0]` → binary, for `RunnerConfig::binaries`. Builds the missing ones first.
pub fn step_binaries() -> Result<BTreeMap<String, PathBuf>> {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let dir = bin_dir();
    {
        let mut built = BUILT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*built {
            build(&dir, false)?;
            *built = true;
        }
    }
    let left = missing(&dir);
    if !left.is_empty() {
        bail!(
            "step binaries missing in {}: {}",
            dir.display(),
            left.join(", ")
        );
    }
    Ok(STEPS
        .iter()
        .map(|s| ((*s).to_owned(), dir.join(s)))
        .collect())
}
