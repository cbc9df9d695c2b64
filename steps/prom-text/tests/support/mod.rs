//! Shared by the property and differential tests: a generator of well-formed expositions
//! (model -> text with random but valid formatting) and the samples the model says to expect.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fmt::Write as _;

use prom_text::{Exposition, MetricType};
use proptest::prelude::*;

/// One sample as the model holds it; `PartialEq` treats NaN as equal to NaN.
#[derive(Debug, Clone)]
pub struct ModelSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl PartialEq for ModelSample {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.labels == other.labels
            && same_value(self.value, other.value)
            && self.timestamp_ms == other.timestamp_ms
    }
}

/// Equal bit for bit, or both NaN.
pub fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A family: optional `# HELP`/`# TYPE` lines, then its samples.
#[derive(Debug, Clone)]
pub struct ModelFamily {
    pub name: String,
    pub kind: Option<MetricType>,
    pub help: Option<String>,
    pub help_first: bool,
    pub samples: Vec<ModelSample>,
}

/// How a body is laid out: every choice here is valid text format.
#[derive(Debug, Clone)]
pub struct Layout {
    pub crlf: bool,
    /// Blanks (spaces/tabs, never empty) cycled through wherever a separator goes.
    pub seps: Vec<String>,
    /// Optional blanks (may be empty) cycled through where blanks may go.
    pub pads: Vec<String>,
    pub trailing_comma: Vec<bool>,
    /// Which value spelling to use (see `render_value`).
    pub spellings: Vec<u8>,
    pub comments: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub families: Vec<ModelFamily>,
    pub layout: Layout,
}

impl Model {
    /// The samples a correct parser returns, in order.
    pub fn samples(&self) -> Vec<ModelSample> {
        self.families
            .iter()
            .flat_map(|f| f.samples.iter().cloned())
            .collect()
    }

    /// The declared families: (name, type, help).
    pub fn declared(&self) -> Vec<(String, MetricType, Option<String>)> {
        self.families
            .iter()
            .filter(|f| f.kind.is_some() || f.help.is_some())
            .map(|f| {
                (
                    f.name.clone(),
                    f.kind.unwrap_or(MetricType::Untyped),
                    f.help.clone(),
                )
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let l = &self.layout;
        let mut n = 0usize;
        let mut next = || {
            n += 1;
            n
        };
        let pick = |v: &Vec<String>, i: usize| v[i % v.len()].clone();
        let eol = if l.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        for f in &self.families {
            if l.comments[next() % l.comments.len()] {
                let _ = write!(out, "# just a comment{eol}{eol}");
            }
            let help = f.help.as_ref().map(|h| {
                format!(
                    "#{}HELP{}{}{}{}{eol}",
                    pick(&l.seps, next()),
                    pick(&l.seps, next()),
                    f.name,
                    pick(&l.seps, next()),
                    escape_help(h)
                )
            });
            let kind = f.kind.map(|k| {
                format!(
                    "#{}TYPE{}{}{}{}{}{eol}",
                    pick(&l.seps, next()),
                    pick(&l.seps, next()),
                    f.name,
                    pick(&l.seps, next()),
                    k.as_str(),
                    pick(&l.pads, next()),
                )
            });
            let (a, b) = if f.help_first {
                (help, kind)
            } else {
                (kind, help)
            };
            out.extend(a);
            out.extend(b);
            for s in &f.samples {
                out.push_str(&pick(&l.pads, next()));
                out.push_str(&s.name);
                if !s.labels.is_empty() || next() % 2 == 0 {
                    out.push_str(&pick(&l.pads, next()));
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(
                            out,
                            "{}{k}{}={}\"{}\"{}",
                            pick(&l.pads, next()),
                            pick(&l.pads, next()),
                            pick(&l.pads, next()),
                            escape_label(v),
                            pick(&l.pads, next()),
                        );
                    }
                    if !s.labels.is_empty() && l.trailing_comma[next() % l.trailing_comma.len()] {
                        out.push(',');
                    }
                    out.push('}');
                }
                out.push_str(&pick(&l.seps, next()));
                out.push_str(&render_value(
                    s.value,
                    l.spellings[next() % l.spellings.len()],
                ));
                if let Some(ts) = s.timestamp_ms {
                    let _ = write!(out, "{}{ts}", pick(&l.seps, next()));
                }
                out.push_str(&pick(&l.pads, next()));
                out.push_str(eol);
            }
        }
        out
    }
}

pub fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

pub fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

/// Several valid spellings of one value.
pub fn render_value(v: f64, spelling: u8) -> String {
    if v.is_nan() {
        return ["NaN", "nan", "NaN"][usize::from(spelling % 3)].into();
    }
    if v.is_infinite() {
        let s = ["Inf", "inf", "Inf"][usize::from(spelling % 3)];
        return if v > 0.0 {
            if spelling.is_multiple_of(2) {
                format!("+{s}")
            } else {
                s.into()
            }
        } else {
            format!("-{s}")
        };
    }
    match spelling % 3 {
        0 => format!("{v}"),
        1 => format!("{v:e}"),
        _ => format!("{v:?}"),
    }
}

/// The samples of a parse, as model samples.
pub fn parsed_samples(e: &Exposition<'_>) -> Vec<ModelSample> {
    e.samples
        .iter()
        .map(|s| ModelSample {
            name: s.name.into(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            value: s.value,
            timestamp_ms: s.timestamp_ms,
        })
        .collect()
}

pub fn parsed_families(e: &Exposition<'_>) -> Vec<(String, MetricType, Option<String>)> {
    e.families
        .iter()
        .map(|f| (f.name.into(), f.kind, f.help.as_deref().map(str::to_owned)))
        .collect()
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => (-1000i32..1000).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(9_223_372_036_854_775_794.0),
    ]
}

/// Label values: anything, including the characters that need escaping or look like syntax.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ,={}#:./_-]{0,12}",
        2 => "[\\\\\"\n,= {}a\u{e9}\u{4e2d}\t]{0,8}",
        1 => any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    // Unique names; never `__`-prefixed (Python refuses those, see the differential test).
    proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9_]{0,6}", label_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

fn timestamp() -> impl Strategy<Value = Option<i64>> {
    proptest::option::weighted(0.3, -(1i64 << 52)..(1i64 << 52))
}

fn sample(name: String) -> impl Strategy<Value = ModelSample> {
    (labels(), value(), timestamp()).prop_map(move |(labels, value, timestamp_ms)| ModelSample {
        name: name.clone(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Help text: no blank at either end (lines are trimmed), any escapes inside.
fn help() -> impl Strategy<Value = String> {
    "[a-zA-Z(.][a-zA-Z0-9 ,.()%=\"{}\\\\\n\u{e9}-]{0,20}[a-zA-Z0-9.)]"
}

fn kind() -> impl Strategy<Value = MetricType> {
    prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Untyped),
        Just(MetricType::Summary),
        Just(MetricType::Histogram),
    ]
}

/// The sample names a family of this type may use (as Python's parser groups them).
fn sample_names(base: &str, kind: Option<MetricType>) -> Vec<String> {
    match kind {
        Some(MetricType::Summary) => {
            vec![base.into(), format!("{base}_sum"), format!("{base}_count")]
        }
        Some(MetricType::Histogram) => vec![
            format!("{base}_bucket"),
            format!("{base}_sum"),
            format!("{base}_count"),
        ],
        _ => vec![base.into()],
    }
}

fn family(index: usize) -> impl Strategy<Value = ModelFamily> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
        proptest::option::weighted(0.7, kind()),
        proptest::option::weighted(0.5, help()),
        any::<bool>(),
        any::<bool>(),
        1usize..4,
    )
        .prop_flat_map(move |(stem, kind, help, help_first, total, n)| {
            // The index keeps families' names apart, so no sample falls into another family.
            let mut base = format!("{stem}x{index}");
            if total && kind == Some(MetricType::Counter) {
                base.push_str("_total");
            }
            let names = sample_names(&base, kind);
            let samples = proptest::collection::vec(
                (0..names.len()).prop_flat_map(move |i| sample(names[i].clone())),
                n,
            );
            samples.prop_map(move |samples| ModelFamily {
                name: base.clone(),
                kind,
                help: help.clone(),
                help_first,
                samples,
            })
        })
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        any::<bool>(),
        proptest::collection::vec("[ \t]{1,2}", 1..4),
        proptest::collection::vec("[ \t]{0,2}", 1..4),
        proptest::collection::vec(any::<bool>(), 1..3),
        proptest::collection::vec(any::<u8>(), 1..4),
        proptest::collection::vec(proptest::bool::weighted(0.2), 1..4),
    )
        .prop_map(
            |(crlf, seps, pads, trailing_comma, spellings, comments)| Layout {
                crlf,
                seps,
                pads,
                trailing_comma,
                spellings,
                comments,
            },
        )
}

pub fn model() -> impl Strategy<Value = Model> {
    (0usize..6)
        .prop_flat_map(|n| (0..n).map(family).collect::<Vec<_>>())
        .prop_flat_map(|families| (Just(families), layout()))
        .prop_map(|(families, layout)| Model { families, layout })
}
