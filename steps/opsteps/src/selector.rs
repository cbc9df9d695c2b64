//! Label selectors, once for every step: kubectl's string syntax
//! (`app=web,tier in (fe,be),!canary`) parsed and checked on the client so a typo is exit 2
//! before any request, `metav1.LabelSelector` objects (PDBs, descheduler policies) converted to
//! the same type, and matching against a label map.
//!
//! ```
//! use opsteps::selector::Selector;
//!
//! let s: Selector = "app=web, env in (prod,staging), !canary".parse()?;
//! assert_eq!(s.to_string(), "app=web,env in (prod,staging),!canary"); // what the API server gets
//! let labels = [("app", "web"), ("env", "prod")]
//!     .into_iter()
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!     .collect();
//! assert!(s.matches(&labels));
//! assert!(opsteps::selector::validate("app in web").is_err());
//! # Ok::<(), opsteps::selector::SelectorError>(())
//! ```
//!
//! Accepted: `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`,
//! `key notin (a,b)`, comma-separated. Keys are an optional lowercase DNS-subdomain prefix and
//! `/`, then a name of at most 63 alphanumerics, `-`, `_` or `.`, starting and ending with an
//! alphanumeric; values are like names but may be empty. The API server's `>`/`<` (integer
//! comparisons, meant for node affinity) are refused.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// What the error message says is accepted.
const ACCEPTED: &str = "expected comma-separated requirements such as app=web, tier!=db, env in (a,b), env notin (c), key or !key";

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Eq(String, String),
    /// `key!=value` (also true when the label is absent).
    NotEq(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the label is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Eq(k, v) => labels.get(k) == Some(v),
            Self::NotEq(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|h| vs.contains(h)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|h| !vs.contains(h)),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eq(k, v) => write!(f, "{k}={v}"),
            Self::NotEq(k, v) => write!(f, "{k}!={v}"),
            Self::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Self::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Self::Exists(k) => f.write_str(k),
            Self::DoesNotExist(k) => write!(f, "!{k}"),
        }
    }
}

/// A parsed, valid label selector: every requirement must hold. The empty selector selects
/// everything. `Display` gives the canonical string the API server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector(pub Vec<Requirement>);

/// A label selector failed validation. The message names the input, what was wrong and what is
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {input:?}: {reason}; {ACCEPTED}")]
pub struct SelectorError {
    input: String,
    reason: String,
}

impl SelectorError {
    /// The selector as given (for an object, its string form).
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was wrong, without the list of accepted forms.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Validates a label selector string. The empty string selects everything and is valid.
pub fn validate(selector: &str) -> Result<(), SelectorError> {
    selector.parse::<Selector>().map(drop)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A label value: at most 63 characters, alphanumerics at both ends, `-_.` inside; may be empty.
fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 {
        return Err(format!("value {v:?} is longer than 63 characters"));
    }
    let ends_ok = v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ends_ok || !v.chars().all(is_name_char) {
        return Err(format!(
            "value {v:?} must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a non-empty name.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "key {k:?}: prefix {p:?} is not a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("key {k:?} has an empty name"));
    }
    check_value(name).map_err(|e| format!("key {k:?}: {e}"))
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn check_set(key: &str, op: &str, vals: &[String]) -> Result<(), String> {
    if vals.is_empty() || vals.iter().all(String::is_empty) {
        return Err(format!("{key} {op}: the value list is empty"));
    }
    vals.iter().try_for_each(|v| check_value(v))
}

fn parse_set(key: &str, op: &str, rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("values of {key:?} must be in parentheses"))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    check_set(key, op, &vals)?;
    Ok(vals)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let p = part.trim();
    if p.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(k) = p.strip_prefix('!') {
        let k = k.trim();
        check_key(k)?;
        return Ok(Requirement::DoesNotExist(k.to_owned()));
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = p.split_once(op) {
            let k = k.trim();
            check_key(k)?;
            let vals = parse_set(k, op.trim(), rest)?;
            return Ok(if negate {
                Requirement::NotIn(k.to_owned(), vals)
            } else {
                Requirement::In(k.to_owned(), vals)
            });
        }
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = p.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            return Ok(if negate {
                Requirement::NotEq(k.to_owned(), v.to_owned())
            } else {
                Requirement::Eq(k.to_owned(), v.to_owned())
            });
        }
    }
    if p.contains([' ', '(', ')', '<', '>']) {
        return Err(format!(
            "{p:?} is not key, !key, key=value, key!=value, key in (..) or key notin (..)"
        ));
    }
    check_key(p)?;
    Ok(Requirement::Exists(p.to_owned()))
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| SelectorError {
            input: s.to_owned(),
            reason,
        };
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let reqs = split_top(s)
            .map_err(err)?
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Self(reqs))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Selector {
    /// Whether no requirement is set (selects everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The requirements, in order.
    #[must_use]
    pub fn requirements(&self) -> &[Requirement] {
        &self.0
    }

    /// Both selectors' requirements (an object must satisfy all).
    #[must_use]
    pub fn and(mut self, other: Selector) -> Self {
        self.0.extend(other.0);
        self
    }

    /// From a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`), validating keys,
    /// values and operators as the API server does. An empty object gives the empty selector
    /// (selects everything); whether a *missing* selector selects nothing is the caller's rule.
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        let mut problem = None;
        for (k, v) in ls.match_labels.iter().flatten() {
            if let Err(e) = check_key(k).and_then(|()| check_value(v)) {
                problem.get_or_insert(e);
            }
            reqs.push(Requirement::Eq(k.clone(), v.clone()));
        }
        for e in ls.match_expressions.iter().flatten() {
            let vals = e.values.clone().unwrap_or_default();
            let checked = check_key(&e.key).and_then(|()| match e.operator.as_str() {
                "In" | "NotIn" => check_set(&e.key, &e.operator, &vals).map(|()| {
                    if e.operator == "In" {
                        Requirement::In(e.key.clone(), vals.clone())
                    } else {
                        Requirement::NotIn(e.key.clone(), vals.clone())
                    }
                }),
                "Exists" | "DoesNotExist" if !vals.is_empty() => {
                    Err(format!("{}: {} takes no values", e.key, e.operator))
                }
                "Exists" => Ok(Requirement::Exists(e.key.clone())),
                "DoesNotExist" => Ok(Requirement::DoesNotExist(e.key.clone())),
                other => Err(format!(
                    "operator {other:?} of {:?}: expected In, NotIn, Exists or DoesNotExist",
                    e.key
                )),
            });
            match checked {
                Ok(r) => reqs.push(r),
                Err(e) => {
                    problem.get_or_insert(e);
                }
            }
        }
        match problem {
            None => Ok(Self(reqs)),
            Some(reason) => Err(SelectorError {
                input: describe(ls),
                reason,
            }),
        }
    }

    /// Whether `labels` satisfy every requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }
}

/// An object selector in string form for messages (an invalid one cannot become a [`Selector`]).
fn describe(ls: &LabelSelector) -> String {
    let mut parts: Vec<String> = ls
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(ls.match_expressions.iter().flatten().map(|e| {
        format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(",")
        )
    }));
    parts.join(",")
}

/// Whether a `metav1.LabelSelector` selects `labels`. An invalid selector (which the API server
/// refuses to store) selects nothing, so a caller never acts on objects it cannot reason about.
#[must_use]
pub fn label_selector_matches(ls: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::from_label_selector(ls).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests;
