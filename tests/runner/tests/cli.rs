//! `opsteps-run`: exit codes, the printed tree, the saved state and retry.

use crate::common;

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

/// SIGINT (what a Ctrl-C sends the runner; the steps lead their own process groups) and SIGTERM:
/// the steps get SIGTERM and stop safely, the workflow is Failed, printed and saved, exit 1.
#[test]
fn sigint_or_sigterm_terminates_the_steps_saves_the_run_and_exits_1() {
    for signal in ["-INT", "-TERM"] {
        let work = tempfile::tempdir().unwrap();
        let marks = work.path().join("marks dir");
        std::fs::create_dir_all(&marks).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_opsteps-run"))
            .args(["run", "--workflows"])
            .arg(fixtures())
            .arg("--bin")
            .arg(format!("fake-step={}", fake_step().display()))
            .arg("--work-dir")
            .arg(work.path())
            .args(["--deadline-scale", "0.1", "--name", "stopped", "-p"])
            .arg(format!("dir={}", marks.display()))
            .arg("stoppable")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !(marks.join("polite").is_file() && marks.join("stubborn").is_file()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the steps never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{signal}: {}", text(&o));
        assert!(
            text(&o).contains("terminating the workflow"),
            "{signal}: {}",
            text(&o)
        );
        assert_eq!(
            std::fs::read_to_string(marks.join("polite-term")).unwrap(),
            "TERM",
            "{signal}: the step got SIGTERM"
        );
        let wf = Workflow::load(&work.path().join("stopped.json")).unwrap();
        assert_eq!(
            (wf.phase, wf.message.as_deref()),
            (Phase::Failed, Some("Stopped with strategy 'Terminate'"))
        );
        assert_eq!(wf.node("polite").unwrap().phase, Phase::Failed);
    }
}

/// Bad input exits 2 before anything runs, with a message naming the flag and what it accepts.
#[test]
fn bad_flags_exit_2_saying_what_is_accepted_and_run_nothing() {
    let work = tempfile::tempdir().unwrap();
    let fixtures = fixtures().to_string_lossy().into_owned();
    let bin = format!("fake-step={}", fake_step().display());
    let work_dir = work.path().to_string_lossy().into_owned();
    let cases: [(&[&str], &str); 6] = [
        (
            &["run", "--workflows", "/nonexistent/wf", "x"],
            "--workflows /nonexistent/wf: not a directory (expected the directory of WorkflowTemplate",
        ),
        (
            &["check", "--workflows", "/nonexistent/wf"],
            "--workflows /nonexistent/wf: not a directory",
        ),
        (
            &[
                "run",
                "--workflows",
                &fixtures,
                "--backoff-scale=-1",
                "basics",
            ],
            "\"-1\" is not a number >= 0",
        ),
        (
            &[
                "run",
                "--workflows",
                &fixtures,
                "--deadline-scale",
                "nan",
                "basics",
            ],
            "\"nan\" is not a number >= 0",
        ),
        (
            &[
                "run",
                "--workflows",
                &fixtures,
                "--bin-dir",
                "/nonexistent/bin",
                "basics",
            ],
            "--bin-dir /nonexistent/bin: not a directory (expected the directory holding the step binaries",
        ),
        (
            &[
                "run",
                "--workflows",
                &fixtures,
                "--bin",
                &bin,
                "-p",
                "cluster",
                "basics",
            ],
            "-p \"cluster\" is not NAME=VALUE",
        ),
    ];
    for (args, expected) in cases {
        let mut all = args.to_vec();
        all.extend(["--work-dir", &work_dir]);
        if args[0] == "check" {
            all.truncate(args.len());
        }
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{args:?}: {}", text(&o));
        let os_error = "No such file or directory";
        assert!(
            text(&o).matches(os_error).count() <= 1,
            "{args:?}: {}",
            text(&o)
        );
        assert_eq!(
            std::fs::read_dir(work.path()).unwrap().count(),
            0,
            "{args:?} ran something"
        );
    }
}

/// A work dir with a space and a quote: the run works and the retry hint is shell-quoted.
#[test]
fn a_work_dir_with_spaces_and_quotes_works_and_the_retry_hint_is_quoted() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("my runs/it's");
    let o = Command::new(env!("CARGO_BIN_EXE_opsteps-run"))
        .args(["run", "--workflows"])
        .arg(fixtures())
        .arg("--bin")
        .arg(format!("fake-step={}", fake_step().display()))
        .arg("--work-dir")
        .arg(&dir)
        .args(["-p", "cluster=c1", "--name", "sp", "basics"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.join("sp.json").is_file());
    let quoted = format!("'{}/my runs/it'\\''s/sp.json'", work.path().display());
    assert!(text(&o).contains(&quoted), "{}", text(&o));
}

#[test]
fn relative_bin_and_work_dirs_resolve_against_the_callers_directory() {
    // `just run` passes `--bin-dir target/debug`; steps run with their node directory as the
    // working directory, so relative paths must be made absolute before they are spawned.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("bin")).unwrap();
    std::fs::copy(fake_step(), cwd.path().join("bin/fake-step")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_opsteps-run"))
        .current_dir(cwd.path())
        .args([
            "run",
            "--workflows",
            fixtures().to_str().unwrap(),
            "--bin-dir",
            "bin",
            "--work-dir",
            "runs",
            "--backoff-scale",
            "0",
            "-p",
            "cluster=c1",
            "--name",
            "rel",
            "basics",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let wf = Workflow::load(&cwd.path().join("runs/rel.json")).unwrap();
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    // The outputs were read from files the step wrote under the work dir.
    assert!(
        wf.node("first").is_some_and(|n| !n.outputs.is_empty()),
        "{}",
        wf.tree()
    );
}
