//! Cluster: EKS status and health, versions, updates, upgrade insights, subnet addresses.

use std::fmt::Write as _;

use super::Ctx;
use crate::finding::{Findings, ObjectRef, Severity};

/// `cluster.eks-status`.
pub fn eks_status(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(c) = &cx.inv.eks.cluster else { return };
    let me = || vec![ObjectRef::cluster("EksCluster", &c.name)];
    if c.status != "ACTIVE" {
        f.add(
            format!("EKS cluster {} is {}, not ACTIVE", c.name, c.status),
            me(),
        );
    }
    for i in &c.issues {
        f.add(
            format!(
                "EKS cluster {} health issue {}: {}",
                c.name, i.code, i.message
            ),
            me(),
        );
    }
}

/// `cluster.version`.
pub fn version(cx: &Ctx<'_>, f: &mut Findings) {
    let (Ok(c), Some(api)) = (&cx.inv.eks.cluster, cx.inv.server_minor()) else {
        return;
    };
    match c.version {
        Some(v) if v == api => {}
        Some(v) => f.add(
            format!(
                "the API server reports {api} but EKS reports {v} for cluster {}",
                c.name
            ),
            vec![ObjectRef::cluster("EksCluster", &c.name)],
        ),
        None => f.add(
            format!("EKS reports no version for cluster {}", c.name),
            vec![ObjectRef::cluster("EksCluster", &c.name)],
        ),
    }
}

/// `cluster.upgrade-target`.
pub fn upgrade_target(cx: &Ctx<'_>, f: &mut Findings) {
    let (Some(api), Some(t)) = (cx.inv.server_minor(), cx.target) else {
        return;
    };
    if t != api.next() {
        f.add(
            format!("target {t} is not exactly one minor ahead of the control plane at {api}: EKS upgrades to {} only", api.next()),
            vec![ObjectRef::cluster("Cluster", "control-plane")],
        );
    }
}

/// `cluster.expected-version`.
pub fn expected_version(cx: &Ctx<'_>, f: &mut Findings) {
    let (Some(api), Some(e)) = (cx.inv.server_minor(), cx.cfg.expect) else {
        return;
    };
    if api != e {
        f.add(
            format!("the control plane is at {api}, expected {e}"),
            vec![ObjectRef::cluster("Cluster", "control-plane")],
        );
    }
}

/// `cluster.updates`: an update in progress fails; the newest update having failed warns.
pub fn updates(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(c) = &cx.inv.eks.cluster else { return };
    for u in &c.updates {
        let obj = vec![ObjectRef::cluster("EksUpdate", &u.id)];
        if u.status == "InProgress" {
            f.add(
                format!("cluster update {} ({}) is in progress", u.id, u.kind),
                obj,
            );
        }
    }
    if let Some(u) = c.updates.first()
        && matches!(u.status.as_str(), "Failed" | "Cancelled")
    {
        let errs: Vec<String> = u
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        f.add_with(
            Severity::Warn,
            format!(
                "the last cluster update {} ({}) {}: {}",
                u.id,
                u.kind,
                u.status.to_lowercase(),
                if errs.is_empty() {
                    "no errors recorded".into()
                } else {
                    errs.join("; ")
                }
            ),
            vec![ObjectRef::cluster("EksUpdate", &u.id)],
            None,
        );
    }
}

/// `cluster.insights`: ERROR fails, WARNING and UNKNOWN warn.
pub fn insights(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(list) = &cx.inv.eks.insights else {
        return;
    };
    for i in list {
        let severity = match i.status.as_str() {
            "ERROR" => Severity::Fail,
            "WARNING" | "UNKNOWN" => Severity::Warn,
            _ => continue,
        };
        if let (Some(t), Some(v)) = (cx.target, i.kubernetes_version)
            && v != t
        {
            continue;
        }
        let mut msg = format!("insight {:?} is {}: {}", i.name, i.status, i.reason);
        for (usage, agents) in &i.clients {
            let who = if agents.is_empty() {
                "unknown clients".to_owned()
            } else {
                agents.join(", ")
            };
            let _ = write!(msg, "; {usage} called by {who}");
        }
        let mut objects = vec![ObjectRef::cluster("EksInsight", &i.id)];
        objects.extend(
            i.resources
                .iter()
                .take(super::MAX_OBJECTS)
                .map(|r| ObjectRef::cluster("Resource", r)),
        );
        f.add_with(severity, msg, objects, i.recommendation.clone());
    }
}

/// `cluster.subnet-ips`.
pub fn subnet_ips(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(subnets) = &cx.inv.eks.subnets else {
        return;
    };
    for s in subnets {
        if s.available < cx.cfg.min_free_ips {
            f.add(
                format!(
                    "subnet {} ({}) has {} free IP addresses, fewer than {}",
                    s.id, s.zone, s.available, cx.cfg.min_free_ips
                ),
                vec![ObjectRef::cluster("Subnet", &s.id)],
            );
        }
    }
}
