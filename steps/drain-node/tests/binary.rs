//! The drain-node binary: bad input exits 2 with nothing changed, and a drain killed with
//! SIGKILL mid-way completes on a re-run with no pod evicted twice.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Env;

const BIN: &str = env!("CARGO_BIN_EXE_drain-node");

fn run(env: &Env, extra: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let argv = env.argv(env.sb.kubeconfig_path(), extra);
    let mut cmd = Command::new(BIN);
    cmd.args(&argv[1..])
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_changes_nothing() {
    let env = Env::new(common::BLUE_GREEN).await;
    let cases: &[(&[&str], &str)] = &[
        (&["--node", "no-such-node"], "not found"),
        (&["--selector", "app in (a"], "invalid label selector"),
        (
            &["--node", "blue-0", "--timeout", "ten minutes"],
            "expected a Go duration",
        ),
        (
            &["--node", "blue-0", "--selector", "a=b"],
            "cannot be used with",
        ),
        (
            &["--nodegroup", "blue", "--pod-selector", "=x"],
            "--pod-selector",
        ),
        (&[], "no nodes selected"),
        (&["--node", "blue-0", "--grace-period", "-5"], "-5"),
        (
            &["--node", "blue-0", "--expect-cluster", "prod-eu"],
            "does not match the target cluster",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&env, args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
    }
    assert!(env.mutations().is_empty(), "{:?}", env.mutations());
    assert!(!env.unschedulable("blue-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_drain_the_rerun_completes_without_double_evictions() {
    // Slow terminations (60 s virtual = 2 s real at scale 30) keep the drain busy long enough to
    // kill it in the middle.
    let yaml = r#"
clock: {scale: 30}
kubelet: {startDelay: 1s, readyDelay: 1s}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 6, terminationGracePeriodSeconds: 60, placement: {nodes: [a]}, pdb: {maxUnavailable: 2}}
"#;
    let env = Env::new(yaml).await;
    let argo = [
        ("ARGO_WORKFLOW_NAME", "upgrade-x"),
        ("ARGO_WORKFLOW_UID", "uid-1"),
    ];
    let flags = env.argv(env.sb.kubeconfig_path(), &["--node", "a"]);
    let mut child = Command::new(BIN)
        .args(&flags[1..])
        .envs(argo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some evictions were accepted, then kill it hard.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let accepted = env
            .audit_lines()
            .iter()
            .filter(|l| l["action"] == "evict" && l["http_status"] == 201)
            .count();
        if accepted >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no eviction accepted in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.unschedulable("a"), "cordoned before the kill");
    assert!(
        env.pods_on("a")
            .iter()
            .any(|p| p.starts_with("default/web-")),
        "the kill left work to do"
    );

    // An Argo retry: same workflow, takes the lease over at once, and finishes.
    let out = run(&env, &["--node", "a"], &argo);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.pods_on("a").is_empty(), "{:?}", env.pods_on("a"));
    // The server's log is the truth: six evictions accepted, none twice.
    let mut accepted: Vec<String> = env
        .sb
        .requests()
        .iter()
        .filter(|r| r.subresource == "eviction" && r.status == 201)
        .map(|r| r.name.clone())
        .collect();
    let total = accepted.len();
    accepted.sort();
    accepted.dedup();
    assert_eq!(
        accepted.len(),
        total,
        "a pod was evicted twice: {accepted:?}"
    );
    assert_eq!(total, 6);
    // The audit names every one, even one the kill landed on between the server's answer and
    // the result line: it was written ahead as `sent`.
    let audited: std::collections::BTreeSet<String> = env
        .audit_lines()
        .iter()
        .filter(|l| l["action"] == "evict" && (l["http_status"] == 201 || l["outcome"] == "sent"))
        .map(|l| l["target"]["name"].as_str().unwrap().to_owned())
        .collect();
    for pod in &accepted {
        assert!(audited.contains(pod), "{pod} evicted but not audited");
    }
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "done");
    assert_eq!(result["exitCode"], 0);
    assert_eq!(
        env.node("a")["metadata"]["annotations"][drain_node::ANN_STATE],
        "drained"
    );
    assert_eq!(
        env.node("a")["metadata"]["annotations"][drain_node::ANN_OWNER],
        "argo:upgrade-x/uid-1"
    );
    env.sb.assert_invariants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_run_writes_the_termination_log_and_exits_4() {
    let yaml = r"
nodes:
  - {name: a}
  - {name: b}
workloads:
  - {name: db, replicas: 2, placement: {nodes: [a]}, pdb: {minAvailable: 2}}
";
    let env = Env::new(yaml).await;
    let out = run(&env, &["--node", "a"], &[]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tl = std::fs::read_to_string(env.dir.path().join("termination-log")).unwrap();
    assert!(
        tl.starts_with("blocked: the drain cannot succeed; nothing was cordoned"),
        "{tl}"
    );
    assert_eq!(tl.lines().count(), 1);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["exitCode"], 4);
    assert_eq!(result["blocked"][0]["pdb"], "default/db");
    assert!(env.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_drain_exits_3_with_outputs_written_and_no_later_writes() {
    let yaml = r#"
clock: {scale: 30}
kubelet: {startDelay: 1s, readyDelay: 1s}
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 6, terminationGracePeriodSeconds: 60, placement: {nodes: [a]}, pdb: {maxUnavailable: 2}}
"#;
    let env = Env::new(yaml).await;
    let flags = env.argv(env.sb.kubeconfig_path(), &["--node", "a"]);
    let child = Command::new(BIN)
        .args(&flags[1..])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !env
        .sb
        .requests()
        .iter()
        .any(|r| r.subresource == "eviction" && r.status == 201)
    {
        assert!(std::time::Instant::now() < deadline, "no eviction in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled_at = env.sb.requests().len();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["exitCode"], 3);
    assert_eq!(result["nodes"][0]["status"], "interrupted", "{result}");
    for k in [
        "nodes", "cordoned", "drained", "evicted", "awaited", "blocked",
    ] {
        assert!(result["summary"].get(k).is_some(), "summary.{k}: {result}");
    }
    assert!(env.output("summary").get("blocked").is_some());
    assert_eq!(env.output("drained-nodes"), serde_json::json!([]));
    let tl = std::fs::read_to_string(env.dir.path().join("termination-log")).unwrap();
    assert!(tl.starts_with("transient"), "{tl}");
    // After the signal: no node patch, no lease write, no new eviction (in-flight ones may land).
    let late: Vec<String> = env.sb.requests()[signalled_at..]
        .iter()
        .filter(|r| r.mutating && matches!(r.resource.as_str(), "nodes" | "leases"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(late.is_empty(), "{late:?}");
    assert!(env.unschedulable("a"), "stays cordoned for the retry");
}
