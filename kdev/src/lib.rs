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
//! | [`controller`], [`manager`], [`leader_election`], [`metrics`] | [`kdev_core`] | the controller runtime: `Reconciler`, `Controller`, `Manager`, leader election, REST-client and process metrics |
//! | [`finalizer`], [`owner`], [`object`], [`condition`], [`event`], [`wait`], [`storage_version`] | [`kdev_core`] | the operator toolkit: finalizers, owner references, create-or-update, conditions, event recorder, waiting for a state, storage version migration |
//! | [`feature_gate`] | [`kdev_core`] | feature gates: named, staged switches set from `--feature-gates` or the environment |
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
//! | `rustls-tls` | no | HTTPS to a real cluster: kube-client's `rustls-tls` on the `ring` provider (kube's feature name). Without a TLS stack, `Client::try_default` against an `https://` server fails with `TlsRequired` |
//!
//! # Dependencies
//!
//! The crates whose types appear in kdev's API are re-exported, so an operator names them
//! through kdev and never has to match their versions:
//!
//! | re-export | crate | where kdev's API uses it |
//! |---|---|---|
//! | [`kdev::kube_client`](kube_client) | kube-client | `Client`, `Api`, `Config`, `kube_client::Error` everywhere a request is made |
//! | [`kdev::kube_core`](kube_core) | kube-core | `Resource`, `ResourceExt`, `ObjectMeta` helpers, the traits the derive implements |
//! | [`kdev::prometheus_client`](prometheus_client) | prometheus-client | `Manager::registry()`, every `Metrics::register` |
//! | [`kdev::serde_json`](serde_json) | serde_json | schemas, conversion and admission objects, `object::Error` |
//! | [`kdev::CancellationToken`](CancellationToken) | tokio-util | the stop signal of every `run(stop)`, `Manager::shutdown_token()` |
//! | `kdev::schemars` (feature `derive`) | schemars 1 | the `JsonSchema` every spec and status type derives |
//! | [`kdev::k8s_openapi`](k8s_openapi) | k8s-openapi | the built-in types (`Pod`, `ObjectMeta`...), no Kubernetes version chosen |
//!
//! The modules' own examples are written against the crates they come from: in them
//! `kdev_core::x` is `kdev::x`, `kdev_testenv` is `kdev::testenv`, `kdev_crd` is `kdev::crd`,
//! `kdev_webhook` is `kdev::webhook`, `kube_client`, `kube_core`, `serde_json` and
//! `prometheus_client` are `kdev::kube_client`..., and `tokio_util::sync::CancellationToken`
//! is `kdev::CancellationToken`. Hidden lines (`# let env = TestEnv::start()...`) often make
//! the client: a test starts the embedded API server with `kdev::testenv::TestEnv::start()` and
//! takes `env.client()`; a binary uses `kdev::kube_client::Client::try_default()`.
//!
//! Derives are the exception: a derive macro's generated code names its crate at a path of
//! its own choosing. schemars' `JsonSchema` derive writes `schemars::...` paths, so
//! `use kdev::schemars;` in the module is enough for `#[derive(schemars::JsonSchema)]`.
//! prometheus-client's `EncodeLabelSet` derive writes `::prometheus_client::...`: if you derive
//! it, depend on `prometheus-client` yourself, on kdev's minor version (0.25).
//!
//! k8s-openapi, serde and tokio stay dependencies of your binary too: kdev never enables a
//! k8s-openapi version feature (your binary picks the Kubernetes version, e.g.
//! `k8s-openapi = { version = "0.29", features = ["latest"] }`), and serde's derives and
//! `#[tokio::main]` name their crates at the root. An operator's `[dependencies]`:
//!
//! ```toml
//! kdev = { version = "0.1", features = ["derive", "rustls-tls"] }
//! k8s-openapi = { version = "0.29", features = ["latest"] }
//! serde = { version = "1", features = ["derive"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "signal"] }
//! ```

/// The Kubernetes API's built-in types (`Pod`, `Deployment`, `ObjectMeta`...). kdev chooses no
/// Kubernetes version: the binary enables one on its own k8s-openapi dependency (`latest`, or
/// `v1_33`... for older clusters), as every crate built on k8s-openapi asks.
pub use k8s_openapi;
pub use kdev_core;
pub use kdev_core::{DeltaFifo, RealFifo, Store, WorkQueue};
pub use kdev_core::{
    condition, controller, delta_fifo, event, feature_gate, finalizer, informer, leader_election, manager, metrics,
    object, owner, real_fifo, reflector, storage_version, store, wait, workqueue,
};
/// The Kubernetes client kdev's API takes and returns: `Client`, `Api`, `Config`, `Error`.
pub use kube_client;
/// Kubernetes object traits and types without a client: `Resource`, `ResourceExt`, the traits
/// `#[derive(CustomResource)]` implements.
pub use kube_core;
/// Prometheus metrics: the `Registry` of `Manager::registry()`, and the types to register your
/// own metrics in it.
pub use prometheus_client;
/// JSON schemas of Rust types, from `#[derive(schemars::JsonSchema)]`: what
/// [`CustomResource`] builds a CRD's schema from. `use kdev::schemars;` lets that derive find it
/// without a schemars dependency of your own.
#[cfg(feature = "derive")]
pub use schemars;
/// JSON values: CRD schemas, conversion and admission payloads.
pub use serde_json;
/// The stop signal of kdev's long-running tasks: `Manager::shutdown_token`, `Controller::run`,
/// `LeaderElector::run`; its `cancelled_owned()` is the future the webhook server's
/// `serve_with_shutdown` waits on.
pub use tokio_util::sync::CancellationToken;

/// The embedded Kubernetes API server: [`TestEnv`](kdev_testenv::TestEnv) for tests and
/// examples, [`Server`](kdev_testenv::Server) for `kdev-testenv serve`.
#[cfg(feature = "testenv")]
#[doc(inline)]
pub use kdev_testenv as testenv;

/// Admission webhooks: the HTTPS [`Server`](kdev_webhook::Server) with certificate reload,
/// typed validators and defaulters, raw AdmissionReview handlers.
#[cfg(feature = "webhook")]
#[doc(inline)]
pub use kdev_webhook as webhook;

/// CRDs from Rust types: structural schemas from schemars and CRD assembly, the runtime of
/// [`CustomResource`].
#[cfg(feature = "derive")]
#[doc(inline)]
pub use kdev_crd as crd;

/// Derives a typed custom resource and its CustomResourceDefinition from the resource's spec
/// struct. The attribute reference is below, after the example.
///
/// # Examples
///
/// ```
/// use kdev::CustomResource;
/// use kdev::kube_core::{Resource, ResourceExt};
/// use kdev::{schemars, serde_json}; // schemars' derive finds its crate through this import
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
/// (kdev-derive's tests install such a CRD on the embedded API server and show each validation
/// rejecting a bad object; lesson 9, `cargo run -p kdev-examples --bin crd`, does it step by step.)
#[cfg(feature = "derive")]
pub use kdev_derive::CustomResource;

#[cfg(feature = "derive")]
pub use kdev_derive::schema;
