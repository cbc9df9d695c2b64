//! Label selectors in kubectl's string syntax (`app=web,tier in (fe,be),!canary`), checked on
//! the client so a typo is exit 2 before any request, and built from a descheduler policy's
//! `metav1.LabelSelector`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Eq(String, String),
    /// `key!=value`.
    NotEq(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed, valid label selector; `Display` gives the canonical string the API server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

/// Why a selector is not valid.
#[derive(Debug, thiserror::Error)]
#[error("invalid label selector {input:?}: {reason}")]
pub struct SelectorError {
    input: String,
    reason: String,
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
            "value {v:?} must be alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name like a value but
/// non-empty.
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

fn parse_set(key: &str, rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("{key}: expected a parenthesised value list"))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    for v in &vals {
        check_value(v)?;
    }
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
            let vals = parse_set(k, rest)?;
            return Ok(if negate {
                Requirement::NotIn(k.to_owned(), vals)
            } else {
                Requirement::In(k.to_owned(), vals)
            });
        }
    }
    for (op, kind) in [("!=", 0u8), ("==", 1), ("=", 1)] {
        if let Some((k, v)) = p.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            return Ok(if kind == 0 {
                Requirement::NotEq(k.to_owned(), v.to_owned())
            } else {
                Requirement::Eq(k.to_owned(), v.to_owned())
            });
        }
    }
    if p.contains([' ', '(', ')', '<', '>']) {
        return Err(format!(
            "{p:?}: expected key, !key, key=value, key!=value, key in (..) or key notin (..)"
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
        let parts = split_top(s).map_err(err)?;
        let reqs = parts
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Self(reqs))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Eq(k, v) => format!("{k}={v}"),
                Requirement::NotEq(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Selector {
    /// Whether no requirement is set (selects everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both selectors' requirements (a pod must satisfy all).
    #[must_use]
    pub fn and(mut self, other: Selector) -> Self {
        self.0.extend(other.0);
        self
    }

    /// From a `metav1.LabelSelector`, validating keys, values and operators.
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            input: format!("{ls:?}"),
            reason,
        };
        let mut reqs = Vec::new();
        for (k, v) in ls.match_labels.iter().flatten() {
            check_key(k).map_err(err)?;
            check_value(v).map_err(err)?;
            reqs.push(Requirement::Eq(k.clone(), v.clone()));
        }
        for e in ls.match_expressions.iter().flatten() {
            check_key(&e.key).map_err(err)?;
            let vals = e.values.clone().unwrap_or_default();
            for v in &vals {
                check_value(v).map_err(err)?;
            }
            let r = match e.operator.as_str() {
                "In" | "NotIn" if vals.is_empty() => {
                    return Err(err(format!("{}: {} needs values", e.key, e.operator)));
                }
                "In" => Requirement::In(e.key.clone(), vals),
                "NotIn" => Requirement::NotIn(e.key.clone(), vals),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(err(format!(
                        "operator {other:?}: expected In, NotIn, Exists or DoesNotExist"
                    )));
                }
            };
            reqs.push(r);
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    #[must_use]
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => labels.get(k) == Some(v),
            Requirement::NotEq(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|h| vs.contains(h)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|h| !vs.contains(h)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_kubectl_syntax() {
        for (input, canonical) in [
            ("app=web", "app=web"),
            ("app==web, tier!=db", "app=web,tier!=db"),
            (
                "env in (prod, staging),!canary,team",
                "env in (prod,staging),!canary,team",
            ),
            ("x notin (a)", "x notin (a)"),
            ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
            ("", ""),
        ] {
            let s: Selector = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), canonical);
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "app=",
            "=web",
            "app=we b",
            "app in web",
            "app in (a",
            "a,,b",
            "app=-web",
            "Bad_Prefix/x=1",
            "x>3",
            "app=web)",
            &format!("a={}", "v".repeat(64)),
        ] {
            if bad == "app=" {
                // An empty value is valid (`app=` selects pods whose label is empty).
                assert!(bad.parse::<Selector>().is_ok());
                continue;
            }
            let e = bad.parse::<Selector>().expect_err(bad);
            assert!(e.to_string().contains("invalid label selector"), "{e}");
        }
    }

    #[test]
    fn matches_labels() {
        let s: Selector = "app=web,env in (prod),!canary".parse().unwrap();
        let l = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(s.matches(&l(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&l(&[("app", "web"), ("env", "prod"), ("canary", "1")])));
        assert!(!s.matches(&l(&[("app", "web")])));
    }
}
