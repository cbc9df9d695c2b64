//! A healthy cluster has no finding above info in any profile, and every run is read-only.

use crate::common;

use std::time::Duration;

use common::{assert_read_only, run, start, wait_until};
use opsteps::exit::ExitStatus;
use opsteps_sandbox::resources::well_known as wk;
use opsteps_sandbox::sandbox::Sandbox;

pub const HEALTHY: &str = include_str!("common/healthy.yaml");

/// Starts the healthy scenario and waits until its workloads are rolled out.
async fn healthy() -> Sandbox {
    let sb = start(HEALTHY).await;
    wait_until("workloads rolled out", Duration::from_secs(30), || {
        sb.with(|c| {
            let ready = |kind, ns, name: &str| {
                c.store
                    .list(kind, Some(ns))
                    .find(|o| o["metadata"]["name"] == name)
                    .is_some_and(|o| {
                        let s = &o["status"];
                        (s["availableReplicas"] == 3)
                            || (s["numberAvailable"].as_i64().is_some()
                                && s["numberAvailable"] == s["desiredNumberScheduled"]
                                && s["desiredNumberScheduled"].as_i64() > Some(0))
                    })
            };
            ready(wk::deployments(), "shop", "web")
                && ready(wk::daemonsets(), "kube-system", "kube-proxy")
                && ready(wk::daemonsets(), "gpu-operator", "dcgm-exporter")
        })
    })
    .await;
    sb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_finds_nothing_above_info() {
    let sb = healthy().await;
    for args in [
        vec!["--profile", "health"],
        vec!["--profile", "pre-upgrade", "--target-kubernetes", "1.34"],
        vec!["--profile", "post-upgrade", "--expect-kubernetes", "1.33"],
        vec![
            "--profile",
            "cutover",
            "--require-nodegroup",
            "workers",
            "--min-ready",
            "3",
        ],
    ] {
        let out = run(&sb, &args).await;
        assert_eq!(
            out.above_info(),
            Vec::<String>::new(),
            "{args:?}: {:#}",
            out.result
        );
        assert_eq!(out.status, ExitStatus::Done, "{args:?}: {:#}", out.result);
        let skipped: Vec<&str> = out.result["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] != "pass")
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        eprintln!("{args:?}: not passing: {skipped:?}");
    }
    assert_read_only(&sb);
}
