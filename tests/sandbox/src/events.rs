//! Events as the controllers of a real cluster write them (core/v1 `Event`): the scheduler's
//! `Scheduled`/`FailedScheduling`, the kubelet's `Pulling`/`Pulled`/`Created`/`Started`/
//! `Killing`, the node controller's `NodeNotReady`, the ReplicaSet controller's
//! `SuccessfulCreate`/`SuccessfulDelete` and the Deployment controller's `ScalingReplicaSet`.
//!
//! A repeat (same object, reason, message and source) bumps `count` and `lastTimestamp` of the
//! existing Event instead of writing a new one, as client-go's event correlator does. The
//! number of Events is bounded ([`EventLog::limit`]): past it the oldest are deleted, as the
//! apiserver's event TTL would, so long runs keep a flat memory profile.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use crate::resources::{ResourceInfo, well_known};
use crate::store::Store;

/// Who reports: `source.component` (and `source.host` for the kubelet).
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// `default-scheduler`, `kubelet`, `node-controller`, `replicaset-controller`, ...
    pub component: &'a str,
    /// The node, for kubelet events.
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// A control-plane component.
    #[must_use]
    pub fn component(component: &'a str) -> Self {
        Self {
            component,
            host: None,
        }
    }

    /// The kubelet of `node`.
    #[must_use]
    pub fn kubelet(node: &'a str) -> Self {
        Self {
            component: "kubelet",
            host: Some(node),
        }
    }
}

/// The Events written so far, for correlation and the bound.
#[derive(Debug)]
pub struct EventLog {
    /// Correlation key → (namespace, name) of the Event.
    by_key: HashMap<String, (String, String)>,
    /// Events in creation order, with their keys.
    order: VecDeque<String>,
    seq: u64,
    /// Most Events kept; the oldest are deleted beyond it.
    pub limit: usize,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            limit: 5_000,
        }
    }
}

/// One Event to record.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The involved object (its metadata is read).
    pub object: &'a Value,
    /// Its resource type.
    pub resource: &'static ResourceInfo,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<&'a str>,
    /// `Normal` or `Warning`.
    pub kind: &'a str,
    /// Reason, e.g. `Scheduled`.
    pub reason: &'a str,
    /// Message.
    pub message: &'a str,
    /// Reporter.
    pub source: Source<'a>,
}

impl EventLog {
    /// Records `e` at `now` (correlating repeats). With `once`, a repeat is not counted.
    pub fn record(&mut self, store: &mut Store, e: &Event<'_>, now: &str, once: bool) {
        let meta = &e.object["metadata"];
        let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let (name, uid) = (s(&meta["name"]), s(&meta["uid"]));
        // Cluster-scoped objects' Events live in `default`, as the apiserver's do.
        let ns = Some(s(&meta["namespace"]))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let key = format!(
            "{uid}|{}|{}|{}|{}|{}",
            e.reason,
            e.message,
            e.source.component,
            e.source.host.unwrap_or(""),
            e.field_path.unwrap_or("")
        );
        let events = well_known::events();
        if let Some((ens, ename)) = self.by_key.get(&key).cloned() {
            if once {
                return;
            }
            if crate::controllers::util::mutate(store, events, &ens, &ename, |ev| {
                ev["count"] = json!(ev["count"].as_u64().unwrap_or(1) + 1);
                ev["lastTimestamp"] = json!(now);
            })
            .is_some()
                || store.get(events, &ens, &ename).is_some()
            {
                return;
            }
            // Deleted by a client meanwhile: write it anew.
            self.by_key.remove(&key);
        }
        self.seq += 1;
        let event_name = format!("{name}.{:x}", 0x1870_0000_0000_0000_u64 + self.seq);
        let mut involved = json!({
            "apiVersion": e.resource.api_version(),
            "kind": e.resource.kind,
            "name": name,
            "uid": uid,
            "resourceVersion": meta["resourceVersion"],
        });
        if e.resource.namespaced {
            involved["namespace"] = json!(ns);
        }
        if let Some(f) = e.field_path {
            involved["fieldPath"] = json!(f);
        }
        let mut source = json!({"component": e.source.component});
        if let Some(h) = e.source.host {
            source["host"] = json!(h);
        }
        let obj = json!({
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "type": e.kind,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": e.source.component,
            "reportingInstance": e.source.host.unwrap_or(""),
        });
        if store.create(events, obj, now).is_err() {
            return;
        }
        self.by_key.insert(key.clone(), (ns, event_name));
        self.order.push_back(key);
        while self.order.len() > self.limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((ons, oname)) = self.by_key.remove(&old) {
                store.remove(events, &ons, &oname);
            }
        }
    }
}

/// Records `e` in `cluster` at `now`; with `once`, a repeat is not counted.
pub fn record(cluster: &mut crate::cluster::Cluster, e: &Event<'_>, now: &str, once: bool) {
    cluster
        .world
        .event_log
        .record(&mut cluster.store, e, now, once);
}

/// One kubelet container event: type, reason, and the message from (container, image).
pub type ContainerEvent = (&'static str, &'static str, fn(&str, &str) -> String);

/// The kubelet's container events for `pod` on `node`, each once per container.
pub fn containers(
    cluster: &mut crate::cluster::Cluster,
    pod: &Value,
    node: &str,
    steps: &[ContainerEvent],
    now: &str,
) {
    let containers: Vec<(String, String)> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("name"), s("image"))
        })
        .collect();
    for (name, image) in containers {
        let field_path = format!("spec.containers{{{name}}}");
        for (kind, reason, message) in steps {
            let message = message(&name, &image);
            let event = Event {
                object: pod,
                resource: well_known::pods(),
                field_path: Some(&field_path),
                kind,
                reason,
                message: &message,
                source: Source::kubelet(node),
            };
            record(cluster, &event, now, true);
        }
    }
}
