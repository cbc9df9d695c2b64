//! Step outputs: the final JSON result on stdout (Argo's `outputs.result`), named files in
//! `--output-dir` (Argo output parameters), and `N/M` progress in `$ARGO_PROGRESS_FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::OutputArgs;

/// Writing an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The name is not a safe file name.
    #[error(
        "output name {name:?} is not a plain file name ([A-Za-z0-9._-], not starting with '.')"
    )]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// Writing the file failed.
    #[error("cannot write output {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serialising the value failed.
    #[error("cannot serialise output {name}")]
    Serialise {
        /// The output name.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Where a step writes what it produced.
#[derive(Clone, Debug)]
pub struct Output {
    dir: Option<PathBuf>,
    progress: Option<PathBuf>,
    termination_log: PathBuf,
}

impl Output {
    /// From the shared flags.
    #[must_use]
    pub fn new(args: &OutputArgs) -> Self {
        Self {
            dir: args.output_dir.clone(),
            progress: args.progress_file.clone(),
            termination_log: args.termination_log.clone(),
        }
    }

    /// The output directory, if one was given.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The termination log path.
    #[must_use]
    pub fn termination_log(&self) -> &Path {
        &self.termination_log
    }

    /// Writes output parameter `name` with `contents` (a no-op without `--output-dir`).
    /// The write is atomic (temp file + rename), so Argo never collects half a file.
    pub fn write(&self, name: &str, contents: &str) -> Result<(), OutputError> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(OutputError::BadName {
                name: name.to_owned(),
            });
        }
        let Some(dir) = &self.dir else { return Ok(()) };
        let path = dir.join(name);
        atomic_write(&path, contents.as_bytes())
            .map_err(|source| OutputError::Write { path, source })
    }

    /// Writes output parameter `name` as JSON.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<(), OutputError> {
        let text =
            serde_json::to_string_pretty(value).map_err(|source| OutputError::Serialise {
                name: name.to_owned(),
                source,
            })?;
        self.write(name, &text)
    }

    /// Records progress `done/total` for Argo (a no-op unless Argo gave a progress file).
    /// Best effort: progress must never fail a step.
    pub fn progress(&self, done: u64, total: u64) {
        if let Some(p) = &self.progress
            && let Err(e) = atomic_write(p, format!("{done}/{total}").as_bytes())
        {
            tracing::debug!(path = %p.display(), error = %e, "cannot write progress");
        }
    }
}

/// Prints the step's result: one line of JSON on stdout, nothing else ever goes there.
pub fn print_result(value: &serde_json::Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(dir: &Path) -> Output {
        Output::new(&OutputArgs {
            output_dir: Some(dir.join("out")),
            progress_file: Some(dir.join("progress")),
            ..OutputArgs::default()
        })
    }

    #[test]
    fn writes_named_outputs_and_creates_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let o = output(d.path());
        o.write("drained-nodes", "a\nb").unwrap();
        o.write_json("summary", &serde_json::json!({"drained": 2}))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("out/drained-nodes")).unwrap(),
            "a\nb"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("out/summary")).unwrap())
                .unwrap();
        assert_eq!(v["drained"], 2);
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(d.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn refuses_unsafe_names() {
        let d = tempfile::tempdir().unwrap();
        let o = output(d.path());
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(
                matches!(o.write(bad, "x"), Err(OutputError::BadName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn progress_is_n_of_m() {
        let d = tempfile::tempdir().unwrap();
        let o = output(d.path());
        o.progress(3, 10);
        assert_eq!(
            std::fs::read_to_string(d.path().join("progress")).unwrap(),
            "3/10"
        );
        o.progress(10, 10);
        assert_eq!(
            std::fs::read_to_string(d.path().join("progress")).unwrap(),
            "10/10"
        );
    }

    #[test]
    fn without_a_directory_outputs_are_skipped() {
        let o = Output::new(&OutputArgs::default());
        o.write("summary", "x").unwrap();
        o.progress(1, 2);
    }
}
