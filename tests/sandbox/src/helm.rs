//! Helm 3 release Secrets for scenarios (`helmReleases`), written exactly as Helm's Secret
//! storage driver writes them: name `sh.helm.release.v1.<name>.v<revision>`, type
//! `helm.sh/release.v1`, labels `owner=helm`, `name`, `status`, `version` (the revision) and
//! `createdAt` (pending releases, which Helm created) or `modifiedAt` (releases Helm updated
//! afterwards), and `data.release` = Helm's string (base64 of the gzipped release JSON), which
//! the Secret's `data` encodes in base64 once more on the wire. No helm binary is involved.

use std::io::{Read as _, Write as _};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::cluster::Cluster;
use crate::controllers::util::parse_duration;

/// The statuses Helm 3 writes (`helm.sh/helm/v3/pkg/release.Status`).
pub const STATUSES: &[&str] = &[
    "unknown",
    "deployed",
    "uninstalled",
    "superseded",
    "failed",
    "uninstalling",
    "pending-install",
    "pending-upgrade",
    "pending-rollback",
];

/// One release: its newest revision, and the history before it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmReleaseSpec {
    /// Release name.
    pub name: String,
    /// Namespace of the release and its Secrets (default `default`; created when missing).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Chart name.
    pub chart: String,
    /// Chart version of the newest revision.
    pub version: String,
    /// Chart `appVersion`.
    #[serde(default)]
    pub app_version: Option<String>,
    /// Status of the newest revision (default `deployed`).
    #[serde(default)]
    pub status: Option<String>,
    /// Newest revision number (default 1).
    #[serde(default)]
    pub revision: Option<u32>,
    /// When the newest revision was deployed: an age (Go duration, default `1h`) or an RFC 3339
    /// timestamp.
    #[serde(default)]
    pub updated: Option<String>,
    /// `info.description` (default: Helm's wording for the status).
    #[serde(default)]
    pub description: Option<String>,
    /// `info.notes`.
    #[serde(default)]
    pub notes: Option<String>,
    /// `config`: the user-supplied values.
    #[serde(default)]
    pub values: Option<Value>,
    /// `manifest` (default: a Deployment named after the release).
    #[serde(default)]
    pub manifest: Option<String>,
    /// `chart.metadata.apiVersion` (default `v2`).
    #[serde(default)]
    pub chart_api_version: Option<String>,
    /// `chart.metadata.kubeVersion`.
    #[serde(default)]
    pub kube_version: Option<String>,
    /// `chart.metadata.deprecated`.
    #[serde(default)]
    pub deprecated: bool,
    /// Older revisions. Absent: revisions `max(1, revision-9)` .. `revision-1` (Helm's default
    /// `--history-max 10`) with the same chart, a day apart, `superseded`, except that the one
    /// before a `failed` or `pending-*` newest revision is still `deployed`, as Helm leaves it.
    #[serde(default)]
    pub history: Option<Vec<HelmRevisionSpec>>,
}

/// An older revision of a release.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmRevisionSpec {
    /// Revision number (below the release's `revision`).
    pub revision: u32,
    /// Chart version (default: the release's).
    #[serde(default)]
    pub version: Option<String>,
    /// Chart `appVersion` (default: the release's).
    #[serde(default)]
    pub app_version: Option<String>,
    /// Status (default `superseded`).
    #[serde(default)]
    pub status: Option<String>,
    /// Age or RFC 3339 timestamp (default: a day per revision before the newest).
    #[serde(default)]
    pub updated: Option<String>,
    /// `info.description`.
    #[serde(default)]
    pub description: Option<String>,
}

/// One revision to write.
struct Rev<'a> {
    revision: u32,
    version: &'a str,
    app_version: Option<&'a str>,
    status: String,
    at: Timestamp,
    description: Option<String>,
}

fn when(
    s: Option<&str>,
    now: Timestamp,
    default: std::time::Duration,
) -> anyhow::Result<Timestamp> {
    let Some(s) = s else {
        return Ok(now - jiff::SignedDuration::try_from(default)?);
    };
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d = parse_duration(s).with_context(|| {
        format!("updated {s:?}: expected an age (Go duration) or an RFC 3339 timestamp")
    })?;
    Ok(now - jiff::SignedDuration::try_from(d)?)
}

fn check_status(s: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        STATUSES.contains(&s),
        "status {s:?}: expected one of {}",
        STATUSES.join(", ")
    );
    Ok(())
}

/// Helm's description of a revision in `status`.
fn default_description(status: &str, revision: u32, name: &str) -> String {
    match status {
        "deployed" | "superseded" if revision == 1 => "Install complete".into(),
        "deployed" | "superseded" => "Upgrade complete".into(),
        "failed" => format!("Upgrade {name:?} failed: context deadline exceeded"),
        "pending-install" => "Initial install underway".into(),
        "pending-upgrade" => "Preparing upgrade".into(),
        "pending-rollback" => format!("Rollback to {}", revision.saturating_sub(1).max(1)),
        "uninstalled" => "Uninstallation complete".into(),
        "uninstalling" => "Deletion in progress (or silently failed)".into(),
        _ => String::new(),
    }
}

/// The revisions of `spec`, oldest first.
fn revisions(spec: &HelmReleaseSpec, now: Timestamp) -> anyhow::Result<Vec<Rev<'_>>> {
    let newest = spec.revision.unwrap_or(1);
    anyhow::ensure!(newest >= 1, "revision must be at least 1");
    let status = spec.status.clone().unwrap_or_else(|| "deployed".into());
    check_status(&status)?;
    let at = when(
        spec.updated.as_deref(),
        now,
        std::time::Duration::from_hours(1),
    )?;
    let day = jiff::SignedDuration::from_hours(24);
    let mut revs = Vec::new();
    if let Some(history) = &spec.history {
        for h in history {
            anyhow::ensure!(
                h.revision >= 1 && h.revision < newest,
                "history revision {}: must be between 1 and {}",
                h.revision,
                newest - 1
            );
            let s = h.status.clone().unwrap_or_else(|| "superseded".into());
            check_status(&s)?;
            let gap = i64::from(newest - h.revision);
            let default_at = at - day * i32::try_from(gap).unwrap_or(i32::MAX);
            let t = match &h.updated {
                Some(u) => when(Some(u), now, std::time::Duration::ZERO)?,
                None => default_at,
            };
            revs.push(Rev {
                revision: h.revision,
                version: h.version.as_deref().unwrap_or(&spec.version),
                app_version: h.app_version.as_deref().or(spec.app_version.as_deref()),
                status: s,
                at: t,
                description: h.description.clone(),
            });
        }
    } else {
        let still_deployed = status == "failed" || status.starts_with("pending-");
        for r in newest.saturating_sub(9).max(1)..newest {
            let s = if still_deployed && r + 1 == newest {
                "deployed"
            } else {
                "superseded"
            };
            revs.push(Rev {
                revision: r,
                version: &spec.version,
                app_version: spec.app_version.as_deref(),
                status: s.into(),
                at: at - day * i32::try_from(newest - r).unwrap_or(i32::MAX),
                description: None,
            });
        }
    }
    revs.sort_by_key(|r| r.revision);
    anyhow::ensure!(
        revs.windows(2).all(|w| w[0].revision != w[1].revision),
        "history lists a revision twice"
    );
    revs.push(Rev {
        revision: newest,
        version: &spec.version,
        app_version: spec.app_version.as_deref(),
        status,
        at,
        description: spec.description.clone(),
    });
    Ok(revs)
}

/// The release JSON Helm stores (`helm.sh/helm/v3/pkg/release.Release`), with Go's field
/// names; zero times are `""` as Helm's time type writes them.
fn release_json(spec: &HelmReleaseSpec, ns: &str, rev: &Rev<'_>, first: Timestamp) -> Value {
    let mut metadata = json!({
        "name": spec.chart,
        "version": rev.version,
        "description": format!("A Helm chart for {}", spec.chart),
        "apiVersion": spec.chart_api_version.as_deref().unwrap_or("v2"),
        "type": "application",
    });
    if let Some(a) = rev.app_version {
        metadata["appVersion"] = json!(a);
    }
    if let Some(k) = &spec.kube_version {
        metadata["kubeVersion"] = json!(k);
    }
    if spec.deprecated {
        metadata["deprecated"] = json!(true);
    }
    let manifest = spec.manifest.clone().unwrap_or_else(|| {
        format!(
            "---\n# Source: {chart}/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/name: {chart}\n    app.kubernetes.io/instance: {name}\n    helm.sh/chart: {chart}-{version}\n",
            chart = spec.chart,
            name = spec.name,
            version = rev.version
        )
    });
    let template =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n";
    let deleted = if rev.status == "uninstalled" {
        json!(rfc3339(rev.at))
    } else {
        json!("")
    };
    let mut info = json!({
        "first_deployed": rfc3339(first),
        "last_deployed": rfc3339(rev.at),
        "deleted": deleted,
        "description": rev.description.clone().unwrap_or_else(|| default_description(&rev.status, rev.revision, &spec.name)),
        "status": rev.status,
    });
    if let Some(n) = &spec.notes {
        info["notes"] = json!(n);
    }
    json!({
        "name": spec.name,
        "info": info,
        "chart": {
            "metadata": metadata,
            "lock": null,
            "templates": [{"name": "templates/deployment.yaml", "data": STANDARD.encode(template)}],
            "values": {"replicaCount": 1},
            "schema": null,
            "files": [],
        },
        "config": spec.values.clone().unwrap_or_else(|| json!({})),
        "manifest": manifest,
        "version": rev.revision,
        "namespace": ns,
    })
}

/// Helm's string for a release: base64 (standard) of the release JSON gzipped at
/// `BestCompression`, what `encodeRelease` returns.
pub fn encode(release: &Value) -> anyhow::Result<String> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&serde_json::to_vec(release)?)?;
    Ok(STANDARD.encode(gz.finish()?))
}

/// The release in Helm's string (as `decodeRelease` reads it: base64, then gunzip when the
/// gzip magic is there, then JSON).
pub fn decode(helm_string: &str) -> anyhow::Result<Value> {
    let raw = STANDARD
        .decode(helm_string.trim())
        .context("release is not base64")?;
    let json = if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .context("release is not valid gzip")?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).context("release is not JSON")
}

/// The Secrets of `spec` (every revision, oldest first), as Helm writes them.
pub fn secrets(spec: &HelmReleaseSpec, now: Timestamp) -> anyhow::Result<Vec<Value>> {
    let ns = spec.namespace.as_deref().unwrap_or("default");
    let revs = revisions(spec, now)?;
    let first = revs.first().map_or(now, |r| r.at);
    revs.iter()
        .map(|rev| {
            let release = release_json(spec, ns, rev, first);
            let helm_string = encode(&release)?;
            let stamp = if rev.status.starts_with("pending-") {
                "createdAt"
            } else {
                "modifiedAt"
            };
            Ok(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": format!("sh.helm.release.v1.{}.v{}", spec.name, rev.revision),
                    "namespace": ns,
                    "creationTimestamp": rfc3339(rev.at),
                    "labels": {
                        "owner": "helm",
                        "name": spec.name,
                        "status": rev.status,
                        "version": rev.revision.to_string(),
                        stamp: rev.at.as_second().to_string(),
                    },
                },
                "type": "helm.sh/release.v1",
                // The Secret's own base64 over Helm's string, as the API carries `data`.
                "data": {"release": STANDARD.encode(helm_string)},
            }))
        })
        .collect()
}

/// Creates the Secrets of every release in `specs` (their namespaces must exist).
pub fn load(cluster: &mut Cluster, specs: &[HelmReleaseSpec]) -> anyhow::Result<()> {
    let now_ts = cluster.clock.now();
    let now = rfc3339(now_ts);
    for spec in specs {
        for secret in
            secrets(spec, now_ts).with_context(|| format!("helmReleases: {}", spec.name))?
        {
            cluster
                .store
                .create(crate::store::res("", "secrets"), secret, &now)
                .map_err(|e| anyhow::anyhow!("helmReleases: {}: {e}", spec.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> HelmReleaseSpec {
        serde_saphyr::from_str(yaml).expect("spec parses")
    }

    #[test]
    fn round_trips_through_helms_encoding() {
        let now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let s = spec(
            "{name: web, chart: nginx, version: 15.1.0, appVersion: 1.25.3, revision: 3, status: failed}",
        );
        let secrets = secrets(&s, now).unwrap();
        assert_eq!(secrets.len(), 3);
        let statuses: Vec<&str> = secrets
            .iter()
            .map(|s| s["metadata"]["labels"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["superseded", "deployed", "failed"]);
        let outer = secrets[2]["data"]["release"].as_str().unwrap();
        let helm_string = String::from_utf8(STANDARD.decode(outer).unwrap()).unwrap();
        assert!(
            STANDARD
                .decode(&helm_string)
                .unwrap()
                .starts_with(&[0x1f, 0x8b, 0x08])
        );
        let r = decode(&helm_string).unwrap();
        assert_eq!(r["version"], 3);
        assert_eq!(r["info"]["status"], "failed");
        assert_eq!(r["chart"]["metadata"]["appVersion"], "1.25.3");
        assert_eq!(r["info"]["first_deployed"], "2026-11-24T09:00:00Z");
    }

    #[test]
    fn refuses_unknown_statuses() {
        let now = Timestamp::UNIX_EPOCH;
        let s = spec("{name: web, chart: nginx, version: 1.0.0, status: broken}");
        let e = secrets(&s, now).unwrap_err().to_string();
        assert!(e.contains("pending-upgrade"), "{e}");
    }
}
