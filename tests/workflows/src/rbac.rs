//! ClusterRole and Role rules against the RBAC table in each step's README: every rule granted
//! is one the step uses, and everything the step uses is granted. The Argo executor's
//! `workflowtaskresults` create/patch is the one grant beyond the step's own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::{Doc, Finding, Rule};

/// (API group, resource, verb); the core group is "".
pub type Permission = (String, String, String);

/// What the Argo executor (wait container) needs in the workflow's namespace (Argo 3.4+).
#[must_use]
pub fn executor() -> BTreeSet<Permission> {
    ["create", "patch"]
        .into_iter()
        .map(|v| ("argoproj.io".into(), "workflowtaskresults".into(), v.into()))
        .collect()
}

/// Non-resource URLs every authenticated user may get (system:discovery,
/// system:public-info-viewer), so no role needs to grant them.
const PUBLIC_URLS: [&str; 6] = [
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
    "/api",
];

/// The step READMEs.
pub struct Readmes {
    dirs: Vec<PathBuf>,
}

impl Readmes {
    /// Looks for `<dir>/<step>/README.md` in `dirs`, in order.
    #[must_use]
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The permissions in `step`'s README RBAC table.
    /// Also the rows needed only with a flag ([`flag_only`]).
    #[allow(clippy::type_complexity)]
    pub fn table(
        &self,
        step: &str,
    ) -> Result<(PathBuf, BTreeSet<Permission>, BTreeMap<Permission, String>), String> {
        let Some(path) = self
            .dirs
            .iter()
            .map(|d| d.join(step).join("README.md"))
            .find(|p| p.is_file())
        else {
            return Err(format!("no README.md for step {step:?} in {:?}", self.dirs));
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let perms = parse_table(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((path, perms, flag_only(&text)))
    }
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

/// The API group a table cell names; the core group is "".
fn api_group(cell: &str) -> &str {
    match cell.trim_matches('`') {
        "core" | "(core)" | "\"\"" => "",
        other => other,
    }
}

fn list(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|s| s.trim().trim_matches('`').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses the first table under a `## RBAC` heading; columns are found by header (resource,
/// API group, verbs), so the READMEs may order them differently.
pub fn parse_table(md: &str) -> Result<BTreeSet<Permission>, String> {
    let section: String = md
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("## RBAC"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n");
    let mut lines = md
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("## RBAC"))
        .skip(1)
        .skip_while(|l| !l.trim_start().starts_with('|'));
    let header = cells(lines.next().ok_or("no table under \"## RBAC\"")?);
    let col = |what: &str| {
        header
            .iter()
            .position(|h| h.to_lowercase().contains(what))
            .ok_or(format!(
                "the RBAC table has no {what:?} column (header: {header:?})"
            ))
    };
    let (r, g, v) = (col("resource")?, col("group")?, col("verb")?);
    let mut out = BTreeSet::new();
    for line in lines
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let c = cells(line);
        let group = api_group(c.get(g).map_or("", String::as_str));
        for res in list(c.get(r).map_or("", String::as_str)) {
            for verb in list(c.get(v).map_or("", String::as_str)) {
                out.insert((group.to_owned(), res.clone(), verb));
            }
        }
    }
    if out.is_empty() {
        return Err("the RBAC table has no rows".into());
    }
    // "Non-resource URLs: `get` on `/version` ... and `/metrics`" under the table.
    if let Some(line) = section.lines().find(|l| l.contains("Non-resource URLs")) {
        let para: String = section
            .lines()
            .skip_while(|l| *l != line)
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        for url in para
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|u| u.starts_with('/'))
        {
            if !PUBLIC_URLS.contains(&url) {
                out.insert((String::new(), url.to_owned(), "get".to_owned()));
            }
        }
    }
    Ok(out)
}

/// The rows whose "Why" cell reads "`--flag` only": permissions the step needs only when a
/// template passes that flag. Such a permission must be granted when a WorkflowTemplate of the
/// step passes the flag, and must not be when none does (least privilege).
pub fn flag_only(md: &str) -> BTreeMap<Permission, String> {
    let mut lines = md
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("## RBAC"))
        .skip(1)
        .skip_while(|l| !l.trim_start().starts_with('|'));
    let mut out = BTreeMap::new();
    let Some(header) = lines.next().map(cells) else {
        return out;
    };
    let col = |what: &str| header.iter().position(|h| h.to_lowercase().contains(what));
    let (Some(res_col), Some(group_col), Some(verb_col), Some(why_col)) =
        (col("resource"), col("group"), col("verb"), col("why"))
    else {
        return out;
    };
    for line in lines
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let row = cells(line);
        let why = row.get(why_col).map_or("", String::as_str);
        let Some(flag) = why
            .strip_prefix('`')
            .and_then(|x| x.split_once('`'))
            .filter(|(f, rest)| f.starts_with("--") && rest.trim() == "only")
            .map(|(f, _)| f.to_owned())
        else {
            continue;
        };
        let group = api_group(row.get(group_col).map_or("", String::as_str));
        for res in list(row.get(res_col).map_or("", String::as_str)) {
            for verb in list(row.get(verb_col).map_or("", String::as_str)) {
                out.insert((group.to_owned(), res.clone(), verb), flag.clone());
            }
        }
    }
    out
}

/// Whether a WorkflowTemplate of `step` (by its `app.kubernetes.io/name` label) passes `flag`
/// to a container.
fn templates_pass(docs: &[&Doc], step: &str, flag: &str) -> bool {
    docs.iter()
        .filter(|d| d.kind() == "WorkflowTemplate" && step_of(d) == Some(step))
        .flat_map(|d| {
            d.value["spec"]["templates"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .flat_map(|t| t["container"]["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

/// The step a role or binding belongs to: its `app.kubernetes.io/name` label.
fn step_of(doc: &Doc) -> Option<&str> {
    doc.value["metadata"]["labels"]["app.kubernetes.io/name"].as_str()
}

fn granted(doc: &Doc) -> Result<BTreeSet<Permission>, String> {
    let mut out = BTreeSet::new();
    for rule in doc.value["rules"].as_array().into_iter().flatten() {
        let s = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        for u in s("nonResourceURLs") {
            for v in s("verbs") {
                out.insert((String::new(), u.clone(), v));
            }
        }
        for g in s("apiGroups") {
            for r in s("resources") {
                for v in s("verbs") {
                    if g == "*" || r == "*" || v == "*" {
                        return Err(format!(
                            "uses a wildcard ({g}/{r}/{v}); grant exactly what the step uses"
                        ));
                    }
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    Ok(out)
}

fn show(p: &Permission) -> String {
    let g = if p.0.is_empty() { "core" } else { &p.0 };
    format!("{} {} ({g})", p.2, p.1)
}

/// Checks every ClusterRole and Role in `docs` against its step's README; `all` (the targets
/// and the rest of `workflows/`) tells which flags the step's WorkflowTemplates pass.
#[must_use]
pub fn check(docs: &[Doc], all: &[&Doc], readmes: &Readmes) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut steps: Vec<(&str, Vec<&Doc>)> = Vec::new();
    for d in docs
        .iter()
        .filter(|d| matches!(d.kind(), "ClusterRole" | "Role"))
    {
        let Some(step) = step_of(d) else {
            out.push(Finding {
                file: d.file.clone(),
                object: d.object(),
                rule: Rule::Rbac,
                message: "no app.kubernetes.io/name label naming the step it is for".into(),
            });
            continue;
        };
        match steps.iter_mut().find(|(s, _)| *s == step) {
            Some((_, v)) => v.push(d),
            None => steps.push((step, vec![d])),
        }
    }
    for (step, roles) in steps {
        let f = |d: &Doc, message: String| Finding {
            file: d.file.clone(),
            object: d.object(),
            rule: Rule::Rbac,
            message,
        };
        let (readme, mut table, flag_only) = match readmes.table(step) {
            Ok(t) => t,
            Err(e) => {
                out.push(f(roles[0], e));
                continue;
            }
        };
        // A flag-only permission that no template's flag calls for is not needed.
        let mut unneeded = BTreeMap::new();
        for (p, flag) in &flag_only {
            if !templates_pass(all, step, flag) {
                table.remove(p);
                unneeded.insert(p.clone(), flag.clone());
            }
        }
        let mut union = BTreeSet::new();
        for d in &roles {
            match granted(d) {
                Ok(g) => {
                    for p in &g {
                        if let Some(flag) = unneeded.get(p) {
                            out.push(f(
                                d,
                                format!(
                                    "grants {}, which {step} needs only with {flag} ({} RBAC table), and no WorkflowTemplate of {step} passes {flag}",
                                    show(p),
                                    readme.display()
                                ),
                            ));
                        } else if !table.contains(p) && !executor().contains(p) {
                            out.push(f(
                                d,
                                format!(
                                    "grants {}, which {step} does not use ({} RBAC table)",
                                    show(p),
                                    readme.display()
                                ),
                            ));
                        }
                    }
                    union.extend(g);
                }
                Err(e) => out.push(f(d, e)),
            }
        }
        for p in table.iter().chain(executor().iter()) {
            if !union.contains(p) {
                out.push(f(
                    roles[0],
                    format!(
                        "{step} needs {} ({} RBAC table, or the Argo executor), but no role grants it",
                        show(p),
                        readme.display()
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_column_orders() {
        let a = "## RBAC\n\ntext\n\n| Resource | API group | Verbs | Why |\n|---|---|---|---|\n| nodes | core | get, list | x |\n| leases | coordination.k8s.io | get | y |\n";
        let b = "## RBAC\n\n| API group | Resources | Verbs | Why |\n|---|---|---|---|\n| (core) | pods/eviction | create | x |\n| apps | deployments, statefulsets | get, patch | y |\n";
        let a = parse_table(a).unwrap();
        assert!(a.contains(&(String::new(), "nodes".into(), "list".into())));
        assert!(a.contains(&("coordination.k8s.io".into(), "leases".into(), "get".into())));
        assert_eq!(a.len(), 3);
        let b = parse_table(b).unwrap();
        assert!(b.contains(&(String::new(), "pods/eviction".into(), "create".into())));
        assert!(b.contains(&("apps".into(), "statefulsets".into(), "patch".into())));
        assert_eq!(b.len(), 5);
    }
}
