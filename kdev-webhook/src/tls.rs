//! The serving certificate: PEM in memory or in files reloaded when they change, as
//! controller-runtime's `certwatcher` (`pkg/certwatcher`).

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
        })
    }

    /// The certificate chain and key in PEM files (controller-runtime's `tls.crt` and `tls.key`),
    /// read when the server starts and re-read every [`poll_interval`](Self::poll_interval)
    /// (default 10 s, as controller-runtime's certwatcher).
    ///
    /// A changed pair that parses replaces the served certificate for new handshakes;
    /// connections already open keep going. A pair that does not parse (say, a half-written
    /// renewal) is logged and the previous certificate kept.
    pub fn from_files(cert_chain_pem: impl AsRef<Path>, key_pem: impl AsRef<Path>) -> ServingCert {
        ServingCert {
            source: Source::Files {
                cert: cert_chain_pem.as_ref().to_path_buf(),
                key: key_pem.as_ref().to_path_buf(),
                poll: Duration::from_secs(10),
            },
        }
    }

    /// How often files are re-read (no effect on an in-memory certificate).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> ServingCert {
        if let Source::Files { poll, .. } = &mut self.source {
            *poll = every;
        }
        self
    }

    /// Loads the certificate now, returning the resolver the server installs and, for files,
    /// the watcher that keeps it current.
    pub(crate) async fn load(&self) -> Result<(Arc<Resolver>, Option<Watcher>), Error> {
        match &self.source {
            Source::Pem(key) => Ok((Arc::new(Resolver::new(key.clone())), None)),
            Source::Files { cert, key, poll } => {
                let (cert_pem, key_pem) = read_pair(cert, key).await?;
                let resolver = Arc::new(Resolver::new(Arc::new(certified_key(&cert_pem, &key_pem)?)));
                let watcher = Watcher {
                    resolver: resolver.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    poll: *poll,
                    last: (cert_pem, key_pem),
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

    /// A rustls server configuration on the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(Error::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Re-reads the PEM files and swaps the resolver's certificate when they change.
pub(crate) struct Watcher {
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
    poll: Duration,
    last: (Vec<u8>, Vec<u8>),
}

impl Watcher {
    /// Polls forever; the server drops this future when it stops.
    ///
    /// # Cancel safety
    /// Cancel safe: a certificate is swapped whole or not at all.
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.check().await;
        }
    }

    async fn check(&mut self) {
        let pair = match read_pair(&self.cert, &self.key).await {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "re-reading the serving certificate failed"
                );
                return;
            }
        };
        if pair == self.last {
            return;
        }
        match certified_key(&pair.0, &pair.1) {
            Ok(key) => {
                *self.resolver.current.write() = Arc::new(key);
                self.last = pair;
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
            }
            Err(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "the changed serving certificate does not load; keeping the previous one"
                );
            }
        }
    }
}
