//! The object store: every API object as JSON, one global resourceVersion counter, and a bounded
//! event history that watches resume from (older than the history answers 410 Gone, as etcd
//! compaction makes the apiserver do).
//!
//! Objects are kept as `serde_json::Value` so that every kind, including ones kubectl sends with
//! fields we do not model, round-trips unchanged. Controllers read the few fields they need.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::{self, ResourceInfo};

/// Events kept for watch resumption. The apiserver keeps about 5 minutes of history; a count is
/// simpler and deterministic for tests.
pub const DEFAULT_HISTORY: usize = 50_000;

/// Identity of one object inside its resource table. `namespace` is empty for cluster-scoped kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace, or "" for cluster-scoped objects.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
}

impl ObjectKey {
    /// Key of an object in `namespace` (or "" for cluster-scoped).
    #[must_use]
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Key read from an object's metadata.
    #[must_use]
    pub fn of(obj: &Value) -> Self {
        Self::new(
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(""),
        )
    }
}

/// Watch event type, as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Which table changed.
    pub resource: &'static ResourceInfo,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED: its last state, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change (None for ADDED). Selector watches judge each event by the
    /// state before and after it, as the apiserver's watch cache does, and exact-version lists
    /// roll the current state back with it.
    pub prev: Option<Arc<Value>>,
}

/// All objects of the simulated cluster.
pub struct Store {
    tables: HashMap<&'static str, BTreeMap<ObjectKey, Arc<Value>>>,
    rv: u64,
    uid_seq: u64,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl Store {
    /// An empty store that keeps `history_limit` events for watch resumption.
    #[must_use]
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        Self {
            tables: HashMap::new(),
            rv: 1,
            uid_seq: 0,
            history: VecDeque::new(),
            history_limit,
            tx,
        }
    }

    /// The current (latest) resourceVersion.
    #[must_use]
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can still resume from.
    #[must_use]
    pub fn oldest_resumable(&self) -> u64 {
        self.history.front().map_or(self.rv, |e| e.rv - 1)
    }

    /// Live events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    /// Events of `resource` after `rv`, or `Err(410 Gone)` when history no longer reaches back.
    pub fn events_since(
        &self,
        resource: &ResourceInfo,
        rv: u64,
    ) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        if rv < self.oldest_resumable() {
            return Err(ApiError::gone(rv, self.oldest_resumable()));
        }
        Ok(self
            .history
            .iter()
            .filter(|e| e.rv > rv && e.resource.key() == resource.key())
            .cloned()
            .collect())
    }

    /// Objects of `resource` (in one namespace or all) as they were at resourceVersion `rv`, in
    /// key order: the current state with the later events rolled back (`resourceVersionMatch=
    /// Exact`). 410 Gone when the history no longer reaches back to `rv`.
    pub fn list_at(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        rv: u64,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        if rv < self.oldest_resumable() {
            return Err(ApiError::gone(rv, self.oldest_resumable()));
        }
        let mut state: BTreeMap<ObjectKey, Arc<Value>> = self
            .list(resource, namespace)
            .map(|o| (ObjectKey::of(o), Arc::clone(o)))
            .collect();
        for e in self
            .history
            .iter()
            .rev()
            .take_while(|e| e.rv > rv)
            .filter(|e| e.resource.key() == resource.key())
        {
            let key = ObjectKey::of(&e.object);
            if namespace.is_some_and(|ns| ns != key.namespace) {
                continue;
            }
            match &e.prev {
                Some(prev) => state.insert(key, Arc::clone(prev)),
                None => state.remove(&key),
            };
        }
        Ok(state.into_values().collect())
    }

    /// A fresh object UID.
    pub fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        let n = self.uid_seq;
        // Stable, UUID-shaped, unique within a run: tests compare UIDs, never parse them.
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }

    /// One object, if present.
    #[must_use]
    pub fn get(&self, resource: &ResourceInfo, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.tables
            .get(resource.key())?
            .get(&ObjectKey::new(namespace, name))
            .cloned()
    }

    /// Objects of `resource`, in one namespace or all (`None`), ordered by namespace then name
    /// (the apiserver's etcd key order, which `continue` tokens rely on).
    pub fn list<'a>(
        &'a self,
        resource: &ResourceInfo,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        let table = self.tables.get(resource.key());
        let range: Box<dyn Iterator<Item = (&ObjectKey, &Arc<Value>)>> = match (table, namespace) {
            (None, _) => Box::new(std::iter::empty()),
            (Some(t), None) => Box::new(t.iter()),
            (Some(t), Some(ns)) => Box::new(
                t.range(ObjectKey::new(ns, "")..)
                    .take_while(move |(k, _)| k.namespace == ns),
            ),
        };
        range.map(|(_, v)| v)
    }

    /// Objects of `resource` after `after` (exclusive) in key order: the basis of `continue`.
    pub fn list_after<'a>(
        &'a self,
        resource: &ResourceInfo,
        namespace: Option<&'a str>,
        after: &ObjectKey,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        use std::ops::Bound;
        let table = self.tables.get(resource.key());
        let iter: Box<dyn Iterator<Item = (&ObjectKey, &Arc<Value>)>> = match table {
            None => Box::new(std::iter::empty()),
            Some(t) => Box::new(t.range((Bound::Excluded(after.clone()), Bound::Unbounded))),
        };
        iter.take_while(move |(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
    }

    /// Number of objects of `resource`.
    #[must_use]
    pub fn count(&self, resource: &ResourceInfo) -> usize {
        self.tables.get(resource.key()).map_or(0, BTreeMap::len)
    }

    /// Stores a new object: fills uid, resourceVersion, generation and (unless the caller set
    /// one, as scenarios do for old pods) creationTimestamp. 409 AlreadyExists if present.
    pub fn create(
        &mut self,
        resource: &'static ResourceInfo,
        mut obj: Value,
        now: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let key = ObjectKey::of(&obj);
        if key.name.is_empty() {
            return Err(ApiError::invalid(
                resource,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if self
            .tables
            .get(resource.key())
            .is_some_and(|t| t.contains_key(&key))
        {
            return Err(ApiError::already_exists(resource, &key.name));
        }
        obj["apiVersion"] = json!(resource.api_version());
        obj["kind"] = json!(resource.kind);
        let uid = self.next_uid();
        let meta = obj
            .as_object_mut()
            .and_then(|o| {
                o.entry("metadata")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
            })
            .ok_or_else(|| ApiError::bad_request("object is not a JSON object"))?;
        meta.insert("uid".into(), json!(uid));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now));
        if meta.get("creationTimestamp").is_some_and(Value::is_null) {
            meta.insert("creationTimestamp".into(), json!(now));
        }
        meta.insert("generation".into(), json!(1));
        Ok(self.commit(resource, key, obj, EventType::Added))
    }

    /// Replaces an object. When the new object carries a resourceVersion it must equal the stored
    /// one (409 Conflict otherwise, the optimistic concurrency every controller relies on).
    /// Bumps `metadata.generation` when `spec` changed. An object being deleted whose finalizers
    /// are now empty is removed, as the apiserver does.
    pub fn update(
        &mut self,
        resource: &'static ResourceInfo,
        mut obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let key = ObjectKey::of(&obj);
        let Some(current) = self.get(resource, &key.namespace, &key.name) else {
            return Err(ApiError::not_found(resource, &key.name));
        };
        if let Some(rv) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && rv
                != current["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
        {
            return Err(ApiError::conflict(resource, &key.name));
        }
        obj["apiVersion"] = json!(resource.api_version());
        obj["kind"] = json!(resource.kind);
        // Immutable metadata comes from the stored object, whatever the client sent.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match current["metadata"].get(field) {
                Some(v) => obj["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        let spec_changed = obj.get("spec") != current.get("spec");
        obj["metadata"]["generation"] = json!(if spec_changed {
            generation + 1
        } else {
            generation
        });
        // A pod in its grace period stays until the kubelet removes it; only objects whose
        // grace is over (0) go when their last finalizer does.
        let finished = current["metadata"].get("deletionTimestamp").is_some()
            && current["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                == 0
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if finished {
            return self
                .remove(resource, &key.namespace, &key.name)
                .ok_or_else(|| ApiError::not_found(resource, &key.name));
        }
        Ok(self.commit(resource, key, obj, EventType::Modified))
    }

    /// Writes an object that the caller already validated (controllers, graceful deletion),
    /// keeping its metadata as given except resourceVersion. Returns the stored object.
    pub fn put(&mut self, resource: &'static ResourceInfo, obj: Value) -> Arc<Value> {
        let key = ObjectKey::of(&obj);
        let kind = if self
            .tables
            .get(resource.key())
            .is_some_and(|t| t.contains_key(&key))
        {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.commit(resource, key, obj, kind)
    }

    /// Removes an object at once and emits DELETED. `None` if it was not there.
    pub fn remove(
        &mut self,
        resource: &'static ResourceInfo,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key = ObjectKey::new(namespace, name);
        let old = self.tables.get_mut(resource.key())?.remove(&key)?;
        self.rv += 1;
        let mut obj = (*old).clone();
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        self.record(resource, EventType::Deleted, obj.clone(), Some(old));
        Some(obj)
    }

    fn commit(
        &mut self,
        resource: &'static ResourceInfo,
        key: ObjectKey,
        mut obj: Value,
        kind: EventType,
    ) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        let prev = self
            .tables
            .entry(resource.key())
            .or_default()
            .insert(key, obj.clone());
        self.record(resource, kind, obj.clone(), prev);
        obj
    }

    fn record(
        &mut self,
        resource: &'static ResourceInfo,
        kind: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            resource,
            kind,
            object,
            prev,
        });
        if self.history.len() >= self.history_limit {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Drops all history older than the current version, so that any earlier resourceVersion
    /// answers 410 Gone (tests of watch re-list use this).
    pub fn compact(&mut self) {
        self.history.clear();
    }
}

/// Looks up a resource table by plural and group, panicking on a typo in our own code.
#[must_use]
pub fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, plural).unwrap_or_else(|| panic!("unknown resource {plural}.{group}"))
}
