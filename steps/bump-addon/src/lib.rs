//! `bump-addon`: move EKS managed add-ons to a compatible version and wait until they are
//! healthy, or (`--report-only`) report how far they drifted.
//!
//! Runs after a control-plane upgrade (vpc-cni, kube-proxy, coredns, aws-ebs-csi-driver, ...)
//! and weekly as a drift report. The modules: [`args`] (flags), [`versions`] (selection and
//! vpc-cni's one-minor steps), [`plan`] (everything checked before anything is sent),
//! [`schema`] (configuration values against the version's JSON schema), [`api`] (EKS calls
//! with retries), [`bump`] (one update at a time, attaching to running ones), [`wait`] (update,
//! health, rollout), [`report`] and [`drift`] (results and Markdown).

use std::fmt::Write as _;
pub mod api;
pub mod args;
pub mod bump;
pub mod drift;
pub mod events;
pub mod plan;
pub mod report;
pub mod schema;
pub mod versions;
pub mod wait;

use opsteps::exit::StepError;
use opsteps::step::{Context, Report};
use serde_json::json;
use tokio::time::Instant;

pub use args::Args;

/// The step's name: binary, image, audit actor.
pub const STEP: &str = "bump-addon";

/// Runs the step.
pub async fn run(args: Args, ctx: Context) -> Result<Report, StepError> {
    let req = args.request()?;
    let deadline = Instant::now() + args.timeout.0;
    let Some(cluster) = args.common.cluster.eks_cluster.clone() else {
        return Err(StepError::bad_input(
            "bump-addon acts on EKS add-ons: give --eks-cluster NAME and --region",
        ));
    };
    let conn = opsteps::connect::connect(&args.common.cluster, &args.common.aws).await?;
    let sdk = opsteps::aws::sdk_config(args.common.aws.region.as_deref()).await;
    let eks = api::Eks::new(&sdk, &cluster, api::policy(&ctx.shutdown)).with_deadline(deadline);
    let described =
        opsteps::eks::describe_cluster(&aws_sdk_eks::Client::new(&sdk), &cluster).await?;
    let kubernetes = described
        .version
        .as_deref()
        .and_then(versions::kube_minor)
        .map(|m| format!("1.{m}"))
        .ok_or_else(|| {
            StepError::failed(format!(
                "DescribeCluster {cluster} gave no Kubernetes version"
            ))
        })?;
    let next = args
        .target_kubernetes
        .clone()
        .unwrap_or_else(|| format!("1.{}", versions::kube_minor(&kubernetes).unwrap_or(0) + 1));

    if args.report_only {
        return report_only(&eks, &ctx, &cluster, &kubernetes, &next).await;
    }

    let plans = plan::plan(
        &eks,
        &req,
        &kubernetes,
        args.target_kubernetes.as_deref(),
        args.allow_downgrade,
    )
    .await?;
    let total = plans.len() as u64;
    ctx.output.progress(0, total);
    let dry = args.dry_run.is_dry();
    let mut results = Vec::new();
    if dry {
        for p in &plans {
            tracing::info!(addon = %p.name, from = %p.from, to = %p.to, steps = ?p.steps, action = ?p.action, "plan");
            results.push(report::AddonResult::planned(p));
        }
    } else {
        let run = bump::Run {
            eks: &eks,
            kube: &conn.client,
            cluster: &cluster,
            wait: wait::Settings {
                deadline,
                poll: req.poll,
                healthy_reads: args.healthy_reads,
                degraded_grace: args.degraded_grace.0,
                shutdown: ctx.shutdown.clone(),
            },
            params: api::UpdateParams {
                resolve_conflicts: args.resolve_conflicts.wire(),
                configuration_values: req.configuration.as_ref().map(|(t, _)| t.clone()),
                role: args.service_account_role_arn.clone(),
                pod_identity: req.pod_identity.clone(),
                token: None,
            },
            workflow_uid: opsteps::audit::Actor::from_env(STEP).workflow_uid,
            ctx: &ctx,
        };
        results = run.all(&plans).await;
    }
    let status = report::exit(&results);
    let md = report::markdown(&cluster, &kubernetes, &results);
    let bumped = results
        .iter()
        .filter(|r| r.status == report::Status::Updated)
        .count();
    write_outputs(&ctx, &json!(results), &md, bumped)?;
    let summary = summary(&results, dry);
    Ok(Report {
        status,
        summary,
        result: json!({
            "cluster": cluster,
            "kubernetesVersion": kubernetes,
            "dryRun": dry,
            "addons": results,
        }),
    })
}

/// `--report-only`: the drift report, nothing mutating sent.
async fn report_only(
    eks: &api::Eks,
    ctx: &Context,
    cluster: &str,
    kubernetes: &str,
    next: &str,
) -> Result<Report, StepError> {
    let now = jiff::Timestamp::now().as_second();
    let rows = drift::report(eks, kubernetes, next, now).await?;
    let md = drift::markdown(cluster, kubernetes, next, &rows);
    write_outputs(ctx, &json!(rows), &md, 0)?;
    ctx.output.progress(rows.len() as u64, rows.len() as u64);
    let behind = rows.iter().filter(|r| r.versions_behind > 0).count();
    let blocking = rows.iter().filter(|r| !r.compatible_with_next).count();
    Ok(Report::done(
        format!(
            "{} add-ons: {behind} behind, {blocking} not offered for {next}",
            rows.len()
        ),
        json!({"cluster": cluster, "kubernetesVersion": kubernetes, "nextKubernetesVersion": next, "reportOnly": true, "addons": rows}),
    ))
}

fn summary(results: &[report::AddonResult], dry: bool) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            let mut s = format!("{} {} → {} {:?}", r.name, r.from, r.to, r.status);
            if let Some(m) = &r.message {
                let _ = write!(s, " ({m})");
            }
            if let Some(i) = r.health_issues.first().or(r.errors.first())
                && r.message.as_deref().is_none_or(|m| !m.contains(i.as_str()))
            {
                let _ = write!(s, " [{i}]");
            }
            s
        })
        .collect();
    format!("{}{}", if dry { "dry run: " } else { "" }, parts.join("; "))
}

/// `bumped-count` (add-ons moved and healthy) is a bare number for Argo's metrics.
fn write_outputs(
    ctx: &Context,
    addons: &serde_json::Value,
    md: &str,
    bumped: usize,
) -> Result<(), StepError> {
    ctx.output
        .write_json("addons", addons)
        .and_then(|()| ctx.output.write("report-md", md))
        .and_then(|()| ctx.output.write("bumped-count", &format!("{bumped}\n")))
        .map_err(|e| StepError::failed("cannot write the outputs").with_source(e))
}
