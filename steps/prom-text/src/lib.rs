//! A parser for the Prometheus text exposition format 0.0.4, as NVIDIA dcgm-exporter serves it.
//!
//! [`parse`] reads a whole body and never fails or panics: each line that is not a valid sample,
//! `# HELP`/`# TYPE` line, comment or blank line is left out and recorded in
//! [`Exposition::skipped`] with its line number and reason, so one bad line (dcgm-exporter prints
//! `ERROR - FAILED TO CONVERT TO STRING` as a value) costs that line, not the scrape. Samples
//! borrow from the input; label values and help texts are copied only when they hold escapes.
//!
//! Samples are kept in input order and are not grouped into families: dcgm-exporter output
//! without `# TYPE` lines has a different untyped name per line, and grouping is by metric name
//! anyway. [`Exposition::families`] holds what the `# HELP`/`# TYPE` lines declare.
//!
//! The deviations from the Go reference parser and from Python's `prometheus_client` are listed
//! in the crate README.

use std::borrow::Cow;
use std::collections::HashMap;

mod labels;
mod line;

pub mod dcgm;

pub use labels::Labels;

/// One parsed body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition<'a> {
    /// Every valid sample, in input order.
    pub samples: Vec<Sample<'a>>,
    /// Metric families declared by `# HELP` or `# TYPE` lines, in order of first declaration.
    pub families: Vec<Family<'a>>,
    /// Lines left out, in input order.
    pub skipped: Vec<Skipped>,
}

/// One sample line: `name{labels} value [timestamp_ms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
    /// `NaN`, `+Inf` and `-Inf` included.
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
    /// 1-based line number in the input.
    pub line: usize,
}

/// A metric family's metadata, from its `# HELP` and `# TYPE` lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Family<'a> {
    pub name: &'a str,
    /// [`MetricType::Untyped`] when only `# HELP` declared the family.
    pub kind: MetricType,
    /// Unescaped (`\\` and `\n`).
    pub help: Option<Cow<'a, str>>,
}

/// The types a `# TYPE` line may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    fn from_token(token: &str) -> Option<Self> {
        Some(match token {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" => Self::Untyped,
            _ => return None,
        })
    }

    /// The token a `# TYPE` line uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Untyped => "untyped",
        }
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line left out of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number in the input.
    pub line: usize,
    pub reason: SkipReason,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a line was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    #[error("invalid metric name (accepted: [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    BadMetricName,
    #[error("invalid label name (accepted: [a-zA-Z_][a-zA-Z0-9_]*)")]
    BadLabelName,
    #[error("label name __name__ is reserved")]
    ReservedLabelName,
    #[error("bad label syntax (accepted: {{name=\"value\",...}})")]
    BadLabelSyntax,
    #[error("label value has no closing quote")]
    UnterminatedLabelValue,
    #[error("the same label name appears twice")]
    DuplicateLabel,
    #[error("no value after the metric name and labels")]
    MissingValue,
    #[error("non-numeric value (accepted: a float, NaN, +Inf, -Inf)")]
    NonNumericValue,
    #[error("invalid timestamp (accepted: integer milliseconds)")]
    BadTimestamp,
    #[error("unexpected text after the timestamp")]
    TrailingText,
    #[error("bad # HELP line (accepted: # HELP name text)")]
    BadHelp,
    #[error("bad # TYPE line (accepted: # TYPE name counter|gauge|histogram|summary|untyped)")]
    BadType,
    #[error("second # HELP line for the same metric name")]
    DuplicateHelp,
    #[error("second # TYPE line for the same metric name")]
    DuplicateType,
}

/// Parses a whole body. Never fails and never panics; see [`Exposition::skipped`].
#[must_use]
pub fn parse(text: &str) -> Exposition<'_> {
    let mut out = Exposition::default();
    // Family name -> (index in `out.families`, `# TYPE` seen), so long bodies stay linear.
    let mut index: HashMap<&str, (usize, bool)> = HashMap::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.trim_matches([' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        let result = match line.strip_prefix('#') {
            Some(comment) => match line::parse_comment(comment) {
                Ok(Some(meta)) => declare(&mut out.families, &mut index, meta),
                Ok(None) => Ok(()),
                Err(reason) => Err(reason),
            },
            None => line::parse_sample(line, line_no).map(|s| out.samples.push(s)),
        };
        if let Err(reason) = result {
            out.skipped.push(Skipped {
                line: line_no,
                reason,
            });
        }
    }
    out
}

/// Records a `# HELP` or `# TYPE` line; a second one of the same kind for a name is refused.
fn declare<'a>(
    families: &mut Vec<Family<'a>>,
    index: &mut HashMap<&'a str, (usize, bool)>,
    meta: line::Meta<'a>,
) -> Result<(), SkipReason> {
    let name = meta.name();
    let (i, typed) = index.entry(name).or_insert_with(|| {
        families.push(Family {
            name,
            kind: MetricType::Untyped,
            help: None,
        });
        (families.len() - 1, false)
    });
    let family = &mut families[*i];
    match meta {
        line::Meta::Help { text, .. } => {
            if family.help.is_some() {
                return Err(SkipReason::DuplicateHelp);
            }
            family.help = Some(text);
        }
        line::Meta::Type { kind, .. } => {
            if *typed {
                return Err(SkipReason::DuplicateType);
            }
            *typed = true;
            family.kind = kind;
        }
    }
    Ok(())
}

impl<'a> Exposition<'a> {
    /// The family declared under exactly this name.
    #[must_use]
    pub fn family(&self, name: &str) -> Option<&Family<'a>> {
        self.families.iter().find(|f| f.name == name)
    }
}
