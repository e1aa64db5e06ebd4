//! The index bookkeeping behind [`Store`](super::Store): for every index, value → keys.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Error, IndexFn, Result};

pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type KeySet = HashSet<Arc<str>, foldhash::fast::RandomState>;

struct Index<K> {
    name: String,
    func: IndexFn<K>,
    values: Map<String, KeySet>,
}

/// Every index of a store. Few indexes exist, so they live in a small vector.
pub(crate) struct Indices<K> {
    indexes: Vec<Index<K>>,
}

impl<K> Default for Indices<K> {
    fn default() -> Self {
        Self { indexes: Vec::new() }
    }
}

impl<K> Indices<K> {
    fn get(&self, name: &str) -> Result<&Index<K>> {
        self.indexes
            .iter()
            .find(|index| index.name == name)
            .ok_or_else(|| Error::UnknownIndex(name.to_owned()))
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.indexes.iter().map(|index| index.name.clone()).collect()
    }

    /// Adds an index and fills it from `items`.
    pub(crate) fn add<'a>(
        &mut self,
        name: &str,
        func: IndexFn<K>,
        items: impl Iterator<Item = (&'a Arc<str>, &'a Arc<K>)>,
    ) -> Result<()>
    where
        K: 'a,
    {
        if self.get(name).is_ok() {
            return Err(Error::IndexerConflict(name.to_owned()));
        }
        let mut index = Index {
            name: name.to_owned(),
            func,
            values: Map::default(),
        };
        for (key, obj) in items {
            index.insert(key, (index.func)(obj));
        }
        self.indexes.push(index);
        Ok(())
    }

    /// The keys stored under `value` in index `name`; `None` when no key has that value.
    pub(crate) fn keys(&self, name: &str, value: &str) -> Result<Option<&KeySet>> {
        Ok(self.get(name)?.values.get(value))
    }

    pub(crate) fn values(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.get(name)?.values.keys().cloned().collect())
    }

    /// The keys sharing any value of index `name` with `obj`, without duplicates.
    pub(crate) fn matching(&self, name: &str, obj: &K) -> Result<Vec<Arc<str>>> {
        let index = self.get(name)?;
        let values = (index.func)(obj);
        let sets = values.iter().filter_map(|value| index.values.get(value));
        if values.len() == 1 {
            return Ok(sets.flat_map(KeySet::iter).cloned().collect());
        }
        let mut seen = KeySet::default();
        for set in sets {
            seen.extend(set.iter().cloned());
        }
        Ok(seen.into_iter().collect())
    }

    /// Moves `key` from the index values of `old` to those of `new`.
    pub(crate) fn update(&mut self, key: &Arc<str>, old: Option<&K>, new: Option<&K>) {
        for index in &mut self.indexes {
            let old_values = old.map(|o| (index.func)(o)).unwrap_or_default();
            let new_values = new.map(|n| (index.func)(n)).unwrap_or_default();
            if old_values == new_values {
                continue;
            }
            for value in &old_values {
                if new_values.contains(value) {
                    continue;
                }
                if let Some(set) = index.values.get_mut(value.as_str()) {
                    set.remove(key);
                    if set.is_empty() {
                        // Dropping empty sets keeps high-cardinality indexes from leaking
                        // (kubernetes#84959).
                        index.values.remove(value.as_str());
                    }
                }
            }
            let added = new_values.into_iter().filter(|v| !old_values.contains(v)).collect();
            index.insert(key, added);
        }
    }

    /// Indexes with the same functions, built from `items`.
    pub(crate) fn rebuilt<'a>(&self, items: impl Iterator<Item = (&'a Arc<str>, &'a Arc<K>)> + Clone) -> Self
    where
        K: 'a,
    {
        let indexes = self
            .indexes
            .iter()
            .map(|index| {
                let mut fresh = Index {
                    name: index.name.clone(),
                    func: Arc::clone(&index.func),
                    values: Map::with_capacity_and_hasher(index.values.len(), Default::default()),
                };
                for (key, obj) in items.clone() {
                    fresh.insert(key, (fresh.func)(obj));
                }
                fresh
            })
            .collect();
        Self { indexes }
    }

    /// Compares two index sets value by value.
    pub(crate) fn same_as(&self, other: &Self) -> std::result::Result<(), String> {
        for (mine, theirs) in self.indexes.iter().zip(&other.indexes) {
            if mine.values != theirs.values {
                return Err(format!(
                    "index {:?} differs: have {:?}, expected {:?}",
                    mine.name, mine.values, theirs.values
                ));
            }
        }
        Ok(())
    }
}

impl<K> Index<K> {
    fn insert(&mut self, key: &Arc<str>, values: Vec<String>) {
        for value in values {
            self.values.entry(value).or_default().insert(Arc::clone(key));
        }
    }
}
