//! The scenario's `gpu:` section: exporter settings and the values GPUs report.
//!
//! The format is documented in `tests/scenarios/README.md` ("`gpu`: dcgm-exporter metrics").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// A number, or a `[low, high]` range sampled once per collect interval.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Num {
    /// Always this value.
    Fixed(f64),
    /// Uniform in `[low, high]`, a deterministic function of node, GPU, field and interval.
    Range([f64; 2]),
}

impl Num {
    /// The value for a sample point `u` in `[0, 1)`.
    #[must_use]
    pub fn at(self, u: f64) -> f64 {
        match self {
            Self::Fixed(v) => v,
            Self::Range([lo, hi]) => lo + (hi - lo) * u,
        }
    }
}

/// What one GPU reports. Absent fields are derived from `util` and the GPU model (power,
/// temperatures, SM clock and the DCP ratios rise with utilisation).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Load {
    /// `DCGM_FI_DEV_GPU_UTIL`, percent.
    #[serde(default)]
    pub util: Option<Num>,
    /// `DCGM_FI_DEV_MEM_COPY_UTIL`, percent.
    #[serde(default)]
    pub mem_copy_util: Option<Num>,
    /// `DCGM_FI_DEV_ENC_UTIL`, percent.
    #[serde(default)]
    pub enc_util: Option<Num>,
    /// `DCGM_FI_DEV_DEC_UTIL`, percent.
    #[serde(default)]
    pub dec_util: Option<Num>,
    /// `DCGM_FI_DEV_FB_USED`, MiB (free is the model's total minus reserved minus used).
    #[serde(default)]
    pub fb_used: Option<Num>,
    /// `DCGM_FI_DEV_POWER_USAGE`, watts.
    #[serde(default)]
    pub power: Option<Num>,
    /// `DCGM_FI_DEV_GPU_TEMP`, °C.
    #[serde(default)]
    pub temp: Option<Num>,
    /// `DCGM_FI_DEV_MEMORY_TEMP`, °C (0 on GDDR models, as they report it).
    #[serde(default)]
    pub memory_temp: Option<Num>,
    /// `DCGM_FI_DEV_SM_CLOCK`, MHz.
    #[serde(default)]
    pub sm_clock: Option<Num>,
    /// `DCGM_FI_DEV_MEM_CLOCK`, MHz.
    #[serde(default)]
    pub mem_clock: Option<Num>,
    /// `DCGM_FI_PROF_GR_ENGINE_ACTIVE`, ratio 0-1.
    #[serde(default)]
    pub gr_engine_active: Option<Num>,
    /// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`, ratio 0-1.
    #[serde(default)]
    pub tensor_active: Option<Num>,
    /// `DCGM_FI_PROF_DRAM_ACTIVE`, ratio 0-1.
    #[serde(default)]
    pub dram_active: Option<Num>,
    /// `DCGM_FI_PROF_PCIE_TX_BYTES`, bytes/s.
    #[serde(default)]
    pub pcie_tx: Option<Num>,
    /// `DCGM_FI_PROF_PCIE_RX_BYTES`, bytes/s.
    #[serde(default)]
    pub pcie_rx: Option<Num>,
}

impl Load {
    /// `self` with every field `other` sets replaced.
    #[must_use]
    pub fn overlay(&self, other: &Load) -> Load {
        macro_rules! pick {
            ($($f:ident),*) => { Load { $($f: other.$f.or(self.$f)),* } };
        }
        pick!(
            util,
            mem_copy_util,
            enc_util,
            dec_util,
            fb_used,
            power,
            temp,
            memory_temp,
            sm_clock,
            mem_clock,
            gr_engine_active,
            tensor_active,
            dram_active,
            pcie_tx,
            pcie_rx
        )
    }
}

/// A MIG GPU instance on one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigInstance {
    /// GPU index on the node.
    pub gpu: u32,
    /// Profile, e.g. `1g.5gb` (`GPU_I_PROFILE`).
    pub profile: String,
    /// GPU instance ID (`GPU_I_ID`).
    pub id: u32,
}

/// The last XID error a GPU saw (sticky, as in the exporter).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Xid {
    /// GPU index on the node.
    pub gpu: u32,
    /// XID code, e.g. 79 ("GPU has fallen off the bus").
    pub code: u32,
    /// `err_msg` (default: a short description of well-known codes).
    #[serde(default)]
    pub message: Option<String>,
}

/// An exporter that does not work: the failure modes a collector must survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExporterFault {
    /// Nothing listens on the pod IP (connection refused; `pods/proxy` answers 503).
    Down,
    /// Accepts connections and never answers `/metrics` (a hung exporter).
    Hang,
}

/// Settings for some GPUs of some nodes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGpus {
    /// Node name (this or `nodeGroup`).
    #[serde(default)]
    pub node: Option<String>,
    /// Every node of this node group (label `eks.amazonaws.com/nodegroup`).
    #[serde(default)]
    pub node_group: Option<String>,
    /// `modelName`, e.g. `NVIDIA H100 80GB HBM3` (default from the instance type).
    #[serde(default)]
    pub model: Option<String>,
    /// GPU indices `load` applies to (default: all of the node's).
    #[serde(default)]
    pub gpus: Option<Vec<u32>>,
    /// Values for those GPUs, over anything a holding pod's workload rule says.
    #[serde(default)]
    pub load: Option<Load>,
    /// MIG instances.
    #[serde(default)]
    pub mig: Vec<MigInstance>,
    /// Last XID errors.
    #[serde(default)]
    pub xid: Vec<Xid>,
    /// The node's exporter does not work (`down` or `hang`).
    #[serde(default)]
    pub exporter: Option<ExporterFault>,
    /// `false`: the exporter has no pod mapping (started without the kubelet's pod-resources
    /// socket), so no series carries pod labels even for GPUs that pods hold.
    #[serde(default)]
    pub pod_mapping: Option<bool>,
}

impl NodeGpus {
    /// Whether this entry is about `node` (with node labels `labels`).
    #[must_use]
    pub fn matches(&self, node: &str, labels: &serde_json::Map<String, Value>) -> bool {
        let by_name = self.node.as_deref().is_none_or(|n| n == node);
        let by_group = self.node_group.as_deref().is_none_or(|g| {
            labels
                .get("eks.amazonaws.com/nodegroup")
                .and_then(Value::as_str)
                == Some(g)
        });
        by_name && by_group
    }
}

/// Values for GPUs held by the pods of a workload.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGpus {
    /// Pod namespace (default: any).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Pod labels that must all match (default: any pod).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pod name prefix (default: any).
    #[serde(default)]
    pub pod_prefix: Option<String>,
    /// Values of the GPUs such pods hold.
    pub load: Load,
}

impl WorkloadGpus {
    /// Whether the rule applies to `pod`.
    #[must_use]
    pub fn matches(&self, pod: &Value) -> bool {
        let (ns, name) = crate::podutil::ns_name(pod);
        let labels = crate::labels::labels(pod);
        self.namespace.as_deref().is_none_or(|n| n == ns)
            && self
                .pod_prefix
                .as_deref()
                .is_none_or(|p| name.starts_with(p))
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
    }
}

/// The whole `gpu:` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuConfig {
    /// `DCGM_FI_DRIVER_VERSION` label.
    #[serde(default = "default_driver")]
    pub driver_version: String,
    /// Collect interval (Go duration, default `30s`, dcgm-exporter's default): values change
    /// once per interval of virtual time, so scrapes within one interval are identical.
    #[serde(default)]
    pub interval: Option<String>,
    /// Serve `/metrics` on each exporter pod's IP, port 9400 (default true).
    #[serde(default = "yes")]
    pub listen: bool,
    /// Values of GPUs no pod holds (over the built-in idle values).
    #[serde(default)]
    pub idle: Load,
    /// Values of GPUs a pod holds (over the built-in busy values).
    #[serde(default)]
    pub busy: Load,
    /// Per-workload values for the GPUs their pods hold; the first matching rule applies.
    #[serde(default)]
    pub workloads: Vec<WorkloadGpus>,
    /// Per-node settings: model, per-GPU values, MIG, XID errors.
    #[serde(default)]
    pub nodes: Vec<NodeGpus>,
}

fn default_driver() -> String {
    "580.105.08".into()
}

fn yes() -> bool {
    true
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            driver_version: default_driver(),
            interval: None,
            listen: true,
            idle: Load::default(),
            busy: Load::default(),
            workloads: Vec::new(),
            nodes: Vec::new(),
        }
    }
}

impl GpuConfig {
    /// Parses the scenario's `gpu:` value (defaults when absent).
    pub fn from_value(value: Option<&Value>) -> anyhow::Result<Self> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let c: Self = serde_json::from_value(v.clone())
            .map_err(|e| anyhow::anyhow!("scenario gpu section: {e}"))?;
        c.interval()?;
        for n in &c.nodes {
            anyhow::ensure!(
                n.node.is_some() || n.node_group.is_some(),
                "scenario gpu.nodes: each entry needs node or nodeGroup"
            );
        }
        Ok(c)
    }

    /// The fault of `node`'s exporter, if a `nodes` entry gives one (the last such entry wins).
    #[must_use]
    pub fn exporter_fault(
        &self,
        node: &str,
        labels: &serde_json::Map<String, Value>,
    ) -> Option<ExporterFault> {
        self.nodes
            .iter()
            .filter(|n| n.matches(node, labels))
            .filter_map(|n| n.exporter)
            .next_back()
    }

    /// The collect interval.
    pub fn interval(&self) -> anyhow::Result<Duration> {
        let Some(s) = self.interval.as_deref() else {
            return Ok(Duration::from_secs(30));
        };
        let d = parse_duration(s)
            .ok_or_else(|| anyhow::anyhow!("scenario gpu.interval {s:?}: not a Go duration"))?;
        anyhow::ensure!(
            d >= Duration::from_secs(1),
            "scenario gpu.interval must be at least 1s"
        );
        Ok(d)
    }
}

/// Parses `90s`, `1h30m`, `500ms`, `2d`.
fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_section() {
        let v = serde_json::json!({
            "driverVersion": "570.1",
            "interval": "1m",
            "idle": {"power": 60},
            "workloads": [{"namespace": "ml", "labels": {"app": "t"}, "load": {"util": [80, 99], "fbUsed": 70000}}],
            "nodes": [{"node": "n0", "model": "NVIDIA A10G", "gpus": [1], "load": {"util": 5},
                       "mig": [{"gpu": 0, "profile": "1g.5gb", "id": 13}], "xid": [{"gpu": 2, "code": 79}]}],
        });
        let c = GpuConfig::from_value(Some(&v)).unwrap();
        assert_eq!(c.interval().unwrap(), Duration::from_mins(1));
        assert_eq!(c.workloads[0].load.util, Some(Num::Range([80.0, 99.0])));
        assert_eq!(c.nodes[0].xid[0].code, 79);
        let f = GpuConfig::from_value(Some(&serde_json::json!({"nodes": [
            {"node": "n0", "exporter": "down"}, {"nodeGroup": "g", "exporter": "hang"}]})))
        .unwrap();
        let mut labels = serde_json::Map::new();
        assert_eq!(f.exporter_fault("n0", &labels), Some(ExporterFault::Down));
        assert_eq!(f.exporter_fault("n1", &labels), None);
        labels.insert("eks.amazonaws.com/nodegroup".into(), "g".into());
        assert_eq!(f.exporter_fault("n1", &labels), Some(ExporterFault::Hang));
        assert!(
            GpuConfig::from_value(Some(
                &serde_json::json!({"nodes": [{"node": "n", "exporter": "slow"}]})
            ))
            .is_err()
        );
        assert!(GpuConfig::from_value(Some(&serde_json::json!({"bogus": 1}))).is_err());
        assert!(GpuConfig::from_value(Some(&serde_json::json!({"nodes": [{}]}))).is_err());
        assert_eq!(GpuConfig::from_value(None).unwrap(), GpuConfig::default());
    }

    #[test]
    fn overlay_prefers_the_other_side() {
        let a = Load {
            util: Some(Num::Fixed(1.0)),
            power: Some(Num::Fixed(2.0)),
            ..Load::default()
        };
        let b = Load {
            util: Some(Num::Fixed(9.0)),
            ..Load::default()
        };
        let c = a.overlay(&b);
        assert_eq!(c.util, Some(Num::Fixed(9.0)));
        assert_eq!(c.power, Some(Num::Fixed(2.0)));
    }
}
