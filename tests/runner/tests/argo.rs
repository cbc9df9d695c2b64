//! Corner cases of Argo's controller (workflow/controller/steps.go, dag.go, operator.go) that
//! the runner must reproduce.

use crate::common;

use common::Harness;
use opsteps_runner::{NodeKind, Phase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_with_param_errors_the_step_group_before_anything_runs() {
    let h = Harness::new();
    let wf = h.run_template("bad-with-param", &[]).await;
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
    let group = wf.node("[0]").unwrap();
    assert_eq!(group.phase, Phase::Error, "{}", wf.tree());
    let msg = group.message.as_deref().unwrap();
    assert!(
        msg.starts_with("withParam value could not be parsed as a JSON list: not json: "),
        "{msg}"
    );
    assert!(group.children.is_empty(), "{}", wf.tree());
    assert!(wf.node("sibling").is_none() && wf.node("after").is_none());
    assert_eq!(wf.message.as_deref(), Some(msg));
    assert_eq!(wf.pods().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_with_param_under_a_false_when_is_skipped_as_empty() {
    let h = Harness::new();
    let wf = h.run_template("bad-with-param", &[("run", "no")]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let fan = wf.node("fan").unwrap();
    assert_eq!(
        (fan.phase, fan.message.as_deref()),
        (Phase::Skipped, Some("Skipped, empty params"))
    );
    // Argo's Skipped node keeps the step's template, which argo get shows.
    assert_eq!(fan.template, "fake/fake");
    assert_eq!(wf.node("after").unwrap().phase, Phase::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_with_param_in_a_dag_is_a_skipped_type_error_node() {
    let h = Harness::new();
    let wf = h.run_template("bad-with-param-dag", &[]).await;
    // The DAG takes its errored task's phase.
    assert_eq!(wf.phase, Phase::Error, "{}", wf.tree());
    let fan = wf.node("fan").unwrap();
    assert_eq!((fan.kind, fan.phase), (NodeKind::Skipped, Phase::Error));
    assert_eq!(
        fan.message.as_deref(),
        Some(
            r#"withParam value could not be parsed as a JSON list: {"not": "a list"}: not a list but an object"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanned_out_json_outputs_aggregate_as_objects_a_later_with_param_can_use() {
    let h = Harness::new();
    let wf = h.run_template("json-fanout", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let outs: Vec<&str> = wf
        .nodes_named("use(")
        .map(|n| n.outputs["out"].as_str())
        .collect();
    assert_eq!(outs, ["a", "b"], "{}", wf.tree());
}

/// With backoff_scale 0 (tests, the demo), bump-addon's `maxDuration: 20m` must not stop the
/// retries: before, the scaled maxDuration was 0 and no attempt was ever retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_does_not_apply_when_backoff_is_scaled_to_zero() {
    let h = Harness::new();
    let counter = h.path("n");
    let wf = h
        .run_template("max-duration", &[("counter", &counter)])
        .await;
    let retry = wf.node("bump-addon-like").unwrap();
    assert_eq!(retry.children.len(), 4, "{}", wf.tree());
    assert_eq!(retry.message.as_deref(), Some("No more retries left"));
    assert_eq!(common::count(&counter), 4);
}

/// processNodeRetries: a backoff that would end after the first attempt's start + maxDuration
/// stops at once, and an attempt that ran past maxDuration stops too, each with Argo's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_past_max_duration_and_attempts_past_it_stop_with_argos_messages() {
    let h = Harness::with(|c| c.backoff_scale = 1.0);
    let counter = h.path("n");
    let wf = h
        .run_template(
            "max-duration",
            &[("counter", &counter), ("template", "long-backoff")],
        )
        .await;
    let retry = wf.node("long-backoff").unwrap();
    assert_eq!(
        (retry.phase, retry.message.as_deref()),
        (
            Phase::Failed,
            Some("Backoff would exceed max duration limit")
        ),
        "{}",
        wf.tree()
    );
    assert_eq!(retry.children.len(), 1);

    let counter = h.path("m");
    let wf = h
        .run_template(
            "max-duration",
            &[
                ("counter", &counter),
                ("template", "short-max"),
                ("sleep", "1.2"),
            ],
        )
        .await;
    let retry = wf.node("short-max").unwrap();
    assert_eq!(
        (retry.phase, retry.message.as_deref()),
        (Phase::Failed, Some("Max duration limit exceeded")),
        "{}",
        wf.tree()
    );
    assert_eq!(retry.children.len(), 1);
}

/// An expression that says no: Argo's message, not the attempt's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_retry_expression_says_so_on_the_retry_node() {
    let h = Harness::new();
    let counter = h.path("n");
    let wf = h
        .run_template("retry", &[("exit", "1"), ("counter", &counter)])
        .await;
    let retry = wf.node("step").unwrap();
    assert_eq!(
        (retry.phase, retry.message.as_deref()),
        (
            Phase::Failed,
            Some("retryStrategy.expression evaluated to false")
        ),
        "{}",
        wf.tree()
    );
}

/// Argo's executor reads output files as bytes (SaveParameters): invalid UTF-8 is kept (here as
/// U+FFFD), a directory is an error that says why, and megabytes of stdout do not block the
/// step; `outputs.result` keeps their last 256 kB (CaptureScriptResult).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_that_are_directories_or_not_utf8_and_megabytes_of_stdout() {
    let h = Harness::new();
    let wf = h.run_template("odd-outputs", &[]).await;
    let dir = wf.node("directory").unwrap();
    assert_eq!(dir.phase, Phase::Error, "{}", wf.tree());
    let msg = dir.message.as_deref().unwrap();
    assert!(
        msg.starts_with(
            "failed to read output parameter \"must\": /tmp/outputs/must cannot be read ("
        ),
        "{msg}"
    );
    let latin1 = wf.node("latin1").unwrap();
    assert_eq!(latin1.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(latin1.outputs["must"], "cafe\t\u{FFFD}");
    let loud = wf.node("loud").unwrap();
    assert_eq!(loud.phase, Phase::Succeeded, "{}", wf.tree());
    let result = loud.result.as_deref().unwrap();
    // Argo keeps the last 256 kB, after stripping one trailing newline.
    assert_eq!(result.len(), 256 * 1024, "{}", &result[..100]);
    assert!(result.ends_with('x') && result.contains('\n'));
    assert_eq!(loud.outputs["must"], "ok");
}

/// Argo's workflow progress sums pods' and suspends' own N/M (0/1 when they report none),
/// complete once Succeeded: 1/1 (suspend) + 4/4 (succeeded at 2/4) + 3/10 (failed at 3/10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_shows_argos_progress() {
    let h = Harness::new();
    let wf = h
        .run(
            opsteps_runner::RunRequest::new(opsteps_runner::Submit::Template("progress".into()))
                .answer("approve", "approve", "YES"),
        )
        .await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let tree = wf.tree();
    let line = tree.lines().find(|l| l.starts_with("Progress:")).unwrap();
    assert_eq!(line, format!("{:<20} 8/15", "Progress:"), "{tree}");
}

/// `argo get` renders no TaskGroup node: a DAG fan-out's children sit in the DAG itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_puts_a_dag_fan_outs_children_in_the_dag() {
    let h = Harness::new();
    let wf = h.run_template("dag", &[]).await;
    let tree = wf.tree();
    assert!(
        tree.lines().any(|l| l.starts_with(" ├─✔ both(0:x)")),
        "{tree}"
    );
    assert!(
        !tree.lines().any(|l| l.contains("✔ both ")),
        "no TaskGroup row:\n{tree}"
    );
}

/// steps.go: a fanned-out step's `status` is its step group's phase (Succeeded once the group
/// let the next one run), and only Succeeded children's outputs aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanned_out_steps_status_is_its_groups_and_failed_items_do_not_aggregate() {
    let h = Harness::new();
    let wf = h.run_template("fanout-status", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(wf.node("fan(1:1)").unwrap().phase, Phase::Failed);
    assert_eq!(common::out(&wf, "see"), r#"Succeeded ["v0"]"#);
}

/// Runs holding different mutexes overlap: each step waits (up to 30 s) for the other's to
/// start, which it could not if the runs were serialised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_holding_different_mutexes_run_at_once() {
    let h = Harness::new();
    let dir = h.path("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let one = [("cluster", "c1"), ("other", "c2"), ("dir", dir.as_str())];
    let two = [("cluster", "c2"), ("other", "c1"), ("dir", dir.as_str())];
    let (a, b) = tokio::join!(
        h.run_template("rendezvous", &one),
        h.run_template("rendezvous", &two),
    );
    assert_eq!(a.phase, Phase::Succeeded, "{}", a.tree());
    assert_eq!(b.phase, Phase::Succeeded, "{}", b.tree());
}

/// A `when` govaluate cannot evaluate: a Skipped-type node in phase Error, in Argo's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_when_is_a_skipped_type_error_node_in_argos_words() {
    let h = Harness::new();
    let wf = h.run_template("bad-when", &[]).await;
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
    let n = wf.node("hosts").unwrap();
    assert_eq!((n.kind, n.phase), (NodeKind::Skipped, Phase::Error));
    let msg = n.message.as_deref().unwrap();
    assert!(
        msg.starts_with("Invalid 'when' expression 'ip-10-0-1-2 == ip-10-0-1-2': "),
        "{msg}"
    );
    assert_eq!(wf.pods().count(), 0);
}

/// assessDAGPhase judges leaves: a failure whose only dependent ran on `.Failed` and
/// succeeded leaves the DAG Succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_whose_failed_task_is_handled_by_its_only_dependent_succeeds() {
    let h = Harness::new();
    let wf = h.run_template("dag-handled", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(wf.node("a").unwrap().phase, Phase::Failed);
    assert_eq!(wf.node("cleanup").unwrap().phase, Phase::Succeeded);
    assert_eq!(wf.node("independent").unwrap().phase, Phase::Succeeded);
}
