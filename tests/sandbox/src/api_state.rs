//! State owned by the API layer: who may call (tokens), what happened (request log, invariant
//! violations), what should go wrong (faults), and what the server claims to be (/version).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::faults::Faults;
use crate::invariants::Violation;
use crate::requestlog::RequestLog;

/// An authenticated client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name (`system:admin`, `opsteps-drain`, ...).
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// The client runs in dry-run mode: any mutating request without `dryRun=All` is refused
    /// with 400 and recorded as a violation.
    pub dry_run: bool,
}

/// API-layer state.
pub struct ApiState {
    /// Bearer token → identity.
    pub tokens: HashMap<String, Identity>,
    /// Every request served.
    pub log: RequestLog,
    /// Injected faults.
    pub faults: Faults,
    /// Invariant violations seen so far.
    pub violations: Vec<Violation>,
    /// Kubernetes minor version reported by `/version` (issue 4 changes it).
    pub version_minor: u32,
    /// Patch version reported by `/version`.
    pub version_patch: u32,
    /// Identity of requests without a bearer token. Plain-HTTP sandboxes set the admin here, as
    /// the apiserver's old insecure port did, because kubectl sends no token over plain HTTP.
    pub anonymous: Option<Identity>,
    /// Real-time interval between watch bookmarks when a client asks for them.
    pub bookmark_interval: Duration,
    /// Authorize requests with RBAC (`crate::rbac`); off by default, on per scenario
    /// (`rbac: true`), so tests of other behaviour need no bindings.
    pub rbac: bool,
    token_seq: u64,
}

impl Default for ApiState {
    fn default() -> Self {
        Self {
            tokens: HashMap::new(),
            anonymous: None,
            log: RequestLog::default(),
            faults: Faults::default(),
            violations: Vec::new(),
            version_minor: 33,
            version_patch: 4,
            // The apiserver's cacher sends one roughly every minute, and 2 s before a watch's
            // timeout (api/watch.rs).
            bookmark_interval: Duration::from_mins(1),
            rbac: false,
            token_seq: 0,
        }
    }
}

impl ApiState {
    /// Registers `identity` under a fresh bearer token and returns the token.
    pub fn issue_token(&mut self, identity: Identity) -> String {
        self.token_seq += 1;
        let token = format!("sandbox-{}-{}", self.token_seq, rand::random::<u64>());
        self.tokens.insert(token.clone(), identity);
        token
    }

    /// The `/version` body, shaped like EKS's.
    #[must_use]
    pub fn version_json(&self) -> Value {
        json!({
            "major": "1",
            "minor": self.version_minor.to_string(),
            "gitVersion": format!("v1.{}.{}-eks-3025e55", self.version_minor, self.version_patch),
            "gitCommit": "3025e55c0bb6b2e9b6b4d0c4dbb3b5f7f0f9e2a1",
            "gitTreeState": "clean",
            "buildDate": "2026-08-01T00:00:00Z",
            "goVersion": "go1.24.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

/// Parses scenario `users` entries: `{name, token?, groups?, dryRun?}`. Entries without a token
/// get none (tests then call `Sandbox::kubeconfig_for`). Returns (token, identity) pairs.
pub fn parse_users(users: &[Value]) -> anyhow::Result<Vec<(Option<String>, Identity)>> {
    users
        .iter()
        .map(|u| {
            let name = u
                .get("name")
                .or_else(|| u.get("user"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("scenario user without a name: {u}"))?;
            let groups = u
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let dry_run = u.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
            let token = u.get("token").and_then(Value::as_str).map(str::to_owned);
            Ok((
                token,
                Identity {
                    user: name.to_owned(),
                    groups,
                    dry_run,
                },
            ))
        })
        .collect()
}
