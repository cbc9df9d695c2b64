//! Access: bindings that let a subject outside the allow-list exec into or attach to pods.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use super::{Ctx, obj};
use crate::finding::{Findings, ObjectRef};

/// Whether a rule grants `pods/exec` or `pods/attach` (POST = create; websocket clients GET).
fn grants_exec(r: &PolicyRule) -> bool {
    let group = r
        .api_groups
        .iter()
        .flatten()
        .any(|g| g.is_empty() || g == "*");
    let res = r.resources.iter().flatten().any(|x| {
        matches!(
            x.as_str(),
            "pods/exec" | "pods/attach" | "pods/*" | "*" | "*/*"
        )
    });
    let verb = r
        .verbs
        .iter()
        .any(|v| matches!(v.as_str(), "create" | "get" | "*"));
    group && res && verb
}

/// `Kind:name` of a subject (`ServiceAccount:ns/name`).
fn subject_id(s: &Subject, binding_ns: Option<&str>) -> String {
    if s.kind == "ServiceAccount" {
        format!(
            "ServiceAccount:{}/{}",
            s.namespace.as_deref().or(binding_ns).unwrap_or_default(),
            s.name
        )
    } else {
        format!("{}:{}", s.kind, s.name)
    }
}

fn allowed(id: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => id == a,
    })
}

fn rules<'a>(cx: &'a Ctx<'_>, r: &RoleRef, ns: Option<&str>) -> Option<&'a [PolicyRule]> {
    let rbac = cx.inv.rbac.as_ref().ok()?;
    if r.kind == "ClusterRole" {
        rbac.cluster_roles
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(r.name.as_str()))?
            .rules
            .as_deref()
    } else {
        rbac.roles
            .iter()
            .find(|c| {
                c.metadata.name.as_deref() == Some(r.name.as_str())
                    && c.metadata.namespace.as_deref() == ns
            })?
            .rules
            .as_deref()
    }
}

/// `access.exec`.
pub fn exec(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(rbac) = &cx.inv.rbac else { return };
    let mut check = |kind: &str,
                     meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                     role: &RoleRef,
                     subjects: Option<&Vec<Subject>>| {
        let ns = meta.namespace.as_deref();
        if !rules(cx, role, ns).is_some_and(|rs| rs.iter().any(grants_exec)) {
            return;
        }
        let outside: Vec<String> = subjects
            .into_iter()
            .flatten()
            .map(|s| subject_id(s, ns))
            .filter(|id| !allowed(id, &cx.cfg.exec_allow))
            .collect();
        if !outside.is_empty() {
            let scope = ns.map_or_else(
                || "every namespace".to_owned(),
                |n| format!("namespace {n}"),
            );
            let mut objects = vec![obj(kind, meta), ObjectRef::cluster(&role.kind, &role.name)];
            objects.extend(outside.iter().map(|s| {
                let (k, n) = s.split_once(':').unwrap_or(("Subject", s));
                ObjectRef::cluster(k, n)
            }));
            f.add(
                format!(
                    "{kind} {} grants pods/exec or pods/attach in {scope} (through {} {}) to {}",
                    meta.name.as_deref().unwrap_or_default(),
                    role.kind,
                    role.name,
                    outside.join(", ")
                ),
                objects,
            );
        }
    };
    for b in &rbac.cluster_role_bindings {
        check(
            "ClusterRoleBinding",
            &b.metadata,
            &b.role_ref,
            b.subjects.as_ref(),
        );
    }
    for b in &rbac.role_bindings {
        check("RoleBinding", &b.metadata, &b.role_ref, b.subjects.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_exact_or_a_prefix() {
        let allow = vec![
            "Group:system:masters".to_owned(),
            "ServiceAccount:ops/*".to_owned(),
        ];
        assert!(allowed("Group:system:masters", &allow));
        assert!(allowed("ServiceAccount:ops/runner", &allow));
        assert!(!allowed("Group:system:masters-x", &allow));
        assert!(!allowed("ServiceAccount:shop/runner", &allow));
        assert!(!allowed("User:alice", &allow));
    }

    #[test]
    fn exec_is_create_or_get_on_the_subresource_or_a_wildcard() {
        let rule = |g: &str, r: &str, v: &str| PolicyRule {
            api_groups: Some(vec![g.into()]),
            resources: Some(vec![r.into()]),
            verbs: vec![v.into()],
            ..PolicyRule::default()
        };
        assert!(grants_exec(&rule("", "pods/exec", "create")));
        assert!(grants_exec(&rule("", "pods/attach", "get")));
        assert!(grants_exec(&rule("*", "*", "*")));
        assert!(!grants_exec(&rule("", "pods", "create")));
        assert!(!grants_exec(&rule("", "pods/exec", "list")));
        assert!(!grants_exec(&rule("apps", "pods/exec", "create")));
    }
}
