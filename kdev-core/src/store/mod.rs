//! A thread-safe, indexed cache of Kubernetes objects: client-go's `ThreadSafeStore` and
//! `Indexer` ([`tools/cache/thread_safe_store.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/thread_safe_store.go)).
//!
//! The store holds objects as [`Arc<K>`] keyed by `namespace/name` (just `name` for
//! cluster-scoped objects, see [`key_of`]). It comes as split handles: one [`Writer`], which
//! the producer (an informer, a test) owns, and any number of cheap [`Store`] readers.
//! Reads hand out `Arc` clones and never deep-copy an object.
//!
//! # Indexes
//!
//! An *indexer* is a named function from an object to a set of *index values*; the store
//! keeps, for every index and value, the set of keys whose object produced that value. The
//! built-in [`NAMESPACE_INDEX`] maps each object to its namespace. Custom indexes are added
//! with [`Writer::add_indexer`], before or after objects arrive (existing objects are
//! back-filled), and queried with [`Store::by_index`] and [`Store::index_keys`].
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::Pod;
//! use kdev_core::store::{self, NAMESPACE_INDEX};
//!
//! let (reader, mut writer) = store::store::<Pod>();
//! // An index of pods by the node they run on.
//! writer.add_indexer("node", |pod: &Pod| {
//!     pod.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
//! })?;
//!
//! let mut pod = Pod::default();
//! pod.metadata.namespace = Some("default".into());
//! pod.metadata.name = Some("web-0".into());
//! pod.spec = Some(Default::default());
//! pod.spec.as_mut().unwrap().node_name = Some("node-a".into());
//! writer.apply(Arc::new(pod));
//!
//! assert!(reader.get_by_key("default/web-0").is_some());
//! assert_eq!(reader.by_index("node", "node-a")?.len(), 1);
//! assert_eq!(reader.index_keys(NAMESPACE_INDEX, "default")?, vec![Arc::<str>::from("default/web-0")]);
//! # Ok::<(), kdev_core::store::Error>(())
//! ```

mod index;

use std::fmt;
use std::sync::Arc;

use kube_core::Resource;
use parking_lot::RwLock;

use self::index::{Indices, KeySet, Map};

/// The name of the built-in index that maps every object to its namespace
/// (client-go's `cache.NamespaceIndex`). Cluster-scoped objects map to no value.
pub const NAMESPACE_INDEX: &str = "namespace";

/// An index function: the index values of one object (client-go's `IndexFunc`).
///
/// One object may produce any number of values; an object producing none is not in the index.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// Errors of the store.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A query named an index that was never added.
    #[error("index {0:?} does not exist")]
    UnknownIndex(String),
    /// [`Writer::add_indexer`] was given a name that is already taken.
    #[error("indexer conflict: an index named {0:?} already exists")]
    IndexerConflict(String),
}

/// The `Result` of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cache key of an object: `namespace/name`, or `name` when it has no namespace.
///
/// This is client-go's `MetaNamespaceKeyFunc`. An object without a name gets the key of an
/// empty name; it never panics.
#[doc(alias = "MetaNamespaceKeyFunc")]
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    key_from(meta.namespace.as_deref(), meta.name.as_deref().unwrap_or_default())
}

/// The cache key of `namespace` and `name` ([`key_of`]'s rule: an empty namespace is none).
pub(crate) fn key_from(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => {
            let mut key = String::with_capacity(ns.len() + 1 + name.len());
            key.push_str(ns);
            key.push('/');
            key.push_str(name);
            key
        }
        _ => name.to_owned(),
    }
}

/// Splits a cache key into `(namespace, name)`, the inverse of [`key_of`]
/// (client-go's `SplitMetaNamespaceKey`). Returns `None` for a key with more than one `/`.
pub fn split_key(key: &str) -> Option<(Option<&str>, &str)> {
    match key.split_once('/') {
        None => Some((None, key)),
        Some((_, name)) if name.contains('/') => None,
        Some((ns, name)) => Some((Some(ns), name)),
    }
}

/// Anything that can tell which keys it holds and hand out the object of a key.
///
/// This is client-go's `KeyListerGetter`; the [`DeltaFifo`](crate::delta_fifo::DeltaFifo)
/// uses it to find deletions that a watch missed. [`Store`] implements it.
pub trait KnownObjects<K>: Send + Sync {
    /// Every key currently held.
    fn list_keys(&self) -> Vec<Arc<str>>;
    /// The object stored under `key`, if any.
    fn get_by_key(&self, key: &str) -> Option<Arc<K>>;
}

struct Inner<K> {
    items: Map<Arc<str>, Arc<K>>,
    indices: Indices<K>,
}

/// Creates an empty store with the built-in [`NAMESPACE_INDEX`]: the unique [`Writer`] and a
/// [`Store`] reader, which can be cloned freely.
///
/// `K` is any [`kube_core::Resource`]: a k8s-openapi type, `DynamicObject` or
/// `PartialObjectMeta<K>`.
pub fn store<K: Resource + Send + Sync + 'static>() -> (Store<K>, Writer<K>) {
    let writer = Writer::new();
    (writer.reader(), writer)
}

/// A cheap, cloneable read handle on the store.
///
/// Every read takes a shared lock for the duration of the call and returns `Arc` clones of
/// the stored objects; the objects must be treated as read-only, as with client-go's
/// cache. There is no way to mutate the store through a `Store`.
#[doc(alias = "Indexer")]
#[doc(alias = "ThreadSafeStore")]
pub struct Store<K> {
    inner: Arc<RwLock<Inner<K>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("Store")
            .field("len", &inner.items.len())
            .field("indexes", &inner.indices.names())
            .finish()
    }
}

impl<K: Resource> Store<K> {
    /// The object stored under `key` (`namespace/name` or `name`).
    pub fn get_by_key(&self, key: &str) -> Option<Arc<K>> {
        self.inner.read().items.get(key).cloned()
    }

    /// The object named `name` in `namespace` (`None` for cluster-scoped objects).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        match namespace {
            Some(ns) if !ns.is_empty() => self.get_by_key(&format!("{ns}/{name}")),
            _ => self.get_by_key(name),
        }
    }

    /// Every stored object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.inner.read().items.values().cloned().collect()
    }

    /// Every stored key, in no particular order.
    pub fn list_keys(&self) -> Vec<Arc<str>> {
        self.inner.read().items.keys().cloned().collect()
    }

    /// The number of stored objects.
    pub fn len(&self) -> usize {
        self.inner.read().items.len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects whose index `index` contains `value` (client-go's `ByIndex`).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownIndex`] if no index of that name exists.
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Arc<K>>> {
        let inner = self.inner.read();
        let keys = inner.indices.keys(index, value)?;
        Ok(keys
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|key| inner.items.get(key).cloned())
            .collect())
    }

    /// The keys whose index `index` contains `value` (client-go's `IndexKeys`).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownIndex`] if no index of that name exists.
    pub fn index_keys(&self, index: &str, value: &str) -> Result<Vec<Arc<str>>> {
        let inner = self.inner.read();
        let keys = inner.indices.keys(index, value)?;
        Ok(keys.into_iter().flat_map(KeySet::iter).cloned().collect())
    }

    /// Every value that index `index` currently holds (client-go's `ListIndexFuncValues`).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownIndex`] if no index of that name exists.
    pub fn index_values(&self, index: &str) -> Result<Vec<String>> {
        self.inner.read().indices.values(index)
    }

    /// The objects that share at least one value of index `index` with `obj`
    /// (client-go's `Index`). `obj` itself need not be stored.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownIndex`] if no index of that name exists.
    pub fn index(&self, index: &str, obj: &K) -> Result<Vec<Arc<K>>> {
        let inner = self.inner.read();
        let keys = inner.indices.matching(index, obj)?;
        Ok(keys
            .into_iter()
            .filter_map(|key| inner.items.get(&*key).cloned())
            .collect())
    }

    /// The names of the indexes, the built-in [`NAMESPACE_INDEX`] included.
    pub fn index_names(&self) -> Vec<String> {
        self.inner.read().indices.names()
    }
}

impl<K: Resource + Send + Sync> KnownObjects<K> for Store<K> {
    fn list_keys(&self) -> Vec<Arc<str>> {
        Store::list_keys(self)
    }
    fn get_by_key(&self, key: &str) -> Option<Arc<K>> {
        Store::get_by_key(self, key)
    }
}

/// The unique write handle of a store. Not `Clone`: one producer owns it.
pub struct Writer<K> {
    store: Store<K>,
}

impl<K> fmt::Debug for Writer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("store", &self.store).finish()
    }
}

impl<K: Resource + Send + Sync + 'static> Default for Writer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Resource + Send + Sync + 'static> Writer<K> {
    /// An empty store with the built-in [`NAMESPACE_INDEX`]. See also [`store`].
    pub fn new() -> Self {
        let mut indices = Indices::default();
        // An empty namespace is no namespace, as in `key_of`.
        let by_namespace: IndexFn<K> = Arc::new(|obj: &K| {
            obj.meta()
                .namespace
                .iter()
                .filter(|ns| !ns.is_empty())
                .cloned()
                .collect()
        });
        // A fresh index set cannot conflict.
        let _ = indices.add(NAMESPACE_INDEX, by_namespace, std::iter::empty());
        Self {
            store: Store {
                inner: Arc::new(RwLock::new(Inner {
                    items: Map::default(),
                    indices,
                })),
            },
        }
    }

    /// A new reader on this store.
    pub fn reader(&self) -> Store<K> {
        self.store.clone()
    }

    /// Adds a named index. Objects already stored are indexed at once (client-go's
    /// `AddIndexers`, which allows this since 1.27).
    ///
    /// # Errors
    ///
    /// [`Error::IndexerConflict`] if an index of that name exists.
    pub fn add_indexer<F>(&mut self, name: impl Into<String>, index_fn: F) -> Result<()>
    where
        F: Fn(&K) -> Vec<String> + Send + Sync + 'static,
    {
        let mut inner = self.store.inner.write();
        let Inner { items, indices } = &mut *inner;
        indices.add(&name.into(), Arc::new(index_fn), items.iter())
    }

    /// Inserts or replaces the object under its key and updates every index; returns the
    /// object it replaced. (client-go's `Add` and `Update`, which are the same operation.)
    pub fn apply(&mut self, obj: Arc<K>) -> Option<Arc<K>> {
        let key: Arc<str> = key_of(&*obj).into();
        let mut inner = self.store.inner.write();
        let Inner { items, indices } = &mut *inner;
        let old = items.insert(Arc::clone(&key), Arc::clone(&obj));
        indices.update(&key, old.as_deref(), Some(&*obj));
        old
    }

    /// Removes the object stored under `key`, returning it.
    pub fn delete_key(&mut self, key: &str) -> Option<Arc<K>> {
        let mut inner = self.store.inner.write();
        let Inner { items, indices } = &mut *inner;
        let (key, old) = items.remove_entry(key)?;
        indices.update(&key, Some(&*old), None);
        Some(old)
    }

    /// Removes the object stored under the key of `obj`, returning the stored one.
    pub fn delete(&mut self, obj: &K) -> Option<Arc<K>> {
        self.delete_key(&key_of(obj))
    }

    /// Replaces the whole content with `objects` and rebuilds every index.
    ///
    /// The new content and indexes are built before the write lock is taken, so readers
    /// see either the old content or the new one, never a mix, and are blocked only for
    /// the swap. When two objects share a key, the later one wins.
    pub fn replace(&mut self, objects: impl IntoIterator<Item = Arc<K>>) {
        let objects = objects.into_iter();
        let mut items = Map::with_capacity_and_hasher(objects.size_hint().0, Default::default());
        for obj in objects {
            items.insert(Arc::from(key_of(&*obj)), obj);
        }
        let indices = self.store.inner.read().indices.rebuilt(items.iter());
        let old = {
            let mut inner = self.store.inner.write();
            std::mem::replace(&mut *inner, Inner { items, indices })
        };
        // The old content is freed here, after the lock is released.
        drop(old);
    }

    /// Checks that every index matches what its function gives for the stored objects.
    /// For tests: returns a description of the first mismatch.
    #[doc(hidden)]
    pub fn check_consistency(&self) -> std::result::Result<(), String> {
        let inner = self.store.inner.read();
        let rebuilt = inner.indices.rebuilt(inner.items.iter());
        inner.indices.same_as(&rebuilt)
    }
}
