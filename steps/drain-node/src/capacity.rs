//! Whether the remaining schedulable nodes can hold the pods the drain evicts: their CPU and
//! memory requests, first fit, with nodeSelector and taints.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::evict;
use opsteps::exit::StepError;

use crate::plan::{NodePlan, PodPlan, Verdict};
use crate::reads::Reads;

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
#[tracing::instrument(skip_all, err)]
pub async fn capacity_check(
    client: &Client,
    targets: &[String],
    plans: &[NodePlan],
    reads: &Reads,
) -> Result<Vec<(String, String)>, StepError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let all_nodes = reads
        .lister("nodes")
        .list_all(&nodes, &ListParams::default())
        .await?;
    let pods: Api<Pod> = Api::all(client.clone());
    let running = reads
        .lister("running pods")
        .list_all(
            &pods,
            &ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        )
        .await?;
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
        .filter(|n| !opsteps::nodes::is_unschedulable(n))
        .filter(|n| opsteps::nodes::is_ready(n))
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
