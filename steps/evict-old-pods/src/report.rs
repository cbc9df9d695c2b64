//! The run's report: one entry per pod past its lifetime, totals, skip reasons, and when the
//! next pod is due. Printed as the step's result and written to the output files.

use std::collections::BTreeMap;

use serde::Serialize;

/// Most pod entries in the stdout result (Argo keeps results small); the `report` output file
/// has them all.
pub const MAX_RESULT_PODS: usize = 1000;

/// One pod past its lifetime and what happened to it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodEntry {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Owner kind (the Deployment rather than its ReplicaSet when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_kind: Option<String>,
    /// Owner name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    /// creationTimestamp.
    pub created: String,
    /// Age in whole seconds at the run's instant.
    pub age_seconds: i64,
    /// The pod's lifetime after spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_seconds: Option<u64>,
    /// `evicted`, `restarted-owner`, `gone`, `skipped-<why>`, `blocked-by-<pdb>`, `failed`.
    pub verdict: String,
    /// The server's message or more detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Eviction requests sent for this pod.
    #[serde(skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Counts over the run.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Pods listed.
    pub scanned: u64,
    /// Pods that passed the namespace, selector and state filters.
    pub in_scope: u64,
    /// Of those, past their lifetime.
    pub past_lifetime: u64,
    /// Evicted (or, in a dry run, would be).
    pub evicted: u64,
    /// Owners rollout-restarted (`--mode restart`).
    pub restarted_owners: u64,
    /// Pods covered by those restarts.
    pub restarted_pods: u64,
    /// Still refused by a PDB at the end.
    pub blocked: u64,
    /// Skipped (protections, limits, node state, deadline).
    pub skipped: u64,
    /// Eviction failed for another reason.
    pub failed: u64,
    /// Gone before we got to it.
    pub gone: u64,
}

/// When the next pod in scope becomes due.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NextDue {
    /// The instant its age first exceeds its lifetime.
    pub time: String,
    /// Seconds from the run's instant.
    pub in_seconds: i64,
    /// `namespace/name`.
    pub pod: String,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// `none`, `client` or `server`.
    pub dry_run: String,
    /// `evict` or `restart`.
    pub mode: String,
    /// The instant ages were measured at.
    pub now: String,
    /// The maximum lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pod_lifetime_seconds: Option<u64>,
    /// Spread.
    pub spread_seconds: u64,
    /// The policy file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Policy fields accepted without effect (as the descheduler ignores them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Ready nodes seen.
    pub ready_nodes: usize,
    /// Why no eviction cycle ran, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle_skipped: Option<String>,
    /// The error that stopped the cycle (an API error, the deadline or SIGTERM during a
    /// list); the report holds what was done before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Totals.
    pub totals: Totals,
    /// Skipped pods by reason.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// The next pod due, if any in scope is not yet past its lifetime.
    pub next_eviction_due: Option<NextDue>,
    /// API requests the cycle sent, retries included (not the permission pre-check, nor the
    /// pages of a list that failed).
    pub api_requests: u64,
    /// Pods past their lifetime, oldest first (in the stdout result: capped, the skipped ones
    /// after the others).
    pub pods: Vec<PodEntry>,
    /// Entries left out of `pods` in the stdout result.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub pods_omitted: usize,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

impl RunReport {
    /// An empty report of a run with `cfg`, ages measured at `now`.
    #[must_use]
    pub fn new(cfg: &crate::config::Config, now: jiff::Timestamp) -> Self {
        let word = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        Self {
            dry_run: word(serde_json::to_value(cfg.dry_run)),
            mode: word(serde_json::to_value(cfg.mode)),
            now: now.to_string(),
            max_pod_lifetime_seconds: cfg.max_lifetime_seconds,
            spread_seconds: cfg.spread_seconds,
            policy: cfg.policy.clone(),
            warnings: cfg.warnings.clone(),
            ..Self::default()
        }
    }

    /// Recomputes the totals and reason counts from the entries.
    pub fn tally(&mut self) {
        let t = &mut self.totals;
        t.evicted = 0;
        t.restarted_pods = 0;
        t.blocked = 0;
        t.skipped = 0;
        t.failed = 0;
        t.gone = 0;
        self.skipped_by_reason.clear();
        for p in &self.pods {
            match p.verdict.as_str() {
                "evicted" => t.evicted += 1,
                "restarted-owner" => t.restarted_pods += 1,
                "gone" => t.gone += 1,
                "failed" => t.failed += 1,
                v if v.starts_with("blocked-by-") => t.blocked += 1,
                v => {
                    t.skipped += 1;
                    let reason = v.strip_prefix("skipped-").unwrap_or(v);
                    *self.skipped_by_reason.entry(reason.to_owned()).or_default() += 1;
                }
            }
        }
    }

    /// The same report with at most `max` pod entries: the pods acted on or held back
    /// (evicted, restarted, blocked, failed, gone) first, then the skipped ones, each group
    /// oldest first, so a large cluster's protected pods never crowd out the evictions.
    #[must_use]
    pub fn capped(&self, max: usize) -> Self {
        let mut r = self.clone();
        r.pods.sort_by_key(|p| p.verdict.starts_with("skipped-"));
        if r.pods.len() > max {
            r.pods_omitted = r.pods.len() - max;
            r.pods.truncate(max);
        }
        r
    }

    /// One line for operators.
    #[must_use]
    pub fn summary(&self) -> String {
        if let Some(why) = &self.cycle_skipped {
            return format!("no eviction cycle: {why}");
        }
        if let Some(e) = &self.error {
            return format!("the cycle stopped: {e}");
        }
        let t = &self.totals;
        let dry = if self.dry_run == "none" {
            String::new()
        } else {
            format!(" (dry run: {})", self.dry_run)
        };
        format!(
            "{} of {} pods past their lifetime evicted{dry}, {} owners restarted, {} blocked by PDBs, {} skipped, {} failed",
            t.evicted, t.past_lifetime, t.restarted_owners, t.blocked, t.skipped, t.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, verdict: &str) -> PodEntry {
        PodEntry {
            namespace: "a".into(),
            name: name.into(),
            node: None,
            owner_kind: None,
            owner_name: None,
            created: String::new(),
            age_seconds: 0,
            lifetime_seconds: None,
            verdict: verdict.into(),
            message: None,
            attempts: 0,
        }
    }

    #[test]
    fn capped_lists_evicted_and_blocked_before_skipped() {
        let mut r = RunReport::default();
        for i in 0..5 {
            r.pods.push(entry(&format!("ds-{i}"), "skipped-daemonset"));
        }
        r.pods.push(entry("web-0", "evicted"));
        r.pods.push(entry("ds-5", "skipped-daemonset"));
        r.pods.push(entry("web-1", "blocked-by-pdb"));
        let c = r.capped(2);
        let names: Vec<&str> = c.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-0", "web-1"]);
        assert_eq!(c.pods_omitted, 6);
        let all = r.capped(100);
        assert_eq!(all.pods[2].name, "ds-0", "skipped ones keep their order");
        assert_eq!(r.pods[0].name, "ds-0", "the full report keeps oldest first");
    }
}
