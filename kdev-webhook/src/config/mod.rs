//! ValidatingWebhookConfiguration, MutatingWebhookConfiguration and a CRD's conversion stanza
//! generated from a [`Server`]'s registered webhooks, as kubebuilder's `+kubebuilder:webhook`
//! markers generate them
//! ([admission webhooks](https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/)).
//!
//! A typed webhook (`Builder::validating::<K>`, `Builder::mutating::<K>`) knows its resource:
//! its rule is `K`'s group, version and plural with the operations CREATE and UPDATE. A raw
//! handler has no resource and needs a [`Webhook::rule`]; every setting can be overridden per
//! path with [`Configurations::webhook`].
//!
//! # Examples
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use kdev_webhook::admission::{Request, Validator, Verdict};
//! use kdev_webhook::config::{ClientConfig, Configurations, FailurePolicy, Operation, Webhook};
//! use kdev_webhook::Server;
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! # let tls = kdev_webhook::tls::ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap();
//!
//! struct Allow;
//! impl Validator<Pod> for Allow {}
//!
//! let server = Server::builder().validating("/validate-pods", Allow).tls(tls).build().unwrap();
//! let configurations = Configurations::new("my-operator", ClientConfig::service("operators", "my-operator-webhook"))
//!     .ca_bundle(b"-----BEGIN CERTIFICATE-----\n...".to_vec())
//!     .webhook(
//!         "/validate-pods",
//!         Webhook::new()
//!             .name("pods.validate.example.com")
//!             .operations([Operation::Create, Operation::Update, Operation::Delete])
//!             .failure_policy(FailurePolicy::Ignore),
//!     );
//! let validating = configurations.validating(&server).unwrap();
//! let hook = &validating.webhooks.as_ref().unwrap()[0];
//! assert_eq!(hook.name, "pods.validate.example.com");
//! let rule = &hook.rules.as_ref().unwrap()[0];
//! assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string()][..]));
//! assert_eq!(hook.client_config.service.as_ref().unwrap().path.as_deref(), Some("/validate-pods"));
//! ```

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::admissionregistration::v1 as admreg;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::Server;

/// The API server's limit on `matchConditions` per webhook.
const MAX_MATCH_CONDITIONS: usize = 64;

fn match_conditions(conditions: &[(String, String)]) -> Option<Vec<admreg::MatchCondition>> {
    (!conditions.is_empty()).then(|| {
        conditions
            .iter()
            .map(|(name, expression)| admreg::MatchCondition {
                name: name.clone(),
                expression: expression.clone(),
            })
            .collect()
    })
}

/// Checks `matchConditions` as the API server does: at most 64, names unique qualified names
/// (an optional DNS-subdomain prefix and `/`, then 1–63 alphanumerics, `-`, `_` or `.`, starting
/// and ending alphanumeric), expressions non-empty. The expressions' CEL is compiled by the API
/// server, not here.
fn validate_match_conditions(path: &str, conditions: &[(String, String)]) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidMatchCondition {
        path: path.to_owned(),
        reason,
    };
    if conditions.len() > MAX_MATCH_CONDITIONS {
        return Err(invalid(format!(
            "{} conditions, at most {MAX_MATCH_CONDITIONS} are allowed",
            conditions.len()
        )));
    }
    let mut seen = HashSet::new();
    for (name, expression) in conditions {
        let local = match name.split_once('/') {
            None => name.as_str(),
            Some((prefix, local)) => {
                let subdomain = !prefix.is_empty()
                    && prefix.len() <= 253
                    && prefix.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                    });
                if subdomain { local } else { "" }
            }
        };
        let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if local.is_empty()
            || local.len() > 63
            || !local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || !edges_ok(local.chars().next())
            || !edges_ok(local.chars().last())
        {
            return Err(invalid(format!("name {name:?} is not a qualified name")));
        }
        if !seen.insert(name.as_str()) {
            return Err(invalid(format!("name {name:?} is used twice")));
        }
        if expression.trim().is_empty() {
            return Err(invalid(format!("condition {name:?} has an empty expression")));
        }
    }
    Ok(())
}

mod settings;

pub use settings::{
    ClientConfig, FailurePolicy, MatchPolicy, Operation, ReinvocationPolicy, Rule, Scope, SideEffects, Webhook,
};

/// Why a configuration could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A webhook name is not a fully-qualified DNS name with at least three segments.
    #[error("webhook name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two webhooks of one configuration have the same name.
    #[error("two webhooks of one configuration are named {name:?}")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// `timeoutSeconds` is outside 1–30.
    #[error("webhook {path}: timeoutSeconds {seconds} is outside 1-30")]
    InvalidTimeout {
        /// The webhook's path.
        path: String,
        /// The timeout.
        seconds: i32,
    },
    /// A webhook has no rule: a raw handler needs [`Webhook::rule`].
    #[error("webhook {path} has no rule: give one with Webhook::rule")]
    NoRules {
        /// The webhook's path.
        path: String,
    },
    /// A rule has no operation, API group, version or resource.
    #[error("webhook {path}: a rule lists no {field}")]
    EmptyRule {
        /// The webhook's path.
        path: String,
        /// The empty list.
        field: &'static str,
    },
    /// [`Webhook::kind`] asks for a mutating webhook at a path served with
    /// [`Builder::raw`](crate::server::Builder::raw), whose handler the server answers as a
    /// validating one (a patch from it is refused).
    #[error("webhook {path} is served with Builder::raw, a validating webhook: serve it with Builder::raw_mutating")]
    RawIsValidating {
        /// The webhook's path.
        path: String,
    },
    /// Settings were given for a path the server does not serve.
    #[error("settings were given for {path}, which the server does not serve")]
    UnknownPath {
        /// The path.
        path: String,
    },
    /// A conversion stanza was asked for a path that does not serve conversions.
    #[error("{path} does not serve CRD conversions")]
    NotConversion {
        /// The path.
        path: String,
    },
    /// The converter at a conversion path does not convert the CRD's kind, or misses some of
    /// its versions ([`Configurations::conversion_for`]).
    #[error("{path} cannot convert the CRD {crd}: {reason}")]
    ConverterMismatch {
        /// The conversion path.
        path: String,
        /// The CRD's name.
        crd: String,
        /// The other kind, or the versions missing.
        reason: String,
    },
    /// A `matchConditions` entry is invalid (an empty or malformed name, a duplicate name, an
    /// empty expression, more than 64 conditions).
    #[error("webhook {path}: invalid matchConditions: {reason}")]
    InvalidMatchCondition {
        /// The webhook's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The client configuration is invalid (a URL that is not https, a port outside 1–65535).
    #[error("invalid client configuration: {reason}")]
    InvalidClientConfig {
        /// What is wrong.
        reason: String,
    },
}

/// What a registered path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A typed validator: goes into the ValidatingWebhookConfiguration.
    Validating,
    /// A typed defaulter: goes into the MutatingWebhookConfiguration.
    Mutating,
    /// A raw admission handler served with [`Builder::raw`](crate::server::Builder::raw): a
    /// validating webhook, which may not patch (kube-apiserver counts a patch from one as a
    /// failed call). One served with
    /// [`Builder::raw_mutating`](crate::server::Builder::raw_mutating) is [`Kind::Mutating`].
    Raw,
    /// CRD conversion: goes into a CRD's `spec.conversion`.
    Conversion,
}

/// The group, version and plural of a typed webhook's resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupVersionResource {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The version.
    pub version: String,
    /// The plural resource name.
    pub resource: String,
}

/// What a conversion path converts: one kind, between these versions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Converts {
    /// The kind's group.
    pub group: String,
    /// The kind.
    pub kind: String,
    /// Every apiVersion (`group/version`) the converter reads and writes, sorted.
    pub api_versions: Vec<String>,
}

/// One path a server serves, as [`Server::webhooks`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registered {
    /// The path.
    pub path: String,
    /// What it serves.
    pub kind: Kind,
    /// The resource of a typed webhook.
    pub resource: Option<GroupVersionResource>,
    /// The kind and versions of a conversion path.
    pub converts: Option<Converts>,
}

impl Registered {
    pub(crate) fn typed<K>(path: &str, kind: Kind) -> Registered
    where
        K: kube_core::Resource,
        K::DynamicType: Default,
    {
        let dt = K::DynamicType::default();
        let resource = GroupVersionResource {
            group: K::group(&dt).into_owned(),
            version: K::version(&dt).into_owned(),
            resource: K::plural(&dt).into_owned(),
        };
        Registered {
            path: path.to_string(),
            kind,
            resource: (!resource.resource.is_empty()).then_some(resource),
            converts: None,
        }
    }

    pub(crate) fn untyped(path: &str, kind: Kind) -> Registered {
        Registered {
            path: path.to_string(),
            kind,
            resource: None,
            converts: None,
        }
    }

    pub(crate) fn conversion(path: &str, converts: Converts) -> Registered {
        Registered {
            converts: Some(converts),
            ..Registered::untyped(path, Kind::Conversion)
        }
    }
}

/// Checks that `name` is a fully-qualified DNS name of at least three segments, as
/// kube-apiserver's webhook validation does (`IsFullyQualifiedName`).
///
/// # Errors
/// [`Error::InvalidName`].
pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 253 {
        return invalid("it is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 3 {
        return invalid("it should be a domain with at least three segments separated by dots");
    }
    // A DNS-1123 subdomain: labels of lowercase letters, digits and '-', starting and ending
    // with a letter or digit (kube-apiserver does not limit a label's length here).
    for label in labels {
        let bytes = label.as_bytes();
        if bytes.is_empty() {
            return invalid("a segment is empty");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return invalid("segments may hold only lowercase letters, digits and '-'");
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return invalid("segments must start and end with a letter or digit");
        }
    }
    Ok(())
}

/// The default webhook name of `path`: see [`Webhook::name`].
fn default_name(path: &str) -> String {
    let mut label: String = path
        .trim_start_matches('/')
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    label.truncate(63);
    let label = label.trim_matches('-');
    format!("{}.kdev.io", if label.is_empty() { "webhook" } else { label })
}

/// The webhook configurations of a server's webhooks: the objects' name, how kube-apiserver
/// reaches the server, the CA bundle, and per-webhook settings.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct Configurations {
    name: String,
    client: ClientConfig,
    ca_bundle: Option<Vec<u8>>,
    defaults: Webhook,
    webhooks: HashMap<String, Webhook>,
}

/// One webhook with its settings resolved.
struct Resolved {
    path: String,
    name: String,
    rules: Vec<admreg::RuleWithOperations>,
    settings: Webhook,
}

impl Configurations {
    /// Configurations named `name` (the ValidatingWebhookConfiguration and the
    /// MutatingWebhookConfiguration may share it) reaching the server through `client`.
    pub fn new(name: impl Into<String>, client: ClientConfig) -> Configurations {
        Configurations {
            name: name.into(),
            client,
            ca_bundle: None,
            defaults: Webhook::default(),
            webhooks: HashMap::new(),
        }
    }

    /// The PEM of the CA that signed the serving certificate (`caBundle`; see
    /// [`certs::Bundle::ca_pem`](crate::certs::Bundle::ca_pem)). Default: none, for a CA
    /// injected later (see [`inject`](crate::inject)).
    pub fn ca_bundle(mut self, pem: impl Into<Vec<u8>>) -> Configurations {
        self.ca_bundle = Some(pem.into());
        self
    }

    /// Settings every webhook takes unless its own say otherwise (its name excepted).
    pub fn defaults(mut self, defaults: Webhook) -> Configurations {
        self.defaults = defaults;
        self
    }

    /// Settings of the webhook at `path`.
    pub fn webhook(mut self, path: impl Into<String>, settings: Webhook) -> Configurations {
        self.webhooks.insert(path.into(), settings);
        self
    }

    fn resolve(&self, server: &Server, wanted: Kind) -> Result<Vec<Resolved>, Error> {
        self.client.validate()?;
        let registered = server.webhooks();
        for path in self.webhooks.keys() {
            if !registered.iter().any(|r| &r.path == path) {
                return Err(Error::UnknownPath { path: path.clone() });
            }
        }
        let mut names = HashSet::new();
        let mut out = Vec::new();
        let mut sorted: Vec<&Registered> = registered.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        for reg in sorted {
            let own = self.webhooks.get(&reg.path).cloned().unwrap_or_default();
            let settings = own.or(&self.defaults);
            let kind = match reg.kind {
                Kind::Raw => match settings.kind {
                    Some(Kind::Mutating) => return Err(Error::RawIsValidating { path: reg.path.clone() }),
                    _ => Kind::Validating,
                },
                k => k,
            };
            if kind != wanted {
                continue;
            }
            let name = own.name.clone().unwrap_or_else(|| default_name(&reg.path));
            validate_name(&name)?;
            if !names.insert(name.clone()) {
                return Err(Error::DuplicateName { name });
            }
            if let Some(seconds) = settings.timeout_seconds
                && !(1..=30).contains(&seconds)
            {
                return Err(Error::InvalidTimeout {
                    path: reg.path.clone(),
                    seconds,
                });
            }
            validate_match_conditions(&reg.path, &settings.match_conditions)?;
            let rules = match (&settings.rules, &reg.resource) {
                (Some(rules), _) => rules.clone(),
                (None, Some(gvr)) => {
                    let mut resources = vec![gvr.resource.clone()];
                    resources.extend(settings.subresources.iter().map(|s| format!("{}/{s}", gvr.resource)));
                    let mut rule = Rule::new(gvr.group.clone(), gvr.version.clone(), resources);
                    if let Some(ops) = &settings.operations {
                        rule = rule.operations(ops.iter().copied());
                    }
                    if let Some(scope) = settings.scope {
                        rule = rule.scope(scope);
                    }
                    vec![rule]
                }
                (None, None) => return Err(Error::NoRules { path: reg.path.clone() }),
            };
            if rules.is_empty() {
                return Err(Error::NoRules { path: reg.path.clone() });
            }
            for rule in &rules {
                rule.check(&reg.path)?;
            }
            out.push(Resolved {
                path: reg.path.clone(),
                name,
                rules: rules.iter().map(Rule::to_api).collect(),
                settings,
            });
        }
        Ok(out)
    }

    fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            ..ObjectMeta::default()
        }
    }

    /// The ValidatingWebhookConfiguration of `server`'s validators (and raw handlers not marked
    /// mutating), ordered by path.
    ///
    /// # Errors
    /// [`Error`]: an invalid or duplicate name, a timeout outside 1–30, a webhook without rules,
    /// settings for a path the server does not serve, an invalid client configuration.
    pub fn validating(&self, server: &Server) -> Result<admreg::ValidatingWebhookConfiguration, Error> {
        let webhooks = self
            .resolve(server, Kind::Validating)?
            .into_iter()
            .map(|r| admreg::ValidatingWebhook {
                admission_review_versions: vec!["v1".to_string()],
                client_config: self.client.admission(&r.path, self.ca_bundle.as_deref()),
                failure_policy: Some(r.settings.failure_policy.unwrap_or(FailurePolicy::Fail).as_str().into()),
                match_conditions: match_conditions(&r.settings.match_conditions),
                match_policy: Some(
                    r.settings
                        .match_policy
                        .unwrap_or(MatchPolicy::Equivalent)
                        .as_str()
                        .into(),
                ),
                name: r.name,
                namespace_selector: r.settings.namespace_selector,
                object_selector: r.settings.object_selector,
                rules: Some(r.rules),
                side_effects: r.settings.side_effects.unwrap_or(SideEffects::None).as_str().into(),
                timeout_seconds: Some(r.settings.timeout_seconds.unwrap_or(10)),
            })
            .collect();
        Ok(admreg::ValidatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(webhooks),
        })
    }

    /// The MutatingWebhookConfiguration of `server`'s defaulters (and raw handlers marked
    /// [`Kind::Mutating`]), ordered by path.
    ///
    /// # Errors
    /// As [`validating`](Self::validating).
    pub fn mutating(&self, server: &Server) -> Result<admreg::MutatingWebhookConfiguration, Error> {
        let webhooks = self
            .resolve(server, Kind::Mutating)?
            .into_iter()
            .map(|r| admreg::MutatingWebhook {
                admission_review_versions: vec!["v1".to_string()],
                client_config: self.client.admission(&r.path, self.ca_bundle.as_deref()),
                failure_policy: Some(r.settings.failure_policy.unwrap_or(FailurePolicy::Fail).as_str().into()),
                match_conditions: match_conditions(&r.settings.match_conditions),
                match_policy: Some(
                    r.settings
                        .match_policy
                        .unwrap_or(MatchPolicy::Equivalent)
                        .as_str()
                        .into(),
                ),
                name: r.name,
                namespace_selector: r.settings.namespace_selector,
                object_selector: r.settings.object_selector,
                reinvocation_policy: Some(
                    r.settings
                        .reinvocation_policy
                        .unwrap_or(ReinvocationPolicy::Never)
                        .as_str()
                        .into(),
                ),
                rules: Some(r.rules),
                side_effects: r.settings.side_effects.unwrap_or(SideEffects::None).as_str().into(),
                timeout_seconds: Some(r.settings.timeout_seconds.unwrap_or(10)),
            })
            .collect();
        Ok(admreg::MutatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(webhooks),
        })
    }

    /// The `spec.conversion` of a CRD whose conversions `server` serves at `path`.
    /// [`conversion_for`](Self::conversion_for) also checks that the converter knows the CRD's
    /// kind and every version.
    ///
    /// # Errors
    /// [`Error::UnknownPath`], [`Error::NotConversion`], [`Error::InvalidClientConfig`].
    pub fn conversion(&self, server: &Server, path: &str) -> Result<apiext::CustomResourceConversion, Error> {
        self.conversion_path(server, path)?;
        conversion(&self.client, path, self.ca_bundle.as_deref())
    }

    /// The `spec.conversion` of `crd`, whose conversions `server` serves at `path`, once it is
    /// checked that the converter there converts `crd`'s kind and knows every version `crd`
    /// lists, served or not (kube-apiserver converts from any version objects were stored in,
    /// so a version kept unserved while old objects remain still needs converting). A version
    /// missing from the converter would otherwise show only at run time, when kube-apiserver
    /// fails every read, write and watch that needs it. (controller-runtime's `IsConvertible`
    /// checks the Go types' hub and spokes only, not the CRD.) The converter says what it
    /// converts through the `group`, `kind` and `api_versions` of its `Convert` implementation.
    ///
    /// # Errors
    /// [`Error::ConverterMismatch`] naming the other kind or the missing versions;
    /// [`Error::UnknownPath`], [`Error::NotConversion`], [`Error::InvalidClientConfig`].
    pub fn conversion_for(
        &self,
        server: &Server,
        path: &str,
        crd: &apiext::CustomResourceDefinition,
    ) -> Result<apiext::CustomResourceConversion, Error> {
        // Every conversion path says what it converts.
        let converts = self
            .conversion_path(server, path)?
            .converts
            .as_ref()
            .ok_or_else(|| Error::NotConversion { path: path.to_string() })?;
        check_converts(path, converts, crd)?;
        conversion(&self.client, path, self.ca_bundle.as_deref())
    }

    fn conversion_path<'s>(&self, server: &'s Server, path: &str) -> Result<&'s Registered, Error> {
        match server.webhooks().iter().find(|r| r.path == path) {
            None => Err(Error::UnknownPath { path: path.to_string() }),
            Some(r) if r.kind != Kind::Conversion => Err(Error::NotConversion { path: path.to_string() }),
            Some(r) => Ok(r),
        }
    }
}

/// Whether the converter behind `path` converts `crd`'s kind between all its versions.
fn check_converts(path: &str, converts: &Converts, crd: &apiext::CustomResourceDefinition) -> Result<(), Error> {
    let (group, kind) = (&crd.spec.group, &crd.spec.names.kind);
    let mismatch = |reason: String| Error::ConverterMismatch {
        path: path.to_string(),
        crd: crd.metadata.name.clone().unwrap_or_default(),
        reason,
    };
    if (&converts.group, &converts.kind) != (group, kind) {
        return Err(mismatch(format!(
            "it converts {}.{}, not the CRD's {kind}.{group}",
            converts.kind, converts.group
        )));
    }
    let missing: Vec<String> = crd
        .spec
        .versions
        .iter()
        .map(|v| format!("{group}/{}", v.name))
        .filter(|v| !converts.api_versions.contains(v))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(mismatch(format!(
        "its converter does not know {} (it knows {})",
        missing.join(", "),
        converts.api_versions.join(", ")
    )))
}

/// A CRD's `spec.conversion` sending conversions to `path` through `client`:
/// `{strategy: Webhook, webhook: {clientConfig: {...}, conversionReviewVersions: [v1]}}`.
///
/// # Errors
/// [`Error::InvalidClientConfig`].
///
/// # Examples
/// ```
/// use kdev_webhook::config::{self, ClientConfig};
///
/// let stanza = config::conversion(&ClientConfig::service("ops", "webhook"), "/convert", Some(b"PEM")).unwrap();
/// assert_eq!(stanza.strategy, "Webhook");
/// let webhook = stanza.webhook.unwrap();
/// assert_eq!(webhook.conversion_review_versions, ["v1"]);
/// assert_eq!(webhook.client_config.unwrap().service.unwrap().path.as_deref(), Some("/convert"));
/// ```
pub fn conversion(
    client: &ClientConfig,
    path: &str,
    ca_bundle: Option<&[u8]>,
) -> Result<apiext::CustomResourceConversion, Error> {
    client.validate()?;
    Ok(apiext::CustomResourceConversion {
        strategy: "Webhook".to_string(),
        webhook: Some(apiext::WebhookConversion {
            client_config: Some(client.conversion(path, ca_bundle)),
            conversion_review_versions: vec!["v1".to_string()],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_three_dns_segments() {
        assert!(validate_name("pods.validate.example.com").is_ok());
        assert!(validate_name("a.b.c").is_ok());
        for bad in [
            "",
            "a.b",
            "A.b.c",
            "a..c",
            "-a.b.c",
            "a.b.c-",
            "a_b.c.d",
            &"x".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_names_are_valid() {
        for path in [
            "/validate-pods",
            "/",
            "/v1/Validate_Pods/x",
            &format!("/{}", "p".repeat(100)),
        ] {
            let name = default_name(path);
            assert!(validate_name(&name).is_ok(), "{name}");
        }
        assert_eq!(default_name("/validate-pods"), "validate-pods.kdev.io");
    }

    #[test]
    fn match_conditions_are_checked_as_the_api_server_does() {
        let ok = |c: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = c.iter().map(|(n, e)| (n.to_string(), e.to_string())).collect();
            validate_match_conditions("/p", &owned)
        };
        assert!(ok(&[("exclude-leases", "request.resource.resource != 'leases'")]).is_ok());
        assert!(
            ok(&[(
                "example.com/not-system",
                "!request.userInfo.username.startsWith('system:')"
            )])
            .is_ok()
        );
        for bad in ["", "-a", "a-", "a b", "/a", "Bad_Prefix/a", "a/", &"x".repeat(64)] {
            let err = ok(&[(bad, "true")]).unwrap_err();
            assert!(err.to_string().contains("is not a qualified name"), "{bad:?}: {err}");
        }
        assert!(
            ok(&[("a", "true"), ("a", "false")])
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        assert!(ok(&[("a", "  ")]).unwrap_err().to_string().contains("empty expression"));
        let many: Vec<(String, String)> = (0..65).map(|i| (format!("c{i}"), "true".to_string())).collect();
        assert!(
            validate_match_conditions("/p", &many)
                .unwrap_err()
                .to_string()
                .contains("at most 64")
        );
        assert_eq!(match_conditions(&[]), None);
        assert_eq!(
            match_conditions(&[("a".into(), "true".into())]),
            Some(vec![admreg::MatchCondition {
                name: "a".into(),
                expression: "true".into()
            }])
        );
    }

    #[test]
    fn urls_must_be_https_with_a_host() {
        assert!(ClientConfig::url("https://h:9443").validate().is_ok());
        assert!(ClientConfig::url("http://h").validate().is_err());
        assert!(ClientConfig::url("https://u@h").validate().is_err());
        assert!(ClientConfig::service("ns", "svc").port(0).validate().is_err());
        let cfg = ClientConfig::url("https://h:9443/").admission("/v", None);
        assert_eq!(cfg.url.as_deref(), Some("https://h:9443/v"));
    }
}
