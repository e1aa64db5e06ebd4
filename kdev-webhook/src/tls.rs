//! The serving certificate: PEM in memory or in files reloaded when they change, as
//! controller-runtime's `certwatcher` (`pkg/certwatcher`): a file watch on the files'
//! directories plus a periodic poll. And which clients may connect: [`ClientAuth`] verifies
//! client certificates (mutual TLS).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::metrics::CertMetrics;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a PEM file failed.
    #[error("reading {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate PEM holds no certificate or is not PEM.
    #[error("parsing the certificate chain failed")]
    Certificate(#[source] rustls::pki_types::pem::Error),
    /// The certificate PEM holds no certificate.
    #[error("the certificate PEM holds no certificate")]
    NoCertificate,
    /// The key PEM holds no private key or is not PEM.
    #[error("parsing the private key failed")]
    Key(#[source] rustls::pki_types::pem::Error),
    /// rustls rejected the key, or the key does not match the certificate.
    #[error("the private key is unusable with the certificate")]
    Rustls(#[source] rustls::Error),
    /// A client CA certificate is unusable as a trust anchor.
    #[error("the client CA certificate is unusable")]
    ClientCa(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which clients the server accepts over TLS: only those presenting a certificate signed by a
/// CA (mutual TLS), as controller-runtime's webhook server does when `ClientCAName` is set
/// (`tls.RequireAndVerifyClientCert`). Without one, any client may connect, as kube-apiserver's
/// calls normally arrive: the webhook trusts the network path and the review.
///
/// kube-apiserver presents a client certificate to an **admission** webhook when its admission
/// configuration gives it one for that webhook's host (`--admission-control-config-file`, a
/// `kubeConfigFile` with a `client-certificate` per host). It never presents one to a CRD
/// **conversion** webhook, so a server with conversion paths refuses client authentication
/// ([`Error::ClientAuthWithConversion`](crate::server::Error::ClientAuthWithConversion)).
///
/// With TLS 1.2 a client without an acceptable certificate fails the handshake; with TLS 1.3 its
/// handshake completes on its side and the server's refusal arrives as an alert on its first
/// read, so the first request fails. The CA is read once, when it is built.
///
/// # Examples
/// ```no_run
/// # fn run(tls: kdev_webhook::tls::ServingCert) -> Result<(), Box<dyn std::error::Error>> {
/// use kdev_webhook::Server;
/// use kdev_webhook::tls::ClientAuth;
///
/// let ca = std::fs::read("/etc/webhook/client-ca.crt")?;
/// let server = Server::builder()
///     .tls(tls)
///     .client_auth(ClientAuth::required(&ca)?)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth").finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Every client must present a certificate signed by a CA of `ca_pem` (one or more PEM
    /// certificates).
    ///
    /// # Errors
    /// [`Error::NoCertificate`] when the PEM holds no certificate; [`Error::Certificate`] when
    /// it is not PEM; [`Error::ClientCa`] when a certificate cannot be a trust anchor.
    pub fn required(ca_pem: &[u8]) -> Result<ClientAuth, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(cert.map_err(Error::Certificate)?)
                .map_err(|e| Error::ClientCa(e.into()))?;
        }
        if roots.is_empty() {
            return Err(Error::NoCertificate);
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::ClientCa(e.into()))?;
        Ok(ClientAuth { verifier })
    }
}

/// Where the server's certificate and key come from.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use kdev_webhook::tls::ServingCert;
///
/// // The files a Secret mounts; a renewed Secret is picked up within 10 s.
/// let cert = ServingCert::from_files("/tmp/k8s-webhook-server/serving-certs/tls.crt",
///                                    "/tmp/k8s-webhook-server/serving-certs/tls.key")
///     .poll_interval(Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct ServingCert {
    source: Source,
    metrics: Option<CertMetrics>,
}

#[derive(Clone)]
enum Source {
    Pem(Arc<CertifiedKey>),
    Files {
        cert: PathBuf,
        key: PathBuf,
        poll: Duration,
    },
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Pem(_) => f.debug_struct("ServingCert").field("source", &"memory").finish(),
            Source::Files { cert, key, poll } => f
                .debug_struct("ServingCert")
                .field("cert", cert)
                .field("key", key)
                .field("poll", poll)
                .finish(),
        }
    }
}

impl ServingCert {
    /// A fixed certificate chain and key, PEM-encoded (the key PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// When the PEM does not parse or the key does not fit the certificate.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<ServingCert, Error> {
        Ok(ServingCert {
            source: Source::Pem(Arc::new(certified_key(cert_chain_pem, key_pem)?)),
            metrics: None,
        })
    }

    /// The serving certificate and key of a [`certs::Bundle`](crate::certs::Bundle), such as
    /// [`certs::Settings::generate`](crate::certs::Settings::generate) makes (fixed: for a
    /// certificate that rotates, serve the rotator's files with [`from_files`](Self::from_files)).
    ///
    /// # Errors
    /// As [`from_pem`](Self::from_pem).
    pub fn from_bundle(bundle: &crate::certs::Bundle) -> Result<ServingCert, Error> {
        Self::from_pem(bundle.cert_pem().as_bytes(), bundle.key_pem().as_bytes())
    }

    /// The certificate chain and key in PEM files (controller-runtime's `tls.crt` and `tls.key`),
    /// read when the server starts and re-read when they change: the directories holding them
    /// are watched (inotify, kqueue or FSEvents), and the files are also re-read every
    /// [`poll_interval`](Self::poll_interval) (default 10 s, as controller-runtime's
    /// certwatcher) in case an event is missed or the platform cannot watch.
    ///
    /// Watching the directory rather than the files catches every way a file is replaced:
    /// written in place, renamed over, or — as kubelet updates a Secret volume — reached
    /// through a `..data` symlink that is swapped to a new directory.
    ///
    /// A changed pair that parses replaces the served certificate for new handshakes;
    /// connections already open keep going. A pair that does not parse (say, a half-written
    /// renewal, or a new certificate whose key has not been written yet) is logged and the
    /// previous certificate kept until the next change.
    pub fn from_files(cert_chain_pem: impl AsRef<Path>, key_pem: impl AsRef<Path>) -> ServingCert {
        ServingCert {
            source: Source::Files {
                cert: cert_chain_pem.as_ref().to_path_buf(),
                key: key_pem.as_ref().to_path_buf(),
                poll: Duration::from_secs(10),
            },
            metrics: None,
        }
    }

    /// `tls.crt` and `tls.key` in `dir`: what [`certs::Rotator`](crate::certs::Rotator),
    /// [`certs::SharedRotator`](crate::certs::SharedRotator) and cert-manager's Secrets provide
    /// (controller-runtime's `CertDir`).
    pub fn from_dir(dir: impl AsRef<Path>) -> ServingCert {
        let dir = dir.as_ref();
        ServingCert::from_files(dir.join("tls.crt"), dir.join("tls.key"))
    }

    /// How often files are re-read (no effect on an in-memory certificate).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> ServingCert {
        if let Source::Files { poll, .. } = &mut self.source {
            *poll = every;
        }
        self
    }

    /// Counts the reads of the files into `metrics`' `certwatcher_*` counters.
    pub(crate) fn with_metrics(mut self, metrics: &crate::metrics::Metrics) -> ServingCert {
        self.metrics = Some(metrics.cert_metrics());
        self
    }

    /// A rustls server configuration serving this certificate (ring provider, TLS 1.2 and 1.3,
    /// ALPN `http/1.1`, no client certificates), for a TLS server other than the webhook server:
    /// the manager's metrics listener
    /// ([`ManagerBuilder::metrics_tls`](https://docs.rs/kdev-core/latest/kdev_core/manager/struct.ManagerBuilder.html#method.metrics_tls),
    /// controller-runtime's metrics server with a `CertDir`), or your own. The certificate is
    /// read now; for files, run the [`Reloader`] that comes with it to serve renewals on new
    /// connections, as the webhook server does.
    ///
    /// # Errors
    /// When the certificate cannot be read or does not parse, as when a server starts.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use kdev_core::manager::Manager;
    /// use kdev_core::manager::auth::DelegatingAuth;
    /// use kdev_webhook::tls::ServingCert;
    ///
    /// // The Secret cert-manager keeps current, mounted as kubebuilder mounts it.
    /// let (tls, reloader) = ServingCert::from_dir("/tmp/k8s-metrics-server/metrics-certs").server_config().await?;
    /// let manager = Manager::builder(client.clone())
    ///     .metrics_addr("0.0.0.0:8443".parse()?)
    ///     .metrics_tls(tls)
    ///     .metrics_auth(DelegatingAuth::new(client))
    ///     .build();
    /// kdev_webhook::manager::add_reloader(&manager, "metrics-certificate", reloader);
    /// manager.run().await?;
    /// # Ok(()) }
    /// ```
    pub async fn server_config(&self) -> Result<(Arc<rustls::ServerConfig>, Reloader), Error> {
        let (resolver, watcher) = self.load().await?;
        Ok((resolver.server_config(None)?, Reloader { watcher }))
    }

    /// Loads the certificate now, returning the resolver the server installs and, for files,
    /// the watcher that keeps it current.
    pub(crate) async fn load(&self) -> Result<(Arc<Resolver>, Option<Watcher>), Error> {
        match &self.source {
            Source::Pem(key) => Ok((Arc::new(Resolver::new(key.clone())), None)),
            Source::Files { cert, key, poll } => {
                let loaded = async {
                    let (cert_pem, key_pem) = read_pair(cert, key).await?;
                    let certified = certified_key(&cert_pem, &key_pem)?;
                    Ok::<_, Error>((cert_pem, key_pem, certified))
                }
                .await;
                if let Some(m) = &self.metrics {
                    m.read(loaded.is_ok());
                }
                let (cert_pem, key_pem, certified) = loaded?;
                let resolver = Arc::new(Resolver::new(Arc::new(certified)));
                let watcher = Watcher {
                    resolver: resolver.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    poll: *poll,
                    last: (cert_pem, key_pem),
                    metrics: self.metrics.clone(),
                };
                Ok((resolver, Some(watcher)))
            }
        }
    }
}

async fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| Error::Read { path, source })
        }
    };
    Ok((read(cert).await?, read(key).await?))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, Error> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Certificate)?;
    if chain.is_empty() {
        return Err(Error::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(Error::Key)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(Error::Rustls)
}

/// The rustls certificate resolver: every handshake reads the current certificate from a slot
/// the watcher swaps atomically.
pub(crate) struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    fn new(key: Arc<CertifiedKey>) -> Resolver {
        Resolver {
            current: RwLock::new(key),
        }
    }

    /// A rustls server configuration on the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`,
    /// verifying clients by `client_auth` when given.
    pub(crate) fn server_config(
        self: &Arc<Self>,
        client_auth: Option<&ClientAuth>,
    ) -> Result<Arc<rustls::ServerConfig>, Error> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(Error::Rustls)?;
        let builder = match client_auth {
            Some(auth) => builder.with_client_cert_verifier(auth.verifier.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Keeps the certificate of a [`ServingCert::server_config`] current: [`run`](Self::run) it for
/// as long as the configuration serves.
#[must_use = "a certificate from files is reloaded only while the reloader runs"]
pub struct Reloader {
    watcher: Option<Watcher>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("files", &self.watcher.as_ref().map(|w| (&w.cert, &w.key)))
            .finish()
    }
}

impl Reloader {
    /// Watches the files (and re-reads them every poll interval) and serves each renewal that
    /// parses on new connections, until dropped; for a certificate in memory, waits forever.
    ///
    /// # Cancel safety
    /// Cancel safe: a certificate is swapped whole or not at all.
    pub async fn run(self) {
        match self.watcher {
            Some(w) => w.run().await,
            None => std::future::pending().await,
        }
    }
}

/// Re-reads the PEM files and swaps the resolver's certificate when they change.
pub(crate) struct Watcher {
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
    poll: Duration,
    last: (Vec<u8>, Vec<u8>),
    metrics: Option<CertMetrics>,
}

impl Watcher {
    /// Watches and polls forever; the server drops this future when it stops, which stops the
    /// file watch too.
    ///
    /// # Cancel safety
    /// Cancel safe: a certificate is swapped whole or not at all.
    pub(crate) async fn run(mut self) {
        let changed = Arc::new(tokio::sync::Notify::new());
        // Kept alive for as long as this future: dropping it ends the watch.
        let _watch = self.watch(changed.clone());
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = changed.notified() => {
                    // Let a burst of events (a key and a certificate renamed in turn, a symlink
                    // swap) settle, then read once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            self.check().await;
        }
    }

    /// Watches the directories of the certificate and key; each change in them wakes `changed`.
    /// `None` (polling only) when the platform's watcher cannot start.
    fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher as _;
        use notify::event::{AccessKind, AccessMode, EventKind};

        let handler = move |event: notify::Result<notify::Event>| match event {
            // Reads (ours included) are not changes; a closed write is.
            Ok(e) if matches!(e.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) => {}
            Ok(_) => changed.notify_one(),
            // An overflowed queue may hide a change.
            Err(_) => changed.notify_one(),
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "cannot watch the certificate files; polling only"
                );
                return None;
            }
        };
        let mut dirs: Vec<&Path> = [&self.cert, &self.key]
            .iter()
            .map(|p| {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
            })
            .collect();
        dirs.dedup();
        for dir in dirs {
            if let Err(err) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    dir = %dir.display(),
                    "cannot watch the certificate directory; polling only"
                );
            }
        }
        Some(watcher)
    }

    fn count(&self, ok: bool) {
        if let Some(m) = &self.metrics {
            m.read(ok);
        }
    }

    async fn check(&mut self) {
        let pair = match read_pair(&self.cert, &self.key).await {
            Ok(pair) => pair,
            Err(err) => {
                self.count(false);
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "re-reading the serving certificate failed"
                );
                return;
            }
        };
        if pair == self.last {
            self.count(true);
            return;
        }
        match certified_key(&pair.0, &pair.1) {
            Ok(key) => {
                self.count(true);
                *self.resolver.current.write() = Arc::new(key);
                self.last = pair;
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
            }
            Err(err) => {
                self.count(false);
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "the changed serving certificate does not load; keeping the previous one"
                );
            }
        }
    }
}
