//! The parser over every genuine dcgm-exporter body in `../shared/fixtures/dcgm/*.prom` (read in
//! place; `OPSTEPS_SHARED_DIR` overrides the location). Counts and values were read off the files.
// Parsed values must equal what the text says, exactly.
#![allow(clippy::float_cmp)]

use std::path::PathBuf;

use prom_text::{MetricType, dcgm, parse};

fn fixtures_dir() -> PathBuf {
    let shared = std::env::var_os("OPSTEPS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let dir = shared.join("fixtures/dcgm");
    assert!(
        dir.is_dir(),
        "dcgm fixtures not found at {}: set OPSTEPS_SHARED_DIR to the shared/ directory",
        dir.display()
    );
    dir
}

fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (file, samples, families) for every `.prom` fixture.
const EXPECTED: &[(&str, usize, usize)] = &[
    (
        "cncf-k8s-ai-conformance-ericsson-t4-busy-nohelp.prom",
        20,
        0,
    ),
    ("cncf-k8s-ai-conformance-kops-aws-l4-full.prom", 23, 23),
    ("cncf-k8s-ai-conformance-upcloud-l40s-full.prom", 23, 23),
    ("cncf-k8s-ai-conformance-vks-vgpu-a100.prom", 11, 11),
    ("nvidia-aicr-eks-h100x8-podmapped-sampled.prom", 30, 0),
    ("nvidia-cloud-native-docs-a100-mig-dcp.prom", 21, 0),
];

#[test]
fn every_fixture_parses_without_skips_and_the_list_is_complete() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(on_disk, listed, "a .prom fixture is missing from EXPECTED");
    for (name, samples, families) in EXPECTED {
        let text = fixture(name);
        let e = parse(&text);
        assert!(e.skipped.is_empty(), "{name}: {:?}", e.skipped);
        assert_eq!(e.samples.len(), *samples, "{name}: samples");
        assert_eq!(e.families.len(), *families, "{name}: families");
        for s in &e.samples {
            assert!(s.name.starts_with("DCGM_FI_"), "{name}: {}", s.name);
            assert!(s.value.is_finite(), "{name}: {}", s.name);
            assert_eq!(s.timestamp_ms, None);
            assert!(dcgm::hostname(&s.labels).is_some(), "{name}: {}", s.name);
            assert!(s.labels.get("UUID").is_some(), "{name}: {}", s.name);
            assert!(!dcgm::is_blank(s.value));
        }
    }
}

#[test]
fn l4_full_body_has_help_and_type_for_every_family() {
    let text = fixture("cncf-k8s-ai-conformance-kops-aws-l4-full.prom");
    let e = parse(&text);
    let counters: Vec<&str> = e
        .families
        .iter()
        .filter(|f| f.kind == MetricType::Counter)
        .map(|f| f.name)
        .collect();
    assert_eq!(counters.len(), 4);
    assert!(counters.contains(&"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"));
    assert_eq!(
        e.families
            .iter()
            .filter(|f| f.kind == MetricType::Gauge)
            .count(),
        19
    );
    let sm = e.family("DCGM_FI_DEV_SM_CLOCK").unwrap();
    assert_eq!(sm.kind, MetricType::Gauge);
    assert_eq!(sm.help.as_deref(), Some("SM clock frequency (in MHz)."));
    // Every sample's name is a declared family, in the same order.
    let names: Vec<&str> = e.samples.iter().map(|s| s.name).collect();
    let families: Vec<&str> = e.families.iter().map(|f| f.name).collect();
    assert_eq!(names, families);

    let energy = &e.samples[5];
    assert_eq!(energy.name, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION");
    assert_eq!(energy.value, 4_742_776.0);
    assert_eq!(energy.line, 18);
    let labels: Vec<(&str, &str)> = energy.labels.iter().collect();
    assert_eq!(
        labels,
        [
            ("gpu", "0"),
            ("UUID", "GPU-c2f76b33-7953-256e-8f33-1343419b1a1c"),
            ("pci_bus_id", "00000000:31:00.0"),
            ("device", "nvidia0"),
            ("modelName", "NVIDIA L4"),
            ("Hostname", "i-030791dc5a37cd257"),
            ("DCGM_FI_DRIVER_VERSION", "580.105.08"),
        ]
    );
}

#[test]
fn l40s_energy_counter_value() {
    let text = fixture("cncf-k8s-ai-conformance-upcloud-l40s-full.prom");
    let e = parse(&text);
    let s = e
        .samples
        .iter()
        .find(|s| s.name == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
        .unwrap();
    assert_eq!(s.value, 5_551_899_580.0);
    assert_eq!(s.labels.get("modelName"), Some("NVIDIA L40S"));
    assert_eq!(dcgm::hostname(&s.labels), Some("gpu1-wl8sg"));
    assert_eq!(s.labels.get("DCGM_FI_DRIVER_VERSION"), Some("595.58.03"));
}

#[test]
fn t4_without_help_lines_gives_untyped_samples_under_load() {
    let text = fixture("cncf-k8s-ai-conformance-ericsson-t4-busy-nohelp.prom");
    let e = parse(&text);
    let value = |name: &str| e.samples.iter().find(|s| s.name == name).unwrap().value;
    assert_eq!(value("DCGM_FI_DEV_GPU_UTIL"), 91.0);
    assert_eq!(value("DCGM_FI_DEV_FB_USED"), 5120.0);
    assert_eq!(value("DCGM_FI_PROF_GR_ENGINE_ACTIVE"), 0.156_205);
    assert_eq!(e.samples[0].labels.get("modelName"), Some("Tesla T4"));
    assert_eq!(e.family("DCGM_FI_DEV_GPU_UTIL"), None);
}

#[test]
fn vgpu_guest_has_license_status_and_no_power() {
    let text = fixture("cncf-k8s-ai-conformance-vks-vgpu-a100.prom");
    let e = parse(&text);
    let lic = e
        .samples
        .iter()
        .find(|s| s.name == "DCGM_FI_DEV_VGPU_LICENSE_STATUS")
        .unwrap();
    assert_eq!(lic.value, 1.0);
    assert_eq!(lic.line, 33);
    assert_eq!(lic.labels.get("modelName"), Some("GRID A100-40C"));
    assert_eq!(
        lic.labels.get("UUID"),
        Some("GPU-0946f70c-659b-4c39-8b78-7e7600000000")
    );
    assert!(
        !e.samples
            .iter()
            .any(|s| s.name == "DCGM_FI_DEV_POWER_USAGE" || s.name == "DCGM_FI_DEV_GPU_TEMP")
    );
}

#[test]
fn h100_pod_mapping_only_on_gpu_2() {
    let text = fixture("nvidia-aicr-eks-h100x8-podmapped-sampled.prom");
    let e = parse(&text);
    let with_pod: Vec<_> = e
        .samples
        .iter()
        .filter(|s| s.labels.get("pod").is_some())
        .collect();
    assert_eq!(
        with_pod.iter().map(|s| s.line).collect::<Vec<_>>(),
        [3, 11, 19, 27]
    );
    for s in &with_pod {
        assert_eq!(s.labels.get("gpu"), Some("2"));
        assert_eq!(s.labels.get("namespace"), Some("dynamo-workload"));
        assert_eq!(
            s.labels.get("pod"),
            Some("vllm-agg-0-vllmdecodeworker-dkb9q")
        );
        assert_eq!(s.labels.get("container"), Some("main"));
        assert_eq!(s.labels.get("pod_uid"), Some(""));
        assert_eq!(s.labels.len(), 11);
    }
    assert_eq!(with_pod[1].name, "DCGM_FI_DEV_POWER_USAGE");
    assert_eq!(with_pod[1].value, 110.786);
    assert_eq!(with_pod[2].name, "DCGM_FI_DEV_GPU_UTIL");
    assert_eq!(with_pod[2].value, 0.0);
    let first = &e.samples[0];
    assert_eq!(first.value, 27.0);
    assert_eq!(
        dcgm::hostname(&first.labels),
        Some("ip-100-64-147-149.ec2.internal")
    );
    assert_eq!(first.labels.len(), 7);
}

#[test]
fn a100_mig_instances_after_a_blank_line() {
    let text = fixture("nvidia-cloud-native-docs-a100-mig-dcp.prom");
    let e = parse(&text);
    let mig: Vec<_> = e
        .samples
        .iter()
        .filter(|s| s.labels.get("GPU_I_ID").is_some())
        .collect();
    assert_eq!(mig.len(), 4);
    assert_eq!(mig[0].line, 19, "line 18 is blank and still counted");
    assert_eq!(mig[1].name, "DCGM_FI_PROF_GR_ENGINE_ACTIVE");
    assert_eq!(mig[1].value, 0.995_687);
    assert_eq!(mig[1].labels.get("GPU_I_PROFILE"), Some("1g.5gb"));
    assert_eq!(mig[1].labels.get("GPU_I_ID"), Some("13"));
    let power = e
        .samples
        .iter()
        .find(|s| s.name == "DCGM_FI_DEV_POWER_USAGE")
        .unwrap();
    assert_eq!(power.value, 409.692);
    assert_eq!(dcgm::hostname(&power.labels), Some("ub20-a100-k8s"));
}

#[test]
fn fixtures_with_crlf_line_endings_parse_the_same() {
    for (name, ..) in EXPECTED {
        let text = fixture(name);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(parse(&crlf), parse(&text), "{name}");
    }
}
