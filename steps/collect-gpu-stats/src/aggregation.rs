//! Per-GPU aggregation over a window. A GPU is its node, `UUID` and MIG instance (`GPU_I_ID`):
//! a MIG GPU has its whole-GPU row plus one row per instance. Readings are deduplicated by that
//! key, except `DCGM_FI_DEV_GPU_UTIL` and `DCGM_FI_DEV_FB_USED`, which exporter 4.8.2+ splits
//! per pod on shared GPUs: those are summed per scrape.

use std::collections::{BTreeMap, BTreeSet};

use crate::attribution::{self, PodRef};
use crate::sample::{Sample, Snapshot};
use crate::stats::{self, Summary};

/// DCGM field names the aggregation reads.
pub mod fields {
    /// GPU utilisation, %.
    pub const GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
    /// Graphics/compute engine active, ratio.
    pub const GR_ENGINE_ACTIVE: &str = "DCGM_FI_PROF_GR_ENGINE_ACTIVE";
    /// Tensor pipe active, ratio.
    pub const TENSOR_ACTIVE: &str = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE";
    /// Framebuffer used, MiB.
    pub const FB_USED: &str = "DCGM_FI_DEV_FB_USED";
    /// Framebuffer free, MiB.
    pub const FB_FREE: &str = "DCGM_FI_DEV_FB_FREE";
    /// Framebuffer reserved, MiB.
    pub const FB_RESERVED: &str = "DCGM_FI_DEV_FB_RESERVED";
    /// Power draw, W.
    pub const POWER: &str = "DCGM_FI_DEV_POWER_USAGE";
    /// GPU temperature, °C.
    pub const GPU_TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
    /// Energy since driver load, mJ.
    pub const ENERGY: &str = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION";
    /// Last XID.
    pub const XID: &str = "DCGM_FI_DEV_XID_ERRORS";
    /// Time throttled by thermal limits, ns (opt-in).
    pub const THERMAL_VIOLATION: &str = "DCGM_FI_DEV_THERMAL_VIOLATION";
    /// Time throttled by the power cap, ns (opt-in).
    pub const POWER_VIOLATION: &str = "DCGM_FI_DEV_POWER_VIOLATION";
    /// Clock events in a sliding window, label `clock_event` (opt-in).
    pub const CLOCK_EVENTS: &str = "DCGM_EXP_CLOCK_EVENTS_COUNT";
    /// Uncorrectable remapped rows.
    pub const REMAP_UNCORRECTABLE: &str = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS";
    /// Row remap failure, 0/1.
    pub const REMAP_FAILURE: &str = "DCGM_FI_DEV_ROW_REMAP_FAILURE";
    /// PCIe replays.
    pub const PCIE_REPLAY: &str = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER";

    /// Families a complete report wants; absent ones are listed in the data-quality block.
    pub const EXPECTED: &[&str] = &[
        GPU_UTIL,
        FB_USED,
        FB_FREE,
        POWER,
        GPU_TEMP,
        ENERGY,
        GR_ENGINE_ACTIVE,
        TENSOR_ACTIVE,
        XID,
    ];
}

/// Which GPU (or MIG instance) a series belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpuKey {
    /// Node name.
    pub node: String,
    /// `UUID` (`uuid` in old-namespace mode); the parent's for MIG instances.
    pub uuid: String,
    /// `GPU_I_ID`, for MIG instances.
    pub mig_instance: Option<String>,
}

/// Everything read about one GPU over the window.
#[derive(Clone, Debug, Default)]
pub struct GpuAgg {
    /// `gpu` index.
    pub index: Option<String>,
    /// `modelName`.
    pub model: Option<String>,
    /// `pci_bus_id`.
    pub pci_bus_id: Option<String>,
    /// `GPU_I_PROFILE`.
    pub mig_profile: Option<String>,
    /// `DCGM_FI_DRIVER_VERSION` label.
    pub driver: Option<String>,
    /// Utilisation per scrape, % (GPU_UTIL; for MIG instances GR_ENGINE_ACTIVE × 100).
    pub util: Vec<f64>,
    /// GR_ENGINE_ACTIVE per scrape, ratio.
    pub gr_active: Vec<f64>,
    /// Tensor active per scrape, ratio.
    pub tensor_active: Vec<f64>,
    /// FB used per scrape, MiB.
    pub fb_used: Vec<f64>,
    /// FB free per scrape, MiB.
    pub fb_free: Vec<f64>,
    /// FB reserved per scrape, MiB.
    pub fb_reserved: Vec<f64>,
    /// Power per scrape, W.
    pub power: Vec<f64>,
    /// Temperature per scrape, °C.
    pub temp: Vec<f64>,
    /// Energy counter per scrape, mJ.
    pub energy: Vec<f64>,
    /// Thermal violation counter per scrape, ns.
    pub thermal_violation: Vec<f64>,
    /// Power violation counter per scrape, ns.
    pub power_violation: Vec<f64>,
    /// Clock event kinds seen with a non-zero count.
    pub clock_events: BTreeSet<String>,
    /// Non-zero XID codes seen, with their message.
    pub xids: BTreeMap<u32, String>,
    /// Latest uncorrectable remapped rows.
    pub remap_uncorrectable: Option<f64>,
    /// Latest remap failure flag.
    pub remap_failure: Option<f64>,
    /// PCIe replay counter per scrape.
    pub pcie_replay: Vec<f64>,
    /// Pods the exporter attributed the GPU to.
    pub holders: BTreeSet<PodRef>,
    /// Scrapes that had this GPU.
    pub scrapes: u32,
}

/// One node's window: its GPUs, the families seen, the label scheme.
#[derive(Clone, Debug, Default)]
pub struct NodeAgg {
    /// GPUs by key.
    pub gpus: BTreeMap<GpuKey, GpuAgg>,
    /// Metric families seen.
    pub families: BTreeSet<String>,
    /// Host label names seen (`Hostname`, `hostname`).
    pub host_labels: BTreeSet<String>,
    /// Old-namespace mode (`uuid`, `pod_name` labels) seen.
    pub old_namespace: bool,
}

/// The exporter pod a scrape came from, whose own name must not read as a workload's.
pub type ExporterPod<'a> = Option<(&'a str, &'a str)>;

fn uuid_of(s: &Sample) -> Option<&str> {
    s.label("UUID").or_else(|| s.label("uuid"))
}

/// Aggregates one node's snapshots.
#[must_use]
pub fn aggregate(node: &str, snapshots: &[Snapshot], exporter: ExporterPod<'_>) -> NodeAgg {
    let mut out = NodeAgg::default();
    for snap in snapshots {
        add(&mut out, node, snap, exporter);
    }
    out
}

/// Adds one scrape of `node` to its aggregate (scrapes are folded in as they arrive, so a
/// body and its samples are dropped at once).
pub fn add(out: &mut NodeAgg, node: &str, snap: &Snapshot, exporter: ExporterPod<'_>) {
    {
        // Per scrape: key → field → readings (summed for split fields, first for the rest).
        let mut seen: BTreeMap<GpuKey, BTreeMap<&str, f64>> = BTreeMap::new();
        for s in &snap.samples {
            out.families.insert(s.name.clone());
            for h in ["Hostname", "hostname"] {
                if s.labels.contains_key(h) {
                    out.host_labels.insert(h.to_owned());
                }
            }
            if s.labels.contains_key("uuid") || s.labels.contains_key("pod_name") {
                out.old_namespace = true;
            }
            let Some(uuid) = uuid_of(s) else { continue };
            let key = GpuKey {
                node: node.to_owned(),
                uuid: uuid.to_owned(),
                mig_instance: s.label("GPU_I_ID").map(str::to_owned),
            };
            let agg = out.gpus.entry(key.clone()).or_default();
            fill_identity(agg, s);
            if let Some(h) = attribution::holder_from_labels(&s.labels, exporter) {
                agg.holders.insert(h);
            }
            match s.name.as_str() {
                fields::XID => {
                    if s.value > 0.0 {
                        let msg = s.label("err_msg").unwrap_or("").to_owned();
                        agg.xids.insert(s.value as u32, msg);
                    }
                    continue;
                }
                fields::CLOCK_EVENTS => {
                    if s.value > 0.0 {
                        let kind = s.label("clock_event").unwrap_or("unknown").to_owned();
                        agg.clock_events.insert(kind);
                    }
                    continue;
                }
                fields::REMAP_UNCORRECTABLE => agg.remap_uncorrectable = Some(s.value),
                fields::REMAP_FAILURE => agg.remap_failure = Some(s.value),
                _ => {}
            }
            let per = seen.entry(key).or_default();
            let split = matches!(s.name.as_str(), fields::GPU_UTIL | fields::FB_USED);
            match per.get_mut(s.name.as_str()) {
                Some(v) if split => *v += s.value,
                Some(_) => {}
                None => {
                    per.insert(s.name.as_str(), s.value);
                }
            }
        }
        for (key, per) in seen {
            let mig = key.mig_instance.is_some();
            let agg = out.gpus.get_mut(&key).expect("inserted above");
            agg.scrapes += 1;
            let get = |f: &str| per.get(f).copied();
            let util = if mig {
                get(fields::GR_ENGINE_ACTIVE).map(|r| r * 100.0)
            } else {
                get(fields::GPU_UTIL).or_else(|| get(fields::GR_ENGINE_ACTIVE).map(|r| r * 100.0))
            };
            let push = |v: &mut Vec<f64>, x: Option<f64>| v.extend(x);
            push(&mut agg.util, util);
            push(&mut agg.gr_active, get(fields::GR_ENGINE_ACTIVE));
            push(&mut agg.tensor_active, get(fields::TENSOR_ACTIVE));
            push(&mut agg.fb_used, get(fields::FB_USED));
            push(&mut agg.fb_free, get(fields::FB_FREE));
            push(&mut agg.fb_reserved, get(fields::FB_RESERVED));
            push(&mut agg.power, get(fields::POWER));
            push(&mut agg.temp, get(fields::GPU_TEMP));
            push(&mut agg.energy, get(fields::ENERGY));
            push(&mut agg.thermal_violation, get(fields::THERMAL_VIOLATION));
            push(&mut agg.power_violation, get(fields::POWER_VIOLATION));
            push(&mut agg.pcie_replay, get(fields::PCIE_REPLAY));
        }
    }
}

fn fill_identity(agg: &mut GpuAgg, s: &Sample) {
    let set = |slot: &mut Option<String>, v: Option<&str>| {
        if slot.is_none() {
            *slot = v.map(str::to_owned);
        }
    };
    set(&mut agg.index, s.label("gpu"));
    set(&mut agg.model, s.label("modelName"));
    set(&mut agg.pci_bus_id, s.label("pci_bus_id"));
    set(&mut agg.mig_profile, s.label("GPU_I_PROFILE"));
    set(&mut agg.driver, s.label("DCGM_FI_DRIVER_VERSION"));
}

/// Window figures of one GPU.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Utilisation, %.
    pub util_percent: Option<Summary>,
    /// GR engine active, % (DCP; absent on some setups).
    pub gr_engine_active_percent: Option<Summary>,
    /// Tensor pipe active, % (mean).
    pub tensor_active_percent: Option<f64>,
    /// Peak framebuffer used, MiB.
    pub fb_used_max_mib: Option<f64>,
    /// Framebuffer total, MiB (used + free + reserved).
    pub fb_total_mib: Option<f64>,
    /// Lowest free share of the framebuffer, %.
    pub fb_headroom_min_percent: Option<f64>,
    /// Power, W.
    pub power_watts: Option<Summary>,
    /// Highest GPU temperature, °C.
    pub temp_max_celsius: Option<f64>,
    /// Energy over the window, kWh (reset-aware counter increase).
    pub energy_kwh: Option<f64>,
    /// Share of the window throttled by thermal limits, % (when the counter is exported).
    pub thermal_throttle_percent: Option<f64>,
    /// Share of the window throttled by the power cap, %.
    pub power_throttle_percent: Option<f64>,
    /// Clock event kinds seen (`sw_thermal`, `power_cap`, …).
    pub clock_events: Vec<String>,
}

/// The figures of `agg` over a window of `window_seconds`.
#[must_use]
pub fn figures(agg: &GpuAgg, window_seconds: f64) -> Figures {
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max).map(stats::round3);
    let total = match (
        agg.fb_used.last(),
        agg.fb_free.last(),
        agg.fb_reserved.last(),
    ) {
        (Some(u), Some(f), r) => Some(u + f + r.copied().unwrap_or(0.0)),
        _ => None,
    };
    let headroom = total.filter(|t| *t > 0.0).and_then(|t| {
        agg.fb_free
            .iter()
            .copied()
            .reduce(f64::min)
            .map(|f| stats::round3(f / t * 100.0))
    });
    let share = |v: &[f64]| {
        (v.len() > 1 && window_seconds > 0.0)
            .then(|| stats::round3(stats::increase(v) / 1e9 / window_seconds * 100.0))
    };
    let energy = (agg.energy.len() > 1).then(|| stats::increase(&agg.energy) / 3.6e9);
    Figures {
        util_percent: stats::summary(&agg.util),
        gr_engine_active_percent: stats::summary(
            &agg.gr_active.iter().map(|r| r * 100.0).collect::<Vec<_>>(),
        ),
        tensor_active_percent: stats::summary(&agg.tensor_active)
            .map(|s| stats::round3(s.mean * 100.0)),
        fb_used_max_mib: max(&agg.fb_used),
        fb_total_mib: total,
        fb_headroom_min_percent: headroom,
        power_watts: stats::summary(&agg.power),
        temp_max_celsius: max(&agg.temp),
        energy_kwh: energy.map(|e| (e * 1e6).round() / 1e6),
        thermal_throttle_percent: share(&agg.thermal_violation),
        power_throttle_percent: share(&agg.power_violation),
        clock_events: agg.clock_events.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        }
    }

    #[test]
    fn split_fields_sum_others_dedupe_and_mig_gets_its_own_row() {
        let g = [("gpu", "0"), ("UUID", "GPU-a"), ("Hostname", "n1")];
        let p1 = [
            ("gpu", "0"),
            ("UUID", "GPU-a"),
            ("pod", "p1"),
            ("namespace", "ml"),
            ("container", "c"),
        ];
        let p2 = [
            ("gpu", "0"),
            ("UUID", "GPU-a"),
            ("pod", "p2"),
            ("namespace", "ml"),
            ("container", "c"),
        ];
        let mig = [
            ("gpu", "0"),
            ("UUID", "GPU-a"),
            ("GPU_I_ID", "13"),
            ("GPU_I_PROFILE", "1g.5gb"),
        ];
        let snap = |u1: f64, e: f64| Snapshot {
            at_seconds: 0.0,
            samples: vec![
                s(fields::GPU_UTIL, &p1, u1),
                s(fields::GPU_UTIL, &p2, 20.0),
                s(fields::POWER, &g, 100.0),
                s(fields::POWER, &g, 999.0),
                s(fields::ENERGY, &g, e),
                s(fields::GR_ENGINE_ACTIVE, &mig, 0.5),
                s(fields::XID, &g, 79.0),
                s(fields::XID, &mig, 0.0),
            ],
        };
        let agg = aggregate("n1", &[snap(10.0, 3.6e9), snap(30.0, 7.2e9)], None);
        let whole = &agg.gpus[&GpuKey {
            node: "n1".into(),
            uuid: "GPU-a".into(),
            mig_instance: None,
        }];
        assert_eq!(whole.util, vec![30.0, 50.0]);
        assert_eq!(whole.power, vec![100.0, 100.0]);
        assert_eq!(whole.holders.len(), 2);
        assert_eq!(whole.xids.keys().copied().collect::<Vec<_>>(), vec![79]);
        let f = figures(whole, 60.0);
        assert_eq!(f.energy_kwh, Some(1.0));
        assert!((f.util_percent.unwrap().mean - 40.0).abs() < 1e-9);
        let m = &agg.gpus[&GpuKey {
            node: "n1".into(),
            uuid: "GPU-a".into(),
            mig_instance: Some("13".into()),
        }];
        assert_eq!(m.util, vec![50.0, 50.0]);
        assert_eq!(m.mig_profile.as_deref(), Some("1g.5gb"));
        assert!(m.xids.is_empty());
        assert!(agg.host_labels.contains("Hostname"));
    }
}
