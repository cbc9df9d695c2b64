//! Retries, suspend, exit handlers, deadlines, mutexes.

use crate::common;

use std::time::{Duration, Instant};

use common::{Harness, count, out};
use opsteps_runner::{NodeKind, Phase, RunRequest, Submit};

#[tokio::test]
async fn exit_3_is_retried_as_child_nodes_until_it_succeeds() {
    let h = Harness::new();
    let counter = h.path("n");
    let wf = h
        .run_template("retry", &[("fail-times", "2"), ("counter", &counter)])
        .await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let retry = wf.node("step").unwrap();
    assert_eq!(retry.kind, NodeKind::Retry);
    let attempts: Vec<(String, Option<i32>)> = retry
        .children
        .iter()
        .map(|c| {
            let n = wf.node_by_id(c).unwrap();
            (n.display_name.clone(), n.exit_code)
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("step(0)".to_owned(), Some(3)),
            ("step(1)".to_owned(), Some(3)),
            ("step(2)".to_owned(), Some(0))
        ]
    );
    assert_eq!(count(&counter), 3);
    assert_eq!(
        wf.node("step(2)").unwrap().result.as_deref(),
        Some("attempt 2"),
        "{{retries}}"
    );
    assert_eq!(
        retry.result.as_deref(),
        Some("attempt 2"),
        "the retry node carries the outputs"
    );
}

#[tokio::test]
async fn exit_1_is_not_retried_by_the_expression() {
    let h = Harness::new();
    let counter = h.path("n");
    let wf = h
        .run_template("retry", &[("exit", "1"), ("counter", &counter)])
        .await;
    assert_eq!(wf.phase, Phase::Failed);
    assert_eq!(wf.node("step").unwrap().children.len(), 1);
    assert_eq!(count(&counter), 1);
    assert_eq!(
        wf.node("step(0)").unwrap().message.as_deref(),
        Some("Error (exit code 1)")
    );
}

#[tokio::test]
async fn the_limit_caps_attempts_at_limit_plus_one() {
    let h = Harness::new();
    let counter = h.path("n");
    let wf = h
        .run_template("retry", &[("fail-times", "10"), ("counter", &counter)])
        .await;
    assert_eq!(wf.phase, Phase::Failed);
    let retry = wf.node("step").unwrap();
    assert_eq!(retry.children.len(), 3, "limit 2: three attempts");
    assert_eq!(retry.message.as_deref(), Some("No more retries left"));
    assert_eq!(count(&counter), 3);
}

#[tokio::test]
async fn backoff_durations_are_scaled() {
    // 1s then 2s of backoff, scaled by 0.2: at least 0.6s in all.
    let h = Harness::with(|c| c.backoff_scale = 0.2);
    let counter = h.path("n");
    let t = Instant::now();
    let wf = h
        .run_template("retry", &[("fail-times", "2"), ("counter", &counter)])
        .await;
    assert_eq!(wf.phase, Phase::Succeeded);
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}

fn approval(answer: Option<&str>) -> RunRequest {
    let req = RunRequest::new(Submit::Template("approval".into()));
    match answer {
        Some(a) => req.answer("approve", "approve", a),
        None => req,
    }
}

#[tokio::test]
async fn suspend_resumes_from_the_supplied_answer() {
    let h = Harness::new();
    let wf = h.run(approval(Some("YES"))).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let approve = wf.node("approve").unwrap();
    assert_eq!(approve.kind, NodeKind::Suspend);
    assert_eq!(approve.outputs["approve"], "YES");
    assert_eq!(wf.node("act").unwrap().phase, Phase::Succeeded);

    let wf = h.run(approval(Some("NO"))).await;
    assert_eq!(wf.phase, Phase::Succeeded);
    assert_eq!(wf.node("act").unwrap().phase, Phase::Skipped);
    assert_eq!(wf.pods().count(), 0, "NO: nothing ran");
}

#[tokio::test]
async fn a_suspend_without_an_answer_fails_at_once_and_bad_answers_are_refused() {
    let h = Harness::new();
    let wf = h.run(approval(None)).await;
    assert_eq!(wf.phase, Phase::Failed);
    let msg = wf.node("approve").unwrap().message.clone().unwrap();
    assert!(
        msg.contains("suspend node 'approve' has no answer"),
        "{msg}"
    );
    assert!(msg.contains("--answer approve.approve=VALUE"), "{msg}");
    assert!(wf.node("act").is_none());

    let wf = h.run(approval(Some("MAYBE"))).await;
    assert_eq!(wf.phase, Phase::Failed);
    let msg = wf.node("approve").unwrap().message.clone().unwrap();
    assert!(
        msg.contains("\"MAYBE\" for 'approve' of 'approve' is not one of NO, YES"),
        "{msg}"
    );

    let wf = h
        .run(approval(None).answer("approve", "colour", "red"))
        .await;
    assert_eq!(wf.node("approve").unwrap().phase, Phase::Error);
}

#[tokio::test]
async fn the_exit_handler_sees_workflow_status_and_failures() {
    let h = Harness::new();
    let wf = h.run_template("exit-handler", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded);
    // Argo marshals an empty list of failures as null.
    assert_eq!(out(&wf, "report"), "Succeeded null");
    let on_exit = wf.node(&format!("{}.onExit", wf.name)).unwrap();
    assert!(on_exit.parent.is_none());

    let wf = h.run_template("exit-handler", &[("code", "4")]).await;
    assert_eq!(wf.phase, Phase::Failed);
    // Argo names the failed child by its node id.
    let work = &wf.node("work").unwrap().id;
    assert_eq!(
        wf.message.as_deref(),
        Some(format!("child '{work}' failed").as_str())
    );
    let report = out(&wf, "report");
    assert!(report.starts_with("Failed ["), "{report}");
    let failures: serde_json::Value = serde_json::from_str(&report["Failed ".len()..]).unwrap();
    // Every Failed/Error node, as in Argo: the steps node, its group and the pod.
    let names: Vec<&str> = failures
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, [wf.name.as_str(), "[0]", "work"]);
    assert_eq!(failures[2]["message"], "work ended");
    assert_eq!(failures[2]["phase"], "Failed");
    let pod = wf.node("work").unwrap().pod_name.clone().unwrap();
    assert_eq!(failures[2]["podName"], pod.as_str());
}

#[tokio::test]
async fn a_template_deadline_sends_sigterm() {
    let h = Harness::with(|c| c.deadline_scale = 0.05);
    let t = Instant::now();
    let wf = h.run_template("deadline", &[]).await;
    let slow = wf.node("slow").unwrap();
    assert_eq!(slow.phase, Phase::Failed);
    assert_eq!(slow.exit_code, Some(143), "SIGTERM: 128+15");
    assert_eq!(
        slow.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_step_that_ignores_sigterm_is_killed_after_the_grace_period() {
    // Deadline 20s and grace 30s, both scaled by 0.1: 2s (time for the step to set up its
    // SIGTERM handler), then 3s.
    let h = Harness::with(|c| c.deadline_scale = 0.1);
    let t = Instant::now();
    let wf = h.run_template("deadline", &[("ignore-term", "1")]).await;
    let slow = wf.node("slow").unwrap();
    assert_eq!(slow.exit_code, Some(137), "SIGKILL: 128+9\n{}", wf.tree());
    assert!(t.elapsed() >= Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn the_workflow_deadline_stops_running_and_pending_steps() {
    let h = Harness::with(|c| c.deadline_scale = 0.1);
    let wf = h.run_template("workflow-deadline", &[]).await;
    assert_eq!(wf.phase, Phase::Failed);
    assert_eq!(wf.message.as_deref(), Some("Step exceeded its deadline"));
    let long = wf.node("long").unwrap();
    assert_eq!((long.phase, long.exit_code), (Phase::Failed, Some(143)));
    assert!(wf.node("never").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_holding_the_same_mutex_serialise() {
    let h = Harness::new();
    let log = h.path("intervals");
    let params = [("cluster", "c1"), ("log", log.as_str())];
    let one = h.run_template("locked", &params);
    let two = h.run_template("locked", &params);
    let (one, two) = tokio::join!(one, two);
    assert_eq!((one.phase, two.phase), (Phase::Succeeded, Phase::Succeeded));
    let text = std::fs::read_to_string(&log).unwrap();
    let spans: Vec<(u128, u128)> = text
        .lines()
        .map(|l| {
            let (start, end) = l.split_once(' ').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 2);
    let (first, second) = if spans[0].0 < spans[1].0 {
        (spans[0], spans[1])
    } else {
        (spans[1], spans[0])
    };
    assert!(first.1 <= second.0, "the runs overlapped: {spans:?}");
}
