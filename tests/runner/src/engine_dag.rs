//! DAG templates: tasks start when their `depends`/`dependencies` are settled and true (false
//! → Omitted), fan-outs get a TaskGroup node, and `failFast` (the default) stops scheduling new
//! tasks after a failure no `depends` handles (`.Failed`, `.Errored`).

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
            let tolerated =
                (phase == Phase::Failed && cont.failed) || (phase == Phase::Error && cont.error);
            let handled = deps.values().flatten().any(|d| d.handles_failure_of(&name));
            if phase.is_failure() && !tolerated && !handled && fail_fast {
                stop = true;
            }
            done.insert(name.clone(), (phase, cont.failed, cont.error));
            scope.results.insert(format!("tasks.{name}"), res);
        }
        let unhandled = done.iter().find(|(name, (phase, on_failed, on_error))| {
            let tolerated =
                (*phase == Phase::Failed && *on_failed) || (*phase == Phase::Error && *on_error);
            phase.is_failure()
                && !tolerated
                && !deps.values().flatten().any(|d| d.handles_failure_of(name))
        });
        // Argo's DAG node takes the failed branch's phase and no message (dag.go).
        if let Some((_, (phase, _, _))) = unhandled {
            return Outcome::new(*phase, None);
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
