//! `argo get`'s rendering of a workflow.

use crate::workflow::Workflow;

pub(crate) fn render(wf: &Workflow) -> String {
    let _ = wf;
    todo!()
}
