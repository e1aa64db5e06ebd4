//! kdev: a Rust framework for extending Kubernetes — the machinery of client-go and
//! controller-runtime, with the server sides (webhooks, scheduler extenders, node plugins)
//! that extension authors otherwise write by hand.
//!
//! This facade re-exports the kdev crates. It always carries [`kdev_core`] (the queueing
//! primitives, reflectors and informers, the controller runtime with its manager and leader
//! election, and the operator toolkit); behind cargo features it carries the embedded API
//! server (`testenv`), the `CustomResource` derive macro and its CRD runtime (`derive`), and
//! admission and conversion webhooks (`webhook`). The scheduler extender and node plugins
//! join it as they land, each behind a feature of its own.
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
//! | `CustomResource`, `crd` (feature `derive`) | `kdev_derive`, `kdev_crd` | typed custom resources and their CRDs from Rust structs |
//! | `webhook` (feature `webhook`) | `kdev_webhook` | admission and conversion webhooks: the TLS server, `Validator`, `Defaulter`, raw handlers, certificates, generated configurations, CA injection, the Manager runnable |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testenv` | no | `kdev::testenv`: [`TestEnv`](https://docs.rs/kdev-testenv), the embedded API server, fault injection |
//! | `leader-election-redis` | no | `kdev::leader_election::RedisLock`: leader election on a Redis key |
//! | `derive` | no | `#[derive(kdev::CustomResource)]` and its runtime `kdev::crd` (structural schemas from schemars) |
//! | `webhook` | no | `kdev::webhook`: admission and conversion webhook server, certificate reload, typed validators and defaulters, self-signed certificates and rotation, webhook configurations, CA injection, the server as a Manager runnable with its metrics (`kdev::webhook::manager`) |
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

/// Admission webhooks: the HTTPS [`Server`](kdev_webhook::Server) with certificate reload,
/// typed validators and defaulters, raw AdmissionReview handlers.
#[cfg(feature = "webhook")]
pub use kdev_webhook as webhook;

/// CRDs from Rust types: structural schemas from schemars and CRD assembly, the runtime of
/// [`CustomResource`].
#[cfg(feature = "derive")]
pub use kdev_crd as crd;

/// Derives a typed custom resource and its CustomResourceDefinition from the resource's spec
/// struct. The attribute reference is below, after the example.
///
/// # Examples
///
/// ```
/// use kdev::CustomResource;
/// use kube_core::{Resource, ResourceExt};
/// use serde::{Deserialize, Serialize};
///
/// /// Run `replicas` copies of `image`.
/// #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
/// #[kdev(group = "example.com", version = "v1", namespaced, status = "MyAppStatus", shortname = "ma")]
/// #[kdev(printcolumn(name = "Replicas", type = "integer", json_path = ".spec.replicas"))]
/// #[serde(rename_all = "camelCase")]
/// struct MyAppSpec {
///     #[kdev(minimum = 0, maximum = 10, default = 1)]
///     #[serde(default)]
///     replicas: i32,
///     #[kdev(min_length = 1, validation(rule = "!self.endsWith(':latest')", message = "pin a tag"))]
///     image: String,
/// }
///
/// #[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
/// #[serde(rename_all = "camelCase")]
/// struct MyAppStatus {
///     available_replicas: Option<i32>,
/// }
///
/// let app = MyApp::new("web", MyAppSpec { replicas: 2, image: "nginx:1.27".into() });
/// assert_eq!(app.name_any(), "web");
/// assert_eq!(MyApp::plural(&()), "myapps");
/// let json = serde_json::to_value(&app).unwrap();
/// assert_eq!(json["apiVersion"], "example.com/v1");
/// assert_eq!(json["kind"], "MyApp");
///
/// let crd = MyApp::crd();
/// assert_eq!(crd.metadata.name.as_deref(), Some("myapps.example.com"));
/// let version = &crd.spec.versions[0];
/// let schema = serde_json::to_value(&version.schema).unwrap();
/// assert_eq!(
///     schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"],
///     serde_json::json!({ "type": "integer", "format": "int32", "minimum": 0.0, "maximum": 10.0, "default": 1 })
/// );
/// ```
///
/// (`kdev-derive/tests/it/server.rs` installs such a CRD on the embedded API server and shows
/// each validation rejecting a bad object.)
#[cfg(feature = "derive")]
pub use kdev_derive::CustomResource;

#[cfg(feature = "derive")]
pub use kdev_derive::schema;
