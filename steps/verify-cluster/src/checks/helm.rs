//! Helm releases: stuck (pending or failed), manifests using removed APIs, and charts behind
//! their repository's newest version.

use super::Ctx;
use crate::finding::{Findings, ObjectRef, Severity};
use crate::version::Semver;

fn release(r: &crate::helm::Release) -> ObjectRef {
    ObjectRef::ns("HelmRelease", &r.namespace, &r.name)
}

/// `helm.stuck`: the latest revision pending-install/upgrade/rollback, or failed.
pub fn stuck(cx: &Ctx<'_>, f: &mut Findings) {
    for r in cx.inv.helm() {
        if r.status.starts_with("pending-") || r.status == "failed" {
            f.add(
                format!(
                    "Helm release {}/{} revision {} ({} {}) is {}",
                    r.namespace, r.name, r.revision, r.chart, r.chart_version, r.status
                ),
                vec![release(r)],
            );
        }
    }
}

/// `helm.removed-apis`: the latest revision's manifest names an API removed by the target.
pub fn removed_apis(cx: &Ctx<'_>, f: &mut Findings) {
    let Some(h) = super::apis::horizon(cx) else {
        return;
    };
    for r in cx.inv.helm() {
        let hits: Vec<String> = r
            .manifest_apis
            .iter()
            .filter_map(|(a, k)| {
                let (m, repl) = super::apis::removal(a, k)?;
                (m <= h).then(|| format!("{a} {k} (removed in {m}, use {repl})"))
            })
            .collect();
        if !hits.is_empty() {
            f.add(
                format!(
                    "Helm release {}/{} renders {}",
                    r.namespace,
                    r.name,
                    hits.join(", ")
                ),
                vec![release(r)],
            );
        }
    }
}

/// `helm.outdated`: patch and minor updates are info, a major one a warning.
pub fn outdated(cx: &Ctx<'_>, f: &mut Findings) {
    let Ok(indexes) = &cx.inv.helm_index else {
        return;
    };
    for r in cx.inv.helm() {
        let Some(current) = Semver::parse(&r.chart_version) else {
            continue;
        };
        for (index, charts) in indexes {
            let Some(versions) = charts.get(&r.chart) else {
                continue;
            };
            let newest = versions
                .iter()
                .filter(|(v, _)| !Semver::is_prerelease(v))
                .filter_map(|(v, created)| Some((Semver::parse(v)?, v, created)))
                .max_by_key(|(s, _, _)| *s);
            let Some((latest, v, created)) = newest else {
                continue;
            };
            if latest <= current {
                continue;
            }
            let (severity, step) = if latest.0 > current.0 {
                (Severity::Warn, "major")
            } else if latest.1 > current.1 {
                (Severity::Info, "minor")
            } else {
                (Severity::Info, "patch")
            };
            let behind = versions
                .iter()
                .filter(|(x, _)| {
                    !Semver::is_prerelease(x) && Semver::parse(x).is_some_and(|x| x > current)
                })
                .count();
            let age = created
                .as_deref()
                .map(|c| format!(", released {c}"))
                .unwrap_or_default();
            f.add_with(
                severity,
                format!("Helm release {}/{} runs {} {}; {index} has {v} ({step} update, {behind} newer version(s){age})", r.namespace, r.name, r.chart, r.chart_version),
                vec![release(r)],
                None,
            );
        }
    }
}
