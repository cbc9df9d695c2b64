//! The rendered exporter text has the genuine fixtures' shape line for line: the same families
//! in the same order with the same HELP/TYPE lines, the same label keys in the same order, and
//! the same number style per family. Values, UUIDs and names differ, so lines are compared after
//! reducing each sample to `name{keys...} int|float`.

use std::path::PathBuf;

use opsteps_sandbox::cluster::Shared;
use opsteps_sandbox::dcgm::{self, GpuConfig};
use opsteps_sandbox::scenario::{self, Scenario};

fn fixture(name: &str) -> String {
    let shared = std::env::var_os("OPSTEPS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let path = shared.join("fixtures/dcgm").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading fixture {}: {e} (set OPSTEPS_SHARED_DIR to the shared/ directory)",
            path.display()
        )
    })
}

/// `name{k1,k2,...} int|float` for a sample line; HELP/TYPE lines as they are.
fn shape(line: &str) -> String {
    if line.starts_with('#') {
        return line.to_owned();
    }
    let (name, rest) = line.split_once('{').expect("labels");
    let (labels, value) = rest.rsplit_once("} ").expect("value");
    // Values here never contain `",`, so splitting on it is exact.
    let keys: Vec<&str> = labels
        .split("\",")
        .map(|kv| kv.split_once('=').expect("k=v").0)
        .collect();
    let style = if value.contains('.') { "float" } else { "int" };
    format!("{name}{{{}}} {style}", keys.join(","))
}

fn shapes(text: &str, skip_family: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.contains(skip_family))
        .map(shape)
        .collect()
}

/// Renders the exporter pod on the scenario's only GPU node.
fn render(yaml: &str) -> String {
    let s = Scenario::from_yaml(yaml).expect("scenario");
    let config = GpuConfig::from_value(s.gpu.as_ref()).expect("gpu section");
    let shared = Shared::new(scenario::cluster_from(&s).expect("cluster"));
    let (ns, name) = {
        let c = shared.lock();
        let pod = c
            .store
            .list(opsteps_sandbox::resources::well_known::pods(), None)
            .find(|p| dcgm::is_exporter(p))
            .expect("an exporter pod")
            .clone();
        let (ns, name) = opsteps_sandbox::podutil::ns_name(&pod);
        (ns.to_owned(), name.to_owned())
    };
    dcgm::render_for_pod(&shared, &config, &ns, &name).expect("rendered")
}

#[test]
fn an_idle_l4_has_the_full_fixtures_shape() {
    let text = render(
        r"
clock: {start: '2026-11-26T10:00:00Z'}
nodeGroups:
  - {name: g6, count: 1, instanceType: g6.xlarge, capacity: {cpu: '4', memory: 16Gi, nvidia.com/gpu: 1}}
workloads:
  - {kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {app: nvidia-dcgm-exporter},
     nodeSelector: {nvidia.com/gpu.present: 'true'}}
",
    );
    let fixture = fixture("cncf-k8s-ai-conformance-kops-aws-l4-full.prom");
    // The genuine L4 scrape's counter set has no XID gauge; everything else matches line for line.
    assert_eq!(
        shapes(&text, "DCGM_FI_DEV_XID_ERRORS"),
        shapes(&fixture, "DCGM_FI_DEV_XID_ERRORS")
    );
    assert!(text.contains("modelName=\"NVIDIA L4\",Hostname=\"g6-0\","));
    assert!(text.ends_with('\n') && !text.contains("\n\n"));
    // XID sits after the decoder gauge, with err_code/err_msg after the driver label.
    let xid: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("DCGM_FI_DEV_XID_ERRORS"))
        .collect();
    assert_eq!(xid.len(), 3, "{xid:?}");
    assert!(
        xid[2].ends_with(
            ",DCGM_FI_DRIVER_VERSION=\"580.105.08\",err_code=\"0\",err_msg=\"No Error\"} 0"
        ),
        "{}",
        xid[2]
    );
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# TYPE"))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    let dec = order
        .iter()
        .position(|f| *f == "DCGM_FI_DEV_DEC_UTIL")
        .unwrap();
    assert_eq!(order[dec + 1], "DCGM_FI_DEV_XID_ERRORS");
}

#[test]
fn a_held_h100_has_the_pod_mapped_fixtures_label_order() {
    let text = render(
        r"
clock: {start: '2026-11-26T10:00:00Z'}
nodeGroups:
  - {name: p5, count: 1, instanceType: p5.48xlarge}
workloads:
  - {kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {app: nvidia-dcgm-exporter}}
  - {kind: Pod, name: vllm, namespace: dynamo-workload, requests: {cpu: '1', memory: 1Gi, gpu: 1}}
gpu:
  workloads: [{namespace: dynamo-workload, load: {util: 0, fbUsed: 74166}}]
",
    );
    let fixture = fixture("nvidia-aicr-eks-h100x8-podmapped-sampled.prom");
    let family = "DCGM_FI_DEV_GPU_TEMP{";
    let ours: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(family))
        .map(shape)
        .collect();
    let genuine: Vec<String> = fixture
        .lines()
        .filter(|l| l.starts_with(family))
        .map(shape)
        .collect();
    // GPU 0 is held here (GPU 2 in the fixture); the rest carry no pod labels at all.
    assert_eq!(ours.len(), 8);
    assert_eq!(ours[0], genuine[2]);
    assert!(ours[1..].iter().all(|l| *l == genuine[0]), "{ours:?}");
    assert!(genuine[3..].iter().all(|l| *l == genuine[0]));
    assert!(
        text.contains(
            ",container=\"vllm\",namespace=\"dynamo-workload\",pod=\"vllm\",pod_uid=\"\"} "
        )
    );
    // Idle but held: 0 % with 74166 MiB used, as in the fixture's Prometheus responses.
    let line = |m: &str| {
        text.lines()
            .find(|l| l.starts_with(m) && l.contains("gpu=\"0\""))
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("DCGM_FI_DEV_GPU_UTIL{"), "0");
    assert_eq!(line("DCGM_FI_DEV_FB_USED{"), "74166");
    assert_eq!(
        line("DCGM_FI_DEV_FB_FREE{"),
        (81_559 - 579 - 74_166).to_string()
    );
    // pci_bus_id and device numbering of p5.48xlarge as in the fixture.
    for (i, bus) in ["53", "64", "75", "86", "97", "A8", "B9", "CA"]
        .iter()
        .enumerate()
    {
        assert!(text.contains(&format!(
            "pci_bus_id=\"00000000:{bus}:00.0\",device=\"nvidia{i}\""
        )));
    }
}
