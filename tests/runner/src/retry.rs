//! `argo retry`: which nodes of a failed run are kept.

use std::collections::{HashMap, HashSet};

use crate::workflow::{Node, Workflow};

fn subtree(wf: &Workflow, id: &str, out: &mut Vec<Node>) {
    if let Some(n) = wf.node_by_id(id) {
        out.push(n.clone());
        for c in &n.children {
            subtree(wf, c, out);
        }
    }
}

/// The nodes of the main tree that do not run again, by id, each with its subtree. Without
/// `node`, every Failed/Error node and its ancestors run again; with it, only the failed
/// nodes of that display name, their ancestors and their descendants (other failed nodes
/// stay failed). The exit handler always runs again. Err names a `node` that matches nothing.
pub(crate) fn kept_nodes(
    wf: &Workflow,
    node: Option<&str>,
) -> Result<HashMap<String, Vec<Node>>, String> {
    let Some(root) = wf
        .nodes
        .iter()
        .find(|n| n.parent.is_none() && n.display_name == wf.name)
    else {
        return Ok(HashMap::new());
    };
    let mut main = Vec::new();
    subtree(wf, &root.id, &mut main);
    let selected: Vec<&Node> = main
        .iter()
        .filter(|n| n.phase.is_failure() && node.is_none_or(|name| n.display_name == name))
        .collect();
    if let Some(name) = node
        && selected.is_empty()
    {
        return Err(name.to_owned());
    }
    let mut reset: HashSet<String> = HashSet::new();
    for n in &selected {
        let mut cur = Some((*n).clone());
        while let Some(c) = cur {
            reset.insert(c.id.clone());
            cur = c.parent.as_deref().and_then(|p| wf.node_by_id(p)).cloned();
        }
        if node.is_some() {
            let mut below = Vec::new();
            subtree(wf, &n.id, &mut below);
            reset.extend(below.into_iter().map(|b| b.id));
        }
    }
    Ok(main
        .iter()
        .filter(|n| !reset.contains(&n.id))
        .map(|n| {
            let mut s = Vec::new();
            subtree(wf, &n.id, &mut s);
            (n.id.clone(), s)
        })
        .collect())
}
