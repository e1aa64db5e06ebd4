//! `SharedInformerFactory`: one informer per (type, scope, selectors), shared by every caller
//! (client-go's [`informers/factory.go`](https://github.com/kubernetes/client-go/blob/master/informers/factory.go)
//! and `dynamicinformer`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_client::api::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use kube_client::discovery::{self, ApiCapabilities, Scope, verbs};
use kube_client::error::DiscoveryError;
use kube_client::{Api, Client};
use kube_core::{GroupVersion, GroupVersionResource, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio_util::task::TaskTracker;

use super::{Error, Order, SharedIndexInformer, Transform};
use crate::reflector::{self, ListWatch};

/// Why the factory could not hand out an informer or sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// Discovery could not resolve the kind or resource of a dynamic informer.
    #[error("resolving {what} through discovery failed")]
    Discovery {
        /// The kind or resource asked for, as `group/version/Kind` or `group/version/resource`.
        what: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// The resource found does not support list and watch (`bindings`, `tokenreviews`...), so
    /// no informer can follow it.
    #[error("{resource} does not support list and watch")]
    NotWatchable {
        /// The resource, as `group/version/resource`.
        resource: String,
    },
    /// An informer did not sync in time (the error names it, and what its list or watch last
    /// failed with).
    #[error("waiting for the caches to sync failed")]
    Sync(#[from] Error),
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// What the factory needs from any informer, whatever its type.
trait Erased: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn start(&self, tracker: &TaskTracker);
    fn wait(&self, timeout: Duration) -> BoxFuture;
    fn synced(&self) -> bool;
    fn failure(&self) -> Option<Error>;
    fn shutdown(&self);
}

impl<K> Erased for SharedIndexInformer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn start(&self, tracker: &TaskTracker) {
        self.inner
            .start_requested
            .store(true, std::sync::atomic::Ordering::Release);
        let inf = self.clone();
        tracker.spawn(async move {
            // A second start is refused by the informer itself; nothing to do then.
            let _ = inf.run().await;
        });
    }
    fn wait(&self, timeout: Duration) -> BoxFuture {
        let inf = self.clone();
        Box::pin(async move { inf.wait_for_sync(timeout).await })
    }
    fn synced(&self) -> bool {
        self.has_synced()
    }
    fn failure(&self) -> Option<Error> {
        SharedIndexInformer::failure(self)
    }
    fn shutdown(&self) {
        SharedIndexInformer::shutdown(self);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    ty: TypeId,
    url: String,
    labels: String,
    fields: String,
}

struct Entry {
    informer: Box<dyn Erased>,
    started: bool,
}

/// A transform of any object's metadata: the factory's default for every type.
type MetadataTransform = Arc<dyn Fn(&mut ObjectMeta) + Send + Sync>;

/// The transforms a factory gives the informers it makes: one per cached type, else the
/// default on metadata.
#[derive(Default)]
pub(crate) struct Transforms {
    default: Option<MetadataTransform>,
    /// `TypeId` of the cached type to its `Transform<T>`.
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Transforms {
    pub(crate) fn set_default(&mut self, transform: MetadataTransform) {
        self.default = Some(transform);
    }

    pub(crate) fn set<T: 'static>(&mut self, transform: Transform<T>) {
        self.by_type.insert(TypeId::of::<T>(), Arc::new(transform));
    }

    fn for_type<T: Resource + 'static>(&self) -> Option<Transform<T>> {
        if let Some(own) = self.by_type.get(&TypeId::of::<T>()) {
            return own.downcast_ref::<Transform<T>>().cloned();
        }
        let default = self.default.clone()?;
        Some(Arc::new(move |obj: &mut T| default(obj.meta_mut())))
    }
}

/// The default resync periods a factory gives its informers: one per cached type, else one
/// for all.
#[derive(Default)]
struct Resync {
    default: Option<Duration>,
    by_type: HashMap<TypeId, Duration>,
}

impl Resync {
    fn for_type<T: 'static>(&self) -> Option<Duration> {
        self.by_type.get(&TypeId::of::<T>()).copied().or(self.default)
    }
}

/// Hands out shared informers: asking twice for the same type, scope and selectors returns the
/// same informer, so one watch serves every controller that needs it.
///
/// The factory owns its informers' tasks: dropping it stops them, as [`shutdown`](Self::shutdown)
/// does without waiting (no task outlives its owner). Share it in an `Arc`, and leave the
/// stopping of its informers to it: an informer it handed out serves everyone who asked for
/// it, so shutting one down stops it for all of them.
///
/// # Examples
/// ```no_run
/// # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use k8s_openapi::api::core::v1::Pod;
/// use kdev_core::informer::SharedInformerFactory;
///
/// let factory = SharedInformerFactory::new(client.clone());
/// let pods = factory.informer(kube_client::Api::<Pod>::all(client));
/// factory.start();
/// factory.wait_for_cache_sync(Duration::from_secs(30)).await?;
/// println!("{} pods cached", pods.store().len());
/// factory.shutdown().await;
/// # Ok(()) }
/// ```
pub struct SharedInformerFactory {
    client: Client,
    config: reflector::Config,
    transforms: Transforms,
    order: Order,
    resync: Resync,
    informers: Mutex<Informers>,
    tracker: TaskTracker,
}

/// The factory's informers, whether it was shut down, and the indexes every informer of a type
/// gets.
#[derive(Default)]
struct Informers {
    map: HashMap<Key, Entry>,
    shut_down: bool,
    /// `TypeId` of the cached type to its indexes.
    indexers: HashMap<TypeId, Vec<NamedIndex>>,
}

/// An index's name and its `IndexFn<T>`, type-erased.
type NamedIndex = (String, Arc<dyn Any + Send + Sync>);

/// An index function shared by every informer of `T` a factory makes.
type IndexFn<T> = Arc<dyn Fn(&T) -> Vec<String> + Send + Sync>;

impl Drop for SharedInformerFactory {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Debug for SharedInformerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInformerFactory")
            .field("informers", &self.informers.lock().map.len())
            .finish()
    }
}

impl SharedInformerFactory {
    /// A factory whose informers use client-go's reflector defaults.
    pub fn new(client: Client) -> Self {
        Self::with_config(client, reflector::Config::default())
    }

    /// A factory whose informers use `config`.
    pub fn with_config(client: Client, config: reflector::Config) -> Self {
        SharedInformerFactory {
            client,
            config,
            transforms: Transforms::default(),
            order: Order::default(),
            resync: Resync::default(),
            informers: Mutex::default(),
            tracker: TaskTracker::new(),
        }
    }

    /// Runs `transform` on the metadata of every object of every informer this factory makes
    /// (typed, dynamic and metadata-only), as each object is decoded and before it is stored
    /// (client-go's `informers.WithTransform`, controller-runtime's `DefaultTransform`). A
    /// transform set for one type with [`transform`](Self::transform) replaces it for that
    /// type. Set it before asking for informers: an informer keeps the transform it was made
    /// with.
    ///
    /// # Examples
    /// ```no_run
    /// # fn run(client: kube_client::Client) {
    /// use kdev_core::informer::SharedInformerFactory;
    ///
    /// // managedFields are a third of a cached object's memory and no controller reads them.
    /// let factory = SharedInformerFactory::new(client).default_transform(|meta| meta.managed_fields = None);
    /// # }
    /// ```
    #[must_use]
    pub fn default_transform(mut self, transform: impl Fn(&mut ObjectMeta) + Send + Sync + 'static) -> Self {
        self.transforms.set_default(Arc::new(transform));
        self
    }

    /// Runs `transform` on every object of the informers of type `T` this factory makes,
    /// whatever their scope and selectors, instead of the
    /// [`default_transform`](Self::default_transform) (controller-runtime's per-object
    /// `Transform`). `T` is the cached type: `PartialObjectMeta<K>` for metadata-only
    /// informers, `DynamicObject` for dynamic ones.
    ///
    /// # Examples
    /// ```no_run
    /// # fn run(client: kube_client::Client) {
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use kdev_core::informer::SharedInformerFactory;
    ///
    /// // Cached ConfigMaps keep their keys but not their values.
    /// let factory = SharedInformerFactory::new(client).transform(|cm: &mut ConfigMap| {
    ///     for value in cm.data.iter_mut().flat_map(|data| data.values_mut()) {
    ///         value.clear();
    ///     }
    /// });
    /// # }
    /// ```
    #[must_use]
    pub fn transform<T: 'static>(mut self, transform: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.transforms.set::<T>(Arc::new(transform));
        self
    }

    pub(crate) fn with_transforms(mut self, transforms: Transforms) -> Self {
        self.transforms = transforms;
        self
    }

    /// The order in which the informers this factory makes hand their handlers the watch's
    /// changes (default [`Order::PerKey`]; [`Order::Arrival`] is client-go's
    /// `InOrderInformers`, on by default since 1.33). Set it before asking for informers.
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The default resync period of the informers this factory makes: a handler added to one
    /// of them with `resync: None` gets every cached object replayed about this often (see
    /// [`SharedIndexInformer::add_event_handler`]; zero means none, the default). client-go's
    /// `NewSharedInformerFactory(client, defaultResync)`. Set it before asking for informers.
    ///
    /// # Examples
    /// ```no_run
    /// # fn run(client: kube_client::Client) {
    /// use std::time::Duration;
    /// use kdev_core::informer::SharedInformerFactory;
    ///
    /// // sample-controller's factory: handlers hear of every object again every 30 seconds.
    /// let factory = SharedInformerFactory::new(client).default_resync(Duration::from_secs(30));
    /// # }
    /// ```
    #[must_use]
    pub fn default_resync(mut self, period: Duration) -> Self {
        self.resync.default = Some(period);
        self
    }

    /// The default resync period of the informers of type `T` this factory makes, instead of
    /// [`default_resync`](Self::default_resync) (client-go's `WithCustomResyncConfig`); zero
    /// turns the default off for `T`. `T` is the cached type, as for
    /// [`transform`](Self::transform): `DynamicObject` sets it for every dynamic informer. Set
    /// it before asking for informers.
    #[must_use]
    pub fn resync_for<T: 'static>(mut self, period: Duration) -> Self {
        self.resync.by_type.insert(TypeId::of::<T>(), period);
        self
    }

    /// The shared informer for everything `api` addresses (its type and namespace scope).
    pub fn informer<K>(&self, api: Api<K>) -> SharedIndexInformer<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.informer_with_selectors(api, "", "")
    }

    /// The shared informer for `api` restricted by label and field selectors.
    pub fn informer_with_selectors<K>(&self, api: Api<K>, labels: &str, fields: &str) -> SharedIndexInformer<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = Key {
            ty: TypeId::of::<K>(),
            url: api.resource_url().to_string(),
            labels: labels.into(),
            fields: fields.into(),
        };
        self.shared(key, || ListWatch::new(api).labels(labels).fields(fields))
    }

    /// The shared informer of everything of `K` in `namespace` (or everywhere), for a `K` of
    /// any scope: what `informer(Api::namespaced(..))` gives for a namespaced `K`.
    pub(crate) fn informer_in<K>(&self, client: Client, namespace: Option<&str>) -> SharedIndexInformer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = Key {
            ty: TypeId::of::<K>(),
            url: K::url_path(&(), namespace),
            labels: String::new(),
            fields: String::new(),
        };
        self.shared(key, || ListWatch::in_namespace(client, namespace))
    }

    /// The shared metadata-only informer for everything `api` addresses: it caches
    /// `PartialObjectMeta<K>` (names, labels, annotations, owner references, finalizers), never
    /// specs or statuses, for controllers that only need to know which objects exist (client-go's
    /// `metadatainformer`). Works for typed `K` and for `DynamicObject`.
    pub fn metadata_informer<K>(&self, api: Api<K>) -> SharedIndexInformer<PartialObjectMeta<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.metadata_informer_with_selectors(api, "", "")
    }

    /// The shared metadata-only informer for `api` restricted by label and field selectors.
    pub fn metadata_informer_with_selectors<K>(
        &self,
        api: Api<K>,
        labels: &str,
        fields: &str,
    ) -> SharedIndexInformer<PartialObjectMeta<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = Key {
            ty: TypeId::of::<PartialObjectMeta<K>>(),
            url: api.resource_url().to_string(),
            labels: labels.into(),
            fields: fields.into(),
        };
        self.shared(key, || ListWatch::metadata(api).labels(labels).fields(fields))
    }

    fn shared<T>(&self, key: Key, list_watch: impl FnOnce() -> ListWatch<T>) -> SharedIndexInformer<T>
    where
        T: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut informers = self.informers.lock();
        if let Some(found) = informers
            .map
            .get(&key)
            .and_then(|e| e.informer.as_any().downcast_ref::<SharedIndexInformer<T>>())
        {
            return found.clone();
        }
        let informer = SharedIndexInformer::with_order(
            list_watch(),
            self.config.clone(),
            self.transforms.for_type::<T>(),
            self.order,
        );
        informer.set_default_resync(self.resync.for_type::<T>());
        for (name, index) in informers.indexers.get(&TypeId::of::<T>()).into_iter().flatten() {
            if let Some(index) = index.downcast_ref::<IndexFn<T>>() {
                let index = index.clone();
                // A fresh informer has no index yet: the name cannot be taken.
                let _ = informer.add_indexer(name.clone(), move |obj: &T| index(obj));
            }
        }
        // After a shutdown nothing starts: an informer asked for then comes already shut down,
        // so that waiting for its sync ends at once, with `Error::Stopped`.
        if informers.shut_down {
            informer.shutdown();
        }
        informers.map.insert(
            key,
            Entry {
                informer: Box::new(informer.clone()),
                started: false,
            },
        );
        informer
    }

    /// A dynamic informer for any kind, resolved through discovery (the preferred resource of
    /// `gvk`), in `namespace` or across namespaces (a `namespace` is ignored for a
    /// cluster-scoped kind).
    ///
    /// # Errors
    /// [`FactoryError::Discovery`] when the API server does not serve the kind;
    /// [`FactoryError::NotWatchable`] when it cannot be listed and watched.
    pub async fn dynamic_informer(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
    ) -> Result<SharedIndexInformer<DynamicObject>, FactoryError> {
        let (ar, caps) = discovery::pinned_kind(&self.client, gvk)
            .await
            .map_err(|source| FactoryError::Discovery {
                what: match gvk.group.as_str() {
                    "" => format!("{}/{}", gvk.version, gvk.kind),
                    group => format!("{group}/{}/{}", gvk.version, gvk.kind),
                },
                source,
            })?;
        self.dynamic(&ar, &caps, namespace)
    }

    /// A dynamic informer for a resource named by group, version and plural resource name
    /// (`apps`, `v1`, `deployments`), resolved through discovery, in `namespace` or across
    /// namespaces (ignored for a cluster-scoped resource): client-go's
    /// `dynamicinformer.DynamicSharedInformerFactory.ForResource(gvr)`, and the generic
    /// informer's `ForResource`. Asking for the same resource by kind with
    /// [`dynamic_informer`](Self::dynamic_informer) returns the same informer.
    ///
    /// Each call asks discovery (one request), even when the informer already exists: keep the
    /// informer rather than ask again.
    ///
    /// # Errors
    /// [`FactoryError::Discovery`] when the API server does not serve the resource;
    /// [`FactoryError::NotWatchable`] when it cannot be listed and watched.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn run(client: kube_client::Client) -> Result<(), kdev_core::informer::FactoryError> {
    /// use kube_core::GroupVersionResource;
    /// use kdev_core::informer::SharedInformerFactory;
    ///
    /// let factory = SharedInformerFactory::new(client);
    /// let gvr = GroupVersionResource::gvr("apps", "v1", "deployments");
    /// let deployments = factory.dynamic_informer_for_resource(&gvr, Some("default")).await?;
    /// factory.start();
    /// # Ok(()) }
    /// ```
    pub async fn dynamic_informer_for_resource(
        &self,
        gvr: &GroupVersionResource,
        namespace: Option<&str>,
    ) -> Result<SharedIndexInformer<DynamicObject>, FactoryError> {
        let name = match gvr.group.as_str() {
            "" => format!("{}/{}", gvr.version, gvr.resource),
            group => format!("{group}/{}/{}", gvr.version, gvr.resource),
        };
        let discovery_error = |source| FactoryError::Discovery {
            what: name.clone(),
            source,
        };
        let group = discovery::pinned_group(&self.client, &GroupVersion::gv(&gvr.group, &gvr.version))
            .await
            .map_err(discovery_error)?;
        let (ar, caps) = group
            .versioned_resources(&gvr.version)
            .into_iter()
            .find(|(ar, _)| ar.plural == gvr.resource)
            .ok_or_else(|| {
                discovery_error(kube_client::Error::Discovery(DiscoveryError::MissingResource(
                    name.clone(),
                )))
            })?;
        self.dynamic(&ar, &caps, namespace)
    }

    /// The shared informer of `ar`, which must support list and watch.
    fn dynamic(
        &self,
        ar: &ApiResource,
        caps: &ApiCapabilities,
        namespace: Option<&str>,
    ) -> Result<SharedIndexInformer<DynamicObject>, FactoryError> {
        if !(caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::WATCH)) {
            return Err(FactoryError::NotWatchable {
                resource: match ar.group.as_str() {
                    "" => format!("{}/{}", ar.version, ar.plural),
                    group => format!("{group}/{}/{}", ar.version, ar.plural),
                },
            });
        }
        let api = match (namespace, &caps.scope) {
            (Some(ns), Scope::Namespaced) => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        };
        Ok(self.informer(api))
    }

    /// Adds the index `name` to every informer of `K` this factory makes: those it made already and
    /// those asked for later, whatever their namespace or selectors (controller-runtime's
    /// `FieldIndexer.IndexField`, which indexes a type in the whole cache). Reads then query it
    /// through any of them, [`Lister::by_index`](super::Lister::by_index) or a manager's
    /// [`Cache::by_index`](crate::manager::Cache::by_index). Objects already cached are indexed at
    /// once.
    ///
    /// An index on [`DynamicObject`] applies to the dynamic informers of every kind, and one on
    /// `PartialObjectMeta<K>` to the metadata-only informers of `K` (not to those of `K`).
    ///
    /// # Errors
    /// [`store::Error::IndexerConflict`](crate::store::Error::IndexerConflict) when `K` already
    /// has an index of that name, from this factory or added to one of its informers directly;
    /// nothing is added then.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use k8s_openapi::api::batch::v1::Job;
    /// use kdev_core::informer::SharedInformerFactory;
    ///
    /// let factory = SharedInformerFactory::new(client.clone());
    /// // Jobs by the name of their controller (kubebuilder's CronJob tutorial's `jobOwnerKey`).
    /// factory.add_indexer::<Job>("owner", |job| {
    ///     kdev_core::owner::get_controller_of(&job.metadata)
    ///         .map(|owner| vec![owner.name.clone()])
    ///         .unwrap_or_default()
    /// })?;
    /// let jobs = factory.informer(kube_client::Api::<Job>::namespaced(client, "batch"));
    /// factory.start();
    /// // ... once synced:
    /// let children = jobs.lister().namespaced("batch").by_index("owner", "nightly")?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "IndexField")]
    pub fn add_indexer<K>(
        &self,
        name: impl Into<String>,
        index: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Result<(), crate::store::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let name = name.into();
        let index: IndexFn<K> = Arc::new(index);
        let mut informers = self.informers.lock();
        let conflict = || crate::store::Error::IndexerConflict(name.clone());
        if informers
            .indexers
            .get(&TypeId::of::<K>())
            .is_some_and(|all| all.iter().any(|(n, _)| *n == name))
        {
            return Err(conflict());
        }
        let existing: Vec<SharedIndexInformer<K>> = informers
            .map
            .iter()
            .filter(|(key, _)| key.ty == TypeId::of::<K>())
            .filter_map(|(_, e)| e.informer.as_any().downcast_ref::<SharedIndexInformer<K>>().cloned())
            .collect();
        if existing.iter().any(|i| i.store().index_names().contains(&name)) {
            return Err(conflict());
        }
        for informer in &existing {
            let index = index.clone();
            informer.add_indexer(name.clone(), move |obj: &K| index(obj))?;
        }
        informers
            .indexers
            .entry(TypeId::of::<K>())
            .or_default()
            .push((name, Arc::new(index)));
        Ok(())
    }

    /// Starts every informer not started yet (call again after asking for more). Does nothing
    /// after [`shutdown`](Self::shutdown), as client-go's factory does.
    pub fn start(&self) {
        let mut informers = self.informers.lock();
        if informers.shut_down {
            return;
        }
        for entry in informers.map.values_mut() {
            if !entry.started {
                entry.started = true;
                entry.informer.start(&self.tracker);
            }
        }
    }

    /// Waits until every started informer has synced, at most `timeout` in all (the informers
    /// are waited on together, not one after the other).
    ///
    /// # Errors
    /// [`FactoryError::Sync`] for an informer that did not sync in time.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_cache_sync(&self, timeout: Duration) -> Result<(), FactoryError> {
        let waits: Vec<BoxFuture> = self
            .informers
            .lock()
            .map
            .values()
            .filter(|e| e.started)
            .map(|e| e.informer.wait(timeout))
            .collect();
        futures::future::try_join_all(waits).await?;
        Ok(())
    }

    /// Whether every started informer has synced (a manager's `/readyz`).
    pub fn has_synced(&self) -> bool {
        self.informers
            .lock()
            .map
            .values()
            .filter(|e| e.started)
            .all(|e| e.informer.synced())
    }

    /// The informers that [failed](SharedIndexInformer::failure): their transform or an index
    /// function panicked, and their caches no longer follow the server (a manager's
    /// `/healthz`).
    pub fn failures(&self) -> Vec<Error> {
        self.informers
            .lock()
            .map
            .values()
            .filter_map(|e| e.informer.failure())
            .collect()
    }

    /// How many informers the factory holds.
    pub fn len(&self) -> usize {
        self.informers.lock().map.len()
    }

    /// Whether the factory holds no informer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every informer and waits for their tasks to end, their handlers' threads
    /// included: no handler runs once it returns (a handler blocked for good holds it up, as
    /// it holds up client-go's `Shutdown`). After it nothing starts: see
    /// [`start`](Self::start); informers asked for afterwards come shut down.
    pub async fn shutdown(&self) {
        self.stop();
        self.tracker.wait().await;
    }

    /// [`shutdown`](Self::shutdown) without waiting for the informers' tasks to end.
    pub(crate) fn stop(&self) {
        let mut informers = self.informers.lock();
        informers.shut_down = true;
        for entry in informers.map.values() {
            entry.informer.shutdown();
        }
        self.tracker.close();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.informers.lock().shut_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resource discovery lists without list and watch (`bindings`, `tokenreviews`) gets a
    /// clear error, not an informer that never syncs.
    #[tokio::test]
    async fn a_resource_without_list_and_watch_gets_no_informer() {
        let config = kube_client::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let factory = SharedInformerFactory::new(Client::try_from(config).expect("client"));
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Binding".into(),
            plural: "bindings".into(),
        };
        let caps = |operations: &[&str]| ApiCapabilities {
            scope: Scope::Namespaced,
            subresources: Vec::new(),
            operations: operations.iter().map(|o| o.to_string()).collect(),
        };
        let err = factory
            .dynamic(&ar, &caps(&[verbs::CREATE]), None)
            .expect_err("create only");
        assert_eq!(err.to_string(), "v1/bindings does not support list and watch");
        assert!(factory.dynamic(&ar, &caps(&[verbs::LIST]), None).is_err());
        assert!(factory.is_empty());
        let informer = factory
            .dynamic(&ar, &caps(&[verbs::LIST, verbs::WATCH]), Some("default"))
            .expect("watchable");
        assert_eq!(factory.len(), 1);
        assert!(
            format!("{informer:?}").contains("/api/v1/namespaces/default/bindings"),
            "{informer:?}"
        );
    }
}
