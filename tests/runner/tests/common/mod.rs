//! Shared set-up: the fixtures catalog with every command mapped to `fake-step`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use opsteps_runner::{Catalog, Event, RunRequest, Runner, RunnerConfig, Submit, Workflow};

pub fn fake_step() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fake-step"))
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn real_workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

/// A config with every command of `catalog` mapped to fake-step, backoff off.
pub fn config(catalog: &Catalog, work: &Path) -> RunnerConfig {
    let mut c = RunnerConfig::new(work.to_owned());
    for cmd in catalog.commands() {
        c.binaries.insert(cmd, fake_step());
    }
    c.backoff_scale = 0.0;
    c
}

pub struct Harness {
    pub runner: Runner,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub work: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut RunnerConfig)) -> Harness {
        let catalog = Catalog::load_dir(&fixtures()).expect("fixtures load");
        let work = tempfile::tempdir().unwrap();
        let mut c = config(&catalog, work.path());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        c.observer = Some(Arc::new(move |e: &Event| {
            sink.lock().unwrap().push(e.clone());
        }));
        tweak(&mut c);
        Harness {
            runner: Runner::new(catalog, c),
            events,
            work,
        }
    }

    pub async fn run(&self, req: RunRequest) -> Workflow {
        self.runner.run(req).await.expect("submitted")
    }

    pub async fn run_template(&self, name: &str, params: &[(&str, &str)]) -> Workflow {
        let mut req = RunRequest::new(Submit::Template(name.to_owned()));
        for (k, v) in params {
            req = req.param(*k, *v);
        }
        self.run(req).await
    }

    pub fn path(&self, name: &str) -> String {
        self.work.path().join(name).to_string_lossy().into_owned()
    }
}

/// The output parameter `out` of the first node named `name`.
pub fn out<'a>(wf: &'a Workflow, name: &str) -> &'a str {
    let n = wf
        .node(name)
        .unwrap_or_else(|| panic!("no node {name}:\n{}", wf.tree()));
    n.outputs.get("out").map_or_else(
        || panic!("node {name} has no output out:\n{}", wf.tree()),
        String::as_str,
    )
}

pub fn count(path: &str) -> u32 {
    std::fs::read_to_string(path).map_or(0, |t| t.trim().parse().unwrap())
}
