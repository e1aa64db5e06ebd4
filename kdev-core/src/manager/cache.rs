//! The manager's cached reader: reads come from shared informers (started on first use),
//! writes go to the API server through [`Manager::client`](super::Manager::client).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube_client::{Api, Client};
use kube_core::{Resource, Selector};

use crate::controller::Object;
use crate::informer::{self, Lister, SharedInformerFactory};

/// Why a cached read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The informer for the type did not sync in time, or the manager is shutting down
    /// ([`informer::Error::Stopped`]: no informer starts then).
    #[error("the cache of {kind} did not sync")]
    NotSynced {
        /// The kind.
        kind: String,
        /// The informer's error.
        #[source]
        source: informer::Error,
    },
    /// A read by index named an index the kind's informers do not have: add it first with
    /// [`Manager::add_indexer`](super::Manager::add_indexer).
    #[error("the cache of {kind} has no index {index:?}")]
    UnknownIndex {
        /// The kind.
        kind: String,
        /// The index asked for.
        index: String,
    },
}

fn by_index<K: Object>(lister: &Lister<K>, index: &str, value: &str) -> Result<Vec<Arc<K>>, CacheError> {
    lister.by_index(index, value).map_err(|_| CacheError::UnknownIndex {
        kind: K::kind(&()).into_owned(),
        index: index.to_string(),
    })
}

/// Reads from the manager's informers (controller-runtime's cache-backed client reader).
///
/// The first read of a type starts a cluster-wide informer for it (shared with every
/// controller that watches the same type cluster-wide) and waits for its initial list; later
/// reads are local and hand out the cached `Arc`s, never copies. Objects from the cache are
/// shared: clone one before changing it, and write through `Api` on the manager's client.
/// [`namespaced`](Self::namespaced) reads one namespace through informers of that namespace
/// only, for a controller that may not list cluster-wide.
#[derive(Clone)]
pub struct Cache {
    pub(super) factory: Arc<SharedInformerFactory>,
    pub(super) client: Client,
    pub(super) sync_timeout: Duration,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("informers", &self.factory.len()).finish()
    }
}

impl Cache {
    /// The cached reader over `factory`'s informers, waiting up to 2 minutes for a first sync.
    pub(crate) fn new(factory: Arc<SharedInformerFactory>, client: Client) -> Self {
        Cache {
            factory,
            client,
            sync_timeout: Duration::from_secs(120),
        }
    }

    /// A lister over the cluster-wide cache of `K`, synced.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`] when the informer does not sync within the timeout (2 min), or
    /// at once when the manager is shutting down.
    pub async fn lister<K: Object>(&self) -> Result<Lister<K>, CacheError> {
        self.synced(Api::<K>::all(self.client.clone())).await
    }

    /// The cache of one namespace: its reads of namespaced kinds come from informers that list
    /// and watch only `namespace`. A controller whose RBAC is a Role in that namespace, not a
    /// ClusterRole, reads through this (controller-runtime's cache restricted to namespaces).
    /// The informers are shared with controllers built on the same namespaced `Api`.
    pub fn namespaced(&self, namespace: &str) -> NamespacedCache {
        NamespacedCache {
            cache: self.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// The shared informer of `api`, started and synced, as a lister.
    async fn synced<K: Object>(&self, api: Api<K>) -> Result<Lister<K>, CacheError> {
        let informer = self.factory.informer(api);
        self.factory.start();
        informer
            .wait_for_sync(self.sync_timeout)
            .await
            .map_err(|source| CacheError::NotSynced {
                kind: K::kind(&()).into_owned(),
                source,
            })?;
        Ok(informer.lister())
    }

    /// The cached object `namespace/name` (`None` namespace for cluster-scoped kinds).
    ///
    /// # Errors
    /// [`CacheError::NotSynced`], see [`lister`](Self::lister).
    pub async fn get<K: Object>(&self, namespace: Option<&str>, name: &str) -> Result<Option<Arc<K>>, CacheError> {
        let lister = self.lister::<K>().await?;
        Ok(match namespace {
            Some(ns) => lister.namespaced(ns).get(name),
            None => lister.get(name),
        })
    }

    /// The cached objects whose index `index` has `value`, in `namespace` or everywhere
    /// (controller-runtime's `List` with `client.MatchingFields`). Add the index first with
    /// [`Manager::add_indexer`](super::Manager::add_indexer).
    ///
    /// # Errors
    /// [`CacheError::UnknownIndex`] for an index never added; [`CacheError::NotSynced`], see
    /// [`lister`](Self::lister).
    #[doc(alias = "MatchingFields")]
    pub async fn by_index<K: Object>(
        &self,
        namespace: Option<&str>,
        index: &str,
        value: &str,
    ) -> Result<Vec<Arc<K>>, CacheError> {
        let lister = self.lister::<K>().await?;
        match namespace {
            Some(ns) => by_index(&lister.namespaced(ns), index, value),
            None => by_index(&lister, index, value),
        }
    }

    /// The cached objects matching `selector`, in `namespace` or everywhere.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`], see [`lister`](Self::lister).
    pub async fn list<K: Object>(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Arc<K>>, CacheError> {
        let lister = self.lister::<K>().await?;
        Ok(match namespace {
            Some(ns) => lister.namespaced(ns).list(selector),
            None => lister.list(selector),
        })
    }
}

/// Reads from the informers of one namespace ([`Cache::namespaced`]); every read hands out the
/// cached `Arc`s, never copies.
#[derive(Clone, Debug)]
pub struct NamespacedCache {
    cache: Cache,
    namespace: String,
}

impl NamespacedCache {
    /// The namespace this cache reads.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A lister over this namespace's cache of `K`, synced, seen through the namespace
    /// (`get` takes a bare name). The first call for a kind starts an informer that lists and
    /// watches only this namespace.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`] when the informer does not sync within the timeout (2 min),
    /// which is also how a missing permission to list or watch `K` here shows, or at once when
    /// the manager is shutting down.
    pub async fn lister<K>(&self) -> Result<Lister<K>, CacheError>
    where
        K: Object + Resource<Scope = NamespaceResourceScope>,
    {
        let lister = self
            .cache
            .synced(Api::<K>::namespaced(self.cache.client.clone(), &self.namespace))
            .await?;
        Ok(lister.namespaced(&self.namespace))
    }

    /// The cached object `name` in this namespace.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`], see [`lister`](Self::lister).
    pub async fn get<K>(&self, name: &str) -> Result<Option<Arc<K>>, CacheError>
    where
        K: Object + Resource<Scope = NamespaceResourceScope>,
    {
        Ok(self.lister::<K>().await?.get(name))
    }

    /// The cached objects in this namespace whose index `index` has `value` (controller-runtime's
    /// `List` with `client.InNamespace` and `client.MatchingFields`). Add the index first with
    /// [`Manager::add_indexer`](super::Manager::add_indexer): it then covers this namespace's
    /// informers too.
    ///
    /// # Errors
    /// [`CacheError::UnknownIndex`] for an index never added; [`CacheError::NotSynced`], see
    /// [`lister`](Self::lister).
    pub async fn by_index<K>(&self, index: &str, value: &str) -> Result<Vec<Arc<K>>, CacheError>
    where
        K: Object + Resource<Scope = NamespaceResourceScope>,
    {
        by_index(&self.lister::<K>().await?, index, value)
    }

    /// The cached objects in this namespace matching `selector`.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`], see [`lister`](Self::lister).
    pub async fn list<K>(&self, selector: &Selector) -> Result<Vec<Arc<K>>, CacheError>
    where
        K: Object + Resource<Scope = NamespaceResourceScope>,
    {
        Ok(self.lister::<K>().await?.list(selector))
    }
}
