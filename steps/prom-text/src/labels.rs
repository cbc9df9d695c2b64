//! A sample's label set: `{name="value",...}`.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::SkipReason;
use crate::line::skip_blanks;

/// A sample's labels as written: ordered (name, value) pairs, values unescaped. Names are
/// unique: a line that repeats a label name is skipped ([`SkipReason::DuplicateLabel`]), as the
/// Go and Python parsers refuse it too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels<'a> {
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Labels<'a> {
    /// The value of label `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The pairs in input order.
    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &str)> + '_ {
        self.pairs.iter().map(|(n, v)| (*n, v.as_ref()))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, Cow<'a, str>)> for Labels<'a> {
    /// Builds a label set as given (for tests and callers that assemble samples themselves);
    /// unlike the parser it does not check names or uniqueness.
    fn from_iter<I: IntoIterator<Item = (&'a str, Cow<'a, str>)>>(iter: I) -> Self {
        Self {
            pairs: iter.into_iter().collect(),
        }
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Parses the label set starting just after `{` at byte `start` of `line`. Returns the labels
/// and the index just after the closing `}`. A trailing comma before `}` is accepted.
pub(crate) fn parse(line: &str, start: usize) -> Result<(Labels<'_>, usize), SkipReason> {
    let b = line.as_bytes();
    let mut pairs: Vec<(&str, Cow<'_, str>)> = Vec::new();
    // Duplicate check: a scan for the usual dozen labels, a set past that so a line with
    // thousands of labels stays linear.
    let mut seen: Option<HashSet<&str>> = None;
    let mut i = skip_blanks(b, start);
    loop {
        match b.get(i) {
            None => return Err(SkipReason::BadLabelSyntax),
            Some(b'}') => return Ok((Labels { pairs }, i + 1)),
            Some(_) => {}
        }
        let name_end = b[i..]
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
            .map_or(b.len(), |n| i + n);
        let name = &line[i..name_end];
        if !is_label_name(name) {
            return Err(SkipReason::BadLabelName);
        }
        if name == "__name__" {
            return Err(SkipReason::ReservedLabelName);
        }
        i = skip_blanks(b, name_end);
        if b.get(i) != Some(&b'=') {
            return Err(SkipReason::BadLabelSyntax);
        }
        i = skip_blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err(SkipReason::BadLabelSyntax);
        }
        let (value, end) = quoted(line, i + 1)?;
        let duplicate = match &mut seen {
            Some(set) => !set.insert(name),
            None if pairs.len() < 32 => pairs.iter().any(|(n, _)| *n == name),
            None => {
                let mut set: HashSet<&str> = pairs.iter().map(|(n, _)| *n).collect();
                let duplicate = !set.insert(name);
                seen = Some(set);
                duplicate
            }
        };
        if duplicate {
            return Err(SkipReason::DuplicateLabel);
        }
        pairs.push((name, value));
        i = skip_blanks(b, end);
        match b.get(i) {
            Some(b',') => i = skip_blanks(b, i + 1),
            Some(b'}') => return Ok((Labels { pairs }, i + 1)),
            _ => return Err(SkipReason::BadLabelSyntax),
        }
    }
}

/// The quoted value starting just after its opening `"` at byte `start`; returns it unescaped
/// (`\\`, `\"`, `\n`; any other backslash stays as written) and the index after the closing `"`.
fn quoted(line: &str, start: usize) -> Result<(Cow<'_, str>, usize), SkipReason> {
    let b = line.as_bytes();
    let mut i = start;
    // Fast path: no backslash before the closing quote, so the value borrows.
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((Cow::Borrowed(&line[start..i]), i + 1)),
            b'\\' => break,
            _ => i += 1,
        }
    }
    let mut out = String::with_capacity(i - start + 16);
    out.push_str(&line[start..i]);
    let mut run = i;
    while i < b.len() {
        match b[i] {
            b'"' => {
                out.push_str(&line[run..i]);
                return Ok((Cow::Owned(out), i + 1));
            }
            b'\\' => {
                out.push_str(&line[run..i]);
                match b.get(i + 1) {
                    Some(b'\\') => out.push('\\'),
                    Some(b'"') => out.push('"'),
                    Some(b'n') => out.push('\n'),
                    // Unknown escape (or a lone backslash at the end): keep the backslash; the
                    // next character is copied with the following run.
                    _ => {
                        out.push('\\');
                        i += 1;
                        run = i;
                        continue;
                    }
                }
                i += 2;
                run = i;
            }
            _ => i += 1,
        }
    }
    Err(SkipReason::UnterminatedLabelValue)
}
