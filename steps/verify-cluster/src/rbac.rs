//! The permissions a run needs, as the README's RBAC table lists them. verify-cluster only
//! reads: `list` on what the selected checks read. A missing one is not fatal: the checks that
//! need it are skipped with the API server's 403 message.

use opsteps::access::Permission;

use crate::inventory::Source;

/// The Kubernetes permissions for `sources` (`/version` and `/metrics` are non-resource URLs,
/// listed in the README below the table).
#[must_use]
pub fn needed(sources: &std::collections::BTreeSet<Source>) -> Vec<Permission> {
    let mut out = Vec::new();
    for s in sources {
        let (group, resources): (&str, &[&str]) = match s {
            Source::Nodes => ("", &["nodes"]),
            Source::Pods => ("", &["pods"]),
            Source::HelmReleases => ("", &["secrets"]),
            Source::Deployments => ("apps", &["deployments"]),
            Source::StatefulSets => ("apps", &["statefulsets"]),
            Source::DaemonSets => ("apps", &["daemonsets"]),
            Source::Pdbs => ("policy", &["poddisruptionbudgets"]),
            Source::Hpas => ("autoscaling", &["horizontalpodautoscalers"]),
            Source::Rbac => (
                "rbac.authorization.k8s.io",
                &[
                    "roles",
                    "clusterroles",
                    "rolebindings",
                    "clusterrolebindings",
                ],
            ),
            _ => continue,
        };
        out.extend(resources.iter().map(|r| Permission::new("list", group, r)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::registry::CATALOGUE;

    /// `verb resource[.group]` for each cell of the README's RBAC table.
    fn readme() -> BTreeSet<String> {
        let text = include_str!("../README.md");
        let section = text.split("\n## RBAC").nth(1).unwrap();
        let mut out = BTreeSet::new();
        for line in section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with('|'))
        {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells[0] == "API group" || cells[0].starts_with("---") {
                continue;
            }
            let group = if cells[0] == "(core)" { "" } else { cells[0] };
            for res in cells[1].split(',').map(str::trim) {
                for verb in cells[2].split(',').map(str::trim) {
                    out.insert(Permission::new(verb, group, res).to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_check_together_needs_exactly_the_readme_table() {
        let all: BTreeSet<Source> = CATALOGUE
            .iter()
            .flat_map(|c| c.needs.iter().copied())
            .collect();
        let got: BTreeSet<String> = needed(&all).iter().map(ToString::to_string).collect();
        assert_eq!(got, readme());
    }

    #[test]
    fn only_list_is_ever_needed() {
        let all: BTreeSet<Source> = CATALOGUE
            .iter()
            .flat_map(|c| c.needs.iter().copied())
            .collect();
        assert!(needed(&all).iter().all(|p| p.verb == "list"));
    }
}
