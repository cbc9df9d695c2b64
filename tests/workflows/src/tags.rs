//! `{{…}}` tags: finding them in strings, with the JSON path of each string.

use serde_json::Value;

/// A tag found in a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// JSON path of the string (`/spec/templates/0/container/args/3`).
    pub path: String,
    /// The text between the braces, trimmed.
    pub body: String,
}

/// Every tag in every string under `v` (object keys included), with paths from `base`.
#[must_use]
pub fn collect(v: &Value, base: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    walk(v, base, &mut out);
    out
}

fn walk(v: &Value, path: &str, out: &mut Vec<Tag>) {
    match v {
        Value::String(s) => out.extend(in_str(s).into_iter().map(|body| Tag {
            path: path.to_owned(),
            body,
        })),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, &format!("{path}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}/{k}");
                out.extend(in_str(k).into_iter().map(|body| Tag {
                    path: p.clone(),
                    body,
                }));
                walk(x, &p, out);
            }
        }
        _ => {}
    }
}

/// The bodies of the `{{…}}` tags in `s`; an unclosed `{{` yields its rest, so it is reported.
#[must_use]
pub fn in_str(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        if let Some(j) = after.find("}}") {
            out.push(after[..j].trim().to_owned());
            rest = &after[j + 2..];
        } else {
            out.push(format!("{after} (unclosed)"));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_tags_with_paths() {
        let v = json!({ "a": ["x {{ inputs.parameters.n }}-{{workflow.name}}", 3], "b": "{{oops" });
        let t = collect(&v, "");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].path, "/a/0");
        assert_eq!(t[0].body, "inputs.parameters.n");
        assert_eq!(t[1].body, "workflow.name");
        assert_eq!(t[2].body, "oops (unclosed)");
    }
}
