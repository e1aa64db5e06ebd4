//! kdev: a Rust framework for extending Kubernetes — the machinery of client-go and
//! controller-runtime, with the server sides (webhooks, scheduler extenders, node plugins)
//! that extension authors otherwise write by hand.
//!
//! This facade re-exports the kdev crates. Today it carries [`kdev_core`] (the queueing
//! primitives, reflectors and informers, the controller runtime with its manager and leader
//! election, and the operator toolkit) and, behind the `testenv` feature, the embedded API
//! server. The derive macro, webhooks, the scheduler extender and node plugins join it as
//! they land, each behind a cargo feature.
//!
//! # Example
//!
//! ```
//! use kdev::workqueue::WorkQueue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let queue = WorkQueue::<String>::default();
//! queue.add("default/web".into());
//! queue.add("default/web".into()); // deduplicated
//! assert_eq!(queue.len(), 1);
//!
//! let key = queue.get().await.unwrap();
//! queue.done(&key);
//! # }
//! ```
//!
//! # Crates
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`store`], [`delta_fifo`], [`real_fifo`], [`workqueue`] | [`kdev_core`] | client-go's primitives |
//! | [`reflector`], [`informer`] | [`kdev_core`] | list-and-watch, shared informers, listers, the informer factory |
//! | [`controller`], [`manager`], [`leader_election`] | [`kdev_core`] | the controller runtime: `Reconciler`, `Controller`, `Manager`, leader election |
//! | [`finalizer`], [`owner`], [`object`], [`condition`], [`event`] | [`kdev_core`] | the operator toolkit: finalizers, owner references, create-or-update, conditions, event recorder |
//! | `testenv` (feature `testenv`) | `kdev_testenv` | an embedded Kubernetes API server for tests and lessons |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testenv` | no | `kdev::testenv`: [`TestEnv`](https://docs.rs/kdev-testenv), the embedded API server, fault injection |
//! | `leader-election-redis` | no | `kdev::leader_election::RedisLock`: leader election on a Redis key |
//!
//! kdev never enables a k8s-openapi version feature; your binary picks one, e.g.
//! `k8s-openapi = { version = "0.29", features = ["latest"] }`.

pub use kdev_core;
pub use kdev_core::{DeltaFifo, RealFifo, Store, WorkQueue};
pub use kdev_core::{
    condition, controller, delta_fifo, event, finalizer, informer, leader_election, manager, object, owner, real_fifo,
    reflector, store, workqueue,
};

/// The embedded Kubernetes API server: [`TestEnv`](kdev_testenv::TestEnv) for tests and
/// examples, [`Server`](kdev_testenv::Server) for `kdev-testenv serve`.
#[cfg(feature = "testenv")]
pub use kdev_testenv as testenv;
