//! Stopping a run: `Runner::terminate` (what `opsteps-run` does on SIGINT/SIGTERM) and a dropped
//! `run` future. Steps get SIGTERM, then SIGKILL after the grace period; none outlives the run.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{Harness, count};
use opsteps_runner::{Event, Phase, RunRequest, Submit};

/// Waits (deadline-based) until `done` holds; panics naming `what` after 30 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a pid is gone (or a zombie waiting to be reaped).
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

fn pids(h: &Harness) -> Vec<u32> {
    h.events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::ProcessStarted { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

/// Both sleepers have counted their start, so their SIGTERM handlers are in place.
fn both_started(dir: &Path) -> bool {
    dir.join("polite").is_file() && dir.join("stubborn").is_file()
}

fn request(dir: &Path) -> RunRequest {
    RunRequest::new(Submit::Template("stoppable".into())).param("dir", dir.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_sigterms_running_steps_records_them_failed_and_skips_the_rest() {
    // Grace 30 s × 0.1 = 3 s for the step that ignores SIGTERM: time enough for the polite one
    // to stop on SIGTERM on a loaded machine.
    let h = Harness::with(|c| c.deadline_scale = 0.1);
    let dir = h.work.path().join("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let run = h.runner.run(request(&dir));
    let stop = async {
        wait_until("both sleepers started", || both_started(&dir)).await;
        h.runner.terminate();
    };
    let (wf, ()) = tokio::join!(run, stop);
    let wf = wf.unwrap();
    assert_eq!(
        (wf.phase, wf.message.as_deref()),
        (Phase::Failed, Some("Stopped with strategy 'Terminate'")),
        "{}",
        wf.tree()
    );
    for name in ["polite", "stubborn"] {
        let n = wf.node(name).unwrap();
        assert_eq!(
            (n.phase, n.message.as_deref()),
            (
                Phase::Failed,
                Some("workflow shutdown with strategy:  Terminate")
            ),
            "{}",
            wf.tree()
        );
    }
    // The polite step got SIGTERM and stopped safely; the stubborn one needed SIGKILL.
    assert_eq!(
        std::fs::read_to_string(dir.join("polite-term")).unwrap(),
        "TERM"
    );
    assert_eq!(wf.node("polite").unwrap().exit_code, Some(3));
    assert_eq!(wf.node("stubborn").unwrap().exit_code, Some(137));
    assert!(wf.node("after").is_none(), "{}", wf.tree());
    assert_eq!(count(&dir.join("after").to_string_lossy()), 0);
    assert_eq!(
        count(&dir.join("report").to_string_lossy()),
        0,
        "no exit handler"
    );
    assert!(pids(&h).into_iter().all(dead));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_future_sigterms_its_steps_then_sigkills_them() {
    let h = Harness::with(|c| c.deadline_scale = 0.1);
    let dir = h.work.path().join("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let run = h.runner.run(request(&dir));
    tokio::select! {
        _ = run => panic!("the run cannot finish: its steps sleep 60 s"),
        () = wait_until("both sleepers started", || both_started(&dir)) => {}
    }
    // The run future is dropped here.
    let started = pids(&h);
    assert_eq!(started.len(), 2);
    wait_until("the polite step saw SIGTERM", || {
        dir.join("polite-term").is_file()
    })
    .await;
    wait_until("both steps are gone", || started.iter().copied().all(dead)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_fails_a_timed_suspend_at_once() {
    let h = Harness::new();
    let started = std::time::Instant::now();
    let run = h
        .runner
        .run(RunRequest::new(Submit::Template("timed-suspend".into())));
    let stop = async {
        wait_until("the suspend started", || {
            h.events.lock().unwrap().iter().any(
                |e| matches!(e, Event::NodeStarted { display_name, .. } if display_name == "wait"),
            )
        })
        .await;
        h.runner.terminate();
    };
    let (wf, ()) = tokio::join!(run, stop);
    let wf = wf.unwrap();
    let wait = wf.node("wait").unwrap();
    assert_eq!(
        (wait.phase, wait.message.as_deref()),
        (Phase::Failed, Some("Stopped with strategy 'Terminate'")),
        "{}",
        wf.tree()
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "it waited out the 60 s suspend"
    );
}

/// processNodeRetries: a terminated workflow retries nothing, and the Retry node says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_stops_retries_and_the_retry_node_says_so() {
    let h = Harness::with(|c| c.deadline_scale = 0.02);
    let dir = h.work.path().join("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let run = h.runner.run(
        RunRequest::new(Submit::Template("stoppable-retried".into()))
            .param("dir", dir.to_str().unwrap()),
    );
    let stop = async {
        wait_until("the attempt started", || dir.join("count").is_file()).await;
        h.runner.terminate();
    };
    let (wf, ()) = tokio::join!(run, stop);
    let wf = wf.unwrap();
    let retry = wf.node("retried").unwrap();
    assert_eq!(
        (retry.phase, retry.message.as_deref(), retry.children.len()),
        (Phase::Failed, Some("Stopped with strategy 'Terminate'"), 1),
        "{}",
        wf.tree()
    );
    assert_eq!(count(&dir.join("count").to_string_lossy()), 1);
}

/// A pod waiting for spec.parallelism when the run is terminated is never started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_starts_no_pod_that_was_waiting_for_parallelism() {
    let h = Harness::with(|c| c.deadline_scale = 0.02);
    let dir = h.work.path().join("marks");
    std::fs::create_dir_all(&dir).unwrap();
    let run = h.runner.run(
        RunRequest::new(Submit::Template("one-sleeper-at-a-time".into()))
            .param("dir", dir.to_str().unwrap()),
    );
    let stop = async {
        wait_until("one sleeper started", || {
            dir.join("first").is_file() || dir.join("second").is_file()
        })
        .await;
        h.runner.terminate();
    };
    let (wf, ()) = tokio::join!(run, stop);
    let wf = wf.unwrap();
    let started = ["first", "second"]
        .iter()
        .filter(|n| dir.join(n).is_file())
        .count();
    assert_eq!(started, 1, "{}", wf.tree());
    assert_eq!(pids(&h).len(), 1);
    for n in ["first", "second"] {
        assert_eq!(wf.node(n).unwrap().phase, Phase::Failed, "{}", wf.tree());
    }
}

/// A negative scale would panic deep inside a run (Duration::mul_f64); it is refused up front.
#[test]
#[should_panic(expected = "RunnerConfig::backoff_scale must be a finite number >= 0, not -1")]
fn a_negative_scale_is_refused_when_the_runner_is_made() {
    let _ = Harness::with(|c| c.backoff_scale = -1.0);
}
