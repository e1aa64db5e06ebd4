//! Deltas: what happened to one object, as the FIFOs hand it out.

use std::fmt;
use std::sync::Arc;

/// What kind of change a [`Delta`] records (client-go's `DeltaType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeltaType {
    /// The object was created (a watch `ADDED` event).
    Added,
    /// The object changed (a watch `MODIFIED` event).
    Updated,
    /// The object was deleted: a watch `DELETED` event, or a deletion found by a relist, in
    /// which case the object is a [`DeletedFinalStateUnknown`] tombstone.
    Deleted,
    /// The object was part of a full list (the initial list or a relist). Whether it changed
    /// is unknown.
    Replaced,
    /// A periodic resync replayed the cached object; nothing changed on the server.
    Sync,
}

impl fmt::Display for DeltaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Added => "Added",
            Self::Updated => "Updated",
            Self::Deleted => "Deleted",
            Self::Replaced => "Replaced",
            Self::Sync => "Sync",
        })
    }
}

/// The last known state of an object whose deletion was not seen, only inferred: a relist
/// no longer contained it (client-go's `cache.DeletedFinalStateUnknown`).
///
/// `object` is the newest state the FIFO or the known-objects store had, and may be stale.
/// It is `None` when no state was known at all.
#[doc(alias = "tombstone")]
pub struct DeletedFinalStateUnknown<K> {
    /// The cache key of the deleted object.
    pub key: Arc<str>,
    /// The last state known for the object, if any.
    pub object: Option<Arc<K>>,
}

impl<K> Clone for DeletedFinalStateUnknown<K> {
    fn clone(&self) -> Self {
        Self {
            key: Arc::clone(&self.key),
            object: self.object.clone(),
        }
    }
}

impl<K> fmt::Debug for DeletedFinalStateUnknown<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeletedFinalStateUnknown")
            .field("key", &self.key)
            .field("has_object", &self.object.is_some())
            .finish()
    }
}

/// The object a [`Delta`] carries: the object itself, or a tombstone.
pub enum DeltaObject<K> {
    /// The object as the server sent it.
    Object(Arc<K>),
    /// An inferred deletion; see [`DeletedFinalStateUnknown`].
    Tombstone(DeletedFinalStateUnknown<K>),
}

impl<K> Clone for DeltaObject<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Object(obj) => Self::Object(Arc::clone(obj)),
            Self::Tombstone(t) => Self::Tombstone(t.clone()),
        }
    }
}

impl<K> fmt::Debug for DeltaObject<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object(_) => f.write_str("Object(..)"),
            Self::Tombstone(t) => t.fmt(f),
        }
    }
}

impl<K> DeltaObject<K> {
    /// The object, unwrapping a tombstone; `None` for a tombstone without a known state.
    pub fn get(&self) -> Option<&Arc<K>> {
        match self {
            Self::Object(obj) => Some(obj),
            Self::Tombstone(t) => t.object.as_ref(),
        }
    }

    /// Whether this is a [`DeletedFinalStateUnknown`] tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Tombstone(_))
    }
}

/// One change to one object (client-go's `Delta`).
pub struct Delta<K> {
    /// What happened.
    pub kind: DeltaType,
    /// The object after the change (or its last known state, for deletions).
    pub object: DeltaObject<K>,
}

impl<K> Clone for Delta<K> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            object: self.object.clone(),
        }
    }
}

impl<K> fmt::Debug for Delta<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delta")
            .field("kind", &self.kind)
            .field("object", &self.object)
            .finish()
    }
}

impl<K: kube_core::Resource> Delta<K> {
    /// The cache key of the object (see [`key_of`](crate::store::key_of)); a tombstone's own key.
    pub fn key(&self) -> String {
        match &self.object {
            DeltaObject::Object(obj) => crate::store::key_of(&**obj),
            DeltaObject::Tombstone(t) => t.key.to_string(),
        }
    }
}

impl<K> Delta<K> {
    pub(crate) fn object(kind: DeltaType, obj: Arc<K>) -> Self {
        Self {
            kind,
            object: DeltaObject::Object(obj),
        }
    }

    pub(crate) fn tombstone(key: Arc<str>, object: Option<Arc<K>>) -> Self {
        Self {
            kind: DeltaType::Deleted,
            object: DeltaObject::Tombstone(DeletedFinalStateUnknown { key, object }),
        }
    }
}
