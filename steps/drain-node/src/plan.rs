//! The pre-flight plan: kubectl drain's pod filters in kubectl's order, then the checks kubectl
//! does not make (opt-out annotations, PodDisruptionBudgets that can never allow a disruption,
//! pods under two budgets, capacity left on the remaining nodes). Nothing is cordoned when the
//! plan says the drain cannot succeed.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::evict::{self, key};
use opsteps::exit::StepError;

use crate::args::Args;
use crate::reads::Reads;
use serde::Serialize;

/// What the plan does with one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Verdict {
    /// Will be evicted (or deleted with `--disable-eviction`). `warning` as kubectl prints it.
    Evict {
        /// kubectl's warning class, if any (orphaned DaemonSet pod, local storage, unmanaged).
        #[serde(skip_serializing_if = "Option::is_none")]
        warning: Option<String>,
    },
    /// Already terminating: not evicted again, only waited for.
    Wait,
    /// Left alone (DaemonSet with --ignore-daemonsets, mirror pod, terminating past skip-wait).
    Skip {
        /// Why.
        reason: String,
    },
    /// Stops the drain before it starts.
    Block {
        /// Why, with the flag that would override it when there is one.
        reason: String,
    },
}

/// One pod in the plan.
#[derive(Clone, Debug, Serialize)]
pub struct PodPlan {
    /// `namespace/name`.
    pub pod: String,
    /// Controller `Kind/name`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The PDB that covers it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    /// That PDB's `status.disruptionsAllowed` when planned (0 while its controller has not
    /// observed its spec): what a client dry run answers with.
    #[serde(skip)]
    pub pdb_allowed: Option<i32>,
    /// What happens.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Critical pods go last.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// The pod (not serialised).
    #[serde(skip)]
    pub object: Pod,
}

/// One node's plan.
#[derive(Clone, Debug, Serialize)]
pub struct NodePlan {
    /// Node name.
    pub node: String,
    /// Pods to evict (or wait for), skipped and blocking.
    pub pods: Vec<PodPlan>,
}

impl NodePlan {
    /// Pods with a blocking verdict.
    pub fn blocking(&self) -> impl Iterator<Item = &PodPlan> {
        self.pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Block { .. }))
    }

    /// Pods that will be evicted or waited for.
    pub fn to_remove(&self) -> impl Iterator<Item = &PodPlan> {
        self.pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Evict { .. } | Verdict::Wait))
    }
}

/// The filter options, kubectl's flags plus ours.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// `--force`.
    pub force: bool,
    /// `--ignore-daemonsets`.
    pub ignore_daemonsets: bool,
    /// `--delete-emptydir-data`.
    pub delete_emptydir_data: bool,
    /// `--skip-wait-for-delete-timeout` in seconds (0: off).
    pub skip_wait_for_delete_timeout: u64,
    /// `--ignore-do-not-disrupt`.
    pub ignore_do_not_disrupt: bool,
    /// `--disable-eviction`: deletes bypass PDBs, so budgets do not block.
    pub disable_eviction: bool,
}

/// Lookups shared across nodes in one run: DaemonSets (kubectl GETs each one per pod; we cache)
/// and the PDBs of the namespaces seen.
pub struct Lookups {
    client: Client,
    reads: Reads,
    daemonsets: HashMap<(String, String), Result<bool, String>>,
    pdbs: Option<Vec<PodDisruptionBudget>>,
    /// Pods per namespace, for counting the pods a PDB covers.
    namespace_pods: HashMap<String, Vec<Pod>>,
}

impl Lookups {
    /// Empty caches.
    #[must_use]
    pub fn new(client: Client, reads: Reads) -> Self {
        Self {
            client,
            reads,
            daemonsets: HashMap::new(),
            pdbs: None,
            namespace_pods: HashMap::new(),
        }
    }

    /// Whether DaemonSet `ns/name` exists (`Err` carries a GET error other than 404).
    async fn daemonset_exists(&mut self, ns: &str, name: &str) -> Result<bool, String> {
        let k = (ns.to_owned(), name.to_owned());
        if let Some(r) = self.daemonsets.get(&k) {
            return r.clone();
        }
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        let what = format!("get DaemonSet {ns}/{name}");
        let r = match self.reads.retry().retry(&what, || api.get_opt(name)).await {
            Ok(o) => Ok(o.is_some()),
            Err(e) => Err(format!("{what}: {e}")),
        };
        self.daemonsets.insert(k, r.clone());
        r
    }

    /// Every PDB in the cluster, listed once per run.
    pub async fn pdbs(&mut self) -> Result<&[PodDisruptionBudget], StepError> {
        if self.pdbs.is_none() {
            let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
            let list = self
                .reads
                .lister("PodDisruptionBudgets")
                .list_all(&api, &ListParams::default())
                .await?;
            self.pdbs = Some(list);
        }
        Ok(self.pdbs.as_deref().unwrap_or_default())
    }

    /// Forgets cached PDBs (their status changes while draining).
    pub fn refresh_pdbs(&mut self) {
        self.pdbs = None;
    }

    async fn pods_in(&mut self, ns: &str) -> Result<&[Pod], StepError> {
        if !self.namespace_pods.contains_key(ns) {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let pods = self
                .reads
                .lister(format!("pods in {ns}"))
                .list_all(&api, &ListParams::default())
                .await?;
            self.namespace_pods.insert(ns.to_owned(), pods);
        }
        Ok(self
            .namespace_pods
            .get(ns)
            .map(Vec::as_slice)
            .unwrap_or_default())
    }
}

/// Applies kubectl's filters, in kubectl's order, to one pod.
async fn kubectl_filters(pod: &Pod, f: &Filters, lookups: &mut Lookups) -> Verdict {
    let now = jiff::Timestamp::now();
    // 1. skipDeleted: terminating for longer than --skip-wait-for-delete-timeout.
    // A timeout too large for a timestamp skips nothing (it never passes).
    if let Some(ts) = &pod.metadata.deletion_timestamp
        && f.skip_wait_for_delete_timeout > 0
        && let Ok(skip) = i64::try_from(f.skip_wait_for_delete_timeout)
        && now.duration_since(ts.0) > jiff::SignedDuration::from_secs(skip)
    {
        return Verdict::Skip {
            reason: "terminating for longer than --skip-wait-for-delete-timeout".into(),
        };
    }
    let mut warning = None;
    // 2. DaemonSet-managed.
    // Finished DaemonSet pods fall through and are deleted, as in kubectl.
    if let Some(owner) =
        evict::controller(pod).filter(|_| evict::is_daemonset_pod(pod) && !evict::is_finished(pod))
    {
        let ns = pod.namespace().unwrap_or_default();
        match lookups.daemonset_exists(&ns, &owner.name).await {
            Ok(false) if f.force => {
                warning = Some(
                    "orphaned DaemonSet Pod (DaemonSet is gone), deleted with --force".to_owned(),
                );
            }
            Ok(false) => {
                return Verdict::Block {
                    reason: format!(
                        "daemonsets.apps \"{}\" not found (an orphaned DaemonSet Pod; use --force to delete it)",
                        owner.name
                    ),
                };
            }
            Err(e) => return Verdict::Block { reason: e },
            Ok(true) if !f.ignore_daemonsets => {
                return Verdict::Block {
                    reason:
                        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
                            .into(),
                };
            }
            Ok(true) => {
                return Verdict::Skip {
                    reason: "DaemonSet-managed Pod (--ignore-daemonsets)".into(),
                };
            }
        }
    }
    // 3. Mirror (static) pods: the kubelet owns them.
    if evict::is_mirror(pod) {
        return Verdict::Skip {
            reason: "mirror Pod (static, managed by the kubelet)".into(),
        };
    }
    // 4. Local storage.
    if evict::has_empty_dir(pod) && !evict::is_finished(pod) {
        if !f.delete_emptydir_data {
            return Verdict::Block {
                reason:
                    "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
                        .into(),
            };
        }
        warning.get_or_insert_with(|| {
            "deleting Pods with local storage (emptyDir data is lost)".to_owned()
        });
    }
    // 5. Unreplicated.
    if !evict::is_finished(pod) && evict::controller(pod).is_none() {
        if !f.force {
            return Verdict::Block {
                reason: "cannot delete Pods that declare no controller (use --force to override)"
                    .into(),
            };
        }
        warning.get_or_insert_with(|| {
            "deleting Pods that declare no controller (--force); they will not come back".to_owned()
        });
    }
    // kubectl evicts already-terminating pods again; we only wait for them (no double action).
    if evict::is_terminating(pod) {
        return Verdict::Wait;
    }
    Verdict::Evict { warning }
}

/// Disruptions `pdb` allows now: its status, once its controller has observed its spec.
fn allowed_now(pdb: &PodDisruptionBudget) -> i32 {
    let st = pdb.status.as_ref();
    if st.and_then(|s| s.observed_generation) >= pdb.metadata.generation {
        st.map_or(0, |s| s.disruptions_allowed)
    } else {
        0
    }
}

/// The plan for one node's pods (already listed).
#[tracing::instrument(skip_all, fields(node = %node), err)]
pub async fn plan_node(
    node: &str,
    pods: Vec<Pod>,
    f: &Filters,
    lookups: &mut Lookups,
) -> Result<NodePlan, StepError> {
    let mut out = Vec::with_capacity(pods.len());
    for pod in pods {
        let mut verdict = kubectl_filters(&pod, f, lookups).await;
        let mut pdb_name = None;
        let mut pdb_allowed = None;
        if matches!(verdict, Verdict::Evict { .. }) {
            if let Some(a) = evict::opt_out(&pod).filter(|_| !f.ignore_do_not_disrupt) {
                verdict = Verdict::Block {
                    reason: format!("annotated {a} (use --ignore-do-not-disrupt to override)"),
                };
            } else if !evict::is_finished(&pod) && !f.disable_eviction {
                let ns = pod.namespace().unwrap_or_default();
                let covering: Vec<PodDisruptionBudget> = lookups
                    .pdbs()
                    .await?
                    .iter()
                    .filter(|b| evict::pdb_selects(b, &pod))
                    .cloned()
                    .collect();
                match covering.as_slice() {
                    [] => {}
                    [one] => {
                        pdb_name = Some(format!("{ns}/{}", one.name_any()));
                        pdb_allowed = Some(allowed_now(one));
                        if evict::is_ready(&pod) {
                            let matching = lookups
                                .pods_in(&ns)
                                .await?
                                .iter()
                                .filter(|p| evict::pdb_selects(one, p) && !evict::is_finished(p))
                                .count();
                            if let Some(why) = evict::pdb_unsatisfiable(one, matching) {
                                verdict = Verdict::Block {
                                    reason: format!(
                                        "PodDisruptionBudget {ns}/{} can never allow a disruption: {why}",
                                        one.name_any()
                                    ),
                                };
                            }
                        }
                    }
                    many => {
                        let names: Vec<String> = many.iter().map(ResourceExt::name_any).collect();
                        verdict = Verdict::Block {
                            reason: format!(
                                "covered by more than one PodDisruptionBudget ({}); the eviction API refuses such pods",
                                names.join(", ")
                            ),
                        };
                    }
                }
            }
        }
        out.push(PodPlan {
            pod: key(&pod),
            owner: evict::controller(&pod).map(|o| format!("{}/{}", o.kind, o.name)),
            pdb: pdb_name,
            pdb_allowed,
            verdict,
            critical: evict::is_critical(&pod),
            object: pod,
        });
    }
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    Ok(NodePlan {
        node: node.to_owned(),
        pods: out,
    })
}

/// Plans every target node: its pods through the filters, then the capacity check.
#[tracing::instrument(skip_all, err)]
pub async fn plan_all(
    client: &Client,
    args: &Args,
    targets: &[Node],
    reads: &Reads,
) -> Result<Vec<NodePlan>, StepError> {
    let filters = Filters {
        force: args.force,
        ignore_daemonsets: args.ignore_daemonsets,
        delete_emptydir_data: args.delete_emptydir_data,
        skip_wait_for_delete_timeout: args.skip_wait_for_delete_timeout,
        ignore_do_not_disrupt: args.ignore_do_not_disrupt,
        disable_eviction: args.disable_eviction,
    };
    let mut lookups = Lookups::new(client.clone(), reads.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let mut plans = Vec::new();
    for node in targets {
        let name = node.name_any();
        let mut lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
        if let Some(s) = &args.pod_selector {
            lp = lp.labels(s);
        }
        // An unsupported --pod-selector (400) is bad input, never "no pod on the node".
        let list = reads
            .lister(format!("pods on {name}"))
            .list_all(&pods, &lp)
            .await?;
        plans.push(plan_node(&name, list, &filters, &mut lookups).await?);
    }
    if !args.skip_capacity_check {
        let names: Vec<String> = targets.iter().map(ResourceExt::name_any).collect();
        let misfits = crate::capacity::capacity_check(client, &names, &plans, reads).await?;
        for (pod, reason) in misfits {
            if let Some(p) = plans
                .iter_mut()
                .flat_map(|n| n.pods.iter_mut())
                .find(|p| p.pod == pod)
            {
                p.verdict = Verdict::Block { reason };
            }
        }
    }
    Ok(plans)
}

/// Logs the plan: counts per node, and each blocking, skipped or warned pod.
pub fn log_plan(plans: &[NodePlan]) {
    for n in plans {
        let evict = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Evict { .. }))
            .count();
        let wait = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Wait))
            .count();
        let skip = n
            .pods
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Skip { .. }))
            .count();
        let block = n.blocking().count();
        tracing::info!(node = %n.node, evict, wait, skip, block, "plan");
        for p in &n.pods {
            match &p.verdict {
                Verdict::Block { reason } => {
                    tracing::warn!(node = %n.node, pod = %p.pod, reason = %reason, "blocking");
                }
                Verdict::Skip { reason } => {
                    tracing::info!(node = %n.node, pod = %p.pod, reason = %reason, "skip");
                }
                Verdict::Evict { warning: Some(w) } => {
                    tracing::warn!(node = %n.node, pod = %p.pod, warning = %w, "evict");
                }
                _ => {}
            }
        }
    }
}
