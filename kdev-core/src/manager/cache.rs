//! The manager's cached reader: reads come from shared informers (started on first use),
//! writes go to the API server through [`Manager::client`](super::Manager::client).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kube_client::{Api, Client};
use kube_core::Selector;

use crate::controller::Object;
use crate::informer::{self, Lister, SharedInformerFactory};

/// Why a cached read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The informer for the type did not sync in time.
    #[error("the cache of {kind} did not sync: {source}")]
    NotSynced {
        /// The kind.
        kind: String,
        /// The informer's error.
        #[source]
        source: informer::Error,
    },
}

/// Reads from the manager's informers (controller-runtime's cache-backed client reader).
///
/// The first read of a type starts a cluster-wide informer for it (shared with every
/// controller that watches the same type cluster-wide) and waits for its initial list; later
/// reads are local and hand out the cached `Arc`s, never copies. Objects from the cache are
/// shared: clone one before changing it, and write through `Api` on the manager's client.
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
    /// A lister over the cluster-wide cache of `K`, synced.
    ///
    /// # Errors
    /// [`CacheError::NotSynced`] when the informer does not sync within the timeout (2 min).
    pub async fn lister<K: Object>(&self) -> Result<Lister<K>, CacheError> {
        let informer = self.factory.informer(Api::<K>::all(self.client.clone()));
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
