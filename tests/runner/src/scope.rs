//! Tag substitution: `{{inputs.parameters.x}}`, `{{workflow.*}}`, `{{steps.N.*}}`,
//! `{{tasks.N.*}}`, `{{item}}`, `{{item.f}}`, `{{retries}}`, `{{pod.name}}`. An unknown tag is an
//! error naming it; nothing is left literal.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workflow::Phase;

/// A finished node as later steps see it.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub phase: Phase,
    pub message: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub result: Option<String>,
    pub exit_code: Option<i32>,
}

impl Outcome {
    pub(crate) fn new(phase: Phase, message: Option<String>) -> Outcome {
        Outcome {
            phase,
            message,
            outputs: BTreeMap::new(),
            result: None,
            exit_code: None,
        }
    }
}

/// What `steps.N` / `tasks.N` resolve to: one node, or a fan-out's children in item order.
#[derive(Clone, Debug)]
pub(crate) enum StepRes {
    One(Outcome),
    Fanout(Phase, Vec<Outcome>),
}

/// Values visible to tags inside one template (plus workflow-wide ones from the run).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub inputs: BTreeMap<String, String>,
    /// Keyed "steps.NAME" or "tasks.NAME".
    pub results: BTreeMap<String, StepRes>,
    pub item: Option<Value>,
    pub retries: Option<u32>,
    pub pod_name: Option<String>,
}

/// An item as `{{item}}` renders it: strings bare, anything else as JSON.
pub(crate) fn item_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An item as a node name shows it: `blue-0`, or `k:v,k:v` (keys sorted) for an object.
pub(crate) fn item_label(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.iter()
                .map(|k| format!("{k}:{}", item_text(&m[*k])))
                .collect::<Vec<_>>()
                .join(",")
        }
        other => item_text(other),
    }
}

/// A fan-out's outputs as Argo's processAggregateNodeOutputs builds them, in item order: only
/// Succeeded children contribute; nothing is set when no child ran (all skipped, empty list),
/// and `outputs.parameters.NAME` only when some child has NAME. A list of NAME values is a list
/// of JSON when every value is a JSON object or array, else a list of strings.
fn aggregate(children: &[Outcome], rest: &str) -> Option<String> {
    if children.iter().all(|c| c.phase == Phase::Skipped) {
        return None;
    }
    let ok = children.iter().filter(|c| c.phase == Phase::Succeeded);
    if rest == "outputs.result" {
        let items: Vec<Value> = ok
            .filter_map(|c| c.result.as_ref())
            .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())))
            .collect();
        return Some(Value::Array(items).to_string());
    }
    if rest == "outputs.parameters" {
        let maps: Vec<&BTreeMap<String, String>> =
            ok.map(|c| &c.outputs).filter(|o| !o.is_empty()).collect();
        return serde_json::to_string(&maps).ok();
    }
    let name = rest.strip_prefix("outputs.parameters.")?;
    let values: Vec<&String> = ok.filter_map(|c| c.outputs.get(name)).collect();
    if values.is_empty() {
        return None;
    }
    let parsed: Option<Vec<Value>> = values
        .iter()
        .map(|v| serde_json::from_str::<Value>(v).ok())
        .map(|v| v.filter(|v| v.is_object() || v.is_array()))
        .collect();
    match parsed {
        Some(json) => serde_json::to_string(&json).ok(),
        None => serde_json::to_string(&values).ok(),
    }
}

fn step_value(res: &StepRes, rest: &str) -> Option<String> {
    match res {
        StepRes::One(o) => match rest {
            "status" => Some(o.phase.to_string()),
            "exitCode" => o.exit_code.map(|c| c.to_string()),
            "outputs.result" => o.result.clone(),
            _ => o
                .outputs
                .get(rest.strip_prefix("outputs.parameters.")?)
                .cloned(),
        },
        StepRes::Fanout(phase, children) => match rest {
            "status" => Some(phase.to_string()),
            _ => aggregate(children, rest),
        },
    }
}

impl Scope {
    /// Resolves a template-local tag (workflow-wide tags are the run's).
    pub(crate) fn lookup(&self, tag: &str) -> Option<String> {
        if let Some(p) = tag.strip_prefix("inputs.parameters.") {
            return self.inputs.get(p).cloned();
        }
        if tag == "retries" {
            return self.retries.map(|r| r.to_string());
        }
        if tag == "pod.name" {
            return self.pod_name.clone();
        }
        if tag == "item" {
            return self.item.as_ref().map(item_text);
        }
        if let Some(path) = tag.strip_prefix("item.") {
            let mut v = self.item.as_ref()?;
            for part in path.split('.') {
                v = v.get(part)?;
            }
            return Some(item_text(v));
        }
        for kind in ["steps.", "tasks."] {
            if let Some(rest) = tag.strip_prefix(kind) {
                let (name, rest) = rest.split_once('.')?;
                let res = self.results.get(&format!("{kind}{name}"))?;
                return step_value(res, rest);
            }
        }
        None
    }
}

/// Replaces every `{{tag}}` in `text`; the error names the first tag `lookup` cannot resolve.
pub(crate) fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("unterminated tag in {text:?}"));
        };
        let tag = after[..end].trim();
        match lookup(tag) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("unable to resolve {{{{{tag}}}}}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_outputs_aggregate_as_json_arrays() {
        let child = |v: &str, r: &str| Outcome {
            phase: Phase::Succeeded,
            message: None,
            outputs: [("count".to_owned(), v.to_owned())].into(),
            result: Some(r.to_owned()),
            exit_code: Some(0),
        };
        let mut scope = Scope::default();
        scope.results.insert(
            "steps.d".into(),
            StepRes::Fanout(
                Phase::Succeeded,
                vec![child("1", "{\"a\":1}"), child("2", "x")],
            ),
        );
        assert_eq!(
            scope.lookup("steps.d.outputs.parameters.count").unwrap(),
            r#"["1","2"]"#
        );
        assert_eq!(
            scope.lookup("steps.d.outputs.result").unwrap(),
            r#"[{"a":1},"x"]"#
        );
        assert_eq!(
            scope.lookup("steps.d.outputs.parameters").unwrap(),
            r#"[{"count":"1"},{"count":"2"}]"#
        );
        assert_eq!(scope.lookup("steps.d.status").unwrap(), "Succeeded");
        // Argo sets no list for a name no child produced.
        assert!(scope.lookup("steps.d.outputs.parameters.nope").is_none());
        assert!(scope.lookup("steps.e.status").is_none());
    }

    #[test]
    fn substitution_resolves_or_names_the_tag() {
        let scope = Scope {
            inputs: [("x".to_owned(), "1".to_owned())].into(),
            item: Some(serde_json::json!({"ns": "shop", "n": 3})),
            ..Scope::default()
        };
        let f = |t: &str| scope.lookup(t);
        assert_eq!(
            substitute("a={{inputs.parameters.x}} {{ item.ns }}/{{item.n}}", &f).unwrap(),
            "a=1 shop/3"
        );
        assert_eq!(
            substitute("{{inputs.parameters.y}}", &f).unwrap_err(),
            "unable to resolve {{inputs.parameters.y}}"
        );
        assert_eq!(
            item_label(&serde_json::json!({"b": 1, "a": "x"})),
            "a:x,b:1"
        );
    }

    /// processAggregateNodeOutputs: JSON objects/arrays aggregate as JSON (so a later withParam
    /// iterates objects), anything else as strings; failed children do not contribute; a
    /// fan-out with no child that ran sets nothing.
    #[test]
    fn fanout_json_values_aggregate_as_json_and_failures_are_left_out() {
        let child = |phase, v: &str| Outcome {
            phase,
            message: None,
            outputs: [("o".to_owned(), v.to_owned())].into(),
            result: None,
            exit_code: None,
        };
        let mut scope = Scope::default();
        let set = |scope: &mut Scope, outs| {
            scope
                .results
                .insert("steps.d".into(), StepRes::Fanout(Phase::Succeeded, outs));
        };
        set(
            &mut scope,
            vec![
                child(Phase::Succeeded, r#"{"n":"a"}"#),
                child(Phase::Failed, r#"{"n":"x"}"#),
                child(Phase::Succeeded, "[1]"),
            ],
        );
        assert_eq!(
            scope.lookup("steps.d.outputs.parameters.o").unwrap(),
            r#"[{"n":"a"},[1]]"#
        );
        set(
            &mut scope,
            vec![
                child(Phase::Succeeded, r#"{"n":"a"}"#),
                child(Phase::Succeeded, "7"),
            ],
        );
        assert_eq!(
            scope.lookup("steps.d.outputs.parameters.o").unwrap(),
            r#"["{\"n\":\"a\"}","7"]"#
        );
        set(&mut scope, vec![child(Phase::Skipped, "")]);
        assert!(scope.lookup("steps.d.outputs.parameters").is_none());
        assert!(scope.lookup("steps.d.outputs.result").is_none());
        assert_eq!(scope.lookup("steps.d.status").unwrap(), "Succeeded");
    }
}
