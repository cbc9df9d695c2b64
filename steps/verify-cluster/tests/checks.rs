//! Every check fails on a scenario made for it, naming the objects involved, with the exit code
//! its severity gives; `healthy.rs` has the scenario where every check passes. Each case runs
//! only its own check (`--check ID`) on its own sandbox, and sends no mutating request.

use crate::common;

use common::{Out, assert_read_only_since, edit, marks, pod_named, run, start};
use opsteps::exit::ExitStatus;
use opsteps_sandbox::resources::well_known as wk;
use opsteps_sandbox::sandbox::Sandbox;
use serde_json::json;

const HEAD: &str =
    "cluster: {name: t, version: \"1.33\"}\nclock: {start: 2026-11-26T10:00:00Z, scale: 60}\n";
const NODES: &str = "nodeGroups:\n  - {name: workers, count: 3, instanceType: m5.2xlarge, zones: [us-east-1a, us-east-1b, us-east-1c]}\n";

struct Case {
    id: &'static str,
    /// Extra flags.
    args: &'static [&'static str],
    /// Scenario after HEAD (and NODES unless it has its own nodeGroups).
    yaml: &'static str,
    /// Objects the findings must name (`Kind ns/name` or `Kind name`).
    objects: &'static [&'static str],
    /// The check's status.
    status: &'static str,
    /// Exit status of the run.
    exit: ExitStatus,
    /// A message fragment the findings must contain.
    says: &'static str,
    /// State no scenario field makes, written into the store before the run.
    setup: Option<fn(&Sandbox)>,
}

const fn case(
    id: &'static str,
    yaml: &'static str,
    objects: &'static [&'static str],
    says: &'static str,
) -> Case {
    Case {
        id,
        args: &[],
        yaml,
        objects,
        status: "fail",
        exit: ExitStatus::Failed,
        says,
        setup: None,
    }
}

impl Case {
    const fn warn(mut self) -> Self {
        self.status = "warn";
        self.exit = ExitStatus::Done;
        self
    }
    const fn args(mut self, a: &'static [&'static str]) -> Self {
        self.args = a;
        self
    }
    const fn setup(mut self, f: fn(&Sandbox)) -> Self {
        self.setup = Some(f);
        self
    }
}

fn waiting(sb: &Sandbox, prefix: &str, reason: &str) {
    let name = pod_named(sb, "shop", prefix);
    edit(sb, wk::pods(), "shop", &name, |p| {
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": reason, "message": "back-off"}});
        p["status"]["containerStatuses"][0]["ready"] = json!(false);
    });
}

const CASES: &[Case] = &[
    case("cluster.eks-status", "eks: {healthIssues: [{code: Ec2SubnetNotFound, message: subnet-x was deleted, resourceIds: [subnet-x]}]}\n", &["EksCluster t"], "Ec2SubnetNotFound"),
    case("cluster.upgrade-target", "", &["Cluster control-plane"], "not exactly one minor ahead").args(&["--profile", "pre-upgrade", "--target-kubernetes", "1.35"]),
    case("cluster.expected-version", "", &["Cluster control-plane"], "expected 1.34").args(&["--profile", "post-upgrade", "--expect-kubernetes", "1.34"]),
    case("cluster.insights", "eks:\n  insights:\n    - {id: deprecated-apis-134, name: Deprecated APIs removed in Kubernetes v1.34, status: ERROR, kubernetesVersion: \"1.34\", reason: Deprecated API usage detected within last 30 days., deprecationDetails: [{usage: /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas, replacedWith: /apis/flowcontrol.apiserver.k8s.io/v1/flowschemas, stopServingVersion: \"1.32\", clientStats: [{userAgent: legacy-operator/1.0, numberOfRequestsLast30Days: 42}]}]}\n", &["EksInsight deprecated-apis-134"], "legacy-operator/1.0").args(&["--profile", "pre-upgrade"]),
    case("cluster.subnet-ips", "ec2:\n  subnets:\n    - {subnetId: subnet-aaa, availabilityZone: us-east-1a, cidrBlock: 10.1.0.0/24, availableIpAddressCount: 3}\n    - {subnetId: subnet-bbb, availabilityZone: us-east-1b, cidrBlock: 10.1.1.0/24, availableIpAddressCount: 200}\n", &["Subnet subnet-aaa"], "3 free IP addresses"),
    case("nodes.ready", "nodes: [{name: sick-1, nodeGroup: workers, down: NotReady}]\n", &["Node sick-1"], "not Ready"),
    case("nodes.pressure", "", &["Node workers-1"], "MemoryPressure").setup(|sb| {
        edit(sb, wk::nodes(), "", "workers-1", |n| {
            for c in n["status"]["conditions"].as_array_mut().unwrap() {
                if c["type"] == "MemoryPressure" {
                    c["status"] = json!("True");
                }
            }
        });
    }),
    case("nodes.cordoned", "nodes: [{name: held-1, unschedulable: true}]\n", &["Node held-1"], "cordoned").warn(),
    case("nodes.kubelet-skew", "nodes: [{name: old-1, version: v1.29.5-eks-5e0fdde}]\n", &["Node old-1"], "kubelet 1.29, more than 3 minors behind"),
    case("nodes.kube-proxy-skew", "workloads: [{kind: DaemonSet, name: kube-proxy, namespace: kube-system, image: \"602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy:v1.34.1-eksbuild.2\"}]\n", &["DaemonSet kube-system/kube-proxy"], "newer than the control plane"),
    case("nodes.nodegroups", "eks: {nodegroups: [{name: workers, healthIssues: [{code: AsgInstanceLaunchFailures, message: capacity not available, resourceIds: [asg-1]}]}]}\n", &["Nodegroup workers"], "AsgInstanceLaunchFailures"),
    case("nodes.required-nodegroup", "nodeGroups:\n  - {name: blue, count: 2}\n  - {name: green, count: 1}\n", &["Nodegroup green"], "1 Ready").args(&["--require-nodegroup", "green", "--min-ready", "2"]),
    case("workloads.rollout", "workloads: [{name: web, namespace: shop, replicas: 2, neverReady: true}]\n", &["Deployment shop/web"], "0/2 available"),
    case("pods.crash-loop", "workloads: [{name: api, namespace: shop, replicas: 2}]\n", &["Deployment shop/api"], "CrashLoopBackOff").setup(|sb| waiting(sb, "api-", "CrashLoopBackOff")),
    case("pods.image-pull", "workloads: [{name: api, namespace: shop, replicas: 2}]\n", &["Deployment shop/api"], "ImagePullBackOff").setup(|sb| waiting(sb, "api-", "ImagePullBackOff")),
    case("pods.pending", "workloads: [{kind: Pod, name: stuck, namespace: shop, phase: Pending, nodeSelector: {no-such: node}, age: 1h}]\n", &["Pod shop/stuck"], "Pending for"),
    case("pods.oom-killed", "workloads: [{name: leaky, namespace: shop, replicas: 2, requests: {cpu: 100m, memory: 256Mi}, restarts: {count: 4, reason: OOMKilled}}]\n", &["Deployment shop/leaky"], "memory request 256Mi").warn(),
    case("workloads.single-replica", "workloads: [{name: solo, namespace: shop, replicas: 1}]\n", &["Deployment shop/solo"], "single replica").warn(),
    case("workloads.min-ready-seconds", "workloads: [{name: web, namespace: shop, replicas: 2}]\n", &["Deployment shop/web"], "minReadySeconds 0").warn(),
    case("workloads.readiness-probe", "workloads: [{name: web, namespace: shop, replicas: 2}]\n", &["Deployment shop/web"], "no readinessProbe").warn(),
    case("workloads.resource-requests", "workloads: [{kind: StatefulSet, name: db, namespace: shop, replicas: 2}]\n", &["StatefulSet shop/db"], "do not request").warn(),
    case("workloads.termination-grace", "workloads: [{name: web, namespace: shop, replicas: 2, terminationGracePeriodSeconds: 0}]\n", &["Deployment shop/web"], "terminationGracePeriodSeconds 0").warn(),
    case("workloads.docker-socket", "workloads: [{kind: DaemonSet, name: builder, namespace: ci, volumes: [{name: sock, hostPath: {path: /var/run/docker.sock}}]}]\n", &["DaemonSet ci/builder"], "docker.sock").warn(),
    case("workloads.topology", "workloads: [{name: web, namespace: shop, replicas: 3, placement: {nodes: [workers-0]}}]\n", &["Deployment shop/web", "Node workers-0"], "on one node").warn(),
    case("pdb.blocking", "workloads: [{name: web, namespace: shop, replicas: 2, pdb: {minAvailable: 2}}]\n", &["PodDisruptionBudget shop/web"], "allows 0 disruptions"),
    case("pdb.no-match", "workloads: [{name: web, namespace: shop, replicas: 2}]\npdbs: [{name: ghost, namespace: shop, matchLabels: {app: ghost}, maxUnavailable: 1}]\n", &["PodDisruptionBudget shop/ghost"], "selects no pod").warn(),
    case("pdb.overlap", "workloads: [{name: web, namespace: shop, replicas: 2, pdb: {maxUnavailable: 1}}]\npdbs: [{name: all-of-shop, namespace: shop, selectAll: true, maxUnavailable: 1}]\n", &["PodDisruptionBudget shop/web", "PodDisruptionBudget shop/all-of-shop"], "several PDBs"),
    case("pdb.missing", "workloads: [{name: web, namespace: shop, replicas: 3}, {name: ok, namespace: shop, replicas: 3, pdb: {maxUnavailable: 1}}]\n", &["Deployment shop/web"], "no PDB").warn(),
    case("addons.health", "eks: {addons: [{name: coredns, status: DEGRADED, healthIssues: [{code: InsufficientNumberOfReplicas, message: only 1 of 2 replicas ready, resourceIds: [coredns]}]}]}\n", &["Addon coredns"], "InsufficientNumberOfReplicas"),
    case("addons.compatibility", "eks: {addons: [{name: vpc-cni, version: v1.18.6-eksbuild.1}]}\n", &["Addon vpc-cni"], "current Kubernetes 1.33"),
    case("apis.removed", "objects:\n  - apiVersion: policy/v1\n    kind: PodDisruptionBudget\n    metadata:\n      name: legacy\n      namespace: shop\n      annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"apiVersion\":\"policy/v1beta1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"legacy\",\"namespace\":\"shop\"}}'}\n    spec: {maxUnavailable: 1, selector: {matchLabels: {app: legacy}}}\n", &["PodDisruptionBudget shop/legacy"], "policy/v1beta1 PodDisruptionBudget, removed in 1.25"),
    case("apis.deprecated-requests", "apiServer:\n  requestedDeprecatedApis:\n    - {group: flowcontrol.apiserver.k8s.io, version: v1beta3, resource: flowschemas, removedRelease: \"1.32\"}\n", &["APIResource flowschemas.flowcontrol.apiserver.k8s.io/v1beta3"], "removed in 1.32"),
    case("hpa.unable", "workloads: [{name: web, namespace: shop, replicas: 2}]\nobjects:\n  - {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: web, namespace: shop}, spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 5, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]}}\n", &["HorizontalPodAutoscaler shop/web"], "ScalingActive is False").warn(),
    case("hpa.at-max", "workloads: [{name: web, namespace: shop, replicas: 3}]\nobjects:\n  - {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: web, namespace: shop}, spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: 1, maxReplicas: 3, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]}}\n", &["HorizontalPodAutoscaler shop/web"], "at maxReplicas 3").warn(),
    case("access.exec", "objects:\n  - {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: shell}, rules: [{apiGroups: [\"\"], resources: [pods/exec], verbs: [create]}]}\n  - {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRoleBinding, metadata: {name: shell-alice}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shell}, subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]}\n", &["ClusterRoleBinding shell-alice", "User alice"], "pods/exec"),
    case("gpu.dcgm-exporter", "nodeGroups:\n  - {name: gpu, count: 2, instanceType: g5.xlarge}\n", &["Node gpu-0", "Node gpu-1"], "no Ready dcgm-exporter").warn(),
    case("helm.stuck", "helmReleases:\n  - {name: payments, namespace: shop, chart: payments, version: 2.1.0, status: pending-upgrade, revision: 2, updated: 2h}\n  - {name: ingress, namespace: ingress-nginx, chart: ingress-nginx, version: 4.10.0, revision: 3}\n", &["HelmRelease shop/payments"], "pending-upgrade"),
    case("helm.removed-apis", "helmReleases:\n  - {name: old, namespace: shop, chart: old, version: 1.0.0, manifest: \"---\\napiVersion: policy/v1beta1\\nkind: PodDisruptionBudget\\nmetadata:\\n  name: old\\n\"}\n", &["HelmRelease shop/old"], "policy/v1beta1 PodDisruptionBudget"),
];

fn scenario(yaml: &str) -> String {
    if yaml.contains("nodeGroups:") {
        format!("{HEAD}{yaml}")
    } else {
        format!("{HEAD}{NODES}{yaml}")
    }
}

/// Runs one case; `Err` says what did not hold.
async fn one(c: &Case) -> Result<Out, String> {
    let sb = start(&scenario(c.yaml)).await;
    // Let the controllers settle what raw objects start (pods, HPA and PDB status).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    if let Some(f) = c.setup {
        f(&sb);
    }
    let since = marks(&sb);
    let mut args = vec!["--check", c.id];
    args.extend_from_slice(c.args);
    let out = run(&sb, &args).await;
    assert_read_only_since(&sb, since);
    let status = out.check_status(c.id);
    if status != c.status {
        return Err(format!(
            "status {status}, want {}: {:#}",
            c.status, out.result
        ));
    }
    let objects = out.objects(c.id);
    for o in c.objects {
        if !objects.contains(*o) {
            return Err(format!("{o} not named; named: {objects:?}"));
        }
    }
    if !out
        .findings(c.id)
        .iter()
        .any(|f| f["message"].as_str().unwrap().contains(c.says))
    {
        return Err(format!(
            "no finding says {:?}: {:#}",
            c.says, out.result["findings"]
        ));
    }
    if out.status != c.exit {
        return Err(format!("exit {:?}, want {:?}", out.status, c.exit));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_fails_on_its_scenario() {
    let mut failures = Vec::new();
    for c in CASES {
        if let Err(e) = one(c).await {
            failures.push(format!("{}: {e}", c.id));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every check of the catalogue has a failing case here (cluster.version, cluster.updates and
/// helm.outdated have their own tests below).
#[test]
fn every_check_has_a_case() {
    let covered: std::collections::BTreeSet<&str> = CASES
        .iter()
        .map(|c| c.id)
        .chain(["cluster.version", "cluster.updates", "helm.outdated"])
        .collect();
    let missing: Vec<&str> = verify_cluster::registry::CATALOGUE
        .iter()
        .map(|c| c.id)
        .filter(|id| !covered.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "checks without a failing case: {missing:?}"
    );
}
