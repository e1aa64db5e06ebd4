//! Listers: typed reads from an informer's cache (client-go's generated `listers`).

use std::sync::Arc;

use kube_core::{Resource, Selector, SelectorExt};

use crate::store::{self, Store};

/// Typed reads from the cache: `get`, `list` with a label selector, `by_index`, and
/// namespaced views. Every read hands out `Arc<K>` clones of the cached objects, never copies.
#[derive(Debug)]
pub struct Lister<K> {
    store: Store<K>,
    namespace: Option<String>,
}

impl<K> Clone for Lister<K> {
    fn clone(&self) -> Self {
        Lister {
            store: self.store.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

impl<K: Resource> Lister<K> {
    /// A lister over `store`, across namespaces.
    pub fn new(store: Store<K>) -> Self {
        Lister { store, namespace: None }
    }

    /// The same cache seen through one namespace (client-go's `Lister.Namespace(ns)`). The
    /// empty namespace means every namespace, as client-go's `metav1.NamespaceAll` does.
    #[must_use]
    pub fn namespaced(&self, namespace: &str) -> Self {
        Lister {
            store: self.store.clone(),
            namespace: Some(namespace.to_string()).filter(|ns| !ns.is_empty()),
        }
    }

    /// One object by name (in this lister's namespace; `name` alone for cluster-scoped kinds).
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.store.get(self.namespace.as_deref(), name)
    }

    /// Every object matching `selector` (use `Selector::default()` for all).
    pub fn list(&self, selector: &Selector) -> Vec<Arc<K>> {
        let candidates = match &self.namespace {
            Some(ns) => self.store.by_index(store::NAMESPACE_INDEX, ns).unwrap_or_default(),
            None => self.store.list(),
        };
        candidates
            .into_iter()
            .filter(|o| selector.matches(o.meta().labels.as_ref().unwrap_or(&Default::default())))
            .collect()
    }

    /// Objects whose index `index` has `value` (restricted to this lister's namespace).
    ///
    /// # Errors
    /// [`store::Error`] when no such index exists.
    pub fn by_index(&self, index: &str, value: &str) -> store::Result<Vec<Arc<K>>> {
        let all = self.store.by_index(index, value)?;
        Ok(match &self.namespace {
            Some(ns) => all
                .into_iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(ns))
                .collect(),
            None => all,
        })
    }
}
