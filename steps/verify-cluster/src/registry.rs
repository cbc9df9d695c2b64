//! The check catalogue: every check with its stable id, family, default severity, one-line
//! remediation, what it reads, and the profiles that run it. Ids never change meaning; a new
//! behaviour gets a new id. The README's catalogue lists the same rows (a test compares them).

use crate::checks::{self, Ctx};
use crate::finding::{Findings, Severity};
use crate::inventory::Source;

/// A named set of checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Before a control-plane upgrade: is it safe to go to --target-kubernetes?
    PreUpgrade,
    /// After an upgrade step: did it work (--expect-kubernetes)?
    PostUpgrade,
    /// Before a blue/green cut-over: is green ready?
    Cutover,
    /// Daily: what needs attention?
    Health,
}

const ALL: &[Profile] = &[
    Profile::PreUpgrade,
    Profile::PostUpgrade,
    Profile::Cutover,
    Profile::Health,
];
const PRE: &[Profile] = &[Profile::PreUpgrade];
const POST: &[Profile] = &[Profile::PostUpgrade];
const COMPAT: &[Profile] = &[Profile::PreUpgrade, Profile::PostUpgrade, Profile::Cutover];
const READINESS: &[Profile] = &[Profile::PreUpgrade, Profile::Cutover];
/// Only when its flag asks for it (--require-nodegroup, --helm-index).
const ON_REQUEST: &[Profile] = &[];

/// One check.
#[derive(Debug)]
pub struct Check {
    /// Stable id, `family.name`.
    pub id: &'static str,
    /// What it verifies, in a few words.
    pub title: &'static str,
    /// The default severity of its findings.
    pub severity: Severity,
    /// The default one-line remediation.
    pub remediation: &'static str,
    /// What it reads; missing any of them skips it.
    pub needs: &'static [Source],
    /// Profiles that run it.
    pub profiles: &'static [Profile],
    /// The eksup finding codes it covers, if any.
    pub eksup: &'static str,
    /// The check.
    pub run: fn(&Ctx<'_>, &mut Findings),
}

impl Check {
    /// The family: the id's part before the dot.
    #[must_use]
    pub fn family(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }

    /// Runs the check on what was read.
    #[must_use]
    pub fn findings(&self, ctx: &Ctx<'_>) -> Vec<crate::finding::Finding> {
        let mut f = Findings::new(self.id, self.severity, self.remediation);
        (self.run)(ctx, &mut f);
        f.items
    }
}

use Source as S;
use checks::{
    access, addons, apis, autoscaling, cluster, disruption, gpu, helm, nodes, pods, workloads,
};

/// Every check, in report order.
pub static CATALOGUE: &[Check] = &[
    Check {
        id: "cluster.eks-status",
        title: "EKS cluster ACTIVE with no health issues",
        severity: Severity::Fail,
        remediation: "Resolve the cluster health issues shown in the EKS console before changing anything.",
        needs: &[S::EksCluster],
        profiles: ALL,
        eksup: "EKS002",
        run: cluster::eks_status,
    },
    Check {
        id: "cluster.version",
        title: "API server /version equals the EKS version",
        severity: Severity::Fail,
        remediation: "Wait for the control-plane update to finish, or check the step targets the right cluster.",
        needs: &[S::Version, S::EksCluster],
        profiles: ALL,
        eksup: "",
        run: cluster::version,
    },
    Check {
        id: "cluster.upgrade-target",
        title: "Target is exactly one minor ahead",
        severity: Severity::Fail,
        remediation: "EKS upgrades one minor at a time: set --target-kubernetes to the next minor.",
        needs: &[S::Version],
        profiles: PRE,
        eksup: "",
        run: cluster::upgrade_target,
    },
    Check {
        id: "cluster.expected-version",
        title: "Control plane at --expect-kubernetes",
        severity: Severity::Fail,
        remediation: "Finish (or retry) the control-plane upgrade before the next step.",
        needs: &[S::Version],
        profiles: POST,
        eksup: "",
        run: cluster::expected_version,
    },
    Check {
        id: "cluster.updates",
        title: "No cluster update in progress or failed",
        severity: Severity::Fail,
        remediation: "Wait for the update in progress, or read the failed update's errors (aws eks describe-update).",
        needs: &[S::EksCluster],
        profiles: ALL,
        eksup: "",
        run: cluster::updates,
    },
    Check {
        id: "cluster.insights",
        title: "EKS upgrade insights for the target pass",
        severity: Severity::Fail,
        remediation: "Follow the insight's recommendation (aws eks describe-insight) before upgrading.",
        needs: &[S::EksInsights],
        profiles: PRE,
        eksup: "",
        run: cluster::insights,
    },
    Check {
        id: "cluster.subnet-ips",
        title: "At least --min-free-ips free IPs in each cluster subnet",
        severity: Severity::Fail,
        remediation: "Free addresses in the subnet or add subnets to the cluster: EKS needs 5 per subnet to upgrade.",
        needs: &[S::Subnets],
        profiles: PRE,
        eksup: "AWS001, EKS001",
        run: cluster::subnet_ips,
    },
    Check {
        id: "nodes.ready",
        title: "Every node Ready",
        severity: Severity::Fail,
        remediation: "Investigate the node (kubelet, instance health) or replace it.",
        needs: &[S::Nodes],
        profiles: ALL,
        eksup: "",
        run: nodes::ready,
    },
    Check {
        id: "nodes.pressure",
        title: "No memory, disk or PID pressure",
        severity: Severity::Fail,
        remediation: "Free resources on the node or move workloads off it.",
        needs: &[S::Nodes],
        profiles: ALL,
        eksup: "",
        run: nodes::pressure,
    },
    Check {
        id: "nodes.cordoned",
        title: "No cordoned node",
        severity: Severity::Warn,
        remediation: "Uncordon the node if no drain is running (kubectl uncordon), or finish the drain.",
        needs: &[S::Nodes],
        profiles: ALL,
        eksup: "",
        run: nodes::cordoned,
    },
    Check {
        id: "nodes.kubelet-skew",
        title: "Kubelet versions within the skew policy, now and after the target",
        severity: Severity::Fail,
        remediation: "Upgrade the node group (or replace the nodes) before the control plane moves on.",
        needs: &[S::Nodes, S::Version],
        profiles: ALL,
        eksup: "K8S001",
        run: nodes::kubelet_skew,
    },
    Check {
        id: "nodes.kube-proxy-skew",
        title: "kube-proxy within the skew policy, now and after the target",
        severity: Severity::Fail,
        remediation: "Update the kube-proxy add-on to the version for the control plane's minor.",
        needs: &[S::DaemonSets, S::Version],
        profiles: COMPAT,
        eksup: "K8S011",
        run: nodes::kube_proxy_skew,
    },
    Check {
        id: "nodes.nodegroups",
        title: "Node groups ACTIVE, healthy, desired nodes Ready",
        severity: Severity::Fail,
        remediation: "Resolve the node group's health issues or wait for its nodes to become Ready.",
        needs: &[S::EksNodegroups, S::Nodes],
        profiles: ALL,
        eksup: "EKS003",
        run: nodes::nodegroups,
    },
    Check {
        id: "nodes.required-nodegroup",
        title: "--require-nodegroup has --min-ready Ready, schedulable nodes",
        severity: Severity::Fail,
        remediation: "Wait for the new node group to come up (or scale it) before draining the old one.",
        needs: &[S::Nodes],
        profiles: ON_REQUEST,
        eksup: "",
        run: nodes::required_nodegroup,
    },
    Check {
        id: "workloads.rollout",
        title: "Deployments, StatefulSets, DaemonSets available and rolled out",
        severity: Severity::Fail,
        remediation: "Check the rollout (kubectl rollout status) and the pods it waits for.",
        needs: &[S::Deployments, S::StatefulSets, S::DaemonSets],
        profiles: ALL,
        eksup: "",
        run: workloads::rollout,
    },
    Check {
        id: "pods.crash-loop",
        title: "No container in CrashLoopBackOff",
        severity: Severity::Fail,
        remediation: "Read the container's previous logs (kubectl logs --previous) and fix the crash.",
        needs: &[S::Pods],
        profiles: ALL,
        eksup: "",
        run: pods::crash_loop,
    },
    Check {
        id: "pods.image-pull",
        title: "No image pull failures",
        severity: Severity::Fail,
        remediation: "Fix the image name or tag, or the registry credentials.",
        needs: &[S::Pods],
        profiles: ALL,
        eksup: "",
        run: pods::image_pull,
    },
    Check {
        id: "pods.pending",
        title: "No pod Pending longer than --pending-threshold",
        severity: Severity::Fail,
        remediation: "Read the pod's FailedScheduling events: add capacity or relax its constraints.",
        needs: &[S::Pods],
        profiles: ALL,
        eksup: "",
        run: pods::pending,
    },
    Check {
        id: "pods.oom-killed",
        title: "No container OOMKilled within --oom-window",
        severity: Severity::Warn,
        remediation: "Raise the memory limit (and request) or fix the leak.",
        needs: &[S::Pods],
        profiles: ALL,
        eksup: "",
        run: pods::oom_killed,
    },
    Check {
        id: "workloads.single-replica",
        title: "Deployments and StatefulSets have more than one replica",
        severity: Severity::Warn,
        remediation: "Run at least two replicas so a drain does not take the service down.",
        needs: &[S::Deployments, S::StatefulSets],
        profiles: PRE,
        eksup: "K8S002",
        run: workloads::single_replica,
    },
    Check {
        id: "workloads.min-ready-seconds",
        title: "Deployments and StatefulSets set minReadySeconds",
        severity: Severity::Warn,
        remediation: "Set spec.minReadySeconds so a rollout waits for pods to stay Ready.",
        needs: &[S::Deployments, S::StatefulSets],
        profiles: PRE,
        eksup: "K8S003",
        run: workloads::min_ready_seconds,
    },
    Check {
        id: "workloads.readiness-probe",
        title: "Containers have readiness probes",
        severity: Severity::Warn,
        remediation: "Add a readinessProbe so traffic only reaches ready pods during node rotation.",
        needs: &[S::Deployments, S::StatefulSets, S::DaemonSets],
        profiles: PRE,
        eksup: "K8S006",
        run: workloads::readiness_probe,
    },
    Check {
        id: "workloads.resource-requests",
        title: "Containers request CPU and memory",
        severity: Severity::Warn,
        remediation: "Set resources.requests.cpu and memory so new nodes are sized and pods fit.",
        needs: &[S::Deployments, S::StatefulSets, S::DaemonSets],
        profiles: PRE,
        eksup: "",
        run: workloads::resource_requests,
    },
    Check {
        id: "workloads.termination-grace",
        title: "terminationGracePeriodSeconds above 0",
        severity: Severity::Warn,
        remediation: "Give pods a grace period (the default 30 s) so they shut down cleanly on eviction.",
        needs: &[S::Deployments, S::StatefulSets, S::DaemonSets],
        profiles: PRE,
        eksup: "K8S007",
        run: workloads::termination_grace,
    },
    Check {
        id: "workloads.docker-socket",
        title: "No docker.sock mounts",
        severity: Severity::Warn,
        remediation: "Remove the /var/run/docker.sock hostPath: EKS nodes run containerd.",
        needs: &[S::Deployments, S::StatefulSets, S::DaemonSets],
        profiles: PRE,
        eksup: "K8S008",
        run: workloads::docker_socket,
    },
    Check {
        id: "workloads.topology",
        title: "Replicas spread over nodes and zones",
        severity: Severity::Warn,
        remediation: "Add topologySpreadConstraints (or pod anti-affinity) across nodes and zones.",
        needs: &[S::Deployments, S::StatefulSets, S::Pods, S::Nodes],
        profiles: PRE,
        eksup: "K8S005",
        run: workloads::topology,
    },
    Check {
        id: "pdb.blocking",
        title: "No PDB blocks every eviction",
        severity: Severity::Fail,
        remediation: "Scale the workload up or relax the budget, else drains will stall on it.",
        needs: &[S::Pdbs],
        profiles: ALL,
        eksup: "",
        run: disruption::blocking,
    },
    Check {
        id: "pdb.no-match",
        title: "Every PDB selects a pod",
        severity: Severity::Warn,
        remediation: "Fix the PDB's selector or delete the PDB.",
        needs: &[S::Pdbs, S::Pods],
        profiles: ALL,
        eksup: "",
        run: disruption::no_match,
    },
    Check {
        id: "pdb.overlap",
        title: "No pod under two PDBs",
        severity: Severity::Fail,
        remediation: "Keep one PDB per pod: the eviction API refuses pods with several (HTTP 500).",
        needs: &[S::Pdbs, S::Pods],
        profiles: ALL,
        eksup: "",
        run: disruption::overlap,
    },
    Check {
        id: "pdb.missing",
        title: "Workloads with several replicas have a PDB",
        severity: Severity::Warn,
        remediation: "Add a PodDisruptionBudget (e.g. maxUnavailable: 1) so drains keep it available.",
        needs: &[S::Pdbs, S::Deployments, S::StatefulSets],
        profiles: READINESS,
        eksup: "K8S004",
        run: disruption::missing,
    },
    Check {
        id: "addons.health",
        title: "EKS add-ons ACTIVE with no health issues",
        severity: Severity::Fail,
        remediation: "Resolve the add-on's health issues (aws eks describe-addon) or update it.",
        needs: &[S::EksAddons],
        profiles: ALL,
        eksup: "EKS004",
        run: addons::health,
    },
    Check {
        id: "addons.compatibility",
        title: "Add-on versions compatible with the current and target minor",
        severity: Severity::Fail,
        remediation: "Update the add-on to a version listed for both minors (aws eks describe-addon-versions).",
        needs: &[S::EksAddons, S::Version],
        profiles: COMPAT,
        eksup: "EKS005",
        run: addons::compatibility,
    },
    Check {
        id: "apis.removed",
        title: "No object applied with an API removed by the target",
        severity: Severity::Fail,
        remediation: "Re-apply the object with the replacement API (kubectl convert, or update the manifest).",
        needs: &[
            S::Deployments,
            S::StatefulSets,
            S::DaemonSets,
            S::Pdbs,
            S::Hpas,
        ],
        profiles: PRE,
        eksup: "",
        run: apis::removed,
    },
    Check {
        id: "apis.deprecated-requests",
        title: "No client requests an API removed by the target",
        severity: Severity::Fail,
        remediation: "Upgrade the client (its user agent in the EKS insight) to the replacement API.",
        needs: &[S::Metrics, S::Version],
        profiles: PRE,
        eksup: "",
        run: apis::deprecated_requests,
    },
    Check {
        id: "hpa.unable",
        title: "HPAs able to scale and read metrics",
        severity: Severity::Warn,
        remediation: "Check the metrics pipeline (metrics-server, adapter) and the HPA's target.",
        needs: &[S::Hpas],
        profiles: ALL,
        eksup: "",
        run: autoscaling::unable,
    },
    Check {
        id: "hpa.at-max",
        title: "No HPA pinned at maxReplicas",
        severity: Severity::Warn,
        remediation: "Raise maxReplicas or add capacity: the workload wants more replicas than allowed.",
        needs: &[S::Hpas],
        profiles: ALL,
        eksup: "",
        run: autoscaling::at_max,
    },
    Check {
        id: "access.exec",
        title: "pods/exec and pods/attach only for the allow-list",
        severity: Severity::Fail,
        remediation: "Remove the exec/attach grant: operations run as recorded steps, not shells.",
        needs: &[S::Rbac],
        profiles: ALL,
        eksup: "",
        run: access::exec,
    },
    Check {
        id: "gpu.dcgm-exporter",
        title: "Every GPU node has a Ready dcgm-exporter pod",
        severity: Severity::Warn,
        remediation: "Check the dcgm-exporter DaemonSet's nodeSelector and tolerations on this node.",
        needs: &[S::Nodes, S::Pods],
        profiles: ALL,
        eksup: "",
        run: gpu::dcgm_exporter,
    },
    Check {
        id: "helm.stuck",
        title: "No Helm release pending or failed",
        severity: Severity::Fail,
        remediation: "Roll back (helm rollback) or finish the release; a pending release blocks the next upgrade.",
        needs: &[S::HelmReleases],
        profiles: ALL,
        eksup: "",
        run: helm::stuck,
    },
    Check {
        id: "helm.removed-apis",
        title: "No Helm release manifest uses an API removed by the target",
        severity: Severity::Fail,
        remediation: "Upgrade the chart to a version that uses the replacement API (or helm mapkubeapis).",
        needs: &[S::HelmReleases, S::Version],
        profiles: PRE,
        eksup: "",
        run: helm::removed_apis,
    },
    Check {
        id: "helm.outdated",
        title: "Charts at the newest version of their --helm-index",
        severity: Severity::Info,
        remediation: "Plan the chart upgrade (read its changelog first for a major version).",
        needs: &[S::HelmReleases, S::HelmIndex],
        profiles: ON_REQUEST,
        eksup: "",
        run: helm::outdated,
    },
];

/// The check with `id`.
#[must_use]
pub fn find(id: &str) -> Option<&'static Check> {
    CATALOGUE.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_unique_and_family_dot_name() {
        let mut seen = BTreeSet::new();
        for c in CATALOGUE {
            assert!(seen.insert(c.id), "duplicate id {}", c.id);
            let (fam, name) = c.id.split_once('.').unwrap();
            assert!(
                !fam.is_empty() && !name.is_empty() && !name.contains('.'),
                "{}",
                c.id
            );
            assert!(
                !c.remediation.is_empty() && c.remediation.ends_with('.'),
                "{}",
                c.id
            );
        }
    }

    /// The README's catalogue lists exactly these checks, with these severities.
    #[test]
    fn the_readme_catalogue_is_the_registry() {
        let text = include_str!("../README.md");
        let section = text.split("\n## Check catalogue").nth(1).unwrap();
        let rows: Vec<(String, String)> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0].trim_matches('`').to_owned(), cells[1].to_owned())
            })
            .collect();
        let want: Vec<(String, String)> = CATALOGUE
            .iter()
            .map(|c| (c.id.to_owned(), c.severity.as_str().to_owned()))
            .collect();
        assert_eq!(rows, want);
    }
}
