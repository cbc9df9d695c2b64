//! One run, in order: flags → connect → permissions → discovery → collection (scrapes or
//! Prometheus) → aggregation → owners → report → local outputs → upload.
//!
//! Exit codes: 0 with any data (partial data is reported in the data-quality block), 1 when
//! GPU nodes or exporters exist but nothing could be scraped (nothing is uploaded), 2 for bad
//! input (nothing sent), 3 for transient failures (API, Prometheus, S3, SIGTERM, the
//! deadline); nothing is uploaded after SIGTERM.

use opsteps::exit::{ExitStatus, StepError};
use opsteps::owners::Owners;
use opsteps::retry::RetryPolicy;
use opsteps::step::{Context, Report};
use serde_json::json;
use std::collections::BTreeMap;
use tokio::time::Instant;

use crate::aggregation::{self, NodeAgg};
use crate::args::{Args, Config};
use crate::attribution::{Attributor, Resolved};
use crate::discovery::{self, Inventory};
use crate::report::{self, DataQuality, FailedNode, Inputs, Window};
use crate::sample::ParseStats;
use crate::scrape::Scraper;
use crate::states::Thresholds;
use crate::upload::{self, Object};

/// What collection produced, whatever the source.
struct Collected {
    /// Node → aggregate (nodes with data only).
    nodes: BTreeMap<String, NodeAgg>,
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
        nodes: BTreeMap::new(),
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
        c.attempted += u64::from(r.scraped) + r.failures.len() as u64;
        c.succeeded += u64::from(r.scraped);
        c.parse.add(r.parse);
        if r.scraped == 0 {
            let (kind, msg) = r.failures.last().map_or(
                (
                    "not-scraped",
                    "interrupted before the first scrape".to_owned(),
                ),
                |f| (f.1, f.2.clone()),
            );
            c.failed.push(FailedNode {
                node,
                exporter: Some(format!("{}/{}", e.namespace, e.name)),
                reason: kind.to_owned(),
                message: msg,
            });
        } else {
            c.nodes.insert(node, r.agg);
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
        StepError::transient("cannot read the window from --prometheus-url; nothing was uploaded")
            .with_source(e)
    })?;
    let rounds = snapshots.values().map(Vec::len).max().unwrap_or(0) as u32;
    Ok(Collected {
        succeeded: queries,
        attempted: queries,
        nodes: snapshots
            .iter()
            .map(|(n, snaps)| (n.clone(), aggregation::aggregate(n, snaps, None)))
            .collect(),
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

    mark_missing(&inv, &mut collected);

    let nodes = std::mem::take(&mut collected.nodes);

    let mut attributor = Attributor::new(Owners::with_retry(conn.client.clone(), retry.clone()));
    let owners = resolve_owners(&nodes, &inv, &mut attributor).await;
    let quality = quality(&inv, &collected, nodes.len(), attributor.errors);
    let start = end
        .checked_sub(jiff::SignedDuration::from_secs_f64(
            collected.window_seconds,
        ))
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
    let nothing = nodes.is_empty() && (!inv.nodes.is_empty() || !inv.exporters.is_empty());
    finish(
        &args,
        &cfg,
        &ctx,
        &rep,
        nothing,
        deadline,
        started,
        attributor.requests(),
    )
    .await
}

/// Writes the outputs, uploads (unless nothing was scraped or this is a dry run) and builds
/// the step's result.
#[allow(clippy::too_many_arguments)]
async fn finish(
    args: &Args,
    cfg: &Config,
    ctx: &Context,
    rep: &report::Report,
    nothing: bool,
    deadline: Instant,
    started: Instant,
    api_requests: u64,
) -> Result<Report, StepError> {
    let end: jiff::Timestamp = rep.window.end.parse().map_err(|e| {
        StepError::failed("the report's window end is not a timestamp").with_source(e)
    })?;
    let cluster = rep.cluster.clone();
    let summary = report::summary(rep);
    let report_json = serde_json::to_string_pretty(rep)
        .map_err(|e| StepError::failed("cannot serialise the report").with_source(e))?;
    let csv = crate::csv::render(rep);
    let write = |name: &str, text: &str| {
        ctx.output
            .write(name, text)
            .map_err(|e| StepError::failed(format!("cannot write output {name}")).with_source(e))
    };
    write("report.json", &report_json)?;
    write("gpus.csv", &csv)?;
    write("summary", &summary)?;
    // A bare number for Argo's metrics.
    write("idle-held-count", &format!("{}\n", rep.totals.idle_held))?;

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
        let up = tokio::time::timeout_at(deadline, upload::upload(&s3, &objects, ctx))
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
        &objects
            .iter()
            .map(|o| format!("s3://{}/{}", o.bucket, o.key))
            .collect::<Vec<_>>()
            .join("\n"),
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
        "apiRequests": api_requests,
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

/// GPU nodes without data are reported, never silently missing: without an exporter pod
/// (scrapes), or without series (Prometheus).
fn mark_missing(inv: &Inventory, c: &mut Collected) {
    for n in inv.nodes.keys() {
        let missing = if c.source == "prometheus" {
            (!c.nodes.contains_key(n)).then_some((
                "no-series",
                "Prometheus has no DCGM series for this node in the window",
            ))
        } else {
            (!inv.exporters.iter().any(|e| e.node.as_deref() == Some(n))).then_some((
                "no-exporter",
                "no dcgm-exporter pod on this GPU node (either label scheme)",
            ))
        };
        if let Some((reason, message)) = missing {
            c.failed.push(FailedNode {
                node: n.clone(),
                exporter: None,
                reason: reason.into(),
                message: message.into(),
            });
        }
    }
    c.failed.sort_by(|a, b| a.node.cmp(&b.node));
}

/// Owners of every holder pod, each controller looked up once.
async fn resolve_owners(
    nodes: &BTreeMap<String, NodeAgg>,
    inv: &Inventory,
    attributor: &mut Attributor,
) -> BTreeMap<String, Resolved> {
    let mut owners: BTreeMap<String, Resolved> = BTreeMap::new();
    for agg in nodes.values() {
        for g in agg.gpus.values() {
            for h in &g.holders {
                if let std::collections::btree_map::Entry::Vacant(slot) = owners.entry(h.key()) {
                    let pod = inv.pods.get(&h.key()).map(AsRef::as_ref);
                    slot.insert(attributor.owner_of(pod).await);
                }
            }
        }
    }
    owners
}

/// The data-quality counts known before the report is built.
fn quality(inv: &Inventory, c: &Collected, scraped: usize, owner_errors: u64) -> DataQuality {
    let mut q = DataQuality {
        gpu_nodes: inv.nodes.len() as u64,
        exporters: inv.exporters.len() as u64,
        nodes_scraped: scraped as u64,
        nodes_failed: c.failed.clone(),
        scrapes_attempted: c.attempted,
        scrapes_succeeded: c.succeeded,
        skipped_lines: c.parse.skipped_lines,
        blank_values: c.parse.blank_values,
        owner_lookup_errors: owner_errors,
        ..DataQuality::default()
    };
    for e in &inv.exporters {
        *q.exporter_schemes.entry(e.scheme.to_owned()).or_default() += 1;
        let v = e.version.clone().unwrap_or_else(|| "unknown".into());
        *q.exporter_versions.entry(v).or_default() += 1;
    }
    q
}
