//! The audit trail: one JSON event per mutating API call (who, what, target, result), logged
//! and appended to a JSON-lines file that the workflow keeps as an artifact. Each call is
//! written ahead as a `sent` line before the request, so a step killed with SIGKILL while the
//! server answers still leaves the call in the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::env;

/// Who acted: the Argo workflow and node, from the environment Argo sets.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Actor {
    /// The step binary.
    pub step: String,
    /// `$ARGO_WORKFLOW_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// `$ARGO_WORKFLOW_UID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_uid: Option<String>,
    /// `$ARGO_NODE_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `$ARGO_POD_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl Actor {
    /// The actor for `step`, from Argo's environment variables.
    #[must_use]
    pub fn from_env(step: &str) -> Self {
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Self {
            step: step.to_owned(),
            workflow: var(env::ARGO_WORKFLOW_NAME),
            workflow_uid: var(env::ARGO_WORKFLOW_UID),
            node_id: var(env::ARGO_NODE_ID),
            pod: var(env::ARGO_POD_NAME),
        }
    }
}

/// What was acted on.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Target {
    /// Kind (`Node`, `Pod`, `Addon`, ...).
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl Target {
    /// A cluster-scoped (or non-Kubernetes) target.
    #[must_use]
    pub fn cluster(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: None,
            name: name.to_owned(),
        }
    }

    /// A namespaced target.
    #[must_use]
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }
}

/// How the call ended.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// About to be sent; the call's result follows in a later line. A `sent` line with no
    /// result after it means the step died waiting for the answer: the call may have taken
    /// effect.
    Sent,
    /// Accepted by the server.
    Ok,
    /// Refused or failed.
    Failed,
}

/// One audit event.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditEvent {
    /// RFC 3339 time of the call.
    pub time: String,
    /// Who.
    pub actor: Actor,
    /// The verb: `cordon`, `evict`, `delete`, `patch`, `update-addon`, ...
    pub action: String,
    /// On what.
    pub target: Target,
    /// Whether the call was a dry run (`dryRun=All`).
    pub dry_run: bool,
    /// Accepted or not.
    pub outcome: Outcome,
    /// HTTP status of the answer, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Server message or error, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Records audit events. Cheap to share by reference; writes are serialised.
#[derive(Debug)]
pub struct Auditor {
    actor: Actor,
    path: Option<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
    events: Mutex<Vec<AuditEvent>>,
}

impl Auditor {
    /// An auditor for `actor` appending to `path` (created with its parent directories).
    pub fn new(actor: Actor, path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => {
                if let Some(parent) = p.parent().filter(|x| !x.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                )
            }
            None => None,
        };
        Ok(Self {
            actor,
            path: path.map(Path::to_path_buf),
            file: Mutex::new(file),
            events: Mutex::new(Vec::new()),
        })
    }

    /// The audit file, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes `action` on `target` ahead of the request (outcome `sent`), so a call the step
    /// never lived to record is still in the file. File only: the result is what is logged and
    /// kept in [`Self::events`].
    pub fn sent(&self, action: &str, target: &Target, dry_run: bool) {
        self.write(&AuditEvent {
            time: jiff::Timestamp::now().to_string(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            target: target.clone(),
            dry_run,
            outcome: Outcome::Sent,
            http_status: None,
            message: None,
        });
    }

    fn write(&self, event: &AuditEvent) {
        if let Some(f) = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            // One write of line and newline: a SIGKILL between two writes would leave a line
            // without its newline, and the re-run's first append would be glued onto it.
            let mut line = serde_json::to_string(event).unwrap_or_default();
            line.push('\n');
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                tracing::warn!(error = %e, "cannot write audit event");
            }
        }
    }

    /// Records one mutating call. Logged at info; written as one JSON line. A failed write is
    /// logged, not fatal: losing an audit line must not leave a half-drained node.
    pub fn record(
        &self,
        action: &str,
        target: Target,
        dry_run: bool,
        result: Result<u16, (Option<u16>, String)>,
    ) {
        let (outcome, http_status, message) = match result {
            Ok(code) => (Outcome::Ok, Some(code), None),
            Err((code, msg)) => (Outcome::Failed, code, Some(msg)),
        };
        let event = AuditEvent {
            time: jiff::Timestamp::now().to_string(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            target,
            dry_run,
            outcome,
            http_status,
            message,
        };
        tracing::info!(
            audit = true,
            action = %event.action,
            kind = %event.target.kind,
            namespace = event.target.namespace.as_deref().unwrap_or(""),
            name = %event.target.name,
            dry_run,
            outcome = ?event.outcome,
            "audit"
        );
        self.write(&event);
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// Every event recorded so far (for the step's result and tests).
    #[must_use]
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_mutation_with_the_actor() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/audit.jsonl");
        let actor = Actor {
            step: "drain-node".into(),
            workflow: Some("upgrade-abc".into()),
            workflow_uid: Some("uid-1".into()),
            node_id: Some("upgrade-abc-123".into()),
            pod: None,
        };
        let a = Auditor::new(actor.clone(), Some(&path)).unwrap();
        a.record(
            "cordon",
            Target::cluster("Node", "ip-10-0-0-1"),
            false,
            Ok(200),
        );
        a.record(
            "evict",
            Target::namespaced("Pod", "web", "web-1"),
            true,
            Err((Some(429), "Cannot evict pod".into())),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "cordon");
        assert_eq!(lines[0]["actor"]["workflow"], "upgrade-abc");
        assert_eq!(lines[0]["actor"]["workflow_uid"], "uid-1");
        assert_eq!(lines[0]["actor"]["node_id"], "upgrade-abc-123");
        assert_eq!(
            lines[0]["target"],
            serde_json::json!({"kind": "Node", "name": "ip-10-0-0-1"})
        );
        assert_eq!(lines[0]["outcome"], "ok");
        assert_eq!(lines[1]["target"]["namespace"], "web");
        assert_eq!(lines[1]["dry_run"], true);
        assert_eq!(lines[1]["outcome"], "failed");
        assert_eq!(lines[1]["http_status"], 429);
        assert!(
            lines[1]["time"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        assert_eq!(a.events().len(), 2);
        assert_eq!(a.events()[0].actor, actor);

        // A second auditor (a retried step) appends instead of truncating.
        let b = Auditor::new(actor, Some(&path)).unwrap();
        b.record(
            "uncordon",
            Target::cluster("Node", "ip-10-0-0-1"),
            false,
            Ok(200),
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_call_is_written_ahead_so_a_killed_step_still_leaves_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let a = Auditor::new(Actor::from_env("drain-node"), Some(&path)).unwrap();
        let target = Target::namespaced("Pod", "web", "web-1");
        a.sent("evict", &target, false);
        // The step dies here: the file already names the call.
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["outcome"], "sent");
        assert_eq!(line["action"], "evict");
        assert_eq!(line["target"]["name"], "web-1");
        assert!(line.get("http_status").is_none());
        // The result follows; only results are events.
        a.record("evict", target, false, Ok(201));
        let outcomes: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].to_string())
            .collect();
        assert_eq!(outcomes, ["\"sent\"", "\"ok\""]);
        assert_eq!(a.events().len(), 1);
        assert_eq!(a.events()[0].outcome, Outcome::Ok);
    }
}
