//! The DeltaFIFO: a queue of per-key change lists between a reflector and its consumer
//! (client-go's [`tools/cache/delta_fifo.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/delta_fifo.go)).
//!
//! # DeltaFifo or RealFifo?
//!
//! Both sit between a reflector (the producer of list and watch events) and the code that
//! applies them to a cache and calls handlers. They differ in what a consumer receives:
//!
//! | | [`DeltaFifo`] | [`RealFifo`](crate::real_fifo::RealFifo) |
//! |---|---|---|
//! | unit handed out | every pending delta of one key, together | one delta |
//! | order | keys by first arrival; a key that changes again keeps its place | every event in arrival order |
//! | coalescing | per key (a consumer sees a key once for many changes) | none |
//! | client-go | the informer FIFO up to 1.32 (later only with the `InOrderInformers` gate off) | the informer FIFO by default from 1.33 (`InOrderInformers`) |
//!
//! Use the `DeltaFifo` when a consumer wants one call per object with its whole recent
//! history, e.g. to skip intermediate states. Use the `RealFifo` when the order of events
//! across objects matters (a handler that must see *A created* before *B referring to A*),
//! which is why client-go switched its informers to it.
//!
//! # Examples
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::delta_fifo::{DeltaFifo, DeltaType};
//!
//! # fn cm(name: &str) -> ConfigMap {
//! #     let mut cm = ConfigMap::default();
//! #     cm.metadata.namespace = Some("default".into());
//! #     cm.metadata.name = Some(name.into());
//! #     cm
//! # }
//! # futures::executor::block_on(async {
//! let fifo = DeltaFifo::<ConfigMap>::default();
//! fifo.add(cm("a"));
//! fifo.add(cm("b"));
//! fifo.update(cm("a"));
//!
//! // "a" arrived first and carries both of its deltas.
//! let kinds = fifo.pop(|deltas, _| deltas.iter().map(|d| d.kind).collect::<Vec<_>>()).await?;
//! assert_eq!(kinds, [DeltaType::Added, DeltaType::Updated]);
//! # Ok::<(), kdev_core::delta_fifo::Closed>(())
//! # }).unwrap();
//! ```

mod core;
mod delta;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use kube_core::Resource;

pub(crate) use self::core::{Core, Queue};
pub use self::delta::{DeletedFinalStateUnknown, Delta, DeltaObject, DeltaType};
use crate::store::{KnownObjects, key_of};

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The FIFO was closed and has nothing left to hand out (client-go's `ErrFIFOClosed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the FIFO is closed")]
pub struct Closed;

/// Settings of a [`DeltaFifo`] and a [`RealFifo`](crate::real_fifo::RealFifo).
pub struct Config<K> {
    known_objects: Option<Arc<dyn KnownObjects<K>>>,
    emit_replaced: bool,
}

impl<K> Default for Config<K> {
    fn default() -> Self {
        Self {
            known_objects: None,
            emit_replaced: true,
        }
    }
}

impl<K> fmt::Debug for Config<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("known_objects", &self.known_objects.is_some())
            .field("emit_replaced", &self.emit_replaced)
            .finish()
    }
}

impl<K> Config<K> {
    /// The store that the consumer keeps up to date (client-go's `KnownObjects`, in an
    /// informer its indexer). With it, `replace` also finds deletions of objects that were
    /// already popped, and `resync` becomes possible. Default: none.
    #[must_use]
    pub fn known_objects(mut self, known: impl KnownObjects<K> + 'static) -> Self {
        self.known_objects = Some(Arc::new(known));
        self
    }

    /// Whether listed objects are queued as [`DeltaType::Replaced`] (`true`, the default,
    /// as every client-go informer sets `EmitDeltaTypeReplaced`) or as the legacy
    /// [`DeltaType::Sync`] (`false`, client-go's bare default).
    #[must_use]
    pub fn emit_replaced(mut self, emit: bool) -> Self {
        self.emit_replaced = emit;
        self
    }

    pub(crate) fn list_kind(&self) -> DeltaType {
        if self.emit_replaced {
            DeltaType::Replaced
        } else {
            DeltaType::Sync
        }
    }

    pub(crate) fn known(&self) -> Option<&dyn KnownObjects<K>> {
        self.known_objects.as_deref()
    }
}

struct Keys<K> {
    /// Pending deltas per key; a key is here exactly when it is in `queue`.
    items: Map<Arc<str>, Vec<Delta<K>>>,
    queue: VecDeque<Arc<str>>,
}

impl<K> Queue for Keys<K> {
    type Item = Vec<Delta<K>>;

    fn take_front(&mut self) -> Option<Vec<Delta<K>>> {
        let key = self.queue.pop_front()?;
        Some(self.items.remove(&key).unwrap_or_default())
    }

    fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// A queue of keys, each with the list of changes that happened to its object since it was
/// last popped. See the [module docs](self) for when to use it.
///
/// # Guarantees
///
/// 1. Keys are popped in the order of their first pending delta; further deltas of a
///    queued key join its list without moving it.
/// 2. A key is in the queue at most once; [`pop`](Self::pop) hands its whole delta list,
///    oldest first, to the processing closure.
/// 3. Two consecutive `Deleted` deltas collapse into one, keeping the one with more
///    information (a real object over a tombstone). No other deltas are merged.
/// 4. [`replace`](Self::replace) queues every listed object, then a
///    [`DeletedFinalStateUnknown`] deletion for every key that is queued (in queue order) or
///    known to the known-objects store (in key order) but missing from the list.
/// 5. [`resync`](Self::resync) queues a [`DeltaType::Sync`] for every known object, in key
///    order, except keys with pending deltas: a stale cached copy never overtakes a real event.
/// 6. [`has_synced`](Self::has_synced) is true once a change was queued before the first
///    `replace`, or once every item of the first `replace` has been popped.
#[doc(alias = "DeltaFIFO")]
pub struct DeltaFifo<K> {
    core: Core<Keys<K>>,
    config: Config<K>,
}

impl<K: Resource + Send + Sync + 'static> Default for DeltaFifo<K> {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl<K> fmt::Debug for DeltaFifo<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.core.lock();
        f.debug_struct("DeltaFifo")
            .field("queued_keys", &state.queue.queued())
            .field("closed", &state.closed)
            .field("config", &self.config)
            .finish()
    }
}

impl<K: Resource + Send + Sync + 'static> DeltaFifo<K> {
    /// An empty FIFO.
    pub fn new(config: Config<K>) -> Self {
        Self {
            core: Core::new(Keys {
                items: Map::default(),
                queue: VecDeque::new(),
            }),
            config,
        }
    }

    /// Queues an [`DeltaType::Added`] delta (a watch `ADDED` event).
    pub fn add(&self, obj: impl Into<Arc<K>>) {
        self.queue_object(DeltaType::Added, obj.into());
    }

    /// Queues an [`DeltaType::Updated`] delta (a watch `MODIFIED` event).
    pub fn update(&self, obj: impl Into<Arc<K>>) {
        self.queue_object(DeltaType::Updated, obj.into());
    }

    /// Queues a [`DeltaType::Deleted`] delta (a watch `DELETED` event).
    ///
    /// The delete is dropped when the key is neither queued nor in the known-objects
    /// store: nobody knows the object, so there is nothing to delete.
    pub fn delete(&self, obj: impl Into<Arc<K>>) {
        let obj = obj.into();
        let key: Arc<str> = key_of(&*obj).into();
        let mut state = self.core.lock();
        state.populated = true;
        let queued = state.queue.items.contains_key(&key);
        let known = self
            .config
            .known()
            .is_some_and(|known| known.get_by_key(&key).is_some());
        if !queued && !known {
            return;
        }
        self.push(&mut state.queue, key, Delta::object(DeltaType::Deleted, obj));
    }

    /// Queues the result of a full list: a [`DeltaType::Replaced`] (or `Sync`, see
    /// [`Config::emit_replaced`]) delta per object, then tombstone deletions (guarantee 4).
    pub fn replace(&self, list: impl IntoIterator<Item = impl Into<Arc<K>>>) {
        let kind = self.config.list_kind();
        let mut locked = self.core.lock();
        let state = &mut locked.queue;
        let mut listed: HashSet<Arc<str>, foldhash::fast::RandomState> = HashSet::default();
        for obj in list {
            let obj = obj.into();
            let key: Arc<str> = key_of(&*obj).into();
            listed.insert(Arc::clone(&key));
            self.push(state, key, Delta::object(kind, obj));
        }

        let mut deletions = 0;
        // Queued keys missing from the list: the watch missed their deletion.
        let missing: Vec<Arc<str>> = state.queue.iter().filter(|k| !listed.contains(*k)).cloned().collect();
        for key in missing {
            let last = state
                .items
                .get(&key)
                .and_then(|d| d.last())
                .and_then(|d| d.object.get().cloned());
            deletions += 1;
            self.push(state, Arc::clone(&key), Delta::tombstone(key, last));
        }
        // Known keys missing from the list and not queued.
        if let Some(known) = self.config.known() {
            let mut missing: Vec<Arc<str>> = known
                .list_keys()
                .into_iter()
                .filter(|key| !listed.contains(key) && !state.items.contains_key(key))
                .collect();
            // In key order, so that what a relist finds does not depend on hashing.
            missing.sort_unstable();
            for key in missing {
                let last = known.get_by_key(&key);
                deletions += 1;
                self.push(state, Arc::clone(&key), Delta::tombstone(key, last));
            }
        }
        locked.first_population(listed.len() + deletions);
    }

    /// Queues a [`DeltaType::Sync`] delta for every object of the known-objects store that
    /// has no pending delta (guarantee 5). Does nothing without a known-objects store.
    pub fn resync(&self) {
        let Some(known) = self.config.known() else { return };
        let mut keys = known.list_keys();
        keys.sort_unstable();
        let mut state = self.core.lock();
        for key in keys {
            if state.queue.items.contains_key(&key) {
                continue;
            }
            if let Some(obj) = known.get_by_key(&key) {
                self.push(&mut state.queue, key, Delta::object(DeltaType::Sync, obj));
            }
        }
    }

    /// Waits for a key, removes it with its deltas and runs `process(deltas, in_initial_list)`
    /// on them, returning what `process` returns. `in_initial_list` is true while the FIFO
    /// has not synced (guarantee 6).
    ///
    /// `process` runs while the FIFO is locked, as in client-go up to 1.35 (1.36 unlocks while
    /// processing, behind its `UnlockWhileProcessingFIFO` gate), so a consumer can update
    /// its store before anyone else sees the FIFO without the key. It must not call back
    /// into this FIFO (that would deadlock) and should be quick.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the FIFO is closed and empty. Keys queued before `close` are still
    /// handed out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a key is removed and processed in the same step, so dropping the future
    /// loses nothing.
    pub async fn pop<R>(&self, process: impl FnOnce(Vec<Delta<K>>, bool) -> R) -> Result<R, Closed> {
        self.core.pop(process).await
    }

    /// Like [`pop`](Self::pop) but never waits: `None` when no key is queued.
    pub fn try_pop<R>(&self, process: impl FnOnce(Vec<Delta<K>>, bool) -> R) -> Option<R> {
        self.core.try_pop(process)
    }

    /// Whether the first list has been fully popped (guarantee 6).
    pub fn has_synced(&self) -> bool {
        self.core.has_synced()
    }

    /// Closes the FIFO: waiting and future [`pop`](Self::pop)s return [`Closed`] once the
    /// queue is empty.
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The number of queued keys.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no key is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued keys, in pop order.
    pub fn list_keys(&self) -> Vec<Arc<str>> {
        self.core.lock().queue.queue.iter().cloned().collect()
    }

    /// The newest state known for `key`: its last queued delta's object, else the
    /// known-objects store's; `None` when its last delta is a deletion or nothing is known.
    pub(crate) fn latest(&self, key: &str) -> Option<Arc<K>> {
        if let Some(deltas) = self.core.lock().queue.items.get(key) {
            return deltas
                .last()
                .filter(|d| d.kind != DeltaType::Deleted)
                .and_then(|d| d.object.get().cloned());
        }
        self.config.known().and_then(|known| known.get_by_key(key))
    }

    /// The pending deltas of `key`, oldest first, without removing them.
    pub fn get_by_key(&self, key: &str) -> Option<Vec<Delta<K>>> {
        self.core.lock().queue.items.get(key).cloned()
    }

    fn queue_object(&self, kind: DeltaType, obj: Arc<K>) {
        let key: Arc<str> = key_of(&*obj).into();
        let mut state = self.core.lock();
        state.populated = true;
        self.push(&mut state.queue, key, Delta::object(kind, obj));
    }

    fn push(&self, state: &mut Keys<K>, key: Arc<str>, delta: Delta<K>) {
        match state.items.get_mut(&key) {
            Some(deltas) => {
                deltas.push(delta);
                dedup_deletes(deltas);
            }
            None => {
                state.items.insert(Arc::clone(&key), vec![delta]);
                state.queue.push_back(key);
                self.core.wake_one();
            }
        }
    }
}

/// Collapses the last two deltas when both are deletions, keeping the more informative one
/// (client-go's `dedupDeltas`).
fn dedup_deletes<K>(deltas: &mut Vec<Delta<K>>) {
    let n = deltas.len();
    if n < 2 || deltas[n - 1].kind != DeltaType::Deleted || deltas[n - 2].kind != DeltaType::Deleted {
        return;
    }
    if deltas[n - 2].object.is_tombstone() {
        deltas.swap(n - 2, n - 1);
    }
    deltas.truncate(n - 1);
}
