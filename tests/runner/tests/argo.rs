//! Corner cases of Argo's controller (workflow/controller/steps.go, dag.go, operator.go) that
//! the runner must reproduce.

mod common;

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
    assert_eq!(wf.node("after").unwrap().phase, Phase::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_with_param_in_a_dag_is_a_skipped_type_error_node() {
    let h = Harness::new();
    let wf = h.run_template("bad-with-param-dag", &[]).await;
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
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
