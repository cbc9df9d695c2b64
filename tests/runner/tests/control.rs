//! Fan-out, `when`, DAG.

use crate::common;

use common::{Harness, out};
use opsteps_runner::{NodeKind, Phase};

/// Parses "START END" lines and checks no two intervals overlap.
fn assert_serial(log: &str, expected: usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut spans: Vec<(u128, u128)> = text
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), expected, "{text}");
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "overlapping runs: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_param_and_items_fan_out_under_parallelism_and_aggregate() {
    let h = Harness::new();
    let log = h.path("intervals");
    let wf = h.run_template("fanout", &[("log", &log)]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    for (i, item) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(out(&wf, &format!("fan({i}:{item})")), format!("{item}-x"));
    }
    assert_eq!(out(&wf, "objects(0:name:n1,v:1)"), "n1:1");
    assert_eq!(
        out(&wf, "collect"),
        r#"["a-x","b-x","c-x"] ["n1:1","n2:2"]"#
    );
    let empty = wf.node("empty").unwrap();
    assert_eq!(
        (empty.kind, empty.phase),
        (NodeKind::Skipped, Phase::Skipped)
    );
    // parallelism: 1 on the steps template: the five fanned-out pods ran one at a time.
    assert_serial(&log, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_parallelism_limits_pods_across_the_workflow() {
    let h = Harness::new();
    let log = h.path("intervals");
    let wf = h.run_template("one-pod-at-a-time", &[("log", &log)]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_serial(&log, 2);
}

#[tokio::test]
async fn when_is_evaluated_after_substitution_and_false_is_skipped() {
    let h = Harness::new();
    let wf = h.run_template("when", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    for ran in ["approved", "big", "regex"] {
        assert_eq!(wf.node(ran).unwrap().phase, Phase::Succeeded, "{ran}");
    }
    let skipped = wf.node("not-yes").unwrap();
    assert_eq!(skipped.phase, Phase::Skipped);
    assert_eq!(
        skipped.message.as_deref(),
        Some("when 'YES != YES' evaluated false")
    );

    let wf = h
        .run_template(
            "when",
            &[("answer", "NO"), ("count", "11"), ("host", "node-1")],
        )
        .await;
    for skipped in ["approved", "big", "regex"] {
        assert_eq!(wf.node(skipped).unwrap().phase, Phase::Skipped, "{skipped}");
    }
    assert_eq!(wf.node("not-yes").unwrap().phase, Phase::Succeeded);
    // An unquoted value with a hyphen reads as minus in govaluate: an error, not a guess.
    let wf = h.run_template("when", &[("answer", "a-b")]).await;
    let n = wf.node("approved").unwrap();
    assert_eq!(n.phase, Phase::Error);
    assert!(
        n.message.as_deref().unwrap().contains("read as minus"),
        "{:?}",
        n.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_depends_handles_failures_omits_and_fans_out() {
    let h = Harness::new();
    let wf = h.run_template("dag", &[]).await;
    // Argo's assessDAGPhase: on-c-ok, a leaf omitted after c failed, inherits c's failure, so
    // the DAG fails even though on-c-failed handled it.
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
    assert_eq!(wf.message, None);
    assert_eq!(out(&wf, "b"), "from-a+b");
    assert_eq!(wf.node("c").unwrap().phase, Phase::Failed);
    assert_eq!(wf.node("on-c-failed").unwrap().phase, Phase::Succeeded);
    assert_eq!(wf.node("on-c-ok").unwrap().phase, Phase::Omitted);
    let both = wf.node("both").unwrap();
    assert_eq!((both.kind, both.children.len()), (NodeKind::Task, 2));
    assert_eq!(out(&wf, "both(1:y)"), "y");
    assert!(
        !wf.tree().contains("on-c-ok"),
        "Omitted nodes are hidden, as in argo get"
    );

    let wf = h.run_template("dag", &[("c-exit", "0")]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(wf.node("on-c-failed").unwrap().phase, Phase::Omitted);
    assert_eq!(wf.node("on-c-ok").unwrap().phase, Phase::Succeeded);
}

#[tokio::test]
async fn dag_fail_fast_stops_scheduling_after_an_unhandled_failure() {
    let h = Harness::new();
    let wf = h.run_template("dag-fail", &[]).await;
    assert_eq!(wf.phase, Phase::Failed);
    // Argo: the DAG node, and so the workflow, has the failed task's phase and no message.
    assert_eq!(wf.message, None, "{}", wf.tree());
    let a = wf.node("a").unwrap();
    assert_eq!(
        (a.exit_code, a.message.as_deref()),
        (Some(1), Some("a broke"))
    );
    // b is Omitted at once; its branch failed, so nothing new starts (slow was running).
    assert_eq!(wf.node("b").unwrap().phase, Phase::Omitted, "{}", wf.tree());
    assert_eq!(wf.node("slow").unwrap().phase, Phase::Succeeded);
    assert!(wf.node("after-slow").is_none(), "{}", wf.tree());
}
