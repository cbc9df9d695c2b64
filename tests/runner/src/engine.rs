//! One run: node bookkeeping, templates, retries, steps, suspend. DAGs are in `engine_dag.rs`,
//! containers in `pod.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, join_all};
use tokio::sync::{Semaphore, watch};

use crate::expr::{self, Lang};
use crate::load::WfTemplate;
use crate::model::{Parameter, RetryStrategy, Step, Template, parse_duration};
use crate::runner::Runner;
use crate::scope::{Outcome, Scope, StepRes, item_label, substitute};
use crate::workflow::{Event, Node, NodeKind, Phase};

/// Argo's node ids hash the node's full name (FNV-1a, 32 bits).
pub(crate) fn fnv32a(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[derive(Default)]
struct State {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    starts: HashMap<String, Instant>,
    /// `workflow.status` once the main tree finished (the exit handler sees it).
    status: Option<Phase>,
    outputs: BTreeMap<String, String>,
}

pub(crate) struct Run {
    pub runner: Runner,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub params: BTreeMap<String, String>,
    pub answers: BTreeMap<String, BTreeMap<String, String>>,
    /// Retry: finished nodes kept from the previous run, by id, with their subtrees.
    pub reuse: HashMap<String, Vec<Node>>,
    pub cancel: Mutex<watch::Receiver<Option<Halt>>>,
    pub pods: Option<Arc<Semaphore>>,
    state: Mutex<State>,
}

/// A template and the WorkflowTemplate it lives in (local `template:` names resolve there).
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub wft: &'a str,
    pub spec: &'a WfTemplate,
    pub tmpl: &'a Template,
}

pub(crate) const DEADLINE_MESSAGE: &str = "Step exceeded its deadline";

/// Why a run stops early: the workflow's activeDeadlineSeconds, or [`Runner::terminate`]
/// (`argo terminate`). Running pods get SIGTERM, then SIGKILL after the grace period; nodes
/// not started yet fail at once; the messages are Argo's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    Deadline,
    Terminate,
}

impl Halt {
    /// On a pod that was running (exec_control.go).
    pub(crate) fn pod_message(self) -> &'static str {
        match self {
            Halt::Deadline => DEADLINE_MESSAGE,
            Halt::Terminate => "workflow shutdown with strategy:  Terminate",
        }
    }

    /// On a node that had not started, and on the workflow.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Halt::Deadline => DEADLINE_MESSAGE,
            Halt::Terminate => "Stopped with strategy 'Terminate'",
        }
    }
}

impl Run {
    pub(crate) fn new(
        runner: Runner,
        name: String,
        uid: String,
        params: BTreeMap<String, String>,
        answers: BTreeMap<String, BTreeMap<String, String>>,
        cancel: watch::Receiver<Option<Halt>>,
    ) -> Run {
        let namespace = runner.config.namespace.clone();
        Run {
            runner,
            name,
            uid,
            namespace,
            params,
            answers,
            reuse: HashMap::new(),
            cancel: Mutex::new(cancel),
            pods: None,
            state: Mutex::new(State::default()),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, e: &Event) {
        if let Some(obs) = &self.runner.config.observer {
            obs(e);
        }
    }

    pub(crate) fn cancel_rx(&self) -> watch::Receiver<Option<Halt>> {
        self.cancel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn node_id(&self, path: &str) -> String {
        format!("{}-{}", self.name, fnv32a(path))
    }

    pub(crate) fn set_status(&self, phase: Phase) {
        self.st().status = Some(phase);
    }

    pub(crate) fn nodes(&self) -> Vec<Node> {
        self.st().nodes.clone()
    }

    pub(crate) fn global_outputs(&self) -> BTreeMap<String, String> {
        self.st().outputs.clone()
    }

    /// Workflow-wide tags, then the template's scope.
    pub(crate) fn lookup(&self, scope: &Scope, tag: &str) -> Option<String> {
        if let Some(p) = tag.strip_prefix("workflow.parameters.") {
            return self.params.get(p).cloned();
        }
        if let Some(p) = tag.strip_prefix("workflow.outputs.parameters.") {
            return self.st().outputs.get(p).cloned();
        }
        match tag {
            "workflow.name" => Some(self.name.clone()),
            "workflow.namespace" => Some(self.namespace.clone()),
            "workflow.uid" => Some(self.uid.clone()),
            "workflow.status" => Some(self.st().status.map_or("Running", Phase::as_str).to_owned()),
            "workflow.failures" => Some(self.failures()),
            _ => scope.lookup(tag),
        }
    }

    pub(crate) fn subst(&self, scope: &Scope, text: &str) -> Result<String, String> {
        substitute(text, &|t| self.lookup(scope, t))
    }

    /// `workflow.failures` as Argo's operator builds it: every Failed or Error node (steps,
    /// groups and retries too; here in creation order), `null` when there is none. Argo also
    /// gives `finishedAt`, which the local record does not keep.
    fn failures(&self) -> String {
        let st = self.st();
        let list: Vec<serde_json::Value> = st
            .nodes
            .iter()
            .filter(|n| n.phase.is_failure())
            .map(|n| {
                serde_json::json!({
                    "displayName": n.display_name,
                    "message": n.message.clone().unwrap_or_default(),
                    "templateName": n.template,
                    "phase": n.phase.as_str(),
                    "podName": n.pod_name.clone().unwrap_or_default(),
                })
            })
            .collect();
        if list.is_empty() {
            return "null".to_owned();
        }
        serde_json::Value::Array(list).to_string()
    }

    pub(crate) fn add_node(
        &self,
        parent: Option<&str>,
        path: &str,
        display: &str,
        template: &str,
        kind: NodeKind,
        inputs: BTreeMap<String, String>,
    ) -> String {
        let id = self.node_id(path);
        {
            let mut st = self.st();
            if let Some(p) = parent.and_then(|p| st.index.get(p).copied()) {
                st.nodes[p].children.push(id.clone());
            }
            let idx = st.nodes.len();
            st.index.insert(id.clone(), idx);
            st.starts.insert(id.clone(), Instant::now());
            st.nodes.push(Node {
                id: id.clone(),
                display_name: display.to_owned(),
                template: template.to_owned(),
                kind,
                phase: Phase::Running,
                message: None,
                parent: parent.map(str::to_owned),
                children: Vec::new(),
                inputs,
                outputs: BTreeMap::new(),
                result: None,
                exit_code: None,
                dir: None,
                progress: None,
                duration: Duration::ZERO,
                pod_name: None,
                started_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .and_then(|d| u64::try_from(d.as_millis()).ok()),
            });
        }
        self.emit(&Event::NodeStarted {
            workflow: self.name.clone(),
            id: id.clone(),
            display_name: display.to_owned(),
            template: template.to_owned(),
            kind,
        });
        id
    }

    pub(crate) fn display_name(&self, id: &str) -> String {
        let st = self.st();
        st.index
            .get(id)
            .map(|i| st.nodes[*i].display_name.clone())
            .unwrap_or_default()
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Node)) {
        let mut st = self.st();
        if let Some(i) = st.index.get(id).copied() {
            f(&mut st.nodes[i]);
        }
    }

    /// Records the outcome on the node and reports it.
    pub(crate) fn finish(&self, id: &str, out: &Outcome) {
        let (display, duration) = {
            let mut st = self.st();
            let duration = st.starts.get(id).map(Instant::elapsed).unwrap_or_default();
            let Some(i) = st.index.get(id).copied() else {
                return;
            };
            let n = &mut st.nodes[i];
            n.phase = out.phase;
            n.message.clone_from(&out.message);
            n.outputs.clone_from(&out.outputs);
            n.result.clone_from(&out.result);
            n.exit_code = out.exit_code;
            n.duration = duration;
            (n.display_name.clone(), duration)
        };
        self.emit(&Event::NodeFinished {
            workflow: self.name.clone(),
            id: id.to_owned(),
            display_name: display,
            phase: out.phase,
            exit_code: out.exit_code,
            message: out.message.clone(),
            duration,
        });
    }

    /// A node that ends as soon as it is created (an error before running, a skip).
    pub(crate) fn leaf(
        &self,
        parent: Option<&str>,
        path: &str,
        display: &str,
        template: &str,
        kind: NodeKind,
        out: Outcome,
    ) -> Outcome {
        let id = self.add_node(parent, path, display, template, kind, BTreeMap::new());
        self.finish(&id, &out);
        out
    }

    /// Retry: adopts a kept node and its subtree instead of running it again.
    fn adopt(&self, parent: Option<&str>, id: &str) -> Option<Outcome> {
        let subtree = self.reuse.get(id)?;
        let top = subtree.first()?;
        let out = Outcome {
            phase: top.phase,
            message: top.message.clone(),
            outputs: top.outputs.clone(),
            result: top.result.clone(),
            exit_code: top.exit_code,
        };
        let mut st = self.st();
        if let Some(p) = parent.and_then(|p| st.index.get(p).copied()) {
            st.nodes[p].children.push(id.to_owned());
        }
        for n in subtree {
            let idx = st.nodes.len();
            st.index.insert(n.id.clone(), idx);
            st.nodes.push(n.clone());
        }
        Some(out)
    }

    fn kind_of(tmpl: &Template) -> NodeKind {
        if tmpl.container.is_some() {
            NodeKind::Pod
        } else if tmpl.steps.is_some() {
            NodeKind::Steps
        } else if tmpl.dag.is_some() {
            NodeKind::Dag
        } else {
            NodeKind::Suspend
        }
    }

    /// Resolves the inputs a template receives: the arguments passed, else the declared value
    /// or default.
    fn inputs(
        &self,
        tmpl: &Template,
        args: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for p in &tmpl.inputs.parameters {
            let v = match (args.get(&p.name), &p.value, &p.default) {
                (Some(v), _, _) => v.clone(),
                (None, Some(v), _) => self.subst(&Scope::default(), &v.text())?,
                (None, None, Some(d)) => d.text(),
                (None, None, None) => {
                    return Err(format!("inputs.parameters.{} was not supplied", p.name));
                }
            };
            out.insert(p.name.clone(), v);
        }
        Ok(out)
    }

    /// Executes one template invocation as a node (a Retry node with attempts when the template
    /// has a retryStrategy).
    pub(crate) fn exec_node<'a>(
        &'a self,
        parent: Option<&'a str>,
        path: String,
        display: String,
        target: Target<'a>,
        label: String,
        args: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Outcome> {
        async move {
            let id = self.node_id(&path);
            if let Some(out) = self.adopt(parent, &id) {
                return out;
            }
            let kind = Self::kind_of(target.tmpl);
            let halted = *self.cancel_rx().borrow();
            if let Some(h) = halted {
                let out = Outcome::new(Phase::Failed, Some(h.message().to_owned()));
                return self.leaf(parent, &path, &display, &label, kind, out);
            }
            let inputs = match self.inputs(target.tmpl, &args) {
                Ok(i) => i,
                Err(e) => {
                    return self.leaf(
                        parent,
                        &path,
                        &display,
                        &label,
                        kind,
                        Outcome::new(Phase::Error, Some(e)),
                    );
                }
            };
            let _locks = match &target.tmpl.synchronization {
                Some(sync) => {
                    let scope = Scope {
                        inputs: inputs.clone(),
                        ..Scope::default()
                    };
                    let names: Result<Vec<String>, String> =
                        sync.names().iter().map(|n| self.subst(&scope, n)).collect();
                    let mut halted = self.cancel_rx();
                    match names {
                        // Waiting for a lock stops on a deadline or terminate.
                        Ok(n) => tokio::select! {
                            g = self.runner.lock(&self.namespace, n) => Some(g),
                            h = halted.wait_for(Option::is_some) => {
                                let message = h.ok().and_then(|h| *h).map(|h| h.message().to_owned());
                                let out = Outcome::new(Phase::Failed, message);
                                return self.leaf(parent, &path, &display, &label, kind, out);
                            }
                        },
                        Err(e) => {
                            let out = Outcome::new(Phase::Error, Some(e));
                            return self.leaf(parent, &path, &display, &label, kind, out);
                        }
                    }
                }
                None => None,
            };
            match &target.tmpl.retry_strategy {
                Some(rs) => {
                    self.exec_retry(parent, &path, &display, target, &label, inputs, rs)
                        .await
                }
                None => {
                    self.exec_attempt(parent, &path, &display, target, &label, inputs, None)
                        .await
                }
            }
        }
        .boxed()
    }

    // One loop: attempt, decide (policy, expression, limit), back off.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    async fn exec_retry(
        &self,
        parent: Option<&str>,
        path: &str,
        display: &str,
        target: Target<'_>,
        label: &str,
        inputs: BTreeMap<String, String>,
        rs: &RetryStrategy,
    ) -> Outcome {
        let id = self.add_node(
            parent,
            path,
            display,
            label,
            NodeKind::Retry,
            inputs.clone(),
        );
        let policy = rs.retry_policy.clone().unwrap_or_else(|| {
            if rs.expression.is_some() {
                "Always"
            } else {
                "OnFailure"
            }
            .to_owned()
        });
        let limit = match rs.limit.as_ref().map(|l| l.text().trim().parse::<u32>()) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(_)) => {
                let out = Outcome::new(
                    Phase::Error,
                    Some("retryStrategy.limit is not a number".into()),
                );
                self.finish(&id, &out);
                return out;
            }
        };
        let scale = self.runner.config.backoff_scale;
        let b = rs.backoff.as_ref();
        let dur = |v: Option<&crate::model::Scalar>| v.and_then(|s| parse_duration(&s.text()));
        let base = dur(b.and_then(|b| b.duration.as_ref()));
        let factor = b
            .and_then(|b| b.factor.as_ref())
            .and_then(|f| f.text().parse::<f64>().ok())
            .unwrap_or(1.0);
        let cap = dur(b.and_then(|b| b.cap.as_ref()));
        let max_duration = dur(b.and_then(|b| b.max_duration.as_ref()));
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let attempt_start = Instant::now();
            let out = self
                .exec_attempt(
                    Some(&id),
                    &format!("{path}({attempt})"),
                    &format!("{display}({attempt})"),
                    target,
                    label,
                    inputs.clone(),
                    Some(attempt),
                )
                .await;
            let stop = |message: Option<String>| {
                let mut o = out.clone();
                o.message = message;
                o
            };
            if out.phase == Phase::Succeeded {
                self.finish(&id, &out);
                return out;
            }
            // Argo's processNodeRetries, in its order: deadline, backoff against maxDuration,
            // policy, limit, expression. The Retry node takes the last attempt's phase.
            let finish = |message: Option<String>| {
                let o = stop(message);
                self.finish(&id, &o);
                o
            };
            let halted = *self.cancel_rx().borrow();
            match halted {
                Some(h @ Halt::Terminate) => return finish(Some(h.message().to_owned())),
                Some(Halt::Deadline) => return finish(out.message.clone()),
                None => {}
            }
            let mut delay = base.map_or(Duration::ZERO, |d| d.mul_f64(factor.powi(attempt as i32)));
            if let Some(c) = cap {
                delay = delay.min(c);
            }
            let delay = delay.mul_f64(scale);
            // Scaled to zero, backoffs take no time and so neither does maxDuration's budget.
            if let Some(m) = max_duration
                .filter(|_| scale > 0.0)
                .map(|m| m.mul_f64(scale))
            {
                if started.elapsed() > m {
                    return finish(Some("Max duration limit exceeded".into()));
                }
                if started.elapsed() + delay > m {
                    return finish(Some("Backoff would exceed max duration limit".into()));
                }
            }
            if !policy_retries(&policy, &out) {
                return finish(out.message.clone());
            }
            if limit.is_some_and(|l| attempt >= l) {
                return finish(Some("No more retries left".into()));
            }
            if let Some(e) = &rs.expression {
                match retry_expression(e, &out, attempt_start.elapsed()) {
                    Ok(true) => {}
                    Ok(false) => {
                        return finish(Some("retryStrategy.expression evaluated to false".into()));
                    }
                    Err(e) => {
                        let o = Outcome {
                            phase: Phase::Error,
                            ..stop(Some(format!("retryStrategy.expression: {e}")))
                        };
                        self.finish(&id, &o);
                        return o;
                    }
                }
            }
            let mut cancel = self.cancel_rx();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = cancel.wait_for(Option::is_some) => {}
            }
            attempt += 1;
        }
    }

    /// One attempt: a node of the template's own kind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn exec_attempt(
        &self,
        parent: Option<&str>,
        path: &str,
        display: &str,
        target: Target<'_>,
        label: &str,
        inputs: BTreeMap<String, String>,
        retries: Option<u32>,
    ) -> Outcome {
        let tmpl = target.tmpl;
        let kind = Self::kind_of(tmpl);
        let id = self.add_node(parent, path, display, label, kind, inputs.clone());
        let scope = Scope {
            inputs,
            retries,
            ..Scope::default()
        };
        let out = if let Some(c) = &tmpl.container {
            crate::pod::run_pod(self, &id, path, target, c, scope).await
        } else if let Some(steps) = &tmpl.steps {
            self.run_steps(&id, path, target, steps, scope).await
        } else if let Some(dag) = &tmpl.dag {
            self.run_dag(&id, path, target, dag, scope).await
        } else {
            self.run_suspend(display, tmpl, &scope).await
        };
        self.finish(&id, &out);
        out
    }

    /// Resolves a step's template from the WorkflowTemplate `from`.
    pub(crate) fn resolve<'a>(
        &'a self,
        from: &'a str,
        step: &'a Step,
    ) -> Option<(Target<'a>, String)> {
        let cat = &self.runner.catalog;
        let (wft, name, label) = match (&step.template, &step.template_ref) {
            (Some(t), _) => (from, t.as_str(), t.clone()),
            (None, Some(r)) => (
                r.name.as_str(),
                r.template.as_str(),
                format!("{}/{}", r.name, r.template),
            ),
            (None, None) => return None,
        };
        let (wft, spec) = cat.templates.get_key_value(wft)?;
        Some((
            Target {
                wft,
                spec,
                tmpl: spec.template(name)?,
            },
            label,
        ))
    }

    /// What the TEMPLATE column shows for a step that has no node of its own kind.
    pub(crate) fn label(&self, from: &str, step: &Step) -> String {
        self.resolve(from, step)
            .map(|(_, label)| label)
            .unwrap_or_default()
    }

    /// `withItems` / `withParam` after substitution; `None` when the step does not fan out.
    /// A withParam that is not a JSON list is an error, unless the step's `when` (without
    /// `item`) is false: then it is an empty list, as Argo's expandStep does.
    pub(crate) fn expand(
        &self,
        step: &Step,
        scope: &Scope,
    ) -> Result<Option<Vec<serde_json::Value>>, String> {
        if let Some(items) = &step.with_items {
            return Ok(Some(items.clone()));
        }
        let Some(param) = &step.with_param else {
            return Ok(None);
        };
        let text = self.subst(scope, param)?;
        let problem = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(a)) => return Ok(Some(a)),
            Ok(other) => format!("not a list but {}", json_kind(&other)),
            Err(e) => e.to_string(),
        };
        let must_run = step.when.as_ref().is_none_or(|w| {
            self.subst(scope, w)
                .map_or(true, |t| expr::eval_when(&t).unwrap_or(true))
        });
        if must_run {
            Err(format!(
                "withParam value could not be parsed as a JSON list: {}: {problem}",
                text.trim()
            ))
        } else {
            Ok(Some(Vec::new()))
        }
    }

    /// Runs one step or task (one item of a fan-out): `when`, arguments, then the template.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_step(
        &self,
        parent: &str,
        base_path: &str,
        from: &str,
        step: &Step,
        item: Option<(usize, serde_json::Value)>,
        scope: &Scope,
        sem: Option<&Semaphore>,
    ) -> Outcome {
        let display = step_display(step, item.as_ref());
        let path = format!("{base_path}.{display}");
        let mut scope = scope.clone();
        scope.item = item.map(|(_, v)| v);
        let Some((target, label)) = self.resolve(from, step) else {
            let out = Outcome::new(
                Phase::Error,
                Some(format!("step {:?}: template not found", step.name)),
            );
            return self.leaf(Some(parent), &path, &display, "", NodeKind::Pod, out);
        };
        let kind = Self::kind_of(target.tmpl);
        let error = |msg: String| {
            self.leaf(
                Some(parent),
                &path,
                &display,
                &label,
                kind,
                Outcome::new(Phase::Error, Some(msg)),
            )
        };
        if let Some(when) = &step.when {
            let text = match self.subst(&scope, when) {
                Ok(t) => t,
                Err(e) => return error(e),
            };
            let skipped = match expr::eval_when(&text) {
                Ok(true) => None,
                Ok(false) => Some(Outcome::new(
                    Phase::Skipped,
                    Some(format!("when '{text}' evaluated false")),
                )),
                // steps.go/dag.go: a Skipped-type node in phase Error, with Argo's wording.
                Err(e) => Some(Outcome::new(
                    Phase::Error,
                    Some(format!("Invalid 'when' expression '{text}': {e}")),
                )),
            };
            if let Some(out) = skipped {
                return self.leaf(
                    Some(parent),
                    &path,
                    &display,
                    &label,
                    NodeKind::Skipped,
                    out,
                );
            }
        }
        let mut args = BTreeMap::new();
        for p in &step.arguments.parameters {
            let raw = p
                .value
                .as_ref()
                .map(crate::model::Scalar::text)
                .unwrap_or_default();
            match self.subst(&scope, &raw) {
                Ok(v) => args.insert(p.name.clone(), v),
                Err(e) => return error(e),
            };
        }
        let _permit = match sem {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        self.exec_node(Some(parent), path, display, target, label, args)
            .await
    }

    // Expand, run and record each group in turn; splitting it would scatter the scope updates.
    #[allow(clippy::too_many_lines)]
    async fn run_steps(
        &self,
        id: &str,
        path: &str,
        target: Target<'_>,
        groups: &[Vec<Step>],
        mut scope: Scope,
    ) -> Outcome {
        let sem = parallelism(target.tmpl.parallelism.as_ref());
        for (gi, group) in groups.iter().enumerate() {
            let gpath = format!("{path}[{gi}]");
            let gid = self.add_node(
                Some(id),
                &gpath,
                &format!("[{gi}]"),
                "",
                NodeKind::StepGroup,
                BTreeMap::new(),
            );
            let mut jobs = Vec::new();
            let mut fixed: Vec<(usize, Outcome)> = Vec::new();
            for (si, step) in group.iter().enumerate() {
                match self.expand(step, &scope) {
                    Ok(None) => jobs.push((si, None)),
                    Ok(Some(items)) if items.is_empty() => {
                        let out =
                            Outcome::new(Phase::Skipped, Some("Skipped, empty params".into()));
                        let p = format!("{gpath}.{}", step.name);
                        fixed.push((
                            si,
                            self.leaf(
                                Some(&gid),
                                &p,
                                &step.name,
                                &self.label(target.wft, step),
                                NodeKind::Skipped,
                                out,
                            ),
                        ));
                    }
                    Ok(Some(items)) => jobs.extend(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (si, Some((i, v)))),
                    ),
                    // Argo's expandStepGroup: the group errors before any of its steps runs.
                    Err(e) => {
                        self.finish(&gid, &Outcome::new(Phase::Error, Some(e.clone())));
                        return Outcome::new(Phase::Failed, Some(e));
                    }
                }
            }
            let fanned: Vec<bool> = group
                .iter()
                .map(|s| s.with_items.is_some() || s.with_param.is_some())
                .collect();
            let runs = jobs.iter().map(|(si, item)| {
                self.run_step(
                    &gid,
                    &gpath,
                    target.wft,
                    &group[*si],
                    item.clone(),
                    &scope,
                    sem.as_deref(),
                )
            });
            let results = join_all(runs).await;
            let mut failed: Option<String> = None;
            let mut by_step: BTreeMap<usize, Vec<Outcome>> = BTreeMap::new();
            for ((si, item), out) in jobs.iter().zip(results) {
                let cont = group[*si].continue_on.unwrap_or_default();
                let tolerated = (out.phase == Phase::Failed && cont.failed)
                    || (out.phase == Phase::Error && cont.error);
                if out.phase.is_failure() && !tolerated && failed.is_none() {
                    // Argo names the child by node id (steps.go).
                    let display = step_display(&group[*si], item.as_ref());
                    let child = self.node_id(&format!("{gpath}.{display}"));
                    failed = Some(format!("child '{child}' failed"));
                }
                by_step.entry(*si).or_default().push(out);
            }
            for (si, outs) in by_step
                .into_iter()
                .chain(fixed.into_iter().map(|(si, o)| (si, vec![o])))
            {
                let step = &group[si];
                let res = if fanned[si]
                    && !(outs.len() == 1
                        && outs[0].phase == Phase::Skipped
                        && outs[0].message.as_deref() == Some("Skipped, empty params"))
                {
                    // Argo resolves a fanned-out step's status to its step group's phase, and the
                    // group got here only by succeeding.
                    StepRes::Fanout(Phase::Succeeded, outs)
                } else if fanned[si] {
                    StepRes::Fanout(Phase::Skipped, Vec::new())
                } else {
                    StepRes::One(
                        outs.into_iter()
                            .next()
                            .unwrap_or_else(|| Outcome::new(Phase::Error, None)),
                    )
                };
                scope.results.insert(format!("steps.{}", step.name), res);
            }
            let gout = match &failed {
                Some(m) => Outcome::new(Phase::Failed, Some(m.clone())),
                None => Outcome::new(Phase::Succeeded, None),
            };
            self.finish(&gid, &gout);
            if failed.is_some() {
                return gout;
            }
        }
        self.template_outputs(target.tmpl, &scope)
    }

    /// Outputs of a steps or DAG template (`valueFrom.expression`), exported with globalName.
    pub(crate) fn template_outputs(&self, tmpl: &Template, scope: &Scope) -> Outcome {
        let mut out = Outcome::new(Phase::Succeeded, None);
        for p in &tmpl.outputs.parameters {
            let value = match p.value_from.as_ref().and_then(|v| v.expression.as_ref()) {
                Some(e) => expr::parse(e, Lang::Expr)
                    .and_then(|ast| expr::eval(&ast, &|v| self.lookup(scope, v)))
                    .map(|v| v.to_string()),
                None => match p.value.as_ref() {
                    Some(v) => self.subst(scope, &v.text()),
                    None => Err(format!(
                        "output parameter {} has no value or expression",
                        p.name
                    )),
                },
            };
            match value {
                Ok(v) => {
                    self.export(p, &v);
                    out.outputs.insert(p.name.clone(), v);
                }
                Err(e) => {
                    return Outcome::new(
                        Phase::Error,
                        Some(format!("outputs.parameters.{}: {e}", p.name)),
                    );
                }
            }
        }
        out
    }

    pub(crate) fn export(&self, p: &Parameter, value: &str) {
        if let Some(g) = &p.global_name {
            self.st().outputs.insert(g.clone(), value.to_owned());
        }
    }

    /// A suspend node resumes from the request's answers; without one it fails at once.
    async fn run_suspend(&self, display: &str, tmpl: &Template, scope: &Scope) -> Outcome {
        let supplied: Vec<&Parameter> = tmpl
            .outputs
            .parameters
            .iter()
            .filter(|p| p.value_from.as_ref().is_some_and(|v| v.supplied.is_some()))
            .collect();
        let answer = self.answers.get(display);
        let duration = tmpl.suspend.as_ref().and_then(|s| s.duration.as_ref());
        if let (None, Some(d)) = (answer, duration) {
            // A timed suspend resumes by itself, with the defaults.
            let wait = parse_duration(&d.text()).unwrap_or_default();
            let mut halted = self.cancel_rx();
            // A deadline or terminate fails an active suspend node (Argo's operator.go).
            tokio::select! {
                () = tokio::time::sleep(wait.mul_f64(self.runner.config.deadline_scale)) => {}
                h = halted.wait_for(Option::is_some) => {
                    let message = h.ok().and_then(|h| *h).map(|h| h.message().to_owned());
                    return Outcome::new(Phase::Failed, message);
                }
            }
        } else if answer.is_none() {
            let example = supplied.first().map_or_else(
                || format!("RunRequest::answer(\"{display}\", PARAM, VALUE)"),
                |p| format!("RunRequest::answer(\"{display}\", \"{0}\", VALUE) or --answer {display}.{0}=VALUE", p.name),
            );
            return Outcome::new(
                Phase::Failed,
                Some(format!(
                    "suspend node '{display}' has no answer: the local runner never waits for input; supply it with {example}"
                )),
            );
        }
        let mut out = Outcome::new(Phase::Succeeded, None);
        let empty = BTreeMap::new();
        let answer = answer.unwrap_or(&empty);
        for name in answer.keys() {
            if !supplied.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = supplied.iter().map(|p| p.name.as_str()).collect();
                return Outcome::new(
                    Phase::Error,
                    Some(format!(
                        "answer for '{display}' names {name:?}, which is not one of its supplied outputs ({})",
                        known.join(", ")
                    )),
                );
            }
        }
        for p in supplied {
            let input = tmpl.inputs.parameters.iter().find(|i| i.name == p.name);
            let value = answer
                .get(&p.name)
                .cloned()
                .or_else(|| scope.inputs.get(&p.name).cloned())
                .or_else(|| {
                    p.value_from
                        .as_ref()
                        .and_then(|v| v.default.as_ref())
                        .map(crate::model::Scalar::text)
                });
            let Some(value) = value else {
                return Outcome::new(
                    Phase::Failed,
                    Some(format!(
                        "no value supplied for '{}' of suspend node '{display}'",
                        p.name
                    )),
                );
            };
            if let Some(allowed) = input.and_then(Parameter::enum_texts)
                && !allowed.contains(&value)
            {
                return Outcome::new(
                    Phase::Failed,
                    Some(format!(
                        "answer {value:?} for '{}' of '{display}' is not one of {}",
                        p.name,
                        allowed.join(", ")
                    )),
                );
            }
            self.export(p, &value);
            out.outputs.insert(p.name.clone(), value);
        }
        out
    }
}

/// A step's node name: `name`, or `name(i:item)` for one item of a fan-out.
fn step_display(step: &Step, item: Option<&(usize, serde_json::Value)>) -> String {
    match item {
        Some((i, v)) => format!("{}({i}:{})", step.name, item_label(v)),
        None => step.name.clone(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Null | serde_json::Value::Array(_) => "null",
    }
}

pub(crate) fn parallelism(p: Option<&crate::model::Scalar>) -> Option<Arc<Semaphore>> {
    p.and_then(|p| p.text().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map(|n| Arc::new(Semaphore::new(n)))
}

/// A fan-out's phase: failed if any child failed, skipped if all were skipped.
pub(crate) fn aggregate_phase(outs: &[Outcome]) -> Phase {
    if let Some(o) = outs.iter().find(|o| o.phase.is_failure()) {
        o.phase
    } else if !outs.is_empty()
        && outs
            .iter()
            .all(|o| matches!(o.phase, Phase::Skipped | Phase::Omitted))
    {
        Phase::Skipped
    } else {
        Phase::Succeeded
    }
}

/// Whether `retryPolicy` retries this outcome (Argo: OnFailure = the main container failed;
/// OnError = an error around it; Always = both; OnTransientError = either, when the message is
/// a transient error).
fn policy_retries(policy: &str, out: &Outcome) -> bool {
    match policy {
        "Always" => out.phase.is_failure(),
        "OnError" => out.phase == Phase::Error,
        "OnTransientError" => out.phase.is_failure() && is_transient(out.message.as_deref()),
        _ => out.phase == Phase::Failed,
    }
}

/// Argo's transient errors (util/errors) that a node message, a plain string, can match:
/// case-sensitive substrings, plus the controller's `TRANSIENT_ERROR_PATTERN` regex, read
/// here from the runner's environment.
fn is_transient(message: Option<&str>) -> bool {
    const PATTERNS: [&str; 17] = [
        "etcdserver: leader changed",
        "etcdserver: request timed out",
        "etcdserver: too many requests",
        "unexpected error when reading response body",
        "stream error when reading response body",
        "Connection closed by foreign host",
        "net/http: TLS handshake timeout",
        "i/o timeout",
        "connection timed out",
        "connection reset by peer",
        "http2: client connection lost",
        "http2: server sent GOAWAY and closed the connection",
        "request did not complete within requested timeout",
        "connect: connection refused",
        "invalid connection",
        "client rate limiter Wait returned an error",
        "upper: no more rows in",
    ];
    let m = message.unwrap_or_default();
    PATTERNS.iter().any(|p| m.contains(p))
        || std::env::var("TRANSIENT_ERROR_PATTERN")
            .ok()
            .and_then(|p| regex::Regex::new(&p).ok())
            .is_some_and(|re| re.is_match(m))
}

/// Evaluates `retryStrategy.expression` over `lastRetry.*` (all strings, as in Argo).
fn retry_expression(text: &str, last: &Outcome, elapsed: Duration) -> Result<bool, String> {
    let ast = expr::parse(expr::unwrap_expression(text), Lang::Expr)?;
    let v = expr::eval(&ast, &|name| match name {
        "lastRetry.exitCode" => Some(last.exit_code.unwrap_or(-1).to_string()),
        "lastRetry.status" => Some(last.phase.to_string()),
        "lastRetry.duration" => Some(elapsed.as_secs_f64().to_string()),
        "lastRetry.message" => Some(last.message.clone().unwrap_or_default()),
        _ => None,
    })?;
    match v {
        expr::Val::Bool(b) => Ok(b),
        other => Err(format!("evaluated to {other}, not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policies_pick_failures_errors_or_transient_errors() {
        let failed = Outcome::new(Phase::Failed, Some("exit 1".into()));
        let error = Outcome::new(Phase::Error, Some("failed to start".into()));
        let transient = Outcome::new(Phase::Error, Some("dial tcp: i/o timeout".into()));
        // Argo retries a Failed node with a transient message too.
        let failed_transient = Outcome::new(
            Phase::Failed,
            Some("read tcp: connection reset by peer".into()),
        );
        // Not Argo's patterns: a bare EOF, another casing.
        let eof = Outcome::new(Phase::Error, Some("EOF while parsing".into()));
        let table = [
            ("Always", [true, true, true, true, true]),
            ("OnFailure", [true, false, false, true, false]),
            ("OnError", [false, true, true, false, true]),
            ("OnTransientError", [false, false, true, true, false]),
        ];
        for (policy, expect) in table {
            let got = [&failed, &error, &transient, &failed_transient, &eof]
                .map(|o| policy_retries(policy, o));
            assert_eq!(got, expect, "{policy}");
        }
    }

    #[test]
    fn retry_expressions_see_last_retry_as_strings() {
        let mut out = Outcome::new(Phase::Failed, Some("blocked".into()));
        out.exit_code = Some(3);
        let d = Duration::from_secs(2);
        assert_eq!(
            retry_expression("asInt(lastRetry.exitCode) == 3", &out, d),
            Ok(true)
        );
        assert_eq!(
            retry_expression("{{= lastRetry.exitCode == '3' }}", &out, d),
            Ok(true)
        );
        assert_eq!(
            retry_expression(
                "lastRetry.status == 'Failed' && asFloat(lastRetry.duration) < 1",
                &out,
                d
            ),
            Ok(false)
        );
        assert_eq!(
            retry_expression("lastRetry.message != 'blocked'", &out, d),
            Ok(false)
        );
        assert!(
            retry_expression("lastRetry.exitCode", &out, d)
                .unwrap_err()
                .contains("not a boolean")
        );
    }
}
