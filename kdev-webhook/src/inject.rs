//! CA injection: the `caBundle` written into existing webhook configurations and CRD conversion
//! stanzas, as cert-manager's
//! [cainjector](https://cert-manager.io/docs/concepts/ca-injector/) does.
//!
//! # Which objects
//!
//! An [`Injector`] writes into objects named explicitly ([`Injector::validating`],
//! [`Injector::mutating`], [`Injector::crd`]) and into every ValidatingWebhookConfiguration,
//! MutatingWebhookConfiguration and CustomResourceDefinition carrying an annotation
//! ([`Injector::annotated`]; for example `kdev.io/inject-ca-from: operators/my-webhook`, the
//! shape of cert-manager's `cert-manager.io/inject-ca-from`). In a webhook configuration every
//! webhook's `clientConfig.caBundle` is set; in a CRD, `spec.conversion.webhook.clientConfig.caBundle`.
//!
//! # How it writes
//!
//! Each object is read, its `caBundle` fields set in the JSON as read (fields this crate's
//! Kubernetes types do not know are kept), and written back with a replace carrying the
//! resourceVersion read: if anyone changed the object in between, the write fails with a
//! conflict and the injector reads again and retries. A JSON merge patch would not do: it
//! replaces the whole `webhooks` list, losing a webhook added meanwhile. An object whose
//! bundle is already right is not written.
//!
//! # Objects created later
//!
//! [`Injector::run`] injects again every resync period (1 minute by default,
//! [`Injector::resync`]) as well as on every new bundle, so an annotated object created after
//! it started, or a named one deleted and created again (a Helm reinstall), gets the bundle
//! within one period, not at the next CA rotation. Each pass lists the annotated kinds and
//! reads the named objects; an object whose bundle is already right is not written.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use kdev_webhook::certs::{Rotator, Settings};
//! use kdev_webhook::inject::Injector;
//!
//! let rotator = Rotator::new(Settings::for_service("operators", "my-webhook"), "/tmp/serving-certs")?;
//! let injector = Injector::new(client)
//!     .validating("my-operator")
//!     .mutating("my-operator")
//!     .crd("widgets.example.com");
//! injector.inject(rotator.current().ca_pem().as_bytes()).await?;
//! // ...and after every CA rotation, and every minute for objects created since:
//! let stop = kdev_webhook::CancellationToken::new();
//! tokio::spawn(injector.run(rotator.subscribe(), stop));
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::api::{ListParams, PostParams};
use kube_client::{Api, Client};
use kube_core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::certs::Bundle;

/// How many times a write that conflicts is retried.
const CONFLICT_RETRIES: usize = 5;

/// How often [`Injector::run`] injects the current bundle again by default.
const DEFAULT_RESYNC: Duration = Duration::from_secs(60);

/// Why an injection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A named object does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// The object's kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A CRD has no conversion webhook to inject into (its strategy is not `Webhook`).
    #[error("CustomResourceDefinition {name} has no spec.conversion.webhook.clientConfig")]
    NoConversionWebhook {
        /// The CRD's name.
        name: String,
    },
    /// Reading, listing or writing an object failed.
    #[error("{step} {kind} {name} failed")]
    Api {
        /// `reading`, `listing` or `writing`.
        step: &'static str,
        /// The object's kind.
        kind: &'static str,
        /// Its name (empty for a list).
        name: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// The object kept changing between read and write.
    #[error("{kind} {name} kept changing; gave up after {CONFLICT_RETRIES} conflicts")]
    Conflict {
        /// The object's kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
}

/// The three kinds an injector writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Validating,
    Mutating,
    Crd,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Validating, Kind::Mutating, Kind::Crd];

    fn name(self) -> &'static str {
        match self {
            Kind::Validating => "ValidatingWebhookConfiguration",
            Kind::Mutating => "MutatingWebhookConfiguration",
            Kind::Crd => "CustomResourceDefinition",
        }
    }

    fn api(self, client: &Client) -> Api<DynamicObject> {
        let resource = match self {
            Kind::Validating => ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
            Kind::Mutating => ApiResource::erase::<MutatingWebhookConfiguration>(&()),
            Kind::Crd => ApiResource::erase::<CustomResourceDefinition>(&()),
        };
        Api::all_with(client.clone(), &resource)
    }

    /// Sets every `caBundle` of `data` to `bundle`; whether anything changed.
    fn set(self, name: &str, data: &mut Value, bundle: &str) -> Result<bool, Error> {
        let mut changed = false;
        let mut put = |client_config: &mut Value| {
            if let Some(cc) = client_config.as_object_mut()
                && cc.get("caBundle").and_then(Value::as_str) != Some(bundle)
            {
                cc.insert("caBundle".into(), Value::String(bundle.to_string()));
                changed = true;
            }
        };
        match self {
            Kind::Validating | Kind::Mutating => {
                if let Some(webhooks) = data.get_mut("webhooks").and_then(Value::as_array_mut) {
                    for webhook in webhooks {
                        if let Some(cc) = webhook.get_mut("clientConfig") {
                            put(cc);
                        }
                    }
                }
            }
            Kind::Crd => {
                let cc = data
                    .pointer_mut("/spec/conversion/webhook/clientConfig")
                    .filter(|cc| cc.is_object())
                    .ok_or_else(|| Error::NoConversionWebhook { name: name.to_string() })?;
                put(cc);
            }
        }
        Ok(changed)
    }
}

/// Writes a CA bundle into webhook configurations and CRDs. See the [module docs](self).
#[doc(alias = "cainjector")]
#[derive(Clone)]
#[must_use]
pub struct Injector {
    client: Client,
    named: Vec<(Kind, String)>,
    annotations: Vec<(String, String)>,
    resync: Duration,
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("named", &self.named)
            .field("annotations", &self.annotations)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

impl Injector {
    /// An injector writing through `client` into nothing yet.
    pub fn new(client: Client) -> Injector {
        Injector {
            client,
            named: Vec::new(),
            annotations: Vec::new(),
            resync: DEFAULT_RESYNC,
        }
    }

    /// How often [`run`](Self::run) injects the current bundle again, for targets created (or
    /// re-created) since the last pass. Default: 1 minute, a few reads and lists per minute.
    pub fn resync(mut self, period: Duration) -> Injector {
        self.resync = period;
        self
    }

    /// Every webhook of the ValidatingWebhookConfiguration `name`.
    pub fn validating(mut self, name: impl Into<String>) -> Injector {
        self.named.push((Kind::Validating, name.into()));
        self
    }

    /// Every webhook of the MutatingWebhookConfiguration `name`.
    pub fn mutating(mut self, name: impl Into<String>) -> Injector {
        self.named.push((Kind::Mutating, name.into()));
        self
    }

    /// The conversion webhook of the CustomResourceDefinition `name` (`plural.group`).
    pub fn crd(mut self, name: impl Into<String>) -> Injector {
        self.named.push((Kind::Crd, name.into()));
        self
    }

    /// Every webhook configuration and CRD annotated `key: value`. A CRD so annotated without a
    /// conversion webhook is skipped (and logged), not an error.
    pub fn annotated(mut self, key: impl Into<String>, value: impl Into<String>) -> Injector {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Writes `ca_pem` (the PEM of the CA bundle) into every target. Returns how many objects
    /// were changed; those already carrying the bundle are left alone.
    ///
    /// # Errors
    /// The first [`Error`]: a named object missing, a named CRD without a conversion webhook,
    /// an API error, or an object that kept changing. The other targets are still written.
    ///
    /// # Cancel safety
    /// Cancel safe: each object is written whole or not at all; run it again to finish.
    pub async fn inject(&self, ca_pem: &[u8]) -> Result<usize, Error> {
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let mut targets: Vec<(Kind, String, bool)> = self
            .named
            .iter()
            .map(|(kind, name)| (*kind, name.clone(), true))
            .collect();
        for (key, value) in &self.annotations {
            for kind in Kind::ALL {
                let list = kind
                    .api(&self.client)
                    .list(&ListParams::default())
                    .await
                    .map_err(|source| Error::Api {
                        step: "listing",
                        kind: kind.name(),
                        name: String::new(),
                        source,
                    })?;
                for obj in list.items {
                    let annotated = obj
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(key))
                        .is_some_and(|v| v == value);
                    let name = obj.metadata.name.unwrap_or_default();
                    if annotated && !targets.iter().any(|(k, n, _)| *k == kind && *n == name) {
                        targets.push((kind, name, false));
                    }
                }
            }
        }
        let mut changed = 0;
        let mut first_error = None;
        for (kind, name, named) in targets {
            match self.inject_one(kind, &name, &bundle).await {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(Error::NoConversionWebhook { name }) if !named => {
                    tracing::warn!(crd = %name, "annotated for CA injection but has no conversion webhook; skipped");
                }
                // One missing or failing target does not hold the bundle back from the others.
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// Read, set, replace with the resourceVersion read; again on a conflict.
    async fn inject_one(&self, kind: Kind, name: &str, bundle: &str) -> Result<bool, Error> {
        let api = kind.api(&self.client);
        let api_err = |step, source| Error::Api {
            step,
            kind: kind.name(),
            name: name.to_string(),
            source,
        };
        for _ in 0..CONFLICT_RETRIES {
            let mut obj = match api.get(name).await {
                Ok(obj) => obj,
                Err(kube_client::Error::Api(status)) if status.code == 404 => {
                    return Err(Error::NotFound {
                        kind: kind.name(),
                        name: name.to_string(),
                    });
                }
                Err(source) => return Err(api_err("reading", source)),
            };
            if !kind.set(name, &mut obj.data, bundle)? {
                return Ok(false);
            }
            match api.replace(name, &PostParams::default(), &obj).await {
                Ok(_) => {
                    tracing::info!(kind = kind.name(), %name, "CA bundle injected");
                    return Ok(true);
                }
                Err(kube_client::Error::Api(status)) if status.code == 409 => continue,
                Err(source) => return Err(api_err("writing", source)),
            }
        }
        Err(Error::Conflict {
            kind: kind.name(),
            name: name.to_string(),
        })
    }

    /// Injects the CA bundle of every bundle `bundles` sees (a [`Rotator`](crate::certs::Rotator)'s
    /// [`subscribe`](crate::certs::Rotator::subscribe), or a
    /// [`SharedRotator`](crate::certs::SharedRotator)'s) — the current one at once — and the
    /// current one again every [resync period](Self::resync), until `stop` is cancelled. A
    /// failed injection is logged and retried with a backoff from 1 s to 1 min.
    ///
    /// # Guarantees
    /// 1. A new bundle is injected as soon as `bundles` sees it.
    /// 2. A target created, re-created or reset after the last pass gets the current bundle at
    ///    the next pass, within one resync period.
    /// 3. A pass writes only objects whose bundle is not already the current one.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`inject`](Self::inject).
    pub async fn run(
        self,
        mut bundles: tokio::sync::watch::Receiver<Bundle>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let ca = bundles.borrow_and_update().ca_pem();
            let wait = match self.inject(ca.as_bytes()).await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    self.resync
                }
                Err(err) => {
                    tracing::warn!(error = &err as &dyn std::error::Error, retry = ?backoff, "CA injection failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    wait
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                changed = bundles.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
