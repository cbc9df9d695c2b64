//! The permissions a run needs, as the README's RBAC table lists them, checked with
//! SelfSubjectAccessReview after connecting, so a role that lacks one stops the step with exit 2
//! naming every missing verb before anything is scraped or uploaded.

use opsteps::access::Permission;

/// What this run asks of the API server.
#[must_use]
pub fn needed(via_apiserver: bool) -> Vec<Permission> {
    let mut out = vec![
        Permission::new("list", "", "nodes"),
        Permission::new("list", "", "pods"),
    ];
    for r in ["replicasets", "deployments", "statefulsets"] {
        out.push(Permission::new("get", "apps", r));
    }
    if via_apiserver {
        out.push(Permission::new("get", "", "pods").subresource("proxy"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `verb resource[.group][/sub]` for each cell of the README's RBAC table.
    fn readme() -> BTreeSet<String> {
        let text = include_str!("../README.md");
        let section = text.split("\n## RBAC").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        let mut out = BTreeSet::new();
        for line in section.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells[0] == "API group" || cells[0].starts_with("---") {
                continue;
            }
            let group = if cells[0] == "(core)" { "" } else { cells[0] };
            for res in cells[1].split(',').map(str::trim) {
                for verb in cells[2].split(',').map(str::trim) {
                    let (r, sub) = res.split_once('/').unwrap_or((res, ""));
                    let mut p = Permission::new(verb, group, r);
                    if !sub.is_empty() {
                        p = p.subresource(sub);
                    }
                    out.insert(p.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn the_widest_run_needs_exactly_the_readme_table() {
        let all: BTreeSet<String> = needed(true).iter().map(ToString::to_string).collect();
        assert_eq!(all, readme());
        let direct: BTreeSet<String> = needed(false).iter().map(ToString::to_string).collect();
        assert!(!direct.iter().any(|p| p.contains("proxy")), "{direct:?}");
    }

    #[test]
    fn the_iam_table_names_the_actions_used() {
        let text = include_str!("../README.md");
        let section = text.split("\n## IAM").nth(1).unwrap();
        for action in ["s3:PutObject", "aps:QueryMetrics"] {
            assert!(section.contains(action), "{action}");
        }
    }
}
