//! A Prometheus HTTP API over the sandbox's exporters, for collectors that read a window from
//! Prometheus or Amazon Managed Prometheus instead of scraping: `GET /api/v1/query` and
//! `/api/v1/query_range` with a bare metric name as the query, answering the standard
//! `{status, data: {resultType, result}}` JSON with string values.
//!
//! Each evaluation time renders every serving exporter's body at that virtual time (values of
//! the collect interval it falls in; GPU holders as they are now), and attaches the target
//! labels a ServiceMonitor adds, with the two `honorLabels` behaviours of gpu.md §5: the GPU
//! Operator's (`honorLabels: true`: series keep their labels, so an unallocated GPU carries
//! the exporter's own `pod`/`namespace`/`container`) and the Helm chart's (`honorLabels:
//! false`: the workload's labels become `exported_pod`/`exported_namespace`/
//! `exported_container`). Exporters that are `down` or `hang` have no series (their scrapes
//! fail). Not served: PromQL beyond a metric name, POST, `/series`, `/labels`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::config::GpuConfig;
use super::{is_exporter, render};
use crate::cluster::Shared;
use crate::resources::well_known;

/// Prometheus' limit on points per series in a range query.
const MAX_POINTS: f64 = 11_000.0;

/// A running Prometheus API; stops on drop.
pub struct PromServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl PromServer {
    /// `http://127.0.0.1:PORT`, for `--prometheus-url`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Shared,
    config: Arc<GpuConfig>,
}

fn error(status: StatusCode, kind: &str, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

fn time(v: Option<&String>, default: Timestamp) -> Result<Timestamp, String> {
    let Some(v) = v else { return Ok(default) };
    if let Ok(secs) = v.parse::<f64>() {
        return Timestamp::from_millisecond((secs * 1000.0) as i64).map_err(|e| e.to_string());
    }
    v.parse::<Timestamp>()
        .map_err(|_| format!("cannot parse {v:?} to a valid timestamp"))
}

fn step_seconds(v: &str) -> Option<f64> {
    if let Ok(s) = v.parse::<f64>() {
        return Some(s);
    }
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(
        n * match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        },
    )
}

fn valid_name(q: &str) -> bool {
    let mut chars = q.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// One exporter as Prometheus scrapes it.
struct Target {
    namespace: String,
    pod: String,
    ip: String,
    honor_labels: bool,
    view: render::NodeView,
}

fn targets(ctx: &Ctx) -> Vec<Target> {
    let c = ctx.shared.lock();
    c.store
        .list(well_known::pods(), None)
        .filter(|p| is_exporter(p) && crate::podutil::phase(p) == "Running")
        .filter_map(|p| {
            let node = crate::podutil::node_name(p)?;
            let labels = c
                .store
                .get(well_known::nodes(), "", node)
                .map(|n| crate::labels::labels(&n).clone())
                .unwrap_or_default();
            if ctx.config.exporter_fault(node, &labels).is_some() {
                return None;
            }
            let (ns, name) = crate::podutil::ns_name(p);
            let honor = crate::labels::labels(p).get("app").and_then(Value::as_str)
                == Some("nvidia-dcgm-exporter");
            Some(Target {
                namespace: ns.to_owned(),
                pod: name.to_owned(),
                ip: p["status"]["podIP"].as_str().unwrap_or("").to_owned(),
                honor_labels: honor,
                view: render::node_view(&c, node)?,
            })
        })
        .collect()
}

/// `name{a="b",...} value` lines of our own renderer (which never escapes or quotes a `"`).
fn samples<'a>(text: &'a str, name: &str) -> Vec<(BTreeMap<String, String>, &'a str)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",") {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
            }
        }
        out.push((map, value));
    }
    out
}

/// The target labels a ServiceMonitor adds, honouring or not the series' own.
fn with_target(mut labels: BTreeMap<String, String>, t: &Target) -> BTreeMap<String, String> {
    let (job, container, endpoint) = if t.honor_labels {
        (
            "nvidia-dcgm-exporter",
            "nvidia-dcgm-exporter",
            "gpu-metrics",
        )
    } else {
        ("dcgm-exporter", "exporter", "metrics")
    };
    let instance = format!("{}:9400", t.ip);
    let target: [(&str, &str); 7] = [
        ("container", container),
        ("endpoint", endpoint),
        ("instance", instance.as_str()),
        ("job", job),
        ("namespace", t.namespace.as_str()),
        ("pod", t.pod.as_str()),
        ("service", job),
    ];
    for (k, v) in target {
        let own = labels.get(k).filter(|x| !x.is_empty()).cloned();
        match own {
            Some(_) if t.honor_labels => {}
            Some(o) => {
                labels.insert(format!("exported_{k}"), o);
                labels.insert(k.to_owned(), v.to_owned());
            }
            None => {
                labels.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    labels.retain(|_, v| !v.is_empty());
    labels
}

/// One series: its labels and its `(time, value)` points.
type Series = (BTreeMap<String, String>, Vec<(f64, String)>);

/// Series of `name` at each of `times`.
fn evaluate(ctx: &Ctx, name: &str, times: &[Timestamp]) -> Vec<Series> {
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, String)>> = BTreeMap::new();
    for t in targets(ctx) {
        for at in times {
            let text = render::render(&t.view, &ctx.config, *at);
            for (labels, value) in samples(&text, name) {
                let mut labels = with_target(labels, &t);
                labels.insert("__name__".into(), name.to_owned());
                let v: f64 = value.parse().unwrap_or(f64::NAN);
                series
                    .entry(labels)
                    .or_default()
                    .push((at.as_millisecond() as f64 / 1000.0, format!("{v}")));
            }
        }
    }
    series.into_iter().collect()
}

async fn query(State(ctx): State<Ctx>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let name = q.get("query").map_or("", String::as_str);
    if !valid_name(name) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "only a bare metric name is served",
        );
    }
    let now = ctx.shared.lock().clock.now();
    let at = match time(q.get("time"), now) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", &e),
    };
    let result: Vec<Value> = evaluate(&ctx, name, &[at])
        .into_iter()
        .map(|(m, pts)| json!({"metric": m, "value": [pts[0].0, pts[0].1]}))
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}

async fn query_range(
    State(ctx): State<Ctx>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let name = q.get("query").map_or("", String::as_str);
    if !valid_name(name) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "only a bare metric name is served",
        );
    }
    let now = ctx.shared.lock().clock.now();
    let (start, end) = match (time(q.get("start"), now), time(q.get("end"), now)) {
        (Ok(s), Ok(e)) if s <= e => (s, e),
        (Ok(_), Ok(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                "end timestamp must not be before start time",
            );
        }
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_data", &e),
    };
    let Some(step) = q
        .get("step")
        .and_then(|s| step_seconds(s))
        .filter(|s| *s > 0.0)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        );
    };
    let span = (end.as_millisecond() - start.as_millisecond()) as f64 / 1000.0;
    if span / step > MAX_POINTS {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let mut times = Vec::new();
    let mut ms = start.as_millisecond();
    while ms <= end.as_millisecond() {
        if let Ok(t) = Timestamp::from_millisecond(ms) {
            times.push(t);
        }
        ms += (step * 1000.0) as i64;
    }
    let result: Vec<Value> = evaluate(&ctx, name, &times)
        .into_iter()
        .map(|(m, pts)| {
            let values: Vec<Value> = pts.into_iter().map(|(t, v)| json!([t, v])).collect();
            json!({"metric": m, "values": values})
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        .into_response()
}

/// Serves the API on a free loopback port until dropped.
pub async fn start(shared: Shared, config: GpuConfig) -> anyhow::Result<PromServer> {
    let ctx = Ctx {
        shared,
        config: Arc::new(config),
    };
    let app = Router::new()
        .route("/api/v1/query", get(query))
        .route("/api/v1/query_range", get(query_range))
        .with_state(ctx);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(PromServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honor_labels_or_exported_labels() {
        let t = |honor| Target {
            namespace: "gpu-operator".into(),
            pod: "exp-1".into(),
            ip: "10.0.0.1".into(),
            honor_labels: honor,
            view: render::NodeView {
                node: "n".into(),
                labels: serde_json::Map::new(),
                gpu_count: 0,
                created: None,
                holders: Vec::new(),
            },
        };
        let held: BTreeMap<String, String> =
            [("pod", "w-1"), ("namespace", "ml"), ("container", "c")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let h = with_target(held.clone(), &t(true));
        assert_eq!(h["pod"], "w-1");
        assert!(!h.contains_key("exported_pod"));
        let f = with_target(held, &t(false));
        assert_eq!(f["exported_pod"], "w-1");
        assert_eq!(f["pod"], "exp-1");
        let idle = with_target(BTreeMap::new(), &t(true));
        assert_eq!(idle["pod"], "exp-1");
        assert_eq!(idle["namespace"], "gpu-operator");
        assert!(step_seconds("30s") == Some(30.0) && step_seconds("1m") == Some(60.0));
        assert!(valid_name("DCGM_FI_DEV_GPU_UTIL") && !valid_name("rate(x[5m])"));
    }
}
