//! The scan: pods listed page by page (per namespace with `--namespaces`), each reduced at once
//! to a report entry when past its lifetime and to a candidate when nothing protects it; the
//! rest is dropped with its page, so memory stays flat however many pods the cluster has.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use opsteps::evict;
use opsteps::exit::StepError;
use opsteps::list::Page;
use tracing::instrument;

use super::{Candidate, Run, display_owner};
use crate::classify::{self, Skip};
use crate::config::Config;
use crate::report::{NextDue, PodEntry};

/// What the scan keeps of one list (one namespace, or all): dropped whole when the list
/// restarts after an expired continue token, merged into the run's when it completes.
#[derive(Default)]
struct Tally {
    candidates: Vec<Candidate>,
    entries: Vec<PodEntry>,
    /// Pods per first-owner UID, for minReplicas.
    owner_pods: HashMap<String, u32>,
    next_due: Option<(jiff::Timestamp, String)>,
    scanned: u64,
    in_scope: u64,
    past: u64,
}

/// What a pod is judged against.
struct Judge<'a> {
    cfg: &'a Config,
    now: jiff::Timestamp,
    ready_nodes: &'a HashSet<String>,
    pdbs: &'a [PodDisruptionBudget],
    threshold: Option<i32>,
}

impl Tally {
    /// Counts `pod`, and keeps its entry and candidate when it is past its lifetime.
    fn add(&mut self, pod: &Pod, j: &Judge<'_>) {
        let (cfg, now, ready_nodes, pdbs, threshold) =
            (j.cfg, j.now, j.ready_nodes, j.pdbs, j.threshold);
        self.scanned += 1;
        if let Some(u) = classify::first_owner_uid(pod) {
            *self.owner_pods.entry(u.to_owned()).or_default() += 1;
        }
        let pns = pod.namespace().unwrap_or_default();
        if cfg.exclude_namespaces.contains(&pns) || !classify::matches_states(pod, cfg) {
            return;
        }
        self.in_scope += 1;
        let Some(age) = classify::age_seconds(pod, now) else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        let lifetime = cfg
            .max_lifetime_seconds
            .map(|m| classify::effective_lifetime(m, cfg.spread_seconds, &uid));
        let is_past = lifetime.is_none_or(|l| classify::is_past(age, l));
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let skip = match &node {
            None => Some(Skip::Unscheduled),
            Some(n) if !ready_nodes.contains(n) => Some(Skip::NodeNotReady),
            Some(_) => classify::protection(pod, &cfg.evictor, threshold, pdbs, now),
        };
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0);
        if !is_past {
            // Checked: a lifetime beyond jiff's range has no due time, never a panic.
            if skip.is_none()
                && let Some(l) = lifetime
                && let Some(due) = i64::try_from(l)
                    .ok()
                    .and_then(|l| l.checked_add(1))
                    .and_then(|s| created.checked_add(jiff::SignedDuration::from_secs(s)).ok())
                && due > now
                && self.next_due.as_ref().is_none_or(|(t, _)| due < *t)
            {
                self.next_due = Some((due, evict::key(pod)));
            }
            return;
        }
        self.past += 1;
        let owner = display_owner(pod);
        let entry = PodEntry {
            namespace: pns.clone(),
            name: pod.name_any(),
            node: node.clone(),
            owner_kind: owner.as_ref().map(|o| o.0.clone()),
            owner_name: owner.as_ref().map(|o| o.1.clone()),
            created: created.to_string(),
            age_seconds: age,
            lifetime_seconds: lifetime,
            verdict: skip.map_or_else(|| "pending".to_owned(), Skip::verdict),
            message: None,
            attempts: 0,
        };
        self.entries.push(entry);
        if skip.is_some() {
            return;
        }
        let matching: Vec<&PodDisruptionBudget> =
            pdbs.iter().filter(|p| evict::pdb_selects(p, pod)).collect();
        self.candidates.push(Candidate {
            entry: self.entries.len() - 1,
            namespace: pns,
            name: pod.name_any(),
            uid,
            node: node.unwrap_or_default(),
            created,
            controller: evict::controller(pod).map(|c| (c.kind.clone(), c.name.clone())),
            pdb: matching
                .first()
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())),
            pdb_count: matching.len(),
            first_owner_uid: classify::first_owner_uid(pod).map(str::to_owned),
            overridden: pod.annotations().contains_key(evict::DESCHEDULER_EVICT),
            age,
            lifetime,
        });
    }

    /// Appends `other` (a completed list) to this tally.
    fn merge(&mut self, other: Self) {
        let offset = self.entries.len();
        self.candidates
            .extend(other.candidates.into_iter().map(|mut c| {
                c.entry += offset;
                c
            }));
        self.entries.extend(other.entries);
        for (uid, n) in other.owner_pods {
            *self.owner_pods.entry(uid).or_default() += n;
        }
        if let Some((t, pod)) = other.next_due
            && self.next_due.as_ref().is_none_or(|(mine, _)| t < *mine)
        {
            self.next_due = Some((t, pod));
        }
        self.scanned += other.scanned;
        self.in_scope += other.in_scope;
        self.past += other.past;
    }
}

impl Run<'_> {
    /// Lists pods page by page and keeps only the candidates (and report entries of pods past
    /// their lifetime).
    #[instrument(skip_all, err)]
    pub(super) async fn scan(
        &mut self,
        ready_nodes: &HashSet<String>,
        pdbs: &[PodDisruptionBudget],
        threshold: Option<i32>,
    ) -> Result<Vec<Candidate>, StepError> {
        let cfg = self.cfg;
        let now = self.now;
        let judge = Judge {
            cfg,
            now,
            ready_nodes,
            pdbs,
            threshold,
        };
        let mut lp = ListParams::default();
        let sel = cfg.selector.to_string();
        if !sel.is_empty() {
            lp = lp.labels(&sel);
        }
        let targets: Vec<Option<String>> = if cfg.namespaces.is_empty() {
            vec![None]
        } else {
            cfg.namespaces.iter().cloned().map(Some).collect()
        };
        let mut all = Tally::default();
        for ns in targets {
            let api: Api<Pod> = match &ns {
                Some(n) => Api::namespaced(self.client.clone(), n),
                None => Api::all(self.client.clone()),
            };
            let mut one = Tally::default();
            let listed = self
                .lister("pods")
                .for_each_page(&api, &lp, |page| match page {
                    Page::Items(pods) => pods.iter().for_each(|p| one.add(p, &judge)),
                    Page::Restart => one = Tally::default(),
                })
                .await;
            self.listed(listed)?;
            all.merge(one);
        }
        let Tally {
            mut candidates,
            mut entries,
            owner_pods,
            next_due,
            scanned,
            in_scope,
            past,
        } = all;
        // minReplicas needs the counts of the whole listing, so it is applied after it.
        candidates.retain(|c| {
            let n = c
                .first_owner_uid
                .as_ref()
                .and_then(|u| owner_pods.get(u))
                .copied();
            match classify::min_replicas_skip(cfg.evictor.min_replicas, n, c.overridden) {
                Some(s) => {
                    entries[c.entry].verdict = s.verdict();
                    false
                }
                None => true,
            }
        });
        // Oldest first (ties: by name, for a stable report; the descheduler's order among
        // equal timestamps is unspecified).
        candidates.sort_by(|a, b| {
            (a.created, &a.namespace, &a.name).cmp(&(b.created, &b.namespace, &b.name))
        });
        // The report lists entries in the same order.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            (&x.created, &x.namespace, &x.name).cmp(&(&y.created, &y.namespace, &y.name))
        });
        let mut new_index = vec![0; entries.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        for c in &mut candidates {
            c.entry = new_index[c.entry];
        }
        let mut slots: Vec<Option<PodEntry>> = entries.into_iter().map(Some).collect();
        let entries: Vec<PodEntry> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let t = &mut self.report.totals;
        t.scanned = scanned;
        t.in_scope = in_scope;
        t.past_lifetime = past;
        self.report.next_eviction_due = next_due.map(|(t, pod)| NextDue {
            time: t.to_string(),
            in_seconds: t.duration_since(now).as_secs(),
            pod,
        });
        self.report.pods = entries;
        Ok(candidates)
    }
}
