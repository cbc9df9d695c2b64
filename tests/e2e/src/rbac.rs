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

/// One rule of a step's role: the object (`ClusterRole/opsteps-drain-node`,
/// `Role/kube-system/opsteps-drain-node-leases`) and the rule's index in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// `Kind/[namespace/]name`.
    pub object: String,
    /// Index in `rules`.
    pub index: usize,
    /// The rule, for messages: `pods/eviction create`.
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

fn summary(rule: &Value) -> String {
    let list = |k: &str| {
        rule[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let groups = list("apiGroups");
    let what = if rule.get("nonResourceURLs").is_some() {
        list("nonResourceURLs")
    } else if groups.is_empty() {
        list("resources")
    } else {
        format!("{}.{groups}", list("resources"))
    };
    format!("{what} {}", list("verbs"))
}

/// The rules a step's pods use against the target cluster: every rule of the step's ClusterRole
/// and of its Roles outside the workflow namespace. The executor Role (`workflowtaskresults` in
/// `argo`) is Argo's own and never reaches the target cluster, so it is not listed.
#[must_use]
pub fn step_rules(objects: &[Value], step: &str) -> Vec<RuleRef> {
    let prefix = format!("opsteps-{step}");
    objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")))
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter(|o| {
            !o["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("-executor")
        })
        .flat_map(|o| {
            let id = object_id(o);
            o["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(move |(index, rule)| RuleRef {
                    object: id.clone(),
                    index,
                    summary: summary(&rule),
                })
        })
        .collect()
}

/// `objects` with one rule removed.
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
    rules.remove(rule.index);
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_node_rules_include_eviction_and_leases() {
        let objects = load(&crate::workspace_root().join("workflows/rbac")).unwrap();
        let rules = step_rules(&objects, "drain-node");
        let names: Vec<_> = rules.iter().map(|r| r.summary.as_str()).collect();
        assert!(names.contains(&"pods/eviction create"), "{names:?}");
        assert!(
            rules
                .iter()
                .any(|r| r.object == "Role/kube-system/opsteps-drain-node-leases"),
            "{rules:?}"
        );
        assert!(rules.iter().all(|r| !r.object.contains("executor")));
        let fewer = without(objects.clone(), &rules[0]).unwrap();
        let count = |objs: &[Value]| {
            objs.iter()
                .filter_map(|o| o["rules"].as_array())
                .map(Vec::len)
                .sum::<usize>()
        };
        assert_eq!(count(&fewer) + 1, count(&objects));
    }
}
