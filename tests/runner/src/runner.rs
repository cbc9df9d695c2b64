//! The public entry points: configuration, submission and retry.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng as _;
use tokio::sync::watch;

use crate::engine::{Halt, Run, Target, parallelism};
use crate::load::Catalog;
use crate::model::{Parameter, Scalar, parse_duration};
use crate::scope::Scope;
use crate::workflow::{Event, Phase, Workflow};

/// What `argo submit --from` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submit {
    /// `argo submit --from workflowtemplate/NAME`
    Template(String),
    /// `argo submit --from cronwf/NAME`: its workflowSpec (a workflowTemplateRef + arguments).
    Cron(String),
}

/// Receives every [`Event`] of every run.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

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
    pub observer: Option<Observer>,
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
    /// Workflow name; default `<template or cron name>-<5 lowercase alphanumerics>`.
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
    #[error(
        "{template}: parameter {name:?} has no value and no default; pass it with -p {name}=VALUE"
    )]
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

type Locks = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// Runs workflows from one catalog; cheap to clone (clones share the mutex registry, so two
/// runs holding the same `synchronization` mutex serialise).
#[derive(Clone)]
pub struct Runner {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: Arc<RunnerConfig>,
    locks: Arc<Locks>,
    /// Set by [`Runner::terminate`]; shared by every clone.
    terminated: Arc<watch::Sender<bool>>,
}

fn random_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn random_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    });
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Runner {
    /// # Panics
    /// When `backoff_scale` or `deadline_scale` is negative or not finite (durations are
    /// multiplied by them; `opsteps-run` refuses such values as bad input).
    #[must_use]
    pub fn new(catalog: Catalog, mut config: RunnerConfig) -> Runner {
        // Steps run with their node directory as the working directory, so a relative binary
        // path or work dir (`--bin-dir target/debug`) is made absolute against ours first. A
        // bare command name stays a PATH lookup.
        let absolute = |p: &mut PathBuf| {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a;
            }
        };
        absolute(&mut config.work_dir);
        config
            .binaries
            .values_mut()
            .filter(|p| p.components().count() > 1)
            .for_each(absolute);
        for (name, scale) in [
            ("backoff_scale", config.backoff_scale),
            ("deadline_scale", config.deadline_scale),
        ] {
            assert!(
                scale.is_finite() && scale >= 0.0,
                "RunnerConfig::{name} must be a finite number >= 0, not {scale}"
            );
        }
        Runner {
            catalog: Arc::new(catalog),
            config: Arc::new(config),
            locks: Arc::default(),
            terminated: Arc::new(watch::channel(false).0),
        }
    }

    /// `argo terminate` for every workflow this runner (or a clone) is running, and any it
    /// starts later: running steps get SIGTERM, then SIGKILL after the grace period (30 s ×
    /// `deadline_scale`) and end Failed with `workflow shutdown with strategy:  Terminate`;
    /// nothing new starts (such nodes fail with `Stopped with strategy 'Terminate'`); the exit
    /// handler does not run; the workflow ends Failed with `Stopped with strategy 'Terminate'`.
    /// `run` and `retry` still return the workflow.
    pub fn terminate(&self) {
        self.terminated.send_replace(true);
    }

    /// The catalog this runner executes.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Takes the named mutexes (sorted, so two holders of several never deadlock).
    pub(crate) async fn lock(
        &self,
        namespace: &str,
        names: Vec<String>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut keys: Vec<String> = names
            .into_iter()
            .map(|n| format!("{namespace}/Mutex/{n}"))
            .collect();
        keys.sort();
        keys.dedup();
        let mut guards = Vec::new();
        for k in keys {
            let m = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(k)
                .or_default()
                .clone();
            guards.push(m.lock_owned().await);
        }
        guards
    }

    fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
        names.map(String::as_str).collect::<Vec<_>>().join(", ")
    }

    /// The WorkflowTemplate a submission runs and the arguments the submission adds.
    fn target(
        &self,
        submit: &Submit,
    ) -> Result<(String, Option<String>, Vec<Parameter>), RunError> {
        match submit {
            Submit::Template(name) => {
                if !self.catalog.templates.contains_key(name) {
                    return Err(RunError::UnknownTemplate {
                        name: name.clone(),
                        known: Self::known(self.catalog.templates.keys()),
                    });
                }
                Ok((name.clone(), None, Vec::new()))
            }
            Submit::Cron(name) => {
                let cron = self
                    .catalog
                    .crons
                    .get(name)
                    .ok_or_else(|| RunError::UnknownCron {
                        name: name.clone(),
                        known: Self::known(self.catalog.crons.keys()),
                    })?;
                let ws = &cron.spec.workflow_spec;
                Ok((
                    ws.workflow_template_ref.name.clone(),
                    Some(name.clone()),
                    ws.arguments.parameters.clone(),
                ))
            }
        }
    }

    /// `workflow.parameters`: spec.arguments, then the cron's arguments, then the overrides.
    fn parameters(
        &self,
        wft: &str,
        extra: &[Parameter],
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, RunError> {
        let spec = &self.catalog.templates[wft].spec;
        let declared = &spec.arguments.parameters;
        let mut values: BTreeMap<String, Option<String>> = declared
            .iter()
            .map(|p| (p.name.clone(), p.value.as_ref().map(Scalar::text)))
            .collect();
        let given = extra
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.value.as_ref().map(Scalar::text).unwrap_or_default(),
                )
            })
            .chain(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, value) in given {
            let Some(slot) = values.get_mut(&name) else {
                return Err(RunError::UnknownParameter {
                    template: wft.to_owned(),
                    name,
                    known: Self::known(values.keys()),
                });
            };
            *slot = Some(value);
        }
        let mut out = BTreeMap::new();
        for p in declared {
            let Some(value) = values[&p.name].clone() else {
                return Err(RunError::MissingParameter {
                    template: wft.to_owned(),
                    name: p.name.clone(),
                });
            };
            if let Some(allowed) = p.enum_texts()
                && !allowed.contains(&value)
            {
                return Err(RunError::EnumViolation {
                    template: wft.to_owned(),
                    name: p.name.clone(),
                    value,
                    allowed: allowed.join(", "),
                });
            }
            out.insert(p.name.clone(), value);
        }
        Ok(out)
    }

    /// Runs to completion (exit handler included). Err only for submit-time errors (unknown
    /// template, bad or unknown parameter); node failures are in [`Workflow::phase`].
    pub async fn run(&self, req: RunRequest) -> Result<Workflow, RunError> {
        let (wft, cron, extra) = self.target(&req.submit)?;
        let params = self.parameters(&wft, &extra, &req.parameters)?;
        // `argo submit --from cronwf/NAME` names the workflow after the cron.
        let prefix = cron.as_deref().unwrap_or(&wft);
        let name = req
            .name
            .unwrap_or_else(|| format!("{prefix}-{}", random_suffix(5)));
        let run = Run::new(
            self.clone(),
            name,
            random_uid(),
            params,
            req.answers,
            watch::channel(None).1,
        );
        Ok(self.execute(&wft, cron, run).await)
    }

    /// `argo retry`: same name and uid; Succeeded nodes keep their outputs and do not run
    /// again; Failed/Error nodes (all, or only those whose display name is `node`, with their
    /// ancestors and descendants) run again; the exit handler runs again.
    pub async fn retry(&self, wf: &Workflow, opts: RetryOptions) -> Result<Workflow, RunError> {
        if !wf.phase.is_failure() {
            return Err(RunError::NotRetryable {
                name: wf.name.clone(),
                phase: wf.phase,
            });
        }
        if !self.catalog.templates.contains_key(&wf.template) {
            return Err(RunError::UnknownTemplate {
                name: wf.template.clone(),
                known: Self::known(self.catalog.templates.keys()),
            });
        }
        let reuse = crate::retry::kept_nodes(wf, opts.node.as_deref()).map_err(|node| {
            RunError::NoSuchNode {
                name: wf.name.clone(),
                node,
            }
        })?;
        let mut run = Run::new(
            self.clone(),
            wf.name.clone(),
            wf.uid.clone(),
            wf.parameters.clone(),
            opts.answers,
            watch::channel(None).1,
        );
        run.reuse = reuse;
        Ok(self.execute(&wf.template, wf.cron.clone(), run).await)
    }

    #[allow(clippy::too_many_lines)]
    async fn execute(&self, wft_name: &str, cron: Option<String>, mut run: Run) -> Workflow {
        let started = Instant::now();
        let (wft_name, wft) = self
            .catalog
            .templates
            .get_key_value(wft_name)
            .expect("checked at submit");
        let spec = &wft.spec;
        let name = run.name.clone();
        run.pods = parallelism(spec.parallelism.as_ref());
        let (halt_tx, halt_rx) = watch::channel(None);
        let halt_tx = Arc::new(halt_tx);
        // The exit handler has its own channel: the deadline does not stop it, terminate does.
        let (exit_halt_tx, exit_halt_rx) = watch::channel(None);
        *run.cancel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = halt_rx.clone();
        let halt = |tx: &watch::Sender<Option<Halt>>, h: Halt| {
            tx.send_if_modified(|cur| cur.is_none() && cur.replace(h).is_none());
        };
        let terminator = {
            let mut terminated = self.terminated.subscribe();
            let (tx, exit_tx) = (halt_tx.clone(), exit_halt_tx.clone());
            tokio::spawn(async move {
                if terminated.wait_for(|t| *t).await.is_ok() {
                    halt(&tx, Halt::Terminate);
                    halt(&exit_tx, Halt::Terminate);
                }
            })
        };
        let entry = spec.entrypoint.clone().unwrap_or_default();
        let target = |t: &str| {
            wft.template(t).map(|tmpl| Target {
                wft: wft_name,
                spec: wft,
                tmpl,
            })
        };
        let mutexes: Result<Vec<String>, String> = spec
            .synchronization
            .iter()
            .flat_map(crate::model::Synchronization::names)
            .map(|n| run.subst(&Scope::default(), &n))
            .collect();
        let (mut phase, mut message, guards) = match (mutexes, target(&entry)) {
            (Err(e), _) => (
                Phase::Error,
                Some(format!("synchronization: {e}")),
                Vec::new(),
            ),
            (_, None) => (
                Phase::Error,
                Some(format!("entrypoint {entry:?} not found")),
                Vec::new(),
            ),
            (Ok(names), Some(t)) => {
                let mut halted = halt_rx.clone();
                // Terminated while waiting for a mutex: the root then fails without running.
                let guards = tokio::select! {
                    g = self.lock(&run.namespace, names) => g,
                    _ = halted.wait_for(Option::is_some) => Vec::new(),
                };
                let deadline = spec
                    .active_deadline_seconds
                    .as_ref()
                    .and_then(|d| parse_duration(&d.text()))
                    .map(|d| d.mul_f64(self.config.deadline_scale));
                let timer = deadline.map(|d| {
                    let tx = halt_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        halt(&tx, Halt::Deadline);
                    })
                });
                let args = run.params.clone();
                let out = run
                    .exec_node(None, name.clone(), name.clone(), t, entry.clone(), args)
                    .await;
                if let Some(t) = timer {
                    t.abort();
                }
                let phase = if out.phase.is_failure() {
                    out.phase
                } else {
                    Phase::Succeeded
                };
                let halted = *halt_tx.borrow();
                let phase = if halted.is_some() {
                    Phase::Failed
                } else {
                    phase
                };
                let message = if let Some(h) = halted {
                    Some(h.message().to_owned())
                } else {
                    out.message.filter(|_| phase.is_failure())
                };
                (phase, message, guards)
            }
        };
        let terminated = *halt_tx.borrow() == Some(Halt::Terminate);
        if let Some(on_exit) = spec
            .on_exit
            .as_deref()
            .and_then(|t| target(t).map(|x| (t, x)))
            .filter(|_| !terminated)
        {
            run.set_status(phase);
            *run.cancel
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = exit_halt_rx;
            let path = format!("{name}.onExit");
            let out = run
                .exec_node(
                    None,
                    path.clone(),
                    path,
                    on_exit.1,
                    on_exit.0.to_owned(),
                    BTreeMap::new(),
                )
                .await;
            if phase == Phase::Succeeded && out.phase.is_failure() {
                phase = out.phase;
                message = Some(out.message.unwrap_or_else(|| "exit handler failed".into()));
            }
        }
        if let Some(h) = *exit_halt_tx.borrow() {
            phase = Phase::Failed;
            message = Some(h.message().to_owned());
        }
        drop(guards);
        terminator.abort();
        let wf = Workflow {
            name: name.clone(),
            uid: run.uid.clone(),
            namespace: run.namespace.clone(),
            template: wft_name.clone(),
            cron,
            phase,
            message,
            parameters: run.params.clone(),
            outputs: run.global_outputs(),
            nodes: run.nodes(),
            duration: started.elapsed(),
        };
        run.emit(&Event::WorkflowFinished {
            workflow: name,
            phase,
        });
        wf
    }
}
