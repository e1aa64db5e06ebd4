//! The in-order FIFO that client-go's informers use by default since 1.33: every event delivered in
//! arrival order, no per-key coalescing
//! ([`tools/cache/the_real_fifo.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/the_real_fifo.go)).
//!
//! See the [`delta_fifo`](crate::delta_fifo) module docs for when to use which FIFO.
//!
//! # Examples
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::delta_fifo::DeltaType;
//! use kdev_core::real_fifo::RealFifo;
//!
//! # fn cm(name: &str) -> ConfigMap {
//! #     let mut cm = ConfigMap::default();
//! #     cm.metadata.name = Some(name.into());
//! #     cm
//! # }
//! # futures::executor::block_on(async {
//! let fifo = RealFifo::<ConfigMap>::default();
//! fifo.add(cm("a"));
//! fifo.add(cm("b"));
//! fifo.update(cm("a"));
//!
//! // Events come out exactly as they went in: a, b, then a again.
//! let mut seen = Vec::new();
//! while let Some((kind, name)) =
//!     fifo.try_pop(|d, _| (d.kind, d.object.get().unwrap().metadata.name.clone().unwrap()))
//! {
//!     seen.push(format!("{kind} {name}"));
//! }
//! assert_eq!(seen, ["Added a", "Added b", "Updated a"]);
//! # });
//! ```

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use kube_core::Resource;

use crate::delta_fifo::{Closed, Config, Core, Delta, DeltaType, Queue};
use crate::store::key_of;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What the queue still holds for one key.
struct Pending<K> {
    count: usize,
    last: Delta<K>,
}

struct Events<K> {
    queue: VecDeque<(Arc<str>, Delta<K>)>,
    pending: Map<Arc<str>, Pending<K>>,
}

impl<K> Queue for Events<K> {
    type Item = Delta<K>;

    fn take_front(&mut self) -> Option<Delta<K>> {
        let (key, delta) = self.queue.pop_front()?;
        if let Some(pending) = self.pending.get_mut(&key) {
            pending.count -= 1;
            if pending.count == 0 {
                self.pending.remove(&key);
            }
        }
        Some(delta)
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// A FIFO of single deltas, handed out in exactly the order they were queued
/// (client-go's `RealFIFO`).
///
/// # Guarantees
///
/// 1. Every queued delta is handed out once, in queue order; nothing is merged.
/// 2. [`replace`](Self::replace) queues a
///    [`DeletedFinalStateUnknown`](crate::delta_fifo::DeletedFinalStateUnknown) deletion for
///    every key that exists — in the known-objects store or by the queue's own pending events —
///    and is missing from the list, then every listed object as [`DeltaType::Replaced`] (or
///    `Sync`). The deletions come first, as in client-go's RealFIFO (DeltaFIFO, which keeps no
///    order between keys, queues them after the list).
/// 3. [`resync`](Self::resync) queues [`DeltaType::Sync`] for every known object without
///    pending deltas.
/// 4. [`has_synced`](Self::has_synced) is true once a change was queued before the first
///    `replace`, or once every delta that replace queued has been popped.
#[doc(alias = "RealFIFO")]
pub struct RealFifo<K> {
    core: Core<Events<K>>,
    config: Config<K>,
}

impl<K: Resource + Send + Sync + 'static> Default for RealFifo<K> {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl<K> fmt::Debug for RealFifo<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.core.lock();
        f.debug_struct("RealFifo")
            .field("queued", &state.queue.queued())
            .field("closed", &state.closed)
            .field("config", &self.config)
            .finish()
    }
}

impl<K: Resource + Send + Sync + 'static> RealFifo<K> {
    /// An empty FIFO.
    pub fn new(config: Config<K>) -> Self {
        Self {
            core: Core::new(Events {
                queue: VecDeque::new(),
                pending: Map::default(),
            }),
            config,
        }
    }

    /// Queues a [`DeltaType::Added`] delta.
    pub fn add(&self, obj: impl Into<Arc<K>>) {
        self.queue_object(DeltaType::Added, obj.into());
    }

    /// Queues a [`DeltaType::Updated`] delta.
    pub fn update(&self, obj: impl Into<Arc<K>>) {
        self.queue_object(DeltaType::Updated, obj.into());
    }

    /// Queues a [`DeltaType::Deleted`] delta.
    pub fn delete(&self, obj: impl Into<Arc<K>>) {
        self.queue_object(DeltaType::Deleted, obj.into());
    }

    /// Queues the result of a full list (guarantee 2).
    pub fn replace(&self, list: impl IntoIterator<Item = impl Into<Arc<K>>>) {
        let kind = self.config.list_kind();
        let mut locked = self.core.lock();
        let state = &mut locked.queue;
        // What exists before this list: known objects, corrected by pending events.
        let mut existing: Map<Arc<str>, Option<Arc<K>>> = Map::default();
        if let Some(known) = self.config.known() {
            for key in known.list_keys() {
                let obj = known.get_by_key(&key);
                existing.insert(key, obj);
            }
        }
        for (key, pending) in &state.pending {
            if pending.last.kind == DeltaType::Deleted {
                existing.remove(key);
            } else {
                existing.insert(Arc::clone(key), pending.last.object.get().cloned());
            }
        }

        // The deletions go first, then the list, as client-go's `reconcileReplacement` queues
        // them: a handler never sees a listed object next to one the list no longer has (a
        // new holder of a role, say, while the old one still seems to hold it).
        let listed: Vec<(Arc<str>, Arc<K>)> = list
            .into_iter()
            .map(|obj| {
                let obj = obj.into();
                (key_of(&*obj).into(), obj)
            })
            .collect();
        let keys: HashSet<&Arc<str>, foldhash::fast::RandomState> = listed.iter().map(|(key, _)| key).collect();
        let mut gone: Vec<_> = existing.into_iter().filter(|(key, _)| !keys.contains(key)).collect();
        drop(keys);
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        let queued = gone.len() + listed.len();
        for (key, last) in gone {
            self.push(state, Arc::clone(&key), Delta::tombstone(key, last));
        }
        for (key, obj) in listed {
            self.push(state, key, Delta::object(kind, obj));
        }
        locked.first_population(queued);
    }

    /// The newest state known for `key`: its last queued delta's object, else the
    /// known-objects store's; `None` when its last delta is a deletion or nothing is known.
    pub(crate) fn latest(&self, key: &str) -> Option<Arc<K>> {
        if let Some(pending) = self.core.lock().queue.pending.get(key) {
            return Some(&pending.last)
                .filter(|d| d.kind != DeltaType::Deleted)
                .and_then(|d| d.object.get().cloned());
        }
        self.config.known().and_then(|known| known.get_by_key(key))
    }

    /// Queues a [`DeltaType::Sync`] for every known object without pending deltas
    /// (guarantee 3). Does nothing without a known-objects store.
    pub fn resync(&self) {
        let Some(known) = self.config.known() else { return };
        let mut keys = known.list_keys();
        keys.sort_unstable();
        let mut state = self.core.lock();
        for key in keys {
            if state.queue.pending.contains_key(&key) {
                continue;
            }
            if let Some(obj) = known.get_by_key(&key) {
                self.push(&mut state.queue, key, Delta::object(DeltaType::Sync, obj));
            }
        }
    }

    /// Waits for a delta, removes it and runs `process(delta, in_initial_list)` on it.
    ///
    /// `process` runs while the FIFO is locked; it must not call back into this FIFO.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the FIFO is closed and empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is removed unless it is also processed.
    pub async fn pop<R>(&self, process: impl FnOnce(Delta<K>, bool) -> R) -> Result<R, Closed> {
        self.core.pop(process).await
    }

    /// Like [`pop`](Self::pop) but never waits: `None` when the FIFO is empty.
    pub fn try_pop<R>(&self, process: impl FnOnce(Delta<K>, bool) -> R) -> Option<R> {
        self.core.try_pop(process)
    }

    /// Whether the first list has been fully popped (guarantee 4).
    pub fn has_synced(&self) -> bool {
        self.core.has_synced()
    }

    /// Closes the FIFO; pops return [`Closed`] once it is empty.
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The number of queued deltas.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn queue_object(&self, kind: DeltaType, obj: Arc<K>) {
        let key: Arc<str> = key_of(&*obj).into();
        let mut state = self.core.lock();
        state.populated = true;
        self.push(&mut state.queue, key, Delta::object(kind, obj));
    }

    fn push(&self, state: &mut Events<K>, key: Arc<str>, delta: Delta<K>) {
        match state.pending.get_mut(&key) {
            Some(pending) => {
                pending.count += 1;
                pending.last = delta.clone();
            }
            None => {
                let pending = Pending {
                    count: 1,
                    last: delta.clone(),
                };
                state.pending.insert(Arc::clone(&key), pending);
            }
        }
        state.queue.push_back((key, delta));
        self.core.wake_one();
    }
}
