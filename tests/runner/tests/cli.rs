//! `opsteps-run`: exit codes, the printed tree, the saved state and retry.

mod common;

use std::process::{Command, Output};

use common::{fake_step, fixtures, real_workflows};
use opsteps_runner::{Phase, Workflow};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsteps-run"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_accepts_the_real_workflows_and_names_a_bad_file() {
    let o = run(&["check", "--workflows", real_workflows().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("11 WorkflowTemplates"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: b}\nspec:\n  templates:\n  - name: t\n    script: {image: x, source: y}\n",
    )
    .unwrap();
    let o = run(&["check", "--workflows", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("bad.yaml: WorkflowTemplate \"b\", template \"t\": `script`"),
        "{}",
        text(&o)
    );
}

#[test]
fn run_exits_0_1_or_2_and_saves_a_state_retry_can_use() {
    let work = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| {
        let mut a = vec![
            "run".to_owned(),
            "--workflows".into(),
            fixtures().to_string_lossy().into_owned(),
            "--bin".into(),
            format!("fake-step={}", fake_step().display()),
            "--work-dir".into(),
            work.path().to_string_lossy().into_owned(),
            "--backoff-scale".into(),
            "0".into(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let args = base(&["-p", "cluster=c1", "--name", "ok", "basics"]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("✔ first Succeeded"), "live lines:\n{out}");
    assert!(
        out.contains("STEP") && out.contains(" ├───✔ first"),
        "tree:\n{out}"
    );
    assert_eq!(
        Workflow::load(&work.path().join("ok.json")).unwrap().phase,
        Phase::Succeeded
    );

    let args = base(&["--name", "no", "approval"]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("has no answer"), "{}", text(&o));

    let args = base(&[
        "--name",
        "no",
        "--answer",
        "approve.approve=YES",
        "approval",
    ]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    for bad in [
        base(&["basics"]),
        base(&["-p", "cluster", "basics"]),
        base(&["-p", "cluster=c", "-p", "mode=z", "basics"]),
        base(&["nope"]),
        base(&["--answer", "approve", "approval"]),
    ] {
        let o = run(&bad.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(text(&o).starts_with("opsteps-run: "), "{}", text(&o));
    }
}

#[test]
fn retry_reruns_a_saved_failed_run() {
    let work = tempfile::tempdir().unwrap();
    let common = [
        "--workflows".to_owned(),
        fixtures().to_string_lossy().into_owned(),
        "--bin".into(),
        format!("fake-step={}", fake_step().display()),
        "--work-dir".into(),
        work.path().to_string_lossy().into_owned(),
    ];
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(common.iter().cloned());
    args.extend(["--name".into(), "ap".into(), "approval".into()]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    let state = work.path().join("ap.json");
    let mut args: Vec<String> = vec!["retry".into()];
    args.extend(common.iter().cloned());
    args.extend([
        "--answer".into(),
        "approve.approve=NO".into(),
        state.to_string_lossy().into_owned(),
    ]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let wf = Workflow::load(&state).unwrap();
    assert_eq!(wf.node("act").unwrap().phase, Phase::Skipped);
}
