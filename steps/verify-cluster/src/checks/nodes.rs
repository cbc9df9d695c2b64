//! Nodes: readiness, pressure, cordons, kubelet and kube-proxy version skew, node groups.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::{Ctx, MAX_OBJECTS};
use crate::finding::{Findings, ObjectRef};
use crate::version::{Minor, kubelet_max_behind};

/// The label EKS puts on managed node group nodes.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

fn name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or_default()
}

fn node_ref(n: &Node) -> ObjectRef {
    ObjectRef::cluster("Node", name(n))
}

fn condition<'a>(n: &'a Node, t: &str) -> Option<&'a str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.as_str())
}

/// `nodes.ready`.
pub fn ready(cx: &Ctx<'_>, f: &mut Findings) {
    for n in cx.inv.nodes() {
        if !opsteps::nodes::is_ready(n) {
            let st = condition(n, "Ready").unwrap_or("missing");
            f.add(
                format!("node {} is not Ready (Ready={st})", name(n)),
                vec![node_ref(n)],
            );
        }
    }
}

/// `nodes.pressure`.
pub fn pressure(cx: &Ctx<'_>, f: &mut Findings) {
    for n in cx.inv.nodes() {
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            if condition(n, t) == Some("True") {
                f.add(format!("node {} reports {t}", name(n)), vec![node_ref(n)]);
            }
        }
    }
}

/// `nodes.cordoned`.
pub fn cordoned(cx: &Ctx<'_>, f: &mut Findings) {
    for n in cx.inv.nodes() {
        if opsteps::nodes::is_unschedulable(n) {
            f.add(format!("node {} is cordoned", name(n)), vec![node_ref(n)]);
        }
    }
}

fn kubelet(n: &Node) -> Option<Minor> {
    Minor::parse_loose(&n.status.as_ref()?.node_info.as_ref()?.kubelet_version)
}

/// `nodes.kubelet-skew`: a kubelet newer than the API server, or further behind than the skew
/// policy allows, now and (pre-upgrade) once the control plane is at the target.
pub fn kubelet_skew(cx: &Ctx<'_>, f: &mut Findings) {
    let Some(api) = cx.inv.server_minor() else {
        return;
    };
    // Group by kubelet minor so a fleet of old nodes is one finding.
    let mut by: BTreeMap<Minor, Vec<ObjectRef>> = BTreeMap::new();
    for n in cx.inv.nodes() {
        if let Some(k) = kubelet(n) {
            by.entry(k).or_default().push(node_ref(n));
        }
    }
    for (k, nodes) in by {
        let count = nodes.len();
        let objects: Vec<ObjectRef> = nodes.into_iter().take(MAX_OBJECTS).collect();
        let max = kubelet_max_behind(k);
        if k.behind(api) < 0 {
            f.add(
                format!("{count} node(s) run kubelet {k}, newer than the control plane at {api}"),
                objects,
            );
        } else if k.behind(api) > max {
            f.add(format!("{count} node(s) run kubelet {k}, more than {max} minors behind the control plane at {api}"), objects);
        } else if let Some(t) = cx.target
            && k.behind(t) > max
        {
            f.add(format!("{count} node(s) run kubelet {k}, which will be more than {max} minors behind the control plane after the upgrade to {t}"), objects);
        }
    }
}

/// `nodes.kube-proxy-skew`: the kube-proxy image tag against the control plane, now and at the
/// target (kube-proxy follows the kubelet's skew policy).
pub fn kube_proxy_skew(cx: &Ctx<'_>, f: &mut Findings) {
    let Some(api) = cx.inv.server_minor() else {
        return;
    };
    for ds in cx.inv.daemonsets() {
        if ds.metadata.name.as_deref() != Some("kube-proxy") {
            continue;
        }
        let containers = ds
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let Some(image) = containers
            .iter()
            .find(|c| c.name == "kube-proxy")
            .or(containers.first())
            .and_then(|c| c.image.as_deref())
        else {
            continue;
        };
        // EKS tags are `v1.33.0-eksbuild.1`; anything else is not a version to judge.
        let Some(tag) = image
            .rsplit_once(':')
            .map(|(_, t)| t)
            .filter(|t| t.starts_with("v1."))
        else {
            continue;
        };
        let Some(v) = Minor::parse_loose(tag) else {
            continue;
        };
        let max = kubelet_max_behind(v);
        let obj = vec![super::obj("DaemonSet", &ds.metadata)];
        if v.behind(api) < 0 {
            f.add(
                format!("kube-proxy {tag} is newer than the control plane at {api}"),
                obj,
            );
        } else if v.behind(api) > max {
            f.add(
                format!(
                    "kube-proxy {tag} is more than {max} minors behind the control plane at {api}"
                ),
                obj,
            );
        } else if let Some(t) = cx.target
            && v.behind(t) > max
        {
            f.add(format!("kube-proxy {tag} will be more than {max} minors behind the control plane after the upgrade to {t}"), obj);
        }
    }
}

/// Ready and schedulable nodes per node group label.
fn ready_by_group(nodes: &[Node]) -> BTreeMap<&str, (usize, usize)> {
    let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for n in nodes {
        if let Some(g) = n
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEGROUP_LABEL))
        {
            let e = m.entry(g.as_str()).or_default();
            e.0 += 1;
            if opsteps::nodes::is_ready(n) && !opsteps::nodes::is_unschedulable(n) {
                e.1 += 1;
            }
        }
    }
    m
}

/// `nodes.nodegroups`: EKS status and health, and desired size against Ready nodes.
pub fn nodegroups(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(groups) = &cx.inv.eks.nodegroups else {
        return;
    };
    let counts = ready_by_group(cx.inv.nodes());
    for g in groups {
        let obj = || vec![ObjectRef::cluster("Nodegroup", &g.name)];
        if g.status != "ACTIVE" {
            f.add(
                format!("node group {} is {}, not ACTIVE", g.name, g.status),
                obj(),
            );
        }
        for i in &g.issues {
            f.add(
                format!(
                    "node group {} health issue {}: {}",
                    g.name, i.code, i.message
                ),
                obj(),
            );
        }
        let ready = counts.get(g.name.as_str()).map_or(0, |c| c.1);
        if let Some(d) = g.desired
            && (ready as i64) < i64::from(d)
        {
            f.add(
                format!(
                    "node group {} wants {d} nodes but {ready} are Ready and schedulable",
                    g.name
                ),
                obj(),
            );
        }
    }
}

/// `nodes.required-nodegroup`.
pub fn required_nodegroup(cx: &Ctx<'_>, f: &mut Findings) {
    let counts = ready_by_group(cx.inv.nodes());
    for g in &cx.cfg.require_nodegroups {
        let (total, ready) = counts.get(g.as_str()).copied().unwrap_or_default();
        if ready < cx.cfg.min_ready as usize {
            f.add(
                format!("node group {g} has {ready} Ready, schedulable node(s) of {total}; at least {} required", cx.cfg.min_ready),
                vec![ObjectRef::cluster("Nodegroup", g)],
            );
        }
    }
}
