//! One run, in order: flags → connect → permissions → discovery → collection (scrapes or
//! Prometheus) → aggregation → owners → report → local outputs → upload.
//!
//! Exit codes: 0 with any data (partial data is reported in the data-quality block), 1 when
//! GPU nodes or exporters exist but nothing could be scraped (nothing is uploaded), 2 for bad
//! input (nothing sent), 3 for transient failures (API, Prometheus, S3, SIGTERM, the
//! deadline); nothing is uploaded after SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opsteps::exit::{ExitStatus, StepError};
use opsteps::owners::Owners;
use opsteps::retry::RetryPolicy;
use opsteps::step::{Context, Report};
use serde_json::json;
use tokio::time::Instant;

use crate::aggregation::{self, NodeAgg};
use crate::args::{Args, Config};
use crate::attribution::{Attributor, Resolved};
use crate::discovery::{self, Inventory};
use crate::report::{self, DataQuality, FailedNode, Inputs, Window};
use crate::sample::{ParseStats, Snapshot};
use crate::scrape::Scraper;
use crate::states::Thresholds;
use crate::upload::{self, Object};

/// What collection produced, whatever the source.
struct Collected {
    /// Node → snapshots (nodes with data only).
    snapshots: BTreeMap<String, Vec<Snapshot>>,
    /// Node → the exporter pod that served it.
    exporter_of: BTreeMap<String, (String, String)>,
    failed: Vec<FailedNode>,
    attempted: u64,
    succeeded: u64,
    parse: ParseStats,
    rounds: u32,
    source: &'static str,
    interrupted: bool,
    window_seconds: f64,
}

fn cluster_name(args: &Args, conn: &opsteps::connect::Connection) -> String {
    args.cluster_name
        .clone()
        .or_else(|| conn.identity.eks_name.clone())
        .or_else(|| conn.identity.context.clone())
        .unwrap_or_else(|| {
            conn.identity
                .server
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        })
}

async fn scrape_exporters(
    args: &Args,
    inv: &Inventory,
    client: &kube::Client,
    ctx: &Context,
    deadline: Instant,
) -> Collected {
    let scraper = Scraper {
        proxy: args.via_apiserver.then(|| client.clone()),
        timeout: args.scrape_timeout.0,
        concurrency: args.concurrency as usize,
    };
    // One exporter per node: the first by namespace/name when a node runs two.
    let mut per_node: BTreeMap<String, &discovery::Exporter> = BTreeMap::new();
    for e in &inv.exporters {
        if let Some(n) = &e.node {
            per_node.entry(n.clone()).or_insert(e);
        }
    }
    let targets: Vec<discovery::Exporter> = per_node.values().map(|e| (*e).clone()).collect();
    let total = u64::from(args.samples) * targets.len() as u64;
    let output = ctx.output.clone();
    let per_round = targets.len() as u64;
    let (results, interrupted) = scraper
        .collect(
            &targets,
            args.samples,
            args.interval.0,
            deadline,
            &ctx.shutdown,
            move |round| output.progress(u64::from(round) * per_round, total),
        )
        .await;
    let mut c = Collected {
        snapshots: BTreeMap::new(),
        exporter_of: BTreeMap::new(),
        failed: Vec::new(),
        attempted: 0,
        succeeded: 0,
        parse: ParseStats::default(),
        rounds: args.samples,
        source: if args.via_apiserver {
            "exporters-apiserver"
        } else {
            "exporters-direct"
        },
        interrupted,
        window_seconds: (f64::from(args.samples) - 1.0) * args.interval.0.as_secs_f64(),
    };
    for (e, r) in targets.iter().zip(results) {
        let node = e.node.clone().unwrap_or_default();
        c.attempted += (r.snapshots.len() + r.failures.len()) as u64;
        c.succeeded += r.snapshots.len() as u64;
        c.parse.add(r.parse);
        if r.snapshots.is_empty() {
            let (kind, msg) = r
                .failures
                .last()
                .map_or(("not-scraped", "interrupted before the first scrape".to_owned()), |f| {
                    (f.1, f.2.clone())
                });
            c.failed.push(FailedNode {
                node,
                exporter: Some(format!("{}/{}", e.namespace, e.name)),
                reason: kind.to_owned(),
                message: msg,
            });
        } else {
            c.exporter_of
                .insert(node.clone(), (e.namespace.clone(), e.name.clone()));
            c.snapshots.insert(node, r.snapshots);
        }
    }
    c
}

async fn from_prometheus(
    args: &Args,
    cfg: &Config,
    end: jiff::Timestamp,
) -> Result<Collected, StepError> {
    let base = cfg.prometheus.as_ref().expect("checked by the caller");
    let region = cfg.sigv4.then(|| args.common.aws.region.clone()).flatten();
    let client = crate::prometheus::Client::new(base, region.as_deref(), args.scrape_timeout.0)
        .await
        .map_err(|e| StepError::transient("Prometheus client").with_source(e))?;
    let end_s = end.as_millisecond() as f64 / 1000.0;
    let start_s = end_s - args.prometheus_window.0.as_secs_f64();
    let (snapshots, queries) = client.window(start_s, end_s).await.map_err(|e| {
        StepError::transient(
            "cannot read the window from --prometheus-url; nothing was uploaded",
        )
        .with_source(e)
    })?;
    let rounds = snapshots.values().map(Vec::len).max().unwrap_or(0) as u32;
    Ok(Collected {
        succeeded: queries,
        attempted: queries,
        snapshots,
        exporter_of: BTreeMap::new(),
        failed: Vec::new(),
        parse: ParseStats::default(),
        rounds,
        source: "prometheus",
        interrupted: false,
        window_seconds: args.prometheus_window.0.as_secs_f64(),
    })
}

/// The whole run.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    let cfg = Config::from_args(&args)?;
    let started = Instant::now();
    let deadline = started + args.timeout.0;
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let retry = RetryPolicy::default()
        .with_shutdown(&ctx.shutdown)
        .with_deadline(deadline);
    opsteps::access::require(
        &conn.client,
        &crate::rbac::needed(args.via_apiserver),
        &retry,
    )
    .await?;
    let cluster = cluster_name(&args, &conn);
    let inv = discovery::discover(&conn.client, &ctx, deadline).await?;
    tracing::info!(
        gpu_nodes = inv.nodes.len(),
        exporters = inv.exporters.len(),
        gpu_pods = inv.gpu_pods.len(),
        "discovered"
    );

    let mut collected = match &cfg.prometheus {
        Some(_) => {
            let end = args.now.unwrap_or_else(jiff::Timestamp::now);
            from_prometheus(&args, &cfg, end).await?
        }
        None => scrape_exporters(&args, &inv, &conn.client, &ctx, deadline).await,
    };
    let end = args.now.unwrap_or_else(jiff::Timestamp::now);
    if collected.interrupted || ctx.shutdown.is_requested() {
        return Err(StepError::new(
            ExitStatus::interrupted(),
            "interrupted by SIGTERM while collecting; nothing was uploaded",
        ));
    }

    // GPU nodes without an exporter are reported, never silently missing.
    let with_exporter: BTreeSet<&str> = inv.exporters.iter().filter_map(|e| e.node.as_deref()).collect();
    if collected.source != "prometheus" {
        for n in inv.nodes.keys() {
            if !with_exporter.contains(n.as_str()) {
                collected.failed.push(FailedNode {
                    node: n.clone(),
                    exporter: None,
                    reason: "no-exporter".into(),
                    message: "no dcgm-exporter pod on this GPU node (either label scheme)".into(),
                });
            }
        }
    } else {
        for n in inv.nodes.keys() {
            if !collected.snapshots.contains_key(n) {
                collected.failed.push(FailedNode {
                    node: n.clone(),
                    exporter: None,
                    reason: "no-series".into(),
                    message: "Prometheus has no DCGM series for this node in the window".into(),
                });
            }
        }
    }
    collected.failed.sort_by(|a, b| a.node.cmp(&b.node));

    let mut nodes: BTreeMap<String, NodeAgg> = BTreeMap::new();
    for (node, snaps) in &collected.snapshots {
        let exp = collected
            .exporter_of
            .get(node)
            .map(|(ns, n)| (ns.as_str(), n.as_str()));
        nodes.insert(node.clone(), aggregation::aggregate(node, snaps, exp));
    }

    // Owners of every holder pod, each controller looked up once.
    let mut attributor = Attributor::new(Owners::with_retry(conn.client.clone(), retry.clone()));
    let mut owners: BTreeMap<String, Resolved> = BTreeMap::new();
    for agg in nodes.values() {
        for g in agg.gpus.values() {
            for h in &g.holders {
                if !owners.contains_key(&h.key()) {
                    let pod = inv.pods.get(&h.key()).map(AsRef::as_ref);
                    owners.insert(h.key(), attributor.owner_of(pod).await);
                }
            }
        }
    }

    let mut quality = DataQuality {
        gpu_nodes: inv.nodes.len() as u64,
        exporters: inv.exporters.len() as u64,
        nodes_scraped: nodes.len() as u64,
        nodes_failed: collected.failed.clone(),
        scrapes_attempted: collected.attempted,
        scrapes_succeeded: collected.succeeded,
        skipped_lines: collected.parse.skipped_lines,
        blank_values: collected.parse.blank_values,
        owner_lookup_errors: attributor.errors,
        ..DataQuality::default()
    };
    for e in &inv.exporters {
        *quality.exporter_schemes.entry(e.scheme.to_owned()).or_default() += 1;
        let v = e.version.clone().unwrap_or_else(|| "unknown".into());
        *quality.exporter_versions.entry(v).or_default() += 1;
    }
    let start = end
        .checked_sub(jiff::SignedDuration::from_secs_f64(collected.window_seconds))
        .unwrap_or(end);
    let rep = report::build(Inputs {
        cluster: cluster.clone(),
        window: Window {
            start: start.to_string(),
            end: end.to_string(),
            seconds: collected.window_seconds,
            samples: collected.rounds,
            source: collected.source,
        },
        thresholds: Thresholds {
            idle_util_percent: args.idle_util_percent,
            held_memory_mib: args.held_memory_mib,
        },
        inventory: &inv,
        nodes: &nodes,
        owners: &owners,
        quality,
    });
    let summary = report::summary(&rep);
    let report_json = serde_json::to_string_pretty(&rep)
        .map_err(|e| StepError::failed("cannot serialise the report").with_source(e))?;
    let csv = report::csv(&rep);
    let write = |name: &str, text: &str| {
        ctx.output.write(name, text).map_err(|e| {
            StepError::failed(format!("cannot write output {name}")).with_source(e)
        })
    };
    write("report.json", &report_json)?;
    write("gpus.csv", &csv)?;
    write("summary", &summary)?;

    let nothing = nodes.is_empty() && (!inv.nodes.is_empty() || !inv.exporters.is_empty());
    let workflow = std::env::var(opsteps::env::ARGO_WORKFLOW_NAME).ok();
    let run = upload::run_id(end, workflow.as_deref());
    let objects: Vec<Object> = match &cfg.destination {
        Some(d) if !nothing => vec![
            Object {
                bucket: d.bucket.clone(),
                key: upload::key(d, "gpu-report", &cluster, end, &run, "json"),
                content_type: "application/json",
                body: report_json.into_bytes(),
            },
            Object {
                bucket: d.bucket.clone(),
                key: upload::key(d, "gpu-rows", &cluster, end, &run, "csv"),
                content_type: "text/csv",
                body: csv.into_bytes(),
            },
        ],
        _ => Vec::new(),
    };
    let dry = args.dry_run.is_dry();
    if !objects.is_empty() && !dry {
        let s3 = opsteps::s3::client(args.common.aws.region.as_deref()).await;
        let up = tokio::time::timeout_at(deadline, upload::upload(&s3, &objects, &ctx))
            .await
            .unwrap_or_else(|_| {
                Err(StepError::transient(
                    "deadline (--timeout) reached during the upload",
                ))
            });
        up?;
    }
    let uploaded: Vec<_> = objects
        .iter()
        .map(|o| json!({"bucket": o.bucket, "key": o.key}))
        .collect();
    write(
        "s3-keys",
        &objects.iter().map(|o| format!("s3://{}/{}", o.bucket, o.key)).collect::<Vec<_>>().join("\n"),
    )?;
    let result = json!({
        "schemaVersion": rep.schema_version,
        "cluster": rep.cluster,
        "window": rep.window,
        "totals": rep.totals,
        "owners": rep.owners.iter().take(50).collect::<Vec<_>>(),
        "namespaces": rep.namespaces.iter().take(50).collect::<Vec<_>>(),
        "health": rep.health,
        "allocation": rep.allocation,
        "dataQuality": rep.data_quality,
        "dryRun": args.dry_run,
        "uploaded": if dry { Vec::new() } else { uploaded.clone() },
        "wouldUpload": if dry { uploaded } else { Vec::new() },
        "apiRequests": attributor.requests(),
        "elapsedSeconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "summary": summary,
    });
    if nothing {
        return Ok(Report {
            status: ExitStatus::Failed,
            summary: format!("nothing could be scraped: {summary}; nothing was uploaded"),
            result,
        });
    }
    Ok(Report::done(summary, result))
}

/// How long one round of scrapes may take at most (for callers that size deadlines).
#[must_use]
pub fn round_budget(scrape_timeout: Duration, exporters: usize, concurrency: usize) -> Duration {
    let waves = exporters.div_ceil(concurrency.max(1)).max(1) as u32;
    scrape_timeout * waves
}
