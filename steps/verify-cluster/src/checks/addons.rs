//! EKS add-ons: health, and version compatibility with the current and target minors.

use super::Ctx;
use crate::finding::{Findings, ObjectRef};

/// `addons.health`.
pub fn health(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(addons) = &cx.inv.eks.addons else {
        return;
    };
    for a in addons {
        let obj = || vec![ObjectRef::cluster("Addon", &a.name)];
        if a.status != "ACTIVE" {
            f.add(
                format!(
                    "add-on {} {} is {}, not ACTIVE",
                    a.name, a.version, a.status
                ),
                obj(),
            );
        }
        for i in &a.issues {
            f.add(
                format!("add-on {} health issue {}: {}", a.name, i.code, i.message),
                obj(),
            );
        }
    }
}

/// `addons.compatibility`.
pub fn compatibility(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(addons) = &cx.inv.eks.addons else {
        return;
    };
    for a in addons {
        for (minor, (ok, default)) in &a.compatible {
            // An add-on versioned with Kubernetes itself (kube-proxy v1.33.x on 1.33) is
            // published per minor and updated right after the control plane; its skew is
            // nodes.kube-proxy-skew's business, so the target only earns a reminder.
            let tracks_minor =
                crate::version::Minor::parse_loose(&a.version) == cx.inv.server_minor();
            if !ok && Some(*minor) == cx.target && tracks_minor {
                f.add_with(
                    crate::finding::Severity::Info,
                    format!("add-on {} {} is published per Kubernetes minor: update it right after the control plane reaches {minor}", a.name, a.version),
                    vec![ObjectRef::cluster("Addon", &a.name)],
                    Some(format!("After the upgrade, update {} to {}.", a.name, default.as_deref().unwrap_or("the default version for the new minor"))),
                );
            } else if !ok {
                let what = if Some(*minor) == cx.target {
                    "the target"
                } else {
                    "the current"
                };
                f.add_with(
                    crate::finding::Severity::Fail,
                    format!("add-on {} {} is not compatible with {what} Kubernetes {minor}", a.name, a.version),
                    vec![ObjectRef::cluster("Addon", &a.name)],
                    Some(match default {
                        Some(d) => format!("Update {} to a version listed for {minor} (default there: {d}).", a.name),
                        None => format!("Update {} to a version listed for {minor} (aws eks describe-addon-versions).", a.name),
                    }),
                );
            }
        }
    }
}
