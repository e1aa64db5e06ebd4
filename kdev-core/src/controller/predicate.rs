//! Predicates: which watch events reach the work queue (controller-runtime's
//! `pkg/predicate`).
//!
//! A [`Predicate`] decides separately for creates, updates and deletes; the built-in ones
//! filter updates only, as controller-runtime's do, so a create or delete always passes.
//! Predicates compose with `&` (and), `|` (or) and `!` (not).
//!
//! ```
//! use k8s_openapi::api::apps::v1::Deployment;
//! use kdev_core::controller::predicate::{self, Predicate};
//!
//! // Spec changes, or a label change.
//! let p: Predicate<Deployment> = predicate::generation_changed() | predicate::labels_changed();
//! let mut old = Deployment::default();
//! old.metadata.generation = Some(1);
//! let mut new = old.clone();
//! assert!(!p.update(&old, &new));
//! new.metadata.generation = Some(2);
//! assert!(p.update(&old, &new));
//! ```

use std::fmt;
use std::ops::{BitAnd, BitOr, Not};
use std::sync::Arc;

use kube_core::Resource;

type One<K> = Arc<dyn Fn(&K) -> bool + Send + Sync>;
type Two<K> = Arc<dyn Fn(&K, &K) -> bool + Send + Sync>;

/// A filter over watch events: one function for creates, one for updates, one for deletes.
pub struct Predicate<K> {
    create: One<K>,
    update: Two<K>,
    delete: One<K>,
}

impl<K> Clone for Predicate<K> {
    fn clone(&self) -> Self {
        Predicate {
            create: self.create.clone(),
            update: self.update.clone(),
            delete: self.delete.clone(),
        }
    }
}

impl<K> fmt::Debug for Predicate<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Predicate").finish_non_exhaustive()
    }
}

impl<K: 'static> Default for Predicate<K> {
    /// Lets every event through.
    fn default() -> Self {
        Predicate {
            create: Arc::new(|_| true),
            update: Arc::new(|_, _| true),
            delete: Arc::new(|_| true),
        }
    }
}

impl<K: 'static> Predicate<K> {
    /// A predicate that lets every event through (controller-runtime's `predicate.Funcs{}`).
    pub fn all() -> Self {
        Self::default()
    }

    /// Replaces the create filter.
    #[must_use]
    pub fn on_create(mut self, f: impl Fn(&K) -> bool + Send + Sync + 'static) -> Self {
        self.create = Arc::new(f);
        self
    }

    /// Replaces the update filter (`old`, `new`).
    #[must_use]
    pub fn on_update(mut self, f: impl Fn(&K, &K) -> bool + Send + Sync + 'static) -> Self {
        self.update = Arc::new(f);
        self
    }

    /// Replaces the delete filter.
    #[must_use]
    pub fn on_delete(mut self, f: impl Fn(&K) -> bool + Send + Sync + 'static) -> Self {
        self.delete = Arc::new(f);
        self
    }

    /// Whether a create (or an object of the initial list) passes.
    pub fn create(&self, obj: &K) -> bool {
        (self.create)(obj)
    }

    /// Whether an update passes.
    pub fn update(&self, old: &K, new: &K) -> bool {
        (self.update)(old, new)
    }

    /// Whether a delete passes.
    pub fn delete(&self, obj: &K) -> bool {
        (self.delete)(obj)
    }
}

impl<K: 'static> BitAnd for Predicate<K> {
    type Output = Predicate<K>;
    /// Both predicates must pass (controller-runtime's `predicate.And`).
    fn bitand(self, rhs: Self) -> Self {
        let (a, b) = (self, rhs);
        let (ac, bc, au, bu, ad, bd) = (a.create, b.create, a.update, b.update, a.delete, b.delete);
        Predicate {
            create: Arc::new(move |o| ac(o) && bc(o)),
            update: Arc::new(move |o, n| au(o, n) && bu(o, n)),
            delete: Arc::new(move |o| ad(o) && bd(o)),
        }
    }
}

impl<K: 'static> BitOr for Predicate<K> {
    type Output = Predicate<K>;
    /// Either predicate may pass (controller-runtime's `predicate.Or`).
    fn bitor(self, rhs: Self) -> Self {
        let (a, b) = (self, rhs);
        let (ac, bc, au, bu, ad, bd) = (a.create, b.create, a.update, b.update, a.delete, b.delete);
        Predicate {
            create: Arc::new(move |o| ac(o) || bc(o)),
            update: Arc::new(move |o, n| au(o, n) || bu(o, n)),
            delete: Arc::new(move |o| ad(o) || bd(o)),
        }
    }
}

impl<K: 'static> Not for Predicate<K> {
    type Output = Predicate<K>;
    /// The opposite decision for every event (controller-runtime's `predicate.Not`).
    fn not(self) -> Self {
        let (c, u, d) = (self.create, self.update, self.delete);
        Predicate {
            create: Arc::new(move |o| !c(o)),
            update: Arc::new(move |o, n| !u(o, n)),
            delete: Arc::new(move |o| !d(o)),
        }
    }
}

/// The same filter for every event, applied to the new object on updates
/// (controller-runtime's `NewPredicateFuncs`).
pub fn filter<K: 'static>(f: impl Fn(&K) -> bool + Send + Sync + 'static) -> Predicate<K> {
    let f = Arc::new(f);
    let (c, u, d) = (f.clone(), f.clone(), f);
    Predicate {
        create: Arc::new(move |o| c(o)),
        update: Arc::new(move |_, n| u(n)),
        delete: Arc::new(move |o| d(o)),
    }
}

/// Updates pass when `metadata.generation` changed: spec changes, not status writes
/// (`GenerationChangedPredicate`). For custom resources without a status subresource every
/// change bumps the generation.
pub fn generation_changed<K: Resource + 'static>() -> Predicate<K> {
    Predicate::all().on_update(|o: &K, n: &K| o.meta().generation != n.meta().generation)
}

/// Updates pass when the labels changed (`LabelChangedPredicate`).
pub fn labels_changed<K: Resource + 'static>() -> Predicate<K> {
    Predicate::all().on_update(|o: &K, n: &K| o.meta().labels != n.meta().labels)
}

/// Updates pass when the annotations changed (`AnnotationChangedPredicate`).
pub fn annotations_changed<K: Resource + 'static>() -> Predicate<K> {
    Predicate::all().on_update(|o: &K, n: &K| o.meta().annotations != n.meta().annotations)
}

/// Updates pass when the resourceVersion changed, so resyncs (which replay the same object)
/// are filtered out (`ResourceVersionChangedPredicate`).
pub fn resource_version_changed<K: Resource + 'static>() -> Predicate<K> {
    Predicate::all().on_update(|o: &K, n: &K| o.meta().resource_version != n.meta().resource_version)
}

/// Updates pass when the finalizers changed.
pub fn finalizers_changed<K: Resource + 'static>() -> Predicate<K> {
    Predicate::all().on_update(|o: &K, n: &K| o.meta().finalizers != n.meta().finalizers)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn cm(generation: i64, label: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.generation = Some(generation);
        c.metadata.labels = Some([("l".to_string(), label.to_string())].into());
        c
    }

    #[test]
    fn built_ins_filter_updates_only() {
        let p = generation_changed::<ConfigMap>();
        assert!(p.create(&cm(1, "a")) && p.delete(&cm(1, "a")));
        assert!(!p.update(&cm(1, "a"), &cm(1, "b")));
        assert!(p.update(&cm(1, "a"), &cm(2, "a")));
        assert!(labels_changed::<ConfigMap>().update(&cm(1, "a"), &cm(1, "b")));
    }

    #[test]
    fn predicates_compose() {
        let and = generation_changed::<ConfigMap>() & labels_changed();
        assert!(!and.update(&cm(1, "a"), &cm(2, "a")));
        assert!(and.update(&cm(1, "a"), &cm(2, "b")));
        let or = generation_changed::<ConfigMap>() | labels_changed();
        assert!(or.update(&cm(1, "a"), &cm(1, "b")));
        assert!(!or.update(&cm(1, "a"), &cm(1, "a")));
        let not = !generation_changed::<ConfigMap>();
        assert!(not.update(&cm(1, "a"), &cm(1, "b")));
        assert!(!not.create(&cm(1, "a")));
        let named = filter(|c: &ConfigMap| c.metadata.generation == Some(2));
        assert!(named.update(&cm(1, "a"), &cm(2, "a")) && !named.create(&cm(1, "a")));
    }
}
