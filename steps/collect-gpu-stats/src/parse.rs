//! Exporter text → [`Sample`]s. The line parser is `prom_text`'s (our own, see its README);
//! this module keeps the step's view of it: owned samples with unescaped labels, DCGM blank
//! sentinels dropped and counted, unparsable lines (the exporter's `ERROR - FAILED TO CONVERT
//! TO STRING`) skipped and counted, never an error.

use crate::sample::{ParseStats, Sample};

/// Whether `v` is a DCGM blank sentinel rather than a reading.
#[must_use]
pub fn is_blank(v: f64) -> bool {
    prom_text::dcgm::is_blank(v)
}

/// Parses one `/metrics` body.
#[must_use]
pub fn parse(text: &str) -> (Vec<Sample>, ParseStats) {
    let exp = prom_text::parse(text);
    let mut stats = ParseStats {
        skipped_lines: exp.skipped.len() as u64,
        blank_values: 0,
    };
    let mut out = Vec::with_capacity(exp.samples.len());
    for s in exp.samples {
        if is_blank(s.value) {
            stats.blank_values += 1;
            continue;
        }
        out.push(Sample {
            name: s.name.to_owned(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            value: s.value,
        });
    }
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_and_blanks_are_counted_not_fatal() {
        let text = "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\r\n\
DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"n1\"} 42\r\n\
DCGM_FI_DEV_ECC_SBE_AGG_TOTAL{gpu=\"0\",UUID=\"GPU-a\"} ERROR - FAILED TO CONVERT TO STRING\n\
DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-a\"} 9223372036854775794\n\
DCGM_FI_DEV_XID_ERRORS{gpu=\"0\",UUID=\"GPU-a\",err_code=\"45\",err_msg=\"Preemptive cleanup, due to previous errors -- x\"} 45\n";
        let (s, stats) = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(stats.skipped_lines, 1);
        assert_eq!(stats.blank_values, 1);
        assert_eq!(
            s[1].label("err_msg"),
            Some("Preemptive cleanup, due to previous errors -- x")
        );
        assert_eq!(s[0].label("Hostname"), Some("n1"));
    }
}
