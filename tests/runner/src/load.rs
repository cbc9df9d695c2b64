//! Loading WorkflowTemplates and CronWorkflows, and rejecting constructs outside the subset.

use std::path::{Path, PathBuf};

/// Every WorkflowTemplate and CronWorkflow under a directory.
#[derive(Debug, Default)]
pub struct Catalog {}

/// A file that cannot be loaded, or a construct outside the runner's subset.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Catalog {
    pub fn load_dir(dir: &Path) -> Result<Catalog, LoadError> {
        let _ = dir;
        todo!()
    }

    pub fn load_files(files: &[PathBuf]) -> Result<Catalog, LoadError> {
        let _ = files;
        todo!()
    }

    /// WorkflowTemplate names.
    #[must_use]
    pub fn template_names(&self) -> Vec<String> {
        todo!()
    }

    /// CronWorkflow names.
    #[must_use]
    pub fn cron_names(&self) -> Vec<String> {
        todo!()
    }
}
