//! The steps' roles in workflows/rbac/ are minimal: for each step, taking out any one permission
//! (one verb on one resource) of its ClusterRole/Role (each time on a fresh sandbox) makes the step's pipeline fail with the 403
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
    let t = text.to_ascii_lowercase();
    // The steps check their permissions up front (SelfSubjectAccessReview) and name the missing
    // ones; a check the preflight does not cover meets the API server's 403 Forbidden.
    let status_403 = t.match_indices("403").any(|(i, _)| {
        let digit = |b: Option<&u8>| b.is_some_and(u8::is_ascii_digit);
        !digit(i.checked_sub(1).and_then(|j| t.as_bytes().get(j)))
            && !digit(t.as_bytes().get(i + 3))
    });
    t.contains("forbidden") || status_403 || t.contains("missing permissions")
}

/// A rule whose removal does not fail the pipeline by design, with what the run shows instead.
struct Exception {
    /// The rule's summary (`events create`).
    rule: &'static str,
    /// Why (for the failure message).
    why: &'static str,
    /// What a run without the rule must show.
    shows: fn(&Workflow) -> bool,
}

/// Runs each of `requests` once with the full roles (`baseline` must hold and no 403 may show),
/// then, per permission of `step`'s roles, with that permission taken out, each run on a fresh
/// sandbox; `failed` judges the runs without it (or its [`Exception`]): at least one must fail.
/// Panics listing every permission whose removal went unnoticed.
async fn each_rule_is_needed(
    step: &str,
    requests: &[fn(&Harness) -> RunRequest],
    baseline: fn(&Workflow) -> bool,
    failed: fn(&Workflow) -> bool,
    exceptions: &[Exception],
) {
    let objects = rbac::load(&opsteps_e2e::workspace_root().join("workflows/rbac")).unwrap();
    let rules = rbac::step_rules(&objects, step);
    assert!(!rules.is_empty(), "no rules for {step}");

    for request in requests {
        let h = Harness::start(Setup::scenario("e2e.yaml")).await.unwrap();
        let wf = h.run(request(&h)).await.unwrap();
        assert!(baseline(&wf), "with every rule:\n{}", wf.tree());
        let all = evidence(&wf);
        assert!(
            !names_403(&all),
            "403 with every rule: {}",
            all.lines()
                .filter(|l| names_403(l))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    let mut unneeded: Vec<(RuleRef, String)> = Vec::new();
    for rule in rules {
        // Needed when at least one of the runs fails without it (each on a fresh sandbox).
        let mut ok = false;
        let mut wf = None;
        for request in requests {
            let mut setup = Setup::scenario("e2e.yaml");
            setup.without_rule = Some(rule.clone());
            let h = Harness::start(setup).await.unwrap();
            let run = h.run(request(&h)).await.unwrap();
            h.check_invariants().unwrap();
            ok = match exceptions.iter().find(|e| e.rule == rule.summary) {
                Some(e) => (e.shows)(&run),
                None => failed(&run),
            };
            wf = Some(run);
            if ok {
                break;
            }
        }
        let wf = wf.expect("at least one request");
        if !ok {
            let msgs: Vec<String> = wf
                .pods()
                .map(|n| {
                    format!(
                        "{} {}: {}",
                        n.display_name,
                        n.phase,
                        n.message.as_deref().unwrap_or("")
                    )
                })
                .collect();
            let why = exceptions
                .iter()
                .find(|e| e.rule == rule.summary)
                .map_or("", |e| e.why);
            unneeded.push((rule, format!("{why} {}: {}", wf.phase, msgs.join(" | "))));
        }
    }
    assert!(
        unneeded.is_empty(),
        "{step}: the pipeline did not fail with a 403 without: {unneeded:#?}"
    );
}

fn succeeded(wf: &Workflow) -> bool {
    wf.phase == Phase::Succeeded
}

fn fails_with_403(wf: &Workflow) -> bool {
    wf.phase != Phase::Succeeded && names_403(&evidence(wf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_node_needs_every_rule() {
    each_rule_is_needed(
        "drain-node",
        &[|h| {
            h.request(Submit::Template("nodegroup-rotation".into()))
                .param("green", "green")
                .param("blue", "blue")
                .param("dry-run", "none")
                .param("drain-timeout", "10m")
                .answer("approve", "approve", "YES")
        }],
        succeeded,
        fails_with_403,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_old_pods_needs_every_rule() {
    each_rule_is_needed(
        "evict-old-pods",
        &[
            |h| {
                h.request(Submit::Template("lifetime-eviction".into()))
                    .param(
                        "apps",
                        r#"[{"namespace": "shop", "selector": "app=web", "lifetime": "8h"}]"#,
                    )
                    .param("dry-run", "none")
            },
            // `--mode restart` patches the owners that cannot lose a pod (one replica, no PDB).
            |h| {
                h.request(Submit::Template("lifetime-eviction".into()))
                    .param(
                        "apps",
                        r#"[{"namespace": "batch", "selector": "app=report", "lifetime": "8h"},
                        {"namespace": "batch", "selector": "app=cache", "lifetime": "8h"}]"#,
                    )
                    .param("dry-run", "none")
                    .param("mode", "restart")
            },
        ],
        succeeded,
        // The pipeline continues past a failed app (continueOn failed); the step's node fails.
        |wf| wf.pods().any(|n| n.phase.is_failure()) && names_403(&evidence(wf)),
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_addon_needs_every_rule() {
    each_rule_is_needed(
        "bump-addon",
        &[|h| {
            h.request(Submit::Template("addons-after-control-plane".into()))
                .param("kubernetes-version", "1.33")
                .param("dry-run", "none")
                .answer("approve", "approve", "YES")
        }],
        succeeded,
        fails_with_403,
        &[Exception {
            rule: "events create",
            why: "bump-addon's Events are best effort: without the rule it must log the 403 and go on",
            shows: |wf| {
                let e = evidence(wf);
                succeeded(wf) && e.contains("cannot record event") && names_403(&e)
            },
        }],
    )
    .await;
}

/// The pre-upgrade profile runs every check that needs a rule (the /metrics deprecated-API
/// check included); with the e2e scenario's stale add-ons its verdict is NO-GO (exit 1).
fn pre_upgrade_verdict(wf: &Workflow) -> bool {
    wf.pods()
        .any(|n| n.display_name.starts_with("verify") && n.exit_code == Some(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_cluster_reports_the_check_each_rule_enables() {
    each_rule_is_needed(
        "verify-cluster",
        &[|h| {
            h.request(Submit::Template("pre-upgrade-check".into()))
                .param("target-kubernetes", "1.34")
        }],
        pre_upgrade_verdict,
        // verify-cluster reports and continues: its report names the check that got the 403.
        |wf| {
            wf.pods().any(|n| {
                n.display_name.starts_with("verify")
                    && n.outputs.get("report").is_some_and(|r| names_403(r))
            })
        },
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_gpu_stats_needs_every_rule() {
    each_rule_is_needed(
        "collect-gpu-stats",
        &[|_| RunRequest::new(Submit::Cron("gpu-stats".into()))],
        succeeded,
        fails_with_403,
        &[],
    )
    .await;
}
