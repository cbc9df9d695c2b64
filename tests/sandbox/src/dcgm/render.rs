//! Renders one exporter pod's `/metrics` body from cluster state, in dcgm-exporter 4.x's text
//! format: its Go template's label order (`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`,
//! MIG labels, `Hostname`, then the remaining labels sorted by name), HELP/TYPE per family in
//! `default-counters.csv` order, `%f` floats, no escaping, no timestamps.
//!
//! Rendering is a pure function of a [`NodeView`] (taken under the cluster lock) and the collect
//! interval the virtual time falls in, so every scrape within one interval, direct or through
//! `pods/proxy`, returns the same bytes.

use std::fmt::Write as _;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use super::config::{GpuConfig, Load, MigInstance, Num};
use super::model::{self, Model};
use crate::cluster::Cluster;
use crate::resources::well_known;

/// A pod holding a GPU.
#[derive(Clone, Debug)]
pub struct Holder {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container that requested the GPU.
    pub container: String,
    /// The pod (for workload rules).
    pub object: Arc<Value>,
}

/// What rendering needs from the cluster about one node.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// Node name (the exporter's `Hostname`, from `NODE_NAME`).
    pub node: String,
    /// Node labels.
    pub labels: serde_json::Map<String, Value>,
    /// `nvidia.com/gpu` capacity.
    pub gpu_count: u32,
    /// Node creation (the energy counter counts from here).
    pub created: Option<Timestamp>,
    /// Holder of each GPU, by index.
    pub holders: Vec<Option<Holder>>,
}

fn gpu_quantity(v: &Value) -> u32 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0) as u32,
        _ => 0,
    }
}

/// GPUs a pod asks for, per container: `(container name, count)`.
fn gpu_requests(pod: &Value) -> Vec<(String, u32)> {
    let Some(containers) = pod["spec"]["containers"].as_array() else {
        return Vec::new();
    };
    containers
        .iter()
        .filter_map(|c| {
            let r = &c["resources"];
            let n = gpu_quantity(&r["limits"]["nvidia.com/gpu"])
                .max(gpu_quantity(&r["requests"]["nvidia.com/gpu"]));
            (n > 0).then(|| (c["name"].as_str().unwrap_or("").to_owned(), n))
        })
        .collect()
}

/// Takes a view of `node` (None when absent). GPUs go to pods bound to the node that are Pending
/// or Running, oldest first, in index order, as the device plugin hands them out.
#[must_use]
pub fn node_view(cluster: &Cluster, node: &str) -> Option<NodeView> {
    let obj = cluster.store.get(well_known::nodes(), "", node)?;
    let gpu_count = gpu_quantity(&obj["status"]["capacity"]["nvidia.com/gpu"]);
    let labels = crate::labels::labels(&obj).clone();
    let created = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(crate::clock::parse);
    let mut pods: Vec<&Arc<Value>> = cluster
        .store
        .list(well_known::pods(), None)
        .filter(|p| {
            crate::podutil::node_name(p) == Some(node)
                && matches!(crate::podutil::phase(p), "Pending" | "Running")
        })
        .filter(|p| !gpu_requests(p).is_empty())
        .collect();
    pods.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                crate::podutil::ns_name(p).0.to_owned(),
                crate::podutil::ns_name(p).1.to_owned(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut holders = Vec::with_capacity(gpu_count as usize);
    for pod in pods {
        let (ns, name) = crate::podutil::ns_name(pod);
        for (container, n) in gpu_requests(pod) {
            for _ in 0..n {
                holders.push(Some(Holder {
                    namespace: ns.to_owned(),
                    pod: name.to_owned(),
                    container: container.clone(),
                    object: Arc::clone(pod),
                }));
            }
        }
    }
    holders.resize(gpu_count as usize, None);
    holders.truncate(gpu_count as usize);
    Some(NodeView {
        node: node.to_owned(),
        labels,
        gpu_count,
        created,
        holders,
    })
}

/// One GPU's values for one interval.
#[derive(Clone, Debug, Default)]
struct Sample {
    sm_clock: i64,
    mem_clock: i64,
    memory_temp: i64,
    gpu_temp: i64,
    power: f64,
    energy: i64,
    util: i64,
    mem_copy_util: i64,
    enc_util: i64,
    dec_util: i64,
    xid: Option<(u32, String)>,
    fb_free: i64,
    fb_used: i64,
    fb_reserved: i64,
    nvlink: i64,
    gr_engine_active: f64,
    tensor_active: f64,
    dram_active: f64,
    pcie_tx: i64,
    pcie_rx: i64,
}

/// A metric family of the default counter set.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Also reported per MIG GPU instance.
    mig: bool,
}

const fn fam(name: &'static str, kind: &'static str, help: &'static str, mig: bool) -> Family {
    Family {
        name,
        kind,
        help,
        mig,
    }
}

/// `etc/default-counters.csv` of dcgm-exporter 4.x, in file order (its HELP texts verbatim).
const FAMILIES: &[Family] = &[
    fam(
        "DCGM_FI_DEV_SM_CLOCK",
        "gauge",
        "SM clock frequency (in MHz).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_MEM_CLOCK",
        "gauge",
        "Memory clock frequency (in MHz).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_MEMORY_TEMP",
        "gauge",
        "Memory temperature (in C).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_GPU_TEMP",
        "gauge",
        "GPU temperature (in C).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_POWER_USAGE",
        "gauge",
        "Power draw (in W).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "counter",
        "Total number of PCIe retries.",
        false,
    ),
    fam(
        "DCGM_FI_DEV_GPU_UTIL",
        "gauge",
        "GPU utilization (in %).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "gauge",
        "Memory utilization (in %).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_ENC_UTIL",
        "gauge",
        "Encoder utilization (in %).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_DEC_UTIL",
        "gauge",
        "Decoder utilization (in %).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_XID_ERRORS",
        "gauge",
        "Value of the last XID error encountered.",
        true,
    ),
    fam(
        "DCGM_FI_DEV_FB_FREE",
        "gauge",
        "Framebuffer memory free (in MiB).",
        true,
    ),
    fam(
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "Framebuffer memory used (in MiB).",
        true,
    ),
    fam(
        "DCGM_FI_DEV_FB_RESERVED",
        "gauge",
        "Framebuffer memory reserved (in MiB).",
        false,
    ),
    fam(
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
        false,
    ),
    fam(
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
        false,
    ),
    fam(
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
        false,
    ),
    fam(
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "gauge",
        "Whether remapping of rows has failed",
        false,
    ),
    fam(
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        "gauge",
        "vGPU License status",
        false,
    ),
    fam(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        true,
    ),
    fam(
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        true,
    ),
    fam(
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        true,
    ),
    fam(
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        false,
    ),
    fam(
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        false,
    ),
];

/// A value as the exporter prints it: integers plain, floats with Go's `%f`.
enum Out {
    Int(i64),
    Float(f64),
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v:.6}"),
        }
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A stable GPU UUID for GPU `index` of `node`.
#[must_use]
pub fn gpu_uuid(node: &str, index: u32) -> String {
    // splitmix64's finaliser spreads FNV's similar outputs for similar inputs.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(fnv(&format!("{node}/gpu/{index}/a")));
    let b = mix(fnv(&format!("{node}/gpu/{index}/b")));
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A deterministic point in `[0, 1)` for one field of one GPU in one interval.
fn unit(node: &str, gpu: u32, field: &str, bucket: i64) -> f64 {
    let mut z = fnv(&format!("{node}/{gpu}/{field}/{bucket}"));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
}

/// The node's GPU model name and figures.
fn node_model(view: &NodeView, config: &GpuConfig) -> (String, Model) {
    let configured = config
        .nodes
        .iter()
        .filter(|n| n.matches(&view.node, &view.labels))
        .filter_map(|n| n.model.clone())
        .next_back();
    if let Some(name) = configured {
        let m = model::by_name(&name);
        return (name, m);
    }
    let it = view
        .labels
        .get("node.kubernetes.io/instance-type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let m = model::for_instance_type(it);
    (m.name.to_owned(), m)
}

/// Busy defaults for a held GPU with no configured values.
fn builtin_busy(model: &Model) -> Load {
    let usable = f64::from(model.fb_total - model.fb_reserved);
    Load {
        util: Some(Num::Range([85.0, 99.0])),
        fb_used: Some(Num::Range([usable * 0.80, usable * 0.92])),
        ..Load::default()
    }
}

struct SampleCtx<'a> {
    node: &'a str,
    gpu: u32,
    bucket: i64,
    /// Virtual seconds since the node was created, at the start of the interval.
    uptime: f64,
}

fn sample(ctx: &SampleCtx<'_>, model: &Model, load: &Load, xid: Option<(u32, String)>) -> Sample {
    let u = |field: &str| unit(ctx.node, ctx.gpu, field, ctx.bucket);
    let pick = |n: Option<Num>, field: &str| n.map(|n| n.at(u(field)));
    let util = pick(load.util, "util")
        .unwrap_or(0.0)
        .clamp(0.0, 100.0)
        .round();
    let f = util / 100.0;
    let busy = util > 0.0;
    let (idle_w, max_w) = model.power;
    let power = pick(load.power, "power")
        .unwrap_or_else(|| idle_w + (max_w - idle_w) * f * 0.85 + u("power") * 1.5);
    let gpu_temp = pick(load.temp, "temp")
        .unwrap_or_else(|| model.idle_temp + 45.0 * f + u("temp") * 2.0)
        .round();
    let memory_temp = pick(load.memory_temp, "memory_temp")
        .unwrap_or(if model.hbm { gpu_temp + 3.0 } else { 0.0 })
        .round();
    let usable = i64::from(model.fb_total - model.fb_reserved);
    let fb_used = (pick(load.fb_used, "fb_used").unwrap_or(0.0).round() as i64).clamp(0, usable);
    let gr = pick(load.gr_engine_active, "gr")
        .unwrap_or_else(|| f * (0.90 + 0.09 * u("gr")))
        .clamp(0.0, 1.0);
    let mean_power = f64::midpoint(idle_w, max_w);
    Sample {
        sm_clock: pick(load.sm_clock, "sm_clock")
            .unwrap_or(if busy {
                model.sm_clock.1
            } else {
                model.sm_clock.0
            })
            .round() as i64,
        mem_clock: pick(load.mem_clock, "mem_clock")
            .unwrap_or(if busy {
                model.mem_clock.1
            } else {
                model.mem_clock.0
            })
            .round() as i64,
        memory_temp: memory_temp as i64,
        gpu_temp: gpu_temp as i64,
        power: (power * 1000.0).round() / 1000.0,
        // A constant mean rate, so the counter never goes backwards when holders change.
        energy: (ctx.uptime.max(0.0) * mean_power * 1000.0) as i64,
        util: util as i64,
        mem_copy_util: pick(load.mem_copy_util, "mem_copy_util")
            .unwrap_or(util * 0.35)
            .round() as i64,
        enc_util: pick(load.enc_util, "enc_util").unwrap_or(0.0).round() as i64,
        dec_util: pick(load.dec_util, "dec_util").unwrap_or(0.0).round() as i64,
        xid,
        fb_free: usable - fb_used,
        fb_used,
        fb_reserved: i64::from(model.fb_reserved),
        nvlink: (ctx.uptime.max(0.0) * 1000.0) as i64,
        gr_engine_active: gr,
        tensor_active: pick(load.tensor_active, "tensor")
            .unwrap_or(gr * 0.55)
            .clamp(0.0, 1.0),
        dram_active: pick(load.dram_active, "dram")
            .unwrap_or(gr * 0.45)
            .clamp(0.0, 1.0),
        pcie_tx: pick(load.pcie_tx, "pcie_tx")
            .unwrap_or_else(|| 100_000.0 + 20_000.0 * u("pcie_tx") + f * 1.5e9)
            .round() as i64,
        pcie_rx: pick(load.pcie_rx, "pcie_rx")
            .unwrap_or_else(|| 15_000.0 + 5_000.0 * u("pcie_rx") + f * 6.0e9)
            .round() as i64,
    }
}

fn value_of(family: &str, s: &Sample) -> Option<Out> {
    Some(match family {
        "DCGM_FI_DEV_SM_CLOCK" => Out::Int(s.sm_clock),
        "DCGM_FI_DEV_MEM_CLOCK" => Out::Int(s.mem_clock),
        "DCGM_FI_DEV_MEMORY_TEMP" => Out::Int(s.memory_temp),
        "DCGM_FI_DEV_GPU_TEMP" => Out::Int(s.gpu_temp),
        "DCGM_FI_DEV_POWER_USAGE" => Out::Float(s.power),
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" => Out::Int(s.energy),
        "DCGM_FI_DEV_GPU_UTIL" => Out::Int(s.util),
        "DCGM_FI_DEV_MEM_COPY_UTIL" => Out::Int(s.mem_copy_util),
        "DCGM_FI_DEV_ENC_UTIL" => Out::Int(s.enc_util),
        "DCGM_FI_DEV_DEC_UTIL" => Out::Int(s.dec_util),
        "DCGM_FI_DEV_XID_ERRORS" => Out::Int(i64::from(s.xid.as_ref().map_or(0, |x| x.0))),
        "DCGM_FI_DEV_FB_FREE" => Out::Int(s.fb_free),
        "DCGM_FI_DEV_FB_USED" => Out::Int(s.fb_used),
        "DCGM_FI_DEV_FB_RESERVED" => Out::Int(s.fb_reserved),
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" => Out::Int(s.nvlink),
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE" => Out::Float(s.gr_engine_active),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE" => Out::Float(s.tensor_active),
        "DCGM_FI_PROF_DRAM_ACTIVE" => Out::Float(s.dram_active),
        "DCGM_FI_PROF_PCIE_TX_BYTES" => Out::Int(s.pcie_tx),
        "DCGM_FI_PROF_PCIE_RX_BYTES" => Out::Int(s.pcie_rx),
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
        | "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
        | "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
        | "DCGM_FI_DEV_ROW_REMAP_FAILURE"
        | "DCGM_FI_DEV_VGPU_LICENSE_STATUS" => Out::Int(0),
        _ => return None,
    })
}

/// One GPU (or MIG instance) series' identity.
struct Series<'a> {
    gpu: u32,
    uuid: &'a str,
    pci: &'a str,
    model: &'a str,
    mig: Option<&'a MigInstance>,
    holder: Option<&'a Holder>,
}

fn write_series(
    out: &mut String,
    family: &str,
    s: &Series<'_>,
    hostname: &str,
    driver: &str,
    xid: Option<&(u32, String)>,
    value: &Out,
) {
    let _ = write!(
        out,
        "{family}{{gpu=\"{}\",UUID=\"{}\",pci_bus_id=\"{}\",device=\"nvidia{}\",modelName=\"{}\"",
        s.gpu, s.uuid, s.pci, s.gpu, s.model
    );
    if let Some(m) = s.mig {
        let _ = write!(
            out,
            ",GPU_I_PROFILE=\"{}\",GPU_I_ID=\"{}\"",
            m.profile, m.id
        );
    }
    let _ = write!(out, ",Hostname=\"{hostname}\"");
    // The template ranges over Go maps: the remaining labels come out sorted by name.
    let mut labels: Vec<(&str, String)> = vec![("DCGM_FI_DRIVER_VERSION", driver.to_owned())];
    if let Some(h) = s.holder {
        labels.push(("container", h.container.clone()));
        labels.push(("namespace", h.namespace.clone()));
        labels.push(("pod", h.pod.clone()));
        labels.push(("pod_uid", String::new()));
    }
    if family == "DCGM_FI_DEV_XID_ERRORS" {
        let (code, msg) = xid.map_or((0, model::xid_message(0).to_owned()), |(c, m)| {
            (*c, m.clone())
        });
        labels.push(("err_code", code.to_string()));
        labels.push(("err_msg", msg));
    }
    labels.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in labels {
        let _ = write!(out, ",{k}=\"{v}\"");
    }
    let _ = writeln!(out, "}} {value}");
}

/// Parses a MIG profile `Ng.Mgb` into its memory in MiB.
fn mig_memory(profile: &str) -> i64 {
    profile
        .split('.')
        .nth(1)
        .and_then(|m| m.strip_suffix("gb"))
        .and_then(|m| m.parse::<i64>().ok())
        .map_or(0, |g| g * 1024)
}

/// One GPU's identity and values for the interval.
struct Gpu {
    uuid: String,
    pci: String,
    sample: Sample,
    mig: Vec<(MigInstance, Sample)>,
}

/// Everything [`gpu_state`] needs besides the GPU index.
struct NodeCtx<'a> {
    view: &'a NodeView,
    config: &'a GpuConfig,
    model: &'a Model,
    entries: &'a [&'a super::config::NodeGpus],
    bucket: i64,
    uptime: f64,
}

fn gpu_state(n: &NodeCtx<'_>, i: u32) -> Gpu {
    let NodeCtx {
        view,
        config,
        model,
        entries,
        bucket,
        uptime,
    } = *n;
    let holder = view.holders.get(i as usize).and_then(Option::as_ref);
    let mut load = match holder {
        Some(h) => {
            let mut l = builtin_busy(model).overlay(&config.busy);
            if let Some(rule) = config.workloads.iter().find(|w| w.matches(&h.object)) {
                l = l.overlay(&rule.load);
            }
            l
        }
        None => config.idle.clone(),
    };
    for e in entries {
        if let Some(l) = &e.load
            && e.gpus.as_ref().is_none_or(|g| g.contains(&i))
        {
            load = load.overlay(l);
        }
    }
    let xid = entries
        .iter()
        .flat_map(|e| e.xid.iter())
        .filter(|x| x.gpu == i)
        .map(|x| {
            (
                x.code,
                x.message
                    .clone()
                    .unwrap_or_else(|| model::xid_message(x.code).to_owned()),
            )
        })
        .next_back();
    let ctx = SampleCtx {
        node: &view.node,
        gpu: i,
        bucket,
        uptime,
    };
    let sample = sample(&ctx, model, &load, xid.clone());
    let mig = entries
        .iter()
        .flat_map(|e| e.mig.iter())
        .filter(|m| m.gpu == i)
        .map(|m| {
            let total = mig_memory(&m.profile);
            let usable = (model.fb_total - model.fb_reserved).max(1);
            let used = (sample.fb_used * total / i64::from(usable)).clamp(0, total);
            let s = Sample {
                fb_used: used,
                fb_free: total - used,
                ..sample.clone()
            };
            (m.clone(), s)
        })
        .collect();
    let pci = model.pci_buses.get(i as usize).map_or_else(
        || format!("00000000:{:02X}:00.0", 0x10 + i),
        |b| format!("00000000:{b:02X}:00.0"),
    );
    Gpu {
        uuid: gpu_uuid(&view.node, i),
        pci,
        sample,
        mig,
    }
}

/// Renders the `/metrics` body for the exporter on `view`'s node at virtual time `now`.
#[must_use]
pub fn render(view: &NodeView, config: &GpuConfig, now: Timestamp) -> String {
    let interval = config.interval().map_or(30, |d| d.as_secs().max(1) as i64);
    let bucket = now.as_second().div_euclid(interval);
    let bucket_start = bucket * interval;
    let uptime = view
        .created
        .map_or(0.0, |c| (bucket_start - c.as_second()) as f64);
    let (model_name, model) = node_model(view, config);
    let entries: Vec<_> = config
        .nodes
        .iter()
        .filter(|n| n.matches(&view.node, &view.labels))
        .collect();

    let ctx = NodeCtx {
        view,
        config,
        model: &model,
        entries: &entries,
        bucket,
        uptime,
    };
    let gpus: Vec<Gpu> = (0..view.gpu_count).map(|i| gpu_state(&ctx, i)).collect();
    let pod_mapping = entries
        .iter()
        .filter_map(|n| n.pod_mapping)
        .next_back()
        .unwrap_or(true);

    let mut out = String::with_capacity(4096 * (gpus.len() + 1));
    for family in FAMILIES {
        if family.name == "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" && !model.nvlink {
            // Blank on parts without NVLink: current exporters skip blank values.
            continue;
        }
        if gpus.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (i, g) in gpus.iter().enumerate() {
            let holder = view
                .holders
                .get(i)
                .and_then(Option::as_ref)
                .filter(|_| pod_mapping);
            let series = Series {
                gpu: i as u32,
                uuid: &g.uuid,
                pci: &g.pci,
                model: &model_name,
                mig: None,
                holder,
            };
            if let Some(v) = value_of(family.name, &g.sample) {
                write_series(
                    &mut out,
                    family.name,
                    &series,
                    &view.node,
                    &config.driver_version,
                    g.sample.xid.as_ref(),
                    &v,
                );
            }
            if family.mig {
                for (m, s) in &g.mig {
                    let series = Series {
                        mig: Some(m),
                        holder: None,
                        ..series
                    };
                    if let Some(v) = value_of(family.name, s) {
                        write_series(
                            &mut out,
                            family.name,
                            &series,
                            &view.node,
                            &config.driver_version,
                            s.xid.as_ref(),
                            &v,
                        );
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(n: u32, held: &[u32]) -> NodeView {
        let pod = Arc::new(
            serde_json::json!({"metadata": {"name": "p", "namespace": "ml", "labels": {"app": "t"}}}),
        );
        NodeView {
            node: "ip-10-0-0-1.ec2.internal".into(),
            labels: serde_json::json!({"node.kubernetes.io/instance-type": "p5.48xlarge"})
                .as_object()
                .unwrap()
                .clone(),
            gpu_count: n,
            created: Some("2026-11-01T00:00:00Z".parse().unwrap()),
            holders: (0..n)
                .map(|i| {
                    held.contains(&i).then(|| Holder {
                        namespace: "ml".into(),
                        pod: "p".into(),
                        container: "main".into(),
                        object: Arc::clone(&pod),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn same_interval_same_bytes_and_labels_in_template_order() {
        let v = view(8, &[2]);
        let c = GpuConfig::default();
        let t0: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let a = render(&v, &c, t0);
        let b = render(&v, &c, t0 + jiff::SignedDuration::from_secs(29));
        assert_eq!(a, b);
        let line = a
            .lines()
            .find(|l| l.starts_with("DCGM_FI_DEV_GPU_TEMP{gpu=\"2\""))
            .unwrap();
        assert!(
            line.contains(",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"ip-10-0-0-1.ec2.internal\",DCGM_FI_DRIVER_VERSION=\"580.105.08\",container=\"main\",namespace=\"ml\",pod=\"p\",pod_uid=\"\"} "),
            "{line}"
        );
        assert!(a.contains("pci_bus_id=\"00000000:75:00.0\",device=\"nvidia2\""));
        assert!(a.ends_with('\n'));
    }

    #[test]
    fn uuids_are_stable_and_distinct() {
        assert_eq!(gpu_uuid("n", 0), gpu_uuid("n", 0));
        assert_ne!(gpu_uuid("n", 0), gpu_uuid("n", 1));
        assert_eq!(gpu_uuid("n", 0).len(), 40);
    }
}
