//! Building a settled cluster from a scenario: nodes with EKS-like labels and loopback
//! InternalIPs, workloads with their ReplicaSets, and pods already scheduled, Running and Ready
//! with the scenario's ages, placed by a fast first-fit over the feasible nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::controllers::util::Ptr as _;
use anyhow::Context as _;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Capacity, ClusterSpec, NodeGroupSpec, NodeSpec, Scenario, WorkloadKind, WorkloadSpec};
use crate::clock::rfc3339;
use crate::cluster::Cluster;
use crate::controllers::scheduler::{Resources, allocatable, pod_requests};
use crate::controllers::util::{self, parse_duration};
use crate::controllers::{daemonset, kubelet, pods, statefulset};
use crate::podutil;
use crate::resources::well_known;
use crate::world::{NodeDownReason, NodeEvent, PodBehaviour, PodRule, Restarts, StaticPod};

/// Annotation the invariants check: evicting such a pod is a test failure.
pub const PROTECTED: &str = "sandbox.opsteps.io/protected";

/// Loads `scenario` into `cluster` (whose clock the caller built from `scenario.clock`).
pub fn load(cluster: &mut Cluster, scenario: &Scenario) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let start = cluster.clock.now();
    let mut b = Builder {
        cluster,
        scenario,
        start,
        nodes: Vec::new(),
        candidates: std::collections::HashMap::new(),
    };
    b.world()?;
    b.namespaces();
    b.priority_classes();
    b.nodes()?;
    let nodes_done = started.elapsed();
    // Daemons first: like on a real node, they hold their slots before other pods arrive.
    let order = |w: &WorkloadSpec| {
        u8::from(!matches!(
            w.kind,
            WorkloadKind::DaemonSet | WorkloadKind::StaticPod
        ))
    };
    let mut workloads: Vec<&WorkloadSpec> = scenario.workloads.iter().collect();
    workloads.sort_by_key(|w| order(w));
    for w in workloads {
        b.workload(w)
            .with_context(|| format!("workload {}", w.name))?;
    }
    b.pdbs()?;
    b.objects()?;
    b.helm_releases()?;
    crate::api::metrics::load(b.cluster, scenario.api_server.as_ref());
    let cluster = b.cluster;
    let built = started.elapsed();
    cluster.world.wake();
    crate::controllers::tick(cluster);
    tracing::info!(
        nodes = cluster.store.count(well_known::nodes()),
        pods = cluster.store.count(well_known::pods()),
        nodes_ms = nodes_done.as_millis() as u64,
        objects_ms = built.as_millis() as u64,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scenario loaded"
    );
    if std::env::var_os("SANDBOX_LOAD_TIMES").is_some() {
        eprintln!(
            "scenario load: nodes {nodes_done:?}, objects {built:?}, settled {:?}",
            started.elapsed()
        );
    }
    Ok(())
}

/// A node and what is placed on it so far.
struct Slot {
    name: String,
    group: Option<String>,
    node: Arc<Value>,
    alloc: Resources,
    used: Resources,
}

struct Builder<'a> {
    cluster: &'a mut Cluster,
    scenario: &'a Scenario,
    start: Timestamp,
    nodes: Vec<Slot>,
    /// Candidate nodes by what decides them (placement and scheduling fields of the spec):
    /// most workloads share a few node selectors.
    candidates: std::collections::HashMap<String, Arc<Vec<usize>>>,
}

fn dur(s: Option<&String>, default: Duration) -> anyhow::Result<Duration> {
    s.map_or(Ok(default), |s| parse_duration(s))
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    t - jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO)
}

/// Default capacity of an EC2 instance type: (cpu, memory, pods, gpus).
fn instance_capacity(t: &str) -> (&'static str, &'static str, u32, u32) {
    match t {
        "m5.large" | "m6i.large" | "m7i.large" => ("2", "8Gi", 29, 0),
        "m5.2xlarge" | "m6i.2xlarge" | "m7i.2xlarge" => ("8", "32Gi", 58, 0),
        "m5.4xlarge" | "m6i.4xlarge" | "m7i.4xlarge" => ("16", "64Gi", 234, 0),
        "m5.8xlarge" | "m6i.8xlarge" => ("32", "128Gi", 234, 0),
        "c5.xlarge" | "c6i.xlarge" => ("4", "8Gi", 58, 0),
        "c5.2xlarge" | "c6i.2xlarge" => ("8", "16Gi", 58, 0),
        "c5.4xlarge" | "c6i.4xlarge" => ("16", "32Gi", 234, 0),
        "r5.xlarge" | "r6i.xlarge" => ("4", "32Gi", 58, 0),
        "r5.2xlarge" | "r6i.2xlarge" => ("8", "64Gi", 58, 0),
        "g5.xlarge" => ("4", "16Gi", 58, 1),
        "g5.2xlarge" => ("8", "32Gi", 58, 1),
        "g5.12xlarge" => ("48", "192Gi", 234, 4),
        "g5.48xlarge" => ("192", "768Gi", 345, 8),
        "p4d.24xlarge" => ("96", "1152Gi", 737, 8),
        "p5.48xlarge" => ("192", "2048Gi", 100, 8),
        // m5.xlarge and anything unknown.
        _ => ("4", "16Gi", 58, 0),
    }
}

/// Capacity and allocatable: allocatable is capacity minus an EKS-like kube-reserved
/// (70m cpu plus 5m per core beyond two; 355Mi plus 11Mi per pod of memory).
fn capacity(instance_type: &str, c: &Capacity) -> (Value, Value) {
    let (cpu, mem, pods, gpu) = instance_capacity(instance_type);
    let cpu = c.cpu.clone().unwrap_or_else(|| cpu.to_owned());
    let mem = c.memory.clone().unwrap_or_else(|| mem.to_owned());
    let pods = c.pods.unwrap_or(pods);
    let gpu = c.gpu.unwrap_or(gpu);
    let eph = c
        .ephemeral_storage
        .clone()
        .unwrap_or_else(|| "20Gi".to_owned());
    let mut cap =
        json!({"cpu": cpu, "memory": mem, "pods": pods.to_string(), "ephemeral-storage": eph});
    let cpu_m = util::quantity_milli(&json!(cpu)).unwrap_or(4000);
    let mem_b = util::quantity_milli(&json!(mem)).unwrap_or(0) / 1000;
    let cores = cpu_m / 1000;
    let cpu_alloc = cpu_m - 70 - 5 * (cores - 2).max(0);
    let mem_alloc_ki = (mem_b - (355 + 11 * i128::from(pods)) * 1024 * 1024).max(0) / 1024;
    let mut alloc = json!({"cpu": format!("{cpu_alloc}m"), "memory": format!("{mem_alloc_ki}Ki"), "pods": pods.to_string(), "ephemeral-storage": eph});
    if gpu > 0 {
        cap["nvidia.com/gpu"] = json!(gpu.to_string());
        alloc["nvidia.com/gpu"] = json!(gpu.to_string());
    }
    (cap, alloc)
}

/// The fields of a node to build, from a group or an individual spec.
struct NodeInput<'s> {
    name: String,
    group: Option<&'s str>,
    instance_type: &'s str,
    capacity: &'s Capacity,
    labels: &'s BTreeMap<String, String>,
    taints: &'s [Value],
    version: Option<&'s str>,
    zone: String,
    capacity_type: &'s str,
    unschedulable: bool,
    age: Duration,
}

impl Builder<'_> {
    fn now(&self) -> String {
        rfc3339(self.start)
    }

    fn world(&mut self) -> anyhow::Result<()> {
        let k = &self.scenario.kubelet;
        let w = &mut self.cluster.world;
        w.kubelet.start_delay =
            dur(k.start_delay.as_ref(), w.kubelet.start_delay).context("kubelet.startDelay")?;
        w.kubelet.ready_delay =
            dur(k.ready_delay.as_ref(), w.kubelet.ready_delay).context("kubelet.readyDelay")?;
        for e in &self.scenario.node_events {
            let after = parse_duration(&e.after)
                .with_context(|| format!("nodeEvents: after {:?}", e.after))?;
            let (ready, reason) = parse_state(&e.state)?;
            w.node_events.push(NodeEvent {
                at: util::plus(self.start, after),
                node: e.node.clone(),
                ready,
                reason,
            });
        }
        Ok(())
    }

    fn ensure_namespace(&mut self, name: &str, labels: &BTreeMap<String, String>) {
        if self
            .cluster
            .store
            .get(well_known::namespaces(), "", name)
            .is_some()
        {
            return;
        }
        let mut l: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        l.insert("kubernetes.io/metadata.name".into(), json!(name));
        let ns = json!({"metadata": {"name": name, "labels": l, "creationTimestamp": rfc3339(minus(self.start, Duration::from_hours(90 * 24)))},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let now = self.now();
        let _ = self
            .cluster
            .store
            .create(well_known::namespaces(), ns, &now);
    }

    fn namespaces(&mut self) {
        let empty = BTreeMap::new();
        for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.ensure_namespace(n, &empty);
        }
        for n in &self.scenario.namespaces {
            self.ensure_namespace(&n.name, &n.labels);
        }
        let mut extra = BTreeSet::new();
        for w in &self.scenario.workloads {
            extra.insert(workload_namespace(w).to_owned());
        }
        for p in &self.scenario.pdbs {
            extra.insert(p.namespace.clone().unwrap_or_else(|| "default".into()));
        }
        for n in extra {
            self.ensure_namespace(&n, &empty);
        }
    }

    fn priority_classes(&mut self) {
        let res = crate::store::res("scheduling.k8s.io", "priorityclasses");
        let now = self.now();
        let builtin = [
            (
                "system-cluster-critical",
                2_000_000_000,
                "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            ),
            (
                "system-node-critical",
                2_000_001_000,
                "Used for system critical pods that must not be moved from their current node.",
            ),
        ];
        for (name, value, desc) in builtin {
            let pc = json!({"metadata": {"name": name}, "value": value, "description": desc, "preemptionPolicy": "PreemptLowerPriority", "globalDefault": false});
            let _ = self.cluster.store.create(res, pc, &now);
        }
        for p in &self.scenario.priority_classes {
            let pc = json!({"metadata": {"name": p.name}, "value": p.value, "globalDefault": p.global_default,
                "preemptionPolicy": p.preemption_policy.clone().unwrap_or_else(|| "PreemptLowerPriority".into())});
            let _ = self.cluster.store.create(res, pc, &now);
        }
    }

    fn nodes(&mut self) -> anyhow::Result<()> {
        let region = self.scenario.cluster.region.clone();
        let default_zones: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|z| format!("{region}{z}"))
            .collect();
        let groups: &[NodeGroupSpec] = &self.scenario.node_groups;
        for g in groups {
            let zones = if g.zones.is_empty() {
                &default_zones
            } else {
                &g.zones
            };
            let age = dur(g.age.as_ref(), Duration::from_hours(30 * 24))?;
            for i in 0..g.count {
                let input = group_input(g, i, zones, age);
                self.add_node(&input)?;
            }
        }
        let singles: &[NodeSpec] = &self.scenario.nodes;
        for (i, n) in singles.iter().enumerate() {
            let input = NodeInput {
                name: n.name.clone(),
                group: n.node_group.as_deref(),
                instance_type: n.instance_type.as_deref().unwrap_or("m5.xlarge"),
                capacity: &n.capacity,
                labels: &n.labels,
                taints: &n.taints,
                version: n.version.as_deref(),
                zone: n
                    .zone
                    .clone()
                    .unwrap_or_else(|| default_zones[i % default_zones.len()].clone()),
                capacity_type: "ON_DEMAND",
                unschedulable: n.unschedulable,
                age: dur(n.age.as_ref(), Duration::from_hours(30 * 24))?,
            };
            self.add_node(&input)?;
            if let Some(state) = &n.down {
                let (ready, reason) = parse_state(state)?;
                if !ready {
                    self.cluster.world.nodes_down.insert(n.name.clone(), reason);
                }
            }
        }
        Ok(())
    }

    fn add_node(&mut self, n: &NodeInput<'_>) -> anyhow::Result<()> {
        let stored = create_node(self.cluster, &self.scenario.cluster, n, self.start)?;
        let a = allocatable(&stored);
        self.nodes.push(Slot {
            name: n.name.clone(),
            group: n.group.map(str::to_owned),
            node: stored,
            alloc: a,
            used: Resources::default(),
        });
        Ok(())
    }

    /// Candidate node indexes for a workload's initial pods.
    fn candidates(&mut self, w: &WorkloadSpec, spec: &Value) -> Arc<Vec<usize>> {
        let key = format!(
            "{:?}|{:?}|{}|{}|{}",
            w.placement.node_group,
            w.placement.nodes,
            spec.get("nodeSelector").unwrap_or(&Value::Null),
            spec.get("affinity").unwrap_or(&Value::Null),
            spec.get("tolerations").unwrap_or(&Value::Null)
        );
        if let Some(c) = self.candidates.get(&key) {
            return c.clone();
        }
        let c: Arc<Vec<usize>> = Arc::new(self.compute_candidates(w, spec));
        self.candidates.insert(key, c.clone());
        c
    }

    fn compute_candidates(&self, w: &WorkloadSpec, spec: &Value) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                w.placement
                    .node_group
                    .as_ref()
                    .is_none_or(|g| s.group.as_ref() == Some(g))
            })
            .filter(|(_, s)| w.placement.nodes.is_empty() || w.placement.nodes.contains(&s.name))
            .filter(|(_, s)| {
                util::node_matches(spec, &s.node)
                    && util::untolerated_taints(spec, &s.node).is_empty()
            })
            .filter(|(_, s)| {
                s.node["spec"]["unschedulable"].as_bool() != Some(true)
                    || util::tolerates(
                        spec.get("tolerations"),
                        &json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
                    )
            })
            .filter(|(_, s)| !self.cluster.world.nodes_down.contains_key(&s.name))
            .map(|(i, _)| i)
            .collect()
    }

    /// First candidate from `cursor` with room for `req`; reserves it.
    fn place(&mut self, cands: &[usize], cursor: &mut usize, req: &Resources) -> Option<usize> {
        for k in 0..cands.len() {
            let i = cands[(*cursor + k) % cands.len()];
            let s = &self.nodes[i];
            let fits = s.used.pods + req.pods <= s.alloc.pods
                && s.used.cpu + req.cpu <= s.alloc.cpu
                && s.used.memory + req.memory <= s.alloc.memory
                && req.extended.iter().all(|(k, v)| {
                    s.used.extended.get(k).copied().unwrap_or(0) + v
                        <= s.alloc.extended.get(k).copied().unwrap_or(0)
                });
            if fits {
                *cursor = (*cursor + k + 1) % cands.len();
                let s = &mut self.nodes[i];
                s.used.cpu += req.cpu;
                s.used.memory += req.memory;
                s.used.pods += req.pods;
                for (k, v) in &req.extended {
                    *s.used.extended.entry(k.clone()).or_default() += v;
                }
                return Some(i);
            }
        }
        None
    }

    /// The pod template of a workload.
    fn template(w: &WorkloadSpec) -> Value {
        let mut labels = workload_labels(w);
        if w.kind == WorkloadKind::StaticPod {
            labels
                .entry("tier".into())
                .or_insert_with(|| "control-plane".into());
        }
        let mut annotations = w.pod_annotations.clone();
        if w.protected {
            annotations.insert(PROTECTED.into(), "true".into());
        }
        let mut requests = serde_json::Map::new();
        let mut limits = serde_json::Map::new();
        if let Some(c) = &w.requests.cpu {
            requests.insert("cpu".into(), json!(c));
        }
        if let Some(m) = &w.requests.memory {
            requests.insert("memory".into(), json!(m));
        }
        if let Some(g) = w.requests.gpu.filter(|g| *g > 0) {
            requests.insert("nvidia.com/gpu".into(), json!(g.to_string()));
            limits.insert("nvidia.com/gpu".into(), json!(g.to_string()));
        }
        let mut resources = json!({});
        if !requests.is_empty() {
            resources["requests"] = Value::Object(requests);
        }
        if !limits.is_empty() {
            resources["limits"] = Value::Object(limits);
        }
        let image = w
            .image
            .clone()
            .unwrap_or_else(|| format!("registry.example/{}:1.0", w.name));
        let mut container = json!({"name": w.name, "image": image, "resources": resources});
        let mounts: Vec<Value> = w
            .volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .map(|n| json!({"name": n, "mountPath": format!("/mnt/{n}")}))
            .collect();
        if !mounts.is_empty() {
            container["volumeMounts"] = Value::Array(mounts);
        }
        let mut spec = json!({"containers": [container]});
        if !w.volumes.is_empty() {
            spec["volumes"] = Value::Array(w.volumes.clone());
        }
        let pcn = w.priority_class_name.clone().or_else(|| {
            (w.kind == WorkloadKind::StaticPod).then(|| "system-node-critical".to_owned())
        });
        if let Some(p) = pcn {
            spec["priorityClassName"] = json!(p);
        }
        if !w.node_selector.is_empty() {
            spec["nodeSelector"] = json!(w.node_selector);
        }
        if !w.tolerations.is_empty() {
            spec["tolerations"] = Value::Array(w.tolerations.clone());
        }
        if let Some(a) = &w.affinity {
            spec["affinity"] = a.clone();
        }
        if let Some(g) = w.termination_grace_period_seconds {
            spec["terminationGracePeriodSeconds"] = json!(g);
        }
        if w.host_network {
            spec["hostNetwork"] = json!(true);
        }
        let mut meta = json!({"labels": labels});
        if !annotations.is_empty() {
            meta["annotations"] = json!(annotations);
        }
        json!({"metadata": meta, "spec": spec})
    }

    fn behaviour(w: &WorkloadSpec) -> anyhow::Result<Option<PodBehaviour>> {
        let restarts = match &w.restarts {
            None => None,
            Some(r) => {
                let reason = r.reason.clone().unwrap_or_else(|| "OOMKilled".into());
                let exit_code = r
                    .exit_code
                    .unwrap_or(if reason == "OOMKilled" { 137 } else { 1 });
                let every = r
                    .every
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .context("restarts.every")?;
                Some(Restarts {
                    count: r.count,
                    reason,
                    exit_code,
                    every,
                })
            }
        };
        let b = PodBehaviour {
            hang_on_termination: w.hang_on_termination,
            restarts,
            start_delay: w
                .start_delay
                .as_deref()
                .map(parse_duration)
                .transpose()
                .context("startDelay")?,
            ready_delay: w
                .ready_delay
                .as_deref()
                .map(parse_duration)
                .transpose()
                .context("readyDelay")?,
            never_ready: w.never_ready,
        };
        let default = b.restarts.is_none()
            && !b.hang_on_termination
            && b.start_delay.is_none()
            && b.ready_delay.is_none()
            && !b.never_ready;
        Ok((!default).then_some(b))
    }

    /// Ages of `n` pods: all `age`, or spread over `ageRange` (pod 0 youngest).
    fn ages(w: &WorkloadSpec, n: usize) -> anyhow::Result<Vec<Duration>> {
        if let Some([lo, hi]) = &w.age_range {
            let lo = parse_duration(lo).context("ageRange")?;
            let hi = parse_duration(hi).context("ageRange")?;
            anyhow::ensure!(lo <= hi, "ageRange: first must not exceed second");
            let span = hi.saturating_sub(lo).as_secs_f64();
            return Ok((0..n)
                .map(|i| {
                    lo + Duration::from_secs_f64(if n > 1 {
                        span * i as f64 / (n - 1) as f64
                    } else {
                        0.0
                    })
                })
                .collect());
        }
        let age = dur(w.age.as_ref(), Duration::from_hours(1)).context("age")?;
        Ok(vec![age; n])
    }

    #[allow(clippy::too_many_lines)]
    fn workload(&mut self, w: &WorkloadSpec) -> anyhow::Result<()> {
        let ns = workload_namespace(w).to_owned();
        let template = Self::template(w);
        let labels = workload_labels(w);
        if let Some(b) = Self::behaviour(w)? {
            self.cluster.world.pod_rules.push(PodRule {
                namespace: ns.clone(),
                match_labels: labels.clone(),
                behaviour: b,
            });
        }
        let replicas = w.replicas.unwrap_or(1) as usize;
        let now = self.now();
        let mut annotations = json!(w.annotations);
        let selector = json!({"matchLabels": labels});
        let store_spec_for_pods = {
            let mut s = template["spec"].clone();
            pods::default_spec(&self.cluster.store, &mut s);
            s
        };
        let (owner, pod_template, kind_pods): (Option<Arc<Value>>, Value, Vec<PodPlan>) = match w
            .kind
        {
            WorkloadKind::Deployment => {
                let ages = Self::ages(w, replicas)?;
                let oldest = ages.iter().max().copied().unwrap_or_default();
                let strategy = w.strategy.clone().unwrap_or_else(|| json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
                annotations["deployment.kubernetes.io/revision"] = json!("1");
                let mut spec = json!({"replicas": replicas, "selector": selector, "template": template, "strategy": strategy,
                    "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600});
                if let Some(m) = w.min_ready_seconds {
                    spec["minReadySeconds"] = json!(m);
                }
                let created = rfc3339(minus(self.start, oldest + Duration::from_secs(30)));
                let d = json!({"metadata": {"name": w.name, "namespace": ns, "labels": labels, "annotations": annotations, "creationTimestamp": created}, "spec": spec});
                let d = self
                    .cluster
                    .store
                    .create(well_known::deployments(), d, &now)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let hash = util::template_hash(&d["spec"]["template"]);
                let mut t = d["spec"]["template"].clone();
                t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut rs_sel = selector.clone();
                rs_sel["matchLabels"]["pod-template-hash"] = json!(hash);
                let surge = util::int_or_percent(
                    d.ptr("/spec/strategy/rollingUpdate/maxSurge")
                        .unwrap_or(&json!(0)),
                    replicas as i64,
                    true,
                )
                .unwrap_or(0);
                let rs = json!({
                    "metadata": {"name": format!("{}-{hash}", w.name), "namespace": ns, "labels": t["metadata"]["labels"], "creationTimestamp": created,
                        "annotations": {"deployment.kubernetes.io/revision": "1", "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas as i64 + surge).to_string()},
                        "ownerReferences": [pods::owner_ref(&d)]},
                    "spec": {"replicas": replicas, "minReadySeconds": w.min_ready_seconds.unwrap_or(0), "selector": rs_sel, "template": t},
                });
                let rs = self
                    .cluster
                    .store
                    .create(well_known::replicasets(), rs, &now)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let plans = ages
                    .into_iter()
                    .map(|age| PodPlan {
                        name: None,
                        age,
                        node: None,
                    })
                    .collect();
                (Some(rs.clone()), rs["spec"]["template"].clone(), plans)
            }
            WorkloadKind::ReplicaSet => {
                let ages = Self::ages(w, replicas)?;
                let oldest = ages.iter().max().copied().unwrap_or_default();
                let created = rfc3339(minus(self.start, oldest + Duration::from_secs(30)));
                let rs = json!({"metadata": {"name": w.name, "namespace": ns, "labels": labels, "annotations": annotations, "creationTimestamp": created},
                    "spec": {"replicas": replicas, "selector": selector, "template": template}});
                let rs = self
                    .cluster
                    .store
                    .create(well_known::replicasets(), rs, &now)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let plans = ages
                    .into_iter()
                    .map(|age| PodPlan {
                        name: None,
                        age,
                        node: None,
                    })
                    .collect();
                (Some(rs), template.clone(), plans)
            }
            WorkloadKind::StatefulSet => {
                let ages = Self::ages(w, replicas)?;
                let oldest = ages.iter().max().copied().unwrap_or_default();
                let created = rfc3339(minus(self.start, oldest + Duration::from_secs(30)));
                let strategy = w.strategy.clone().unwrap_or_else(
                    || json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                let rev = statefulset::revision_name(&w.name, &template);
                let sts = json!({"metadata": {"name": w.name, "namespace": ns, "labels": labels, "annotations": annotations, "creationTimestamp": created},
                    "spec": {"replicas": replicas, "selector": selector, "template": template, "serviceName": w.name, "updateStrategy": strategy,
                        "podManagementPolicy": w.pod_management_policy.clone().unwrap_or_else(|| "OrderedReady".into()), "revisionHistoryLimit": 10,
                        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}},
                    "status": {"currentRevision": rev, "updateRevision": rev, "replicas": 0}});
                let sts = self
                    .cluster
                    .store
                    .create(well_known::statefulsets(), sts, &now)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                // Ordinal i is created after i-1: older ordinals are older pods.
                let mut ages = ages;
                ages.sort_unstable_by(|a, b| b.cmp(a));
                let plans = ages
                    .into_iter()
                    .enumerate()
                    .map(|(i, age)| PodPlan {
                        name: Some(format!("{}-{i}", w.name)),
                        age,
                        node: None,
                    })
                    .collect();
                (Some(sts), template.clone(), plans)
            }
            WorkloadKind::DaemonSet => {
                let age = dur(w.age.as_ref(), Duration::from_hours(1))?;
                let created = rfc3339(minus(self.start, age + Duration::from_secs(30)));
                let strategy = w.strategy.clone().unwrap_or_else(|| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
                let ds = json!({"metadata": {"name": w.name, "namespace": ns, "labels": labels, "annotations": annotations, "creationTimestamp": created},
                    "spec": {"selector": selector, "template": template, "updateStrategy": strategy, "revisionHistoryLimit": 10}});
                let ds = self
                    .cluster
                    .store
                    .create(well_known::daemonsets(), ds, &now)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let dspec = daemonset::daemon_spec(&store_spec_for_pods, "");
                let plans = self
                    .candidates(w, &dspec)
                    .iter()
                    .filter(|i| daemonset::eligible(&dspec, &self.nodes[**i].node))
                    .map(|i| PodPlan {
                        name: None,
                        age,
                        node: Some(*i),
                    })
                    .collect();
                (Some(ds), template.clone(), plans)
            }
            WorkloadKind::Pod => {
                let ages = Self::ages(w, replicas)?;
                let plans = ages
                    .into_iter()
                    .enumerate()
                    .map(|(i, age)| PodPlan {
                        name: Some(if replicas == 1 {
                            w.name.clone()
                        } else {
                            format!("{}-{i}", w.name)
                        }),
                        age,
                        node: None,
                    })
                    .collect();
                (None, template.clone(), plans)
            }
            WorkloadKind::StaticPod => {
                let age = dur(w.age.as_ref(), Duration::from_hours(1))?;
                let cands = self.candidates(w, &store_spec_for_pods);
                let mut tpl = template.clone();
                tpl["metadata"]["name"] = json!(w.name);
                tpl["metadata"]["namespace"] = json!(ns);
                // Static pods of system components tolerate every NoExecute taint, so the taint
                // manager leaves them on a NotReady node.
                let mut tol = tpl["spec"]["tolerations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                tol.push(json!({"operator": "Exists", "effect": "NoExecute"}));
                tpl["spec"]["tolerations"] = Value::Array(tol);
                pods::default_spec(&self.cluster.store, &mut tpl["spec"]);
                let node_names: Vec<String> =
                    cands.iter().map(|i| self.nodes[*i].name.clone()).collect();
                self.cluster.world.static_pods.push(StaticPod {
                    nodes: node_names,
                    template: tpl,
                });
                let plans = cands
                    .iter()
                    .map(|i| PodPlan {
                        name: None,
                        age,
                        node: Some(*i),
                    })
                    .collect();
                (None, template.clone(), plans)
            }
        };
        let n = kind_pods.len();
        self.pods(w, &ns, owner.as_deref(), &pod_template, kind_pods)?;
        tracing::debug!(workload = %w.name, namespace = %ns, pods = n, "loaded workload");
        if let Some(p) = &w.pdb {
            let mut spec = json!({"selector": {"matchLabels": labels}});
            if let Some(v) = &p.min_available {
                spec["minAvailable"] = v.clone();
            }
            if let Some(v) = &p.max_unavailable {
                spec["maxUnavailable"] = v.clone();
            }
            if let Some(v) = &p.unhealthy_pod_eviction_policy {
                spec["unhealthyPodEvictionPolicy"] = json!(v);
            }
            let name = p.name.clone().unwrap_or_else(|| w.name.clone());
            let pdb = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
            self.cluster
                .store
                .create(well_known::pdbs(), pdb, &now)
                .map_err(|e| anyhow::anyhow!("pdb {name}: {e}"))?;
        }
        Ok(())
    }

    /// Creates the initial pods of a workload, placed and Running.
    #[allow(clippy::too_many_lines)]
    fn pods(
        &mut self,
        w: &WorkloadSpec,
        ns: &str,
        owner: Option<&Value>,
        template: &Value,
        plans: Vec<PodPlan>,
    ) -> anyhow::Result<()> {
        let behaviour = Self::behaviour(w)?.unwrap_or_default();
        let start_delay = behaviour
            .start_delay
            .unwrap_or(self.cluster.world.kubelet.start_delay);
        let ready_delay = behaviour
            .ready_delay
            .unwrap_or(self.cluster.world.kubelet.ready_delay);
        let base = match (w.kind, owner) {
            (WorkloadKind::StaticPod, _) => Value::Null,
            (_, Some(o)) => pods::from_template(&self.cluster.store, template, ns, "", Some(o)),
            (_, None) => pods::from_template(&self.cluster.store, template, ns, "", None),
        };
        let req = pod_requests(&base);
        let mut cands = Arc::new(Vec::new());
        let mut cursor = 0usize;
        if plans.iter().any(|p| p.node.is_none()) {
            cands = self.candidates(w, &base["spec"]);
            if !cands.is_empty() {
                cursor = (util::fnv(w.name.as_bytes()) % cands.len() as u64) as usize;
            }
        }
        let now = self.now();
        for plan in plans {
            let created_at = minus(self.start, plan.age);
            let created = rfc3339(created_at);
            let mut pod = match w.kind {
                WorkloadKind::StaticPod => {
                    let idx = plan.node.expect("static pods are planned per node");
                    let tpl = &self
                        .cluster
                        .world
                        .static_pods
                        .last()
                        .expect("registered above")
                        .template;
                    kubelet::mirror_pod(tpl, &self.nodes[idx].node, &created)
                }
                WorkloadKind::StatefulSet => {
                    let o = owner.expect("statefulset");
                    let i: i64 = plan
                        .name
                        .as_deref()
                        .and_then(|n| n.rsplit('-').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let revname = o
                        .ptr("/status/updateRevision")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    statefulset::sts_pod(self.cluster, o, &o["spec"]["template"], i, revname)
                }
                WorkloadKind::DaemonSet => {
                    let o = owner.expect("daemonset");
                    let mut p = base.clone();
                    let node =
                        &self.nodes[plan.node.expect("daemon pods are planned per node")].name;
                    p["spec"] = daemonset::daemon_spec(&p["spec"], node);
                    let rev =
                        statefulset::revision_name(podutil::ns_name(o).1, &o["spec"]["template"]);
                    p["metadata"]["labels"]["controller-revision-hash"] =
                        json!(rev.rsplit('-').next().unwrap_or(""));
                    p["metadata"]["labels"]["pod-template-generation"] = json!("1");
                    p
                }
                _ => base.clone(),
            };
            pod["metadata"]["creationTimestamp"] = json!(created);
            if let Some(name) = &plan.name {
                pod["metadata"]["name"] = json!(name);
            }
            // Placement: planned node (daemons, static pods), else first fit.
            let node_idx = match plan.node {
                Some(i) => {
                    let s = &mut self.nodes[i];
                    s.used.cpu += req.cpu;
                    s.used.memory += req.memory;
                    s.used.pods += 1;
                    for (k, v) in &req.extended {
                        *s.used.extended.entry(k.clone()).or_default() += v;
                    }
                    Some(i)
                }
                None if w.phase.as_deref() == Some("Pending") => None,
                None => self.place(&cands, &mut cursor, &req),
            };
            if let Some(i) = node_idx {
                let node_name = self.nodes[i].name.clone();
                let host_ip = self.nodes[i]
                    .node
                    .ptr("/status/addresses/0/address")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                pod["spec"]["nodeName"] = json!(node_name);
                util::set_condition(&mut pod, "PodScheduled", "True", "", "", &created, false);
                let start = util::plus(created_at, start_delay).min(self.start);
                let ready_at = util::plus(start, ready_delay).min(self.start);
                let ip = if w.host_network {
                    host_ip.clone()
                } else {
                    self.cluster.world.alloc_pod_ip()
                };
                kubelet::running_status(
                    &mut pod,
                    &rfc3339(start),
                    &host_ip,
                    &ip,
                    behaviour.restarts.as_ref(),
                    !behaviour.never_ready,
                );
                if let Some(every) = behaviour
                    .restarts
                    .as_ref()
                    .and_then(|r| r.every)
                    .filter(|e| !e.is_zero())
                {
                    // The container last restarted within the current period.
                    let run = self.start.duration_since(start).as_secs_f64().max(0.0);
                    let since = Duration::from_secs_f64(run % every.as_secs_f64());
                    pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"] =
                        json!(rfc3339(minus(self.start, since)));
                }
                if !behaviour.never_ready {
                    for c in pod["status"]["conditions"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                    {
                        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                            c["lastTransitionTime"] = json!(rfc3339(ready_at));
                        }
                    }
                }
                match w.phase.as_deref() {
                    Some(phase @ ("Succeeded" | "Failed")) => {
                        finish(&mut pod, phase, &rfc3339(ready_at));
                    }
                    Some("Running" | "Pending") | None => {}
                    Some(other) => anyhow::bail!(
                        "phase {other:?}: expected Pending, Running, Succeeded or Failed"
                    ),
                }
            } else if w.phase.as_deref() != Some("Pending") {
                tracing::warn!(workload = %w.name, namespace = ns, "no node has room for a pod; it starts Pending");
            }
            if plan.name.is_some() || w.kind == WorkloadKind::StaticPod {
                self.cluster
                    .store
                    .create(well_known::pods(), pod, &now)
                    .map_err(|e| anyhow::anyhow!("pod: {e}"))?;
            } else {
                let prefix = owner
                    .map_or(w.name.as_str(), |o| podutil::ns_name(o).1)
                    .to_owned();
                let mut ok = false;
                for _ in 0..16 {
                    pod["metadata"]["name"] =
                        json!(format!("{prefix}-{}", self.cluster.world.name_suffix()));
                    if self
                        .cluster
                        .store
                        .create(well_known::pods(), pod.clone(), &now)
                        .is_ok()
                    {
                        ok = true;
                        break;
                    }
                }
                anyhow::ensure!(ok, "cannot name a pod of {prefix}");
            }
        }
        Ok(())
    }

    fn pdbs(&mut self) -> anyhow::Result<()> {
        let now = self.now();
        for p in &self.scenario.pdbs {
            anyhow::ensure!(
                p.min_available.is_some() != p.max_unavailable.is_some(),
                "pdb {}: exactly one of minAvailable and maxUnavailable",
                p.name
            );
            anyhow::ensure!(
                p.select_all || !p.match_labels.is_empty(),
                "pdb {}: matchLabels or selectAll: true",
                p.name
            );
            let ns = p.namespace.clone().unwrap_or_else(|| "default".into());
            let selector = if p.select_all {
                json!({})
            } else {
                json!({"matchLabels": p.match_labels})
            };
            let mut spec = json!({"selector": selector});
            if let Some(v) = &p.min_available {
                spec["minAvailable"] = v.clone();
            }
            if let Some(v) = &p.max_unavailable {
                spec["maxUnavailable"] = v.clone();
            }
            if let Some(v) = &p.unhealthy_pod_eviction_policy {
                spec["unhealthyPodEvictionPolicy"] = json!(v);
            }
            let pdb = json!({"metadata": {"name": p.name, "namespace": ns}, "spec": spec});
            self.cluster
                .store
                .create(well_known::pdbs(), pdb, &now)
                .map_err(|e| anyhow::anyhow!("pdb {}: {e}", p.name))?;
        }
        Ok(())
    }

    fn helm_releases(&mut self) -> anyhow::Result<()> {
        for r in &self.scenario.helm_releases {
            self.ensure_namespace(
                r.namespace.as_deref().unwrap_or("default"),
                &BTreeMap::new(),
            );
        }
        crate::helm::load(self.cluster, &self.scenario.helm_releases)
    }

    fn objects(&mut self) -> anyhow::Result<()> {
        let now = self.now();
        for o in &self.scenario.objects {
            let api_version = o["apiVersion"]
                .as_str()
                .context("objects: apiVersion missing")?;
            let kind = o["kind"].as_str().context("objects: kind missing")?;
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let res = crate::resources::find_kind(group, kind)
                .with_context(|| format!("objects: kind {kind} in {api_version} is not served"))?;
            let mut obj = o.clone();
            if res.namespaced && obj.ptr("/metadata/namespace").is_none() {
                obj["metadata"]["namespace"] = json!("default");
            }
            if res.key() == well_known::namespaces().key() && obj.ptr("/status/phase").is_none() {
                obj["status"]["phase"] = json!("Active");
            }
            if let Some(ns) = obj
                .ptr("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
            {
                self.ensure_namespace(&ns, &BTreeMap::new());
            }
            self.cluster
                .store
                .create(res, obj, &now)
                .map_err(|e| anyhow::anyhow!("objects: {kind}: {e}"))?;
        }
        Ok(())
    }
}

/// Creates a node as a scenario or an EKS node group describes it, `n.age` before `start`.
fn create_node(
    cluster: &mut Cluster,
    spec: &ClusterSpec,
    n: &NodeInput<'_>,
    start: Timestamp,
) -> anyhow::Result<Arc<Value>> {
    let (cap, alloc) = capacity(n.instance_type, n.capacity);
    let ip = cluster.world.alloc_node_ip();
    let version = n.version.map_or_else(
        || {
            format!(
                "v{}.0-eks-{:07x}",
                spec.version,
                util::fnv(spec.version.as_bytes()) & 0xfff_ffff
            )
        },
        str::to_owned,
    );
    let mut labels = json!({
        "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": n.instance_type,
        "node.kubernetes.io/instance-type": n.instance_type,
        "topology.kubernetes.io/region": spec.region, "topology.kubernetes.io/zone": n.zone,
        "failure-domain.beta.kubernetes.io/region": spec.region, "failure-domain.beta.kubernetes.io/zone": n.zone,
    });
    if let Some(g) = n.group {
        labels["eks.amazonaws.com/nodegroup"] = json!(g);
        labels["eks.amazonaws.com/capacityType"] = json!(n.capacity_type);
        labels["eks.amazonaws.com/nodegroup-image"] =
            json!(format!("ami-{:016x}0", util::fnv(g.as_bytes())));
    }
    if alloc.get("nvidia.com/gpu").is_some() {
        labels["nvidia.com/gpu.present"] = json!("true");
    }
    for (k, v) in n.labels {
        labels[k] = json!(v);
    }
    let created = rfc3339(minus(start, n.age));
    let mut node = json!({
        "metadata": {"name": n.name, "labels": labels, "creationTimestamp": created,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"providerID": format!("aws:///{}/i-{:016x}0", n.zone, util::fnv(n.name.as_bytes()))},
        "status": {
            "capacity": cap, "allocatable": alloc,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": n.name}, {"type": "InternalDNS", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "operatingSystem": "linux", "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.27", "osImage": "Amazon Linux 2023.7.20250512", "kernelVersion": "6.1.134-152.225.amzn2023.x86_64",
                "machineID": format!("{:032x}", util::fnv(n.name.as_bytes())), "systemUUID": format!("ec2{:029x}", util::fnv(n.name.as_bytes())), "bootID": format!("{:032x}", util::fnv(created.as_bytes()))},
        },
    });
    if !n.taints.is_empty() {
        node["spec"]["taints"] = Value::Array(n.taints.to_vec());
    }
    if n.unschedulable {
        node["spec"]["unschedulable"] = json!(true);
    }
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let reason = if t == "PIDPressure" {
            "KubeletHasSufficientPID".to_owned()
        } else {
            format!("KubeletHasNo{t}")
        };
        util::set_condition(&mut node, t, "False", &reason, "", &created, false);
    }
    util::set_condition(
        &mut node,
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
        &created,
        false,
    );
    for c in node["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        c["lastHeartbeatTime"] = c["lastTransitionTime"].clone();
    }
    let now = cluster.now();
    cluster
        .store
        .create(well_known::nodes(), node, &now)
        .map_err(|e| anyhow::anyhow!("node {}: {e}", n.name))
}

/// The scenario's input for node `i` of group `g`.
fn group_input<'g>(g: &'g NodeGroupSpec, i: u32, zones: &[String], age: Duration) -> NodeInput<'g> {
    let prefix = g.name_prefix.as_deref().unwrap_or(&g.name);
    NodeInput {
        name: format!("{prefix}-{i}"),
        group: Some(&g.name),
        instance_type: g.instance_type.as_deref().unwrap_or("m5.xlarge"),
        capacity: &g.capacity,
        labels: &g.labels,
        taints: &g.taints,
        version: g.version.as_deref(),
        zone: zones[i as usize % zones.len()].clone(),
        capacity_type: g.capacity_type.as_deref().unwrap_or("ON_DEMAND"),
        unschedulable: g.unschedulable,
        age,
    }
}

/// Creates nodes `indexes` of node group `group` at run time, as EKS scaling a managed node
/// group does: named, labelled and sized exactly as a scenario's group nodes, Ready, with a
/// loopback InternalIP. Their age is the group's `age` (now when absent). Returns the names.
pub fn add_group_nodes(
    cluster: &mut Cluster,
    spec: &ClusterSpec,
    group: &NodeGroupSpec,
    indexes: std::ops::Range<u32>,
) -> anyhow::Result<Vec<String>> {
    let zones = zones_of(spec, group);
    let age = dur(group.age.as_ref(), Duration::ZERO)?;
    let start = cluster.clock.now();
    let mut names = Vec::new();
    for i in indexes {
        let input = group_input(group, i, &zones, age);
        create_node(cluster, spec, &input, start)?;
        names.push(input.name);
    }
    cluster.world.wake();
    Ok(names)
}

fn zones_of(spec: &ClusterSpec, g: &NodeGroupSpec) -> Vec<String> {
    if g.zones.is_empty() {
        ["a", "b", "c"]
            .iter()
            .map(|z| format!("{}{z}", spec.region))
            .collect()
    } else {
        g.zones.clone()
    }
}

/// One initial pod to create.
struct PodPlan {
    name: Option<String>,
    age: Duration,
    node: Option<usize>,
}

/// A finished pod: containers terminated with exit code 0 (Succeeded) or 1 (Failed).
fn finish(pod: &mut Value, phase: &str, at: &str) {
    pod["status"]["phase"] = json!(phase);
    let code = i32::from(phase == "Failed");
    let reason = if phase == "Failed" {
        "Error"
    } else {
        "Completed"
    };
    for c in pod
        .ptr_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let started = c
            .ptr("/state/running/startedAt")
            .cloned()
            .unwrap_or(json!(at));
        c["state"] = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": at}});
        c["ready"] = json!(false);
        c["started"] = json!(false);
    }
    for t in ["Ready", "ContainersReady"] {
        util::set_condition(pod, t, "False", "PodCompleted", "", at, false);
    }
}

fn workload_namespace(w: &WorkloadSpec) -> &str {
    w.namespace
        .as_deref()
        .unwrap_or(if w.kind == WorkloadKind::StaticPod {
            "kube-system"
        } else {
            "default"
        })
}

fn workload_labels(w: &WorkloadSpec) -> BTreeMap<String, String> {
    if w.labels.is_empty() {
        BTreeMap::from([("app".to_owned(), w.name.clone())])
    } else {
        w.labels.clone()
    }
}

/// `NotReady`, `Unreachable` or `Ready`.
fn parse_state(s: &str) -> anyhow::Result<(bool, NodeDownReason)> {
    match s {
        "Ready" => Ok((true, NodeDownReason::NotReady)),
        "NotReady" => Ok((false, NodeDownReason::NotReady)),
        "Unreachable" => Ok((false, NodeDownReason::Unreachable)),
        other => anyhow::bail!("node state {other:?}: expected Ready, NotReady or Unreachable"),
    }
}
