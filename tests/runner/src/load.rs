//! Loading WorkflowTemplates and CronWorkflows, rejecting constructs outside the subset, and
//! checking that every reference resolves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{CronSpec, Spec, Template};
use crate::subset;

/// A loaded WorkflowTemplate.
#[derive(Debug)]
pub(crate) struct WfTemplate {
    pub path: PathBuf,
    pub spec: Spec,
}

impl WfTemplate {
    pub(crate) fn template(&self, name: &str) -> Option<&Template> {
        self.spec.templates.iter().find(|t| t.name == name)
    }
}

/// A loaded CronWorkflow.
#[derive(Debug)]
pub(crate) struct Cron {
    pub path: PathBuf,
    pub spec: CronSpec,
}

/// Every WorkflowTemplate and CronWorkflow under a directory (recursive `*.yaml`/`*.yml`).
/// Objects of other kinds (the RBAC files) are ignored.
#[derive(Debug, Default)]
pub struct Catalog {
    pub(crate) templates: BTreeMap<String, WfTemplate>,
    pub(crate) crons: BTreeMap<String, Cron>,
}

/// A file that cannot be loaded, or a construct outside the runner's subset.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error(
        "{path}: {object}{}: {construct} is outside the local runner's subset (supported: {supported})",
        template.as_ref().map(|t| format!(", template {t:?}")).unwrap_or_default()
    )]
    Subset {
        path: PathBuf,
        object: String,
        template: Option<String>,
        construct: String,
        supported: String,
    },
    #[error("{path}: {object}: {message}")]
    Invalid {
        path: PathBuf,
        object: String,
        message: String,
    },
    #[error("{object} is defined twice: in {first} and {second}")]
    Duplicate {
        object: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let read = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

impl Catalog {
    /// Loads every WorkflowTemplate and CronWorkflow under `dir`.
    pub fn load_dir(dir: &Path) -> Result<Catalog, LoadError> {
        let mut files = Vec::new();
        yaml_files(dir, &mut files)?;
        files.sort();
        Catalog::load_files(&files)
    }

    /// Loads these files.
    pub fn load_files(files: &[PathBuf]) -> Result<Catalog, LoadError> {
        let mut cat = Catalog::default();
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            let docs: Vec<Value> =
                serde_saphyr::from_str_multiple(&text).map_err(|e| LoadError::Yaml {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            for doc in docs.into_iter().filter(|d| !d.is_null()) {
                cat.add(path, &doc)?;
            }
        }
        cat.check_references()?;
        Ok(cat)
    }

    fn add(&mut self, path: &Path, doc: &Value) -> Result<(), LoadError> {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !api.starts_with("argoproj.io/") {
            return Ok(());
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let object = format!("{kind} {name:?}");
        let invalid = |message: String| LoadError::Invalid {
            path: path.to_owned(),
            object: object.clone(),
            message,
        };
        if name.is_empty() {
            return Err(invalid("metadata.name is missing".into()));
        }
        let spec = &doc["spec"];
        let violation = |v: subset::Violation| LoadError::Subset {
            path: path.to_owned(),
            object: object.clone(),
            template: v.template,
            construct: v.construct,
            supported: v.supported,
        };
        let duplicate = |first: &Path| LoadError::Duplicate {
            object: object.clone(),
            first: first.to_owned(),
            second: path.to_owned(),
        };
        match kind {
            "WorkflowTemplate" => {
                subset::check_workflow_template(spec).map_err(violation)?;
                let spec: Spec =
                    serde_json::from_value(spec.clone()).map_err(|e| invalid(e.to_string()))?;
                if let Some(old) = self.templates.get(&name) {
                    return Err(duplicate(&old.path));
                }
                self.templates.insert(
                    name,
                    WfTemplate {
                        path: path.to_owned(),
                        spec,
                    },
                );
            }
            "CronWorkflow" => {
                subset::check_cron(spec).map_err(violation)?;
                let spec: CronSpec =
                    serde_json::from_value(spec.clone()).map_err(|e| invalid(e.to_string()))?;
                if let Some(old) = self.crons.get(&name) {
                    return Err(duplicate(&old.path));
                }
                self.crons.insert(
                    name,
                    Cron {
                        path: path.to_owned(),
                        spec,
                    },
                );
            }
            other => {
                return Err(LoadError::Subset {
                    path: path.to_owned(),
                    object,
                    template: None,
                    construct: format!("kind {other}"),
                    supported: "WorkflowTemplate, CronWorkflow".into(),
                });
            }
        }
        Ok(())
    }

    /// Every entrypoint, onExit, template and templateRef resolves.
    fn check_references(&self) -> Result<(), LoadError> {
        for (name, wft) in &self.templates {
            let invalid = |message: String| LoadError::Invalid {
                path: wft.path.clone(),
                object: format!("WorkflowTemplate {name:?}"),
                message,
            };
            for (what, t) in [
                ("entrypoint", &wft.spec.entrypoint),
                ("onExit", &wft.spec.on_exit),
            ] {
                if let Some(t) = t
                    && wft.template(t).is_none()
                {
                    return Err(invalid(format!(
                        "{what} {t:?} names no template in this file"
                    )));
                }
            }
            for t in &wft.spec.templates {
                let steps = t.steps.iter().flatten().flatten();
                let tasks = t.dag.iter().flat_map(|d| &d.tasks);
                for s in steps.chain(tasks) {
                    let ok = match (&s.template, &s.template_ref) {
                        (Some(local), _) => wft.template(local).is_some(),
                        (None, Some(r)) => self
                            .templates
                            .get(&r.name)
                            .is_some_and(|w| w.template(&r.template).is_some()),
                        (None, None) => false,
                    };
                    if !ok {
                        return Err(invalid(format!(
                            "template {:?}, step {:?}: its template{} does not resolve",
                            t.name,
                            s.name,
                            s.template_ref
                                .as_ref()
                                .map(|r| format!("Ref {}/{}", r.name, r.template))
                                .unwrap_or_default()
                        )));
                    }
                }
            }
        }
        for (name, cron) in &self.crons {
            let target = &cron.spec.workflow_spec.workflow_template_ref.name;
            if !self.templates.contains_key(target) {
                return Err(LoadError::Invalid {
                    path: cron.path.clone(),
                    object: format!("CronWorkflow {name:?}"),
                    message: format!("workflowTemplateRef {target:?} names no WorkflowTemplate"),
                });
            }
        }
        Ok(())
    }

    /// WorkflowTemplate names.
    #[must_use]
    pub fn template_names(&self) -> Vec<String> {
        self.templates.keys().cloned().collect()
    }

    /// Every container `command[0]` the WorkflowTemplates run (what
    /// [`crate::RunnerConfig::binaries`] must map).
    #[must_use]
    pub fn commands(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .templates
            .values()
            .flat_map(|w| &w.spec.templates)
            .filter_map(|t| t.container.as_ref()?.command.first().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// CronWorkflow names.
    #[must_use]
    pub fn cron_names(&self) -> Vec<String> {
        self.crons.keys().cloned().collect()
    }
}
