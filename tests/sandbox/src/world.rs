//! State owned by the simulated world: kubelet timings, scenario-driven behaviour (pods that hang
//! in termination, container restarts, node NotReady schedules, static pods), address
//! allocation, and the controllers' dirty tracking.
//!
//! Behaviour is kept here rather than in object annotations so that clients see the same objects
//! a real cluster would show them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

/// Kubelet timings, in virtual time.
#[derive(Clone, Debug)]
pub struct KubeletTimings {
    /// From scheduling to containers running (image pull, sandbox start).
    pub start_delay: Duration,
    /// From containers running to Ready (readiness probe).
    pub ready_delay: Duration,
}

impl Default for KubeletTimings {
    fn default() -> Self {
        Self {
            start_delay: Duration::from_secs(2),
            ready_delay: Duration::from_secs(3),
        }
    }
}

/// A container restart history a pod shows (`restartCount`, `lastState.terminated`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restarts {
    /// `restartCount` of the first container.
    pub count: u32,
    /// `lastState.terminated.reason`, e.g. `OOMKilled` or `Error`.
    pub reason: String,
    /// `lastState.terminated.exitCode` (137 for OOMKilled).
    pub exit_code: i32,
    /// When set, the container restarts again every `every` of virtual time while running.
    pub every: Option<Duration>,
}

/// Behaviour of the pods a rule selects.
#[derive(Clone, Debug, Default)]
pub struct PodBehaviour {
    /// Pods stay terminating forever (a stuck finalizer-free shutdown, as with a hung preStop).
    pub hang_on_termination: bool,
    /// Restart history and schedule.
    pub restarts: Option<Restarts>,
    /// Overrides the kubelet's start-up delay.
    pub start_delay: Option<Duration>,
    /// Overrides the kubelet's readiness delay.
    pub ready_delay: Option<Duration>,
    /// The pod never becomes Ready (a failing readiness probe).
    pub never_ready: bool,
}

/// Selects pods for a [`PodBehaviour`]: namespace plus a `matchLabels` map.
#[derive(Clone, Debug)]
pub struct PodRule {
    /// Namespace of the pods.
    pub namespace: String,
    /// Labels the pods must carry (all of them).
    pub match_labels: BTreeMap<String, String>,
    /// What those pods do.
    pub behaviour: PodBehaviour,
}

/// A scheduled change of a node's health.
#[derive(Clone, Debug)]
pub struct NodeEvent {
    /// Virtual time at which it happens.
    pub at: Timestamp,
    /// Node name.
    pub node: String,
    /// Ready after the event.
    pub ready: bool,
    /// `NotReady` (kubelet reports not ready: condition False, taint `not-ready`) or
    /// `Unreachable` (no heartbeat: condition Unknown, taint `unreachable`).
    pub reason: NodeDownReason,
}

/// How a node is down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeDownReason {
    /// The kubelet reports Ready=False.
    #[default]
    NotReady,
    /// The kubelet stopped posting status: Ready=Unknown.
    Unreachable,
}

/// A static pod the kubelet of each listed node runs; its mirror pod is recreated when deleted.
#[derive(Clone, Debug)]
pub struct StaticPod {
    /// Nodes that run it.
    pub nodes: Vec<String>,
    /// Mirror pod template: the full pod object without node-specific fields; `metadata.name` is
    /// the base name (the mirror pod is `<name>-<node>`).
    pub template: Value,
}

/// World state.
#[derive(Default)]
pub struct World {
    /// Kubelet timings.
    pub kubelet: KubeletTimings,
    /// Pod behaviour rules; the first matching rule applies.
    pub pod_rules: Vec<PodRule>,
    /// Individually marked pods (namespace, name) that hang in termination.
    pub hanging_pods: HashSet<(String, String)>,
    /// Pending node health changes, applied by the node lifecycle controller when due.
    pub node_events: Vec<NodeEvent>,
    /// Nodes currently down, by name.
    pub nodes_down: HashMap<String, NodeDownReason>,
    /// Static pods.
    pub static_pods: Vec<StaticPod>,
    /// Controllers run only when set (the scenario can turn them off; tests of the API layer
    /// alone may too).
    pub controllers_disabled: bool,
    /// Events written by the controllers (correlation and bound).
    pub event_log: crate::events::EventLog,
    pub(crate) next_pod_ip: u32,
    /// The pod-IP range: `127.<block>.0.0/16` (block 1 unless [`World::set_pod_ip_block`]).
    pod_ip_block: Option<u8>,
    pub(crate) next_node_ip: u32,
    pub(crate) name_seq: u64,
    /// resourceVersion after the last controller pass that wrote nothing.
    pub(crate) seen_rv: u64,
    /// Timers: at each time, the namespaces to reconcile (`None`: everything).
    pub(crate) timers: BTreeMap<Timestamp, HashSet<Option<String>>>,
    /// Store events since the last pass (subscribed at the first pass).
    pub(crate) events:
        Option<tokio::sync::broadcast::Receiver<std::sync::Arc<crate::store::WatchEvent>>>,
    /// The next pass reconciles everything.
    pub(crate) force_full: bool,
}

impl World {
    /// The behaviour of a pod: the individual hang mark, then the first matching rule.
    #[must_use]
    pub fn behaviour(&self, pod: &Value) -> PodBehaviour {
        let (ns, name) = crate::podutil::ns_name(pod);
        let mut b = self
            .pod_rules
            .iter()
            .find(|r| {
                r.namespace == ns && {
                    let labels = crate::labels::labels(pod);
                    r.match_labels
                        .iter()
                        .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v))
                }
            })
            .map(|r| r.behaviour.clone())
            .unwrap_or_default();
        if self
            .hanging_pods
            .contains(&(ns.to_owned(), name.to_owned()))
        {
            b.hang_on_termination = true;
        }
        b
    }

    /// Makes one pod hang in termination (or stop hanging: the kubelet then finishes it).
    pub fn set_hanging(&mut self, namespace: &str, name: &str, hang: bool) {
        let key = (namespace.to_owned(), name.to_owned());
        if hang {
            self.hanging_pods.insert(key);
        } else {
            self.hanging_pods.remove(&key);
        }
        self.wake();
    }

    /// Schedules a node health change at `at`.
    pub fn schedule_node(&mut self, event: NodeEvent) {
        self.node_events.push(event);
        self.wake();
    }

    /// Takes a node down (or brings it back) at the next controller pass.
    pub fn set_node_ready(&mut self, node: &str, ready: bool, reason: NodeDownReason) {
        if ready {
            self.nodes_down.remove(node);
        } else {
            self.nodes_down.insert(node.to_owned(), reason);
        }
        self.wake();
    }

    /// Forces the next tick to run every controller over everything, even when nothing changed.
    pub fn wake(&mut self) {
        self.seen_rv = 0;
        self.force_full = true;
    }

    /// Gives this cluster the pod-IP range `127.<block>.0.0/16` (`block` in 1..=249), so pods of
    /// sandboxes running at once never share an IP (see [`reserve_pod_ip_block`]).
    pub fn set_pod_ip_block(&mut self, block: u8) {
        self.pod_ip_block = Some(block);
    }

    /// A fresh pod IP in this cluster's range, 127.<block>.y.z with y in 0..=254 and z in
    /// 1..=254: 64,770 addresses before one is reused. `127.<block>.255.254` is left out for
    /// the range's reservation.
    pub fn alloc_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip = self.next_pod_ip.wrapping_add(1);
        let z = n % 254 + 1;
        let y = (n / 254) % 255;
        let x = self.pod_ip_block.unwrap_or(1);
        format!("127.{x}.{y}.{z}")
    }

    /// A fresh node InternalIP: 127.25x.y.z, apart from pod IPs.
    pub fn alloc_node_ip(&mut self) -> String {
        let n = self.next_node_ip;
        self.next_node_ip += 1;
        let z = n % 254 + 1;
        let y = (n / 254) % 256;
        let x = 250 + (n / 254 / 256) % 5;
        format!("127.{x}.{y}.{z}")
    }

    /// A fresh random-looking name suffix in the apiserver's alphabet (5 characters).
    pub fn name_suffix(&mut self) -> String {
        self.name_seq += 1;
        crate::controllers::util::suffix(self.name_seq, 5)
    }
}

/// Port of the reservation listener that claims a pod-IP range machine-wide.
const RESERVATION_PORT: u16 = 9399;

/// Claims a free pod-IP range for one sandbox: the first block (from a random start) whose
/// reservation address `127.<block>.255.254:9399` can be bound. The range is the caller's for as
/// long as it holds the listener, against every other sandbox on the machine, in any process.
pub fn reserve_pod_ip_block() -> std::io::Result<(u8, std::net::TcpListener)> {
    let start: u8 = rand::random_range(0..249);
    let mut last = None;
    for i in 0..249u8 {
        let block = (start + i) % 249 + 1;
        match std::net::TcpListener::bind((
            std::net::Ipv4Addr::new(127, block, 255, 254),
            RESERVATION_PORT,
        )) {
            Ok(l) => return Ok((block, l)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no pod-IP range left")))
}
