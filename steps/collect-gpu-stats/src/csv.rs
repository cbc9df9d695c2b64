//! The report's rows as CSV (RFC 4180 quoting, a header line), for the Athena table over
//! `PREFIX/gpu-rows/`.

use crate::report::Report;

/// CSV columns, in order (the Athena table's).
pub const CSV_COLUMNS: &[&str] = &[
    "schema_version",
    "cluster",
    "window_end",
    "window_seconds",
    "node",
    "instance_type",
    "capacity_type",
    "instance_id",
    "gpu",
    "uuid",
    "mig_instance",
    "mig_profile",
    "model",
    "state",
    "namespace",
    "pod",
    "owner_kind",
    "owner_name",
    "util_mean",
    "util_p95",
    "util_max",
    "fb_used_max_mib",
    "fb_total_mib",
    "power_mean_w",
    "power_max_w",
    "temp_max_c",
    "energy_kwh",
    "xid_codes",
];

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// The rows as CSV with a header line (RFC 4180 quoting).
#[must_use]
pub fn render(r: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for row in &r.gpus {
        let pod = row.pods.first();
        let u = row.figures.util_percent;
        let p = row.figures.power_watts;
        let cells = [
            r.schema_version.to_string(),
            r.cluster.clone(),
            r.window.end.clone(),
            r.window.seconds.to_string(),
            row.node.clone(),
            row.instance_type.clone().unwrap_or_default(),
            row.capacity_type.clone().unwrap_or_default(),
            row.instance_id.clone().unwrap_or_default(),
            row.gpu.clone().unwrap_or_default(),
            row.uuid.clone(),
            row.mig_instance.clone().unwrap_or_default(),
            row.mig_profile.clone().unwrap_or_default(),
            row.model.clone().unwrap_or_default(),
            row.state.as_str().to_owned(),
            pod.map(|p| p.namespace.clone()).unwrap_or_default(),
            pod.map(|p| p.pod.clone()).unwrap_or_default(),
            row.owner
                .as_ref()
                .map(|o| o.kind.clone())
                .unwrap_or_default(),
            row.owner
                .as_ref()
                .map(|o| o.name.clone())
                .unwrap_or_default(),
            num(u.map(|s| s.mean)),
            num(u.map(|s| s.p95)),
            num(u.map(|s| s.max)),
            num(row.figures.fb_used_max_mib),
            num(row.figures.fb_total_mib),
            num(p.map(|s| s.mean)),
            num(p.map(|s| s.max)),
            num(row.figures.temp_max_celsius),
            num(row.figures.energy_kwh),
            row.xids
                .iter()
                .map(|x| x.code.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, c);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut s = String::new();
        csv_field(&mut s, "a,b \"c\"");
        assert_eq!(s, "\"a,b \"\"c\"\"\"");
        let mut s = String::new();
        csv_field(&mut s, "plain");
        assert_eq!(s, "plain");
    }
}
