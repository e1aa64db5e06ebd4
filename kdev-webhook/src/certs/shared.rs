//! [`SharedRotator`]: one bundle in a Secret, read by every replica and renewed by whichever
//! finds it due.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_client::api::PostParams;
use kube_client::{Api, Client};
use rcgen::KeyPair;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ca::{BoxError, Ca, FindError, Trusted, cert_der, lifetime_of, owned_block, pem_blocks, public_key_of};
use super::{Bundle, CA_FILE, CA_KEY_FILE, CA_NEXT_KEY, CERT_FILE, Error, KEY_FILE, Settings};

/// How many times a write that conflicts is retried, reading the Secret again each time.
pub(super) const CONFLICT_RETRIES: usize = 5;

/// How often [`SharedRotator::run`] reads the Secret by default.
const DEFAULT_RESYNC: Duration = Duration::from_secs(60);

/// The shortest wait for a renewal point: a bundle due again at once (a tiny `renew_at`) is
/// renewed at most once a second, not in a loop against the API server.
const MIN_RENEWAL_WAIT: Duration = Duration::from_secs(1);

/// The backoff after a failed pass of [`SharedRotator::run`]: 1 s doubling to 1 min (never
/// longer than the resync period).
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The Secret's type: kube-apiserver requires `tls.crt` and `tls.key` in it.
const SECRET_TYPE: &str = "kubernetes.io/tls";

/// Keeps a certificate directory current from one Secret that every replica of a webhook shares:
/// the first replica creates the bundle, every replica reads it, and whichever finds it due
/// renews it — what open-policy-agent's cert-controller does for controller-runtime users.
///
/// The Secret holds `tls.crt`, `tls.key`, `ca.crt` ([`Bundle::ca_pem`]) and `ca.key` (the key of
/// the CA that signs), and during the first phase of a CA rollover [`ca-next.key`](super::CA_NEXT_KEY),
/// the key of the CA published but not yet signing, so that any replica can carry out the
/// second phase. Previous CAs are in `ca.crt` only, without their keys. Each replica writes the
/// same files as a [`Rotator`](super::Rotator) to its own directory (`ca-next.key` excepted),
/// for [`ServingCert::from_dir`](crate::tls::ServingCert::from_dir).
///
/// # Examples
///
/// Every replica runs the same code:
///
/// ```no_run
/// # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use kdev_webhook::certs::{Settings, SharedRotator};
/// use kdev_webhook::inject::Injector;
/// use kdev_webhook::tls::ServingCert;
/// use tokio_util::sync::CancellationToken;
///
/// let dir = "/tmp/k8s-webhook-server/serving-certs";
/// let settings = Settings::for_service("operators", "my-webhook");
/// let rotator = SharedRotator::new(client.clone(), "operators", "my-webhook-certs", settings, dir).await?;
/// let tls = ServingCert::from_dir(dir); // reloads what the rotator writes
/// let stop = CancellationToken::new();
/// // Every replica may inject: they all hold the Secret's bundle, and an object already
/// // carrying it is not written.
/// let injector = Injector::new(client).validating("my-operator");
/// tokio::spawn(injector.run(rotator.subscribe(), stop.clone()));
/// tokio::spawn(rotator.run(stop.clone()));
/// # let _ = tls; Ok(()) }
/// ```
///
/// # Guarantees
/// 1. [`new`](Self::new) reads the Secret:
///    1. missing, it generates a bundle and creates the Secret (`type: kubernetes.io/tls`); if
///       another replica created it first (409 AlreadyExists), it reads that one and goes on as
///       below, so replicas started together end with the same bundle. A Secret deleted or
///       emptied later is written back by [`run`](Self::run) and [`rotate`](Self::rotate) with
///       the bundle the replica holds (renewed if due, with the same CA), never with a new CA
///       that no `caBundle` trusts yet;
///    2. present, it parses it; a Secret it cannot parse is an error ([`Error::ParseSecret`],
///       [`Error::MissingKey`]) and is never written (see the caveats); one whose every value is
///       empty is filled in, and one with a CA but an empty or missing `tls.crt` or `tls.key`
///       gets a serving certificate issued from that CA (see the caveats on RBAC);
///    3. if the bundle is due (the serving certificate past [`Settings::renew_at`] of its
///       lifetime, or a CA rollover phase due, as a [`Rotator`](super::Rotator)'s guarantees
///       describe), or its serving certificate does not verify for the settings' names against
///       its signing CA, it renews it and replaces the Secret with the resourceVersion it read;
///       if another replica wrote in between (409 Conflict), it reads again and adopts that
///       bundle (or renews it, if it is still due);
///    4. it writes the directory. After `new` returns, the directory holds the Secret's bundle.
/// 2. [`run`](Self::run) does the same at every renewal point and every resync period (1 minute
///    by default, [`resync`](Self::resync)): a bundle another replica wrote is adopted within
///    one period, written to the directory and sent to subscribers.
/// 3. Subscribers ([`subscribe`](Self::subscribe)) see a bundle only when it changed (its
///    serving certificate or its CA bundle).
/// 4. A CA is renewed in the two phases of a [`Rotator`](super::Rotator)'s: the new CA is
///    published in `ca.crt` (its key in `ca-next.key`) while the old one signs, and signs only
///    after [`Settings::ca_overlap`]; the replica that finds phase 2 due completes it, whichever
///    replica started phase 1. The old CA stays in `ca.crt` until it expires.
///
/// # Caveats
/// - **RBAC.** Each replica's ServiceAccount needs `get`, `create` and `update` on Secrets in the
///   namespace. `resourceNames` can restrict `get` and `update` to the one Secret but not
///   `create` (the name is not known when a create is authorized), so `create` comes without
///   it; to avoid granting it, deploy the Secret with the manifests, preferably with no data
///   (`type: kubernetes.io/tls` and no `data`), or with empty values (`tls.crt: ""`,
///   `tls.key: ""`): a Secret whose every value is empty is filled in. Re-applying a manifest
///   with empty values (`kubectl apply`, `helm upgrade`) empties `tls.crt` and `tls.key` but
///   keeps the `ca.crt` and `ca.key` written since: such a Secret is repaired, with a serving
///   certificate issued from the CA it holds, so the `caBundle` stays valid.
///
///   ```yaml
///   rules:
///   - apiGroups: [""]
///     resources: ["secrets"]
///     resourceNames: ["my-webhook-certs"]
///     verbs: ["get", "update"]
///   - apiGroups: [""]
///     resources: ["secrets"]
///     verbs: ["create"]   # not needed when the Secret is deployed empty
///   ```
/// - **A Secret it cannot parse is never overwritten.** A Secret of that name with data that is
///   not a bundle of this module (a cert-manager Secret, which has no `ca.key`; another tool's
///   data; a hand-edited value) could hold something another tool needs, so
///   [`new`](Self::new) fails and [`run`](Self::run) logs and retries, leaving it as it is.
///   Delete it, or pick another name, to let the rotator make one.
/// - Replicas must share the same [`Settings`]. During a rollout that changes the names, old and
///   new replicas each find the other's serving certificate wrong for their names and renew it,
///   at most once per resync period each, until the rollout ends.
/// - Keep [`Settings::ca_overlap`] (1 hour) well above the resync period (1 minute): a replica
///   sees a CA published by another within one period, and only then can an injector it runs
///   put it in the `caBundle`.
#[doc(alias = "cert-controller")]
#[doc(alias = "CertRotator")]
pub struct SharedRotator {
    secret: SecretRef,
    settings: Settings,
    dir: PathBuf,
    resync: Duration,
    sender: watch::Sender<Bundle>,
    /// Held through a refresh, so that concurrent [`rotate`](SharedRotator::rotate) calls
    /// never interleave their writes to the directory (one bundle's key beside another's
    /// certificate).
    refreshing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SharedRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRotator")
            .field("secret", &self.secret.reference)
            .field("dir", &self.dir)
            .field("settings", &self.settings)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

impl SharedRotator {
    /// Reads the Secret `namespace/name` (creating it, or renewing the bundle in it, when it is
    /// missing or due) and writes its bundle to `dir`: steps 1.1 to 1.4 of the
    /// [guarantees](Self#guarantees).
    ///
    /// # Errors
    /// - [`Error::InvalidSettings`];
    /// - [`Error::Api`] when reading, creating or updating the Secret fails;
    /// - [`Error::ParseSecret`] or [`Error::MissingKey`] when the Secret holds something other
    ///   than a bundle; it is left untouched;
    /// - [`Error::Conflict`] when the Secret kept changing under five writes in a row;
    /// - [`Error::Generate`], or [`Error::Write`] for the directory. The Secret may already
    ///   hold the bundle written to it then (created or renewed); a replica started again reads
    ///   it from there.
    ///
    /// # Cancel safety
    /// Cancel safe: the Secret is written whole or not at all, and the directory is written
    /// last.
    pub async fn new(
        client: Client,
        namespace: impl Into<String>,
        name: impl Into<String>,
        settings: Settings,
        dir: impl Into<PathBuf>,
    ) -> Result<SharedRotator, Error> {
        settings.check()?;
        let secret = SecretRef::new(client, namespace.into(), name.into());
        let dir = dir.into();
        let (bundle, _) = secret.sync(&settings, None, false).await?;
        write_dir(&dir, &bundle).await?;
        let (sender, _) = watch::channel(bundle);
        Ok(SharedRotator {
            secret,
            settings,
            dir,
            resync: DEFAULT_RESYNC,
            sender,
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// How often [`run`](Self::run) reads the Secret for a bundle another replica wrote
    /// (default 1 minute: one GET per replica per minute; at least 1 second, a shorter period
    /// is taken as 1 second).
    #[must_use]
    pub fn resync(mut self, period: Duration) -> SharedRotator {
        self.resync = period.max(MIN_RENEWAL_WAIT);
        self
    }

    /// The bundle now in the directory.
    pub fn current(&self) -> Bundle {
        self.sender.borrow().clone()
    }

    /// A receiver that sees every new bundle written to the directory, renewed here or adopted
    /// from another replica.
    pub fn subscribe(&self) -> watch::Receiver<Bundle> {
        self.sender.subscribe()
    }

    /// How long until the current bundle is due: the serving certificate's renewal point, or
    /// the CA's (during a CA rollover, the point its new CA starts signing), whichever comes
    /// first. [`run`](Self::run) reads the Secret then, or after the resync period if sooner.
    pub fn next_renewal(&self) -> Duration {
        self.settings
            .renewal_time(&self.current())
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// Renews now, due or not: reads the Secret, renews its bundle as a due renewal would (a
    /// new serving certificate and the next CA rollover phase if one is due), replaces the
    /// Secret, and writes the directory. A conflicting write is retried on the bundle read
    /// again. Returns the new bundle.
    ///
    /// # Errors
    /// As [`new`](Self::new). On an error before the Secret is replaced, the Secret and the
    /// directory keep the previous bundle. On [`Error::Write`] for the directory, the Secret
    /// already holds the new bundle while the directory (and [`current`](Self::current)) may
    /// still hold the previous one, or part of the new one; the next pass of
    /// [`run`](Self::run) writes the directory again.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`new`](Self::new).
    pub async fn rotate(&self) -> Result<Bundle, Error> {
        self.refresh(true).await
    }

    /// Reads the Secret at every renewal point and every [resync period](Self::resync), adopts
    /// what another replica wrote and renews what is due (steps 2 to 4 of the
    /// [guarantees](Self#guarantees)), until `stop` is cancelled. A failed pass is logged and
    /// retried with a backoff from 1 s to 1 min (at most the resync period).
    ///
    /// # Cancel safety
    /// Cancel safe: the Secret is written whole or not at all, and the directory always holds a
    /// whole bundle.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut wait = self.wait();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let refreshed = tokio::select! {
                () = stop.cancelled() => return,
                refreshed = self.refresh(false) => refreshed,
            };
            wait = match refreshed {
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    self.wait()
                }
                Err(err) => {
                    let retry = retry_after(backoff, self.resync);
                    tracing::warn!(
                        secret = %self.secret.reference,
                        error = &err as &dyn std::error::Error,
                        ?retry,
                        "syncing the serving certificate with its Secret failed"
                    );
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    retry
                }
            };
        }
    }

    /// Until the next pass of `run`: the renewal point (at least [`MIN_RENEWAL_WAIT`]) or the
    /// resync period, whichever comes first.
    fn wait(&self) -> Duration {
        wait_for(self.next_renewal(), self.resync)
    }

    /// Syncs with the Secret; writes the directory and tells subscribers if the bundle changed.
    async fn refresh(&self, force: bool) -> Result<Bundle, Error> {
        let _refreshing = self.refreshing.lock().await;
        let current = self.current();
        let (bundle, outcome) = self.secret.sync(&self.settings, Some(&current), force).await?;
        let changed = {
            let current = self.sender.borrow();
            current.cert_pem != bundle.cert_pem || current.ca_pem() != bundle.ca_pem()
        };
        if changed {
            write_dir(&self.dir, &bundle).await?;
            self.sender.send_replace(bundle.clone());
            if outcome == Outcome::Read {
                tracing::info!(secret = %self.secret.reference, "adopted the serving certificate another replica wrote");
            }
        }
        Ok(bundle)
    }
}

/// Until the next pass of `run` when the bundle is due in `next_renewal`: that (at least
/// [`MIN_RENEWAL_WAIT`]) or the resync period (likewise), whichever comes first.
fn wait_for(next_renewal: Duration, resync: Duration) -> Duration {
    next_renewal.max(MIN_RENEWAL_WAIT).min(resync.max(MIN_RENEWAL_WAIT))
}

/// Until the next pass of `run` after a failed one: the backoff, at most the resync period,
/// and at least [`MIN_BACKOFF`] either way.
fn retry_after(backoff: Duration, resync: Duration) -> Duration {
    backoff.min(resync.max(MIN_BACKOFF))
}

/// What [`SecretRef::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Took the bundle as it was in the Secret.
    Read,
    /// Wrote a new bundle to the Secret.
    Written,
}

/// The Secret and the API to reach it.
struct SecretRef {
    api: Api<Secret>,
    namespace: String,
    name: String,
    /// `namespace/name`, for errors and logs.
    reference: String,
}

impl SecretRef {
    fn new(client: Client, namespace: String, name: String) -> SecretRef {
        SecretRef {
            api: Api::namespaced(client, &namespace),
            reference: format!("{namespace}/{name}"),
            namespace,
            name,
        }
    }

    fn api_error(&self, step: &'static str) -> impl FnOnce(kube_client::Error) -> Error + '_ {
        move |source| Error::Api {
            step,
            secret: self.reference.clone(),
            source,
        }
    }

    /// Reads the Secret and brings it up to date: creates it when missing, renews the bundle in
    /// it when due (always, with `force`), and otherwise takes it as it is. Returns the bundle
    /// now in the Secret.
    ///
    /// A Secret missing or emptied while this replica holds `current` gets `current` back
    /// (renewed if due, with the same CA): a new CA would be trusted by no `caBundle` yet while
    /// other replicas still serve certificates of the old one. Only with no `current` (the
    /// first sync of [`SharedRotator::new`]) is a new CA generated.
    async fn sync(
        &self,
        settings: &Settings,
        current: Option<&Bundle>,
        force: bool,
    ) -> Result<(Bundle, Outcome), Error> {
        // What to write to a Secret that holds no bundle.
        let restore = || -> Result<Bundle, Error> {
            match current {
                Some(bundle) if force || due(settings, bundle) => settings.renew(bundle),
                Some(bundle) => Ok(bundle.clone()),
                None => settings.generate(),
            }
        };
        for _ in 0..CONFLICT_RETRIES {
            let found = self.api.get_opt(&self.name).await.map_err(self.api_error("reading"))?;
            let Some(mut secret) = found else {
                let bundle = restore()?;
                match self.api.create(&PostParams::default(), &self.new_secret(&bundle)).await {
                    Ok(_) => {
                        tracing::info!(secret = %self.reference, "created the Secret of the serving certificate");
                        return Ok((bundle, Outcome::Written));
                    }
                    // Another replica created it first: take theirs.
                    Err(kube_client::Error::Api(status)) if status.code == 409 => continue,
                    Err(source) => return Err(self.api_error("creating")(source)),
                }
            };
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            let renewed = match parse(&self.reference, data)? {
                Parsed::Bundle(bundle) if !force && !due(settings, &bundle) => return Ok((bundle, Outcome::Read)),
                Parsed::Bundle(bundle) => settings.renew(&bundle)?,
                // Deployed empty and re-applied: the CA is kept, the serving certificate reissued.
                Parsed::CaOnly { ca, next, previous } => settings.issue(ca, next, previous)?,
                // Deployed empty, to be filled (or emptied since: this replica's bundle goes back).
                Parsed::Empty => restore()?,
            };
            put(data, &renewed);
            // The object as read carries its resourceVersion: a write by anyone since is a 409.
            match self.api.replace(&self.name, &PostParams::default(), &secret).await {
                Ok(_) => {
                    tracing::info!(secret = %self.reference, "renewed the serving certificate in its Secret");
                    return Ok((renewed, Outcome::Written));
                }
                // 409: written by another since it was read; 404: deleted since (created again
                // on the next round).
                Err(kube_client::Error::Api(status)) if status.code == 409 || status.code == 404 => continue,
                Err(source) => return Err(self.api_error("updating")(source)),
            }
        }
        Err(Error::Conflict {
            secret: self.reference.clone(),
        })
    }

    fn new_secret(&self, bundle: &Bundle) -> Secret {
        let mut data = BTreeMap::new();
        put(&mut data, bundle);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some([("app.kubernetes.io/managed-by".to_string(), "kdev-webhook".to_string())].into()),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(data),
            ..Secret::default()
        }
    }
}

/// Whether `bundle` must be renewed now: at a renewal point, or with a serving certificate that
/// does not fit the settings.
fn due(settings: &Settings, bundle: &Bundle) -> bool {
    if settings.renewal_time(bundle) <= SystemTime::now() {
        return true;
    }
    match fits(settings, bundle) {
        Ok(()) => false,
        Err(reason) => {
            tracing::info!(reason = %reason, "the serving certificate in the Secret does not fit; renewing it");
            true
        }
    }
}

/// Whether the serving certificate is the certificate of the serving key, signed by the signing
/// CA, valid now, and for every name of the settings (names no TLS client can ask for, such as
/// wildcards, are not checked).
fn fits(settings: &Settings, bundle: &Bundle) -> Result<(), BoxError> {
    let leaf = cert_der(pem_blocks(&bundle.cert_pem).next().ok_or("no certificate")?)?;
    if public_key_of(&leaf)? != KeyPair::from_pem(&bundle.key_pem)?.public_key_raw() {
        return Err("tls.key is not the key of tls.crt".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der(&bundle.ca.pem)?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
    let names = settings
        .dns_names
        .iter()
        .filter_map(|name| ServerName::try_from(name.clone()).ok())
        .chain(settings.ips.iter().map(|ip| ServerName::IpAddress((*ip).into())));
    for name in names {
        verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())?;
    }
    Ok(())
}

/// What a Secret's data holds.
enum Parsed {
    /// No value but empty ones: a Secret deployed empty, to be filled.
    Empty,
    /// A CA (`ca.crt`, `ca.key`, and `ca-next.key` if present) but an empty or missing `tls.crt`
    /// or `tls.key`: a Secret deployed empty and later re-applied, which resets those two only.
    /// A serving certificate is issued from the CA, which is kept.
    CaOnly {
        ca: Arc<Ca>,
        next: Option<Arc<Ca>>,
        previous: Vec<Trusted>,
    },
    /// A whole bundle.
    Bundle(Bundle),
}

/// The bundle in a Secret's data. Keys other than the bundle's are ignored.
fn parse(secret: &str, data: &BTreeMap<String, ByteString>) -> Result<Parsed, Error> {
    if data.values().all(|value| value.0.is_empty()) {
        return Ok(Parsed::Empty);
    }
    let bad = |key: &'static str| {
        move |source: BoxError| Error::ParseSecret {
            secret: secret.to_string(),
            key,
            source,
        }
    };
    let text = |key: &'static str| -> Result<Option<&str>, Error> {
        data.get(key)
            .map(|value| std::str::from_utf8(&value.0).map_err(|e| bad(key)(e.into())))
            .transpose()
    };
    let required = |key: &'static str| {
        text(key)?.ok_or_else(|| Error::MissingKey {
            secret: secret.to_string(),
            key,
        })
    };
    let (ca_pem, ca_key) = (required(CA_FILE)?, required(CA_KEY_FILE)?);
    let find = |key: &'static str, key_pem: &str| {
        Ca::find(ca_pem, key_pem).map_err(|e| match e {
            FindError::Key(source) => bad(key)(source),
            FindError::Bundle(source) => bad(CA_FILE)(source),
        })
    };
    let ca = Arc::new(find(CA_KEY_FILE, ca_key)?);
    let next = text(CA_NEXT_KEY)?
        .map(|key_pem| find(CA_NEXT_KEY, key_pem).map(Arc::new))
        .transpose()?;
    let mut previous = Vec::new();
    for block in pem_blocks(ca_pem) {
        let pem = owned_block(block);
        if pem == ca.pem || next.as_ref().is_some_and(|next| next.pem == pem) {
            continue;
        }
        let (_, not_after) = cert_der(block)
            .and_then(|der| lifetime_of(&der))
            .map_err(bad(CA_FILE))?;
        previous.push(Trusted { pem, not_after });
    }
    let (cert_pem, key_pem) = match (text(CERT_FILE)?, text(KEY_FILE)?) {
        (Some(cert_pem), Some(key_pem)) if !cert_pem.is_empty() && !key_pem.is_empty() => (cert_pem, key_pem),
        _ => return Ok(Parsed::CaOnly { ca, next, previous }),
    };
    KeyPair::from_pem(key_pem).map_err(|e| bad(KEY_FILE)(e.into()))?;
    let leaf = pem_blocks(cert_pem)
        .next()
        .ok_or_else(|| bad(CERT_FILE)("no certificate".into()))?;
    let (not_before, not_after) = cert_der(leaf)
        .and_then(|der| lifetime_of(&der))
        .map_err(bad(CERT_FILE))?;
    Ok(Parsed::Bundle(Bundle {
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
        ca,
        next,
        previous,
        not_before,
        not_after,
    }))
}

/// Sets the bundle's keys in a Secret's data; other keys are kept.
fn put(data: &mut BTreeMap<String, ByteString>, bundle: &Bundle) {
    let mut set = |key: &str, value: &str| {
        data.insert(key.to_string(), ByteString(value.as_bytes().to_vec()));
    };
    set(CERT_FILE, &bundle.cert_pem);
    set(KEY_FILE, &bundle.key_pem);
    set(CA_FILE, &bundle.ca_pem());
    set(CA_KEY_FILE, &bundle.ca.key_pem);
    match &bundle.next {
        Some(next) => set(CA_NEXT_KEY, &next.key_pem),
        None => {
            data.remove(CA_NEXT_KEY);
        }
    }
}

/// Writes the bundle to the directory, off the async workers (synced writes block).
async fn write_dir(dir: &Path, bundle: &Bundle) -> Result<(), Error> {
    let (target, bundle) = (dir.to_path_buf(), bundle.clone());
    match tokio::task::spawn_blocking(move || bundle.write(&target)).await {
        Ok(written) => written,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(Error::Write {
            path: dir.to_path_buf(),
            source: std::io::Error::other("the runtime is shutting down"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_of(parsed: Parsed) -> Bundle {
        match parsed {
            Parsed::Bundle(bundle) => bundle,
            Parsed::Empty | Parsed::CaOnly { .. } => panic!("not a whole bundle"),
        }
    }

    fn data_of(bundle: &Bundle) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::new();
        put(&mut data, bundle);
        data
    }

    #[test]
    fn a_bundle_read_back_from_secret_data_is_the_same_bundle() {
        let settings = Settings::for_service("ns", "svc");
        let bundle = settings.generate().unwrap();
        let read = bundle_of(parse("ns/s", &data_of(&bundle)).unwrap());
        assert_eq!(read.cert_pem, bundle.cert_pem);
        assert_eq!(read.ca_pem(), bundle.ca_pem());
        assert_eq!(read.ca.key_pem, bundle.ca.key_pem);
        assert!(!due(&settings, &read));
    }

    #[test]
    fn a_rollover_in_progress_is_read_back_with_the_next_ca_and_its_key() {
        // A CA due 3.6 µs into its hour.
        let settings = Settings::for_service("ns", "svc")
            .ca_validity(Duration::from_secs(3600))
            .renew_at(1e-9)
            .ca_overlap(Duration::from_secs(3600));
        let first = settings.generate().unwrap();
        let published = settings.renew(&first).unwrap();
        let data = data_of(&published);
        assert!(data.contains_key(CA_NEXT_KEY));
        let read = bundle_of(parse("ns/s", &data).unwrap());
        assert_eq!(read.ca_pem(), published.ca_pem());
        assert_eq!(read.ca.pem, first.ca.pem);
        let next = read.next.as_ref().unwrap();
        assert_eq!(next.key_pem, published.next.as_ref().unwrap().key_pem);
        assert!(read.previous.is_empty());
        // Phase 2 from what was read: the next CA signs, the old one is kept without its key,
        // and `ca-next.key` goes away.
        let switched = settings.clone().ca_overlap(Duration::ZERO).renew(&read).unwrap();
        let data = data_of(&switched);
        assert!(!data.contains_key(CA_NEXT_KEY));
        let read = bundle_of(parse("ns/s", &data).unwrap());
        assert_eq!(read.ca.pem, next.pem);
        assert_eq!(read.previous.len(), 1);
        assert_eq!(read.previous[0].pem, first.ca.pem);
    }

    #[test]
    fn data_that_is_not_a_bundle_is_a_typed_error_naming_the_key() {
        let bundle = Settings::for_service("ns", "svc").generate().unwrap();
        let mut data = data_of(&bundle);
        data.remove(CA_KEY_FILE);
        assert!(matches!(
            parse("ns/s", &data),
            Err(Error::MissingKey { key: "ca.key", ref secret }) if secret == "ns/s"
        ));
        let mut data = data_of(&bundle);
        data.insert(CA_KEY_FILE.into(), ByteString(b"not a key".to_vec()));
        assert!(matches!(
            parse("ns/s", &data),
            Err(Error::ParseSecret { key: "ca.key", .. })
        ));
        // A key that parses but whose certificate is not in ca.crt.
        let other = Settings::for_service("ns", "svc").generate().unwrap();
        let mut data = data_of(&bundle);
        data.insert(CA_KEY_FILE.into(), ByteString(other.ca.key_pem.as_bytes().to_vec()));
        assert!(matches!(
            parse("ns/s", &data),
            Err(Error::ParseSecret { key: "ca.crt", .. })
        ));
        let mut data = data_of(&bundle);
        data.insert(CERT_FILE.into(), ByteString(vec![0xff, 0xfe]));
        assert!(matches!(
            parse("ns/s", &data),
            Err(Error::ParseSecret { key: "tls.crt", .. })
        ));
        // Empty values only: a Secret deployed to be filled.
        let empty = BTreeMap::from([(CERT_FILE.to_string(), ByteString(Vec::new()))]);
        assert!(matches!(parse("ns/s", &empty), Ok(Parsed::Empty)));
    }

    #[test]
    fn run_never_passes_more_than_once_a_second_whatever_the_resync_period() {
        for resync in [Duration::ZERO, Duration::from_millis(1)] {
            assert_eq!(wait_for(Duration::ZERO, resync), MIN_RENEWAL_WAIT);
            assert_eq!(wait_for(Duration::from_secs(3600), resync), MIN_RENEWAL_WAIT);
            assert_eq!(retry_after(MIN_BACKOFF, resync), MIN_BACKOFF);
            assert_eq!(retry_after(MAX_BACKOFF, resync), MIN_BACKOFF);
        }
        let resync = Duration::from_secs(30);
        assert_eq!(wait_for(Duration::from_secs(3600), resync), resync);
        assert_eq!(wait_for(Duration::from_secs(5), resync), Duration::from_secs(5));
        assert_eq!(retry_after(MAX_BACKOFF, resync), resync);
        assert_eq!(retry_after(Duration::from_secs(2), resync), Duration::from_secs(2));
    }

    #[test]
    fn a_bundle_whose_serving_certificate_was_emptied_keeps_its_ca() {
        let bundle = Settings::for_service("ns", "svc").generate().unwrap();
        let mut emptied = data_of(&bundle);
        emptied.insert(CERT_FILE.into(), ByteString(Vec::new()));
        emptied.insert(KEY_FILE.into(), ByteString(Vec::new()));
        let mut removed = data_of(&bundle);
        removed.remove(CERT_FILE);
        removed.remove(KEY_FILE);
        for data in [emptied, removed] {
            match parse("ns/s", &data) {
                Ok(Parsed::CaOnly { ca, next, previous }) => {
                    assert_eq!(ca.pem, bundle.ca.pem);
                    assert_eq!(ca.key_pem, bundle.ca.key_pem);
                    assert!(next.is_none() && previous.is_empty());
                }
                _ => panic!("the CA of a Secret with no serving certificate was not read"),
            }
        }
    }

    #[test]
    fn a_serving_certificate_for_other_names_or_of_another_key_does_not_fit() {
        let settings = Settings::for_service("ns", "svc");
        let bundle = settings.generate().unwrap();
        assert!(fits(&settings, &bundle).is_ok());
        assert!(fits(&Settings::for_service("ns", "renamed"), &bundle).is_err());
        // Wildcards cannot be checked and are not held against the certificate.
        assert!(fits(&settings.clone().dns_names(["*.svc.ns.svc"]), &bundle).is_ok());
        let mut mismatched = bundle.clone();
        mismatched.key_pem = settings.generate().unwrap().key_pem;
        assert!(fits(&settings, &mismatched).is_err());
        // Signed by another CA than the one of ca.key.
        let other = settings.generate().unwrap();
        let mut foreign = bundle.clone();
        foreign.cert_pem = other.cert_pem.clone();
        foreign.key_pem = other.key_pem.clone();
        assert!(fits(&settings, &foreign).is_err());
    }
}
