//! The permissions a run needs, as the README's RBAC table lists them, checked with
//! SelfSubjectAccessReview before the first request that changes anything, so a role that lacks
//! one stops the step with exit 2 naming every missing verb instead of a 403 half-way.

use opsteps::access::Permission;
use opsteps::cli::DryRun;

use crate::Mode;
use crate::config::Config;

/// What `cfg` will ask of the API server: namespaced permissions in each of `--namespaces`
/// (cluster-wide without it), owners only when something needs them, mutations only when
/// the run sends them (a server dry run does: `dryRun=All` is authorized like the real call).
#[must_use]
pub fn needed(cfg: &Config) -> Vec<Permission> {
    let mut out = vec![
        Permission::new("list", "", "nodes"),
        Permission::new("list", "policy", "poddisruptionbudgets"),
    ];
    if cfg.evictor.priority_threshold_class.is_some() {
        out.push(Permission::new(
            "get",
            "scheduling.k8s.io",
            "priorityclasses",
        ));
    }
    let need_owner =
        cfg.wait_for_replacement || cfg.limits.per_owner.is_some() || cfg.mode == Mode::Restart;
    let mutates = cfg.dry_run != DryRun::Client;
    let mut namespaced = vec![Permission::new("list", "", "pods")];
    if need_owner {
        for r in ["replicasets", "deployments", "statefulsets"] {
            namespaced.push(Permission::new("get", "apps", r));
        }
    }
    if mutates {
        namespaced.push(Permission::new("create", "", "pods").subresource("eviction"));
        if cfg.dry_run == DryRun::None {
            namespaced.push(Permission::new("create", "", "events"));
        }
        if cfg.mode == Mode::Restart {
            for r in ["deployments", "statefulsets"] {
                namespaced.push(Permission::new("patch", "apps", r));
            }
        }
    }
    if cfg.namespaces.is_empty() {
        out.extend(namespaced);
    } else {
        for ns in &cfg.namespaces {
            out.extend(namespaced.iter().map(|p| p.clone().namespace(ns)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Parser;

    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let mut v = vec![crate::STEP, "--max-pod-lifetime", "8h"];
        v.extend_from_slice(args);
        Config::from_args(&crate::Args::try_parse_from(v).unwrap()).unwrap()
    }

    fn set(ps: &[Permission]) -> BTreeSet<String> {
        ps.iter().map(ToString::to_string).collect()
    }

    /// `verb resource[.group][/sub]` for each cell of the README's RBAC table.
    fn readme() -> BTreeSet<String> {
        let text = include_str!("../README.md");
        let section = text.split("\n## RBAC").nth(1).unwrap();
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
        let all = cfg(&["--mode", "restart", "--priority-threshold-class", "high"]);
        assert_eq!(set(&needed(&all)), readme());
    }

    #[test]
    fn narrower_runs_ask_for_less() {
        let client = set(&needed(&cfg(&["--dry-run", "client"])));
        assert!(
            !client
                .iter()
                .any(|p| p.starts_with("create") || p.starts_with("patch")),
            "{client:?}"
        );
        let server = set(&needed(&cfg(&["--dry-run", "server"])));
        assert!(server.contains("create pods/eviction"), "{server:?}");
        assert!(!server.contains("create events"), "no Event in a dry run");
        let ns = needed(&cfg(&["--namespaces", "a,b"]));
        assert!(
            ns.iter()
                .any(|p| p.to_string() == "create pods/eviction (namespace b)")
        );
        assert!(ns.iter().any(|p| p.to_string() == "list nodes"));
        let plain = set(&needed(&cfg(&["--wait-for-replacement=false"])));
        assert!(
            !plain.iter().any(|p| p.contains("replicasets")),
            "{plain:?}"
        );
    }
}
