//! Which nodes to drain: `--node`, `--selector` or `--nodegroup`, refusing empty and oversized
//! selections.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use opsteps::exit::StepError;

use crate::NODEGROUP_LABEL;
use crate::args::Args;

/// The nodes the flags select, refusing empty and oversized selections.
#[tracing::instrument(skip_all, err)]
pub async fn resolve_targets(client: &Client, args: &Args) -> Result<Vec<Node>, StepError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = Vec::new();
    if args.nodes.is_empty() {
        let sel = match (&args.selector, &args.nodegroup) {
            (Some(s), _) => s.clone(),
            (None, Some(ng)) => format!("{NODEGROUP_LABEL}={ng}"),
            (None, None) => String::new(),
        };
        let list = api
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 400 => StepError::bad_input(format!(
                    "the API server refused the node selector {sel:?}"
                ))
                .with_source(e),
                _ => StepError::kube("list nodes", e),
            })?;
        if list.items.is_empty() {
            return Err(StepError::bad_input(format!(
                "no node matches {sel:?}; nothing to drain"
            )));
        }
        nodes = list.items;
    } else {
        let mut seen = std::collections::BTreeSet::new();
        for name in &args.nodes {
            if !seen.insert(name.clone()) {
                continue;
            }
            match api
                .get_opt(name)
                .await
                .map_err(|e| StepError::kube(format!("get node {name}"), e))?
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
