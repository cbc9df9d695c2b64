//! Strict offline validation of `workflows/`.
//!
//! Every document is checked against the stored Argo Workflows schemas (4.1.2 and 3.7.18) with
//! every object closed and IntOrString widened, Kubernetes objects against the 1.35 OpenAPI
//! documents, and then against opsteps' own rules ([`Rule`]). Step flags are checked against
//! what each step binary's `--help` says it accepts, and ClusterRole rules against the RBAC table
//! in the step's README. `just validate-workflows [FILES]` runs the same checks as the tests.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod argo;
pub mod flags;
pub mod load;
pub mod rbac;
pub mod schema;
pub mod tags;

pub use load::{Doc, LoadError, load_dir, load_file, load_str};

/// Which check produced a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The document is not valid against a stored schema (closed objects).
    Schema,
    /// A `templateRef`, `workflowTemplateRef` or local `template` does not resolve.
    TemplateRef,
    /// A `{{…}}` tag does not resolve in its scope, or uses an expression.
    Tag,
    /// A declared parameter has no description.
    Description,
    /// An enum does not contain its default (or a value passed to it).
    Enum,
    /// A leaf template lacks a deadline above the step's own `--timeout`.
    Deadline,
    /// A retry strategy is missing, or retries on anything but exit 3.
    Retry,
    /// A flag the template passes is not accepted by the step binary.
    Flag,
    /// A ClusterRole/Role rule is not used by the step, or a needed one is missing.
    Rbac,
    /// Pod security: ServiceAccount, securityContext, resources, pinned image.
    Security,
    /// An output read from a file has no default (absent is not empty since Argo 3.7.16).
    Output,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Schema => "schema",
            Self::TemplateRef => "template-ref",
            Self::Tag => "tag",
            Self::Description => "description",
            Self::Enum => "enum",
            Self::Deadline => "deadline",
            Self::Retry => "retry",
            Self::Flag => "flag",
            Self::Rbac => "rbac",
            Self::Security => "security",
            Self::Output => "output",
        })
    }
}

/// One problem in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// File the document came from.
    pub file: PathBuf,
    /// `Kind/name` of the document.
    pub object: String,
    /// The rule that failed.
    pub rule: Rule,
    /// What is wrong, where, and what is accepted.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: [{}] {}",
            self.file.display(),
            self.object,
            self.rule,
            self.message
        )
    }
}

/// Where the checks find what they compare against.
#[derive(Clone, Debug)]
pub struct Config {
    /// `../shared` (schemas are read from `<shared>/schemas`).
    pub shared: PathBuf,
    /// Directories searched, in order, for the step binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// Directories searched, in order, for `<step>/README.md`.
    pub steps_dirs: Vec<PathBuf>,
}

/// The repository root (this crate sits in `tests/workflows`).
#[must_use]
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Config {
    /// From the environment: `$OPSTEPS_SHARED_DIR` (default `../shared` beside the checkout),
    /// `$OPSTEPS_STEP_BIN_DIRS` (colon-separated; default: the directory of the running
    /// executable and its parent, i.e. `target/debug`), `$OPSTEPS_STEPS_DIRS` (default
    /// `steps/`).
    #[must_use]
    pub fn from_env() -> Self {
        let root = repo_root();
        let shared = std::env::var_os("OPSTEPS_SHARED_DIR")
            .map_or_else(|| root.join("../shared"), PathBuf::from);
        let split = |v: std::ffi::OsString| std::env::split_paths(&v).collect::<Vec<_>>();
        let bin_dirs = std::env::var_os("OPSTEPS_STEP_BIN_DIRS").map_or_else(
            || {
                let exe = std::env::current_exe().unwrap_or_default();
                exe.ancestors()
                    .skip(1)
                    .take(2)
                    .map(Path::to_path_buf)
                    .collect()
            },
            split,
        );
        let steps_dirs =
            std::env::var_os("OPSTEPS_STEPS_DIRS").map_or_else(|| vec![root.join("steps")], split);
        Self {
            shared,
            bin_dirs,
            steps_dirs,
        }
    }
}

/// Setting up the checker failed (a schema is missing or unreadable).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A schema file could not be read or parsed.
    #[error(
        "cannot read schema {path} (set OPSTEPS_SHARED_DIR to the shared/ directory holding schemas/)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not JSON.
    #[error("schema {path} is not JSON")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The checker: compiled schemas plus what it learned from the step binaries and READMEs.
pub struct Checker {
    schemas: schema::Schemas,
    steps: flags::Steps,
    readmes: rbac::Readmes,
}

impl Checker {
    /// Loads and prepares every schema.
    pub fn new(config: &Config) -> Result<Self, SetupError> {
        Ok(Self {
            schemas: schema::Schemas::load(&config.shared.join("schemas"))?,
            steps: flags::Steps::new(config.bin_dirs.clone()),
            readmes: rbac::Readmes::new(config.steps_dirs.clone()),
        })
    }

    /// Checks `targets`; references resolve against `targets` plus `context` (the rest of
    /// `workflows/`, so one file can be checked alone).
    #[must_use]
    pub fn check(&self, targets: &[Doc], context: &[Doc]) -> Vec<Finding> {
        let mut all: Vec<&Doc> = targets.iter().collect();
        all.extend(context.iter().filter(|c| {
            !targets
                .iter()
                .any(|t| t.kind() == c.kind() && t.name() == c.name())
        }));
        let mut out = Vec::new();
        for doc in targets {
            out.extend(self.schemas.check(doc));
            if doc.is_argo() {
                out.extend(argo::check(doc, &all, &self.steps));
            }
        }
        out.extend(rbac::check(targets, &all, &self.readmes));
        out
    }
}
