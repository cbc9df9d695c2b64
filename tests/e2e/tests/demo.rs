//! `cargo demo` end to end: the demo binary runs the six stages on the sandbox, exits 0, and its
//! output tells the story (approval answered, progress per node, results screen).

use std::process::Command;
use std::time::Instant;

#[test]
fn demo_runs_the_blue_green_story_and_prints_the_results() {
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--work-dir", work.path().to_str().unwrap()])
        .env(
            "OPSTEPS_SHARED_DIR",
            std::env::var("OPSTEPS_SHARED_DIR").unwrap_or_default(),
        )
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for want in [
        "[1/6] pre-upgrade check",
        "[3/6] node-group rotation",
        "[6/6] post-upgrade health",
        "the demo answers YES",
        "✓ drain-blue(",
        "RESULTS  cluster demo",
        "What moved",
        "What was evicted",
        "What is left to do",
        "invariants   all held",
        "s3://opsteps-reports/gpu/",
        "argo submit -n argo --from workflowtemplate/nodegroup-rotation",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    // Not a terminal: plain lines, no cursor control.
    assert!(!stdout.contains('\r'), "{stdout}");
    // Every stale add-on moved, the blue group emptied.
    assert!(stdout.contains("coredns v1.12.1-eksbuild.2 → "), "{stdout}");
    assert!(stdout.contains("blue: 4/4 nodes cordoned"), "{stdout}");
    assert!(work.path().join("s3/opsteps-reports").is_dir());
    eprintln!("demo took {:.1}s", elapsed.as_secs_f64());
}
