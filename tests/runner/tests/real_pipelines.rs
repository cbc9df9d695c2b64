//! The real pipelines of `workflows/`, every step mapped to `fake-step` (the end-to-end tests
//! with the real steps and the sandbox live in tests/e2e).

use crate::common;

use common::{config, fake_step, real_workflows};
use opsteps_runner::{Catalog, NodeKind, Phase, RunRequest, Runner, Submit};

fn runner(step_env: &[(&str, &str, &str)]) -> (Runner, tempfile::TempDir) {
    let cat = Catalog::load_dir(&real_workflows()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut c = config(&cat, work.path());
    for (cmd, k, v) in step_env {
        c.step_env
            .entry((*cmd).to_owned())
            .or_default()
            .push(((*k).to_owned(), (*v).to_owned()));
    }
    // Every node records its arguments in its own directory.
    c.env.push(("FAKE_RECORD_ARGS".into(), "args.txt".into()));
    assert!(fake_step().is_file());
    (Runner::new(cat, c), work)
}

fn rotation(answer: &str) -> RunRequest {
    RunRequest::new(Submit::Template("nodegroup-rotation".into()))
        .param("cluster", "prod")
        .param("green", "workers-green")
        .param("blue", "workers-blue")
        .param("dry-run", "none")
        .answer("approve", "approve", answer)
}

fn args_of(node: &opsteps_runner::Node) -> String {
    std::fs::read_to_string(node.dir.as_ref().unwrap().join("args.txt")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodegroup_rotation_drains_each_planned_node_after_yes() {
    let (r, _work) = runner(&[(
        "drain-node",
        "FAKE_WRITE",
        r#"drained-nodes=["blue-0","blue-1"]"#,
    )]);
    let wf = r.run(rotation("YES")).await.unwrap();
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let plan = wf.node("plan(0)").unwrap();
    let plan_args = args_of(plan);
    assert!(
        plan_args.contains("--selector=eks.amazonaws.com/nodegroup=workers-blue"),
        "{plan_args}"
    );
    assert!(plan_args.contains("--dry-run=client"));
    let out_dir = plan.dir.as_ref().unwrap().join("outputs");
    assert!(
        plan_args.contains(&format!("--output-dir={}", out_dir.display())),
        "{plan_args}"
    );
    assert!(plan_args.contains("--expect-cluster=prod"));
    for (i, node) in ["blue-0", "blue-1"].iter().enumerate() {
        let retry = wf.node(&format!("drain-blue({i}:{node})")).unwrap();
        assert_eq!(retry.kind, NodeKind::Retry);
        let pod = wf.node(&format!("drain-blue({i}:{node})(0)")).unwrap();
        let a = args_of(pod);
        assert!(
            a.contains(&format!("--selector=kubernetes.io/hostname={node}")),
            "{a}"
        );
        assert!(
            a.contains("--dry-run=none") && a.contains("--timeout=30m"),
            "{a}"
        );
    }
    assert_eq!(wf.node("verify").unwrap().phase, Phase::Succeeded);
    assert!(wf.node(&format!("{}.onExit", wf.name)).is_some());
    assert_eq!(
        wf.pods().count(),
        6,
        "verify-green, plan, 2 drains, verify, report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodegroup_rotation_answered_no_skips_every_disruptive_step() {
    let (r, _work) = runner(&[("drain-node", "FAKE_WRITE", r#"drained-nodes=["blue-0"]"#)]);
    let wf = r.run(rotation("NO")).await.unwrap();
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    assert_eq!(
        wf.node("drain-blue(0:blue-0)").unwrap().phase,
        Phase::Skipped
    );
    assert_eq!(wf.node("verify").unwrap().phase, Phase::Skipped);
    let drains: Vec<_> = wf
        .pods()
        .filter(|p| p.template == "drain-node/drain-node")
        .collect();
    assert_eq!(drains.len(), 1, "only the plan ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_eviction_cron_fans_out_over_its_apps() {
    let (r, _work) = runner(&[]);
    let wf = r
        .run(RunRequest::new(Submit::Cron("lifetime-eviction".into())))
        .await
        .unwrap();
    assert_eq!(wf.phase, Phase::Succeeded, "{}", wf.tree());
    let shop = wf
        .node("evict(0:lifetime:8h,namespace:shop,selector:app=web)")
        .unwrap();
    let a = args_of(wf.node_by_id(&shop.children[0]).unwrap());
    assert!(
        a.contains("app=web") && a.contains("8h") && a.contains("shop"),
        "{a}"
    );
    assert!(
        wf.node("evict(1:lifetime:24h,namespace:billing,selector:app=invoices)")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_check_exports_go_no_go_as_workflow_outputs() {
    let req = || {
        RunRequest::new(Submit::Template("cluster-cutover-check".into()))
            .param("cluster", "green")
            .param("blue-cluster", "blue")
    };
    let (r, _work) = runner(&[]);
    let wf = r.run(req()).await.unwrap();
    assert_eq!(wf.outputs["green-go"], "GO", "{}", wf.tree());
    assert_eq!(wf.outputs["blue-go"], "GO");
    let (r, _work) = runner(&[("verify-cluster", "FAKE_EXIT", "1")]);
    let wf = r.run(req()).await.unwrap();
    assert_eq!(
        wf.phase,
        Phase::Succeeded,
        "continueOn failed:\n{}",
        wf.tree()
    );
    assert_eq!(wf.outputs["green-go"], "NO-GO");
    assert_eq!(wf.outputs["blue-go"], "NO-GO");
}
