//! opsteps' own rules for Argo documents: references resolve, tags resolve in their scope,
//! parameters are described, enums hold their defaults, leaves have a deadline above the step's
//! `--timeout` and retry on exit 3 only, flags are the binary's, pods are locked down.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::flags::{Arity, Steps};
use crate::tags;
use crate::{Doc, Finding, Rule};

/// The one retry rule: exit 3 is "transient, safe to retry" (STYLE.md 9).
pub const RETRY_EXPRESSION: &str = "asInt(lastRetry.exitCode) == 3";

/// `workflow.*` variables that need no declaration.
const WORKFLOW_VARS: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "status",
    "failures",
    "duration",
    "serviceAccountName",
    "mainEntrypoint",
    "creationTimestamp",
    "priority",
    "scheduledTime",
];

/// Node fields any step or task exposes besides outputs.
const NODE_FIELDS: [&str; 7] = [
    "status",
    "exitCode",
    "id",
    "ip",
    "startedAt",
    "finishedAt",
    "hostNodeName",
];

struct Ctx<'a> {
    doc: &'a Doc,
    all: &'a [&'a Doc],
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn push(&mut self, rule: Rule, message: String) {
        self.out.push(Finding {
            file: self.doc.file.clone(),
            object: self.doc.object(),
            rule,
            message,
        });
    }
}

/// The workflow spec of a document (a CronWorkflow's `workflowSpec`).
fn spec(doc: &Doc) -> &Value {
    if doc.kind() == "CronWorkflow" {
        &doc.value["spec"]["workflowSpec"]
    } else {
        &doc.value["spec"]
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn names(params: &Value) -> BTreeSet<String> {
    arr(params)
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// A parameter's declared value: `value`, else `default`.
fn declared(p: &Value) -> Option<&str> {
    p["value"].as_str().or_else(|| p["default"].as_str())
}

fn is_leaf(t: &Value) -> bool {
    t.get("container").is_some() || t.get("script").is_some() || t.get("containerSet").is_some()
}

/// Checks one Argo document; `all` holds every document references may resolve to.
#[must_use]
pub fn check(doc: &Doc, all: &[&Doc], steps: &Steps) -> Vec<Finding> {
    let mut cx = Ctx {
        doc,
        all,
        out: Vec::new(),
    };
    let spec = spec(doc);
    let globals = names(&spec["arguments"]["parameters"]);
    // Declarations: described, enum holds the default.
    if doc.kind() != "CronWorkflow" {
        for p in arr(&spec["arguments"]["parameters"]) {
            declaration(&mut cx, p, "spec.arguments");
        }
    }
    if let Some(r) = spec["workflowTemplateRef"]["name"].as_str() {
        workflow_template_ref(&mut cx, r, &spec["arguments"]["parameters"]);
    }
    if let Some(e) = spec["entrypoint"].as_str() {
        local(&mut cx, e, "spec.entrypoint");
    }
    if let Some(e) = spec["onExit"].as_str() {
        local(&mut cx, e, "spec.onExit");
    }
    // Workflow-level strings (everything but templates) see only the globals.
    for (k, v) in spec.as_object().into_iter().flatten() {
        if k != "templates" {
            for t in tags::collect(v, &format!("spec/{k}")) {
                if let Err(e) = resolve(&t.body, &Scope::global(&globals)) {
                    cx.push(Rule::Tag, format!("{{{{{}}}}} at {}: {e}", t.body, t.path));
                }
            }
        }
    }
    for t in arr(&spec["templates"]) {
        template(&mut cx, t, &globals, spec, steps);
    }
    cx.out
}

fn declaration(cx: &mut Ctx, p: &Value, whose: &str) {
    let name = p["name"].as_str().unwrap_or("?");
    if p["description"]
        .as_str()
        .is_none_or(|d| d.trim().is_empty())
    {
        cx.push(
            Rule::Description,
            format!("parameter {name:?} of {whose} has no description (the UI shows it on Submit and Resubmit)"),
        );
    }
    if let Some(e) = p["enum"].as_array() {
        let members: Vec<&str> = e.iter().filter_map(Value::as_str).collect();
        match declared(p) {
            Some(v) if !members.contains(&v) && tags::in_str(v).is_empty() => cx.push(
                Rule::Enum,
                format!(
                    "parameter {name:?} of {whose}: default {v:?} is not in its enum {members:?}"
                ),
            ),
            None if !p["valueFrom"].is_object() => cx.push(
                Rule::Enum,
                format!(
                    "parameter {name:?} of {whose} has an enum but no default (one of {members:?})"
                ),
            ),
            _ => {}
        }
    }
}

fn find_doc<'a>(cx: &Ctx<'a>, kind: &str, name: &str) -> Option<&'a Doc> {
    cx.all
        .iter()
        .copied()
        .find(|d| d.kind() == kind && d.name() == name)
}

fn workflow_template_ref(cx: &mut Ctx, name: &str, args: &Value) {
    let Some(target) = find_doc(cx, "WorkflowTemplate", name) else {
        cx.push(
            Rule::TemplateRef,
            format!("workflowTemplateRef {name:?}: no WorkflowTemplate of that name"),
        );
        return;
    };
    let declared_params = &target.value["spec"]["arguments"]["parameters"];
    pass_arguments(
        cx,
        args,
        declared_params,
        &format!("WorkflowTemplate/{name}"),
        true,
    );
}

/// Arguments passed to a template or workflow: each is declared there, and a literal value for
/// a parameter with an enum is a member. With `all_required`, every declared parameter without
/// a value must be passed.
fn pass_arguments(cx: &mut Ctx, args: &Value, params: &Value, to: &str, all_required: bool) {
    let passed = names(args);
    for a in arr(args) {
        let n = a["name"].as_str().unwrap_or("?");
        let Some(p) = arr(params).iter().find(|p| p["name"] == n) else {
            cx.push(
                Rule::TemplateRef,
                format!(
                    "argument {n:?} is not a parameter of {to} (it has {:?})",
                    names(params)
                ),
            );
            continue;
        };
        if let (Some(v), Some(e)) = (a["value"].as_str(), p["enum"].as_array())
            && tags::in_str(v).is_empty()
            && !e.iter().any(|m| m == v)
        {
            cx.push(
                Rule::Enum,
                format!("argument {n:?} = {v:?} passed to {to} is not in its enum {e:?}"),
            );
        }
    }
    if all_required {
        for p in arr(params) {
            let n = p["name"].as_str().unwrap_or("?");
            if declared(p).is_none() && !p["valueFrom"].is_object() && !passed.contains(n) {
                cx.push(
                    Rule::TemplateRef,
                    format!("{to} needs parameter {n:?}, which is not passed"),
                );
            }
        }
    }
}

fn local(cx: &mut Ctx, name: &str, at: &str) {
    if !arr(&spec(cx.doc)["templates"])
        .iter()
        .any(|t| t["name"] == name)
    {
        cx.push(
            Rule::TemplateRef,
            format!("{at}: no template {name:?} in this document"),
        );
    }
}

/// The template a step or task runs (local `template` or `templateRef`), with the document that
/// holds it. Reports what does not resolve.
fn target<'a>(cx: &mut Ctx<'a>, step: &Value, at: &str) -> Option<(&'a Value, &'a Doc)> {
    if let Some(name) = step["template"].as_str() {
        let doc = cx.doc;
        let t = arr(&spec(doc)["templates"])
            .iter()
            .find(|t| t["name"] == name);
        if t.is_none() {
            cx.push(
                Rule::TemplateRef,
                format!("{at}: no template {name:?} in this document"),
            );
        }
        return t.map(|t| (t, doc));
    }
    let r = &step["templateRef"];
    let (Some(name), Some(tname)) = (r["name"].as_str(), r["template"].as_str()) else {
        cx.push(
            Rule::TemplateRef,
            format!("{at}: neither template nor templateRef {{name, template}}"),
        );
        return None;
    };
    let kind = if r["clusterScope"] == true {
        "ClusterWorkflowTemplate"
    } else {
        "WorkflowTemplate"
    };
    let Some(doc) = find_doc(cx, kind, name) else {
        cx.push(
            Rule::TemplateRef,
            format!("{at}: templateRef {name}/{tname}: no {kind} named {name:?}"),
        );
        return None;
    };
    let t = arr(&doc.value["spec"]["templates"])
        .iter()
        .find(|t| t["name"] == tname);
    if t.is_none() {
        cx.push(
            Rule::TemplateRef,
            format!("{at}: templateRef {name}/{tname}: {kind} {name} has no template {tname:?}"),
        );
    }
    t.map(|t| (t, doc))
}

/// What a tag may name at one place.
#[derive(Clone, Default)]
struct Scope<'a> {
    globals: Option<&'a BTreeSet<String>>,
    inputs: BTreeSet<String>,
    artifacts: BTreeSet<String>,
    outputs: BTreeSet<String>,
    leaf: bool,
    metrics: bool,
    item: bool,
    /// `steps` or `tasks`, and the nodes visible with what their template outputs.
    prefix: &'static str,
    nodes: Vec<(String, Option<NodeOutputs>)>,
}

#[derive(Clone)]
struct NodeOutputs {
    parameters: BTreeSet<String>,
    /// Outputs whose default is a JSON array, so a `withParam` over them always gets JSON.
    json_arrays: BTreeSet<String>,
    result: bool,
}

impl<'a> Scope<'a> {
    fn global(globals: &'a BTreeSet<String>) -> Self {
        Self {
            globals: Some(globals),
            ..Self::default()
        }
    }
}

// One arm per family of variables reads better than merged patterns.
#[allow(clippy::match_same_arms)]
fn resolve(body: &str, s: &Scope) -> Result<(), String> {
    if body.starts_with('=') {
        return Err("expression tags ({{=…}}) are not allowed: use a plain tag (the local runner and this check evaluate only plain ones)".into());
    }
    let parts: Vec<&str> = body.split('.').collect();
    let has = |set: &BTreeSet<String>, n: &str, what: &str| {
        if set.contains(n) {
            Ok(())
        } else {
            Err(format!("no {what} {n:?} here (declared: {set:?})"))
        }
    };
    match parts.as_slice() {
        ["workflow", "parameters", n] => has(
            s.globals.unwrap_or(&BTreeSet::new()),
            n,
            "workflow parameter",
        ),
        ["workflow", "parameters"] => Ok(()),
        [
            "workflow",
            "labels" | "annotations" | "creationTimestamp",
            _,
        ] => Ok(()),
        ["workflow", v] if WORKFLOW_VARS.contains(v) => Ok(()),
        ["inputs", "parameters", n] => has(&s.inputs, n, "input parameter"),
        ["inputs", "parameters"] => Ok(()),
        ["inputs", "artifacts", n] => has(&s.artifacts, n, "input artifact"),
        ["outputs", "parameters", n] if s.metrics => has(&s.outputs, n, "output parameter"),
        ["outputs", "result"] if s.metrics && s.leaf => Ok(()),
        ["status" | "duration" | "exitCode"] if s.metrics => Ok(()),
        ["resourcesDuration", "cpu" | "memory"] if s.metrics => Ok(()),
        ["pod" | "node", "name"] | ["retries"] => Ok(()),
        ["item", ..] if s.item => Ok(()),
        ["item", ..] => Err("{{item}} outside a step or task with withItems/withParam".into()),
        [p, n, rest @ ..] if *p == s.prefix && !p.is_empty() => {
            let Some((_, outputs)) = s.nodes.iter().find(|(m, _)| m == n) else {
                return Err(format!(
                    "no {p} {n:?} has run before this point (visible: {:?})",
                    s.nodes.iter().map(|(m, _)| m).collect::<Vec<_>>()
                ));
            };
            match (rest, outputs) {
                ([f], _) if NODE_FIELDS.contains(f) => Ok(()),
                (["outputs", "parameters", o], Some(out)) => {
                    has(&out.parameters, o, "output parameter")
                }
                (["outputs", "result"], Some(out)) if out.result => Ok(()),
                (["outputs", "result"], Some(_)) => Err(format!(
                    "{p}.{n} runs no container or script, so it has no result"
                )),
                (_, None) => Ok(()), // unresolved target: already reported
                _ => Err(format!("unknown field of {p}.{n}")),
            }
        }
        _ => Err("unknown variable".into()),
    }
}

fn outputs_of(t: &Value) -> NodeOutputs {
    let is_array = |v: &Value| {
        v.as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .is_some_and(|j| j.is_array())
    };
    NodeOutputs {
        parameters: names(&t["outputs"]["parameters"]),
        json_arrays: arr(&t["outputs"]["parameters"])
            .iter()
            .filter(|p| is_array(&p["valueFrom"]["default"]))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect(),
        result: is_leaf(t),
    }
}

/// A `withParam` must name something that is always a JSON array: an output with a JSON-array
/// default (a producer that wrote nothing still yields `[]`), a workflow parameter whose value
/// is one, or an input parameter (its caller's concern).
fn with_param(
    cx: &mut Ctx,
    st: &Value,
    at: &str,
    seen: &[(String, Option<NodeOutputs>)],
    wf: &Value,
) {
    let Some(w) = st["withParam"].as_str() else {
        return;
    };
    let bodies = tags::in_str(w);
    let parts: Vec<&str> = match bodies.as_slice() {
        [b] if w.trim() == format!("{{{{{b}}}}}") => b.split('.').collect(),
        _ => Vec::new(),
    };
    let ok = match parts.as_slice() {
        ["steps" | "tasks", n, "outputs", "parameters", p] => seen
            .iter()
            .find(|(m, _)| m == n)
            .is_none_or(|(_, o)| o.as_ref().is_none_or(|o| o.json_arrays.contains(*p))),
        ["workflow", "parameters", n] => arr(&wf["arguments"]["parameters"])
            .iter()
            .find(|q| q["name"] == *n)
            .and_then(declared)
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .is_some_and(|j| j.is_array()),
        ["inputs", "parameters", _] => true,
        _ => false,
    };
    if !ok {
        cx.push(
            Rule::Tag,
            format!("{at}: withParam {w:?} is not always a JSON array (use one output with a JSON-array default, e.g. \"[]\", or a parameter whose value is one)"),
        );
    }
}

fn template(cx: &mut Ctx, t: &Value, globals: &BTreeSet<String>, wf: &Value, steps: &Steps) {
    let tname = t["name"].as_str().unwrap_or("?").to_owned();
    let whose = format!("template {tname:?}");
    for p in arr(&t["inputs"]["parameters"]) {
        declaration(cx, p, &whose);
    }
    let base = Scope {
        globals: Some(globals),
        inputs: names(&t["inputs"]["parameters"]),
        artifacts: names(&t["inputs"]["artifacts"]),
        outputs: names(&t["outputs"]["parameters"]),
        leaf: is_leaf(t),
        ..Scope::default()
    };
    let check_tags = |cx: &mut Ctx, v: &Value, path: &str, scope: &Scope| {
        for tag in tags::collect(v, path) {
            if let Err(e) = resolve(&tag.body, scope) {
                cx.push(
                    Rule::Tag,
                    format!("{whose}: {{{{{}}}}} at {}: {e}", tag.body, tag.path),
                );
            }
        }
    };
    for (k, v) in t.as_object().into_iter().flatten() {
        match k.as_str() {
            "steps" | "dag" => {}
            "metrics" => {
                let s = Scope {
                    metrics: true,
                    ..base.clone()
                };
                check_tags(cx, v, k, &s);
            }
            _ => check_tags(cx, v, k, &base),
        }
    }
    // Steps: outer groups in sequence; a step sees the steps of earlier groups.
    let mut seen: Vec<(String, Option<NodeOutputs>)> = Vec::new();
    for (g, group) in arr(&t["steps"]).iter().enumerate() {
        let mut this_group = Vec::new();
        for (i, st) in arr(group).iter().enumerate() {
            let sname = st["name"].as_str().unwrap_or("?").to_owned();
            let at = format!("{whose} step {sname:?}");
            let target = node(cx, st, &at, wf);
            let s = Scope {
                prefix: "steps",
                nodes: seen.clone(),
                item: loops(st),
                ..base.clone()
            };
            check_tags(cx, st, &format!("steps/{g}/{i}"), &s);
            with_param(cx, st, &at, &seen, wf);
            this_group.push((sname, target.map(|(t, _)| outputs_of(t))));
        }
        seen.extend(this_group);
    }
    // DAG: a task sees every other task (dependencies are Argo's to order).
    let tasks = arr(&t["dag"]["tasks"]);
    let mut all_tasks = Vec::new();
    let mut pending = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let n = task["name"].as_str().unwrap_or("?").to_owned();
        let at = format!("{whose} task {n:?}");
        let target = node(cx, task, &at, wf);
        all_tasks.push((n.clone(), target.map(|(t, _)| outputs_of(t))));
        pending.push((i, n));
    }
    for (i, n) in pending {
        let task = &tasks[i];
        let s = Scope {
            prefix: "tasks",
            nodes: all_tasks.iter().filter(|(m, _)| *m != n).cloned().collect(),
            item: loops(task),
            ..base.clone()
        };
        check_tags(cx, task, &format!("dag/tasks/{i}"), &s);
        with_param(cx, task, &format!("{whose} task {n:?}"), &s.nodes, wf);
    }
    // An approval must wait for a person: a duration would resume it with the default.
    if t["suspend"].get("duration").is_some() && !arr(&t["inputs"]["parameters"]).is_empty() {
        cx.push(
            Rule::Enum,
            format!("{whose}: a suspend with intermediate parameters has a duration, so it would resume by itself with the defaults"),
        );
    }
    if is_leaf(t) {
        leaf(cx, t, &tname, wf, steps);
    } else if t.get("retryStrategy").is_some() {
        cx.push(
            Rule::Retry,
            format!("{whose} is not a container template but has a retryStrategy: a retry there re-runs its whole subtree; retry on the leaves"),
        );
    }
}

fn loops(st: &Value) -> bool {
    st.get("withItems").is_some()
        || st.get("withParam").is_some()
        || st.get("withSequence").is_some()
}

/// Resolves a step's or task's template, checks the arguments it passes, and that a template
/// from another document only uses workflow parameters the caller declares.
fn node<'a>(cx: &mut Ctx<'a>, st: &Value, at: &str, wf: &Value) -> Option<(&'a Value, &'a Doc)> {
    let found = target(cx, st, at)?;
    let (t, owner) = found;
    pass_arguments(
        cx,
        &st["arguments"]["parameters"],
        &t["inputs"]["parameters"],
        &format!("{at} (template {:?})", t["name"].as_str().unwrap_or("?")),
        true,
    );
    if !std::ptr::eq(owner, cx.doc) {
        let caller = names(&wf["arguments"]["parameters"]);
        for tag in tags::collect(t, "") {
            if let Some(n) = tag.body.strip_prefix("workflow.parameters.")
                && !caller.contains(n)
            {
                cx.push(
                    Rule::Tag,
                    format!(
                        "{at}: template {} uses {{{{workflow.parameters.{n}}}}}, which this workflow does not declare",
                        owner.object()
                    ),
                );
            }
        }
    }
    Some(found)
}

/// Resolves a value to the strings it can take: a literal is itself; `{{inputs.parameters.X}}`
/// is X's enum if it has one, else its default. `None`: not resolvable statically.
fn values_of(v: &str, t: &Value) -> Option<Vec<String>> {
    let ts = tags::in_str(v);
    if ts.is_empty() {
        return Some(vec![v.to_owned()]);
    }
    let [only] = ts.as_slice() else { return None };
    let n = only.strip_prefix("inputs.parameters.")?;
    let p = arr(&t["inputs"]["parameters"])
        .iter()
        .find(|p| p["name"] == n)?;
    let subst = |x: &str| {
        v.replace(&format!("{{{{{only}}}}}"), x)
            .replace(&format!("{{{{ {only} }}}}"), x)
    };
    if let Some(e) = p["enum"].as_array() {
        return Some(e.iter().filter_map(Value::as_str).map(subst).collect());
    }
    declared(p).map(|d| vec![subst(d)])
}

/// Seconds in a Go duration (`1h30m`, `90s`, `500ms`).
#[must_use]
pub fn go_duration_secs(s: &str) -> Option<f64> {
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += num
            * match &rest[..u] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
        rest = &rest[u..];
    }
    Some(total)
}

// `t` (template), `c` (container) and `cx` are used throughout this module.
#[allow(clippy::many_single_char_names)]
fn leaf(cx: &mut Ctx, t: &Value, tname: &str, wf: &Value, steps: &Steps) {
    let whose = format!("template {tname:?}");
    retry(cx, &t["retryStrategy"], &whose);
    security(cx, t, wf, &whose);
    for o in arr(&t["outputs"]["parameters"]) {
        let v = &o["valueFrom"];
        if v.get("path").is_some() && v.get("default").is_none() {
            cx.push(
                Rule::Output,
                format!(
                    "{whose}: output {} is read from {} without a default: a run that stops early fails the node, and a consumer skipped by `when` sees it absent",
                    o["name"], v["path"]
                ),
            );
        }
    }
    let c = if t.get("script").is_some() {
        &t["script"]
    } else {
        &t["container"]
    };
    let step = c["command"][0]
        .as_str()
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
    let Some(step) = step else {
        cx.push(
            Rule::Flag,
            format!("{whose}: container has no command naming the step binary"),
        );
        return;
    };
    let cli = match steps.cli(&step) {
        Ok(c) => c,
        Err(e) => {
            cx.push(Rule::Flag, format!("{whose} runs {step}: {e}"));
            return;
        }
    };
    let bin = cli.binary.display().to_string();
    let args: Vec<&str> = arr(&c["args"]).iter().filter_map(Value::as_str).collect();
    // The target guard is not optional: a wrong `cluster` must never act on another cluster.
    if cli.flags.contains_key("expect-cluster")
        && !args.iter().any(|a| a.starts_with("--expect-cluster"))
    {
        cx.push(
            Rule::Flag,
            format!("{whose} does not pass --expect-cluster (the guard against acting on the wrong cluster)"),
        );
    }
    let image = format!(
        "{{{{inputs.parameters.registry}}}}/{step}:{}",
        env!("CARGO_PKG_VERSION")
    );
    if c["image"] != image.as_str() {
        cx.push(
            Rule::Security,
            format!(
                "{whose}: image {} must be {image:?} (registry parameter, workspace version)",
                c["image"]
            ),
        );
    }
    let timeouts = check_args(cx, t, &whose, &step, &cli, &args);
    deadline(cx, t, &whose, &bin, cli.flags.get("timeout"), timeouts);
}

/// Checks each argument against the binary's flags; returns the values `--timeout` can take.
#[allow(clippy::many_single_char_names)]
fn check_args(
    cx: &mut Ctx,
    t: &Value,
    whose: &str,
    step: &str,
    cli: &crate::flags::Cli,
    args: &[&str],
) -> Option<Vec<String>> {
    let bin = cli.binary.display().to_string();
    let mut timeouts: Option<Vec<String>> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        let Some(long) = a.strip_prefix("--") else {
            cx.push(
                Rule::Flag,
                format!("{whose}: argument {a:?} is not a --flag ({step} takes no positional arguments here)"),
            );
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let Some(flag) = cli.flags.get(name) else {
            cx.push(
                Rule::Flag,
                format!("{whose} passes --{name}, which {bin} does not accept (not in its --help)"),
            );
            continue;
        };
        let value = match (flag.arity, inline) {
            (Arity::None, Some(_)) => {
                cx.push(
                    Rule::Flag,
                    format!("{whose}: --{name} of {bin} is a switch and takes no value"),
                );
                continue;
            }
            (_, Some(v)) => Some(v),
            (Arity::Required, None) => {
                let v = args.get(i).copied();
                i += 1;
                if v.is_none() {
                    cx.push(
                        Rule::Flag,
                        format!("{whose}: --{name} of {bin} needs a value"),
                    );
                }
                v
            }
            _ => None,
        };
        let Some(value) = value else { continue };
        let vals = values_of(value, t);
        if name == "timeout" {
            timeouts.clone_from(&vals);
        }
        if !flag.possible.is_empty() {
            for v in vals.into_iter().flatten() {
                if !flag.possible.contains(&v) {
                    cx.push(
                        Rule::Flag,
                        format!("{whose}: --{name} {v:?} is not accepted by {bin} (possible values: {:?})", flag.possible),
                    );
                }
            }
        }
    }
    timeouts
}

fn deadline(
    cx: &mut Ctx,
    t: &Value,
    whose: &str,
    bin: &str,
    flag: Option<&crate::flags::Flag>,
    passed: Option<Vec<String>>,
) {
    let ads = &t["activeDeadlineSeconds"];
    let secs = ads.as_f64().or_else(|| {
        let s = ads.as_str()?;
        s.parse()
            .ok()
            .or_else(|| values_of(s, t)?.first()?.parse().ok())
    });
    let Some(secs) = secs else {
        cx.push(
            Rule::Deadline,
            format!("{whose} has no activeDeadlineSeconds (a number, or an input parameter with a numeric default)"),
        );
        return;
    };
    let Some(default) = flag else {
        cx.push(
            Rule::Deadline,
            format!("{whose}: {bin} has no --timeout, so no deadline can be shown to cover it"),
        );
        return;
    };
    let values = passed
        .or_else(|| default.default.clone().map(|d| vec![d]))
        .unwrap_or_default();
    for v in values {
        match go_duration_secs(&v) {
            Some(0.0) => cx.push(
                Rule::Deadline,
                format!("{whose}: --timeout {v:?} means no limit; pass a finite --timeout below activeDeadlineSeconds {secs}"),
            ),
            Some(tmo) if tmo >= secs => cx.push(
                Rule::Deadline,
                format!("{whose}: activeDeadlineSeconds {secs} is not above the step's --timeout {v:?} ({tmo}s): Argo would kill the step before it gives up cleanly"),
            ),
            Some(_) => {}
            None => cx.push(
                Rule::Deadline,
                format!("{whose}: --timeout {v:?} is not a Go duration this check can read"),
            ),
        }
    }
}

fn retry(cx: &mut Ctx, r: &Value, whose: &str) {
    if !r.is_object() {
        cx.push(
            Rule::Retry,
            format!("{whose} has no retryStrategy (expected expression {RETRY_EXPRESSION:?})"),
        );
        return;
    }
    let norm = |s: &str| s.split_whitespace().collect::<String>();
    match r["expression"].as_str() {
        Some(e) if norm(e) == norm(RETRY_EXPRESSION) => {}
        Some(e) => cx.push(
            Rule::Retry,
            format!("{whose}: retryStrategy.expression {e:?} must be {RETRY_EXPRESSION:?}: only exit 3 (transient) is safe to retry"),
        ),
        None => cx.push(
            Rule::Retry,
            format!("{whose}: retryStrategy has no expression, so it retries on every error; add expression {RETRY_EXPRESSION:?}"),
        ),
    }
    match r["retryPolicy"].as_str() {
        Some("Always" | "OnFailure") => {}
        other => cx.push(
            Rule::Retry,
            format!("{whose}: retryStrategy.retryPolicy {other:?} must be stated, Always or OnFailure (OnError never sees an exit code)"),
        ),
    }
    if r.get("limit").is_none() {
        cx.push(Rule::Retry, format!("{whose}: retryStrategy has no limit"));
    }
    for k in ["duration", "factor", "maxDuration", "cap"] {
        if r["backoff"].get(k).is_none() {
            cx.push(
                Rule::Retry,
                format!("{whose}: retryStrategy.backoff has no {k} (backoff must be capped)"),
            );
        }
    }
}

fn security(cx: &mut Ctx, t: &Value, wf: &Value, whose: &str) {
    let sa = t["serviceAccountName"]
        .as_str()
        .or_else(|| wf["serviceAccountName"].as_str());
    if sa.is_none_or(|s| s == "default") {
        cx.push(
            Rule::Security,
            format!("{whose}: no explicit serviceAccountName (never default)"),
        );
    }
    let pod = t.get("securityContext").unwrap_or(&wf["securityContext"]);
    let c = if t.get("script").is_some() {
        &t["script"]
    } else {
        &t["container"]
    };
    let csc = &c["securityContext"];
    let checks: [(bool, &str); 7] = [
        (
            pod["runAsNonRoot"] == true,
            "securityContext.runAsNonRoot: true",
        ),
        (
            pod["runAsUser"] == 65532,
            "securityContext.runAsUser: 65532",
        ),
        (
            pod["seccompProfile"]["type"] == "RuntimeDefault",
            "securityContext.seccompProfile.type: RuntimeDefault",
        ),
        (
            csc["readOnlyRootFilesystem"] == true,
            "container securityContext.readOnlyRootFilesystem: true",
        ),
        (
            csc["allowPrivilegeEscalation"] == false,
            "container securityContext.allowPrivilegeEscalation: false",
        ),
        (
            arr(&csc["capabilities"]["drop"]).iter().any(|d| d == "ALL"),
            "container securityContext.capabilities.drop: [ALL]",
        ),
        (
            c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(),
            "container resources.requests and limits",
        ),
    ];
    for (ok, what) in checks {
        if !ok {
            cx.push(Rule::Security, format!("{whose}: missing {what}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs("1h30m"), Some(5400.0));
        assert_eq!(go_duration_secs("90s"), Some(90.0));
        assert_eq!(go_duration_secs("0"), Some(0.0));
        assert_eq!(go_duration_secs("5"), None);
        assert_eq!(go_duration_secs("1d"), None);
    }

    #[test]
    fn scopes() {
        let g: BTreeSet<String> = ["cluster".to_owned()].into();
        let s = Scope::global(&g);
        assert!(resolve("workflow.parameters.cluster", &s).is_ok());
        assert!(resolve("workflow.parameters.clustr", &s).is_err());
        assert!(resolve("workflow.status", &s).is_ok());
        assert!(resolve("inputs.parameters.x", &s).is_err());
        assert!(resolve("item", &s).is_err());
        assert!(resolve("=sprig.upper('x')", &s).is_err());
        assert!(resolve("status", &s).is_err());
    }
}
