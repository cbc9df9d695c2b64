//! Which nodes to drain: `--node`, `--selector` or `--nodegroup`, refusing empty and oversized
//! selections.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::exit::StepError;

use crate::NODEGROUP_LABEL;
use crate::args::Args;
use crate::reads::Reads;

/// The nodes the flags select, refusing empty and oversized selections.
#[tracing::instrument(skip_all, err)]
pub async fn resolve_targets(
    client: &Client,
    args: &Args,
    reads: &Reads,
) -> Result<Vec<Node>, StepError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = Vec::new();
    if args.nodes.is_empty() {
        let sel = match (&args.selector, &args.nodegroup) {
            (Some(s), _) => s.clone(),
            (None, Some(ng)) => format!("{NODEGROUP_LABEL}={ng}"),
            (None, None) => String::new(),
        };
        // A selector the API server refuses (400) is bad input, never "no node matched".
        let list = reads
            .lister("nodes")
            .list_all(&api, &ListParams::default().labels(&sel))
            .await?;
        if list.is_empty() {
            return Err(StepError::bad_input(format!(
                "no node matches {sel:?}; nothing to drain"
            )));
        }
        nodes = list;
    } else {
        let mut seen = std::collections::BTreeSet::new();
        for name in &args.nodes {
            if !seen.insert(name.clone()) {
                continue;
            }
            let what = format!("get node {name}");
            match reads
                .retry()
                .retry(&what, || api.get_opt(name))
                .await
                .map_err(|e| e.into_step_error(&what))?
            {
                Some(n) => nodes.push(n),
                None => return Err(StepError::bad_input(format!("node {name:?} not found"))),
            }
        }
    }
    if nodes.len() > args.max_nodes as usize {
        return Err(StepError::bad_input(format!(
            "the selection matches {} nodes, more than --max-nodes {}; refusing (raise --max-nodes if that is meant)",
            nodes.len(),
            args.max_nodes
        )));
    }
    nodes.sort_by_key(ResourceExt::name_any);
    Ok(nodes)
}
