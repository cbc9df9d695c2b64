//! GPU models: what each reports when idle and at full load, and which EC2 instance types carry
//! them. Figures are typical published or observed values (framebuffer totals as `nvidia-smi`
//! shows them; idle clocks and power as in the fixtures), not measurements of ours.

/// Static facts about one GPU model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// `modelName` label.
    pub name: &'static str,
    /// Framebuffer total, MiB (free + used + reserved).
    pub fb_total: u32,
    /// `DCGM_FI_DEV_FB_RESERVED`, MiB.
    pub fb_reserved: u32,
    /// Idle and maximum board power, W.
    pub power: (f64, f64),
    /// Idle temperature, °C.
    pub idle_temp: f64,
    /// SM clock idle and under load, MHz.
    pub sm_clock: (f64, f64),
    /// Memory clock idle and under load, MHz.
    pub mem_clock: (f64, f64),
    /// HBM parts report a memory temperature; GDDR parts report 0.
    pub hbm: bool,
    /// Has NVLink (`DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL` is reported).
    pub nvlink: bool,
    /// PCI bus numbers of GPUs 0.. on this model's usual instance (`00000000:XX:00.0`).
    pub pci_buses: &'static [u8],
}

const H100: Model = Model {
    name: "NVIDIA H100 80GB HBM3",
    fb_total: 81_559,
    fb_reserved: 579,
    power: (68.0, 700.0),
    idle_temp: 28.0,
    sm_clock: (345.0, 1980.0),
    mem_clock: (2619.0, 2619.0),
    hbm: true,
    nvlink: true,
    // p5.48xlarge, as in the pod-mapped EKS fixture.
    pci_buses: &[0x53, 0x64, 0x75, 0x86, 0x97, 0xA8, 0xB9, 0xCA],
};

const A100_40: Model = Model {
    name: "NVIDIA A100-SXM4-40GB",
    fb_total: 40_960,
    fb_reserved: 425,
    power: (55.0, 400.0),
    idle_temp: 31.0,
    sm_clock: (210.0, 1410.0),
    mem_clock: (1215.0, 1215.0),
    hbm: true,
    nvlink: true,
    pci_buses: &[0x10, 0x16, 0x20, 0x26, 0x90, 0x96, 0xA0, 0xA6],
};

const A100_80: Model = Model {
    name: "NVIDIA A100-SXM4-80GB",
    fb_total: 81_920,
    fb_reserved: 565,
    ..A100_40
};

const A10G: Model = Model {
    name: "NVIDIA A10G",
    fb_total: 23_028,
    fb_reserved: 372,
    power: (24.0, 300.0),
    idle_temp: 26.0,
    sm_clock: (210.0, 1710.0),
    mem_clock: (405.0, 6250.0),
    hbm: false,
    nvlink: false,
    pci_buses: &[0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22],
};

const L4: Model = Model {
    name: "NVIDIA L4",
    fb_total: 23_034,
    fb_reserved: 470,
    power: (16.0, 72.0),
    idle_temp: 31.0,
    sm_clock: (210.0, 2040.0),
    mem_clock: (405.0, 6250.0),
    hbm: false,
    nvlink: false,
    pci_buses: &[0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38],
};

const L40S: Model = Model {
    name: "NVIDIA L40S",
    fb_total: 46_068,
    fb_reserved: 554,
    power: (35.0, 350.0),
    idle_temp: 27.0,
    sm_clock: (210.0, 2520.0),
    mem_clock: (405.0, 9001.0),
    hbm: false,
    nvlink: false,
    pci_buses: &[0x35, 0x36, 0x37, 0x38, 0xB5, 0xB6, 0xB7, 0xB8],
};

const T4: Model = Model {
    name: "Tesla T4",
    fb_total: 15_360,
    fb_reserved: 257,
    power: (15.0, 70.0),
    idle_temp: 30.0,
    sm_clock: (300.0, 1590.0),
    mem_clock: (405.0, 5000.0),
    hbm: false,
    nvlink: false,
    pci_buses: &[0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22],
};

const KNOWN: &[Model] = &[H100, A100_40, A100_80, A10G, L4, L40S, T4];

/// The model of an EC2 instance type (`p5.48xlarge` → H100); A10G when unknown.
#[must_use]
pub fn for_instance_type(instance_type: &str) -> Model {
    let family = instance_type.split('.').next().unwrap_or("");
    match family {
        "p5" | "p5e" | "p5en" => H100,
        "p4d" => A100_40,
        "p4de" => A100_80,
        "g6" => L4,
        "g6e" => L40S,
        "g4dn" => T4,
        _ => A10G,
    }
}

/// The model called `name`: a known one, or the A10G's figures under that name.
#[must_use]
pub fn by_name(name: &str) -> Model {
    KNOWN
        .iter()
        .find(|m| m.name == name)
        .copied()
        .unwrap_or(Model { name: "", ..A10G })
}

/// `err_msg` of well-known XID codes (DCGM's short descriptions; the scenario may override).
#[must_use]
pub fn xid_message(code: u32) -> &'static str {
    match code {
        0 => "No Error",
        13 => "Graphics Engine Exception",
        31 => "GPU memory page fault",
        43 => "GPU stopped processing",
        45 => {
            "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda applications and hitting a DBE"
        }
        48 => "DBE (Double Bit Error) ECC Error",
        63 => "ECC page retirement or row remapping recording event",
        64 => "ECC page retirement or row remapper recording failure",
        74 => "NVLINK Error",
        79 => "GPU has fallen off the bus",
        92 => "High single-bit ECC error rate",
        94 => "Contained ECC error",
        95 => "Uncontained ECC error",
        119 => "GSP RPC Timeout",
        _ => "Unknown Error",
    }
}
