//! One line: a sample, or a `#` line that may be `# HELP` or `# TYPE`.

use std::borrow::Cow;

use crate::labels::{self, Labels};
use crate::{MetricType, Sample, SkipReason};

/// Spaces and tabs separate tokens, as in the Go reference parser.
pub(crate) const BLANK: [char; 2] = [' ', '\t'];

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub(crate) fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// What a `# HELP` or `# TYPE` line declares.
pub(crate) enum Meta<'a> {
    Help { name: &'a str, text: Cow<'a, str> },
    Type { name: &'a str, kind: MetricType },
}

impl<'a> Meta<'a> {
    pub(crate) fn name(&self) -> &'a str {
        match self {
            Meta::Help { name, .. } | Meta::Type { name, .. } => name,
        }
    }
}

/// The first blank-separated token of `s`, and the rest with leading blanks removed.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(BLANK);
    match s.find(BLANK) {
        Some(end) => (&s[..end], s[end..].trim_start_matches(BLANK)),
        None => (s, ""),
    }
}

/// `rest` is the line after its `#`, already trimmed at the end. `Ok(None)` is a plain comment.
pub(crate) fn parse_comment(rest: &str) -> Result<Option<Meta<'_>>, SkipReason> {
    // `#HELP` with no blank after the `#` is a plain comment, as in prometheus_client.
    if !rest.starts_with(BLANK) {
        return Ok(None);
    }
    let (keyword, rest) = token(rest);
    match keyword {
        "HELP" => {
            let (name, text) = token(rest);
            if !is_metric_name(name) {
                return Err(SkipReason::BadHelp);
            }
            Ok(Some(Meta::Help {
                name,
                text: unescape_help(text),
            }))
        }
        "TYPE" => {
            let (name, kind) = token(rest);
            let kind = MetricType::from_token(kind).ok_or(SkipReason::BadType)?;
            if !is_metric_name(name) {
                return Err(SkipReason::BadType);
            }
            Ok(Some(Meta::Type { name, kind }))
        }
        _ => Ok(None),
    }
}

/// Help texts escape only `\\` and `\n`; any other backslash stays as written.
fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // `\\`, or a lone backslash at the end.
            Some('\\') | None => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Cow::Owned(out)
}

/// `name [{labels}] value [timestamp]`; `line` is trimmed at both ends and not empty.
pub(crate) fn parse_sample(line: &str, line_no: usize) -> Result<Sample<'_>, SkipReason> {
    let b = line.as_bytes();
    let name_end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b':'))
        .unwrap_or(b.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(SkipReason::BadMetricName);
    }
    // Blanks may separate the name from `{`, as in the Go parser.
    let brace = skip_blanks(b, name_end);
    let (labels, i) = if b.get(brace) == Some(&b'{') {
        labels::parse(line, brace + 1)?
    } else {
        (Labels::default(), name_end)
    };
    let value_start = skip_blanks(b, i);
    if value_start == b.len() {
        return Err(SkipReason::MissingValue);
    }
    if value_start == i {
        // Something other than a blank right after the name or the closing brace.
        return Err(if i == name_end {
            SkipReason::BadMetricName
        } else {
            SkipReason::BadLabelSyntax
        });
    }
    let (value, rest) = token(&line[value_start..]);
    let value = parse_value(value).ok_or(SkipReason::NonNumericValue)?;
    let (timestamp, rest) = token(rest);
    let timestamp_ms = if timestamp.is_empty() {
        None
    } else {
        Some(
            timestamp
                .parse::<i64>()
                .map_err(|_| SkipReason::BadTimestamp)?,
        )
    };
    if !rest.is_empty() {
        return Err(SkipReason::TrailingText);
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
        line: line_no,
    })
}

pub(crate) fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// A Go `ParseFloat`-style float: decimal, exponent, `NaN`, `Inf`/`Infinity` with an optional
/// sign, case-insensitive. Rust's `f64` parser accepts exactly that set minus hex floats, which
/// no exporter we know prints.
fn parse_value(token: &str) -> Option<f64> {
    token.parse::<f64>().ok()
}
