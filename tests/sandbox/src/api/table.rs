//! Server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), so that
//! `kubectl get` prints what it prints against a real cluster.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Query;
use crate::podutil;
use crate::resources::ResourceInfo;

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
#[must_use]
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(obj: &Value, now: Timestamp) -> String {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(crate::clock::parse)
        .map_or_else(
            || "<unknown>".into(),
            |t| human_duration(now.duration_since(t).as_secs()),
        )
}

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn pod_status(pod: &Value) -> String {
    if podutil::is_terminating(pod) {
        return "Terminating".into();
    }
    let mut reason = pod
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .unwrap_or_else(|| podutil::phase(pod))
        .to_owned();
    for cs in pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
            r.clone_into(&mut reason);
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = t["reason"]
                .as_str()
                .map_or_else(|| format!("ExitCode:{}", t["exitCode"]), str::to_owned);
        }
    }
    reason
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let statuses: Vec<&Value> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let node = podutil::node_name(pod).unwrap_or("<none>");
    let nominated = pod
        .pointer("/status/nominatedNodeName")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let gates = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map_or_else(
            || "<none>".to_owned(),
            |g| {
                let ok = g
                    .iter()
                    .filter(|gate| {
                        podutil::condition_true(pod, gate["conditionType"].as_str().unwrap_or(""))
                    })
                    .count();
                format!("{ok}/{}", g.len())
            },
        );
    vec![
        json!(podutil::ns_name(pod).1),
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts.to_string()),
        json!(age(pod, now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates),
    ]
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status = if podutil::condition_true(node, "Ready") {
        "Ready"
    } else {
        "NotReady"
    }
    .to_owned();
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = crate::labels::labels(node)
        .keys()
        .filter_map(|k| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_owned)
        })
        .collect();
    roles.sort();
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    };
    let addr = |t: &str| {
        node.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .and_then(|x| x["address"].as_str())
            .unwrap_or("<none>")
            .to_owned()
    };
    let info = |k: &str| {
        node.pointer(&format!("/status/nodeInfo/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("<unknown>")
            .to_owned()
    };
    vec![
        json!(podutil::ns_name(node).1),
        json!(status),
        json!(roles),
        json!(age(node, now)),
        json!(info("kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

// Column definitions are data: long, not complex.
#[allow(clippy::too_many_lines)]
fn columns(res: &ResourceInfo) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    match res.key() {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
            col(
                "IP",
                "string",
                1,
                "podIP is an IP address allocated to the pod.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "nodes" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        key => {
            let mut cols = vec![name];
            cols.extend(
                workload_columns(key)
                    .iter()
                    .map(|(n, ty, prio)| col(n, ty, *prio, "")),
            );
            cols.insert(cols.len() - workload_wide_count(key), col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ));
            cols
        }
    }
}

/// Columns besides Name and Age for kinds kubectl users list often (the apiserver's printers),
/// wide (priority 1) columns last.
fn workload_columns(key: &str) -> &'static [(&'static str, &'static str, u8)] {
    match key {
        "namespaces" => &[("Status", "string", 0)],
        "deployments.apps" => &[
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "replicasets.apps" => &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "statefulsets.apps" => &[
            ("Ready", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "daemonsets.apps" => &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "horizontalpodautoscalers.autoscaling" => &[
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "string", 0),
            ("Replicas", "string", 0),
        ],
        "poddisruptionbudgets.policy" => &[
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
        ],
        _ => &[],
    }
}

fn workload_wide_count(key: &str) -> usize {
    workload_columns(key)
        .iter()
        .filter(|(_, _, p)| *p == 1)
        .count()
}

/// Cells for [`workload_columns`], with Age before the wide ones.
// One match arm per kind, mirroring the apiserver's printers: long, not complex.
#[allow(clippy::too_many_lines)]
fn workload_cells(key: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    let int = |p: &str| json!(obj.pointer(p).and_then(Value::as_i64).unwrap_or(0));
    let s = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let containers = || {
        let cs = obj
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array);
        let names: Vec<&str> = cs
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let images: Vec<&str> = cs
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str())
            .collect();
        (json!(names.join(",")), json!(images.join(",")))
    };
    let selector = || {
        json!(
            obj.pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map_or_else(String::new, |m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
        )
    };
    let mut cells = vec![json!(podutil::ns_name(obj).1)];
    match key {
        "namespaces" => cells.push(json!(
            obj.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active")
        )),
        "deployments.apps" => {
            cells.push(json!(format!(
                "{}/{}",
                s("/status/readyReplicas"),
                s("/spec/replicas")
            )));
            cells.push(int("/status/updatedReplicas"));
            cells.push(int("/status/availableReplicas"));
        }
        "replicasets.apps" => {
            cells.push(int("/spec/replicas"));
            cells.push(int("/status/replicas"));
            cells.push(int("/status/readyReplicas"));
        }
        "statefulsets.apps" => cells.push(json!(format!(
            "{}/{}",
            s("/status/readyReplicas"),
            s("/spec/replicas")
        ))),
        "daemonsets.apps" => {
            for p in [
                "/status/desiredNumberScheduled",
                "/status/currentNumberScheduled",
                "/status/numberReady",
                "/status/updatedNumberScheduled",
                "/status/numberAvailable",
            ] {
                cells.push(int(p));
            }
            let ns = obj
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map_or_else(
                    || "<none>".to_owned(),
                    |m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                );
            cells.push(json!(ns));
        }
        "horizontalpodautoscalers.autoscaling" => {
            let target = |k: &str| obj.pointer(&format!("/spec/scaleTargetRef/{k}"));
            let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
            cells.push(json!(format!(
                "{}/{}",
                text(target("kind")),
                text(target("name"))
            )));
            cells.push(json!(hpa_targets(obj)));
            cells.push(json!(
                obj.pointer("/spec/minReplicas")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "<unset>".to_owned(), |m| m.to_string())
            ));
            cells.push(int("/spec/maxReplicas"));
            cells.push(int("/status/currentReplicas"));
        }
        "poddisruptionbudgets.policy" => {
            let show = |p: &str| {
                obj.pointer(p).map_or_else(
                    || "N/A".to_owned(),
                    |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            };
            cells.push(json!(show("/spec/minAvailable")));
            cells.push(json!(show("/spec/maxUnavailable")));
            cells.push(int("/status/disruptionsAllowed"));
        }
        _ => {}
    }
    cells.push(json!(age(obj, now)));
    match key {
        "deployments.apps" | "replicasets.apps" | "daemonsets.apps" => {
            let (c, i) = containers();
            cells.extend([c, i, selector()]);
        }
        "statefulsets.apps" => {
            let (c, i) = containers();
            cells.extend([c, i]);
        }
        _ => {}
    }
    cells
}

/// The Targets cell of an HPA, as the apiserver's printer writes it: per metric `current/target`
/// (`cpu: 95%/70%`, `<unknown>` before metrics arrive, `(avg)` for average values of object and
/// external metrics), status matched to spec by position, at most two then `+ N more...`.
fn hpa_targets(obj: &Value) -> String {
    const SHOWN: usize = 2;
    let specs = obj
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let statuses = obj
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let quantity = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_owned(),
    };
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let ty = spec["type"].as_str().unwrap_or("");
            let field = match ty {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_owned(),
            };
            let s = &spec[field];
            let current = statuses
                .get(i)
                .map(|st| &st[field])
                .filter(|c| c.is_object());
            let cur = |k: &str| {
                current
                    .and_then(|c| c["current"].get(k))
                    .filter(|v| !v.is_null())
            };
            let unknown = || "<unknown>".to_owned();
            match ty {
                "External" | "Object" if s.pointer("/target/averageValue").is_some() => format!(
                    "{}/{} (avg)",
                    cur("averageValue").map_or_else(unknown, |v| quantity(Some(v))),
                    quantity(s.pointer("/target/averageValue"))
                ),
                "External" | "Object" => format!(
                    "{}/{}",
                    current.map_or_else(unknown, |_| quantity(cur("value"))),
                    quantity(s.pointer("/target/value"))
                ),
                "Pods" => format!(
                    "{}/{}",
                    current.map_or_else(unknown, |_| quantity(cur("averageValue"))),
                    quantity(s.pointer("/target/averageValue"))
                ),
                _ => {
                    let name = s["name"].as_str().unwrap_or("");
                    if s.pointer("/target/averageValue").is_some() {
                        format!(
                            "{name}: {}/{}",
                            current.map_or_else(unknown, |_| quantity(cur("averageValue"))),
                            quantity(s.pointer("/target/averageValue"))
                        )
                    } else {
                        let pct =
                            |v: Option<&Value>| v.and_then(Value::as_i64).map(|p| format!("{p}%"));
                        format!(
                            "{name}: {}/{}",
                            pct(cur("averageUtilization")).unwrap_or_else(unknown),
                            pct(s.pointer("/target/averageUtilization"))
                                .unwrap_or_else(|| "<auto>".to_owned())
                        )
                    }
                }
            }
        })
        .collect();
    if list.len() > SHOWN {
        format!(
            "{} + {} more...",
            list[..SHOWN].join(", "),
            list.len() - SHOWN
        )
    } else {
        list.join(", ")
    }
}

fn row_object(obj: &Value, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
        ),
    }
}

/// A `meta.k8s.io/v1` Table of `items`.
#[must_use]
pub fn table(
    res: &ResourceInfo,
    items: &[Arc<Value>],
    list_meta: &Value,
    now: Timestamp,
    q: &Query,
    accept: &str,
) -> Value {
    let include = q.get("includeObject").map_or("Metadata", String::as_str);
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells = match res.key() {
                "pods" => pod_cells(obj, now),
                "nodes" => node_cells(obj, now),
                key => workload_cells(key, obj, now),
            };
            let mut row = json!({"cells": cells});
            if let Some(o) = row_object(obj, include) {
                row["object"] = o;
            }
            row
        })
        .collect();
    let version = if accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("v=v1beta1"))
    {
        "meta.k8s.io/v1beta1"
    } else {
        "meta.k8s.io/v1"
    };
    json!({"kind": "Table", "apiVersion": version, "metadata": list_meta, "columnDefinitions": columns(res), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::{hpa_targets, human_duration};
    use serde_json::json;

    #[test]
    fn hpa_targets_like_the_apiserver() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}});
        let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}});
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}});
        let ext = json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}});
        assert_eq!(hpa_targets(&json!({"spec": {}})), "<none>");
        assert_eq!(
            hpa_targets(&json!({"spec": {"metrics": [cpu]}})),
            "cpu: <unknown>/70%"
        );
        let with_status = json!({"spec": {"metrics": [cpu, mem]}, "status": {"currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 95, "averageValue": "950m"}}},
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "64Mi"}}}]}});
        assert_eq!(
            hpa_targets(&with_status),
            "cpu: 95%/70%, memory: 64Mi/100Mi"
        );
        assert_eq!(
            hpa_targets(&json!({"spec": {"metrics": [pods, ext, cpu]}})),
            "<unknown>/10, <unknown>/30 (avg) + 1 more..."
        );
    }

    #[test]
    fn durations_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86400, "3d"),
            (10 * 86400, "10d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }
}
