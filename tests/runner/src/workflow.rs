//! A run's record: the nodes as `argo get` shows them, and the events a run emits.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A node's or a workflow's phase, with Argo's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Error,
    Skipped,
    Omitted,
}

impl Phase {
    /// Succeeded, Skipped or Omitted: nothing went wrong.
    #[must_use]
    pub fn is_ok(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Skipped | Phase::Omitted)
    }

    /// Failed or Error.
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Phase::Failed | Phase::Error)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
            Phase::Skipped => "Skipped",
            Phase::Omitted => "Omitted",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Argo's node types (`Task` is a DAG task's fan-out group, Argo's TaskGroup).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    Steps,
    StepGroup,
    Dag,
    Task,
    Pod,
    Suspend,
    Retry,
    Skipped,
}

/// A finished (or reused) run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    /// The WorkflowTemplate submitted.
    pub template: String,
    /// The CronWorkflow submitted, if any (`retry` resubmits the same arguments).
    #[serde(default)]
    pub cron: Option<String>,
    pub phase: Phase,
    pub message: Option<String>,
    /// Resolved `workflow.parameters`.
    pub parameters: BTreeMap<String, String>,
    /// Output parameters exported with `globalName` (`workflow.outputs.parameters.*`).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Creation order; `nodes[0]` is the root (the exit handler's node is a second root).
    pub nodes: Vec<Node>,
    pub duration: Duration,
}

/// One node of the run, as Argo's status records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    /// Stable per node path within the workflow (a retry keeps it).
    pub id: String,
    /// "verify-green", "drain-blue(0:blue-0)", "drain-blue(0:blue-0)(1)" for attempt 2.
    pub display_name: String,
    /// "drain-node/drain-node" for a templateRef, else the local template name.
    pub template: String,
    pub kind: NodeKind,
    pub phase: Phase,
    pub message: Option<String>,
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    /// stdout (its last 256 kB, as in Argo), for `outputs.result`.
    pub result: Option<String>,
    /// 137 after SIGKILL, as Kubernetes reports it.
    pub exit_code: Option<i32>,
    /// Pod nodes: the node directory.
    pub dir: Option<PathBuf>,
    /// Last "N/M" read from ARGO_PROGRESS_FILE.
    pub progress: Option<String>,
    pub duration: Duration,
    /// Pod nodes: the pod name (`ARGO_POD_NAME`).
    #[serde(default)]
    pub pod_name: Option<String>,
    /// When the node started, in Unix milliseconds (`argo get` orders siblings by start second).
    #[serde(default)]
    pub started_ms: Option<u64>,
}

impl Workflow {
    /// The workflow as `argo get` prints it.
    #[must_use]
    pub fn tree(&self) -> String {
        crate::tree::render(self)
    }

    /// The first node with this display name.
    #[must_use]
    pub fn node(&self, display_name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.display_name == display_name)
    }

    /// Nodes whose display name starts with `prefix`.
    pub fn nodes_named<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Node> {
        self.nodes
            .iter()
            .filter(move |n| n.display_name.starts_with(prefix))
    }

    /// Container nodes, every attempt.
    pub fn pods(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Pod)
    }

    /// The node with this id.
    #[must_use]
    pub fn node_by_id(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Writes the workflow as JSON.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(path, text)
    }

    /// Reads a workflow written by [`Workflow::save`].
    pub fn load(path: &Path) -> io::Result<Workflow> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// What a run reports while it runs (to [`crate::RunnerConfig::observer`]).
#[derive(Clone, Debug)]
pub enum Event {
    NodeStarted {
        workflow: String,
        id: String,
        display_name: String,
        template: String,
        kind: NodeKind,
    },
    /// A container process was spawned (tests SIGKILL it by pid).
    ProcessStarted {
        workflow: String,
        id: String,
        display_name: String,
        pid: u32,
        dir: PathBuf,
        command: String,
    },
    /// ARGO_PROGRESS_FILE changed ("3/10").
    Progress {
        workflow: String,
        id: String,
        display_name: String,
        progress: String,
    },
    NodeFinished {
        workflow: String,
        id: String,
        display_name: String,
        phase: Phase,
        exit_code: Option<i32>,
        message: Option<String>,
        duration: Duration,
    },
    WorkflowFinished {
        workflow: String,
        phase: Phase,
    },
}
