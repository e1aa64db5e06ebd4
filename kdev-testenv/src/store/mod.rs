//! The server's storage: every object, one cluster-wide resourceVersion, the event history
//! watches replay from, and the open watches
//! ([resource versions](https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions)).

mod history;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use history::History;
pub use history::{Event, EventType, WatchMsg};

use crate::registry::Registry;

/// An object as stored: its JSON value, the same value serialized, and its resourceVersion.
#[derive(Debug)]
pub struct Stored {
    /// The object, in its storage version.
    pub value: Value,
    /// `value` serialized, so reads hand out bytes without serializing again.
    pub json: Bytes,
    /// The resourceVersion the object was written at.
    pub rv: u64,
}

impl Stored {
    pub(crate) fn new(mut value: Value, rv: u64) -> Arc<Self> {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Arc::new(Stored { value, json, rv })
    }

    /// An object as a dry-run create answers it: never stored, so without a resourceVersion
    /// (kube-apiserver's dry-run storage copies the object out as it was about to be written).
    pub(crate) fn unstored(mut value: Value) -> Arc<Self> {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Arc::new(Stored { value, json, rv: 0 })
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Key of an object within its resource: namespace (empty when cluster-scoped) and name.
pub type ObjKey = (String, String);

#[derive(Debug, Default)]
struct Table {
    objects: BTreeMap<ObjKey, Arc<Stored>>,
    /// resourceVersion of the last write to this table.
    last_change: u64,
}

struct Snapshot {
    taken: Instant,
    items: Arc<Vec<Arc<Stored>>>,
}

/// Everything behind the server's one lock.
pub struct State {
    rv: u64,
    /// The resources served. Change it through [`State::register`] and [`State::unregister`],
    /// which tell the request path to refresh its lock-free copy.
    pub registry: Registry,
    registry_changed: Arc<std::sync::atomic::AtomicBool>,
    tables: HashMap<String, Table>,
    history: History,
    watchers: HashMap<String, Vec<(u64, mpsc::UnboundedSender<WatchMsg>)>>,
    next_watcher: u64,
    snapshots: HashMap<(String, u64), Snapshot>,
    /// Owner uid → the objects whose ownerReferences name it (for garbage collection).
    owners: HashMap<String, BTreeSet<(String, ObjKey)>>,
}

/// How long a paginated list's snapshot is kept for its continue tokens (etcd keeps about 5 min).
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);
const MAX_SNAPSHOTS: usize = 64;

impl State {
    /// An empty store serving `registry`, remembering `history` events for watches.
    pub fn new(registry: Registry, history: usize) -> Self {
        State {
            rv: 1,
            registry,
            registry_changed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            tables: HashMap::new(),
            history: History::new(history),
            watchers: HashMap::new(),
            next_watcher: 0,
            snapshots: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    /// Serves a resource (a CRD was established or changed).
    pub fn register(&mut self, res: crate::registry::Resource) {
        self.registry.insert(res);
        self.registry_changed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops serving a resource (its CRD is gone).
    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.registry.remove(group, plural);
        self.registry_changed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The flag raised whenever the registry changes.
    pub fn registry_changed(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.registry_changed.clone()
    }

    /// The latest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(&self, storage: &str, ns: &str, name: &str) -> Option<&Arc<Stored>> {
        self.tables
            .get(storage)?
            .objects
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, in key order, in one namespace or all.
    pub fn list(&self, storage: &str, ns: Option<&str>) -> Vec<Arc<Stored>> {
        let Some(t) = self.tables.get(storage) else {
            return Vec::new();
        };
        match ns {
            None => t.objects.values().cloned().collect(),
            Some(ns) => t
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, o)| o.clone())
                .collect(),
        }
    }

    /// Number of objects of a resource in a namespace (or all).
    pub fn count(&self, storage: &str, ns: Option<&str>) -> usize {
        match (self.tables.get(storage), ns) {
            (None, _) => 0,
            (Some(t), None) => t.objects.len(),
            (Some(t), Some(ns)) => t
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .count(),
        }
    }

    /// Storage keys of every table that has objects in `ns`.
    pub fn storages_with_objects_in(&self, ns: &str) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, t)| {
                t.objects
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((n, _), _)| n == ns)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Writes `value` (a create when the key is new, an update otherwise) at a new resourceVersion.
    pub fn put(&mut self, storage: &str, key: ObjKey, value: Value) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        let stored = Stored::new(value, rv);
        let prev = {
            let table = self.tables.entry(storage.to_string()).or_default();
            table.last_change = rv;
            table.objects.insert(key.clone(), stored.clone())
        };
        if let Some(p) = &prev {
            self.unindex_owners(storage, &key, &p.value);
        }
        self.index_owners(storage, &key, &stored.value);
        let ty = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(Event {
            rv,
            storage: storage.into(),
            ty,
            object: stored.clone(),
            prev,
        });
        stored
    }

    /// Rewrites how the objects of `storage` read, in place: each keeps its resourceVersion and
    /// no watch event is sent, as when kube-apiserver applies a new schema's defaults to objects
    /// as it reads them from etcd. Kept list snapshots are left as they were.
    pub fn reread(&mut self, storage: &str, mut f: impl FnMut(&mut Value)) {
        let Some(table) = self.tables.get_mut(storage) else {
            return;
        };
        for stored in table.objects.values_mut() {
            let mut value = stored.value.clone();
            f(&mut value);
            if value != stored.value {
                *stored = Stored::new(value, stored.rv);
            }
        }
    }

    /// Removes an object; the DELETED event carries its last state at a new resourceVersion.
    pub fn remove(&mut self, storage: &str, key: &ObjKey) -> Option<Arc<Stored>> {
        let rv = self.rv + 1;
        let prev = {
            let table = self.tables.get_mut(storage)?;
            let prev = table.objects.remove(key)?;
            table.last_change = rv;
            prev
        };
        self.rv = rv;
        self.unindex_owners(storage, key, &prev.value);
        let last = Stored::new(prev.value.clone(), rv);
        self.emit(Event {
            rv,
            storage: storage.into(),
            ty: EventType::Deleted,
            object: last.clone(),
            prev: Some(prev),
        });
        Some(last)
    }

    /// Drops a whole resource's table (its CRD is gone); emits nothing, as the watches end.
    pub fn drop_table(&mut self, storage: &str) {
        self.tables.remove(storage);
        if let Some(ws) = self.watchers.remove(storage) {
            for (_, tx) in ws {
                let _ = tx.send(WatchMsg::Close);
            }
        }
    }

    fn owner_uids(value: &Value) -> impl Iterator<Item = &str> {
        value
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("uid").and_then(Value::as_str))
    }

    fn index_owners(&mut self, storage: &str, key: &ObjKey, value: &Value) {
        for uid in Self::owner_uids(value) {
            self.owners
                .entry(uid.to_string())
                .or_default()
                .insert((storage.to_string(), key.clone()));
        }
    }

    fn unindex_owners(&mut self, storage: &str, key: &ObjKey, value: &Value) {
        for uid in Self::owner_uids(value) {
            if let Some(set) = self.owners.get_mut(uid) {
                set.remove(&(storage.to_string(), key.clone()));
                if set.is_empty() {
                    self.owners.remove(uid);
                }
            }
        }
    }

    /// The objects (storage, key) whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(String, ObjKey)> {
        self.owners
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Finds an object by uid among the given storage's objects in `ns` (owner lookup).
    pub fn find_uid(&self, storage: &str, ns: &str, name: &str, uid: &str) -> bool {
        self.get(storage, ns, name).is_some_and(|o| o.uid() == uid)
    }

    fn emit(&mut self, event: Event) {
        let event = Arc::new(event);
        if let Some(ws) = self.watchers.get_mut(&*event.storage) {
            ws.retain(|(_, tx)| tx.send(WatchMsg::Event(event.clone())).is_ok());
        }
        self.history.push(event);
    }

    /// Opens a watch on `storage`: events after `from` (history replayed first), or only new
    /// events when `from` is `None`.
    ///
    /// # Errors
    /// `Err(oldest)` when `from` is older than the history kept.
    pub fn watch(&mut self, storage: &str, from: Option<u64>) -> Result<(u64, mpsc::UnboundedReceiver<WatchMsg>), u64> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(from) = from {
            let replay = self.history.since(from, storage)?;
            for ev in replay {
                let _ = tx.send(WatchMsg::Event(ev));
            }
        }
        self.next_watcher += 1;
        let id = self.next_watcher;
        self.watchers.entry(storage.to_string()).or_default().push((id, tx));
        Ok((id, rx))
    }

    /// Sends a bookmark at the current resourceVersion to one watch, in order with its events.
    pub fn bookmark(&mut self, storage: &str, id: u64, initial_events_end: bool) {
        let rv = self.rv;
        if let Some((_, tx)) = self
            .watchers
            .get(storage)
            .and_then(|ws| ws.iter().find(|(i, _)| *i == id))
        {
            let _ = tx.send(WatchMsg::Bookmark { rv, initial_events_end });
        }
    }

    /// Forgets a watch whose client has gone.
    pub fn unwatch(&mut self, storage: &str, id: u64) {
        if let Some(ws) = self.watchers.get_mut(storage) {
            ws.retain(|(i, _)| *i != id);
        }
    }

    /// Ends every open watch (fault injection). Returns how many were open.
    pub fn drop_watches(&mut self) -> usize {
        let mut n = 0;
        for (_, ws) in self.watchers.drain() {
            for (_, tx) in ws {
                n += 1;
                let _ = tx.send(WatchMsg::Close);
            }
        }
        n
    }

    /// Forgets the event history, so watches from any older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.compact(self.rv);
        self.snapshots.clear();
    }

    /// The objects of `storage` as they were at `rv`, when that can be known: from a kept
    /// snapshot, or from the current table when it has not changed since.
    pub fn snapshot_at(&self, storage: &str, rv: u64) -> Option<Arc<Vec<Arc<Stored>>>> {
        if let Some(s) = self.snapshots.get(&(storage.to_string(), rv)) {
            return Some(s.items.clone());
        }
        let last = self.tables.get(storage).map_or(0, |t| t.last_change);
        (last <= rv && rv <= self.rv && rv > self.history.compacted()).then(|| Arc::new(self.list(storage, None)))
    }

    /// Keeps the current content of `storage` for later pages of a list.
    pub fn keep_snapshot(&mut self, storage: &str) -> Arc<Vec<Arc<Stored>>> {
        let key = (storage.to_string(), self.rv);
        if let Some(s) = self.snapshots.get(&key) {
            return s.items.clone();
        }
        let now = Instant::now();
        self.snapshots.retain(|_, s| now.duration_since(s.taken) < SNAPSHOT_TTL);
        if self.snapshots.len() >= MAX_SNAPSHOTS
            && let Some(oldest) = self
                .snapshots
                .iter()
                .min_by_key(|(_, s)| s.taken)
                .map(|(k, _)| k.clone())
        {
            self.snapshots.remove(&oldest);
        }
        let items = Arc::new(self.list(storage, None));
        self.snapshots.insert(
            key,
            Snapshot {
                taken: now,
                items: items.clone(),
            },
        );
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "namespace": "default" } })
    }

    #[test]
    fn every_write_takes_the_next_resource_version() {
        let mut s = State::new(Registry::builtin(), 100);
        let a = s.put("/configmaps", ("default".into(), "a".into()), cm("a"));
        let b = s.put("/configmaps", ("default".into(), "b".into()), cm("b"));
        assert!(b.rv > a.rv);
        assert_eq!(a.value["metadata"]["resourceVersion"], a.rv.to_string());
        let gone = s.remove("/configmaps", &("default".into(), "a".into())).map(|g| g.rv);
        assert_eq!(gone, Some(s.rv()));
    }

    #[test]
    fn a_watch_replays_history_after_its_version_then_streams() {
        let mut s = State::new(Registry::builtin(), 100);
        let a = s.put("/configmaps", ("default".into(), "a".into()), cm("a"));
        s.put("/configmaps", ("default".into(), "b".into()), cm("b"));
        let (_, mut rx) = s
            .watch("/configmaps", Some(a.rv))
            .map_err(|_| ())
            .unwrap_or_else(|_| panic!("expired"));
        s.put("/configmaps", ("default".into(), "c".into()), cm("c"));
        let names: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|m| match m {
                WatchMsg::Event(e) => e.object.value["metadata"]["name"].as_str().map(String::from),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn a_watch_from_before_the_history_window_expires() {
        let mut s = State::new(Registry::builtin(), 2);
        for n in ["a", "b", "c", "d"] {
            s.put("/configmaps", ("default".into(), n.into()), cm(n));
        }
        assert!(s.watch("/configmaps", Some(2)).is_err());
        assert!(s.watch("/configmaps", Some(s.rv() - 1)).is_ok());
        s.compact();
        assert!(s.watch("/configmaps", Some(s.rv() - 1)).is_err());
        assert!(s.watch("/configmaps", Some(s.rv())).is_ok());
    }
}
