//! The webhook server as a kdev-core [`Manager`] runnable, as controller-runtime's manager runs
//! its `webhook.Server`: it serves on every replica (webhooks need no leader), stops when the
//! manager stops, reports its [metrics](crate::metrics) in the manager's `/metrics`, and adds a
//! `/readyz` check that passes once it is serving (controller-runtime's `StartedChecker`).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kdev_core::manager::Manager;
//! use kdev_webhook::admission::{Request, Response};
//! use kdev_webhook::{Server, certs, manager, tls::ServingCert};
//!
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let client = env.client();
//! # let dir = std::env::temp_dir().join(format!("kdev-webhook-manager-doc-{}", std::process::id()));
//! let manager = Manager::builder(client).http_addr("127.0.0.1:0".parse()?).handle_signals(false).build();
//! certs::Settings::for_service("operators", "my-webhook").dns_names(["localhost"]).generate()?.write(&dir)?;
//! let server = Server::builder()
//!     .raw("/allow", |_req: Request| async { Response::allowed() })
//!     .tls(ServingCert::from_dir(&dir));
//! let webhook = manager::add(&manager, server, "127.0.0.1:0".parse()?)?;
//!
//! let stop = manager.shutdown_token();
//! let running = tokio::spawn({
//!     let manager = manager.clone();
//!     async move { manager.run().await }
//! });
//! let addr = webhook.local_addr().await; // once it serves
//! println!("webhooks on https://{addr}");
//! stop.cancel();
//! running.await??;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Certificates rotated and injected in the manager
//!
//! The [`Rotator`](crate::certs::Rotator) and the [`Injector`](crate::inject::Injector) are
//! plain futures; run them as runnables beside the server. This is for a webhook with **one
//! replica**: a `Rotator` makes its own CA, so on two or more replicas each would serve
//! certificates of a different CA while the `caBundle` holds only one, and calls reaching the
//! others would fail TLS verification.
//!
//! ```no_run
//! # async fn run(manager: kdev_core::manager::Manager) -> Result<(), Box<dyn std::error::Error>> {
//! use kdev_webhook::certs::{Rotator, Settings};
//! use kdev_webhook::inject::Injector;
//!
//! let rotator = Rotator::new(Settings::for_service("operators", "my-webhook"), "/tmp/serving-certs")?;
//! let injector = Injector::new(manager.client().clone()).validating("my-operator");
//! let bundles = rotator.subscribe();
//! manager.add_runnable("certificate-rotator", false, move |stop| async move {
//!     rotator.run(stop).await;
//!     Ok(())
//! });
//! // The one replica injects its own CA.
//! manager.add_runnable("ca-injector", false, move |stop| async move {
//!     injector.run(bundles, stop).await;
//!     Ok(())
//! });
//! # Ok(()) }
//! ```
//!
//! With several replicas, every replica must serve a certificate of the CA in the `caBundle`.
//! A [`SharedRotator`](crate::certs::SharedRotator) keeps one bundle for all of them in a
//! Secret (created by the first replica, renewed by whichever finds it due, adopted by the
//! others within a minute); run it in place of the `Rotator`, on every replica, leader or not:
//!
//! ```no_run
//! # async fn run(manager: kdev_core::manager::Manager) -> Result<(), Box<dyn std::error::Error>> {
//! use kdev_webhook::certs::{Settings, SharedRotator};
//! use kdev_webhook::inject::Injector;
//!
//! let settings = Settings::for_service("operators", "my-webhook");
//! let client = manager.client().clone();
//! let rotator = SharedRotator::new(client, "operators", "my-webhook-certs", settings, "/tmp/serving-certs").await?;
//! let injector = Injector::new(manager.client().clone()).validating("my-operator");
//! let bundles = rotator.subscribe();
//! manager.add_runnable("certificate-rotator", false, move |stop| async move {
//!     rotator.run(stop).await;
//!     Ok(())
//! });
//! manager.add_runnable("ca-injector", false, move |stop| async move {
//!     injector.run(bundles, stop).await;
//!     Ok(())
//! });
//! # Ok(()) }
//! ```
//!
//! Or mount a certificate issued outside the pods (cert-manager's `Certificate` Secret,
//! cainjector filling the `caBundle`) at the certificate directory and serve it with
//! [`ServingCert::from_dir`](crate::tls::ServingCert::from_dir), which reloads it when the kubelet
//! updates the Secret; run no rotator:
//!
//! ```no_run
//! # async fn run(manager: kdev_core::manager::Manager) -> Result<(), Box<dyn std::error::Error>> {
//! use kdev_webhook::admission::{Request, Response};
//! use kdev_webhook::{Server, manager, tls::ServingCert};
//!
//! // The Secret of a cert-manager Certificate (tls.crt, tls.key, ca.crt), mounted read-only.
//! let server = Server::builder()
//!     .raw("/allow", |_req: Request| async { Response::allowed() })
//!     .tls(ServingCert::from_dir("/tmp/k8s-webhook-server/serving-certs"));
//! manager::add(&manager, server, "0.0.0.0:9443".parse()?)?;
//! # Ok(()) }
//! ```
//!
//! # The metrics listener's certificate
//!
//! The manager serves `/metrics` over TLS with any rustls configuration
//! (`ManagerBuilder::metrics_tls`). [`ServingCert::server_config`](crate::tls::ServingCert::server_config)
//! makes one from certificate files, and [`add_reloader`] keeps it current in the manager, as
//! controller-runtime's metrics server watches its `CertDir`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;
use kdev_core::manager::{BoxError, Manager};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::server::{self, Builder};

/// The name of the runnable the server runs as.
pub const RUNNABLE_NAME: &str = "webhook-server";
/// The name of its readiness check.
pub const READY_CHECK_NAME: &str = "webhook";

/// A handle on the webhook server a manager runs; its readiness is controller-runtime's
/// `StartedChecker`.
#[doc(alias = "StartedChecker")]
#[derive(Debug, Clone)]
pub struct Webhook {
    started: Arc<AtomicBool>,
    addr: watch::Receiver<Option<SocketAddr>>,
}

impl Webhook {
    /// Whether the server is serving (the readiness check's answer).
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// The address the server listens on, once it is serving (useful with port 0). Waits for
    /// the manager to start it; returns at once after.
    ///
    /// # Caveats
    /// Pends for ever if the manager never runs the server, or once it has stopped.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn local_addr(&self) -> SocketAddr {
        let mut addr = self.addr.clone();
        loop {
            if let Some(a) = *addr.borrow_and_update()
                && self.started()
            {
                return a;
            }
            if addr.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Adds the server `builder` builds to `manager`, listening on `addr`: the webhook metrics are
/// registered in the manager's registry, the readiness check [`READY_CHECK_NAME`] is added, and
/// the runnable [`RUNNABLE_NAME`] is started on every replica when the manager runs.
///
/// Call it once per manager; for a second server, register the metrics once and use
/// [`add_with_metrics`].
///
/// # Errors
/// The builder's [`server::Error`]. Binding and loading the certificate happen when the manager
/// runs; their failure stops the manager with the runnable's error.
pub fn add(manager: &Manager, builder: Builder, addr: SocketAddr) -> Result<Webhook, server::Error> {
    let metrics = Metrics::register(&mut manager.registry());
    add_with_metrics(manager, builder, addr, &metrics)
}

/// [`add`], reporting into `metrics` (registered already in the manager's registry).
///
/// # Errors
/// As [`add`].
pub fn add_with_metrics(
    manager: &Manager,
    builder: Builder,
    addr: SocketAddr,
    metrics: &Metrics,
) -> Result<Webhook, server::Error> {
    let server = builder.metrics(metrics).build()?;
    let started = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = watch::channel(None);
    let check = started.clone();
    manager.add_ready_check(READY_CHECK_NAME, move || {
        if check.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("the webhook server is not serving yet".to_string())
        }
    });
    let flag = started.clone();
    manager.add_runnable(RUNNABLE_NAME, false, move |stop| async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| server::Error::Bind { addr, source })?;
        addr_tx.send_replace(listener.local_addr().ok());
        // The server polls its connections only once its certificate has loaded: the first poll
        // marks it serving.
        let mark = flag.clone();
        let incoming = futures::stream::once(async move {
            mark.store(true, Ordering::Release);
            addr_tx.send_modify(|_| {});
        })
        .filter_map(|()| async { None })
        .chain(server::tcp_incoming(listener));
        let result = server
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await;
        flag.store(false, Ordering::Release);
        result.map_err(BoxError::from)
    });
    Ok(Webhook { started, addr: addr_rx })
}

/// Runs `reloader` as a runnable of `manager` named `name` (on every replica, until the manager
/// stops), so that the certificate of a [`ServingCert::server_config`](crate::tls::ServingCert::server_config)
/// — say, the metrics listener's — follows its files.
pub fn add_reloader(manager: &Manager, name: &str, reloader: crate::tls::Reloader) {
    manager.add_runnable(name, false, move |stop| async move {
        tokio::select! {
            () = reloader.run() => {}
            () = stop.cancelled() => {}
        }
        Ok(())
    });
}
