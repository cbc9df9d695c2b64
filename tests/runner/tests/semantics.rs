//! Argo semantics of the subset, run against fixture workflows with `fake-step`.

use crate::common;

use common::{Harness, out};
use opsteps_runner::{NodeKind, Phase, RunError, RunRequest, Submit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_outputs_and_results_flow_between_steps() {
    let h = Harness::new();
    let req = RunRequest::new(Submit::Template("basics".into()))
        .param("cluster", "c1")
        .param("mode", "b");
    let mut req = req;
    req.name = Some("basics-1".into());
    let wf = h.run(req).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(out(&wf, "first"), "hello-b-basics-1-argo");
    let first = wf.node("first").unwrap();
    assert_eq!(
        first.result.as_deref(),
        Some(format!("uid {}", wf.uid).as_str())
    );
    assert_eq!(
        out(&wf, "second"),
        format!("hello-b-basics-1-argo|uid {}|Succeeded|0|c1", wf.uid)
    );
    assert_eq!(wf.parameters["mode"], "b");
    assert_eq!(wf.parameters["greeting"], "hello");
    // A nested steps template, in parallel with `second`.
    assert_eq!(wf.node("parallel").unwrap().kind, NodeKind::Steps);
    assert_eq!(wf.node("inner").unwrap().phase, Phase::Succeeded);
    assert_eq!(wf.nodes[0].display_name, "basics-1");
    assert_eq!(wf.pods().count(), 3);
}

#[tokio::test]
async fn submit_rejects_unknown_enum_violating_and_missing_parameters() {
    let h = Harness::new();
    let submit = || RunRequest::new(Submit::Template("basics".into()));
    let e = h
        .runner
        .run(submit().param("cluster", "c").param("colour", "red"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RunError::UnknownParameter { ref name, .. } if name == "colour"),
        "{e}"
    );
    let e = h
        .runner
        .run(submit().param("cluster", "c").param("mode", "z"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("\"z\", not one of its enum values: a, b"),
        "{e}"
    );
    let e = h.runner.run(submit()).await.unwrap_err();
    assert!(
        matches!(e, RunError::MissingParameter { ref name, .. } if name == "cluster"),
        "{e}"
    );
    let e = h
        .runner
        .run(RunRequest::new(Submit::Template("nope".into())))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no WorkflowTemplate named \"nope\""),
        "{e}"
    );
    let e = h
        .runner
        .run(RunRequest::new(Submit::Cron("nope".into())))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no CronWorkflow named \"nope\""),
        "{e}"
    );
}

#[tokio::test]
async fn a_cron_runs_its_workflow_template_with_its_arguments() {
    let h = Harness::new();
    let wf = h.run(RunRequest::new(Submit::Cron("nightly".into()))).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(wf.template, "basics");
    assert_eq!(wf.cron.as_deref(), Some("nightly"));
    assert!(
        wf.name.starts_with("nightly-"),
        "named after the cron: {}",
        wf.name
    );
    assert!(out(&wf, "second").ends_with("|from-cron"));
    assert!(out(&wf, "first").starts_with("hello-b-nightly-"));
}

#[tokio::test]
async fn an_unresolved_tag_is_an_error_node_naming_it() {
    let h = Harness::new();
    let wf = h.run_template("unresolved", &[]).await;
    let bad = wf.node("bad").unwrap();
    assert_eq!(bad.phase, Phase::Error);
    assert_eq!(
        bad.message.as_deref(),
        Some("unable to resolve {{steps.nope.outputs.parameters.x}}")
    );
    assert!(wf.phase.is_failure());
    assert_eq!(
        wf.pods().filter(|p| p.exit_code.is_some()).count(),
        0,
        "nothing ran"
    );
}

#[tokio::test]
async fn output_files_strip_one_newline_default_when_missing_and_fail_without_default() {
    let h = Harness::new();
    let wf = h.run_template("outputs", &[]).await;
    assert_eq!(out(&wf, "newline"), "two lines\n");
    assert_eq!(
        wf.node("newline").unwrap().result.as_deref(),
        Some("printed")
    );
    assert_eq!(out(&wf, "defaulted"), "none");
    let strict = wf.node("strict").unwrap();
    assert_eq!(strict.phase, Phase::Error);
    assert!(
        strict
            .message
            .as_deref()
            .unwrap()
            .contains("\"must\": /tmp/outputs/must does not exist"),
        "{:?}",
        strict.message
    );
    assert_eq!(wf.phase, Phase::Failed);
}

#[tokio::test]
async fn containers_get_the_argo_environment_and_nothing_else() {
    let h = Harness::with(|c| {
        c.env.push(("SHARED".into(), "1".into()));
        c.step_env.insert(
            "fake-step".into(),
            vec![("AWS_ACCESS_KEY_ID".into(), "AKIAFAKE".into())],
        );
        c.namespace = "ops".into();
    });
    // SAFETY-free: the test process's own environment must not leak into the step.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok());
    let wf = h.run_template("env", &[]).await;
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let node = wf.node("record").unwrap();
    let dir = node.dir.clone().unwrap();
    assert_eq!(dir, h.work.path().join(&wf.name).join(&node.id));
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from\n{env}"))
            .to_owned()
    };
    assert_eq!(get("ARGO_WORKFLOW_NAME"), wf.name);
    assert_eq!(get("ARGO_WORKFLOW_UID"), wf.uid);
    assert_eq!(get("ARGO_NODE_ID"), node.id);
    assert_eq!(get("ARGO_POD_NAME"), node.pod_name.clone().unwrap());
    assert_eq!(
        get("ARGO_PROGRESS_FILE"),
        dir.join("progress").to_string_lossy()
    );
    assert_eq!(
        get("OPSTEPS_TERMINATION_LOG"),
        dir.join("termination-log").to_string_lossy()
    );
    assert_eq!(get("POD_NAMESPACE"), "ops");
    assert_eq!(get("OUT_DIR"), dir.join("outputs").to_string_lossy());
    assert_eq!(get("HOME"), dir.to_string_lossy());
    assert_eq!(get("SHARED"), "1");
    assert_eq!(get("AWS_ACCESS_KEY_ID"), "AKIAFAKE");
    assert!(!env.contains("CARGO_PKG_NAME"), "leaked:\n{env}");
    assert_eq!(out(&wf, "record"), "written");
    assert!(
        dir.join("outputs/out").is_file(),
        "the emptyDir is in the node directory"
    );
    assert_eq!(node.progress.as_deref(), Some("3/10"));
    let events = h.events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(e,
        opsteps_runner::Event::Progress { progress, .. } if progress == "3/10")));
    assert!(events.iter().any(|e| matches!(e,
        opsteps_runner::Event::ProcessStarted { command, .. } if command == "fake-step")));
}

#[tokio::test]
async fn an_unmapped_command_is_an_error_node_naming_it() {
    let h = Harness::with(|c| c.binaries.clear());
    let wf = h.run_template("env", &[]).await;
    let n = wf.node("record").unwrap();
    assert_eq!(n.phase, Phase::Error);
    assert!(
        n.message
            .as_deref()
            .unwrap()
            .contains("no local binary is mapped for command \"fake-step\"")
    );
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error() {
    let h = Harness::with(|c| {
        c.binaries
            .insert("fake-step".into(), "/nonexistent/fake-step".into());
    });
    let wf = h.run_template("env", &[]).await;
    let n = wf.node("record").unwrap();
    assert_eq!(n.phase, Phase::Error);
    assert!(
        n.message
            .as_deref()
            .unwrap()
            .contains("failed to start /nonexistent/fake-step")
    );
}
