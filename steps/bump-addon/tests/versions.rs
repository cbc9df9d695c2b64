//! Version selection against the sandbox's catalogue (Kubernetes 1.31 to 1.35): every mode,
//! vpc-cni's one-minor steps, downgrades, re-runs, dry runs, the drift report and bad input.

use crate::common;

use common::{ADDONS, Env, entry, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_mode_on_a_multi_minor_catalogue() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    let plan = |mode: &'static str, extra: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut args = vec!["--all", "--dry-run", "client", "--addon-version", mode];
            args.extend_from_slice(extra);
            let r = env.run(&args).await;
            assert_eq!(r.code, Some(0), "{mode}: {}\n{}", r.result, r.stderr);
            ["vpc-cni", "kube-proxy", "coredns"].map(|a| {
                let e = entry(&r, a);
                (
                    e["to"].as_str().unwrap().to_owned(),
                    e["status"].as_str().unwrap().to_owned(),
                )
            })
        }
    };
    let s = |v: &str, st: &str| (v.to_owned(), st.to_owned());
    assert_eq!(
        plan("latest", &[]).await,
        [
            s("v1.20.4-eksbuild.1", "planned"),
            s("v1.32.6-eksbuild.2", "planned"),
            s("v1.11.4-eksbuild.14", "planned"),
        ]
    );
    // default: the version DescribeAddonVersions flags for 1.32 (kube-proxy is already there).
    assert_eq!(
        plan("default", &[]).await,
        [
            s("v1.20.1-eksbuild.3", "planned"),
            s("v1.32.0-eksbuild.2", "unchanged"),
            s("v1.11.4-eksbuild.2", "planned"),
        ]
    );
    // next-safe for 1.34: newest offered on both 1.32 and 1.34; kube-proxy has none (it
    // follows the control plane), so it is kept.
    assert_eq!(
        plan("next-safe", &["--target-kubernetes", "1.34"]).await,
        [
            s("v1.20.4-eksbuild.1", "planned"),
            s("v1.32.0-eksbuild.2", "kept"),
            s("v1.11.4-eksbuild.14", "planned"),
        ]
    );
    let r = env
        .run(&[
            "--addon",
            "coredns=v1.11.4-eksbuild.2",
            "--dry-run",
            "client",
        ])
        .await;
    assert_eq!(entry(&r, "coredns")["to"], "v1.11.4-eksbuild.2");
    assert_eq!(env.mutations(), (vec![], 0), "dry runs send nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_moves_addons_in_order_and_audits_each_update() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    let r = env
        .run(&[
            "--addon",
            "kube-proxy",
            "--addon",
            "coredns",
            "--addon-version",
            "latest",
        ])
        .await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    assert_eq!(
        env.addon("kube-proxy"),
        ("v1.32.6-eksbuild.2".into(), "ACTIVE".into())
    );
    assert_eq!(
        env.addon("coredns"),
        ("v1.11.4-eksbuild.14".into(), "ACTIVE".into())
    );
    assert!(
        env.image(true, "kube-proxy")
            .ends_with(":v1.32.6-eksbuild.2")
    );
    assert!(
        env.image(false, "coredns")
            .ends_with(":v1.11.4-eksbuild.14")
    );
    assert_eq!(env.eks_requests("UpdateAddon", None), 2);
    assert_eq!(entry(&r, "coredns")["status"], "updated");
    assert_eq!(
        entry(&r, "coredns")["updateIds"].as_array().unwrap().len(),
        1
    );
    // Processed in the documented order: kube-proxy before coredns.
    let order: Vec<&str> = r.result["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["kube-proxy", "coredns"]);
    // Audited, one result per UpdateAddon, with the workflow uid, each written ahead too.
    let audit = env.output("audit.jsonl");
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] != "create-event")
        .collect();
    let (sent, events): (Vec<_>, Vec<_>) = lines.into_iter().partition(|e| e["outcome"] == "sent");
    assert_eq!(events.len(), 2, "{audit}");
    assert_eq!(
        sent.iter().map(|e| &e["target"]).collect::<Vec<_>>(),
        events.iter().map(|e| &e["target"]).collect::<Vec<_>>(),
        "{audit}"
    );
    assert!(events.iter().all(|e| e["action"] == "update-addon"
        && e["outcome"] == "ok"
        && e["actor"]["workflow_uid"] == "wf-1"));
    assert_eq!(events[0]["target"]["name"], "prod-a/kube-proxy");
    // An Event on each workload, audited too.
    let k8s_events = env.sb.with(|c| {
        c.store
            .list(
                opsteps_sandbox::resources::well_known::events(),
                Some("kube-system"),
            )
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["reason"].as_str().unwrap_or(""),
                    e["involvedObject"]["kind"].as_str().unwrap_or(""),
                    e["involvedObject"]["name"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    });
    assert!(
        k8s_events.contains(&"AddonUpdated DaemonSet kube-proxy".to_owned()),
        "{k8s_events:?}"
    );
    assert!(
        k8s_events.contains(&"AddonUpdated Deployment coredns".to_owned()),
        "{k8s_events:?}"
    );
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains(r#""action":"create-event""#) && l.contains(r#""outcome":"ok""#))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_cni_steps_over_two_minors_one_at_a_time() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    let r = env
        .run(&[
            "--addon",
            "vpc-cni",
            "--addon-version",
            "latest",
            "--dry-run",
            "client",
        ])
        .await;
    let steps = ["v1.19.6-eksbuild.7", "v1.20.4-eksbuild.1"];
    assert_eq!(entry(&r, "vpc-cni")["steps"], serde_json::json!(steps));
    assert!(
        env.output("report-md")
            .contains("v1.19.6-eksbuild.7 → v1.20.4-eksbuild.1"),
        "{}",
        env.output("report-md")
    );
    let r = env
        .run(&["--addon", "vpc-cni", "--addon-version", "latest"])
        .await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    let e = entry(&r, "vpc-cni");
    assert_eq!(e["status"], "updated");
    assert_eq!(e["updateIds"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.updates("vpc-cni"),
        steps.map(|v| (v.to_owned(), "Successful".to_owned()))
    );
    assert_eq!(
        env.addon("vpc-cni"),
        ("v1.20.4-eksbuild.1".into(), "ACTIVE".into())
    );
    assert!(env.image(true, "aws-node").ends_with(":v1.20.4-eksbuild.1"));
    // The sandbox refuses a two-minor jump, so none was tried.
    assert_eq!(env.eks_requests("UpdateAddon", Some(200)), 2);
    assert_eq!(env.eks_requests("UpdateAddon", None), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_is_refused_without_the_flag_and_rerun_sends_nothing() {
    let env = Env::new(&scenario(
        "    - {name: coredns, version: v1.11.4-eksbuild.14}",
        "",
    ))
    .await;
    let r = env.run(&["--addon", "coredns=v1.11.3-eksbuild.1"]).await;
    assert_eq!(r.code, Some(2), "{}", r.result);
    let msg = r.result["error"].as_str().unwrap();
    assert!(
        msg.contains("older than the installed") && msg.contains("--allow-downgrade"),
        "{msg}"
    );
    assert_eq!(env.mutations(), (vec![], 0));
    assert!(env.termination_log().starts_with("bad-input: "));
    // A mode that resolves lower is skipped, not refused.
    let r = env
        .run(&["--addon", "coredns", "--addon-version", "default"])
        .await;
    assert_eq!(r.code, Some(0));
    assert_eq!(entry(&r, "coredns")["status"], "skipped-downgrade");
    assert_eq!(env.mutations(), (vec![], 0));

    let r = env
        .run(&["--addon", "coredns=v1.11.3-eksbuild.1", "--allow-downgrade"])
        .await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    assert_eq!(
        env.addon("coredns"),
        ("v1.11.3-eksbuild.1".into(), "ACTIVE".into())
    );
    let before = env.sb.with(|c| c.eks.requests.len());
    let r = env
        .run(&["--addon", "coredns=v1.11.3-eksbuild.1", "--allow-downgrade"])
        .await;
    assert_eq!(r.code, Some(0));
    assert_eq!(entry(&r, "coredns")["status"], "unchanged");
    assert_eq!(entry(&r, "coredns")["updateIds"], serde_json::json!([]));
    let after: Vec<String> = env.sb.with(|c| {
        c.eks.requests[before..]
            .iter()
            .map(|r| r.operation.clone())
            .collect()
    });
    assert!(
        !after.iter().any(|o| common::MUTATING.contains(&o.as_str())),
        "{after:?}"
    );
    assert_eq!(env.eks_requests("UpdateAddon", None), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_writes_the_drift_report_and_sends_nothing_mutating() {
    let env = Env::new(&scenario(
        &format!("{ADDONS}\n    - {{name: aws-ebs-csi-driver, version: v1.38.1-eksbuild.2}}"),
        "",
    ))
    .await;
    let r = env.run(&["--report-only"]).await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.result, r.stderr);
    assert_eq!(env.mutations(), (vec![], 0));
    let rows: serde_json::Value = serde_json::from_str(&env.output("addons")).unwrap();
    let row = |n: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    let vpc = row("vpc-cni");
    assert_eq!(vpc["current"], "v1.18.6-eksbuild.1");
    assert_eq!(vpc["latest"], "v1.20.4-eksbuild.1");
    assert_eq!(vpc["default"], "v1.20.1-eksbuild.3");
    assert_eq!(vpc["nextLatest"], "v1.20.4-eksbuild.1");
    assert_eq!(
        vpc["compatibleWithNext"], false,
        "v1.18 is not offered on 1.33"
    );
    assert_eq!(vpc["versionsBehind"], 5);
    // The sandbox dates the add-on 200 days before its virtual clock's time at load; that clock
    // runs ahead of the step's wall clock by the load time × the clock scale, so a slow load on
    // a busy machine reads 199 full days.
    let days = vpc["daysSinceModified"].as_i64().unwrap();
    assert!(
        (199..=200).contains(&days),
        "the sandbox created it 200 days ago, got {days}"
    );
    assert_eq!(row("coredns")["compatibleWithNext"], false);
    assert_eq!(row("kube-proxy")["compatibleWithNext"], false);
    assert_eq!(row("aws-ebs-csi-driver")["compatibleWithNext"], false);
    let md = env.output("report-md");
    for want in [
        "# EKS add-on drift: prod-a",
        "Kubernetes 1.32; next: 1.33.",
        "| Add-on | Current | Status | Default 1.32 | Latest 1.32 | Default 1.33 | Latest 1.33 | Runs on 1.33 | Behind |",
        "| vpc-cni | v1.18.6-eksbuild.1 | ACTIVE | v1.20.1-eksbuild.3 | v1.20.4-eksbuild.1 | v1.20.1-eksbuild.3 | v1.20.4-eksbuild.1 | **no** | 5 versions, unchanged for",
        "## Before upgrading to 1.33",
        "- kube-proxy: v1.32.0-eksbuild.2 is not offered for Kubernetes 1.33",
    ] {
        assert!(md.contains(want), "report-md lacks {want:?}:\n{md}");
    }
    // Rows in the documented order.
    let pos = |s: &str| md.find(&format!("| {s} |")).unwrap();
    assert!(pos("vpc-cni") < pos("kube-proxy") && pos("kube-proxy") < pos("coredns"));
    assert!(pos("coredns") < pos("aws-ebs-csi-driver"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_and_change_nothing() {
    let env = Env::new(&scenario(ADDONS, "")).await;
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--addon", "metrics-server"],
            &[
                "metrics-server is not installed",
                "installed add-ons: coredns, kube-proxy, vpc-cni",
            ],
        ),
        (
            &["--addon", "coredns=v1.99.0-eksbuild.1"],
            &[
                "not compatible with Kubernetes 1.32",
                "v1.11.4-eksbuild.14, v1.11.4-eksbuild.2, v1.11.3-eksbuild.1",
            ],
        ),
        (
            &["--addon", "kube-proxy=v1.33.0-eksbuild.2"],
            &[
                "not compatible with Kubernetes 1.32",
                "compatible versions: v1.32.6-eksbuild.2, v1.32.0-eksbuild.2",
            ],
        ),
        (
            &[
                "--addon",
                "coredns",
                "--configuration-values",
                r#"{"replicaCount": 0}"#,
            ],
            &[
                "configuration schema of coredns",
                "at /replicaCount",
                "(minimum)",
            ],
        ),
        (
            &[
                "--addon",
                "vpc-cni",
                "--configuration-values",
                r#"{"env": {"NOPE": "1"}}"#,
            ],
            &["at /env", "(additionalProperties)", "NOPE"],
        ),
        (
            &["--addon", "coredns", "--no-such-flag"],
            &["--no-such-flag"],
        ),
        (
            &["--addon", "coredns", "--addon-version", "newest"],
            &["expected latest, default, next-safe"],
        ),
        (
            &["--addon", "coredns", "--eks-cluster", "nope"],
            &["DescribeCluster nope", "ResourceNotFoundException"],
        ),
        (
            &["--all", "--addon-version", "next-safe"],
            &["--target-kubernetes"],
        ),
    ];
    for (args, wants) in cases {
        let r = env.run(args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}\n{}", r.result, r.stderr);
        assert_eq!(r.result["status"], "bad-input");
        let msg = r.result["error"].as_str().unwrap_or_default();
        for w in *wants {
            assert!(msg.contains(w), "{args:?}: {msg:?} lacks {w:?}");
        }
        assert!(env.termination_log().starts_with("bad-input: "), "{args:?}");
    }
    assert_eq!(env.mutations(), (vec![], 0));
    assert_eq!(env.eks_requests("UpdateAddon", None), 0);
}
