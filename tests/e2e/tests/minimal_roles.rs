//! The steps' roles in workflows/rbac/ are minimal: for each step, taking out any one rule of its
//! ClusterRole/Role (each time on a fresh sandbox) makes the step's pipeline fail with the 403
//! named in the termination message or report. verify-cluster reports and continues, so there
//! the report names the check that could not run.

use opsteps_e2e::rbac::{self, RuleRef};
use opsteps_e2e::{Harness, Setup};
use opsteps_runner::{Phase, RunRequest, Submit, Workflow};

/// Every message, output and stderr line of the run's pods, for looking up the 403.
fn evidence(wf: &Workflow) -> String {
    let mut out = String::new();
    for n in wf.pods() {
        out.push_str(n.message.as_deref().unwrap_or_default());
        out.push('\n');
        for v in n.outputs.values() {
            out.push_str(v);
            out.push('\n');
        }
        out.push_str(n.result.as_deref().unwrap_or_default());
        out.push('\n');
        if let Some(dir) = &n.dir {
            out.push_str(&std::fs::read_to_string(dir.join("stderr")).unwrap_or_default());
        }
    }
    out
}

fn names_403(text: &str) -> bool {
    text.contains("forbidden") || text.contains("403")
}

/// Runs `request` once with the full roles (it must succeed) and once per rule of `step`'s
/// roles with that rule taken out; `failed` judges the run without the rule. Panics listing
/// every rule whose removal went unnoticed.
async fn each_rule_is_needed(
    step: &str,
    request: fn(&Harness) -> RunRequest,
    failed: fn(&Workflow) -> bool,
) {
    let objects = rbac::load(&opsteps_e2e::workspace_root().join("workflows/rbac")).unwrap();
    let rules = rbac::step_rules(&objects, step);
    assert!(!rules.is_empty(), "no rules for {step}");

    let h = Harness::start(Setup::scenario("e2e.yaml")).await.unwrap();
    let wf = h.run(request(&h)).await.unwrap();
    assert_eq!(
        wf.phase,
        Phase::Succeeded,
        "with every rule:\n{}",
        wf.tree()
    );
    assert!(
        !names_403(&evidence(&wf)) || step == "verify-cluster",
        "403 with every rule"
    );
    drop(h);

    let mut unneeded: Vec<RuleRef> = Vec::new();
    for rule in rules {
        let mut setup = Setup::scenario("e2e.yaml");
        setup.without_rule = Some(rule.clone());
        let h = Harness::start(setup).await.unwrap();
        let wf = h.run(request(&h)).await.unwrap();
        if !failed(&wf) {
            unneeded.push(rule);
        }
        h.check_invariants().unwrap();
    }
    assert!(
        unneeded.is_empty(),
        "{step}: the pipeline did not fail with a 403 without: {unneeded:#?}"
    );
}

fn fails_with_403(wf: &Workflow) -> bool {
    wf.phase != Phase::Succeeded && names_403(&evidence(wf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_node_needs_every_rule() {
    each_rule_is_needed(
        "drain-node",
        |h| {
            h.request(Submit::Template("nodegroup-rotation".into()))
                .param("green", "green")
                .param("blue", "blue")
                .param("dry-run", "none")
                .param("drain-timeout", "10m")
                .answer("approve", "approve", "YES")
        },
        fails_with_403,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_old_pods_needs_every_rule() {
    each_rule_is_needed(
        "evict-old-pods",
        |h| {
            h.request(Submit::Template("lifetime-eviction".into()))
                .param(
                    "apps",
                    r#"[{"namespace": "shop", "selector": "app=web", "lifetime": "8h"}]"#,
                )
                .param("dry-run", "none")
        },
        // The pipeline continues past a failed app (continueOn failed); the step's node fails.
        |wf| wf.pods().any(|n| n.phase.is_failure()) && names_403(&evidence(wf)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_addon_needs_every_rule() {
    each_rule_is_needed(
        "bump-addon",
        |h| {
            h.request(Submit::Template("addons-after-control-plane".into()))
                .param("kubernetes-version", "1.33")
                .param("dry-run", "none")
                .answer("approve", "approve", "YES")
        },
        fails_with_403,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_cluster_reports_the_check_each_rule_enables() {
    each_rule_is_needed(
        "verify-cluster",
        |_| RunRequest::new(Submit::Cron("daily-health".into())),
        // verify-cluster reports and continues: its report names the check that got the 403.
        |wf| {
            wf.pods()
                .any(|n| n.outputs.get("report").is_some_and(|r| names_403(r)))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_gpu_stats_needs_every_rule() {
    each_rule_is_needed(
        "collect-gpu-stats",
        |_| RunRequest::new(Submit::Cron("gpu-stats".into())),
        fails_with_403,
    )
    .await;
}
