//! dcgm-exporter endpoints: exporter pods under both label schemes serve `/metrics` on their own
//! pod IP at port 9400, `pods/proxy` returns the same bytes, and the text parses like the genuine
//! fixtures in `../shared/fixtures/dcgm/` (read in place; `OPSTEPS_SHARED_DIR` overrides).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use opsteps_sandbox::dcgm;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use prom_text::{Exposition, Sample};

/// Two H100 nodes (p5.48xlarge, 8 GPUs each) under the GPU Operator's exporter, one A100 node
/// with MIG under the Helm chart's. Two trainer pods hold 4 GPUs each on h100-0; h100-1 is idle
/// with an XID 79 on GPU 3.
const SCENARIO: &str = r#"
cluster: {name: gpu-test}
clock: {start: "2026-11-26T10:00:00Z", scale: 1}
nodeGroups:
  - {name: h100, count: 2, instanceType: p5.48xlarge, labels: {workload: gpu, gpu-stack: operator},
     taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]}
  - {name: a100mig, count: 1, instanceType: p4d.24xlarge, labels: {workload: gpu-mig, gpu-stack: helm},
     taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]}
  - {name: cpu, count: 1, instanceType: m5.xlarge}
workloads:
  - {kind: DaemonSet, name: nvidia-dcgm-exporter, namespace: gpu-operator, labels: {app: nvidia-dcgm-exporter},
     nodeSelector: {gpu-stack: operator}, tolerations: [{operator: Exists}], requests: {cpu: 100m, memory: 128Mi}}
  - {kind: DaemonSet, name: dcgm-exporter, namespace: gpu-monitoring, labels: {app.kubernetes.io/name: dcgm-exporter},
     nodeSelector: {gpu-stack: helm}, tolerations: [{operator: Exists}], requests: {cpu: 100m, memory: 128Mi}}
  - {kind: Deployment, name: trainer, namespace: ml, replicas: 2, labels: {app: trainer},
     requests: {cpu: "8", memory: 64Gi, gpu: 4}, nodeSelector: {workload: gpu},
     tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}], placement: {nodes: [h100-0]}}
gpu:
  interval: 1h
  workloads:
    - {namespace: ml, labels: {app: trainer}, load: {util: [90, 99], fbUsed: 74166, power: [600, 690]}}
  nodes:
    - {node: h100-1, xid: [{gpu: 3, code: 79}]}
    - {nodeGroup: a100mig, mig: [{gpu: 0, profile: 1g.5gb, id: 13}, {gpu: 0, profile: 1g.5gb, id: 14}]}
"#;

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

/// The exposition of `text`, which must parse whole.
fn parse(text: &str) -> Exposition<'_> {
    let e = prom_text::parse(text);
    assert!(e.skipped.is_empty(), "not Prometheus text: {:?}", e.skipped);
    e
}

fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn label_keys(s: &Sample) -> BTreeSet<String> {
    s.labels.iter().map(|(k, _)| k.to_owned()).collect()
}

/// The `# TYPE` of `name` (`untyped` when none is declared).
fn kind(e: &Exposition, name: &str) -> &'static str {
    e.family(name).map_or("untyped", |f| f.kind.as_str())
}

/// A plain HTTP GET: status, Content-Type and body bytes.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, body)
}

async fn client(sb: &Sandbox) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Through the API server: `GET .../pods/{name_port}/proxy/metrics`.
async fn proxy(client: &kube::Client, ns: &str, name_port: &str) -> String {
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{ns}/pods/{name_port}/proxy/metrics"
    ))
    .body(Vec::new())
    .unwrap();
    client
        .request_text(req)
        .await
        .unwrap_or_else(|e| panic!("proxy to {ns}/{name_port}: {e}"))
}

/// A sandbox with its exporter pods listening. Each sandbox has its own pod-IP range, so these
/// run in parallel, in this process and beside any other.
struct Gpu {
    sb: Sandbox,
    /// Exporter pods: node → (namespace, name, address).
    pods: BTreeMap<String, (String, String, SocketAddr)>,
}

async fn start() -> Gpu {
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario parses");
    let sb = Sandbox::start(Options::default().scenario(scenario))
        .await
        .expect("sandbox starts");
    let found: Vec<(String, String, String)> = sb.with(|c| {
        c.store
            .list(opsteps_sandbox::resources::well_known::pods(), None)
            .filter(|p| dcgm::is_exporter(p))
            .map(|p| {
                let (ns, name) = opsteps_sandbox::podutil::ns_name(p);
                let node = opsteps_sandbox::podutil::node_name(p).unwrap().to_owned();
                (node, ns.to_owned(), name.to_owned())
            })
            .collect()
    });
    let mut pods = BTreeMap::new();
    for (node, ns, name) in found {
        let addr = sb
            .dcgm()
            .wait_listening(&ns, &name, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("exporter {ns}/{name} is not listening"));
        pods.insert(node, (ns, name, addr));
    }
    Gpu { sb, pods }
}

/// Direct and proxied scrapes of one exporter pod, taken in the same collect interval.
async fn scrape_both(g: &Gpu, client: &kube::Client, node: &str, with_port: bool) -> String {
    let (ns, name, addr) = &g.pods[node];
    let (status, ct, direct) = get(*addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; charset=utf-8");
    let name_port = if with_port {
        format!("{name}:9400")
    } else {
        name.clone()
    };
    let proxied = proxy(client, ns, &name_port).await;
    let direct = String::from_utf8(direct).unwrap();
    assert!(
        direct == proxied,
        "direct and proxied scrapes of {ns}/{name} differ:\n--- direct\n{direct}\n--- proxy\n{proxied}"
    );
    direct
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_serve_their_exporters_at_once() {
    let (a, b) = tokio::join!(start(), start());
    let ips = |g: &Gpu| -> BTreeSet<std::net::IpAddr> {
        g.pods.values().map(|(_, _, addr)| addr.ip()).collect()
    };
    assert_eq!(ips(&a).len(), 3);
    assert!(
        ips(&a).is_disjoint(&ips(&b)),
        "pod IPs overlap: {:?} / {:?}",
        ips(&a),
        ips(&b)
    );
    for g in [&a, &b] {
        let client = client(&g.sb).await;
        for node in g.pods.keys() {
            let text = scrape_both(g, &client, node, false).await;
            let hostname = parse(&text)
                .samples
                .iter()
                .find_map(|s| s.labels.get("Hostname").map(str::to_owned));
            assert_eq!(hostname.as_deref(), Some(node.as_str()), "{node}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_proxied_scrapes_are_identical_and_parse_like_the_fixtures() {
    let g = start().await;
    let client = client(&g.sb).await;
    assert_eq!(
        g.pods.keys().cloned().collect::<Vec<_>>(),
        ["a100mig-0", "h100-0", "h100-1"],
        "one exporter per GPU node, none on the CPU node"
    );
    // Both label schemes are found and served.
    let namespaces: BTreeSet<&str> = g.pods.values().map(|(ns, _, _)| ns.as_str()).collect();
    assert_eq!(
        namespaces,
        BTreeSet::from(["gpu-monitoring", "gpu-operator"])
    );
    assert_eq!(g.sb.dcgm().listening().len(), 3);
    for (node, (_, _, addr)) in &g.pods {
        assert!(
            addr.ip().is_loopback() && addr.port() == 9400,
            "{node}: {addr}"
        );
    }

    let l4_text = fixture("cncf-k8s-ai-conformance-kops-aws-l4-full.prom");
    let l4 = parse(&l4_text);
    let h100_text = fixture("nvidia-aicr-eks-h100x8-podmapped-sampled.prom");
    let h100 = parse(&h100_text);
    let fixture_families: BTreeSet<&str> = l4.samples.iter().map(|s| s.name).collect();
    let fixture_keys = label_keys(&l4.samples[0]);
    let held_keys = label_keys(
        h100.samples
            .iter()
            .find(|s| s.labels.get("pod").is_some())
            .unwrap(),
    );

    for node in g.pods.keys() {
        for with_port in [true, false] {
            let text = scrape_both(&g, &client, node, with_port).await;
            let ours = parse(&text);
            let families: BTreeSet<&str> = ours.samples.iter().map(|s| s.name).collect();
            // The 4.x default counter set, plus the XID gauge (and NVLink on parts that have it).
            let extra: BTreeSet<&str> = families.difference(&fixture_families).copied().collect();
            assert!(
                fixture_families.is_subset(&families),
                "{node}: missing {:?}",
                fixture_families.difference(&families).collect::<Vec<_>>()
            );
            assert!(
                extra.is_subset(&BTreeSet::from([
                    "DCGM_FI_DEV_XID_ERRORS",
                    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"
                ])),
                "{node}: unexpected families {extra:?}"
            );
            // HELP text and TYPE per family as the genuine exporter prints them.
            for f in &fixture_families {
                let help = |e: &Exposition| {
                    e.family(f)
                        .and_then(|x| x.help.as_deref().map(str::to_owned))
                };
                assert_eq!(help(&ours), help(&l4), "HELP of {f}");
                assert_eq!(kind(&ours, f), kind(&l4, f), "TYPE of {f}");
            }
            // Label sets: unallocated GPUs as in the L4 fixture, held GPUs as in the pod-mapped
            // H100 fixture; XID adds err_code/err_msg; MIG adds GPU_I_PROFILE/GPU_I_ID.
            for s in &ours.samples {
                let mut keys = label_keys(s);
                if s.name == "DCGM_FI_DEV_XID_ERRORS" {
                    assert!(keys.remove("err_code") && keys.remove("err_msg"), "{s:?}");
                }
                if s.labels.get("GPU_I_ID").is_some() {
                    assert!(keys.remove("GPU_I_ID") && keys.remove("GPU_I_PROFILE"));
                }
                if s.labels.get("pod").is_some() {
                    assert_eq!(keys, held_keys, "{node}: {s:?}");
                } else {
                    assert_eq!(keys, fixture_keys, "{node}: {s:?}");
                }
                assert_eq!(s.labels.get("Hostname"), Some(node.as_str()));
            }
            // Float style: Go's %f.
            for line in text.lines().filter(|l| {
                l.starts_with("DCGM_FI_DEV_POWER_USAGE{") || l.starts_with("DCGM_FI_PROF_GR")
            }) {
                let v = line.rsplit(' ').next().unwrap();
                let (_, frac) = v.split_once('.').expect("a decimal point");
                assert_eq!(frac.len(), 6, "{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_held_by_pods_carry_pod_labels_and_workload_values() {
    let g = start().await;
    let client = client(&g.sb).await;

    // h100-0: 8 GPUs, 4 per trainer pod, each with the workload's values.
    let text = scrape_both(&g, &client, "h100-0", true).await;
    let s = parse(&text);
    let trainers: BTreeSet<String> = g.sb.with(|c| {
        c.store
            .list(opsteps_sandbox::resources::well_known::pods(), Some("ml"))
            .map(|p| opsteps_sandbox::podutil::ns_name(p).1.to_owned())
            .collect()
    });
    assert_eq!(trainers.len(), 2);
    let util: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.name == "DCGM_FI_DEV_GPU_UTIL")
        .collect();
    assert_eq!(util.len(), 8);
    let mut per_pod: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for x in &util {
        let pod = x.labels.get("pod").expect("every GPU is held").to_owned();
        assert_eq!(x.labels.get("namespace"), Some("ml"));
        assert_eq!(x.labels.get("pod_uid"), Some(""));
        assert!(!x.labels.get("container").unwrap().is_empty());
        assert_eq!(x.labels.get("modelName"), Some("NVIDIA H100 80GB HBM3"));
        assert!((90.0..=99.0).contains(&x.value), "{x:?}");
        per_pod
            .entry(pod)
            .or_default()
            .push(x.labels.get("gpu").unwrap().to_owned());
    }
    assert_eq!(
        per_pod.keys().cloned().collect::<BTreeSet<_>>(),
        trainers,
        "each trainer pod holds GPUs"
    );
    assert!(per_pod.values().all(|g| g.len() == 4), "{per_pod:?}");
    for x in s.samples.iter().filter(|x| x.name == "DCGM_FI_DEV_FB_USED") {
        assert!((x.value - 74166.0).abs() < f64::EPSILON, "{x:?}");
    }
    for x in s
        .samples
        .iter()
        .filter(|x| x.name == "DCGM_FI_DEV_POWER_USAGE")
    {
        assert!((600.0..=690.0).contains(&x.value), "{x:?}");
    }
    // UUIDs are distinct per GPU and stable across scrapes.
    let uuids: BTreeSet<&str> = util.iter().map(|x| x.labels.get("UUID").unwrap()).collect();
    assert_eq!(uuids.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_gpus_have_no_pod_labels_and_the_xid_is_reported() {
    let g = start().await;
    let client = client(&g.sb).await;
    // h100-1: idle, no pod labels at all, XID 79 on GPU 3 only.
    let text = scrape_both(&g, &client, "h100-1", true).await;
    let s = parse(&text);
    assert!(s.samples.iter().all(|x| x.labels.get("pod").is_none()));
    for x in s
        .samples
        .iter()
        .filter(|x| x.name == "DCGM_FI_DEV_GPU_UTIL")
    {
        assert!(x.value.abs() < f64::EPSILON, "idle GPU: {x:?}");
    }
    let xids: BTreeMap<&str, (f64, &str, &str)> = s
        .samples
        .iter()
        .filter(|x| x.name == "DCGM_FI_DEV_XID_ERRORS")
        .map(|x| {
            (
                x.labels.get("gpu").unwrap(),
                (
                    x.value,
                    x.labels.get("err_code").unwrap(),
                    x.labels.get("err_msg").unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(xids.len(), 8);
    assert_eq!(xids["3"], (79.0, "79", "GPU has fallen off the bus"));
    assert_eq!(xids["0"], (0.0, "0", "No Error"));
    assert!(text.contains(",err_code=\"79\",err_msg=\"GPU has fallen off the bus\"} 79\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mig_instances_get_their_own_series() {
    let g = start().await;
    let client = client(&g.sb).await;
    // a100mig-0: whole-GPU series plus per-instance series for the two 1g.5gb instances.
    let text = scrape_both(&g, &client, "a100mig-0", true).await;
    let s = parse(&text);
    let instances: BTreeSet<(&str, &str, &str)> = s
        .samples
        .iter()
        .filter(|x| x.name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE")
        .filter_map(|x| {
            Some((
                x.labels.get("gpu")?,
                x.labels.get("GPU_I_PROFILE")?,
                x.labels.get("GPU_I_ID")?,
            ))
        })
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from([("0", "1g.5gb", "13"), ("0", "1g.5gb", "14")])
    );
    let mig_text = fixture("nvidia-cloud-native-docs-a100-mig-dcp.prom");
    let mig_fixture = parse(&mig_text);
    let fixture_mig: BTreeSet<&str> = mig_fixture
        .samples
        .iter()
        .filter(|x| x.labels.get("GPU_I_ID").is_some())
        .map(|x| x.name)
        .collect();
    let our_mig: BTreeSet<&str> = s
        .samples
        .iter()
        .filter(|x| x.labels.get("GPU_I_ID").is_some())
        .map(|x| x.name)
        .collect();
    assert!(
        fixture_mig.is_subset(&our_mig),
        "per-instance families {our_mig:?} cover the fixture's {fixture_mig:?}"
    );
    // The MIG labels sit between modelName and Hostname, as in the exporter's template.
    assert!(text.contains(
        ",modelName=\"NVIDIA A100-SXM4-40GB\",GPU_I_PROFILE=\"1g.5gb\",GPU_I_ID=\"13\",Hostname=\"a100mig-0\","
    ));
    // MIG instance FB totals follow the profile: 5 GiB.
    for id in ["13", "14"] {
        let fb = |m: &str| {
            s.samples
                .iter()
                .find(|x| x.name == m && x.labels.get("GPU_I_ID") == Some(id))
                .map(|x| x.value)
                .unwrap()
        };
        assert!((fb("DCGM_FI_DEV_FB_USED") + fb("DCGM_FI_DEV_FB_FREE") - 5120.0).abs() < 0.5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_exporter_pod_is_served_on_its_new_ip() {
    let g = start().await;
    let (ns, name, old) = g.pods["h100-1"].clone();
    let client = client(&g.sb).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, &ns);
    let deleted = pods
        .delete(&name, &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(deleted.is_left(), "deleted");
    // The DaemonSet controller recreates the pod; the kubelet gives it a new IP and starts it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (new_name, addr) = loop {
        let listening = g.sb.dcgm().listening();
        let found = listening
            .iter()
            .find(|(k, a)| {
                let Some(n) = k.strip_prefix(&format!("{ns}/")) else {
                    return false;
                };
                *a != old
                    && n != name
                    && g.sb.with(|c| {
                        c.store
                            .get(opsteps_sandbox::resources::well_known::pods(), &ns, n)
                            .is_some_and(|p| {
                                opsteps_sandbox::podutil::node_name(&p) == Some("h100-1")
                            })
                    })
            })
            .cloned();
        if let Some((k, a)) = found {
            break (k.split_once('/').unwrap().1.to_owned(), a);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replacement exporter on h100-1: {listening:?}; pods: {:?}",
            g.sb.with(|c| c
                .store
                .list(opsteps_sandbox::resources::well_known::pods(), Some(&ns))
                .map(|p| format!(
                    "{} {} {} {}",
                    p["metadata"]["name"],
                    p["status"]["phase"],
                    p["status"]["podIP"],
                    p["metadata"]["deletionTimestamp"]
                ))
                .collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !g.sb
            .dcgm()
            .listening()
            .iter()
            .any(|(k, _)| k == &format!("{ns}/{name}"))
    );
    let (status, _, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{new_name}");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("Hostname=\"h100-1\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_errors_are_apiserver_statuses() {
    let g = start().await;
    // kube-rs retries 503 up to 15 times with backoff to 1000 s (as it would against a real
    // apiserver whose proxy cannot reach the pod): see the Status at once instead.
    let kc = kube::config::Kubeconfig::read_from(g.sb.kubeconfig_path()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let status = |path: String| {
        let client = client.clone();
        async move {
            let req = http::Request::get(path).body(Vec::new()).unwrap();
            match client.request_text(req).await {
                Err(kube::Error::Api(s)) => (s.code, s.reason),
                other => panic!("expected a Status error, got {other:?}"),
            }
        }
    };
    assert_eq!(
        status("/api/v1/namespaces/gpu-operator/pods/nope:9400/proxy/metrics".into()).await,
        (404, "NotFound".to_owned())
    );
    // A pod that listens on nothing: the apiserver cannot reach it.
    let trainer = g.sb.with(|c| {
        c.store
            .list(opsteps_sandbox::resources::well_known::pods(), Some("ml"))
            .map(|p| opsteps_sandbox::podutil::ns_name(p).1.to_owned())
            .next()
            .unwrap()
    });
    assert_eq!(
        status(format!(
            "/api/v1/namespaces/ml/pods/{trainer}:9400/proxy/metrics"
        ))
        .await,
        (503, "ServiceUnavailable".to_owned())
    );
    // Unknown paths on the exporter are its own 404, passed through.
    let (_, name, _) = &g.pods["h100-0"];
    let req = http::Request::get(format!(
        "/api/v1/namespaces/gpu-operator/pods/{name}:9400/proxy/nope"
    ))
    .body(Vec::new())
    .unwrap();
    assert!(client.request_text(req).await.is_err());
    let (_, _, addr) = &g.pods["h100-0"];
    assert_eq!(get(*addr, "/health").await.0, 200);
}
