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
    pub cancel: Mutex<watch::Receiver<bool>>,
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

impl Run {
    pub(crate) fn new(
        runner: Runner,
        name: String,
        uid: String,
        params: BTreeMap<String, String>,
        answers: BTreeMap<String, BTreeMap<String, String>>,
        cancel: watch::Receiver<bool>,
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

    pub(crate) fn cancel_rx(&self) -> watch::Receiver<bool> {
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

    /// `workflow.failures`: the failed pods and suspends, as Argo's JSON list.
    fn failures(&self) -> String {
        let st = self.st();
        let list: Vec<serde_json::Value> = st
            .nodes
            .iter()
            .filter(|n| n.phase.is_failure() && matches!(n.kind, NodeKind::Pod | NodeKind::Suspend))
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
            if *self.cancel_rx().borrow() {
                let out = Outcome::new(Phase::Failed, Some(DEADLINE_MESSAGE.to_owned()));
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
                    match names {
                        Ok(n) => Some(self.runner.lock(&self.namespace, n).await),
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
            let by_policy = match policy.as_str() {
                "Always" => out.phase.is_failure(),
                "OnError" => out.phase == Phase::Error,
                "OnTransientError" => {
                    out.phase == Phase::Error && is_transient(out.message.as_deref())
                }
                _ => out.phase == Phase::Failed,
            };
            let by_expression = match &rs.expression {
                None => Ok(true),
                Some(e) => retry_expression(e, &out, attempt_start.elapsed()),
            };
            let retry = match by_expression {
                Ok(b) => by_policy && b,
                Err(e) => {
                    let o = stop(Some(format!("retryStrategy.expression: {e}")));
                    let o = Outcome {
                        phase: Phase::Error,
                        ..o
                    };
                    self.finish(&id, &o);
                    return o;
                }
            };
            if !retry || *self.cancel_rx().borrow() {
                let o = stop(out.message.clone());
                self.finish(&id, &o);
                return o;
            }
            if limit.is_some_and(|l| attempt >= l) {
                let o = stop(Some("No more retries left".into()));
                self.finish(&id, &o);
                return o;
            }
            let mut delay = base.map_or(Duration::ZERO, |d| d.mul_f64(factor.powi(attempt as i32)));
            if let Some(c) = cap {
                delay = delay.min(c);
            }
            let delay = delay.mul_f64(scale);
            if let Some(m) = max_duration
                && started.elapsed() + delay > m.mul_f64(scale)
            {
                let o = stop(Some("Max duration limit exceeded".into()));
                self.finish(&id, &o);
                return o;
            }
            let mut cancel = self.cancel_rx();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = cancel.wait_for(|c| *c) => {}
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

    /// `withItems` / `withParam` after substitution; `None` when the step does not fan out.
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
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(a)) => Ok(Some(a)),
            _ => Err(format!(
                "withParam value could not be parsed as a JSON list: {text}"
            )),
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
        let display = match &item {
            Some((i, v)) => format!("{}({i}:{})", step.name, item_label(v)),
            None => step.name.clone(),
        };
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
            match expr::eval_when(&text) {
                Ok(true) => {}
                Ok(false) => {
                    let out = Outcome::new(
                        Phase::Skipped,
                        Some(format!("when '{text}' evaluated false")),
                    );
                    return self.leaf(
                        Some(parent),
                        &path,
                        &display,
                        &label,
                        NodeKind::Skipped,
                        out,
                    );
                }
                Err(e) => return error(format!("invalid when '{text}': {e}")),
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
                            self.leaf(Some(&gid), &p, &step.name, "", NodeKind::Skipped, out),
                        ));
                    }
                    Ok(Some(items)) => jobs.extend(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (si, Some((i, v)))),
                    ),
                    Err(e) => {
                        let p = format!("{gpath}.{}", step.name);
                        let out = Outcome::new(Phase::Error, Some(e));
                        fixed.push((
                            si,
                            self.leaf(Some(&gid), &p, &step.name, "", NodeKind::Pod, out),
                        ));
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
            let mut by_step: BTreeMap<usize, Vec<Outcome>> = BTreeMap::new();
            for ((si, _), out) in jobs.iter().zip(results) {
                by_step.entry(*si).or_default().push(out);
            }
            let mut failed: Option<String> = None;
            for (si, outs) in by_step
                .into_iter()
                .chain(fixed.into_iter().map(|(si, o)| (si, vec![o])))
            {
                let step = &group[si];
                let cont = step.continue_on.unwrap_or_default();
                for o in &outs {
                    let tolerated = (o.phase == Phase::Failed && cont.failed)
                        || (o.phase == Phase::Error && cont.error);
                    if o.phase.is_failure() && !tolerated && failed.is_none() {
                        failed = Some(format!("child '{}' failed", step.name));
                    }
                }
                let res = if fanned[si]
                    && !(outs.len() == 1
                        && outs[0].phase == Phase::Skipped
                        && outs[0].message.as_deref() == Some("Skipped, empty params"))
                {
                    StepRes::Fanout(aggregate_phase(&outs), outs)
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
            tokio::time::sleep(wait.mul_f64(self.runner.config.deadline_scale)).await;
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

/// Argo's transient errors (OnTransientError) as a node message shows them.
fn is_transient(message: Option<&str>) -> bool {
    let m = message.unwrap_or_default().to_ascii_lowercase();
    [
        "connection reset",
        "connection refused",
        "i/o timeout",
        "tls handshake timeout",
        "too many requests",
        "server timeout",
        "eof",
    ]
    .iter()
    .any(|p| m.contains(p))
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
