//! Managed node group scale-down and version updates drain nodes as EKS does, driven through
//! aws-sdk-eks and observed through the Kubernetes API (kube-rs): nodes are cordoned, their pods
//! evicted under their PDBs (refused evictions retried), replacements run elsewhere first, and
//! only then is the instance terminated. A PDB that blocks past the eviction timeout fails a
//! version update (`PodEvictionFailure`) unless `force`, which deletes the pods anyway.

use std::time::{Duration, Instant};

use aws_sdk_eks::Client;
use aws_sdk_eks::types::{NodegroupScalingConfig, NodegroupStatus, UpdateStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;
use opsteps_sandbox::eks::rollout::NODE_MANAGER;
use opsteps_sandbox::invariants::ViolationKind;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;

/// Three nodes; `web` has four replicas on the two highest nodes under `pdb`.
fn scenario(version: &str, pdb: &str) -> String {
    format!(
        r#"
cluster: {{name: prod-a, region: eu-west-1, version: "1.33"}}
clock: {{start: 2026-11-26T10:00:00Z, scale: 60}}
kubelet: {{startDelay: 2s, readyDelay: 10s}}
nodeGroups:
  - {{name: general, count: 3, instanceType: m5.xlarge, version: "{version}"}}
workloads:
  - {{kind: DaemonSet, name: kube-proxy, namespace: kube-system, labels: {{k8s-app: kube-proxy}}}}
  - {{name: web, namespace: shop, replicas: 4, terminationGracePeriodSeconds: 20,
     placement: {{nodes: [general-1, general-2]}}, pdb: {pdb}}}
eks:
  nodegroups: [{{name: general, minSize: 1, maxSize: 6}}]
  timings: {{nodegroupConfig: 10s, nodegroupUpdate: 10s, podEvictionTimeout: 3m}}
"#
    )
}

async fn start(yaml: &str) -> (Sandbox, Client, kube::Client) {
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(yaml).unwrap()))
        .await
        .unwrap();
    let creds = aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new("eu-west-1"))
        .credentials_provider(creds)
        .endpoint_url(sb.eks_url())
        .build();
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let kube = kube::Client::try_from(config).unwrap();
    (sb, Client::from_conf(conf), kube)
}

async fn node_names(kube: &kube::Client) -> Vec<String> {
    let nodes: Api<Node> = Api::all(kube.clone());
    let mut names: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    names
}

async fn status(eks: &Client, id: &str) -> (UpdateStatus, Vec<String>) {
    let u = eks
        .describe_update()
        .name("prod-a")
        .nodegroup_name("general")
        .update_id(id)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let errors = u
        .errors()
        .iter()
        .map(|e| format!("{:?}", e.error_code()))
        .collect();
    (u.status.unwrap(), errors)
}

/// Polls the update until it leaves InProgress; `during` runs on each InProgress poll.
async fn wait_update(
    eks: &Client,
    id: &str,
    mut during: impl AsyncFnMut(),
) -> (UpdateStatus, Vec<String>) {
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let (s, errors) = status(eks, id).await;
        if s != UpdateStatus::InProgress {
            return (s, errors);
        }
        during().await;
        assert!(Instant::now() < deadline, "update {id} still InProgress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `web` pods that are running and Ready, by node.
async fn ready_web(kube: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "shop");
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.spec.and_then(|s| s.node_name))
        .collect()
}

fn actions(sb: &Sandbox, action: &str) -> Vec<(String, Option<String>)> {
    sb.with(|c| {
        c.eks
            .drain_events
            .iter()
            .filter(|e| e.action == action)
            .map(|e| (e.node.clone(), e.pod.clone()))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_drains_under_the_pdb_before_terminating() {
    let (sb, eks, kube) = start(&scenario("v1.33.0-eks-1", "{maxUnavailable: 1}")).await;
    assert_eq!(
        node_names(&kube).await,
        ["general-0", "general-1", "general-2"]
    );
    let u = eks
        .update_nodegroup_config()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .scaling_config(NodegroupScalingConfig::builder().desired_size(1).build())
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let mut min_ready = usize::MAX;
    let mut saw_draining = false;
    let (s, errors) = wait_update(&eks, u.id().unwrap(), async || {
        let names = node_names(&kube).await;
        saw_draining |= names.len() > 1 && !actions(&sb, "cordoned").is_empty();
        min_ready = min_ready.min(ready_web(&kube).await.len());
    })
    .await;
    assert_eq!(s, UpdateStatus::Successful, "{errors:?}");
    assert!(
        saw_draining,
        "the update stays InProgress while nodes drain"
    );
    assert!(
        min_ready >= 3,
        "never more than one web pod down: {min_ready}"
    );
    assert_eq!(node_names(&kube).await, ["general-0"]);
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    assert_eq!(ng.scaling_config().unwrap().desired_size(), Some(1));
    // Replacements run on the remaining node; every original pod left by eviction.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready_web(&kube).await.len() < 4 {
        assert!(Instant::now() < deadline, "web never came back to 4");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready_web(&kube).await.iter().all(|n| n == "general-0"));
    assert_eq!(actions(&sb, "evicted").len(), 4);
    assert!(
        !actions(&sb, "refused").is_empty(),
        "the budget of one made EKS wait and retry"
    );
    assert!(actions(&sb, "forced").is_empty());
    let events = sb.with(|c| c.eks.drain_events.clone());
    for node in ["general-1", "general-2"] {
        let last_eviction = events
            .iter()
            .rposition(|e| e.node == node && e.action == "evicted")
            .unwrap();
        let terminated = events
            .iter()
            .position(|e| e.node == node && e.action == "terminated")
            .unwrap();
        assert!(
            last_eviction < terminated,
            "{node} terminated before drained"
        );
    }
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_update_replaces_nodes_by_surge_and_drain() {
    let (sb, eks, kube) = start(&scenario("v1.32.3-eks-473151a", "{maxUnavailable: 1}")).await;
    let before = node_names(&kube).await;
    let u = eks
        .update_nodegroup_version()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let mut min_ready = usize::MAX;
    let mut most_nodes = 0;
    let (s, errors) = wait_update(&eks, u.id().unwrap(), async || {
        most_nodes = most_nodes.max(node_names(&kube).await.len());
        min_ready = min_ready.min(ready_web(&kube).await.len());
    })
    .await;
    assert_eq!(s, UpdateStatus::Successful, "{errors:?}");
    assert!(
        most_nodes > 3,
        "new nodes were launched before old ones left"
    );
    assert!(
        min_ready >= 3,
        "never more than one web pod down: {min_ready}"
    );
    let after = node_names(&kube).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after.iter().all(|n| !before.contains(n)),
        "{before:?} → {after:?}"
    );
    let nodes: Api<Node> = Api::all(kube.clone());
    for n in nodes.list(&ListParams::default()).await.unwrap().items {
        let kubelet = n.status.unwrap().node_info.unwrap().kubelet_version;
        assert!(kubelet.starts_with("v1.33."), "{kubelet}");
        assert_ne!(n.spec.unwrap().unschedulable, Some(true));
    }
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.version(), Some("1.33"));
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    assert_eq!(actions(&sb, "terminated").len(), 3);
    assert!(actions(&sb, "forced").is_empty());
    sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_pdb_fails_a_version_update_unless_forced() {
    let (sb, eks, kube) = start(&scenario("v1.32.3-eks-473151a", "{maxUnavailable: 0}")).await;
    let update = |force: bool| {
        eks.update_nodegroup_version()
            .cluster_name("prod-a")
            .nodegroup_name("general")
            .force(force)
            .send()
    };
    let u = update(false).await.unwrap().update.unwrap();
    let (s, errors) = wait_update(&eks, u.id().unwrap(), async || {}).await;
    assert_eq!(s, UpdateStatus::Failed);
    assert_eq!(errors, ["Some(PodEvictionFailure)"]);
    assert!(!actions(&sb, "timedOut").is_empty());
    assert!(actions(&sb, "evicted").is_empty(), "the budget allows none");
    sb.assert_invariants();
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(
        ng.version(),
        Some("1.32"),
        "a failed update keeps the version"
    );
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));

    let u = update(true).await.unwrap().update.unwrap();
    let (s, errors) = wait_update(&eks, u.id().unwrap(), async || {}).await;
    assert_eq!(s, UpdateStatus::Successful, "{errors:?}");
    assert!(!actions(&sb, "forced").is_empty());
    let breaches: Vec<_> = sb
        .invariants()
        .into_iter()
        .filter(|v| v.kind == ViolationKind::PdbBreached)
        .collect();
    assert!(!breaches.is_empty(), "force ignores the budget");
    assert!(
        breaches.iter().all(|v| v.user == NODE_MANAGER),
        "{breaches:?}"
    );
    let nodes: Api<Node> = Api::all(kube.clone());
    for n in nodes.list(&ListParams::default()).await.unwrap().items {
        let kubelet = n.status.unwrap().node_info.unwrap().kubelet_version;
        assert!(kubelet.starts_with("v1.33."), "{kubelet}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_forces_after_the_eviction_timeout() {
    let (sb, eks, kube) = start(&scenario("v1.33.0-eks-1", "{maxUnavailable: 0}")).await;
    let started = sb.with(|c| c.clock.now());
    let u = eks
        .update_nodegroup_config()
        .cluster_name("prod-a")
        .nodegroup_name("general")
        .scaling_config(NodegroupScalingConfig::builder().desired_size(2).build())
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let (s, errors) = wait_update(&eks, u.id().unwrap(), async || {}).await;
    assert_eq!(s, UpdateStatus::Successful, "{errors:?}");
    let took = sb.with(|c| c.clock.now()).duration_since(started);
    assert!(
        took >= jiff::SignedDuration::from_mins(3),
        "the budget held the drain for the whole timeout: {took:#}"
    );
    assert_eq!(node_names(&kube).await, ["general-0", "general-1"]);
    assert!(actions(&sb, "evicted").is_empty(), "the budget allows none");
    let forced = actions(&sb, "forced");
    assert_eq!(forced.len(), 2, "{forced:?}");
    assert!(forced.iter().all(|(node, _)| node == "general-2"));
    let breaches: Vec<_> = sb
        .invariants()
        .into_iter()
        .filter(|v| v.kind == ViolationKind::PdbBreached)
        .collect();
    assert_eq!(breaches.len(), 2, "{breaches:?}");
    assert!(breaches.iter().all(|v| v.user == NODE_MANAGER));
}
