//! Every pipeline of workflows/pipelines/ and every CronWorkflow of workflows/cron/, run by the
//! local runner against the sandbox with RBAC enforced from workflows/rbac/, each ending in the
//! expected cluster state with the invariants intact. Plus the retry of a SIGKILLed drain.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsteps_e2e::{Harness, Setup, harness::pod_ready};
use opsteps_runner::{Event, Phase, RetryOptions, Submit, Workflow};
use serde_json::Value;

fn template(name: &str) -> Submit {
    Submit::Template(name.to_owned())
}

async fn start() -> Harness {
    Harness::start(Setup::scenario("e2e.yaml")).await.unwrap()
}

/// Fails with the workflow tree and the failed nodes' messages unless the phase is `want`.
fn assert_phase(wf: &Workflow, want: Phase) {
    if wf.phase != want {
        let failed: Vec<String> = wf
            .nodes
            .iter()
            .filter(|n| matches!(n.phase, Phase::Failed | Phase::Error))
            .map(|n| {
                let stderr = n
                    .dir
                    .as_ref()
                    .and_then(|d| std::fs::read_to_string(d.join("stderr")).ok())
                    .unwrap_or_default();
                let tail: String = stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                let report = n
                    .outputs
                    .get("report-md")
                    .map(String::as_str)
                    .unwrap_or_default();
                let fails: Vec<&str> = report
                    .lines()
                    .filter(|l| l.contains("FAIL") || l.contains("fail"))
                    .collect();
                format!(
                    "{}: {:?}\n{}\n{tail}",
                    n.display_name,
                    n.message,
                    fails.join("\n")
                )
            })
            .collect();
        panic!(
            "workflow {} is {:?}, expected {want:?}: {:?}\n{}\n{}",
            wf.name,
            wf.phase,
            wf.message,
            wf.tree(),
            failed.join("\n---\n")
        );
    }
}

fn names(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn non_daemon_pods_on(h: &Harness, node: &str) -> Vec<String> {
    h.list("", "pods", None)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == node && p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            !p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["kind"] == "DaemonSet" || r["kind"] == "Node")
                })
        })
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Waits (deadline-based) until every pod of the app is Ready on a green node.
async fn wait_apps_on_green(h: &Harness, apps: &[(&str, &str, usize)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let green: BTreeSet<String> = names(&h.nodegroup_nodes("green"));
        let mut missing = Vec::new();
        for (ns, app, want) in apps {
            let ready = h
                .pods(ns, &[("app", app)])
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .filter(|p| {
                    pod_ready(p) && green.contains(p["spec"]["nodeName"].as_str().unwrap_or(""))
                })
                .count();
            if ready < *want {
                missing.push(format!("{ns}/{app}: {ready}/{want} Ready on green"));
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "apps not Ready on green: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rotation(h: &Harness, answer: &str) -> opsteps_runner::RunRequest {
    h.request(template("nodegroup-rotation"))
        .param("green", "green")
        .param("blue", "blue")
        .param("min-ready", "2")
        .param("dry-run", "none")
        .param("drain-timeout", "10m")
        .answer("approve", "approve", answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodegroup_rotation_moves_blue_to_green() {
    let h = start().await;
    let mark = h.mark();
    let wf = h.run(rotation(&h, "YES")).await.unwrap();
    assert_phase(&wf, Phase::Succeeded);
    for node in h.nodegroup_nodes("blue") {
        let name = node["metadata"]["name"].as_str().unwrap();
        assert_eq!(node["spec"]["unschedulable"], true, "{name} not cordoned");
        assert_eq!(
            non_daemon_pods_on(&h, name),
            Vec::<String>::new(),
            "{name} not empty"
        );
    }
    assert_eq!(
        wf.nodes_named("drain-blue(")
            .filter(|n| n.kind == opsteps_runner::NodeKind::Pod)
            .count(),
        2
    );
    wait_apps_on_green(
        &h,
        &[
            ("shop", "web", 3),
            ("shop", "db", 2),
            ("billing", "invoices", 2),
        ],
    )
    .await;
    let evictions = h
        .step_mutation_records(mark)
        .into_iter()
        .filter(|r| r.subresource == "eviction" && r.user == "opsteps-drain-node")
        .count();
    assert!(
        evictions >= 7,
        "expected the 7 app pods evicted, saw {evictions}"
    );
    h.check_invariants().unwrap();
    assert_eq!(h.pods_evicted_twice(mark), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodegroup_rotation_answered_no_changes_nothing() {
    let h = start().await;
    let mark = h.mark();
    let wf = h.run(rotation(&h, "NO")).await.unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let plan = wf.node("plan").expect("plan node");
    assert_eq!(plan.phase, Phase::Succeeded);
    assert!(
        plan.outputs["drained-nodes"].contains("blue-0"),
        "{:?}",
        plan.outputs
    );
    let drains: Vec<_> = wf
        .nodes_named("drain-blue")
        .filter(|n| n.phase != Phase::Skipped)
        .collect();
    assert!(drains.is_empty(), "drain ran after NO: {drains:?}");
    assert_eq!(
        h.step_mutations_since(mark),
        Vec::<String>::new(),
        "mutations after NO"
    );
    for node in h.nodegroup_nodes("blue") {
        assert!(node["spec"]["unschedulable"].is_null() || node["spec"]["unschedulable"] == false);
    }
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_after_control_plane_moves_stale_addons() {
    let h = start().await;
    let before = h.addon_versions();
    let wf = h
        .run(
            h.request(template("addons-after-control-plane"))
                .param("kubernetes-version", "1.33")
                .param("dry-run", "none")
                .answer("approve", "approve", "YES"),
        )
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let after = h.addon_versions();
    for addon in ["vpc-cni", "kube-proxy", "coredns"] {
        assert_ne!(before[addon], after[addon], "{addon} did not move");
    }
    assert!(h.eks_mutations().iter().all(|op| op == "UpdateAddon"));
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_after_control_plane_answered_no_updates_nothing() {
    let h = start().await;
    let before = h.addon_versions();
    let mark = h.mark();
    let wf = h
        .run(
            h.request(template("addons-after-control-plane"))
                .param("kubernetes-version", "1.33")
                .param("dry-run", "none")
                .answer("approve", "approve", "NO"),
        )
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    assert_eq!(before, h.addon_versions());
    assert_eq!(h.eks_mutations(), Vec::<String>::new());
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    h.check_invariants().unwrap();
}

/// One old pod per owner is replaced (max-per-owner 1), the protected ledger is untouched.
async fn assert_lifetime_eviction(h: &Harness, before: &[(&str, &str, BTreeSet<String>)]) {
    for (ns, app, old) in before {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = h.pods(ns, &[("app", app)]);
            let live: Vec<&Value> = now
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            let kept = live
                .iter()
                .filter(|p| old.contains(p["metadata"]["name"].as_str().unwrap()))
                .count();
            let fresh_ready = live
                .iter()
                .filter(|p| !old.contains(p["metadata"]["name"].as_str().unwrap()) && pod_ready(p))
                .count();
            if kept == old.len() - 1 && fresh_ready == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ns}/{app}: kept {kept} of {}, {fresh_ready} fresh Ready",
                old.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn old_pods(h: &Harness) -> Vec<(&'static str, &'static str, BTreeSet<String>)> {
    [("shop", "web"), ("billing", "invoices")]
        .into_iter()
        .map(|(ns, app)| (ns, app, names(&h.pods(ns, &[("app", app)]))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_eviction_replaces_old_pods() {
    let h = start().await;
    let before = old_pods(&h);
    let ledger = names(&h.pods("billing", &[("app", "ledger")]));
    let apps = r#"[{"namespace": "shop", "selector": "app=web", "lifetime": "8h"},
                   {"namespace": "billing", "selector": "app=invoices", "lifetime": "24h"}]"#;
    let wf = h
        .run(
            h.request(template("lifetime-eviction"))
                .param("apps", apps)
                .param("dry-run", "none"),
        )
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    assert_lifetime_eviction(&h, &before).await;
    assert_eq!(ledger, names(&h.pods("billing", &[("app", "ledger")])));
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_eviction_dry_run_mutates_nothing() {
    let h = start().await;
    let mark = h.mark();
    let apps = r#"[{"namespace": "shop", "selector": "app=web", "lifetime": "8h"}]"#;
    let wf = h
        .run(h.request(template("lifetime-eviction")).param("apps", apps))
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let evict = wf
        .nodes_named("evict(")
        .find(|n| n.kind == opsteps_runner::NodeKind::Pod)
        .expect("evict pod");
    assert_eq!(evict.outputs["evicted-count"], "1", "{:?}", evict.outputs);
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    assert!(
        h.requests_since(mark)
            .iter()
            .any(|r| r.subresource == "eviction" && r.dry_run)
    );
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_upgrade_check_says_no_go_for_stale_addons_without_mutating() {
    let h = start().await;
    let mark = h.mark();
    let wf = h
        .run(
            h.request(template("pre-upgrade-check"))
                .param("target-kubernetes", "1.34"),
        )
        .await
        .unwrap();
    // kube-proxy v1.33.0 and coredns v1.12.1 do not run on 1.34: the check says NO-GO (exit 1)
    // and the add-on plan shows the way out.
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
    let verify = wf
        .pods()
        .find(|n| n.display_name.starts_with("verify"))
        .expect("verify pod");
    assert_eq!(verify.exit_code, Some(1), "{}", wf.tree());
    let report = &verify.outputs["report-md"];
    assert!(
        report
            .lines()
            .any(|l| l.contains("`addons.compatibility`") && l.contains("FAIL")),
        "{report}"
    );
    let plan = wf
        .pods()
        .find(|n| n.display_name.starts_with("addon-plan"))
        .expect("addon-plan pod");
    assert_eq!(plan.phase, Phase::Succeeded);
    assert!(
        plan.outputs.values().any(|v| v.contains("kube-proxy")),
        "{:?}",
        plan.outputs
    );
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    assert_eq!(h.eks_mutations(), Vec::<String>::new());
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cutover_check_outputs_go_verdicts() {
    let h = start().await;
    // One sandbox serves one cluster: the blue side is checked on the same cluster.
    let wf = h
        .run(
            h.request(template("cluster-cutover-check"))
                .param("blue-cluster", &h.cluster),
        )
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let outputs: Vec<String> = wf
        .nodes
        .iter()
        .flat_map(|n| n.outputs.values().cloned())
        .collect();
    assert!(
        outputs.iter().any(|v| v == "GO" || v == "NO-GO"),
        "no GO/NO-GO output:\n{}",
        wf.tree()
    );
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_report_reports_without_mutating() {
    let h = start().await;
    let mark = h.mark();
    let wf = h
        .run(
            h.request(template("drift-report"))
                .param("target-kubernetes", "1.34"),
        )
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    assert_eq!(h.eks_mutations(), Vec::<String>::new());
    h.check_invariants().unwrap();
}

// The CronWorkflows run unmodified: the e2e scenario is their cluster (prod-eu-1, eu-west-1).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_gpu_stats_writes_the_report_to_s3() {
    let h = start().await;
    let wf = h
        .run(opsteps_runner::RunRequest::new(Submit::Cron(
            "gpu-stats".into(),
        )))
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let objects = h.s3_objects();
    assert!(
        objects
            .iter()
            .any(|k| k.starts_with("s3://opsteps-reports/gpu/gpu-report/")),
        "{objects:?}"
    );
    let pod = wf.pods().last().unwrap();
    for key in pod.outputs["s3-keys"].lines() {
        assert!(
            objects.contains(&key.to_owned()),
            "{key} not in {objects:?}"
        );
    }
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_daily_health_reports() {
    let h = start().await;
    let mark = h.mark();
    let wf = h
        .run(opsteps_runner::RunRequest::new(Submit::Cron(
            "daily-health".into(),
        )))
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    let pod = wf.pods().last().unwrap();
    let report: Value = serde_json::from_str(&pod.outputs["report"]).expect("report is JSON");
    assert!(report.is_object(), "{report}");
    assert!(!pod.outputs["summary"].is_empty());
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_lifetime_eviction_replaces_old_pods() {
    let h = start().await;
    let before = old_pods(&h);
    let wf = h
        .run(opsteps_runner::RunRequest::new(Submit::Cron(
            "lifetime-eviction".into(),
        )))
        .await
        .unwrap();
    assert_phase(&wf, Phase::Succeeded);
    assert_lifetime_eviction(&h, &before).await;
    h.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_weekly_drift_reports_without_mutating() {
    let h = start().await;
    let mark = h.mark();
    let wf = h
        .run(opsteps_runner::RunRequest::new(Submit::Cron(
            "weekly-drift".into(),
        )))
        .await
        .unwrap();
    // The drift report to 1.35 (two minors ahead) may say NO-GO; it must run both checks and
    // change nothing.
    assert!(wf.pods().count() >= 2, "{}", wf.tree());
    assert_eq!(h.step_mutations_since(mark), Vec::<String>::new());
    assert_eq!(h.eks_mutations(), Vec::<String>::new());
    h.check_invariants().unwrap();
}

/// SIGKILL drain-node once it has evicted a pod, retry the workflow: the rotation converges
/// and no pod is evicted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_drain_retried_converges_without_double_eviction() {
    let pids: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let seen = Arc::clone(&pids);
    let mut setup = Setup::scenario("e2e.yaml");
    setup.observer = Some(Arc::new(move |e: &Event| {
        if let Event::ProcessStarted {
            pid,
            display_name,
            command,
            ..
        } = e
            && command == "drain-node"
            && display_name.starts_with("drain-blue")
        {
            seen.lock().unwrap().push((*pid, display_name.clone()));
        }
    }));
    // A slower clock than the other tests, so the kill lands mid-drain.
    setup.scale = Some(30.0);
    let h = Harness::start(setup).await.unwrap();
    let mark = h.mark();
    let run = {
        let runner = h.runner.clone();
        let req = rotation(&h, "YES");
        tokio::spawn(async move { runner.run(req).await })
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    let killed = loop {
        let evicted = h
            .step_mutation_records(mark)
            .iter()
            .any(|r| r.subresource == "eviction");
        let pid = pids.lock().unwrap().first().cloned();
        if let (true, Some((pid, name))) = (evicted, pid) {
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill {pid}");
            break name;
        }
        assert!(Instant::now() < deadline, "no drain-node eviction seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wf = run.await.unwrap().unwrap();
    assert_ne!(
        wf.phase,
        Phase::Succeeded,
        "the killed drain {killed} should fail the run:\n{}",
        wf.tree()
    );
    let killed_node = wf
        .pods()
        .find(|n| n.exit_code == Some(137))
        .unwrap_or_else(|| panic!("no node exited 137:\n{}", wf.tree()));
    assert!(killed_node.display_name.starts_with("drain-blue"));
    let retried = h.runner.retry(&wf, RetryOptions::default()).await.unwrap();
    assert_phase(&retried, Phase::Succeeded);
    assert_eq!(retried.uid, wf.uid);
    for node in h.nodegroup_nodes("blue") {
        let name = node["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            non_daemon_pods_on(&h, name),
            Vec::<String>::new(),
            "{name} not empty"
        );
    }
    wait_apps_on_green(
        &h,
        &[
            ("shop", "web", 3),
            ("shop", "db", 2),
            ("billing", "invoices", 2),
        ],
    )
    .await;
    assert_eq!(h.pods_evicted_twice(mark), Vec::<String>::new());
    h.check_invariants().unwrap();
}

/// Every profile the verify-cluster WorkflowTemplate offers runs (a verdict, never bad input):
/// `post-upgrade` was offered but always exited 2, as the template cannot pass the
/// `--expect-kubernetes` it needs (the verify-post-upgrade template does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_cluster_template_runs_every_profile_it_offers() {
    let text = std::fs::read_to_string(
        opsteps_e2e::workspace_root().join("workflows/templates/verify-cluster.yaml"),
    )
    .unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let profiles: Vec<String> = doc["spec"]["arguments"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "profile")
        .and_then(|p| p["enum"].as_array())
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(profiles.len() >= 3, "{profiles:?}");
    let h = start().await;
    for profile in profiles {
        let wf = h
            .run(
                h.request(template("verify-cluster"))
                    .param("profile", &profile),
            )
            .await
            .unwrap();
        let pod = wf.pods().last().unwrap();
        assert!(
            matches!(pod.exit_code, Some(0 | 1)),
            "profile {profile}: exit {:?}: {:?}",
            pod.exit_code,
            pod.message
        );
    }
    h.check_invariants().unwrap();
}

/// The pipelines and CronWorkflows the tests above run; a new file in workflows/pipelines/ or
/// workflows/cron/ fails this until it has an end-to-end test.
#[test]
fn every_pipeline_and_cron_has_an_end_to_end_test() {
    let tested_pipelines = [
        "addons-after-control-plane",
        "cluster-cutover-check",
        "drift-report",
        "lifetime-eviction",
        "nodegroup-rotation",
        "pre-upgrade-check",
    ];
    let tested_crons = [
        "daily-health",
        "gpu-stats",
        "lifetime-eviction",
        "weekly-drift",
    ];
    let root = opsteps_e2e::workspace_root().join("workflows");
    let catalog = opsteps_runner::Catalog::load_dir(&root).unwrap();
    let stems = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    assert_eq!(stems("pipelines"), tested_pipelines);
    assert_eq!(stems("cron"), tested_crons);
    assert_eq!(catalog.cron_names(), tested_crons);
    for p in tested_pipelines {
        assert!(catalog.template_names().contains(&p.to_owned()), "{p}");
    }
}
