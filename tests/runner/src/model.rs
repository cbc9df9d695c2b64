//! The typed shape of the Argo objects the runner executes. `subset.rs` has already rejected
//! every key outside the subset, so these structs read only what they use.

use serde::Deserialize;
use serde_json::Value;

/// A YAML scalar Argo reads as a string (`value: 1` and `value: "1"` are the same).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    pub(crate) fn text(&self) -> String {
        match self {
            Scalar::S(s) => s.clone(),
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec {
    pub entrypoint: Option<String>,
    pub on_exit: Option<String>,
    #[serde(default)]
    pub arguments: Arguments,
    #[serde(default)]
    pub templates: Vec<Template>,
    pub synchronization: Option<Synchronization>,
    pub parallelism: Option<Scalar>,
    pub active_deadline_seconds: Option<Scalar>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CronSpec {
    pub workflow_spec: CronWorkflowSpec,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CronWorkflowSpec {
    pub workflow_template_ref: NameRef,
    #[serde(default)]
    pub arguments: Arguments,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NameRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Arguments {
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Parameter {
    pub name: String,
    pub value: Option<Scalar>,
    pub default: Option<Scalar>,
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<Scalar>>,
    pub value_from: Option<ValueFrom>,
    pub global_name: Option<String>,
}

impl Parameter {
    pub(crate) fn enum_texts(&self) -> Option<Vec<String>> {
        self.enum_values
            .as_ref()
            .map(|v| v.iter().map(Scalar::text).collect())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ValueFrom {
    pub path: Option<String>,
    pub default: Option<Scalar>,
    pub supplied: Option<Value>,
    pub expression: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Inputs {
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Template {
    pub name: String,
    #[serde(default)]
    pub inputs: Inputs,
    #[serde(default)]
    pub outputs: Inputs,
    pub container: Option<Container>,
    pub steps: Option<Vec<Vec<Step>>>,
    pub dag: Option<Dag>,
    pub suspend: Option<Suspend>,
    pub retry_strategy: Option<RetryStrategy>,
    pub active_deadline_seconds: Option<Scalar>,
    pub parallelism: Option<Scalar>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    pub synchronization: Option<Synchronization>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvFrom>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvFrom {
    pub field_ref: FieldRef,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FieldRef {
    pub field_path: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VolumeMount {
    pub name: String,
    pub mount_path: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Volume {
    pub name: String,
}

/// A step of a steps template or a task of a DAG (their fields overlap).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step {
    pub name: String,
    pub template: Option<String>,
    pub template_ref: Option<TemplateRef>,
    #[serde(default)]
    pub arguments: Arguments,
    pub when: Option<String>,
    pub with_items: Option<Vec<Value>>,
    pub with_param: Option<String>,
    pub continue_on: Option<ContinueOn>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    pub depends: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct TemplateRef {
    pub name: String,
    pub template: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(crate) struct ContinueOn {
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub error: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Dag {
    pub tasks: Vec<Step>,
    pub fail_fast: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Suspend {
    pub duration: Option<Scalar>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetryStrategy {
    pub limit: Option<Scalar>,
    pub retry_policy: Option<String>,
    pub expression: Option<String>,
    pub backoff: Option<Backoff>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Backoff {
    pub duration: Option<Scalar>,
    pub factor: Option<Scalar>,
    pub cap: Option<Scalar>,
    pub max_duration: Option<Scalar>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Synchronization {
    pub mutex: Option<NameRef>,
    #[serde(default)]
    pub mutexes: Vec<NameRef>,
}

impl Synchronization {
    pub(crate) fn names(&self) -> Vec<String> {
        self.mutex
            .iter()
            .chain(&self.mutexes)
            .map(|m| m.name.clone())
            .collect()
    }
}

/// An Argo duration: a number of seconds, or a Go duration string ("30s", "5m", "1h30m").
pub(crate) fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return (secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs));
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = t.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then(|| std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_mins(5)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_mins(90)));
        assert_eq!(parse_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("m"), None);
    }
}
