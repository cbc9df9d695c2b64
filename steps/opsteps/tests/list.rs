//! `opsteps::list` against the sandbox: pages, retries, an expired continue token, a refused
//! selector, the deadline and SIGTERM.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use opsteps::exit::{ExitStatus, StepError};
use opsteps::list::{ListError, Lister, Page};
use opsteps::shutdown::Shutdown;
use opsteps_sandbox::faults::{FaultAction, FaultRule};
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use tokio::time::Instant;

const PODS: usize = 23;

async fn sandbox() -> (Sandbox, kube::Client) {
    let yaml = format!(
        r#"
nodes:
  - {{name: a, capacity: {{cpu: "64", memory: 256Gi, pods: 110}}}}
workloads:
  - {{name: web, replicas: {PODS}, placement: {{nodes: [a]}}}}
"#
    );
    let sb = Sandbox::start(Options::default().scenario(Scenario::from_yaml(&yaml).unwrap()))
        .await
        .unwrap();
    let conn = opsteps::connect::connect(
        &opsteps::cli::ClusterArgs {
            kubeconfig: Some(sb.kubeconfig_path().to_owned()),
            ..Default::default()
        },
        &opsteps::cli::AwsArgs::default(),
    )
    .await
    .unwrap();
    (sb, conn.client)
}

fn status(code: u16, message: &str) -> FaultAction {
    FaultAction::Status {
        code,
        retry_after: None,
        message: Some(message.into()),
    }
}

fn list_requests(sb: &Sandbox) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "pods")
        .count()
}

#[tokio::test]
async fn pages_through_everything_and_retries_transient_errors() {
    let (sb, client) = sandbox().await;
    let api: Api<Pod> = Api::all(client);
    sb.add_fault(FaultRule::new("list", "pods", status(503, "etcd leader changed")).times(2));
    let before = list_requests(&sb);
    let pods = Lister::new("pods")
        .page_size(5)
        .retry(opsteps::retry::RetryPolicy {
            min_delay: Duration::from_millis(10),
            ..Default::default()
        })
        .list_all(&api, &ListParams::default())
        .await
        .unwrap();
    assert_eq!(pods.len(), PODS);
    let names: HashSet<String> = pods.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names.len(), PODS, "no duplicates");
    // 5 pages of 5, plus the two 503s.
    assert_eq!(list_requests(&sb) - before, 5 + 2);
    assert!(sb.requests().iter().any(|r| r.query.contains("limit=5")));
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list() {
    let (sb, client) = sandbox().await;
    let api: Api<Pod> = Api::all(client);
    let mut events = Vec::new();
    let stats = Lister::new("pods")
        .page_size(10)
        .for_each_page(&api, &ListParams::default(), |page| {
            if events.is_empty() {
                // The token of the first page expires before the second is asked for.
                sb.add_fault(
                    FaultRule::new(
                        "list",
                        "pods",
                        status(410, "The provided continue parameter is too old"),
                    )
                    .times(1),
                );
            }
            events.push(match page {
                Page::Items(items) => Some(items.len()),
                Page::Restart => None,
            });
        })
        .await
        .unwrap();
    assert_eq!(events, vec![Some(10), None, Some(10), Some(10), Some(3)]);
    assert_eq!(stats.restarts, 1);
    assert_eq!(stats.items, PODS);
    assert_eq!(stats.requests, 5);
    // A token that keeps expiring ends transient, not in an endless loop.
    sb.clear_faults();
    sb.add_fault(FaultRule {
        every: Some(2),
        ..FaultRule::new("list", "pods", status(410, "too old"))
    });
    let e = Lister::new("pods")
        .page_size(10)
        .list_all(&api, &ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::Expired { restarts: 3, .. }), "{e}");
    assert_eq!(StepError::from(e).status(), ExitStatus::Transient);
}

#[tokio::test]
async fn an_unsupported_selector_is_bad_input_not_an_empty_list() {
    let (sb, client) = sandbox().await;
    let api: Api<Pod> = Api::all(client);
    // The sandbox parses label selectors as the API server does.
    let e = Lister::new("pods")
        .list_all(&api, &ListParams::default().labels("app in web"))
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::Refused { .. }), "{e}");
    let se = StepError::from(e);
    assert_eq!(se.status(), ExitStatus::BadInput);
    assert!(se.to_string().contains("app in web"), "{se}");
    // A real API server's answer to a field it cannot select on.
    sb.add_fault(FaultRule::new(
        "list",
        "pods",
        status(400, "field label not supported: spec.schedulerName"),
    ));
    let e = Lister::new("pods")
        .list_all(&api, &ListParams::default().fields("spec.schedulerName=x"))
        .await
        .unwrap_err();
    let se = StepError::from(e);
    assert_eq!(se.status(), ExitStatus::BadInput);
    let msg = se.to_string();
    assert!(
        msg.contains("field label not supported") && msg.contains("spec.schedulerName=x"),
        "{msg}"
    );
    assert!(sb.mutations().is_empty());
}

#[tokio::test]
async fn the_deadline_and_shutdown_end_a_list_in_flight() {
    let (sb, client) = sandbox().await;
    let api: Api<Pod> = Api::all(client);
    sb.add_fault(FaultRule::new(
        "list",
        "pods",
        FaultAction::Latency { ms: 30_000 },
    ));
    let started = Instant::now();
    let e = Lister::new("pods")
        .deadline(Instant::now() + Duration::from_millis(300))
        .list_all(&api, &ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::Deadline { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(StepError::from(e).status(), ExitStatus::Transient);

    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.trigger();
    });
    let started = Instant::now();
    let e = opsteps::list::list_all(
        &api,
        &ListParams::default(),
        Instant::now() + Duration::from_mins(1),
        &shutdown,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ListError::Interrupted { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(StepError::from(e).status(), ExitStatus::Transient);

    // Retry waits end too: a 503 loop with SIGTERM already requested stops at once.
    sb.clear_faults();
    sb.add_fault(FaultRule::new("list", "pods", status(503, "down")));
    let started = Instant::now();
    let e = Lister::new("pods")
        .shutdown(&shutdown)
        .list_all(&api, &ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::Interrupted { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
