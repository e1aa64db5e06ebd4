//! The webhook server: HTTPS (rustls, TLS 1.2+) with one path per webhook, as
//! controller-runtime's `webhook.Server` (`pkg/webhook/server.go`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http::header;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Defaulter, Endpoint, Handler, Validator};
use crate::admission::{Mutating, Raw, Validating};
use crate::config::{Kind, Registered};
use crate::tls::{self, ClientAuth, ServingCert};
use crate::wire::{self, Rejection};

mod call;
mod idle;

pub use call::InProcess;

/// Why the server could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path does not start with `/`.
    #[error("webhook path {path:?} does not start with '/'")]
    InvalidPath {
        /// The path.
        path: String,
    },
    /// Client authentication was asked of a server with conversion paths: kube-apiserver
    /// presents no client certificate to conversion webhooks, so every conversion would fail.
    /// Serve conversions from a server of their own.
    #[error("client certificates are required, but kube-apiserver presents none to the conversion webhook at {path}")]
    ClientAuthWithConversion {
        /// A conversion path.
        path: String,
    },
    /// Two webhooks were registered at one path.
    #[error("two webhooks are registered at {path}")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// No certificate was given: webhooks are only ever called over HTTPS.
    #[error("no serving certificate: call Builder::tls")]
    NoCertificate,
    /// Loading the certificate failed.
    #[error("loading the serving certificate failed")]
    Tls(#[from] tls::Error),
    /// Binding the listen address failed.
    #[error("binding {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Limits and timeouts. The defaults suit a webhook called by kube-apiserver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest AdmissionReview body accepted; larger ones get HTTP 413. Default 7 MiB, as
    /// controller-runtime's admission webhook: an UPDATE review carries both `object` and
    /// `oldObject`, each up to kube-apiserver's 3 MiB request limit, plus the review around them.
    pub max_body_size: usize,
    /// Largest ConversionReview body accepted at a [conversion](Builder::conversion) path;
    /// larger ones get HTTP 413. Default 64 MiB: kube-apiserver sends every object of a list
    /// that needs converting (a `kubectl get` of all custom resources of a kind, an informer's
    /// list) in one ConversionReview, so it is bounded by the size of the list, not of one object.
    pub max_conversion_body_size: usize,
    /// Time allowed for the TLS handshake, for a request's headers (from the end of the handshake
    /// for a connection's first request, from the first byte for a later one) and for its body
    /// (default 30 s, the longest `timeoutSeconds` a webhook configuration may set).
    pub read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request before the server closes
    /// it (default 120 s). Keep it above the client's own idle timeout — kube-apiserver's Go
    /// transport closes connections idle for 90 s — so that the client always closes first: a
    /// request sent on a connection the server is closing fails with EOF, and kube-apiserver
    /// does not retry a webhook POST.
    pub idle_timeout: Duration,
    /// How long a graceful shutdown waits for requests in flight before closing their
    /// connections (default 30 s).
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_size: 7 * 1024 * 1024,
            max_conversion_body_size: 64 * 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds a [`Server`]: webhooks by path, the certificate and limits.
#[must_use]
pub struct Builder {
    routes: HashMap<String, Route>,
    error: Option<Error>,
    cert: Option<ServingCert>,
    client_auth: Option<ClientAuth>,
    config: Config,
    registered: Vec<Registered>,
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("paths", &self.routes.keys().collect::<Vec<_>>())
            .field("cert", &self.cert)
            .field("client_auth", &self.client_auth)
            .field("config", &self.config)
            .finish()
    }
}

/// The path controller-runtime (and kubebuilder's generated manifests) give the validating
/// webhook of `K`: `/validate-<group with dots as dashes>-<version>-<lowercased kind>`, e.g.
/// `/validate-batch-tutorial-kubebuilder-io-v1-cronjob`, or `/validate--v1-pod` for the core
/// group. Use it to keep the paths of a port from Go.
///
/// ```
/// use k8s_openapi::api::apps::v1::Deployment;
/// use k8s_openapi::api::core::v1::Pod;
///
/// assert_eq!(kdev_webhook::server::validate_path::<Deployment>(), "/validate-apps-v1-deployment");
/// assert_eq!(kdev_webhook::server::validate_path::<Pod>(), "/validate--v1-pod");
/// ```
pub fn validate_path<K>() -> String
where
    K: kube_core::Resource,
    K::DynamicType: Default,
{
    generated_path::<K>("validate")
}

/// The path controller-runtime gives the mutating (defaulting) webhook of `K`:
/// `/mutate-<group with dots as dashes>-<version>-<lowercased kind>`; see [`validate_path`].
///
/// ```
/// use k8s_openapi::api::apps::v1::Deployment;
///
/// assert_eq!(kdev_webhook::server::mutate_path::<Deployment>(), "/mutate-apps-v1-deployment");
/// ```
pub fn mutate_path<K>() -> String
where
    K: kube_core::Resource,
    K::DynamicType: Default,
{
    generated_path::<K>("mutate")
}

fn generated_path<K>(prefix: &str) -> String
where
    K: kube_core::Resource,
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    format!(
        "/{prefix}-{}-{}-{}",
        K::group(&dt).replace('.', "-"),
        K::version(&dt),
        K::kind(&dt).to_lowercase()
    )
}

impl Builder {
    fn route(mut self, path: &str, endpoint: Route) -> Self {
        if self.error.is_none() {
            if !path.starts_with('/') {
                self.error = Some(Error::InvalidPath { path: path.to_string() });
            } else if self.routes.insert(path.to_string(), endpoint).is_some() {
                self.error = Some(Error::DuplicatePath { path: path.to_string() });
            }
        }
        self
    }

    /// Serves a typed [`Validator`] of `K` at `path` ([`validate_path::<K>()`](validate_path)
    /// is controller-runtime's choice).
    ///
    /// `K`'s group, version and plural become the webhook's rule in the generated
    /// [configuration](crate::config).
    pub fn validating<K, V>(mut self, path: &str, validator: V) -> Self
    where
        K: DeserializeOwned + kube_core::Resource + Send + Sync + 'static,
        K::DynamicType: Default,
        V: Validator<K>,
    {
        self.registered.push(Registered::typed::<K>(path, Kind::Validating));
        let endpoint = Validating {
            validator,
            _kind: std::marker::PhantomData::<fn() -> K>,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves a typed [`Defaulter`] of `K` at `path` ([`mutate_path::<K>()`](mutate_path) is
    /// controller-runtime's choice).
    ///
    /// `K`'s group, version and plural become the webhook's rule in the generated
    /// [configuration](crate::config).
    pub fn mutating<K, D>(mut self, path: &str, defaulter: D) -> Self
    where
        K: DeserializeOwned + Serialize + kube_core::Resource + Send + Sync + 'static,
        K::DynamicType: Default,
        D: Defaulter<K>,
    {
        self.registered.push(Registered::typed::<K>(path, Kind::Mutating));
        let endpoint = Mutating {
            defaulter,
            _kind: std::marker::PhantomData::<fn() -> K>,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves a typed [`Validator`] of a `K` that is not a static `kube::Resource` at `path`:
    /// a `DynamicObject`, a `serde_json::Value`, or a partial struct decoding only the fields
    /// it checks. Its generated [configuration](crate::config) needs a
    /// [`Webhook::rule`](crate::config::Webhook::rule).
    pub fn validating_dynamic<K, V>(mut self, path: &str, validator: V) -> Self
    where
        K: DeserializeOwned + Send + Sync + 'static,
        V: Validator<K>,
    {
        self.registered.push(Registered::untyped(path, Kind::Validating));
        let endpoint = Validating {
            validator,
            _kind: std::marker::PhantomData::<fn() -> K>,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves a typed [`Defaulter`] of a `K` that is not a static `kube::Resource` at `path`,
    /// as [`validating_dynamic`](Self::validating_dynamic).
    pub fn mutating_dynamic<K, D>(mut self, path: &str, defaulter: D) -> Self
    where
        K: DeserializeOwned + Serialize + Send + Sync + 'static,
        D: Defaulter<K>,
    {
        self.registered.push(Registered::untyped(path, Kind::Mutating));
        let endpoint = Mutating {
            defaulter,
            _kind: std::marker::PhantomData::<fn() -> K>,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves a raw admission [`Handler`] of a validating webhook at `path`.
    ///
    /// A validating webhook may not patch. The handler's response is sent as it returned it, as
    /// controller-runtime does, and one with a `patch` (or `patchType`) is logged as a warning:
    /// kube-apiserver counts such a response as a failed call ("validating webhook may not
    /// return response.patch"), so under `failurePolicy: Fail` it refuses the request with an
    /// internal error and under `Ignore` it admits it. Serve a handler that patches with
    /// [`raw_mutating`](Self::raw_mutating). Its generated [configuration](crate::config) needs
    /// a [`Webhook::rule`](crate::config::Webhook::rule).
    pub fn raw<H: Handler>(mut self, path: &str, handler: H) -> Self {
        self.registered.push(Registered::untyped(path, Kind::Raw));
        let endpoint = Raw {
            handler,
            mutating: false,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves a raw admission [`Handler`] of a mutating webhook at `path`: its responses may
    /// carry a JSON patch, and one whose `patch` is set is sent with `patchType: JSONPatch`
    /// whatever the handler put there. It goes into the MutatingWebhookConfiguration
    /// ([`Kind::Mutating`]); its generated [configuration](crate::config) needs a
    /// [`Webhook::rule`](crate::config::Webhook::rule).
    pub fn raw_mutating<H: Handler>(mut self, path: &str, handler: H) -> Self {
        self.registered.push(Registered::untyped(path, Kind::Mutating));
        let endpoint = Raw {
            handler,
            mutating: true,
        };
        self.route(path, Route::Admission(Arc::new(endpoint)))
    }

    /// Serves CRD conversion at `path`: every object of a ConversionReview converted into the
    /// desired version by `converter`, usually a kdev-crd
    /// [`Converter`](kdev_crd::conversion::Converter) (see [`conversion`](crate::conversion)).
    #[cfg(feature = "conversion")]
    pub fn conversion<C: crate::conversion::Convert>(mut self, path: &str, converter: C) -> Self {
        let mut api_versions = converter.api_versions();
        api_versions.sort();
        let converts = crate::config::Converts {
            group: converter.group().to_string(),
            kind: converter.kind().to_string(),
            api_versions,
        };
        self.registered.push(Registered::conversion(path, converts));
        self.route(
            path,
            Route::Conversion(Arc::new(crate::conversion::Converting(Box::new(converter)))),
        )
    }

    /// The serving certificate (required).
    pub fn tls(mut self, cert: ServingCert) -> Self {
        self.cert = Some(cert);
        self
    }

    /// Accepts only clients presenting a certificate `auth`'s CA signed (mutual TLS); see
    /// [`ClientAuth`]. Default: any client may connect. [`build`](Self::build) refuses it on a
    /// server with [conversion](Self::conversion) paths.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Reports every webhook's requests, latency and requests in flight into `metrics`
    /// (see [`metrics`](crate::metrics)). Default: no metrics.
    pub fn metrics(mut self, metrics: &crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Sets the limits and timeouts.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the largest AdmissionReview body accepted ([`Config::max_body_size`]).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config.max_body_size = bytes;
        self
    }

    /// Sets the largest ConversionReview body accepted at conversion paths
    /// ([`Config::max_conversion_body_size`]).
    pub fn max_conversion_body_size(mut self, bytes: usize) -> Self {
        self.config.max_conversion_body_size = bytes;
        self
    }

    /// Sets the read timeout (handshake, headers, body; [`Config::read_timeout`]).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// Sets how long a kept-alive connection may wait for its next request
    /// ([`Config::idle_timeout`]).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Builds the server.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::DuplicatePath`], [`Error::NoCertificate`], or
    /// [`Error::ClientAuthWithConversion`].
    pub fn build(self) -> Result<Server, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        if self.client_auth.is_some()
            && let Some(conversion) = self.registered.iter().find(|r| r.kind == Kind::Conversion)
        {
            return Err(Error::ClientAuthWithConversion {
                path: conversion.path.clone(),
            });
        }
        let cert = self.cert.ok_or(Error::NoCertificate)?;
        let cert = match &self.metrics {
            Some(m) => cert.with_metrics(m),
            None => cert,
        };
        let metrics = match &self.metrics {
            Some(m) => self
                .routes
                .keys()
                .map(|path| (path.clone(), m.for_path(path)))
                .collect(),
            None => HashMap::new(),
        };
        Ok(Server {
            shared: Arc::new(Shared {
                routes: self.routes,
                config: self.config,
                metrics,
            }),
            cert,
            client_auth: self.client_auth,
            registered: self.registered,
        })
    }
}

/// An admission webhook server.
///
/// Nothing happens until one of the `serve*` futures is polled; dropping that future closes the
/// listener and every connection.
///
/// # Guarantees
/// 1. Every request gets an HTTP response: a handler's answer, a denied review (HTTP 200) when
///    the request's uid is readable, or an HTTP error (400, 404, 405, 408, 413, 415) otherwise.
///    A handler that panics gets a denied review with code 500; the connection stays open.
/// 2. Every response echoes the request's uid and apiVersion.
/// 3. A certificate reloaded from files serves new handshakes; open connections keep theirs.
pub struct Server {
    shared: Arc<Shared>,
    cert: ServingCert,
    client_auth: Option<ClientAuth>,
    registered: Vec<Registered>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("paths", &self.shared.routes.keys().collect::<Vec<_>>())
            .field("cert", &self.cert)
            .field("client_auth", &self.client_auth)
            .field("config", &self.shared.config)
            .finish()
    }
}

struct Shared {
    routes: HashMap<String, Route>,
    config: Config,
    /// Each path's metric handles, resolved at build (empty without metrics).
    metrics: HashMap<String, crate::metrics::PathMetrics>,
}

/// What serves a path.
#[derive(Clone)]
enum Route {
    /// An admission webhook (validating, mutating or raw).
    Admission(Arc<dyn Endpoint>),
    /// A conversion webhook.
    #[cfg(feature = "conversion")]
    Conversion(Arc<crate::conversion::Converting>),
}

/// A [`Server`] bound to a TCP address and not serving yet: [`Server::bind`].
///
/// Connections that arrive before a `serve*` call wait in the listen backlog.
#[derive(Debug)]
pub struct Bound {
    server: Server,
    listener: TcpListener,
    local: SocketAddr,
}

impl Bound {
    /// The address bound, with the port the system chose when the requested one was 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until an error, as [`Server::serve`].
    ///
    /// # Errors
    /// [`Error::Tls`] when the certificate does not load.
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with_shutdown(std::future::pending()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully, as
    /// [`Server::serve_with_shutdown`].
    ///
    /// # Errors
    /// [`Error::Tls`] when the certificate does not load.
    pub async fn serve_with_shutdown(self, signal: impl Future<Output = ()> + Send) -> Result<(), Error> {
        self.server
            .serve_with_incoming_shutdown(tcp_incoming(self.listener), signal)
            .await
    }
}

/// Accepted TCP connections of `listener` as a stream, for [`Server::serve_with_incoming`].
pub fn tcp_incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

impl Server {
    /// A builder with no webhooks and the default [`Config`].
    pub fn builder() -> Builder {
        Builder {
            routes: HashMap::new(),
            error: None,
            cert: None,
            client_auth: None,
            config: Config::default(),
            registered: Vec::new(),
            metrics: None,
        }
    }

    /// The webhooks this server serves, in registration order: what
    /// [`config::Configurations`](crate::config::Configurations) generates configurations from.
    pub fn webhooks(&self) -> &[Registered] {
        &self.registered
    }

    /// Serves on `addr` until an error.
    ///
    /// # Errors
    /// [`Error::Bind`] or [`Error::Tls`] when starting fails.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), Error> {
        self.serve_with_shutdown(addr, std::future::pending()).await
    }

    /// Serves on `addr` until `signal` completes (for example
    /// `token.cancelled_owned()`), then shuts down gracefully: no new connections, requests in
    /// flight finish within [`Config::shutdown_timeout`].
    ///
    /// # Errors
    /// [`Error::Bind`] or [`Error::Tls`] when starting fails.
    pub async fn serve_with_shutdown(
        self,
        addr: SocketAddr,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.bind(addr).await?.serve_with_shutdown(signal).await
    }

    /// Binds `addr` without serving yet, so the caller can read the address it got
    /// ([`Bound::local_addr`]), for example the port the system chose for `127.0.0.1:0`.
    ///
    /// ```no_run
    /// # async fn run(server: kdev_webhook::Server) -> Result<(), Box<dyn std::error::Error>> {
    /// let bound = server.bind("127.0.0.1:0".parse()?).await?;
    /// println!("serving on https://{}", bound.local_addr());
    /// bound.serve().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn bind(self, addr: SocketAddr) -> Result<Bound, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        Ok(Bound {
            server: self,
            listener,
            local,
        })
    }

    /// Serves the connections `incoming` yields (TCP, Unix sockets, in-memory pipes) until it
    /// ends. Errors it yields are logged and skipped.
    ///
    /// # Errors
    /// [`Error::Tls`] when the certificate does not load.
    pub async fn serve_with_incoming<I, IO, E>(self, incoming: I) -> Result<(), Error>
    where
        I: Stream<Item = Result<IO, E>> + Send,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.serve_with_incoming_shutdown(incoming, std::future::pending())
            .await
    }

    /// [`serve_with_incoming`](Self::serve_with_incoming) until `signal` completes, then a
    /// graceful shutdown as [`serve_with_shutdown`](Self::serve_with_shutdown).
    ///
    /// # Errors
    /// [`Error::Tls`] when the certificate does not load.
    pub async fn serve_with_incoming_shutdown<I, IO, E>(
        self,
        incoming: I,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error>
    where
        I: Stream<Item = Result<IO, E>> + Send,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (resolver, watcher) = self.cert.load().await?;
        let acceptor = TlsAcceptor::from(resolver.server_config(self.client_auth.as_ref())?);
        let watch = async move {
            match watcher {
                Some(w) => w.run().await,
                None => std::future::pending().await,
            }
        };
        let graceful = CancellationToken::new();
        let force = CancellationToken::new();
        let tracker = TaskTracker::new();
        // Dropping this future closes every connection it opened.
        let _close_on_drop = force.clone().drop_guard();
        let accept = async {
            let mut incoming = std::pin::pin!(incoming);
            while let Some(io) = incoming.next().await {
                match io {
                    Ok(io) => {
                        let conn = serve_connection(
                            io,
                            acceptor.clone(),
                            self.shared.clone(),
                            graceful.clone(),
                            force.clone(),
                        );
                        tracker.spawn(conn);
                    }
                    Err(err) => {
                        tracing::warn!(error = &err as &dyn std::error::Error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        };
        tokio::select! {
            () = accept => {}
            () = signal => {}
            () = watch => {}
        }
        // Stop intake, let requests in flight finish, then close what is left.
        tracker.close();
        graceful.cancel();
        if tokio::time::timeout(self.shared.config.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            force.cancel();
            tracker.wait().await;
        }
        Ok(())
    }
}

/// Serves one connection: TLS handshake, then HTTP/1.1 with keep-alive.
async fn serve_connection<IO>(
    io: IO,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    graceful: CancellationToken,
    force: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = shared.config.read_timeout;
    let idle_timeout = shared.config.idle_timeout;
    let stream = tokio::select! {
        () = graceful.cancelled() => return,
        () = force.cancelled() => return,
        s = tokio::time::timeout(read_timeout, acceptor.accept(io)) => match s {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(error = &err as &dyn std::error::Error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
    };
    // hyper's header_read_timeout would also time the wait for the next request on a kept-alive
    // connection, closing it after 30 s; `Activity` keeps the two timeouts apart.
    let activity = idle::Activity::new();
    let stream = idle::Watched::new(stream, activity.clone());
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            let serving = activity.serving();
            async move {
                let response = shared.handle(req).await;
                drop(serving);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let expired = activity.expired(read_timeout, idle_timeout);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = force.cancelled() => return,
        () = graceful.cancelled() => {}
        expiry = expired => match expiry {
            idle::Expiry::Head => {
                tracing::debug!("reading a request's headers timed out");
                return;
            }
            idle::Expiry::Idle => tracing::trace!("closing an idle keep-alive connection"),
        },
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        () = force.cancelled() => {}
    }
}

impl Shared {
    async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
        let in_flight = self.metrics.get(req.uri().path()).map(|m| m.start());
        let response = match self.admit(req).await {
            Ok(response) => response,
            Err(rejection) => rejection.into_http(),
        };
        if let Some(in_flight) = in_flight {
            in_flight.finish(response.status());
        }
        response
    }

    async fn admit(&self, req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Rejection> {
        let endpoint = self.routes.get(req.uri().path()).ok_or_else(|| Rejection::NotFound {
            path: req.uri().path().to_string(),
        })?;
        if req.method() != http::Method::POST {
            return Err(Rejection::MethodNotAllowed {
                method: req.method().clone(),
            });
        }
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let text = String::from_utf8_lossy(ct.as_bytes()).into_owned();
            let essence = text.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(Rejection::ContentType { content_type: text });
            }
        }
        let limit = self.body_limit(endpoint);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(Rejection::TooLarge { limit });
        }
        let body = Limited::new(req.into_body(), limit);
        let bytes = match tokio::time::timeout(self.config.read_timeout, body.collect()).await {
            Err(_) => return Err(Rejection::ReadTimeout),
            Ok(Err(err)) => {
                return Err(match err.downcast::<hyper::Error>() {
                    Ok(err) => Rejection::ReadBody(*err),
                    Err(_) => Rejection::TooLarge { limit },
                });
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        self.answer(endpoint, &bytes).await
    }

    /// The largest body `route` accepts.
    fn body_limit(&self, route: &Route) -> usize {
        match route {
            Route::Admission(_) => self.config.max_body_size,
            #[cfg(feature = "conversion")]
            Route::Conversion(_) => self.config.max_conversion_body_size,
        }
    }

    /// Answers the review in `body` with the webhook `route`.
    async fn answer(&self, route: &Route, body: &[u8]) -> Result<http::Response<Full<Bytes>>, Rejection> {
        match route {
            Route::Admission(endpoint) => Self::review(endpoint.as_ref(), body).await,
            #[cfg(feature = "conversion")]
            Route::Conversion(converting) => converting.answer(body),
        }
    }

    /// Answers the AdmissionReview in `body` with `endpoint`.
    async fn review(endpoint: &dyn Endpoint, body: &[u8]) -> Result<http::Response<Full<Bytes>>, Rejection> {
        let answer = endpoint.answer(body).await?;
        Ok(wire::review_as(&answer.api_version, answer.response))
    }
}
