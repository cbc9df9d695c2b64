//! DAG templates: tasks start when their `depends`/`dependencies` are settled and true (false
//! → Omitted), fan-outs get a TaskGroup node. As Argo's assessDAGPhase: the DAG fails when a
//! leaf task's branch failed (a leaf that did not run inherits its dependencies' failure), and
//! `failFast` (the default) starts nothing new once one has.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::{BoxFuture, FutureExt, join_all};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::dag::{Dep, parse_depends};
use crate::engine::{Run, Target, aggregate_phase, parallelism};
use crate::model::{Dag, Step};
use crate::scope::{Outcome, Scope, StepRes};
use crate::workflow::{NodeKind, Phase};

fn deps_of(task: &Step) -> Result<Option<Dep>, String> {
    if let Some(d) = &task.depends {
        return parse_depends(d).map(Some);
    }
    Ok(task
        .dependencies
        .iter()
        .map(|d| Dep::Task(d.clone(), None))
        .reduce(|a, b| Dep::And(Box::new(a), Box::new(b))))
}

/// A task's branch phase (Argo's assessDAGPhase): its own phase once it Succeeded, Failed or
/// Errored; otherwise (Skipped, Omitted, never started) its dependencies', a failure first.
fn branch_phase(
    name: &str,
    deps: &BTreeMap<String, Option<Dep>>,
    done: &BTreeMap<String, (Phase, bool, bool)>,
) -> Phase {
    if let Some((p, _, _)) = done.get(name)
        && (*p == Phase::Succeeded || p.is_failure())
    {
        return *p;
    }
    let mut names = Vec::new();
    if let Some(Some(d)) = deps.get(name) {
        d.tasks(&mut names);
    }
    names
        .iter()
        .map(|n| branch_phase(n, deps, done))
        .find(|p| p.is_failure())
        .unwrap_or(Phase::Succeeded)
}

/// The phase of the first leaf task (one no task depends on) whose branch failed and whose
/// `continueOn` does not cover it. With `settled_only`, leaves that have not ended are skipped.
fn failed_leaf(
    dag: &Dag,
    deps: &BTreeMap<String, Option<Dep>>,
    done: &BTreeMap<String, (Phase, bool, bool)>,
    settled_only: bool,
) -> Option<Phase> {
    let mut depended = Vec::new();
    for d in deps.values().flatten() {
        d.tasks(&mut depended);
    }
    dag.tasks
        .iter()
        .filter(|t| !depended.contains(&t.name))
        .filter(|t| !settled_only || done.contains_key(&t.name))
        .find_map(|t| {
            let phase = branch_phase(&t.name, deps, done);
            let cont = t.continue_on.unwrap_or_default();
            let tolerated =
                (phase == Phase::Failed && cont.failed) || (phase == Phase::Error && cont.error);
            (phase.is_failure() && !tolerated).then_some(phase)
        })
}

impl Run {
    pub(crate) async fn run_dag(
        &self,
        id: &str,
        path: &str,
        target: Target<'_>,
        dag: &Dag,
        mut scope: Scope,
    ) -> Outcome {
        let sem = parallelism(target.tmpl.parallelism.as_ref());
        let fail_fast = dag.fail_fast.unwrap_or(true);
        let mut deps = BTreeMap::new();
        for t in &dag.tasks {
            match deps_of(t) {
                Ok(d) => deps.insert(t.name.clone(), d),
                Err(e) => return Outcome::new(Phase::Error, Some(format!("task {}: {e}", t.name))),
            };
        }
        // Finished tasks: phase, continueOn.failed, continueOn.error.
        let mut done: BTreeMap<String, (Phase, bool, bool)> = BTreeMap::new();
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut running: FuturesUnordered<BoxFuture<'_, (String, StepRes)>> =
            FuturesUnordered::new();
        let mut stop = false;
        loop {
            let mut progressed = true;
            while progressed && !stop {
                progressed = false;
                for task in &dag.tasks {
                    if started.contains(&task.name) {
                        continue;
                    }
                    let dep = &deps[&task.name];
                    let mut names = Vec::new();
                    if let Some(d) = dep {
                        d.tasks(&mut names);
                    }
                    if !names.iter().all(|n| done.contains_key(n)) {
                        continue;
                    }
                    started.insert(task.name.clone());
                    progressed = true;
                    if dep.as_ref().is_some_and(|d| !d.eval(&done)) {
                        let out = Outcome::new(
                            Phase::Omitted,
                            Some("omitted: depends condition not met".into()),
                        );
                        let p = format!("{path}.{}", task.name);
                        let label = self.label(target.wft, task);
                        self.leaf(
                            Some(id),
                            &p,
                            &task.name,
                            &label,
                            NodeKind::Skipped,
                            out.clone(),
                        );
                        done.insert(task.name.clone(), (Phase::Omitted, false, false));
                        scope
                            .results
                            .insert(format!("tasks.{}", task.name), StepRes::One(out));
                        continue;
                    }
                    let snapshot = scope.clone();
                    let sem = sem.clone();
                    let fut = async move {
                        let res = self
                            .run_task(id, path, target.wft, task, &snapshot, sem.as_deref())
                            .await;
                        (task.name.clone(), res)
                    };
                    running.push(fut.boxed());
                }
            }
            // Argo's failFast: once a leaf's branch has failed, nothing new starts.
            if fail_fast && failed_leaf(dag, &deps, &done, true).is_some() {
                stop = true;
            }
            let Some((name, res)) = running.next().await else {
                break;
            };
            let task = dag
                .tasks
                .iter()
                .find(|t| t.name == name)
                .expect("started task exists");
            let cont = task.continue_on.unwrap_or_default();
            let phase = match &res {
                StepRes::One(o) => o.phase,
                StepRes::Fanout(p, _) => *p,
            };
            done.insert(name.clone(), (phase, cont.failed, cont.error));
            scope.results.insert(format!("tasks.{name}"), res);
        }
        // Argo's DAG node takes the failed branch's phase and no message (dag.go).
        if let Some(phase) = failed_leaf(dag, &deps, &done, false) {
            return Outcome::new(phase, None);
        }
        self.template_outputs(target.tmpl, &scope)
    }

    /// One task: a node, or a TaskGroup node with one child per item.
    async fn run_task(
        &self,
        dag_id: &str,
        dag_path: &str,
        from: &str,
        task: &Step,
        scope: &Scope,
        sem: Option<&tokio::sync::Semaphore>,
    ) -> StepRes {
        let items = match self.expand(task, scope) {
            Ok(items) => items,
            Err(e) => {
                let p = format!("{dag_path}.{}", task.name);
                let out = Outcome::new(Phase::Error, Some(e));
                // Argo records it as a Skipped-type node in phase Error.
                let label = self.label(from, task);
                return StepRes::One(self.leaf(
                    Some(dag_id),
                    &p,
                    &task.name,
                    &label,
                    NodeKind::Skipped,
                    out,
                ));
            }
        };
        let Some(items) = items else {
            return StepRes::One(
                self.run_step(dag_id, dag_path, from, task, None, scope, sem)
                    .await,
            );
        };
        let gpath = format!("{dag_path}.{}", task.name);
        if items.is_empty() {
            let out = Outcome::new(Phase::Skipped, Some("Skipped, empty params".into()));
            let label = self.label(from, task);
            self.leaf(
                Some(dag_id),
                &gpath,
                &task.name,
                &label,
                NodeKind::Skipped,
                out,
            );
            return StepRes::Fanout(Phase::Skipped, Vec::new());
        }
        let gid = self.add_node(
            Some(dag_id),
            &gpath,
            &task.name,
            "",
            NodeKind::Task,
            BTreeMap::new(),
        );
        let runs = items
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.run_step(&gid, &gpath, from, task, Some((i, v)), scope, sem));
        let outs = join_all(runs).await;
        let phase = aggregate_phase(&outs);
        let message = phase
            .is_failure()
            .then(|| format!("child of '{}' failed", task.name));
        self.finish(&gid, &Outcome::new(phase, message));
        StepRes::Fanout(phase, outs)
    }
}
