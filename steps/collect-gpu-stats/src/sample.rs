//! The samples the aggregation works on, whatever their source (a scrape of an exporter or a
//! Prometheus query): a metric name, labels and a value, taken at one instant.

use std::collections::BTreeMap;

/// One sample of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `DCGM_FI_DEV_GPU_UTIL`.
    pub name: String,
    /// Labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value (blank DCGM sentinels are dropped before this point).
    pub value: f64,
}

impl Sample {
    /// The label `key`, if present and not empty.
    #[must_use]
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// One point in time of one node: every sample its exporter (or Prometheus) gave.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Seconds since the start of the window (for counters and ordering).
    pub at_seconds: f64,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// What parsing a body counted besides the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParseStats {
    /// Lines that were not valid samples (e.g. `ERROR - FAILED TO CONVERT TO STRING`), skipped.
    pub skipped_lines: u64,
    /// Samples with a DCGM blank sentinel value, dropped.
    pub blank_values: u64,
}

impl ParseStats {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: Self) {
        self.skipped_lines += other.skipped_lines;
        self.blank_values += other.blank_values;
    }
}
