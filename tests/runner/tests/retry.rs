//! `Runner::retry` after a SIGKILL, and the `argo get` tree.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{Harness, count, out};
use opsteps_runner::{Event, Phase, RetryOptions, RunError, RunRequest, Submit, Workflow};

/// Runs kill-retry, SIGKILLing the `victim` pod as soon as it starts.
async fn killed_run(h: &Harness, pids: &Arc<Mutex<Vec<u32>>>) -> Workflow {
    let dir = h.path("counts");
    std::fs::create_dir_all(&dir).unwrap();
    let mut req = RunRequest::new(Submit::Template("kill-retry".into())).param("dir", &dir);
    req.name = Some("kr".into());
    let run = h.runner.run(req);
    let kill = async {
        loop {
            // Once the victim has counted its start (the count written, not just the file
            // created: a kill in between would leave it empty), so the count says it ran.
            let started = std::fs::read_to_string(std::path::Path::new(&dir).join("victim"))
                .is_ok_and(|t| !t.trim().is_empty());
            if let Some(pid) = pids.lock().unwrap().first().copied().filter(|_| started) {
                let status = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let (wf, ()) = tokio::join!(run, kill);
    wf.unwrap()
}

fn harness() -> (Harness, Arc<Mutex<Vec<u32>>>) {
    let pids = Arc::new(Mutex::new(Vec::new()));
    let sink = pids.clone();
    let h = Harness::with(move |c| {
        c.observer = Some(Arc::new(move |e: &Event| {
            if let Event::ProcessStarted {
                display_name, pid, ..
            } = e
                && display_name == "victim"
            {
                sink.lock().unwrap().push(*pid);
            }
        }));
    });
    (h, pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_node_is_137_and_retry_reruns_only_it() {
    let (h, pids) = harness();
    let wf = killed_run(&h, &pids).await;
    assert_eq!(wf.phase, Phase::Failed, "{}", wf.tree());
    let victim = wf.node("victim").unwrap();
    assert_eq!((victim.phase, victim.exit_code), (Phase::Failed, Some(137)));
    assert_eq!(victim.message.as_deref(), Some("Error (exit code 137)"));
    assert!(wf.node("after").is_none());
    let c = |n: &str| count(&h.path(&format!("counts/{n}")));
    assert_eq!(
        (c("first"), c("victim"), c("after"), c("exit")),
        (1, 1, 0, 1)
    );

    let state = h.work.path().join("kr.json");
    wf.save(&state).unwrap();
    let saved = Workflow::load(&state).unwrap();
    let again = h
        .runner
        .retry(&saved, RetryOptions::default())
        .await
        .unwrap();
    assert_eq!(again.phase, Phase::Succeeded, "{}", again.tree());
    assert_eq!(
        (again.name.as_str(), again.uid.as_str()),
        ("kr", wf.uid.as_str())
    );
    // `first` kept its outputs and did not run again; the exit handler did.
    assert_eq!(
        (c("first"), c("victim"), c("after"), c("exit")),
        (1, 2, 1, 2)
    );
    assert_eq!(out(&again, "victim"), "got kept");
    assert_eq!(
        again.node("first").unwrap().id,
        wf.node("first").unwrap().id
    );
    assert_eq!(
        again.node("victim").unwrap().id,
        victim.id,
        "ids are stable"
    );
    assert_eq!(again.nodes[0].display_name, "kr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_a_named_node_and_refusals() {
    let (h, pids) = harness();
    let wf = killed_run(&h, &pids).await;
    let e = h
        .runner
        .retry(
            &wf,
            RetryOptions {
                node: Some("first".into()),
                ..RetryOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RunError::NoSuchNode { .. }), "{e}");
    let again = h
        .runner
        .retry(
            &wf,
            RetryOptions {
                node: Some("victim".into()),
                ..RetryOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.phase, Phase::Succeeded);
    assert_eq!(count(&h.path("counts/first")), 1);
    let e = h
        .runner
        .retry(&again, RetryOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RunError::NotRetryable { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_prints_like_argo_get() {
    let h = Harness::new();
    let mut req = RunRequest::new(Submit::Template("basics".into())).param("cluster", "c1");
    req.name = Some("tree".into());
    let mut wf = h.run(req).await;
    // All in one second, so the order is Argo's within a second (the name), not load-dependent.
    for n in &mut wf.nodes {
        n.started_ms = Some(0);
    }
    let tree = wf.tree();
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines[0], "Name:                tree");
    assert_eq!(lines[1], "Namespace:           argo");
    assert_eq!(lines[2], "Status:              Succeeded");
    assert!(lines[3].starts_with("Duration:            "));
    assert_eq!(lines[4], "Progress:            3/3");
    assert_eq!(lines[5], "Parameters:");
    assert_eq!(lines[6], "  cluster:           c1");
    let table: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("STEP"))
        .copied()
        .collect();
    let width = table[0].find("TEMPLATE").unwrap();
    let first_cols: Vec<String> = table
        .iter()
        .map(|l| {
            l.chars()
                .take(width)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    assert_eq!(
        first_cols,
        [
            "STEP",
            " ✔ tree",
            " ├───✔ first",
            // argo get sorts parallel siblings started in one second by name.
            " └─┬─✔ parallel",
            "   │ └───✔ inner",
            "   └─✔ second",
        ]
    );
    let first = wf.node("first").unwrap();
    let row = table[2];
    assert!(row.contains("fake/fake"), "{row}");
    assert!(row.contains(first.pod_name.as_deref().unwrap()), "{row}");
    assert!(first.pod_name.as_deref().unwrap().starts_with("tree-fake-"));
}
