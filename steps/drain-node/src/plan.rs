//! The pre-flight plan: kubectl drain's pod filters in kubectl's order, then the checks kubectl
//! does not make (opt-out annotations, PodDisruptionBudgets that can never allow a disruption,
//! pods under two budgets, capacity left on the remaining nodes). Nothing is cordoned when the
//! plan says the drain cannot succeed.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::evict::{self, key};
use opsteps::exit::StepError;
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
    daemonsets: HashMap<(String, String), Result<bool, String>>,
    pdbs: Option<Vec<PodDisruptionBudget>>,
    /// Pods per namespace, for counting the pods a PDB covers.
    namespace_pods: HashMap<String, Vec<Pod>>,
}

impl Lookups {
    /// Empty caches.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self {
            client,
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
        let r = match api.get_opt(name).await {
            Ok(o) => Ok(o.is_some()),
            Err(e) => Err(e.to_string()),
        };
        self.daemonsets.insert(k, r.clone());
        r
    }

    /// Every PDB in the cluster, listed once per run.
    pub async fn pdbs(&mut self) -> Result<&[PodDisruptionBudget], StepError> {
        if self.pdbs.is_none() {
            let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| StepError::kube("list PodDisruptionBudgets", e))?;
            self.pdbs = Some(list.items);
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
            let pods = evict::list_pods(&api, &ListParams::default())
                .await
                .map_err(|e| StepError::kube(format!("list pods in {ns}"), e))?;
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
    if let Some(ts) = &pod.metadata.deletion_timestamp
        && f.skip_wait_for_delete_timeout > 0
        && now.duration_since(ts.0)
            > jiff::SignedDuration::from_secs(f.skip_wait_for_delete_timeout as i64)
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

/// The plan for one node's pods (already listed).
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

/// Free CPU (millicores), memory (bytes) and pod slots on a node.
#[derive(Clone, Debug)]
struct Room {
    name: String,
    cpu: i64,
    mem: f64,
    pods: i64,
    labels: BTreeMap<String, String>,
    taints: Vec<k8s_openapi::api::core::v1::Taint>,
}

/// Whether the evicted pods that their controllers will recreate fit on the nodes that stay
/// schedulable (Ready, not cordoned, not a target): first fit, largest first, honouring
/// nodeSelector and NoSchedule/NoExecute taints. Returns a blocking reason per pod that fits
/// nowhere.
// One algorithm (free room per node, then first fit), clearer in one piece.
#[allow(clippy::too_many_lines)]
pub async fn capacity_check(
    client: &Client,
    targets: &[String],
    plans: &[NodePlan],
) -> Result<Vec<(String, String)>, StepError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let all_nodes = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| StepError::kube("list nodes", e))?
        .items;
    let pods: Api<Pod> = Api::all(client.clone());
    let running = evict::list_pods(
        &pods,
        &ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
    )
    .await
    .map_err(|e| StepError::kube("list pods", e))?;
    let mut used: HashMap<&str, (i64, f64, i64)> = HashMap::new();
    for p in &running {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            let (c, m) = evict::requests(p);
            let e = used.entry(n).or_default();
            e.0 += c;
            e.1 += m;
            e.2 += 1;
        }
    }
    let mut rooms: Vec<Room> = all_nodes
        .iter()
        .filter(|n| !targets.contains(&n.name_any()))
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .filter(|n| node_ready(n))
        .map(|n| {
            let alloc = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.clone())
                .unwrap_or_default();
            let q = |k: &str| alloc.get(k).map(|q| q.0.clone());
            let (uc, um, up) = used.get(n.name_any().as_str()).copied().unwrap_or_default();
            Room {
                name: n.name_any(),
                cpu: q("cpu")
                    .and_then(|v| opsteps::quantity::millicores(&v))
                    .unwrap_or(0)
                    - uc,
                mem: q("memory")
                    .and_then(|v| opsteps::quantity::parse(&v))
                    .unwrap_or(0.0)
                    - um,
                pods: q("pods")
                    .and_then(|v| opsteps::quantity::parse(&v))
                    .unwrap_or(110.0) as i64
                    - up,
                labels: n.labels().clone(),
                taints: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    // Pods whose controller recreates them elsewhere: anything controller-owned except DaemonSet
    // pods (their DaemonSet does not follow them) and finished pods.
    let mut movers: Vec<&PodPlan> = plans
        .iter()
        .flat_map(|n| n.pods.iter())
        .filter(|p| matches!(p.verdict, Verdict::Evict { .. }))
        .filter(|p| {
            evict::controller(&p.object).is_some()
                && !evict::is_daemonset_pod(&p.object)
                && !evict::is_finished(&p.object)
        })
        .collect();
    movers.sort_by(|a, b| {
        let (ca, ma) = evict::requests(&a.object);
        let (cb, mb) = evict::requests(&b.object);
        (cb, mb as i64).cmp(&(ca, ma as i64))
    });
    let mut misfits = Vec::new();
    for p in movers {
        let (cpu, mem) = evict::requests(&p.object);
        let spec = p.object.spec.as_ref();
        let selector = spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        let tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
        let fits = rooms.iter_mut().find(|r| {
            r.cpu >= cpu
                && r.mem >= mem
                && r.pods >= 1
                && selector.iter().all(|(k, v)| r.labels.get(k) == Some(v))
                && r.taints
                    .iter()
                    .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                    .all(|t| tolerates(&tolerations, t))
        });
        match fits {
            Some(r) => {
                tracing::debug!(pod = %p.pod, node = %r.name, "fits");
                r.cpu -= cpu;
                r.mem -= mem;
                r.pods -= 1;
            }
            None => misfits.push((
                p.pod.clone(),
                format!(
                    "insufficient capacity: needs cpu {cpu}m and memory {:.0}Mi on a schedulable node outside the drain, none has room (use --skip-capacity-check to override)",
                    mem / 1_048_576.0
                ),
            )),
        }
    }
    tracing::debug!(nodes = rooms.len(), "capacity check done");
    Ok(misfits)
}

fn tolerates(
    tolerations: &[k8s_openapi::api::core::v1::Toleration],
    taint: &k8s_openapi::api::core::v1::Taint,
) -> bool {
    tolerations.iter().any(|t| {
        let key_ok = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == taint.key,
        };
        let value_ok = t.operator.as_deref() == Some("Exists")
            || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        key_ok && value_ok && effect_ok
    })
}

/// The node's Ready condition is True.
#[must_use]
pub fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
