//! The story: six runs of the pipelines in `workflows/`, in the order an upgrade takes.

use std::time::Duration;

use anyhow::{Result, bail};
use opsteps_e2e::Harness;
use opsteps_runner::{Phase, RunRequest, Submit, Workflow};

use crate::progress::say;

/// The control plane version the demo cluster runs, and the next one.
pub const VERSION: &str = "1.33";
pub const NEXT_VERSION: &str = "1.34";
/// The rotation's parameters (also printed as the `argo submit` command).
pub const ROTATION: [(&str, &str); 4] = [
    ("green", "green"),
    ("blue", "blue"),
    ("min-ready", "4"),
    ("dry-run", "none"),
];
/// The lifetime eviction's apps and lifetime.
pub const LIFETIME_APPS: &str =
    r#"[{"namespace": "rails", "selector": "app=storefront", "lifetime": "8h"}]"#;
pub const LIFETIME: &str = "8h";
/// Where collect-gpu-stats writes.
pub const GPU_S3_URL: &str = "s3://opsteps-reports/gpu";
/// How far the virtual clock moves before the lifetime eviction.
pub const LATER_HOURS: u64 = 9;

/// One finished stage.
pub struct Run {
    pub title: &'static str,
    pub workflow: Workflow,
}

fn template(h: &Harness, name: &str) -> RunRequest {
    h.request(Submit::Template(name.to_owned()))
}

/// The FAIL findings of a verify-cluster Markdown report (`check: message`).
pub fn fail_findings(report_md: &str) -> Vec<String> {
    report_md
        .lines()
        .skip_while(|l| !l.starts_with("### fail"))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("- **"))
        .map(|l| l.replacen("**:", ":", 1))
        .collect()
}

/// A verdict rather than an error: only verify-cluster pods failed, each with exit 1 (FAIL
/// findings, as opposed to 2 bad input or 3 could not finish).
fn is_verdict(wf: &Workflow) -> bool {
    let failed: Vec<_> = wf.pods().filter(|p| p.phase.is_failure()).collect();
    !failed.is_empty()
        && failed
            .iter()
            .all(|p| p.template.starts_with("verify-cluster") && p.exit_code == Some(1))
}

/// Runs one stage. `verdict_ok`: a NO-GO verdict (see [`is_verdict`]) is a result, not an error.
async fn stage(
    h: &Harness,
    n: usize,
    title: &'static str,
    what: &str,
    req: RunRequest,
    verdict_ok: bool,
) -> Result<Run> {
    say(&format!("[{n}/6] {title}"));
    say(&format!("      {what}"));
    let workflow = h.run(req).await?;
    // What `argo get` would show, next to the pods' directories.
    let tree = h.work_dir.join(&workflow.name).join("argo-get.txt");
    if let Some(dir) = tree.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tree, workflow.tree())?;
    if verdict_ok && is_verdict(&workflow) {
        let findings: Vec<String> = workflow
            .pods()
            .filter(|p| p.phase.is_failure())
            .filter_map(|p| p.outputs.get("report-md"))
            .flat_map(|r| fail_findings(r))
            .collect();
        say(&format!(
            "      → {} reports FAIL (exit 1: findings, not an error):",
            workflow.name
        ));
        for f in &findings {
            say(&format!("        {f}"));
        }
        say("");
        return Ok(Run { title, workflow });
    }
    if workflow.phase != Phase::Succeeded {
        say(&format!("\n{}", workflow.tree()));
        let failed: Vec<String> = workflow
            .pods()
            .filter(|p| p.phase.is_failure())
            .map(|p| {
                format!(
                    "{} ({}): {}",
                    p.display_name,
                    p.dir
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    p.message.as_deref().unwrap_or("no message").trim()
                )
            })
            .collect();
        bail!(
            "stage {n} ({title}): workflow {} {}: {}\n  {}",
            workflow.name,
            workflow.phase,
            workflow.message.as_deref().unwrap_or(""),
            failed.join("\n  ")
        );
    }
    say(&format!(
        "      → {} Succeeded in {:.1}s\n",
        workflow.name,
        workflow.duration.as_secs_f64()
    ));
    Ok(Run { title, workflow })
}

/// Runs the six stages; stops at the first that does not succeed.
pub async fn run_all(h: &Harness) -> Result<Vec<Run>> {
    let mut runs = upgrade(h).await?;
    runs.extend(after_upgrade(h).await?);
    Ok(runs)
}

/// Stages 1-3: check, add-ons, rotation.
async fn upgrade(h: &Harness) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    runs.push(
        stage(
            h,
            1,
            "pre-upgrade check",
            &format!(
                "workflowtemplate/pre-upgrade-check: is the cluster ready for Kubernetes {NEXT_VERSION}? \
                 verify-cluster pre-upgrade ∥ bump-addon plan (dry run)"
            ),
            template(h, "pre-upgrade-check").param("target-kubernetes", NEXT_VERSION),
            true,
        )
        .await?,
    );
    runs.push(
        stage(
            h,
            2,
            "add-ons after the control plane",
            &format!(
                "workflowtemplate/addons-after-control-plane: the control plane runs {VERSION}; move \
                 vpc-cni, kube-proxy and coredns to their next safe version"
            ),
            template(h, "addons-after-control-plane")
                .param("kubernetes-version", VERSION)
                .param("dry-run", "none")
                .answer("approve", "approve", "YES"),
            false,
        )
        .await?,
    );
    let mut rotation = template(h, "nodegroup-rotation")
        .param("drain-timeout", "10m")
        .answer("approve", "approve", "YES");
    for (k, v) in ROTATION {
        rotation = rotation.param(k, v);
    }
    runs.push(
        stage(
            h,
            3,
            "node-group rotation",
            "workflowtemplate/nodegroup-rotation: green Ready? plan the blue drain, approve, drain the \
             blue nodes one at a time (PDBs honoured), verify",
            rotation,
            false,
        )
        .await?,
    );
    Ok(runs)
}

/// Stages 4-6: a working day later, lifetime eviction, GPU stats, health.
async fn after_upgrade(h: &Harness) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    h.sandbox.with(|c| {
        c.clock.advance(Duration::from_secs(LATER_HOURS * 3600));
    });
    say(&format!(
        "      (the sandbox's clock moves {LATER_HOURS} hours on: the lifetime-eviction cron runs every 2 hours)"
    ));
    runs.push(
        stage(
            h,
            4,
            "lifetime eviction",
            &format!(
                "workflowtemplate/lifetime-eviction: evict rails/storefront pods older than {LIFETIME} \
                 (the leaky Rails app), one per owner per run"
            ),
            template(h, "lifetime-eviction")
                .param("apps", LIFETIME_APPS)
                .param("dry-run", "none"),
            false,
        )
        .await?,
    );
    runs.push(
        stage(
            h,
            5,
            "GPU stats to S3",
            &format!("workflowtemplate/collect-gpu-stats: who holds which GPU, idle or busy → {GPU_S3_URL}"),
            template(h, "collect-gpu-stats").param("s3-url", GPU_S3_URL),
            false,
        )
        .await?,
    );
    runs.push(
        stage(
            h,
            6,
            "post-upgrade health",
            "workflowtemplate/verify-cluster, profile health: the cluster as the daily health check sees it now",
            template(h, "verify-cluster").param("profile", "health"),
            true,
        )
        .await?,
    );
    Ok(runs)
}
