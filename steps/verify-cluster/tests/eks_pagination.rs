//! EKS list calls read every page: a cluster with more updates than one ListUpdates page (the
//! sandbox pages at 100, as EKS does) has its in-progress update on the second page.

use crate::common;

use std::fmt::Write as _;

use common::{assert_read_only_since, marks, run, start};
use opsteps::exit::ExitStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_beyond_the_first_page_are_read() {
    let mut yaml = String::from(
        "cluster: {name: t, version: \"1.33\"}\nnodeGroups: [{name: w, count: 1}]\neks:\n  updates:\n",
    );
    for day in (2..=121).rev() {
        writeln!(
            yaml,
            "    - {{status: Successful, version: \"1.33\", age: {day}d}}"
        )
        .unwrap();
    }
    yaml.push_str("    - {status: InProgress, version: \"1.33\", age: 1d}\n");
    let sb = start(&yaml).await;
    let listed_before = list_updates_calls(&sb);
    let since = marks(&sb);
    let out = run(&sb, &["--check", "cluster.updates"]).await;
    assert_read_only_since(&sb, since);
    assert_eq!(
        list_updates_calls(&sb) - listed_before,
        2,
        "121 updates take two ListUpdates pages"
    );
    assert_eq!(
        out.check_status("cluster.updates"),
        "fail",
        "{:#}",
        out.result
    );
    assert!(
        out.findings("cluster.updates")
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("is in progress")),
        "{:#}",
        out.result["findings"]
    );
    assert_eq!(out.status, ExitStatus::Failed);
}

fn list_updates_calls(sb: &opsteps_sandbox::sandbox::Sandbox) -> usize {
    sb.with(|c| {
        c.eks
            .requests
            .iter()
            .filter(|r| r.operation == "ListUpdates")
            .count()
    })
}
