//! Helpers for tests that drive the sandbox with real clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every `kubectl.<version>` next to the `kubectl` on PATH (the Google Cloud SDK ships 1.27 to
/// 1.33 side by side), oldest first; the `kubectl` itself when there are none; empty when no
/// kubectl is installed.
#[must_use]
pub fn kubectl_versions() -> Vec<PathBuf> {
    let Some(kubectl) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    }) else {
        return Vec::new();
    };
    let real = std::fs::canonicalize(&kubectl).unwrap_or(kubectl.clone());
    let dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("kubectl.")?;
            let key: Vec<u32> = version
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((key, e.path()))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return vec![real];
    }
    found.into_iter().map(|(_, p)| p).collect()
}

/// Runs `bin` with `--kubeconfig kubeconfig` and `args`, blocking.
#[must_use]
pub fn kubectl_blocking(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// Runs kubectl on a blocking thread, so the sandbox keeps serving on the test's runtime.
pub async fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let (bin, kubeconfig) = (bin.to_path_buf(), kubeconfig.to_path_buf());
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl_blocking(&bin, &kubeconfig, &refs)
    })
    .await
    .expect("kubectl thread")
}

/// stdout of a successful kubectl run; panics with stderr otherwise.
#[must_use]
pub fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
