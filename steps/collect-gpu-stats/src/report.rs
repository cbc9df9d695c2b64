//! The report: one versioned JSON document per run (schema in the README, "Report schema"),
//! CSV rows for Athena, and the one-line summary for Argo. Built by a pure function from the
//! aggregated window, so it can be tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::aggregation::{Figures, GpuAgg, GpuKey, NodeAgg, fields, figures};
use crate::attribution::{Owner, PodRef, Resolved};
use crate::discovery::{GpuNode, Inventory};
use crate::states::{State, Thresholds, classify};
use crate::stats::round3;

/// The report's schema version: bumped on any change that breaks a reader.
pub const SCHEMA_VERSION: u32 = 1;

/// The time span the report covers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// First reading (RFC 3339).
    pub start: String,
    /// Last reading (RFC 3339); the S3 key's date and hour.
    pub end: String,
    /// `end - start`, seconds (0 for a single scrape).
    pub seconds: f64,
    /// Scrape rounds (or Prometheus points) in the window.
    pub samples: u32,
    /// `exporters-direct`, `exporters-apiserver` or `prometheus`.
    pub source: &'static str,
}

/// A XID seen on a GPU.
#[derive(Clone, Debug, Serialize)]
pub struct Xid {
    /// XID code.
    pub code: u32,
    /// The exporter's `err_msg`.
    pub message: String,
}

/// One row per GPU (and per MIG instance).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuRow {
    /// Node name.
    pub node: String,
    /// EC2 instance type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// ON_DEMAND / SPOT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// EC2 instance ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// GPU index on the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// GPU UUID (the parent's for a MIG instance).
    pub uuid: String,
    /// MIG GPU instance ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_instance: Option<String>,
    /// MIG profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_profile: Option<String>,
    /// Model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// PCI bus ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    /// Driver version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// State over the window.
    pub state: State,
    /// Pods the exporter attributed the GPU to (several on a shared GPU).
    pub pods: Vec<PodRef>,
    /// The first holder's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Why the owner is only partly known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_note: Option<String>,
    /// Scrapes that had this GPU.
    pub scrapes: u32,
    /// Window figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Non-zero XID codes seen.
    pub xids: Vec<Xid>,
}

/// Counts by state.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateCounts {
    /// Whole GPUs.
    pub gpus: u64,
    /// MIG instances (rows of their own; not in the state counts).
    pub mig_instances: u64,
    /// Active.
    pub active: u64,
    /// Idle-held.
    pub idle_held: u64,
    /// Idle.
    pub idle: u64,
    /// Unallocated.
    pub unallocated: u64,
    /// Unknown.
    pub unknown: u64,
}

impl StateCounts {
    fn add(&mut self, s: State) {
        self.gpus += 1;
        match s {
            State::Active => self.active += 1,
            State::IdleHeld => self.idle_held += 1,
            State::Idle => self.idle += 1,
            State::Unallocated => self.unallocated += 1,
            State::Unknown => self.unknown += 1,
        }
    }
}

/// A roll-up per owner or namespace, over whole GPUs.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollup {
    /// Owner kind (owner roll-ups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Owner name (owner roll-ups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GPUs by state.
    pub states: StateCounts,
    /// Mean of the GPUs' mean utilisation, %.
    pub util_mean_percent: Option<f64>,
    /// Sum of the GPUs' peak framebuffer use, MiB.
    pub fb_used_max_mib: f64,
    /// Framebuffer held by idle-held GPUs, MiB.
    pub idle_held_fb_mib: f64,
    /// Energy, kWh.
    pub energy_kwh: f64,
    /// GPU-hours held over the window.
    pub gpu_hours: f64,
    /// GPU-hours held without work (idle-held + idle).
    pub idle_gpu_hours: f64,
    #[serde(skip)]
    util_sum: f64,
    #[serde(skip)]
    util_n: u64,
}

impl Rollup {
    fn add(&mut self, row: &GpuRow, hours: f64) {
        self.states.add(row.state);
        if let Some(u) = row.figures.util_percent {
            self.util_sum += u.mean;
            self.util_n += 1;
            self.util_mean_percent = Some(round3(self.util_sum / self.util_n as f64));
        }
        let fb = row.figures.fb_used_max_mib.unwrap_or(0.0);
        self.fb_used_max_mib = round3(self.fb_used_max_mib + fb);
        if row.state == State::IdleHeld {
            self.idle_held_fb_mib = round3(self.idle_held_fb_mib + fb);
        }
        self.energy_kwh = (self.energy_kwh + row.figures.energy_kwh.unwrap_or(0.0)).max(0.0);
        self.energy_kwh = (self.energy_kwh * 1e6).round() / 1e6;
        self.gpu_hours = round3(self.gpu_hours + hours);
        if matches!(row.state, State::IdleHeld | State::Idle) {
            self.idle_gpu_hours = round3(self.idle_gpu_hours + hours);
        }
    }
}

/// A GPU worth a look.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthItem {
    /// Node.
    pub node: String,
    /// EC2 instance ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// GPU index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// UUID.
    pub uuid: String,
    /// MIG instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_instance: Option<String>,
    /// `xid`, `uncorrectable-remapped-rows`, `row-remap-failure`, `pcie-replays`,
    /// `thermal-throttle`, `clock-events`.
    pub issue: &'static str,
    /// What was seen.
    pub detail: String,
}

/// A pod requesting GPUs that no exporter attributes a GPU to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnattributedPod {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Node.
    pub node: String,
    /// GPUs requested.
    pub gpus: u32,
}

/// The allocation cross-check.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// GPUs requested by bound, unfinished pods.
    pub requested_gpus: u64,
    /// GPUs the exporters attribute to a pod.
    pub attributed_gpus: u64,
    /// Pods on scraped nodes that request GPUs and appear in no exporter's attribution
    /// (usually broken pod mapping in the exporter).
    pub unattributed_pods: Vec<UnattributedPod>,
    /// Pods requesting GPUs on nodes that were not scraped (not checked).
    pub pods_on_unscraped_nodes: u64,
}

/// A node that could not be scraped.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedNode {
    /// Node.
    pub node: String,
    /// `namespace/name` of its exporter, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exporter: Option<String>,
    /// `no-exporter`, `unreachable`, `timeout`, `http-status`, `proxy-error`, `no-address`, …
    pub reason: String,
    /// The last error.
    pub message: String,
}

/// How complete the data is: trends are only trustworthy when coverage is stable.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataQuality {
    /// Nodes with `nvidia.com/gpu` capacity.
    pub gpu_nodes: u64,
    /// Exporter pods found (both label schemes).
    pub exporters: u64,
    /// Exporter pods by label scheme (`helm`, `gpu-operator`).
    pub exporter_schemes: BTreeMap<String, u64>,
    /// Nodes with at least one successful scrape.
    pub nodes_scraped: u64,
    /// Nodes without data, with the reason.
    pub nodes_failed: Vec<FailedNode>,
    /// Scrapes (or Prometheus queries) sent and answered.
    pub scrapes_attempted: u64,
    /// Successful scrapes.
    pub scrapes_succeeded: u64,
    /// GPUs the nodes advertise, on scraped nodes.
    pub gpus_advertised: u64,
    /// Whole GPUs the exporters reported on scraped nodes.
    pub gpus_reported: u64,
    /// Exporter image tags (versions), with counts.
    pub exporter_versions: BTreeMap<String, u64>,
    /// `DCGM_FI_DRIVER_VERSION` values, with GPU counts.
    pub driver_versions: BTreeMap<String, u64>,
    /// Host label names seen (`Hostname`, or `hostname` from builds after 4.8.2).
    pub host_labels: Vec<String>,
    /// Nodes whose exporter uses the old namespace (`uuid`, `pod_name`).
    pub old_namespace_nodes: u64,
    /// Expected families missing, with the nodes that lack them.
    pub missing_families: BTreeMap<String, Vec<String>>,
    /// Lines skipped as unparsable (e.g. `ERROR - FAILED TO CONVERT TO STRING`).
    pub skipped_lines: u64,
    /// DCGM blank values dropped.
    pub blank_values: u64,
    /// Owner lookups that failed.
    pub owner_lookup_errors: u64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Cluster name.
    pub cluster: String,
    /// Window.
    pub window: Window,
    /// Thresholds used.
    pub thresholds: Thresholds,
    /// Counts by state over whole GPUs.
    pub totals: StateCounts,
    /// Per GPU and MIG instance, ordered by node, GPU index, instance.
    pub gpus: Vec<GpuRow>,
    /// Per owner, most GPUs first.
    pub owners: Vec<Rollup>,
    /// Per namespace, most GPUs first.
    pub namespaces: Vec<Rollup>,
    /// GPUs worth a look.
    pub health: Vec<HealthItem>,
    /// Allocation cross-check.
    pub allocation: Allocation,
    /// Data quality.
    pub data_quality: DataQuality,
}

/// Inputs besides the aggregates.
pub struct Inputs<'a> {
    /// Cluster name.
    pub cluster: String,
    /// Window.
    pub window: Window,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// Discovery.
    pub inventory: &'a Inventory,
    /// Node → aggregate, for nodes with data.
    pub nodes: &'a BTreeMap<String, NodeAgg>,
    /// Owners of holder pods (`namespace/pod` → owner).
    pub owners: &'a BTreeMap<String, Resolved>,
    /// Data-quality counts gathered while collecting.
    pub quality: DataQuality,
}

fn index_key(k: &GpuKey, a: &GpuAgg) -> (String, u32, String, u32) {
    let idx = a
        .index
        .as_deref()
        .and_then(|i| i.parse().ok())
        .unwrap_or(u32::MAX);
    let mig = k
        .mig_instance
        .as_deref()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    (
        k.node.clone(),
        idx,
        k.mig_instance.clone().unwrap_or_default(),
        mig,
    )
}

fn health(row: &GpuRow, agg: &GpuAgg, out: &mut Vec<HealthItem>) {
    let mut push = |issue, detail: String| {
        out.push(HealthItem {
            node: row.node.clone(),
            instance_id: row.instance_id.clone(),
            gpu: row.gpu.clone(),
            uuid: row.uuid.clone(),
            mig_instance: row.mig_instance.clone(),
            issue,
            detail,
        });
    };
    for x in &row.xids {
        push("xid", format!("XID {} ({})", x.code, x.message));
    }
    if agg.remap_uncorrectable.is_some_and(|v| v > 0.0) {
        push(
            "uncorrectable-remapped-rows",
            format!("{} rows", agg.remap_uncorrectable.unwrap_or(0.0)),
        );
    }
    if agg.remap_failure.is_some_and(|v| v > 0.0) {
        push(
            "row-remap-failure",
            "row remapping failed (RMA candidate)".into(),
        );
    }
    let replays = crate::stats::increase(&agg.pcie_replay);
    if replays > 0.0 {
        push(
            "pcie-replays",
            format!("{replays} PCIe replays in the window"),
        );
    }
    if let Some(t) = row.figures.thermal_throttle_percent.filter(|t| *t > 0.0) {
        push(
            "thermal-throttle",
            format!("throttled {t}% of the window by thermal limits"),
        );
    }
    if !row.figures.clock_events.is_empty() {
        push("clock-events", row.figures.clock_events.join(", "));
    }
}

/// Builds the report.
#[must_use]
pub fn build(inp: Inputs<'_>) -> Report {
    let hours = inp.window.seconds / 3600.0;
    let mut rows = Vec::new();
    let mut health_items = Vec::new();
    let mut quality = inp.quality;
    let mut attributed: BTreeSet<String> = BTreeSet::new();
    for (node, agg) in inp.nodes {
        let info = inp
            .inventory
            .nodes
            .get(node)
            .cloned()
            .unwrap_or_else(|| GpuNode {
                name: node.clone(),
                ..GpuNode::default()
            });
        let mut keys: Vec<(&GpuKey, &GpuAgg)> = agg.gpus.iter().collect();
        keys.sort_by_key(|(k, a)| index_key(k, a));
        for (key, g) in keys {
            let f = figures(g, inp.window.seconds);
            let pods: Vec<PodRef> = g.holders.iter().cloned().collect();
            let resolved = pods.first().and_then(|p| inp.owners.get(&p.key()));
            let state = classify(&f, !pods.is_empty(), inp.thresholds);
            for p in &pods {
                attributed.insert(p.key());
            }
            let row = GpuRow {
                node: node.clone(),
                instance_type: info.instance_type.clone(),
                capacity_type: info.capacity_type.clone(),
                instance_id: info.instance_id.clone(),
                gpu: g.index.clone(),
                uuid: key.uuid.clone(),
                mig_instance: key.mig_instance.clone(),
                mig_profile: g.mig_profile.clone(),
                model: g.model.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                driver_version: g.driver.clone(),
                state,
                pods,
                owner: resolved.and_then(|r| r.owner.clone()),
                owner_note: resolved.and_then(|r| r.note.clone()),
                scrapes: g.scrapes,
                figures: f,
                xids: g
                    .xids
                    .iter()
                    .map(|(c, m)| Xid {
                        code: *c,
                        message: m.clone(),
                    })
                    .collect(),
            };
            health(&row, g, &mut health_items);
            if key.mig_instance.is_none() {
                quality.gpus_reported += 1;
                if let Some(d) = &g.driver {
                    *quality.driver_versions.entry(d.clone()).or_default() += 1;
                }
            }
            rows.push(row);
        }
        for fam in fields::EXPECTED {
            if !agg.families.contains(*fam) {
                quality
                    .missing_families
                    .entry((*fam).to_owned())
                    .or_default()
                    .push(node.clone());
            }
        }
        for h in &agg.host_labels {
            if !quality.host_labels.contains(h) {
                quality.host_labels.push(h.clone());
            }
        }
        quality.old_namespace_nodes += u64::from(agg.old_namespace);
        quality.gpus_advertised += u64::from(info.gpus);
    }
    quality.host_labels.sort();

    let (totals, owners, namespaces) = rollups(&rows, hours);
    let allocation = allocation(inp.inventory, inp.nodes, &rows, &attributed);
    Report {
        schema_version: SCHEMA_VERSION,
        cluster: inp.cluster,
        window: inp.window,
        thresholds: inp.thresholds,
        totals,
        gpus: rows,
        owners,
        namespaces,
        health: health_items,
        allocation,
        data_quality: quality,
    }
}

/// State totals and roll-ups per owner and per namespace, over whole GPUs.
fn rollups(rows: &[GpuRow], hours: f64) -> (StateCounts, Vec<Rollup>, Vec<Rollup>) {
    let mut totals = StateCounts::default();
    let mut owners: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, Rollup> = BTreeMap::new();
    for row in rows {
        if row.mig_instance.is_some() {
            totals.mig_instances += 1;
            continue;
        }
        totals.add(row.state);
        let Some(first) = row.pods.first() else {
            continue;
        };
        namespaces
            .entry(first.namespace.clone())
            .or_insert_with(|| Rollup {
                namespace: first.namespace.clone(),
                ..Rollup::default()
            })
            .add(row, hours);
        if let Some(o) = &row.owner {
            owners
                .entry(o.key())
                .or_insert_with(|| Rollup {
                    kind: Some(o.kind.clone()),
                    namespace: o.namespace.clone(),
                    name: Some(o.name.clone()),
                    ..Rollup::default()
                })
                .add(row, hours);
        }
    }
    let ranked = |m: BTreeMap<String, Rollup>| {
        let mut v: Vec<Rollup> = m.into_values().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.states.gpus));
        v
    };
    (totals, ranked(owners), ranked(namespaces))
}

/// The allocation cross-check: GPU pods on scraped nodes that no exporter attributes.
fn allocation(
    inv: &Inventory,
    nodes: &BTreeMap<String, NodeAgg>,
    rows: &[GpuRow],
    attributed: &BTreeSet<String>,
) -> Allocation {
    let mut allocation = Allocation::default();
    for gp in &inv.gpu_pods {
        let ns = gp.pod.metadata.namespace.clone().unwrap_or_default();
        let name = gp.pod.metadata.name.clone().unwrap_or_default();
        let node = gp
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        allocation.requested_gpus += u64::from(gp.gpus);
        if !nodes.contains_key(&node) {
            allocation.pods_on_unscraped_nodes += 1;
        } else if !attributed.contains(&format!("{ns}/{name}")) {
            allocation.unattributed_pods.push(UnattributedPod {
                namespace: ns,
                pod: name,
                node,
                gpus: gp.gpus,
            });
        }
    }
    allocation.attributed_gpus = rows
        .iter()
        .filter(|r| r.mig_instance.is_none() && !r.pods.is_empty())
        .count() as u64;
    allocation
}

/// The one-line summary for Argo, e.g. "12 GPUs on 2 nodes: 8 active, 3 idle-held (ml/nb-0
/// holds 72 GiB at 0%), 1 unallocated; 1 of 3 nodes not scraped".
#[must_use]
pub fn summary(r: &Report) -> String {
    let t = &r.totals;
    let mut s = format!(
        "{} GPUs on {} nodes: {} active, {} idle-held",
        t.gpus, r.data_quality.nodes_scraped, t.active, t.idle_held
    );
    let worst = r
        .gpus
        .iter()
        .filter(|g| g.state == State::IdleHeld && g.mig_instance.is_none())
        .max_by(|a, b| {
            a.figures
                .fb_used_max_mib
                .unwrap_or(0.0)
                .total_cmp(&b.figures.fb_used_max_mib.unwrap_or(0.0))
        });
    if let Some(g) = worst
        && let Some(p) = g.pods.first()
    {
        let gib = g.figures.fb_used_max_mib.unwrap_or(0.0) / 1024.0;
        let util = g.figures.util_percent.map_or(0.0, |u| u.mean);
        let _ = write!(s, " ({} holds {gib:.0} GiB at {util:.0} %)", p.key());
    }
    let _ = write!(s, ", {} idle, {} unallocated", t.idle, t.unallocated);
    if t.unknown > 0 {
        let _ = write!(s, ", {} unknown", t.unknown);
    }
    let failed = r.data_quality.nodes_failed.len();
    if failed > 0 {
        let _ = write!(
            s,
            "; {failed} of {} GPU nodes not scraped",
            r.data_quality
                .gpu_nodes
                .max((failed as u64) + r.data_quality.nodes_scraped)
        );
    }
    if !r.allocation.unattributed_pods.is_empty() {
        let _ = write!(
            s,
            "; {} GPU pods missing from exporter attribution",
            r.allocation.unattributed_pods.len()
        );
    }
    if !r.health.is_empty() {
        let _ = write!(s, "; {} health findings", r.health.len());
    }
    s
}
