//! The one mutation: two PutObject calls (the JSON report, then the CSV rows) under Hive-style
//! keys, so Athena tables with partitions `cluster`, `date`, `hour` read them:
//!
//! `PREFIX/gpu-report/cluster=NAME/date=YYYY-MM-DD/hour=HH/RUN.json`
//! `PREFIX/gpu-rows/cluster=NAME/date=YYYY-MM-DD/hour=HH/RUN.csv`
//!
//! `RUN` is the Argo workflow name when Argo runs the step (a retry of the same workflow
//! overwrites its own objects instead of adding a second report), else the window's end
//! (`20261126T101500Z`). Each PutObject is atomic in S3 and audited. SIGTERM before the first
//! put uploads nothing; once started, both puts finish (each is short), so a report is never
//! left without its rows.

use opsteps::audit::Target;
use opsteps::exit::StepError;
use opsteps::step::Context;
use tracing::instrument;

use crate::args::Destination;

/// An object to upload.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Object {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Content type.
    #[serde(skip)]
    pub content_type: &'static str,
    /// Body.
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// Characters allowed in a key part; anything else becomes `_` (cluster names are free text).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The run's ID in object names.
#[must_use]
pub fn run_id(end: jiff::Timestamp, workflow: Option<&str>) -> String {
    match workflow.filter(|w| !w.is_empty()) {
        Some(w) => clean(w),
        None => end.strftime("%Y%m%dT%H%M%SZ").to_string(),
    }
}

/// The key of `table` (`gpu-report` or `gpu-rows`) for this run.
#[must_use]
pub fn key(
    dest: &Destination,
    table: &str,
    cluster: &str,
    end: jiff::Timestamp,
    run: &str,
    ext: &str,
) -> String {
    let utc = end.to_zoned(jiff::tz::TimeZone::UTC);
    let path = format!(
        "{table}/cluster={}/date={}/hour={}/{run}.{ext}",
        clean(cluster),
        utc.strftime("%Y-%m-%d"),
        utc.strftime("%H"),
    );
    if dest.prefix.is_empty() {
        path
    } else {
        format!("{}/{path}", dest.prefix)
    }
}

/// Uploads `objects` in order, auditing each PutObject. Refuses to start after SIGTERM.
#[instrument(skip_all, fields(objects = objects.len()), err)]
pub async fn upload(
    client: &aws_sdk_s3::Client,
    objects: &[Object],
    ctx: &Context,
) -> Result<(), StepError> {
    if ctx.shutdown.is_requested() {
        return Err(StepError::transient(
            "interrupted by SIGTERM before the upload; nothing was uploaded",
        ));
    }
    for o in objects {
        let target = Target::namespaced("S3Object", &o.bucket, &o.key);
        ctx.audit.sent("s3:PutObject", &target, false);
        let r = opsteps::s3::put_object(client, &o.bucket, &o.key, o.body.clone(), o.content_type)
            .await;
        match &r {
            Ok(()) => ctx.audit.record("s3:PutObject", target, false, Ok(200)),
            Err(e) => ctx
                .audit
                .record("s3:PutObject", target, false, Err((None, e.chain()))),
        }
        r?;
        tracing::info!(bucket = %o.bucket, key = %o.key, bytes = o.body.len(), "uploaded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_style_keys() {
        let end: jiff::Timestamp = "2026-11-26T09:15:00Z".parse().unwrap();
        let d = Destination {
            bucket: "b".into(),
            prefix: "eks/gpu".into(),
        };
        let run = run_id(end, None);
        assert_eq!(run, "20261126T091500Z");
        assert_eq!(
            key(&d, "gpu-report", "prod eu", end, &run, "json"),
            "eks/gpu/gpu-report/cluster=prod_eu/date=2026-11-26/hour=09/20261126T091500Z.json"
        );
        let bare = Destination {
            bucket: "b".into(),
            prefix: String::new(),
        };
        assert_eq!(
            key(
                &bare,
                "gpu-rows",
                "c",
                end,
                &run_id(end, Some("gpu-stats-29xkq")),
                "csv"
            ),
            "gpu-rows/cluster=c/date=2026-11-26/hour=09/gpu-stats-29xkq.csv"
        );
    }
}
