//! The public entry points: configuration, submission and retry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::load::Catalog;
use crate::workflow::{Event, Workflow};

/// What `argo submit --from` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submit {
    /// `argo submit --from workflowtemplate/NAME`
    Template(String),
    /// `argo submit --from cronwf/NAME`: its workflowSpec (a workflowTemplateRef + arguments).
    Cron(String),
}

/// How container templates map to local processes, and where runs keep their files.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Container `command[0]` (e.g. "drain-node") → local binary. The image must be
    /// `<anything>/<command[0]>:<tag>`; an unmapped command is an Error node naming it.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Added to every container process (after env_clear; PATH and HOME=<node dir> are set).
    pub env: Vec<(String, String)>,
    /// Per container command[0]: the step's own identity (e.g. its AWS access key).
    pub step_env: BTreeMap<String, Vec<(String, String)>>,
    /// `workflow.namespace`, and what `fieldRef: metadata.namespace` resolves to.
    pub namespace: String,
    /// `<work_dir>/<workflow name>/<node id>/` holds each pod's mounts, stdout, stderr,
    /// termination-log and progress.
    pub work_dir: PathBuf,
    /// Multiplies retry backoff durations (0.0 in tests: retry at once).
    pub backoff_scale: f64,
    /// Multiplies activeDeadlineSeconds (1.0 = as written).
    pub deadline_scale: f64,
    /// Called for every event, from any thread.
    pub observer: Option<Arc<dyn Fn(&Event) + Send + Sync>>,
}

impl RunnerConfig {
    /// Defaults: namespace "argo", scales 1.0, no binaries.
    #[must_use]
    pub fn new(work_dir: PathBuf) -> Self {
        RunnerConfig {
            binaries: BTreeMap::new(),
            env: Vec::new(),
            step_env: BTreeMap::new(),
            namespace: "argo".to_owned(),
            work_dir,
            backoff_scale: 1.0,
            deadline_scale: 1.0,
            observer: None,
        }
    }
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("binaries", &self.binaries)
            .field("namespace", &self.namespace)
            .field("work_dir", &self.work_dir)
            .field("backoff_scale", &self.backoff_scale)
            .field("deadline_scale", &self.deadline_scale)
            .finish_non_exhaustive()
    }
}

/// One submission.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub submit: Submit,
    /// `-p name=value` overrides of spec.arguments (an enum violation or unknown name is a
    /// RunError).
    pub parameters: BTreeMap<String, String>,
    /// Answers for suspend nodes, by display name → output parameter → value.
    pub answers: BTreeMap<String, BTreeMap<String, String>>,
    /// Workflow name; default `<template name>-<5 lowercase alphanumerics>`.
    pub name: Option<String>,
}

impl RunRequest {
    #[must_use]
    pub fn new(submit: Submit) -> Self {
        RunRequest {
            submit,
            parameters: BTreeMap::new(),
            answers: BTreeMap::new(),
            name: None,
        }
    }

    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    #[must_use]
    pub fn answer(
        mut self,
        node: impl Into<String>,
        param: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.answers
            .entry(node.into())
            .or_default()
            .insert(param.into(), value.into());
        self
    }
}

/// `argo retry` options.
#[derive(Clone, Debug, Default)]
pub struct RetryOptions {
    /// Only this failed node (by display name) and its ancestors run again.
    pub node: Option<String>,
    pub answers: BTreeMap<String, BTreeMap<String, String>>,
}

/// A submission Argo would refuse.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no WorkflowTemplate named {name:?} (loaded: {known})")]
    UnknownTemplate { name: String, known: String },
    #[error("no CronWorkflow named {name:?} (loaded: {known})")]
    UnknownCron { name: String, known: String },
    #[error("{template}: no parameter named {name:?} (parameters: {known})")]
    UnknownParameter {
        template: String,
        name: String,
        known: String,
    },
    #[error("{template}: parameter {name:?} is {value:?}, not one of its enum values: {allowed}")]
    EnumViolation {
        template: String,
        name: String,
        value: String,
        allowed: String,
    },
    #[error("{template}: parameter {name:?} has no value and no default; pass it with -p {name}=VALUE")]
    MissingParameter { template: String, name: String },
    #[error("workflow {name:?} is {phase}; only Failed or Error workflows can be retried")]
    NotRetryable { name: String, phase: crate::Phase },
    #[error("workflow {name:?} has no Failed or Error node named {node:?}")]
    NoSuchNode { name: String, node: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs workflows from one catalog; cheap to clone (clones share the mutex registry).
#[derive(Clone)]
pub struct Runner {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: Arc<RunnerConfig>,
}

impl Runner {
    #[must_use]
    pub fn new(catalog: Catalog, config: RunnerConfig) -> Runner {
        Runner {
            catalog: Arc::new(catalog),
            config: Arc::new(config),
        }
    }

    /// Runs to completion (exit handler included). Err only for submit-time errors; node
    /// failures are in [`Workflow::phase`].
    pub async fn run(&self, req: RunRequest) -> Result<Workflow, RunError> {
        let _ = req;
        todo!()
    }

    /// `argo retry`: same name and uid; Succeeded nodes keep their outputs and do not run
    /// again; Failed/Error nodes (all, or only those named `node` and their ancestors) run
    /// again; the exit handler runs again.
    pub async fn retry(&self, wf: &Workflow, opts: RetryOptions) -> Result<Workflow, RunError> {
        let _ = (wf, opts);
        todo!()
    }
}
