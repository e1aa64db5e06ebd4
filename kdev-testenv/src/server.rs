//! The embedded API server: a loopback listener speaking HTTP/1.1 over TLS (or plain HTTP),
//! which can be stopped and restarted on the same port with its state kept.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::faults::{FaultState, Faults};
use crate::registry::Registry;
use crate::store::State;
use crate::tls::Certs;

/// How the embedded server is set up. Defaults suit tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:0`, a free port).
    pub addr: SocketAddr,
    /// Serve HTTPS with a generated CA (default) or plain HTTP.
    pub tls: bool,
    /// Events kept for watches to resume from (default 100,000; kube-apiserver's watch cache
    /// keeps between 100 and 102,400 per resource, and 75 s).
    pub history: usize,
    /// How often a watch with `allowWatchBookmarks` gets a bookmark (default 60 s, as kube-apiserver).
    pub bookmark_interval: Duration,
    /// Largest request body accepted (default 3 MiB, as kube-apiserver).
    pub max_body: usize,
    /// Where webhook `clientConfig.service` references lead: `(namespace, name, port)` to a local
    /// address (see [`Config::webhook_service`]).
    pub webhook_services: BTreeMap<(String, String, u16), SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            history: 100_000,
            bookmark_interval: Duration::from_secs(60),
            max_body: 3 * 1024 * 1024,
            webhook_services: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Sets the listen address.
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serves plain HTTP instead of HTTPS.
    #[must_use]
    pub fn plain_http(mut self) -> Self {
        self.tls = false;
        self
    }

    /// Sets the bookmark interval.
    #[must_use]
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Routes calls to the Service `namespace/name` on `port` (what an admission or conversion
    /// webhook's `clientConfig.service` names) to `addr`.
    ///
    /// kube-apiserver resolves a Service to a pod's address through the cluster network, which
    /// the embedded server does not have; this map stands in for it. The call still goes over
    /// HTTPS and the webhook's certificate is still verified against the `caBundle` for the DNS
    /// name `<name>.<namespace>.svc`, as kube-apiserver verifies it. A service reference that is
    /// not mapped fails the call (`services "<name>" not found`), which the webhook's
    /// `failurePolicy` then decides on.
    ///
    /// ```
    /// let addr: std::net::SocketAddr = "127.0.0.1:9443".parse().unwrap();
    /// let config = kdev_testenv::Config::default().webhook_service("webhooks", "pod-policy", 443, addr);
    /// assert_eq!(config.webhook_services.len(), 1);
    /// ```
    #[must_use]
    pub fn webhook_service(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        port: u16,
        addr: SocketAddr,
    ) -> Self {
        self.webhook_services
            .insert((namespace.into(), name.into(), port), addr);
        self
    }

    /// Sets how many events the history keeps.
    #[must_use]
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }
}

/// State shared by the listener, the handlers and the fault handle.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Mutex<FaultState>,
    /// Whether any fault is planned: requests skip the fault lock while it is false.
    pub(crate) faults_armed: std::sync::atomic::AtomicBool,
    pub(crate) config: Config,
    /// Cancelled when the server stops; open watches end with it.
    pub(crate) stopping: Mutex<CancellationToken>,
    /// A copy of the registry for the request path, so routing never takes the state lock.
    pub(crate) registry: parking_lot::RwLock<Arc<Registry>>,
    /// Raised by the state when the registry changes; the request path then refreshes `registry`.
    pub(crate) registry_changed: Arc<std::sync::atomic::AtomicBool>,
    /// Signs and verifies the ServiceAccount tokens the server issues.
    pub(crate) token_key: [u8; 32],
}

impl Shared {
    /// Refreshes the request path's copy of the registry if the state changed it.
    pub(crate) fn refresh_registry(&self) {
        if self.registry_changed.load(std::sync::atomic::Ordering::Acquire)
            && self.registry_changed.swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            let fresh = Arc::new(self.state.lock().registry.clone());
            *self.registry.write() = fresh;
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listen address failed.
    #[error("binding {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Making the certificates failed.
    #[error("setting up TLS failed")]
    Tls(#[from] crate::tls::Error),
}

struct Running {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// A running embedded API server. Dropping it stops the server.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    certs: Option<Certs>,
    tls: Option<Arc<rustls::ServerConfig>>,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Server {
    /// Starts a server with `config` on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address is taken, [`Error::Tls`] when certificates fail.
    pub async fn start(config: Config) -> Result<Server, Error> {
        let (certs, tls) = if config.tls {
            let certs = Certs::generate()?;
            let tls = certs.server_config()?;
            (Some(certs), Some(tls))
        } else {
            (None, None)
        };
        let listener = TcpListener::bind(config.addr).await.map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let mut state = State::new(Registry::builtin(), config.history);
        crate::handler::bootstrap(&mut state);
        let registry = parking_lot::RwLock::new(Arc::new(state.registry.clone()));
        let registry_changed = state.registry_changed();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: Mutex::new(FaultState::default()),
            faults_armed: std::sync::atomic::AtomicBool::new(false),
            config,
            stopping: Mutex::new(CancellationToken::new()),
            registry,
            registry_changed,
            token_key: crate::handler::auth::signing_key(),
        });
        let server = Server {
            shared,
            addr,
            certs,
            tls,
            running: Mutex::new(None),
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&self, listener: TcpListener) {
        let token = self.shared.stopping.lock().clone();
        let tracker = TaskTracker::new();
        let shared = self.shared.clone();
        let tls = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let (t, tr) = (token.clone(), tracker.clone());
        tracker.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = t.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let (shared, tls, t) = (shared.clone(), tls.clone(), t.clone());
                tr.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(crate::handler::handle(shared, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = (tokio::select! {
                                _ = t.cancelled() => return,
                                s = acceptor.accept(stream) => s,
                            }) else {
                                return;
                            };
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = t.cancelled() => {}, _ = conn => {} }
                        }
                        None => {
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = t.cancelled() => {}, _ = conn => {} }
                        }
                    }
                });
            }
        });
        tracker.close();
        *self.running.lock() = Some(Running { token, tracker });
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` for plain HTTP).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls.is_some() { "https" } else { "http" }, self.addr)
    }

    /// The CA certificate (PEM) clients must trust; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.certs.as_ref().map(|c| c.ca_pem.as_str())
    }

    /// A kubeconfig (YAML) for this server, with context `kdev-testenv`.
    pub fn kubeconfig(&self) -> String {
        crate::kubeconfig::render(&self.url(), self.ca_pem())
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: Some(self.shared.clone()),
        }
    }

    /// Stops serving: closes the listener and every connection (open watches end), as a crash
    /// would. The stored objects are kept.
    pub async fn stop(&self) {
        let running = self.running.lock().take();
        if let Some(r) = running {
            r.token.cancel();
            r.tracker.wait().await;
        }
    }

    /// Starts serving again on the same address, with the state kept.
    ///
    /// # Errors
    /// [`Error::Bind`] when the port has been taken meanwhile.
    pub async fn restart(&self) -> Result<(), Error> {
        self.stop().await;
        *self.shared.stopping.lock() = CancellationToken::new();
        self.shared.state.lock().drop_watches();
        let listener = TcpListener::bind(self.addr).await.map_err(|source| Error::Bind {
            addr: self.addr,
            source,
        })?;
        self.serve(listener);
        Ok(())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.lock().take() {
            r.token.cancel();
        }
    }
}
