//! client-go's and controller-runtime's machinery for Rust: the indexed object store, the
//! DeltaFIFO and the in-order FIFO, the rate-limited work queue, reflectors and shared
//! informers, and the controller runtime on top — `Reconciler`, `Controller`, `Manager`,
//! leader election and the operator toolkit — with client-go's contracts and without its
//! copies.
//!
//! kdev-core is the foundation of [kdev](https://docs.rs/kdev). It builds on
//! [`kube_core`] and [`k8s_openapi`]; every object type that implements
//! [`kube_core::Resource`] works (k8s-openapi types, `DynamicObject`, `PartialObjectMeta`).
//!
//! # Example
//!
//! The pattern of every client-go controller, by hand: changes flow through a FIFO into
//! an indexed store, and the keys of changed objects go through a work queue to workers.
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::{delta_fifo::{self, DeltaFifo, DeltaType}, store, workqueue::WorkQueue};
//!
//! # fn cm(name: &str) -> ConfigMap {
//! #     let mut cm = ConfigMap::default();
//! #     cm.metadata.namespace = Some("default".into());
//! #     cm.metadata.name = Some(name.into());
//! #     cm
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (cache, mut writer) = store::store::<ConfigMap>();
//! let fifo = DeltaFifo::new(delta_fifo::Config::default().known_objects(cache.clone()));
//! let queue = WorkQueue::<String>::default();
//!
//! // A reflector would do this: the initial list, then watch events.
//! fifo.replace([cm("a"), cm("b")]);
//! fifo.update(cm("a"));
//!
//! // The informer loop: apply deltas to the store, enqueue keys.
//! while let Some(key) = fifo.try_pop(|deltas, _initial| {
//!     for delta in &deltas {
//!         match (delta.kind, delta.object.get()) {
//!             (DeltaType::Deleted, _) => { writer.delete_key(&delta.key()); }
//!             (_, Some(obj)) => { writer.apply(Arc::clone(obj)); }
//!             (_, None) => {}
//!         }
//!     }
//!     deltas.last().map(|d| d.key())
//! }) {
//!     queue.add(key.unwrap_or_default());
//! }
//! assert!(fifo.has_synced());
//!
//! // A worker: read the object from the cache, never from the API server.
//! queue.shutdown();
//! while let Some(key) = queue.get().await {
//!     let cm = cache.get_by_key(&key).expect("cached");
//!     println!("reconciling {}", cm.metadata.name.as_deref().unwrap_or_default());
//!     queue.done(&key);
//! }
//! # }
//! ```
//!
//! # Modules
//!
//! | module | client-go | what it is |
//! |---|---|---|
//! | [`controller`] | controller-runtime's `builder`, `controller`, `reconcile`, `predicate` | `Reconciler`, `Controller` and its builder, predicates, controller metrics |
//! | [`leader_election`] | client-go's `leaderelection` | one leader among replicas: Lease, Redis and in-memory locks, your own `Lock` |
//! | [`manager`] | controller-runtime's `manager` | shared caches, controllers and runnables, leader election, `/healthz` `/readyz` `/metrics`, graceful shutdown |
//! | [`metrics`] | controller-runtime's `metrics`, Prometheus' process collector | `rest_client_requests_total` for any client, `process_*` |
//! | [`informer`] | `cache.SharedIndexInformer`, listers | one reflector, an indexed cache, handlers with their own buffers; `Lister` |
//! | [`reflector`] | `cache.Reflector`, `ListWatch` | list then watch, resume, relist on 410, backoff; feeds a FIFO or a store |
//! | [`store`] | `cache.Indexer`, `ThreadSafeStore` | the indexed cache: one writer, many readers, `Arc<K>` |
//! | [`delta_fifo`] | `cache.DeltaFIFO` | per-key change lists between reflector and informer |
//! | [`real_fifo`] | `cache.RealFIFO` | every event in order, no coalescing (informers' default since 1.33) |
//! | [`workqueue`] | `util/workqueue` | dedup, delays, rate limiters, priorities, metrics |
//! | [`finalizer`] | controller-runtime's `controllerutil` finalizer helpers | run clean-up before deletion: add, clean up, remove |
//! | [`owner`] | controller-runtime's `SetControllerReference` | owner and controller references, garbage collection |
//! | [`object`] | controller-runtime's `CreateOrUpdate`, `CreateOrPatch` | create-or-update with conflict retries, create-or-patch, status patch, server-side apply |
//! | [`condition`] | apimachinery's `meta.SetStatusCondition` | set, get and remove `status.conditions` entries |
//! | [`event`] | `tools/events` | an `events.k8s.io/v1` recorder with series, spam filter and background sending |
//! | [`wait`] | kube-runtime's `wait`, envtest's `Eventually` | wait until an object reaches a state: deleted, established, a condition true |
//! | [`feature_gate`] | component-base's `featuregate` | named, staged switches: `--feature-gates` values, `KUBE_FEATURE_*` variables, versions, `kubernetes_feature_enabled`; kdev's own client gates (`WatchListClient`) |
//! | [`storage_version`] | kube-storage-version-migrator | rewrite a custom resource's objects in a new storage version, then trim `status.storedVersions` |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `leader-election-redis` | no | `leader_election::RedisLock`: leader election on a Redis key |
//!
//! kdev-core never enables a k8s-openapi version feature: your binary picks one (e.g. `k8s-openapi = { version = "0.29", features = ["latest"] }`).

pub mod condition;
pub mod controller;
pub mod delta_fifo;
pub mod event;
pub mod feature_gate;
pub mod finalizer;
pub mod informer;
pub mod leader_election;
pub mod manager;
pub mod metrics;
pub mod object;
pub mod owner;
pub mod real_fifo;
pub mod reflector;
pub mod storage_version;
pub mod store;
pub mod wait;
pub mod workqueue;

pub use delta_fifo::DeltaFifo;
pub use real_fifo::RealFifo;
pub use store::Store;
pub use workqueue::WorkQueue;
