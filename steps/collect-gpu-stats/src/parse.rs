//! Exporter text → [`Sample`]s. The line parser itself is `prom_text`'s (our own, see its
//! README); this module keeps the step's view of it: samples with unescaped labels, DCGM blank
//! sentinels dropped and counted, unparsable lines skipped and counted, never an error.

use crate::sample::{ParseStats, Sample};

/// DCGM "blank" values start here (int64 blanks are near 2^63; older builds printed float
/// blanks as 2^47 and up, still far above any real reading of the families we read).
const BLANK_AT_OR_ABOVE: f64 = 9.2e18;

/// Whether `v` is a DCGM blank sentinel rather than a reading.
#[must_use]
pub fn is_blank(v: f64) -> bool {
    v >= BLANK_AT_OR_ABOVE
}

/// Parses one `/metrics` body.
#[must_use]
pub fn parse(text: &str) -> (Vec<Sample>, ParseStats) {
    let mut stats = ParseStats::default();
    let mut good = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // One line at a time, so one bad line never costs the rest of the body.
        match prometheus_parse::Scrape::parse(std::iter::once(Ok(line.to_owned()))) {
            Ok(s) if !s.samples.is_empty() => good.extend(s.samples),
            _ => stats.skipped_lines += 1,
        }
    }
    let mut out = Vec::with_capacity(good.len());
    for s in good {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        if is_blank(value) {
            stats.blank_values += 1;
            continue;
        }
        out.push(Sample {
            name: s.metric,
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            value,
        });
    }
    (out, stats)
}
