//! Node group rollouts from the operations' side: launching new nodes, starting a scale-down
//! or version update's drain, and settling the update when [`rollout::step`] says it is over.

use jiff::Timestamp;
use serde_json::Value;

use super::nodegroups::finish_status;
use super::settle;
use crate::cluster::Cluster;
use crate::controllers::util::fnv;
use crate::eks::{Target, group_nodes, rollout};
use crate::resources::well_known;

/// The `eks.amazonaws.com/nodegroup-image` of group `g`'s nodes at AMI release `release`.
pub(super) fn ami_of(g: &str, release: &str) -> String {
    format!("ami-{:016x}0", fnv(format!("{g}/{release}").as_bytes()))
}

pub(super) const IMAGE_LABEL: &str = "eks.amazonaws.com/nodegroup-image";

pub(super) fn node_image(c: &Cluster, node: &str) -> Option<String> {
    c.store
        .get(well_known::nodes(), "", node)?
        .pointer("/metadata/labels/eks.amazonaws.com~1nodegroup-image")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Launches `count` new nodes of group `g` at `version` / `release`.
pub(super) fn launch_new(
    c: &mut Cluster,
    g: &str,
    version: &str,
    release: &str,
    count: u32,
) -> anyhow::Result<Vec<String>> {
    let Some(ng) = c.eks.nodegroups.get(g).cloned() else {
        return Ok(Vec::new());
    };
    let mut spec = ng.spec.clone();
    spec.age = None;
    spec.version = None;
    spec.labels.insert(IMAGE_LABEL.into(), ami_of(g, release));
    let cs = c.eks.cluster_spec(version);
    let from = ng.next_index;
    let names = crate::scenario::add_group_nodes(c, &cs, &spec, from..from + count)?;
    if let Some(ng) = c.eks.nodegroups.get_mut(g) {
        ng.next_index = from + count;
    }
    rollout::launched(c, g, &names);
    Ok(names)
}

/// Starts draining the nodes a scale-down removes (highest index first), if it removes any.
pub(super) fn start_scale_down(c: &mut Cluster, idx: usize, g: &str, now: Timestamp) -> bool {
    let Some(want) = c.eks.nodegroups.get(g).map(|ng| ng.desired_size as usize) else {
        return false;
    };
    let have = group_nodes(c, g);
    if have.len() <= want {
        return false;
    }
    let remove = have[..have.len() - want].to_vec();
    // The ASG terminates the instances together, so they are cordoned together first.
    for n in &remove {
        rollout::cordon(c, g, n);
    }
    c.eks.updates[idx].rollout = Some(rollout::Rollout {
        kind: rollout::Kind::ScaleDown,
        force: true,
        parallel: remove.len(),
        queue: remove,
        draining: Vec::new(),
        timeout: c.eks.timings.pod_eviction_timeout,
    });
    run_rollout(c, idx, now);
    true
}

/// Starts a version update's replacement: launches the surge of new nodes, cordons the old ones.
pub(super) fn start_replacement(
    c: &mut Cluster,
    idx: usize,
    g: &str,
    version: &str,
    release: &str,
    force: bool,
    now: Timestamp,
) -> anyhow::Result<()> {
    // Nodes already at the target (from an earlier, failed attempt) stay.
    let image = ami_of(g, release);
    let (current, old): (Vec<String>, Vec<String>) = group_nodes(c, g)
        .into_iter()
        .partition(|n| node_image(c, n).as_deref() == Some(image.as_str()));
    let max_unavailable = c
        .eks
        .nodegroups
        .get(g)
        .map_or(1, |ng| ng.max_unavailable.max(1));
    let zones: std::collections::BTreeSet<String> = old
        .iter()
        .filter_map(|n| c.store.get(well_known::nodes(), "", n))
        .filter_map(|n| {
            n.pointer("/metadata/labels/topology.kubernetes.io~1zone")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let surge = (max_unavailable as usize)
        .max(2 * zones.len())
        .min(old.len())
        .saturating_sub(current.len());
    launch_new(
        c,
        g,
        version,
        release,
        u32::try_from(surge).unwrap_or(u32::MAX),
    )?;
    for n in &old {
        rollout::cordon(c, g, n);
    }
    c.eks.updates[idx].rollout = Some(rollout::Rollout {
        kind: rollout::Kind::Replace {
            version: version.to_owned(),
            release: release.to_owned(),
        },
        force,
        queue: old,
        draining: Vec::new(),
        parallel: max_unavailable as usize,
        timeout: c.eks.timings.pod_eviction_timeout,
    });
    run_rollout(c, idx, now);
    Ok(())
}

/// Moves the rollout of update `idx` along; when it is over, settles the update and the group.
pub(in crate::eks) fn run_rollout(c: &mut Cluster, idx: usize, now: Timestamp) {
    let Some(mut r) = c.eks.updates[idx].rollout.take() else {
        return;
    };
    let Target::Nodegroup(g) = c.eks.updates[idx].target.clone() else {
        return;
    };
    let kind = r.kind.clone();
    let mut replace = |c: &mut Cluster| -> bool {
        let rollout::Kind::Replace { version, release } = &kind else {
            return false;
        };
        let want = c
            .eks
            .nodegroups
            .get(&g)
            .map_or(0, |ng| ng.desired_size as usize);
        let image = ami_of(&g, release);
        let new = group_nodes(c, &g)
            .iter()
            .filter(|n| node_image(c, n).as_deref() == Some(image.as_str()))
            .count();
        if new >= want {
            return false;
        }
        match launch_new(c, &g, version, release, 1) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(nodegroup = %g, error = %e, "launching a replacement node");
                false
            }
        }
    };
    let progress = rollout::step(c, &g, &mut r, now, &mut replace);
    let result = match progress {
        rollout::Progress::Running => {
            c.eks.updates[idx].rollout = Some(r);
            return;
        }
        rollout::Progress::Done(result) => result,
    };
    if let (Ok(()), rollout::Kind::Replace { version, release }) = (&result, &r.kind)
        && let Some(ng) = c.eks.nodegroups.get_mut(&g)
    {
        ng.version.clone_from(version);
        ng.release_version.clone_from(release);
        ng.spec.version = None;
        ng.image = Some(ami_of(&g, release));
    }
    settle(c, idx, result);
    finish_status(c, &g, now);
}
