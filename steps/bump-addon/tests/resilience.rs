//! Retries, re-runs and interruptions: attaching to running updates (listed, or found through a
//! 409), SIGKILL then re-run with the same workflow (the clientRequestToken), SIGTERM, the
//! timeout, failed updates, DEGRADED flaps and EKS throttling.

use crate::common;

use std::time::Duration;

use common::{ADDONS, Env, entry, finished, scenario};

/// Waits (real time) for the child to exit and parses its run.
async fn wait_child(child: std::process::Child) -> common::Run {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    finished(&out)
}

fn long_updates(minutes: u32, extra: &str) -> String {
    format!("  timings: {{addonUpdate: {minutes}m{extra}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_while_an_update_runs_attaches_to_it() {
    // 10 virtual minutes = 10 real seconds at scale 60.
    let env = Env::new(&scenario(ADDONS, &long_updates(10, ""))).await;
    let a = env
        .command(&["--addon", "kube-proxy", "--addon-version", "latest"])
        .env("ARGO_WORKFLOW_UID", "wf-a")
        .spawn()
        .unwrap();
    env.until(20, "the first run's UpdateAddon", |e| {
        e.eks_requests("UpdateAddon", Some(200)) == 1
    })
    .await;
    let mut b = env.command(&["--addon", "kube-proxy", "--addon-version", "latest"]);
    b.env("ARGO_WORKFLOW_UID", "wf-b");
    let b = tokio::task::spawn_blocking(move || b.output())
        .await
        .unwrap()
        .unwrap();
    let b = finished(&b);
    assert_eq!(b.code, Some(0), "{}\n{}", b.result, b.stderr);
    let ids = env.sb.with(|c| {
        c.eks
            .updates
            .iter()
            .map(|u| u.id.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(ids.len(), 1, "one update in all");
    let e = entry(&b, "kube-proxy");
    assert_eq!(e["attached"], serde_json::json!(ids));
    assert_eq!(e["updateIds"], serde_json::json!(ids));
    assert_eq!(e["status"], "updated");
    assert_eq!(
        env.eks_requests("UpdateAddon", None),
        1,
        "the second run sent none"
    );
    let a = wait_child(a).await;
    assert_eq!(a.code, Some(0), "{}", a.result);
    assert_eq!(
        env.addon("kube-proxy"),
        ("v1.32.6-eksbuild.2".into(), "ACTIVE".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_attaches_once_the_update_is_listed() {
    // ListUpdates lags behind (eventual consistency): the second run cannot see the first
    // one's update, gets 409 from UpdateAddon, and attaches once it is listed. The lag is an
    // hour until the 409 (however slow the machine), then none.
    let env = Env::new(&scenario(
        ADDONS,
        &long_updates(10, ", updateListingDelay: 1h"),
    ))
    .await;
    let a = env
        .command(&["--addon", "coredns", "--addon-version", "latest"])
        .env("ARGO_WORKFLOW_UID", "wf-a")
        .spawn()
        .unwrap();
    env.until(20, "the first run's UpdateAddon", |e| {
        e.eks_requests("UpdateAddon", Some(200)) == 1
    })
    .await;
    let b = env
        .command(&["--addon", "coredns", "--addon-version", "latest"])
        .env("ARGO_WORKFLOW_UID", "wf-b")
        .spawn()
        .unwrap();
    env.until(60, "the second run's 409", |e| {
        e.eks_requests("UpdateAddon", Some(409)) == 1
    })
    .await;
    env.sb
        .with(|c| c.eks.timings.update_listing_delay = std::time::Duration::ZERO);
    let b = wait_child(b).await;
    assert_eq!(b.code, Some(0), "{}\n{}", b.result, b.stderr);
    assert_eq!(
        env.eks_requests("UpdateAddon", Some(409)),
        1,
        "the second run met a 409"
    );
    assert_eq!(env.eks_requests("UpdateAddon", Some(200)), 1);
    let ids = env.sb.with(|c| {
        c.eks
            .updates
            .iter()
            .map(|u| u.id.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(ids.len(), 1);
    assert_eq!(entry(&b, "coredns")["attached"], serde_json::json!(ids));
    let audit = env.output("audit.jsonl");
    assert!(audit.contains(r#""http_status":409"#), "{audit}");
    let a = wait_child(a).await;
    assert_eq!(a.code, Some(0), "{}", a.result);
    assert_eq!(
        env.addon("coredns"),
        ("v1.11.4-eksbuild.14".into(), "ACTIVE".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_wait_then_a_rerun_converges_with_one_update_per_step() {
    // ListUpdates never shows the updates (1h lag), so the re-run can only avoid a duplicate
    // through the clientRequestToken (workflow uid + add-on + target).
    let env = Env::new(&scenario(
        ADDONS,
        &long_updates(5, ", updateListingDelay: 1h"),
    ))
    .await;
    let args = ["--addon", "vpc-cni", "--addon-version", "latest"];
    let mut a = env.spawn(&args);
    env.until(20, "the first step's UpdateAddon", |e| {
        e.eks_requests("UpdateAddon", Some(200)) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill().unwrap();
    let _ = a.wait();
    assert_eq!(
        env.updates("vpc-cni")[0],
        ("v1.19.6-eksbuild.7".into(), "InProgress".into())
    );
    // Real time stops counting (scale 1) until the re-run has repeated the first request, so a
    // slow start cannot find the first update already finished; then the clock catches up.
    env.sb.with(|c| c.clock.set_scale(1.0));
    let rerun = env.spawn(&args);
    env.until(60, "the re-run's repeated UpdateAddon", |e| {
        e.eks_requests("UpdateAddon", Some(200)) == 2
    })
    .await;
    env.sb.with(|c| {
        c.clock.set_scale(60.0);
        c.clock.advance(Duration::from_mins(5));
    });
    let r = wait_child(rerun).await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    assert_eq!(
        env.updates("vpc-cni"),
        [
            ("v1.19.6-eksbuild.7".to_owned(), "Successful".to_owned()),
            ("v1.20.4-eksbuild.1".to_owned(), "Successful".to_owned()),
        ],
        "exactly one update per step"
    );
    // The re-run repeated the first step's request and got the same update back.
    assert_eq!(env.eks_requests("UpdateAddon", Some(200)), 3);
    let ids = env.sb.with(|c| {
        c.eks
            .updates
            .iter()
            .map(|u| u.id.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(entry(&r, "vpc-cni")["updateIds"], serde_json::json!(ids));
    assert_eq!(
        env.addon("vpc-cni"),
        ("v1.20.4-eksbuild.1".into(), "ACTIVE".into())
    );
    assert!(env.image(true, "aws-node").ends_with(":v1.20.4-eksbuild.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_3_with_outputs_written() {
    let env = Env::new(&scenario(ADDONS, &long_updates(60, ""))).await;
    let child = env.spawn(&["--all", "--addon-version", "latest"]);
    env.until(20, "UpdateAddon", |e| {
        e.eks_requests("UpdateAddon", Some(200)) == 1
    })
    .await;
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let r = wait_child(child).await;
    assert_eq!(r.code, Some(3), "{}\n{}", r.result, r.stderr);
    assert_eq!(entry(&r, "vpc-cni")["status"], "interrupted");
    assert_eq!(entry(&r, "kube-proxy")["status"], "not-started");
    assert!(
        env.termination_log().starts_with("transient: "),
        "{}",
        env.termination_log()
    );
    let addons: serde_json::Value = serde_json::from_str(&env.output("addons")).unwrap();
    assert_eq!(addons[0]["status"], "interrupted");
    assert!(env.output("report-md").contains("| vpc-cni |"));
    assert_eq!(
        env.eks_requests("UpdateAddon", None),
        1,
        "nothing started after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn still_progressing_at_the_timeout_exits_4() {
    let env = Env::new(&scenario(ADDONS, &long_updates(60, ""))).await;
    let started = std::time::Instant::now();
    let r = env
        .run(&[
            "--addon",
            "coredns",
            "--addon-version",
            "latest",
            "--timeout",
            "10s",
        ])
        .await;
    assert_eq!(r.code, Some(4), "{}\n{}", r.result, r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by --timeout"
    );
    let e = entry(&r, "coredns");
    assert_eq!(e["status"], "progressing");
    assert!(
        e["message"].as_str().unwrap().contains("a re-run attaches"),
        "{e}"
    );
    assert_eq!(e["updateIds"].as_array().unwrap().len(), 1);
    assert!(env.termination_log().starts_with("blocked: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_failed_with_configuration_conflict_exits_1_with_the_issue() {
    let env = Env::new(&scenario(
        "    - {name: coredns, version: v1.11.3-eksbuild.1, conflict: true}",
        "",
    ))
    .await;
    let r = env
        .run(&[
            "--addon",
            "coredns",
            "--addon-version",
            "latest",
            "--resolve-conflicts",
            "none",
        ])
        .await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.result, r.stderr);
    let e = entry(&r, "coredns");
    assert_eq!(e["status"], "failed");
    let issues = e["healthIssues"].to_string();
    assert!(
        issues.contains("ConfigurationConflict: Conflicts found"),
        "{issues}"
    );
    assert!(
        e["errors"].to_string().contains("ConfigurationConflict"),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("ConfigurationConflict"),
        "{e}"
    );
    assert!(
        env.termination_log().contains("ConfigurationConflict"),
        "{}",
        env.termination_log()
    );
    assert!(
        env.output("report-md")
            .contains("ConfigurationConflict: Conflicts found")
    );
    assert_eq!(
        env.addon("coredns"),
        ("v1.11.3-eksbuild.1".into(), "UPDATE_FAILED".into())
    );
    let warned = env.sb.with(|c| {
        c.store
            .list(
                opsteps_sandbox::resources::well_known::events(),
                Some("kube-system"),
            )
            .any(|e| {
                e["type"] == "Warning"
                    && e["reason"] == "AddonUpdateFailed"
                    && e["involvedObject"]["name"] == "coredns"
                    && e["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("ConfigurationConflict")
            })
    });
    assert!(warned, "a Warning Event on the coredns Deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_flap_inside_the_grace_period_succeeds() {
    // DEGRADED for 2 virtual minutes = 2 real seconds; the grace period is 20 s.
    let env = Env::new(&scenario(
        "    - {name: kube-proxy, version: v1.32.0-eksbuild.2, onUpdate: {result: Flap, degradedFor: 2m}}",
        "",
    ))
    .await;
    let r = env
        .run(&["--addon", "kube-proxy", "--addon-version", "latest"])
        .await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    let e = entry(&r, "kube-proxy");
    assert_eq!(e["status"], "updated");
    assert!(
        e["degradedReads"].as_u64().unwrap() >= 3,
        "the flap was seen: {e}"
    );
    assert_eq!(
        env.addon("kube-proxy"),
        ("v1.32.6-eksbuild.2".into(), "ACTIVE".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flap_that_outlasts_the_grace_period_fails() {
    let env = Env::new(&scenario(
        "    - {name: kube-proxy, version: v1.32.0-eksbuild.2, onUpdate: {result: Flap, degradedFor: 60m}}",
        "",
    ))
    .await;
    let r = env
        .run(&[
            "--addon",
            "kube-proxy",
            "--addon-version",
            "latest",
            "--degraded-grace",
            "2s",
        ])
        .await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.result, r.stderr);
    let e = entry(&r, "kube-proxy");
    assert_eq!(e["status"], "failed");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("stayed DEGRADED for more than 2s"),
        "{e}"
    );
    assert!(
        e["healthIssues"]
            .to_string()
            .contains("InsufficientNumberOfReplicas"),
        "{e}"
    );
    assert_eq!(env.addon("kube-proxy").1, "DEGRADED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_survived_within_the_deadline() {
    let faults = "  faults:
    - {error: ThrottlingException, operations: [DescribeUpdate], count: 5}
    - {error: ServerException, operations: [DescribeAddon], count: 4, after: 2}
    - {error: ThrottlingException, operations: [UpdateAddon], count: 3}
    - {error: ServiceUnavailableException, operations: [ListUpdates, DescribeAddonVersions], count: 2}";
    let env = Env::new(&scenario(ADDONS, faults)).await;
    let r = env
        .run(&[
            "--addon",
            "coredns",
            "--addon-version",
            "latest",
            "--timeout",
            "45s",
        ])
        .await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    assert_eq!(env.eks_requests("UpdateAddon", Some(429)), 3);
    assert_eq!(
        env.eks_requests("UpdateAddon", Some(200)),
        1,
        "one update despite retries"
    );
    assert_eq!(env.eks_requests("DescribeUpdate", Some(429)), 5);
    assert_eq!(env.eks_requests("DescribeAddon", Some(500)), 4);
    assert_eq!(
        env.addon("coredns"),
        ("v1.11.4-eksbuild.14".into(), "ACTIVE".into())
    );
    assert_eq!(env.updates("coredns").len(), 1);
}
