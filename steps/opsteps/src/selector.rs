//! Client-side validation of label selector strings (`app=web,tier!=db,env in (a,b),!legacy`),
//! so a typo is a bad-input exit before any request, with a message that says what is accepted.

/// A label selector failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid label selector {input:?}: {reason}; expected comma-separated requirements such as app=web, tier!=db, env in (a,b), env notin (c), key or !key"
)]
pub struct SelectorError {
    input: String,
    reason: String,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
                && valid_name(name)
        }
        None => valid_name(k),
    }
}

fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name(v)
}

/// Splits on commas outside parentheses.
fn requirements(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Validates a label selector string. The empty string selects everything and is valid.
pub fn validate(selector: &str) -> Result<(), SelectorError> {
    let err = |reason: String| SelectorError {
        input: selector.to_owned(),
        reason,
    };
    if selector.trim().is_empty() {
        return Ok(());
    }
    for req in requirements(selector) {
        let r = req.trim();
        if r.is_empty() {
            return Err(err("empty requirement".into()));
        }
        if let Some(k) = r.strip_prefix('!') {
            if !valid_key(k.trim()) {
                return Err(err(format!("invalid key {:?}", k.trim())));
            }
            continue;
        }
        let set_op = [" notin ", " in "]
            .into_iter()
            .find_map(|op| r.find(op).map(|i| (i, op)));
        if let Some((i, op)) = set_op {
            let key = r[..i].trim();
            let rest = r[i + op.len()..].trim();
            if !valid_key(key) {
                return Err(err(format!("invalid key {key:?}")));
            }
            let Some(inner) = rest.strip_prefix('(').and_then(|x| x.strip_suffix(')')) else {
                return Err(err(format!("values of {key:?} must be in parentheses")));
            };
            for v in inner.split(',') {
                if !valid_value(v.trim()) {
                    return Err(err(format!("invalid value {:?}", v.trim())));
                }
            }
            continue;
        }
        let (key, value) = if let Some((k, v)) = r.split_once("!=") {
            (k, Some(v))
        } else if let Some((k, v)) = r.split_once("==") {
            (k, Some(v))
        } else if let Some((k, v)) = r.split_once('=') {
            (k, Some(v))
        } else {
            (r, None)
        };
        if !valid_key(key.trim()) {
            return Err(err(format!("invalid key {:?}", key.trim())));
        }
        if let Some(v) = value
            && !valid_value(v.trim())
        {
            return Err(err(format!("invalid value {:?}", v.trim())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_selectors() {
        for ok in [
            "",
            "app=web",
            "app==web",
            "tier!=db",
            "env in (a, b)",
            "env notin (c)",
            "key",
            "!legacy",
            "eks.amazonaws.com/nodegroup=blue,app",
            "a=,b",
        ] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_typos_with_a_clear_message() {
        for bad in [
            "app=we b",
            "=web",
            "app in a,b",
            "a,,b",
            "-app=x",
            "app=web)",
            "Bad_Prefix.io/x=y",
            "!",
        ] {
            let e = validate(bad).expect_err(bad);
            assert!(
                e.to_string()
                    .contains("expected comma-separated requirements"),
                "{bad}: {e}"
            );
        }
    }
}
