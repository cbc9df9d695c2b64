//! `verify-cluster`: Check cluster health and upgrade readiness; report as JSON and Markdown.
//!
//! The gate of every pipeline: before an upgrade (is it safe?), after each disruptive step
//! (did it work?), before a blue/green cut-over (is green ready?), and daily (what needs
//! attention?). One run reads the cluster once ([`inventory`]: paged, concurrent lists plus the
//! EKS and EC2 APIs), runs the profile's checks ([`registry`], [`checks`]) on that snapshot, and
//! reports every finding with its check id, severity, objects and remediation ([`report`],
//! [`markdown`]). It never sends a mutating request.

pub mod args;
pub mod aws;
pub mod checks;
pub mod env;
pub mod fetch;
pub mod finding;
pub mod helm;
pub mod inventory;
pub mod markdown;
pub mod rbac;
pub mod registry;
pub mod report;
pub mod version;

use std::collections::BTreeMap;

use opsteps::exit::{ExitStatus, StepError};
use opsteps::step::{Context, Report};

pub use args::{Args, Config};

use crate::aws::{AwsClients, EksData};
use crate::finding::CheckStatus;
use crate::inventory::{Inventory, ListOpts, Source, UnavailableKind};
use crate::report::{CheckResult, Document};

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "verify-cluster";

/// Runs the step: validates the flags (exit 2 before any request), connects, then [`verify`].
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    let cfg = Config::from_args(&args)?;
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let aws = match &cfg.eks_name {
        Some(name) => {
            Some(AwsClients::from_env(args.common.aws.region.as_deref(), name.clone()).await)
        }
        None => None,
    };
    verify(&cfg, &conn.client, aws.as_ref(), &ctx).await
}

/// Reads what the selected checks need, runs them, writes `report.json`, `report.md` and
/// `summary` to the output directory, and returns the result: exit 0 when no check fails, 1
/// when one does (at or above --fail-on), 3 when none fails but one could not read its
/// sources for a transient reason.
#[tracing::instrument(skip_all, fields(profile = ?cfg.profile, checks = cfg.checks.len()), err)]
pub async fn verify(
    cfg: &Config,
    client: &kube::Client,
    aws: Option<&AwsClients>,
    ctx: &Context,
) -> Result<Report, StepError> {
    let needs = cfg.sources();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let version = inventory::version(client).await;
    let current = version.as_ref().ok().map(|v| v.minor);
    let target = match cfg.profile {
        registry::Profile::PreUpgrade => cfg.target.or(current.map(version::Minor::next)),
        _ => None,
    };
    let minors: Vec<version::Minor> = current.into_iter().chain(target).collect();
    let opts = ListOpts {
        page_size: cfg.page_size,
        deadline,
        shutdown: ctx.shutdown.clone(),
    };
    let eks = async {
        match aws {
            Some(a) => aws::load(a, &needs, &minors, target).await,
            None => EksData::not_configured(),
        }
    };
    let (kube, eks) = tokio::join!(
        Box::pin(inventory::load_kube(client, &needs, &opts)),
        Box::pin(eks)
    );
    let helm_index = load_indexes(cfg, deadline).await;
    let inv = Inventory {
        version,
        nodes: kube.nodes,
        pods: kube.pods,
        deployments: kube.deployments,
        statefulsets: kube.statefulsets,
        daemonsets: kube.daemonsets,
        pdbs: kube.pdbs,
        hpas: kube.hpas,
        rbac: kube.rbac,
        helm: kube.helm,
        metrics: kube.metrics,
        api_usage: kube.api_usage,
        eks,
        helm_index,
    };
    let total = cfg.checks.len() as u64 + 1;
    ctx.output.progress(1, total);
    let (results, findings, transient) = run_checks(cfg, &inv, target, ctx);
    let mut doc = Document {
        schema_version: report::SCHEMA_VERSION,
        profile: cfg.profile,
        generated_at: cfg.now.to_string(),
        server_version: inv.version.as_ref().ok().map(|v| v.git_version.clone()),
        eks_cluster: aws.map(|a| a.cluster.clone()),
        target_kubernetes: target,
        expect_kubernetes: cfg.expect,
        fail_on: cfg.fail_on,
        summary: report::Summary::default(),
        checks: results,
        findings,
        findings_omitted: 0,
        inventory: inv.counts(),
    };
    doc.finish();
    let line = doc.summary_line();
    write_outputs(ctx, &doc, &line)?;
    let status = match doc.summary.result {
        "error" if transient => ExitStatus::Transient,
        "fail" | "error" => ExitStatus::Failed,
        _ => ExitStatus::Done,
    };
    let result = serde_json::to_value(doc.for_stdout())
        .map_err(|e| StepError::failed("cannot serialise the report").with_source(e))?;
    Ok(Report {
        status,
        summary: line,
        result,
    })
}

/// Runs every selected check whose sources were read; the others are `skipped` (forbidden,
/// not configured) or `error`. Returns the results, the findings, and whether a source failed
/// transiently.
fn run_checks(
    cfg: &Config,
    inv: &Inventory,
    target: Option<version::Minor>,
    ctx: &Context,
) -> (Vec<CheckResult>, Vec<finding::Finding>, bool) {
    let total = cfg.checks.len() as u64 + 1;
    let cx = checks::Ctx { inv, cfg, target };
    let mut results = Vec::new();
    let mut findings = Vec::new();
    let mut transient = false;
    for (i, c) in cfg.checks.iter().enumerate() {
        let blocked = c
            .needs
            .iter()
            .find_map(|s| inv.status(*s).err().map(|u| (*s, u)));
        let (status, reason, n) = if let Some((s, u)) = blocked {
            let status = match u.kind {
                UnavailableKind::Forbidden | UnavailableKind::NotConfigured => CheckStatus::Skipped,
                UnavailableKind::Transient => {
                    transient = true;
                    CheckStatus::Error
                }
                UnavailableKind::Failed => CheckStatus::Error,
            };
            tracing::warn!(check = c.id, source = s.name(), reason = %u.message, "check not run");
            (status, Some(format!("{}: {}", s.name(), u.message)), 0)
        } else {
            let found = c.findings(&cx);
            let status = CheckStatus::from_findings(&found);
            let n = found.len();
            tracing::info!(
                check = c.id,
                status = status.as_str(),
                findings = n,
                "check done"
            );
            findings.extend(found);
            (status, None, n)
        };
        results.push(CheckResult {
            id: c.id,
            family: c.family(),
            title: c.title,
            status,
            findings: n,
            reason,
        });
        ctx.output.progress(i as u64 + 2, total);
    }
    (results, findings, transient)
}

async fn load_indexes(
    cfg: &Config,
    deadline: tokio::time::Instant,
) -> inventory::Loaded<BTreeMap<String, inventory::ChartIndex>> {
    if !cfg.sources().contains(&Source::HelmIndex) {
        return Err(inventory::Unavailable::new(
            UnavailableKind::NotConfigured,
            "no --helm-index given",
        ));
    }
    let mut out = BTreeMap::new();
    for (name, source) in &cfg.helm_indexes {
        let idx = match source {
            args::IndexSource::File(path) => helm::read_index(path),
            args::IndexSource::Url(url) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match fetch::get(url, left).await {
                    Ok(text) => helm::parse_index(&text, url),
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(|m| inventory::Unavailable::new(UnavailableKind::Failed, m))?;
        out.insert(name.clone(), idx);
    }
    Ok(out)
}

fn write_outputs(ctx: &Context, doc: &Document, line: &str) -> Result<(), StepError> {
    let fail = |e: opsteps::output::OutputError| {
        StepError::failed("cannot write the report").with_source(e)
    };
    ctx.output.write_json("report.json", doc).map_err(fail)?;
    ctx.output
        .write("report.md", &markdown::render(doc))
        .map_err(fail)?;
    ctx.output.write("summary", line).map_err(fail)?;
    Ok(())
}
