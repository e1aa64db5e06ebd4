//! Self-signed serving certificates: a CA and a certificate for a Service's DNS names, written to
//! a certificate directory and renewed before they expire — what cert-manager's self-signed
//! issuer or controller-runtime users' cert-controller do
//! ([webhook TLS](https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#contacting-the-webhook)).
//!
//! The directory holds the files cert-manager and controller-runtime use: `tls.crt` (the serving
//! certificate), `tls.key` (its key), `ca.crt` (the CA bundle kube-apiserver must trust, the
//! `caBundle`), plus `ca.key`, the CA's key, so a restarted process keeps its CA. Each file is
//! written whole (a temporary file renamed over it), so the server's
//! [file reload](crate::tls::ServingCert::from_files) never reads half of one.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use kdev_webhook::certs::Settings;
//!
//! let settings = Settings::for_service("operators", "my-webhook").validity(Duration::from_secs(7 * 24 * 3600));
//! let bundle = settings.generate().unwrap();
//! assert!(bundle.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! # let dir = std::env::temp_dir().join(format!("kdev-certs-doc-{}", std::process::id()));
//! bundle.write(&dir).unwrap();
//! assert!(dir.join("tls.crt").exists() && dir.join("ca.crt").exists());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! # One replica or several
//!
//! | | keeps the bundle in | for |
//! |---|---|---|
//! | [`Rotator`] | its directory (`ca.key` beside the certificates) | a webhook served by one replica |
//! | [`SharedRotator`] | one Secret every replica reads, and a directory per replica | any number of replicas |
//!
//! Both renew the same way (the serving certificate at [`Settings::renew_at`] of its lifetime,
//! the CA in two phases), write the same files, and send every new bundle to subscribers, such
//! as [`Injector::run`](crate::inject::Injector::run).
//!
//! # Caveats
//! A [`Rotator`] is for a webhook served by **one replica**. Every replica must present a
//! certificate of a CA in the `caBundle`, and each `Rotator` makes and renews its own CA in its
//! own directory: with two or more replicas each running one, only the CA the injector saw is
//! trusted and calls reaching the other replicas fail TLS verification. Its directory cannot be
//! shared through a Secret volume either: a Secret volume is read-only, [`Bundle::write`]
//! rewrites every file (`ca.key` and `ca.crt` included), and each replica would renew the CA on
//! its own.
//!
//! For several replicas, use a [`SharedRotator`]: the bundle lives in one Secret, read through
//! the API by every replica and renewed by whichever finds it due, and each replica writes it to
//! its own directory. It needs `get`, `create` and `update` on Secrets (see its caveats for
//! RBAC), and it never overwrites a Secret of that name that does not hold a bundle of this
//! module. Or issue the certificate outside the pods and mount it read-only: cert-manager's
//! `Certificate` (its Secret mounted by every replica, cainjector filling the `caBundle`), served
//! with [`ServingCert::from_dir`](crate::tls::ServingCert::from_dir), which reloads it when the
//! kubelet swaps the Secret's files.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
use tokio::sync::watch;

mod ca;
mod shared;

use ca::{Ca, Trusted, backdated, datetime, renew_time};
pub use shared::SharedRotator;

/// The serving certificate's file name (and key in a [`SharedRotator`]'s Secret).
pub const CERT_FILE: &str = "tls.crt";
/// The serving key's file name (and key in a [`SharedRotator`]'s Secret).
pub const KEY_FILE: &str = "tls.key";
/// The CA bundle's file name (and key in a [`SharedRotator`]'s Secret).
pub const CA_FILE: &str = "ca.crt";
/// The CA key's file name (and key in a [`SharedRotator`]'s Secret): the key of the CA that
/// signs the serving certificate.
pub const CA_KEY_FILE: &str = "ca.key";
/// The key, in a [`SharedRotator`]'s Secret, of a CA published in `ca.crt` but not yet signing
/// (the first phase of a CA rollover), so that any replica can carry out the second phase. It is
/// never written to a certificate directory.
pub const CA_NEXT_KEY: &str = "ca-next.key";

/// controller-runtime's default certificate directory, `<tmp>/k8s-webhook-server/serving-certs`
/// (`webhook.Options.CertDir`).
///
/// ```
/// assert!(kdev_webhook::certs::default_dir().ends_with("k8s-webhook-server/serving-certs"));
/// ```
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("k8s-webhook-server").join("serving-certs")
}

/// The longest validity accepted: 100 years keeps every date within X.509's.
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// Why certificates could not be generated, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The settings cannot give a certificate (no name, an IP address given as a DNS name, a
    /// zero validity, a bad renewal point).
    #[error("invalid certificate settings: {reason}")]
    InvalidSettings {
        /// What is wrong.
        reason: String,
    },
    /// rcgen could not generate or sign a certificate.
    #[error("generating the {what} failed")]
    Generate {
        /// Which certificate or key.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate or key in the directory does not parse.
    #[error("parsing {path} failed")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading a file failed.
    #[error("reading {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("writing {path} failed")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading, creating or updating a [`SharedRotator`]'s Secret failed.
    #[error("{step} Secret {secret} failed")]
    Api {
        /// `reading`, `creating` or `updating`.
        step: &'static str,
        /// The Secret, `namespace/name`.
        secret: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// A value of a [`SharedRotator`]'s Secret does not parse. The Secret is left untouched.
    #[error("parsing {key} of Secret {secret} failed")]
    ParseSecret {
        /// The Secret, `namespace/name`.
        secret: String,
        /// The key whose value is wrong (`ca.crt` when it holds no certificate of `ca.key`).
        key: &'static str,
        /// What is wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A [`SharedRotator`]'s Secret has data but lacks a key of the bundle: it was made by
    /// something else. The Secret is left untouched.
    #[error("Secret {secret} has no {key}")]
    MissingKey {
        /// The Secret, `namespace/name`.
        secret: String,
        /// The missing key.
        key: &'static str,
    },
    /// A [`SharedRotator`]'s Secret kept changing between read and write.
    #[error(
        "Secret {secret} kept changing; gave up after {} conflicts",
        shared::CONFLICT_RETRIES
    )]
    Conflict {
        /// The Secret, `namespace/name`.
        secret: String,
    },
}

/// What to issue: names, validity and when to renew.
#[derive(Debug, Clone)]
#[must_use]
pub struct Settings {
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    validity: Duration,
    ca_validity: Duration,
    renew_at: f64,
    ca_overlap: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dns_names: Vec::new(),
            ips: Vec::new(),
            validity: Duration::from_secs(90 * 24 * 3600),
            ca_validity: Duration::from_secs(365 * 24 * 3600),
            renew_at: 2.0 / 3.0,
            ca_overlap: Duration::from_secs(3600),
        }
    }
}

impl Settings {
    /// A certificate for the Service `namespace/name`: `name`, `name.namespace`,
    /// `name.namespace.svc` and `name.namespace.svc.cluster.local`.
    pub fn for_service(namespace: &str, name: &str) -> Settings {
        Settings::default().dns_names([
            name.to_string(),
            format!("{name}.{namespace}"),
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
        ])
    }

    /// Adds DNS names. An IP address is not a DNS name (a TLS client checks it against the
    /// certificate's IP addresses only): add it with [`ip`](Self::ip); given here, it makes the
    /// settings invalid.
    pub fn dns_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Settings {
        self.dns_names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds an IP address (for a webhook reached by `url: https://10.0.0.5:9443/...`).
    pub fn ip(mut self, ip: IpAddr) -> Settings {
        self.ips.push(ip);
        self
    }

    /// How long a serving certificate is valid (default 90 days, cert-manager's default; 1 s to
    /// 100 years).
    pub fn validity(mut self, validity: Duration) -> Settings {
        self.validity = validity;
        self
    }

    /// How long the CA is valid (default 365 days; 1 s to 100 years). A serving certificate never
    /// outlives it.
    pub fn ca_validity(mut self, validity: Duration) -> Settings {
        self.ca_validity = validity;
        self
    }

    /// The fraction of a certificate's lifetime after which it is renewed, in (0, 1) (default
    /// 2/3, cert-manager's `renewBefore` default of a third of the lifetime).
    pub fn renew_at(mut self, fraction: f64) -> Settings {
        self.renew_at = fraction;
        self
    }

    /// How long a renewed CA is published in the bundle, beside the CA it replaces, before it
    /// signs the serving certificate (default 1 hour; at most half the time the old CA has left).
    /// The `caBundle` must trust the new CA before the server presents a certificate of it:
    /// this is the time the injector and kube-apiserver get to pick up the new bundle.
    pub fn ca_overlap(mut self, overlap: Duration) -> Settings {
        self.ca_overlap = overlap;
        self
    }

    fn check(&self) -> Result<(), Error> {
        let invalid = |reason: &str| {
            Err(Error::InvalidSettings {
                reason: reason.to_string(),
            })
        };
        if self.dns_names.is_empty() && self.ips.is_empty() {
            return invalid("no DNS name and no IP address");
        }
        if let Some(name) = self.dns_names.iter().find(|name| name.parse::<IpAddr>().is_ok()) {
            return Err(Error::InvalidSettings {
                reason: format!("{name} is an IP address, not a DNS name: add it with Settings::ip"),
            });
        }
        if self.validity < Duration::from_secs(1) || self.ca_validity < Duration::from_secs(1) {
            return invalid("validity must be at least one second");
        }
        if self.validity > MAX_VALIDITY || self.ca_validity > MAX_VALIDITY {
            return invalid("validity must be at most 100 years");
        }
        if !(self.renew_at > 0.0 && self.renew_at < 1.0) {
            return invalid("renew_at must be between 0 and 1");
        }
        Ok(())
    }

    /// A new CA and a serving certificate it signs.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] or [`Error::Generate`].
    pub fn generate(&self) -> Result<Bundle, Error> {
        self.check()?;
        let ca = Ca::generate(self.ca_validity)?;
        self.issue(Arc::new(ca), None, Vec::new())
    }

    /// The bundle that follows `current`: a new serving certificate, and, when the CA is due,
    /// the next phase of its renewal ([`Rotator`]'s guarantees): a new CA published beside the
    /// signing one, or, once published for [`ca_overlap`](Self::ca_overlap), the new CA
    /// signing. A signing CA that has expired with no successor published is replaced at once:
    /// no certificate of it verifies any more, so there is nothing to roll over from. A
    /// published successor that has expired itself (nothing renewed for longer than its
    /// validity) is dropped, never promoted: the CA goes on as if none had been published.
    fn renew(&self, current: &Bundle) -> Result<Bundle, Error> {
        let now = SystemTime::now();
        let still_valid = |cas: &[Trusted]| cas.iter().filter(|ca| ca.not_after > now).cloned().collect::<Vec<_>>();
        let (ca, next, previous) = match current.next.as_ref().filter(|next| next.not_after > now) {
            // Phase 2: the new CA has been trusted long enough; it signs from now on.
            Some(next) if self.switch_time(&current.ca, next) <= now => {
                let mut previous = vec![current.ca.trusted()];
                previous.extend(current.previous.iter().cloned());
                (next.clone(), None, still_valid(&previous))
            }
            Some(next) => (current.ca.clone(), Some(next.clone()), still_valid(&current.previous)),
            None if current.ca.not_after <= now => {
                let ca = Arc::new(Ca::generate(self.ca_validity)?);
                (ca, None, still_valid(&current.previous))
            }
            // Phase 1: publish the new CA; the old one keeps signing.
            None if current.ca.renew_time(self.renew_at) <= now => {
                let next = Arc::new(Ca::generate(self.ca_validity)?);
                (current.ca.clone(), Some(next), still_valid(&current.previous))
            }
            None => (current.ca.clone(), None, still_valid(&current.previous)),
        };
        self.issue(ca, next, previous)
    }

    /// When `bundle` is next due for [`renew`](Self::renew): the serving certificate's
    /// renewal point, or the CA's (during a CA rollover, the point its new CA starts signing),
    /// whichever comes first.
    fn renewal_time(&self, bundle: &Bundle) -> SystemTime {
        let serving = renew_time(bundle.not_before, bundle.not_after, self.renew_at);
        let ca = match &bundle.next {
            Some(next) => self.switch_time(&bundle.ca, next),
            None => bundle.ca.renew_time(self.renew_at),
        };
        serving.min(ca)
    }

    /// When a CA published as `next` may replace `signing`: [`ca_overlap`](Self::ca_overlap)
    /// after it was made, and at the latest halfway through the time `signing` had left then.
    fn switch_time(&self, signing: &Ca, next: &Ca) -> SystemTime {
        let left = signing.not_after.duration_since(next.not_before).unwrap_or_default();
        next.not_before + self.ca_overlap.min(left / 2)
    }

    /// A serving certificate signed by `ca`; `next` is a CA published but not yet signing,
    /// `previous` are older CAs still trusted.
    fn issue(&self, ca: Arc<Ca>, next: Option<Arc<Ca>>, previous: Vec<Trusted>) -> Result<Bundle, Error> {
        let key = KeyPair::generate().map_err(|source| Error::Generate {
            what: "serving key",
            source,
        })?;
        let mut params = CertificateParams::default();
        let cn = self
            .dns_names
            .first()
            .cloned()
            .or_else(|| self.ips.first().map(ToString::to_string))
            .unwrap_or_default();
        params.distinguished_name.push(DnType::CommonName, cn);
        for name in &self.dns_names {
            let name = name.clone().try_into().map_err(|source| Error::Generate {
                what: "serving certificate",
                source,
            })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        let not_after = (now + self.validity).min(ca.not_after);
        params.not_before = backdated(now);
        params.not_after = datetime(not_after);
        let cert = params.signed_by(&key, &ca.issuer).map_err(|source| Error::Generate {
            what: "serving certificate",
            source,
        })?;
        Ok(Bundle {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca,
            next,
            previous,
            not_before: now,
            not_after,
        })
    }
}

/// A serving certificate, its key and the CA bundle that verifies it.
#[derive(Clone)]
pub struct Bundle {
    cert_pem: String,
    key_pem: String,
    /// The CA that signed `cert_pem`.
    ca: Arc<Ca>,
    /// A renewed CA, in the bundle but not yet signing (the first phase of a CA rollover).
    next: Option<Arc<Ca>>,
    /// Older CAs, in the bundle until they expire; only their certificates are kept.
    previous: Vec<Trusted>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("ca_not_after", &self.ca.not_after)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// The serving certificate, PEM (`tls.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The serving key, PKCS#8 PEM (`tls.key`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA bundle, PEM (`ca.crt`): a renewed CA not yet signing (during the first phase of a
    /// CA rollover, see [`Rotator`]), the CA that signed the serving certificate, then any
    /// previous CA still valid, so that certificates of each verify while a new CA is rolled
    /// out. This is the `caBundle` of webhook configurations and CRD conversion stanzas.
    pub fn ca_pem(&self) -> String {
        let now = SystemTime::now();
        let mut pem = self.next.as_ref().map(|ca| ca.pem.clone()).unwrap_or_default();
        pem.push_str(&self.ca.pem);
        for ca in self.previous.iter().filter(|ca| ca.not_after > now) {
            pem.push_str(&ca.pem);
        }
        pem
    }

    /// When the serving certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// When the CA that signed the serving certificate expires.
    pub fn ca_not_after(&self) -> SystemTime {
        self.ca.not_after
    }

    /// The CA that signed the serving certificate, PEM (one of the certificates of
    /// [`ca_pem`](Self::ca_pem)).
    pub fn signing_ca_pem(&self) -> &str {
        &self.ca.pem
    }

    /// Writes `tls.crt`, `tls.key`, `ca.crt` and `ca.key` to `dir` (created if missing), each
    /// whole: a temporary file in `dir` renamed over the old one. Keys are written with mode
    /// 0600 on Unix. The key is written before the certificate, so a reader that sees the new
    /// certificate finds its key. `ca.key` is the key of the CA that signed the serving
    /// certificate; a renewed CA not yet signing is only in `ca.crt`, so a process restarted
    /// during a rollover keeps signing with the CA the `caBundle` already trusts (and starts the
    /// rollover again when it is due).
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<(), Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        write_atomically(&dir.join(CA_KEY_FILE), self.ca.key_pem.as_bytes(), true)?;
        write_atomically(&dir.join(CA_FILE), self.ca_pem().as_bytes(), false)?;
        write_atomically(&dir.join(KEY_FILE), self.key_pem.as_bytes(), true)?;
        write_atomically(&dir.join(CERT_FILE), self.cert_pem.as_bytes(), false)
    }
}

/// Writes `content` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, content: &[u8], secret: bool) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let result = (|| {
        use std::io::Write as _;
        let mut file = options.open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Keeps a certificate directory current: issues a serving certificate at start, renews it at
/// [`Settings::renew_at`] of its lifetime, and renews the CA at the same point of the CA's.
///
/// For a webhook served by one replica: each `Rotator` has its own CA, so replicas each running
/// one serve certificates of different CAs while the `caBundle` trusts one of them. With several
/// replicas, use a [`SharedRotator`], which keeps one bundle for all of them in a Secret (see
/// the [module's caveats](self#caveats)).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use kdev_webhook::certs::{Rotator, Settings};
/// use kdev_webhook::tls::ServingCert;
/// use tokio_util::sync::CancellationToken;
///
/// let dir = "/tmp/k8s-webhook-server/serving-certs";
/// let rotator = Rotator::new(Settings::for_service("operators", "my-webhook"), dir)?;
/// let ca_bundle = rotator.current().ca_pem(); // for the webhook configurations
/// let tls = ServingCert::from_dir(dir); // reloads what the rotator writes
/// let stop = CancellationToken::new();
/// tokio::spawn(rotator.run(stop.clone()));
/// # let _ = (ca_bundle, tls); Ok(()) }
/// ```
///
/// # Guarantees
/// 1. After [`new`](Self::new) returns, the directory holds a valid serving certificate, its
///    key, and the CA bundle verifying it.
/// 2. A CA found in the directory (the certificate of `ca.key` in `ca.crt`) is kept while it is
///    valid; one due for renewal is renewed as below.
/// 3. A CA is renewed in two phases, so the server never presents a certificate the published
///    `caBundle` does not trust yet:
///    1. when the CA is due, a new CA is made and published: `ca.crt` lists the new CA, then
///       the old one, while the serving certificate is still signed by the old CA;
///    2. after [`Settings::ca_overlap`] (1 hour by default), the next renewal issues the
///       serving certificate from the new CA; the old CA stays in `ca.crt` until it expires.
///
///    Subscribers ([`subscribe`](Self::subscribe)) see every new bundle; re-inject the
///    `caBundle` when [`Bundle::ca_pem`] changes (as [`Injector::run`](crate::inject::Injector::run)
///    does).
pub struct Rotator {
    settings: Settings,
    dir: PathBuf,
    sender: watch::Sender<Bundle>,
}

impl fmt::Debug for Rotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotator")
            .field("dir", &self.dir)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Rotator {
    /// Loads the CA in `dir` (or makes one), issues a serving certificate, and writes the
    /// directory. A CA found there that is due for renewal but still valid keeps signing, and
    /// its successor is published beside it (the first phase of a renewal, see the
    /// [guarantees](Self#guarantees)).
    ///
    /// # Errors
    /// [`Error`]: invalid settings, a CA in `dir` that does not parse, a write that fails.
    pub fn new(settings: Settings, dir: impl Into<PathBuf>) -> Result<Rotator, Error> {
        settings.check()?;
        let dir = dir.into();
        let now = SystemTime::now();
        let (ca, next) = match Ca::load(&dir)? {
            // A CA due for renewal but still valid keeps signing, and its successor is
            // published first, as `rotate` does: the caBundle deployed trusts only it.
            Some(ca) if ca.not_after > now => {
                let next = if ca.renew_time(settings.renew_at) <= now {
                    Some(Arc::new(Ca::generate(settings.ca_validity)?))
                } else {
                    None
                };
                (ca, next)
            }
            _ => (Ca::generate(settings.ca_validity)?, None),
        };
        let bundle = settings.issue(Arc::new(ca), next, Vec::new())?;
        bundle.write(&dir)?;
        let (sender, _) = watch::channel(bundle);
        Ok(Rotator { settings, dir, sender })
    }

    /// The bundle now on disk.
    pub fn current(&self) -> Bundle {
        self.sender.borrow().clone()
    }

    /// A receiver that sees every bundle the rotator writes.
    pub fn subscribe(&self) -> watch::Receiver<Bundle> {
        self.sender.subscribe()
    }

    /// Renews now: a new serving certificate and, when the CA is due, the next phase of its
    /// renewal (see the [guarantees](Self#guarantees)): a new CA published beside the old one,
    /// or, once it has been published for [`Settings::ca_overlap`], the new CA signing. Returns
    /// the new bundle, already written.
    ///
    /// # Errors
    /// [`Error::Generate`] or [`Error::Write`]; the previous bundle stays in place.
    pub fn rotate(&self) -> Result<Bundle, Error> {
        let bundle = self.settings.renew(&self.current())?;
        bundle.write(&self.dir)?;
        self.sender.send_replace(bundle.clone());
        Ok(bundle)
    }

    /// How long until the next renewal: the serving certificate's renewal point, or the CA's
    /// (during a CA rollover, the point its new CA starts signing), whichever comes first.
    pub fn next_renewal(&self) -> Duration {
        self.settings
            .renewal_time(&self.current())
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// Renews at every renewal point until `stop` is cancelled. A renewal that fails is logged
    /// and retried after a tenth of the time left before the certificate expires (at least
    /// 1 s).
    ///
    /// # Cancel safety
    /// Cancel safe: the directory always holds a whole bundle.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let this = Arc::new(self);
        loop {
            let wait = this.next_renewal();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            // Key generation and synced writes block: keep them off the async workers.
            let rotating = this.clone();
            let rotated = match tokio::task::spawn_blocking(move || rotating.rotate()).await {
                Ok(rotated) => rotated,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                // The runtime is shutting down.
                Err(_) => return,
            };
            if let Err(err) = rotated {
                let left = this
                    .current()
                    .not_after
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let retry = (left / 10).max(Duration::from_secs(1));
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    ?retry,
                    "renewing the serving certificate failed"
                );
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
            } else {
                tracing::info!(dir = %this.dir.display(), "serving certificate renewed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().generate().is_err());
        for bad in [
            Settings::for_service("a", "b").validity(Duration::MAX),
            Settings::for_service("a", "b").ca_validity(Duration::MAX),
            Settings::for_service("a", "b").renew_at(f64::NAN),
            Settings::for_service("a", "b").renew_at(0.0),
        ] {
            assert!(matches!(bad.generate(), Err(Error::InvalidSettings { .. })), "{bad:?}");
        }
        assert!(Settings::for_service("a", "b").renew_at(1.0).generate().is_err());
        for ip in ["10.0.0.5", "::1", "fd00::5"] {
            let err = Settings::for_service("a", "b").dns_names([ip]).generate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidSettings { reason } if reason.contains("Settings::ip")),
                "{err:?}"
            );
        }
        assert!(Settings::default().ip("10.0.0.5".parse().unwrap()).generate().is_ok());
        assert!(
            Settings::for_service("a", "b")
                .validity(Duration::ZERO)
                .generate()
                .is_err()
        );
    }

    #[test]
    fn an_expired_next_ca_is_never_promoted() {
        let settings = Settings::for_service("ns", "svc")
            .ca_validity(Duration::from_secs(3600))
            .renew_at(1e-9)
            .ca_overlap(Duration::ZERO);
        let published = settings.renew(&settings.generate().unwrap()).unwrap();
        let next = published.next.as_ref().unwrap();
        // Nobody ran for longer than either CA's validity.
        let expired = |ca: &Ca| {
            let mut ca = Ca::find(&ca.pem, &ca.key_pem).unwrap();
            ca.not_after = SystemTime::now() - Duration::from_secs(1);
            Arc::new(ca)
        };
        let mut stale = published.clone();
        stale.ca = expired(&published.ca);
        stale.next = Some(expired(next));
        let renewed = settings.renew(&stale).unwrap();
        assert_ne!(renewed.ca.pem, next.pem, "an expired CA was promoted");
        assert_ne!(renewed.ca.pem, published.ca.pem);
        assert!(renewed.ca.not_after > SystemTime::now());
        assert!(renewed.next.is_none());
        assert_eq!(renewed.ca_pem(), renewed.ca.pem);
    }

    #[test]
    fn the_serving_certificate_never_outlives_its_ca() {
        let bundle = Settings::for_service("ns", "svc")
            .validity(Duration::from_secs(1000))
            .ca_validity(Duration::from_secs(10))
            .generate()
            .unwrap();
        assert!(bundle.not_after() <= bundle.ca_not_after());
    }
}
