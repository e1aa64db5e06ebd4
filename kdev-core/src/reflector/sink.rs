//! Where a reflector puts what it sees: a FIFO, or straight into a store.

use std::sync::Arc;

use kube_core::Resource;

use crate::delta_fifo::DeltaFifo;
use crate::real_fifo::RealFifo;
use crate::store::Writer;

/// The receiving end of a [`Reflector`](super::Reflector): client-go's `Store` interface as the
/// reflector uses it (`Add`, `Update`, `Delete`, `Replace`).
///
/// Implemented for the two FIFOs (shared through an `Arc`, as the informer pops them) and for
/// a store [`Writer`] (a reflector filling a cache directly, without handlers).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot receive a reflector's events",
    note = "implement `kdev_core::reflector::Sink<K>`, or pass an `Arc<DeltaFifo<K>>`, `Arc<RealFifo<K>>` or a store `Writer<K>`"
)]
pub trait Sink<K>: Send {
    /// Turns a decoded object into what the sink receives, as soon as it is decoded — before
    /// the rest of its list has arrived. The default wraps it in an `Arc`; an informer runs its
    /// transform here, so a list in flight never holds untransformed objects.
    fn accept(&self, obj: K) -> Arc<K> {
        Arc::new(obj)
    }
    /// An object appeared (a watch ADDED event).
    fn add(&mut self, obj: Arc<K>);
    /// An object changed (a watch MODIFIED event).
    fn update(&mut self, obj: Arc<K>);
    /// An object was deleted (a watch DELETED event, with its last state).
    fn delete(&mut self, obj: Arc<K>);
    /// A full list replaces everything known (after a list or a streaming list's initial events).
    fn replace(&mut self, list: Vec<Arc<K>>);
    /// What the sink holds for `key` (`namespace/name`, or `name`), if anything. When an object
    /// of a list does not decode, the reflector puts this state of it into the list it hands to
    /// [`replace`](Self::replace), so that an object the server still has is not taken for
    /// deleted; when a DELETED event's object does not decode, it hands this state to
    /// [`delete`](Self::delete). The default holds nothing: such a listed object then leaves
    /// the sink, as if deleted, and such a deletion is not seen.
    fn current(&self, key: &str) -> Option<Arc<K>> {
        let _ = key;
        None
    }
}

impl<K: Resource + Send + Sync + 'static> Sink<K> for Arc<DeltaFifo<K>> {
    fn add(&mut self, obj: Arc<K>) {
        DeltaFifo::add(self, obj);
    }
    fn update(&mut self, obj: Arc<K>) {
        DeltaFifo::update(self, obj);
    }
    fn delete(&mut self, obj: Arc<K>) {
        DeltaFifo::delete(self, obj);
    }
    fn replace(&mut self, list: Vec<Arc<K>>) {
        DeltaFifo::replace(self, list);
    }
    fn current(&self, key: &str) -> Option<Arc<K>> {
        self.latest(key)
    }
}

impl<K: Resource + Send + Sync + 'static> Sink<K> for Arc<RealFifo<K>> {
    fn add(&mut self, obj: Arc<K>) {
        RealFifo::add(self, obj);
    }
    fn update(&mut self, obj: Arc<K>) {
        RealFifo::update(self, obj);
    }
    fn delete(&mut self, obj: Arc<K>) {
        RealFifo::delete(self, obj);
    }
    fn replace(&mut self, list: Vec<Arc<K>>) {
        RealFifo::replace(self, list);
    }
    fn current(&self, key: &str) -> Option<Arc<K>> {
        self.latest(key)
    }
}

impl<K: Resource + Send + Sync + 'static> Sink<K> for Writer<K> {
    fn add(&mut self, obj: Arc<K>) {
        self.apply(obj);
    }
    fn update(&mut self, obj: Arc<K>) {
        self.apply(obj);
    }
    fn delete(&mut self, obj: Arc<K>) {
        Writer::delete(self, &obj);
    }
    fn replace(&mut self, list: Vec<Arc<K>>) {
        Writer::replace(self, list);
    }
    fn current(&self, key: &str) -> Option<Arc<K>> {
        self.reader().get_by_key(key)
    }
}
