//! The RBAC objects of `workflows/rbac/*.yaml`, loaded into the sandbox as scenario `objects`,
//! and the rules the minimal-role tests take out one at a time.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Every object of `workflows/rbac/*.yaml` (ServiceAccounts, ClusterRoles, Roles and their
/// bindings), in file order.
pub fn load(rbac_dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(rbac_dir)
        .with_context(|| format!("reading {}", rbac_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", file.display()))?;
        objects.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(objects)
}

/// One permission a step's role grants: the object (`ClusterRole/opsteps-drain-node`,
/// `Role/kube-system/opsteps-drain-node-leases`), the rule's index in it, and one resource (or
/// non-resource URL) with one verb of that rule. Taking out a permission rather than a whole
/// rule catches a verb the step never uses in a rule it otherwise needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// `Kind/[namespace/]name`.
    pub object: String,
    /// Index in `rules`.
    pub index: usize,
    /// The resource or non-resource URL, as written in the rule.
    pub resource: String,
    /// The verb.
    pub verb: String,
    /// For messages: `pods/eviction create`, `deployments.apps get`.
    pub summary: String,
}

fn object_id(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or_default();
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The key holding what a rule is about: `nonResourceURLs` or `resources`.
fn what_key(rule: &Value) -> &'static str {
    if rule.get("nonResourceURLs").is_some() {
        "nonResourceURLs"
    } else {
        "resources"
    }
}

fn summary(rule: &Value, resource: &str, verb: &str) -> String {
    let groups = strings(rule, "apiGroups").join(",");
    if what_key(rule) == "nonResourceURLs" || groups.is_empty() {
        format!("{resource} {verb}")
    } else {
        format!("{resource}.{groups} {verb}")
    }
}

/// The permissions a step's pods use against the target cluster: every (resource, verb) of the
/// step's ClusterRole and of its Roles outside the workflow namespace. The executor Role
/// (`workflowtaskresults` in `argo`) is Argo's own and never reaches the target cluster, so it
/// is not listed.
#[must_use]
pub fn step_rules(objects: &[Value], step: &str) -> Vec<RuleRef> {
    let prefix = format!("opsteps-{step}");
    let mut out = Vec::new();
    for o in objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")))
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with("-executor"))
        })
    {
        let id = object_id(o);
        for (index, rule) in o["rules"].as_array().into_iter().flatten().enumerate() {
            for resource in strings(rule, what_key(rule)) {
                for verb in strings(rule, "verbs") {
                    out.push(RuleRef {
                        object: id.clone(),
                        index,
                        summary: summary(rule, &resource, &verb),
                        resource: resource.clone(),
                        verb,
                    });
                }
            }
        }
    }
    out
}

/// `objects` with one permission taken out: its rule is split into the other resources with
/// every verb, and this resource with the other verbs (empty parts dropped).
pub fn without(mut objects: Vec<Value>, rule: &RuleRef) -> Result<Vec<Value>> {
    let Some(o) = objects.iter_mut().find(|o| object_id(o) == rule.object) else {
        bail!("no object {} in workflows/rbac", rule.object);
    };
    let Some(rules) = o["rules"].as_array_mut() else {
        bail!("{} has no rules", rule.object);
    };
    if rule.index >= rules.len() {
        bail!("{} has no rule {}", rule.object, rule.index);
    }
    let old = rules.remove(rule.index);
    let key = what_key(&old);
    let resources = strings(&old, key);
    let verbs = strings(&old, "verbs");
    if !resources.contains(&rule.resource) || !verbs.contains(&rule.verb) {
        bail!(
            "{} rule {} does not grant {}",
            rule.object,
            rule.index,
            rule.summary
        );
    }
    let part = |res: Vec<String>, verbs: Vec<String>| {
        let mut r = old.clone();
        r[key] = Value::from(res);
        r["verbs"] = Value::from(verbs);
        r
    };
    let others: Vec<String> = resources
        .iter()
        .filter(|r| **r != rule.resource)
        .cloned()
        .collect();
    let other_verbs: Vec<String> = verbs.iter().filter(|v| **v != rule.verb).cloned().collect();
    let mut at = rule.index;
    for (res, verbs) in [(others, verbs), (vec![rule.resource.clone()], other_verbs)] {
        if !res.is_empty() && !verbs.is_empty() {
            rules.insert(at, part(res, verbs));
            at += 1;
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_node_permissions_include_eviction_and_leases() {
        let objects = load(&crate::workspace_root().join("workflows/rbac")).unwrap();
        let rules = step_rules(&objects, "drain-node");
        let names: Vec<_> = rules.iter().map(|r| r.summary.as_str()).collect();
        assert!(names.contains(&"pods/eviction create"), "{names:?}");
        assert!(names.contains(&"pods list"), "{names:?}");
        assert!(
            rules
                .iter()
                .any(|r| r.object == "Role/kube-system/opsteps-drain-node-leases"),
            "{rules:?}"
        );
        assert!(rules.iter().all(|r| !r.object.contains("executor")));
        // Taking out one permission leaves every other one granted.
        let all: Vec<String> = rules
            .iter()
            .map(|r| format!("{} {}", r.object, r.summary))
            .collect();
        for rule in &rules {
            let fewer = without(objects.clone(), rule).unwrap();
            let left: Vec<String> = step_rules(&fewer, "drain-node")
                .iter()
                .map(|r| format!("{} {}", r.object, r.summary))
                .collect();
            let expected: Vec<&String> = all
                .iter()
                .filter(|a| **a != format!("{} {}", rule.object, rule.summary))
                .collect();
            let mut left_sorted: Vec<&String> = left.iter().collect();
            left_sorted.sort();
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            assert_eq!(left_sorted, expected_sorted, "without {}", rule.summary);
        }
    }
}
