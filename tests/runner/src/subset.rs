//! The subset check: an explicit walk over each WorkflowTemplate and CronWorkflow that names the
//! first key the runner does not execute. Keys are either supported (executed), ignored (no
//! local effect: scheduling, pod placement, security, metrics, labels) or an error.

use serde_json::{Map, Value};

use crate::expr::{self, Lang};

/// Where a construct was found and what it is.
#[derive(Debug)]
pub(crate) struct Violation {
    pub template: Option<String>,
    pub construct: String,
    pub supported: String,
}

type Res = Result<(), Violation>;

/// Keys with no local effect, accepted wherever Argo accepts them.
const IGNORED_SPEC: &[&str] = &[
    "serviceAccountName",
    "podGC",
    "ttlStrategy",
    "podMetadata",
    "metrics",
    "securityContext",
    "archiveLogs",
    "workflowMetadata",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "podPriorityClassName",
    "imagePullSecrets",
    "automountServiceAccountToken",
    "podDisruptionBudget",
];
const IGNORED_TEMPLATE: &[&str] = &[
    "metadata",
    "metrics",
    "securityContext",
    "serviceAccountName",
    "automountServiceAccountToken",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
];
const IGNORED_CONTAINER: &[&str] = &["resources", "securityContext", "imagePullPolicy", "name"];
const IGNORED_CRON: &[&str] = &[
    "schedule",
    "schedules",
    "timezone",
    "concurrencyPolicy",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "suspend",
    "stopStrategy",
    "workflowMetadata",
    "when",
];
const TEMPLATE_TYPES: &str = "container, steps, dag, suspend";

struct Walk {
    template: Option<String>,
}

impl Walk {
    fn fail(&self, construct: impl Into<String>, supported: impl Into<String>) -> Violation {
        Violation {
            template: self.template.clone(),
            construct: construct.into(),
            supported: supported.into(),
        }
    }

    /// Every key of `obj` is in `supported` or `ignored`.
    fn keys(&self, obj: &Value, at: &str, supported: &[&str], ignored: &[&str]) -> Res {
        let Some(map) = obj.as_object() else {
            if obj.is_null() {
                return Ok(());
            }
            return Err(self.fail(format!("`{at}` (not a mapping)"), "a mapping"));
        };
        for key in map.keys() {
            if !supported.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
                let construct = if at.is_empty() {
                    format!("`{key}`")
                } else {
                    format!("`{at}.{key}`")
                };
                return Err(self.fail(construct, supported.join(", ")));
            }
        }
        Ok(())
    }

    fn list<'v>(&self, obj: &'v Value, key: &str) -> Result<&'v [Value], Violation> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.fail(format!("`{key}` (not a list)"), "a list")),
        }
    }

    fn params(&self, obj: &Value, at: &str, supported: &[&str]) -> Res {
        self.keys(obj, at, &["parameters"], &[])?;
        for p in self.list(obj, "parameters")? {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
            let here = format!("{at}.parameters[{name}]");
            self.keys(p, &here, supported, &["description"])?;
            if let Some(vf) = p.get("valueFrom") {
                let vf_keys: &[&str] = if at == "outputs" {
                    &["path", "default", "supplied", "expression"]
                } else {
                    &[]
                };
                self.keys(vf, &format!("{here}.valueFrom"), vf_keys, &[])?;
                if let Some(e) = vf.get("expression").and_then(Value::as_str) {
                    self.expression(
                        e,
                        &format!("{here}.valueFrom.expression"),
                        &[
                            "steps.",
                            "tasks.",
                            "inputs.parameters.",
                            "workflow.parameters.",
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn expression(&self, text: &str, at: &str, prefixes: &[&str]) -> Res {
        let ast = expr::parse(expr::unwrap_expression(text), Lang::Expr)
            .map_err(|e| self.fail(format!("`{at}` {text:?} ({e})"), "see README"))?;
        let mut vars = Vec::new();
        expr::variables(&ast, &mut vars);
        for v in vars {
            if !prefixes.iter().any(|p| v.starts_with(p)) {
                return Err(self.fail(
                    format!("variable `{v}` in `{at}`"),
                    prefixes.join("*, ") + "*",
                ));
            }
        }
        Ok(())
    }

    fn volumes(&self, obj: &Value) -> Res {
        for v in self.list(obj, "volumes")? {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            if let Some(kind) = v
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "name" && *k != "emptyDir"))
            {
                return Err(self.fail(format!("volume {name:?} of type `{kind}`"), "emptyDir"));
            }
        }
        Ok(())
    }

    fn sync(&self, obj: &Value) -> Res {
        let Some(s) = obj.get("synchronization") else {
            return Ok(());
        };
        self.keys(s, "synchronization", &["mutex", "mutexes"], &[])?;
        let mutexes = s.get("mutex").into_iter().chain(self.list(s, "mutexes")?);
        for m in mutexes {
            self.keys(m, "synchronization.mutex", &["name"], &[])?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn template(&mut self, t: &Value) -> Res {
        self.template = t.get("name").and_then(Value::as_str).map(str::to_owned);
        for kind in [
            "script",
            "resource",
            "http",
            "data",
            "containerSet",
            "plugin",
        ] {
            if t.get(kind).is_some() {
                return Err(self.fail(format!("`{kind}`"), TEMPLATE_TYPES));
            }
        }
        self.keys(
            t,
            "",
            &[
                "name",
                "inputs",
                "outputs",
                "container",
                "steps",
                "dag",
                "suspend",
                "retryStrategy",
                "activeDeadlineSeconds",
                "parallelism",
                "volumes",
                "synchronization",
            ],
            IGNORED_TEMPLATE,
        )?;
        let kinds = ["container", "steps", "dag", "suspend"]
            .iter()
            .filter(|k| t.get(**k).is_some())
            .count();
        if kinds != 1 {
            return Err(self.fail(
                format!("a template with {kinds} of container/steps/dag/suspend"),
                format!("exactly one of {TEMPLATE_TYPES}"),
            ));
        }
        if t.get("activeDeadlineSeconds").is_some() && t.get("container").is_none() {
            return Err(self.fail(
                "`activeDeadlineSeconds` on a steps, dag or suspend template",
                "activeDeadlineSeconds on container templates and on the workflow spec",
            ));
        }
        if let Some(i) = t.get("inputs") {
            self.params(i, "inputs", &["name", "value", "default", "enum"])?;
        }
        if let Some(o) = t.get("outputs") {
            self.params(o, "outputs", &["name", "valueFrom", "globalName"])?;
        }
        self.volumes(t)?;
        self.sync(t)?;
        if let Some(r) = t.get("retryStrategy") {
            self.keys(
                r,
                "retryStrategy",
                &["limit", "retryPolicy", "expression", "backoff"],
                &[],
            )?;
            if let Some(b) = r.get("backoff") {
                self.keys(
                    b,
                    "retryStrategy.backoff",
                    &["duration", "factor", "cap", "maxDuration"],
                    &[],
                )?;
            }
            if let Some(p) = r.get("retryPolicy").and_then(Value::as_str) {
                let ok = ["Always", "OnFailure", "OnError", "OnTransientError"];
                if !ok.contains(&p) {
                    return Err(self.fail(format!("retryPolicy {p:?}"), ok.join(", ")));
                }
            }
            if let Some(e) = r.get("expression").and_then(Value::as_str) {
                self.expression(e, "retryStrategy.expression", &["lastRetry."])?;
            }
        }
        if let Some(s) = t.get("suspend") {
            self.keys(s, "suspend", &["duration"], &[])?;
        }
        if let Some(c) = t.get("container") {
            self.keys(
                c,
                "container",
                &["image", "command", "args", "env", "volumeMounts"],
                IGNORED_CONTAINER,
            )?;
            for e in self.list(c, "env")? {
                self.keys(e, "container.env", &["name", "value", "valueFrom"], &[])?;
                if let Some(vf) = e.get("valueFrom") {
                    self.keys(vf, "container.env.valueFrom", &["fieldRef"], &[])?;
                    let path = vf.pointer("/fieldRef/fieldPath").and_then(Value::as_str);
                    if !matches!(path, Some("metadata.namespace" | "metadata.name")) {
                        return Err(self.fail(
                            format!("env fieldRef {path:?}"),
                            "metadata.namespace, metadata.name",
                        ));
                    }
                }
            }
            for m in self.list(c, "volumeMounts")? {
                self.keys(
                    m,
                    "container.volumeMounts",
                    &["name", "mountPath"],
                    &["readOnly"],
                )?;
            }
        }
        for (gi, group) in self.list(t, "steps")?.iter().enumerate() {
            let Some(group) = group.as_array() else {
                return Err(self.fail(format!("`steps[{gi}]` (not a list)"), "a list of steps"));
            };
            for step in group {
                self.step(step, &format!("steps[{gi}]"), false)?;
            }
        }
        if let Some(d) = t.get("dag") {
            self.keys(d, "dag", &["tasks", "failFast"], &[])?;
            for task in self.list(d, "tasks")? {
                self.step(task, "dag.tasks", true)?;
            }
        }
        Ok(())
    }

    fn step(&self, s: &Value, at: &str, dag: bool) -> Res {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
        let at = format!("{at}[{name}]");
        let mut keys = vec![
            "name",
            "template",
            "templateRef",
            "arguments",
            "when",
            "withItems",
            "withParam",
            "continueOn",
        ];
        if dag {
            keys.extend(["dependencies", "depends"]);
        }
        self.keys(s, &at, &keys, &["description"])?;
        if let Some(r) = s.get("templateRef") {
            self.keys(r, &format!("{at}.templateRef"), &["name", "template"], &[])?;
        }
        if let Some(a) = s.get("arguments") {
            self.params(a, &format!("{at}.arguments"), &["name", "value"])?;
        }
        if let Some(c) = s.get("continueOn") {
            self.keys(c, &format!("{at}.continueOn"), &["failed", "error"], &[])?;
        }
        if let Some(d) = s.get("depends").and_then(Value::as_str) {
            crate::dag::parse_depends(d).map_err(|e| {
                self.fail(
                    format!("`{at}.depends` {d:?} ({e})"),
                    "task names with .Succeeded/.Failed/.Errored/.Skipped/.Omitted, &&, ||, !, ()",
                )
            })?;
        }
        if s.get("template").is_none() && s.get("templateRef").is_none() {
            return Err(self.fail(
                format!("`{at}` without template or templateRef"),
                "template, templateRef",
            ));
        }
        Ok(())
    }
}

/// `{{=` anywhere but a retry expression.
fn find_expression_tag(v: &Value, at: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains("{{=") => Some(at.to_owned()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_expression_tag(x, &format!("{at}[{i}]"))),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "retryStrategy")
            .find_map(|(k, x)| find_expression_tag(x, &format!("{at}.{k}"))),
        _ => None,
    }
}

fn spec_common(w: &mut Walk, spec: &Value) -> Res {
    w.volumes(spec)?;
    w.sync(spec)?;
    if let Some(a) = spec.get("arguments") {
        w.params(a, "arguments", &["name", "value", "enum"])?;
    }
    Ok(())
}

/// Checks a WorkflowTemplate's spec.
pub(crate) fn check_workflow_template(spec: &Value) -> Res {
    let mut w = Walk { template: None };
    w.keys(
        spec,
        "spec",
        &[
            "entrypoint",
            "onExit",
            "arguments",
            "templates",
            "synchronization",
            "parallelism",
            "activeDeadlineSeconds",
            "volumes",
        ],
        IGNORED_SPEC,
    )?;
    spec_common(&mut w, spec)?;
    for t in w.list(spec, "templates")?.to_vec() {
        w.template(&t)?;
        if let Some(at) = find_expression_tag(&t, "") {
            return Err(w.fail(
                format!("an `{{{{=` expression at `{}`", at.trim_start_matches('.')),
                "simple {{…}} tags; {{=…}} only in retryStrategy.expression",
            ));
        }
    }
    w.template = None;
    let top: Map<String, Value> = spec
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "templates")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(at) = find_expression_tag(&Value::Object(top), "spec") {
        return Err(w.fail(
            format!("an `{{{{=` expression at `{at}`"),
            "simple {{…}} tags",
        ));
    }
    Ok(())
}

/// Checks a CronWorkflow's spec.
pub(crate) fn check_cron(spec: &Value) -> Res {
    let mut w = Walk { template: None };
    w.keys(spec, "spec", &["workflowSpec"], IGNORED_CRON)?;
    let ws = spec.get("workflowSpec").unwrap_or(&Value::Null);
    w.keys(
        ws,
        "spec.workflowSpec",
        &["workflowTemplateRef", "arguments"],
        IGNORED_SPEC,
    )?;
    if let Some(r) = ws.get("workflowTemplateRef") {
        w.keys(r, "spec.workflowSpec.workflowTemplateRef", &["name"], &[])?;
    } else {
        return Err(w.fail(
            "a workflowSpec without workflowTemplateRef",
            "workflowTemplateRef + arguments",
        ));
    }
    spec_common(&mut w, ws)?;
    if let Some(at) = find_expression_tag(spec, "spec") {
        return Err(w.fail(
            format!("an `{{{{=` expression at `{at}`"),
            "simple {{…}} tags",
        ));
    }
    Ok(())
}
