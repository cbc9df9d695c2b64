//! The README's contract: the RBAC and IAM tables are exactly what runs use, and the result's
//! shape is a reviewed snapshot.

use crate::common;

use std::collections::BTreeSet;

use common::{ADDONS, Env, scenario};

/// Rows of the README table under `heading`, as the cells of each row.
fn table(heading: &str) -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("a {heading} section"))
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.contains("---"))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_use_exactly_the_readme_rbac_and_iam() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    for args in [
        &[
            "--addon",
            "coredns",
            "--addon-version",
            "latest",
            "--configuration-values",
            r#"{"replicaCount": 2}"#,
        ][..],
        &["--addon", "kube-proxy", "--addon-version", "latest"],
        &["--all", "--addon-version", "latest", "--dry-run", "client"],
        &["--report-only"],
    ] {
        let r = env.run(args).await;
        assert_eq!(r.code, Some(0), "{args:?}: {}\n{}", r.result, r.stderr);
    }
    let iam: BTreeSet<String> = table("IAM")
        .into_iter()
        .map(|r| r[0].clone())
        .filter(|a| a.starts_with("eks:"))
        .collect();
    let used: BTreeSet<String> = env.sb.with(|c| {
        c.eks
            .requests
            .iter()
            .map(|r| format!("eks:{}", r.operation))
            .collect()
    });
    assert_eq!(used, iam, "EKS actions used vs the README's IAM table");

    let rbac: BTreeSet<(String, String, String)> = table("RBAC")
        .into_iter()
        .flat_map(|r| {
            // The request log names resources `plural.group` (core: `plural`).
            let res = if r[1] == "core" {
                r[0].clone()
            } else {
                format!("{}.{}", r[0], r[1])
            };
            let (verbs, scope) = (r[2].clone(), r[3].clone());
            verbs
                .split(',')
                .map(|v| (v.trim().to_owned(), res.clone(), scope.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let asked: BTreeSet<(String, String, String)> = env
        .sb
        .requests()
        .iter()
        .map(|r| (r.verb.clone(), r.resource.clone(), r.namespace.clone()))
        .collect();
    assert_eq!(
        asked, rbac,
        "Kubernetes requests vs the README's RBAC table"
    );
    // The coredns replica count came through the configuration values.
    let replicas = env.sb.with(|c| {
        c.store
            .get(
                opsteps_sandbox::resources::well_known::deployments(),
                "kube-system",
                "coredns",
            )
            .and_then(|d| {
                d.pointer("/spec/replicas")
                    .and_then(serde_json::Value::as_i64)
            })
    });
    assert_eq!(replicas, Some(2));
    let cv = env
        .sb
        .with(|c| c.eks.addons["coredns"].configuration_values.clone());
    assert_eq!(cv.as_deref(), Some(r#"{"replicaCount": 2}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_result_snapshot() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    let r = env
        .run(&["--all", "--addon-version", "latest", "--dry-run", "client"])
        .await;
    assert_eq!(r.code, Some(0));
    insta::assert_json_snapshot!(r.result);
    insta::assert_snapshot!("dry_run_report_md", env.output("report-md"));
}
