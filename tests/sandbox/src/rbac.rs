//! RBAC authorization, as the apiserver's RBAC authorizer does it: Roles, ClusterRoles,
//! RoleBindings and ClusterRoleBindings are ordinary objects in the store (so tests can load the
//! project's `workflows/rbac/` manifests), and a request is allowed when any rule bound to the
//! user, one of its groups or its ServiceAccount covers the verb, API group, resource (with
//! subresource) and name. Denials carry the apiserver's 403 message.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::store::{Store, res};

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    /// User name; ServiceAccounts are `system:serviceaccount:<ns>:<name>`.
    pub user: &'a str,
    /// Groups (`system:authenticated` is implied).
    pub groups: &'a [String],
}

/// What is asked.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group, "" for core.
    pub group: &'a str,
    /// Resource plural.
    pub resource: &'a str,
    /// Subresource (`eviction`, `status`, ...), "" for none.
    pub subresource: &'a str,
    /// Namespace, "" for cluster-scoped requests.
    pub namespace: &'a str,
    /// Object name, "" for collections and creates.
    pub name: &'a str,
}

/// Users and groups that bypass RBAC, as `system:masters` does.
fn is_superuser(s: &Subject<'_>) -> bool {
    s.user == "system:admin" || s.groups.iter().any(|g| g == "system:masters")
}

fn subject_matches(subj: &Value, binding_ns: &str, s: &Subject<'_>) -> bool {
    let name = subj["name"].as_str().unwrap_or("");
    match subj["kind"].as_str().unwrap_or("") {
        "User" => name == s.user,
        "Group" => implied_group(s.user, name) || s.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subj["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            s.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// Groups the authenticator adds: `system:authenticated` for everyone, and for ServiceAccounts
/// `system:serviceaccounts` and `system:serviceaccounts:<namespace>`.
fn implied_group(user: &str, group: &str) -> bool {
    if group == "system:authenticated" {
        return true;
    }
    let Some((ns, _)) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    else {
        return false;
    };
    group == "system:serviceaccounts"
        || group
            .strip_prefix("system:serviceaccounts:")
            .is_some_and(|g| g == ns)
}

fn list_has(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|a| a.iter().any(|v| v == "*" || v == want))
}

fn rule_allows(rule: &Value, r: &Request<'_>) -> bool {
    if !list_has(&rule["verbs"], r.verb) || !list_has(&rule["apiGroups"], r.group) {
        return false;
    }
    let full = if r.subresource.is_empty() {
        r.resource.to_owned()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let resource_ok = rule["resources"].as_array().is_some_and(|a| {
        a.iter().filter_map(Value::as_str).any(|x| {
            x == "*"
                || x == full
                || (r.subresource.is_empty() && x == r.resource)
                || x == format!("*/{}", r.subresource).as_str() && !r.subresource.is_empty()
                || x == format!("{}/*", r.resource).as_str() && !r.subresource.is_empty()
        })
    });
    if !resource_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => !r.name.is_empty() && names.iter().any(|n| n == r.name),
        _ => true,
    }
}

fn role_rules(store: &Store, role_ref: &Value, binding_ns: &str) -> Vec<Value> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let role = match role_ref["kind"].as_str().unwrap_or("") {
        "ClusterRole" => store.get(res("rbac.authorization.k8s.io", "clusterroles"), "", name),
        "Role" => store.get(res("rbac.authorization.k8s.io", "roles"), binding_ns, name),
        _ => None,
    };
    role.and_then(|r| r["rules"].as_array().cloned())
        .unwrap_or_default()
}

/// What every authenticated user may do, as the default `system:basic-user` ClusterRole grants:
/// ask about itself (SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview).
fn basic_user_allows(r: &Request<'_>) -> bool {
    r.verb == "create"
        && matches!(
            (r.group, r.resource),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        )
}

/// Allows or denies `r` for `s`. Non-resource requests (discovery, `/version`) are allowed, as
/// the default `system:discovery` and `system:public-info-viewer` roles do.
pub fn authorize(store: &Store, s: &Subject<'_>, r: &Request<'_>) -> Result<(), ApiError> {
    if is_superuser(s) || r.resource.is_empty() || basic_user_allows(r) {
        return Ok(());
    }
    let crbs = store.list(
        res("rbac.authorization.k8s.io", "clusterrolebindings"),
        None,
    );
    for b in crbs {
        if b["subjects"]
            .as_array()
            .is_some_and(|subs| subs.iter().any(|x| subject_matches(x, "", s)))
            && role_rules(store, &b["roleRef"], "")
                .iter()
                .any(|rule| rule_allows(rule, r))
        {
            return Ok(());
        }
    }
    if !r.namespace.is_empty() {
        for b in store.list(
            res("rbac.authorization.k8s.io", "rolebindings"),
            Some(r.namespace),
        ) {
            if b["subjects"]
                .as_array()
                .is_some_and(|subs| subs.iter().any(|x| subject_matches(x, r.namespace, s)))
                && role_rules(store, &b["roleRef"], r.namespace)
                    .iter()
                    .any(|rule| rule_allows(rule, r))
            {
                return Ok(());
            }
        }
    }
    Err(forbidden(s, r))
}

/// Non-resource URLs every user may `get`, as the default `system:discovery` and
/// `system:public-info-viewer` ClusterRoles grant.
const PUBLIC_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
    "/openapi",
    "/openapi/*",
];

fn url_matches(pattern: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == path
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether `s` may send `verb` (lowercase HTTP verb: get, post, ...) to the non-resource URL
/// `path`: the public URLs for `get`, then `nonResourceURLs` rules of ClusterRoles bound by
/// ClusterRoleBindings (Roles cannot grant non-resource URLs).
#[must_use]
pub fn allows_non_resource(store: &Store, s: &Subject<'_>, verb: &str, path: &str) -> bool {
    if is_superuser(s) || (verb == "get" && PUBLIC_URLS.iter().any(|p| url_matches(p, path))) {
        return true;
    }
    store
        .list(
            res("rbac.authorization.k8s.io", "clusterrolebindings"),
            None,
        )
        .filter(|b| {
            b["subjects"]
                .as_array()
                .is_some_and(|subs| subs.iter().any(|x| subject_matches(x, "", s)))
        })
        .flat_map(|b| role_rules(store, &b["roleRef"], ""))
        .any(|rule| {
            list_has(&rule["verbs"], verb)
                && rule["nonResourceURLs"].as_array().is_some_and(|urls| {
                    urls.iter()
                        .filter_map(Value::as_str)
                        .any(|u| url_matches(u, path))
                })
        })
}

/// The apiserver's denial: `pods "web-1" is forbidden: User "alice" cannot create resource
/// "pods/eviction" in API group "" in the namespace "shop"`.
#[must_use]
pub fn forbidden(s: &Subject<'_>, r: &Request<'_>) -> ApiError {
    let full = if r.subresource.is_empty() {
        r.resource.to_owned()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let what = if r.name.is_empty() {
        r.resource.to_owned()
    } else {
        format!("{} \"{}\"", qualified(r), r.name)
    };
    let what = if r.name.is_empty() {
        qualified(r)
    } else {
        what
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", r.namespace)
    };
    let message = format!(
        "{what} is forbidden: User \"{}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
        s.user, r.verb, r.group
    );
    let mut details = json!({ "kind": r.resource });
    if !r.name.is_empty() {
        details["name"] = json!(r.name);
    }
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    ApiError::forbidden(message, Some(details))
}

fn qualified(r: &Request<'_>) -> String {
    if r.group.is_empty() {
        r.resource.to_owned()
    } else {
        format!("{}.{}", r.resource, r.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let mut s = Store::default();
        let now = "2026-11-26T00:00:00Z";
        let rbac = |p| res("rbac.authorization.k8s.io", p);
        s.create(
            rbac("clusterroles"),
            json!({"metadata": {"name": "drainer"}, "rules": [
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}
            ]}),
            now,
        )
        .unwrap();
        s.create(rbac("clusterrolebindings"), json!({"metadata": {"name": "drainer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "drainer"},
            "subjects": [{"kind": "ServiceAccount", "name": "drain-node", "namespace": "ops"}]}), now).unwrap();
        s.create(rbac("roles"), json!({"metadata": {"name": "leases", "namespace": "kube-system"}, "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"], "resourceNames": ["opsteps-drain-a"]}
        ]}), now).unwrap();
        s.create(
            rbac("rolebindings"),
            json!({"metadata": {"name": "leases", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"},
            "subjects": [{"kind": "Group", "name": "drainers"}]}),
            now,
        )
        .unwrap();
        s
    }

    fn req<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
    ) -> Request<'a> {
        Request {
            verb,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn service_account_bound_by_cluster_role() {
        let s = store();
        let groups = vec![];
        let sa = Subject {
            user: "system:serviceaccount:ops:drain-node",
            groups: &groups,
        };
        assert!(
            authorize(
                &s,
                &sa,
                &req("create", "", "pods", "eviction", "shop", "web-1")
            )
            .is_ok()
        );
        assert!(authorize(&s, &sa, &req("patch", "", "nodes", "", "", "a")).is_ok());
        let e = authorize(&s, &sa, &req("delete", "", "pods", "", "shop", "web-1")).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.body["message"],
            "pods \"web-1\" is forbidden: User \"system:serviceaccount:ops:drain-node\" cannot delete resource \"pods\" in API group \"\" in the namespace \"shop\""
        );
        assert_eq!(e.body["reason"], "Forbidden");
        let other = Subject {
            user: "system:serviceaccount:ops:other",
            groups: &groups,
        };
        let e = authorize(
            &s,
            &other,
            &req("create", "", "pods", "eviction", "shop", "web-1"),
        )
        .unwrap_err();
        assert!(
            e.body["message"]
                .as_str()
                .unwrap()
                .contains("cannot create resource \"pods/eviction\"")
        );
        let e = authorize(&s, &other, &req("list", "", "nodes", "", "", "")).unwrap_err();
        assert_eq!(
            e.body["message"],
            "nodes is forbidden: User \"system:serviceaccount:ops:other\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn role_bindings_are_namespaced_and_resource_names_restrict() {
        let s = store();
        let groups = vec!["drainers".to_owned()];
        let u = Subject {
            user: "bob",
            groups: &groups,
        };
        assert!(
            authorize(
                &s,
                &u,
                &req(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-system",
                    "opsteps-drain-a"
                )
            )
            .is_ok()
        );
        assert!(
            authorize(
                &s,
                &u,
                &req(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-system",
                    "opsteps-drain-b"
                )
            )
            .is_err()
        );
        assert!(
            authorize(
                &s,
                &u,
                &req(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "default",
                    "opsteps-drain-a"
                )
            )
            .is_err()
        );
        let e = authorize(
            &s,
            &u,
            &req("create", "coordination.k8s.io", "leases", "", "default", ""),
        )
        .unwrap_err();
        assert!(
            e.body["message"]
                .as_str()
                .unwrap()
                .contains("in API group \"coordination.k8s.io\" in the namespace \"default\"")
        );
    }

    #[test]
    fn masters_and_discovery_are_allowed() {
        let s = store();
        let groups = vec!["system:masters".to_owned()];
        assert!(
            authorize(
                &s,
                &Subject {
                    user: "root",
                    groups: &groups
                },
                &req("delete", "", "nodes", "", "", "a")
            )
            .is_ok()
        );
        let none = vec![];
        assert!(
            authorize(
                &s,
                &Subject {
                    user: "anyone",
                    groups: &none
                },
                &req("get", "", "", "", "", "")
            )
            .is_ok()
        );
    }
}
