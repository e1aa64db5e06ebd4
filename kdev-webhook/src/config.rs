//! ValidatingWebhookConfiguration, MutatingWebhookConfiguration and a CRD's conversion stanza
//! generated from a [`Server`]'s registered webhooks, as kubebuilder's `+kubebuilder:webhook`
//! markers generate them
//! ([admission webhooks](https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/),
//! go-reference §C.5).
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

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1 as admreg;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::Server;

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
    /// A raw admission handler: validating unless [`Webhook::kind`] says mutating.
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

/// One path a server serves, as [`Server::webhooks`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The path.
    pub path: String,
    /// What it serves.
    pub kind: Kind,
    /// The resource of a typed webhook.
    pub resource: Option<GroupVersionResource>,
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
        }
    }

    pub(crate) fn untyped(path: &str, kind: Kind) -> Registered {
        Registered {
            path: path.to_string(),
            kind,
            resource: None,
        }
    }
}

/// How kube-apiserver reaches the server: a Service in the cluster, or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientConfig {
    /// The Service `namespace/name`, on `port` (kube-apiserver's default 443 when `None`).
    Service {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The Service port.
        port: Option<i32>,
    },
    /// A base URL (`https://host:port`); each webhook's path is appended.
    Url(String),
}

impl ClientConfig {
    /// The Service `namespace/name` on port 443.
    pub fn service(namespace: impl Into<String>, name: impl Into<String>) -> ClientConfig {
        ClientConfig::Service {
            namespace: namespace.into(),
            name: name.into(),
            port: None,
        }
    }

    /// The Service on another port (a no-op for a URL).
    #[must_use]
    pub fn port(mut self, port: i32) -> ClientConfig {
        if let ClientConfig::Service { port: p, .. } = &mut self {
            *p = Some(port);
        }
        self
    }

    /// A base URL such as `https://webhook.example.com:9443`.
    pub fn url(base: impl Into<String>) -> ClientConfig {
        ClientConfig::Url(base.into())
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            ClientConfig::Service { namespace, name, port } => {
                if namespace.is_empty() || name.is_empty() {
                    return Err(Error::InvalidClientConfig {
                        reason: "the service namespace and name must not be empty".into(),
                    });
                }
                if let Some(p) = port
                    && !(1..=65535).contains(p)
                {
                    return Err(Error::InvalidClientConfig {
                        reason: format!("service port {p} is outside 1-65535"),
                    });
                }
            }
            ClientConfig::Url(url) => {
                let rest = url.strip_prefix("https://").ok_or_else(|| Error::InvalidClientConfig {
                    reason: format!("url {url:?} must use https"),
                })?;
                if rest.is_empty() || rest.contains(['?', '#', '@']) {
                    return Err(Error::InvalidClientConfig {
                        reason: format!("url {url:?} needs a host and no user info, query or fragment"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The admissionregistration form, for the webhook at `path`.
    fn admission(&self, path: &str, ca_bundle: Option<&[u8]>) -> admreg::WebhookClientConfig {
        let ca_bundle = ca_bundle.map(|b| ByteString(b.to_vec()));
        match self {
            ClientConfig::Service { namespace, name, port } => admreg::WebhookClientConfig {
                ca_bundle,
                service: Some(admreg::ServiceReference {
                    name: name.clone(),
                    namespace: namespace.clone(),
                    path: Some(path.to_string()),
                    port: *port,
                }),
                url: None,
            },
            ClientConfig::Url(base) => admreg::WebhookClientConfig {
                ca_bundle,
                service: None,
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            },
        }
    }

    /// The apiextensions form, for the conversion webhook at `path`.
    fn conversion(&self, path: &str, ca_bundle: Option<&[u8]>) -> apiext::WebhookClientConfig {
        let admission = self.admission(path, ca_bundle);
        apiext::WebhookClientConfig {
            ca_bundle: admission.ca_bundle,
            service: admission.service.map(|s| apiext::ServiceReference {
                name: s.name,
                namespace: s.namespace,
                path: s.path,
                port: s.port,
            }),
            url: admission.url,
        }
    }
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The value as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }
    };
}

wire_enum!(
    /// An operation a rule matches.
    Operation {
        /// `CREATE`.
        Create => "CREATE",
        /// `UPDATE`.
        Update => "UPDATE",
        /// `DELETE`.
        Delete => "DELETE",
        /// `CONNECT`.
        Connect => "CONNECT",
        /// `*`: every operation.
        All => "*",
    }
);

wire_enum!(
    /// Which objects a rule matches by scope.
    Scope {
        /// `Cluster`: cluster-scoped objects only.
        Cluster => "Cluster",
        /// `Namespaced`: namespaced objects only.
        Namespaced => "Namespaced",
        /// `*`: both (the default).
        All => "*",
    }
);

wire_enum!(
    /// What kube-apiserver does when the webhook cannot be called or errs.
    FailurePolicy {
        /// `Fail`: the request is rejected (the default, kube-apiserver's and kubebuilder's).
        Fail => "Fail",
        /// `Ignore`: the request goes through.
        Ignore => "Ignore",
    }
);

wire_enum!(
    /// Whether the webhook has side effects beyond its answer.
    SideEffects {
        /// `None` (the default).
        None => "None",
        /// `NoneOnDryRun`: side effects, skipped when the request is a dry run.
        NoneOnDryRun => "NoneOnDryRun",
    }
);

wire_enum!(
    /// Whether a request made through another version of a matched resource is sent too.
    MatchPolicy {
        /// `Equivalent`: yes, converted (the default).
        Equivalent => "Equivalent",
        /// `Exact`: only requests that match a rule exactly.
        Exact => "Exact",
    }
);

wire_enum!(
    /// Whether a mutating webhook is called again after later mutations.
    ReinvocationPolicy {
        /// `Never` (the default).
        Never => "Never",
        /// `IfNeeded`: once more if a later webhook changed the object.
        IfNeeded => "IfNeeded",
    }
);

/// One rule: operations on resources, as `RuleWithOperations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    operations: Vec<Operation>,
    api_groups: Vec<String>,
    api_versions: Vec<String>,
    resources: Vec<String>,
    scope: Scope,
}

impl Rule {
    /// Matches `resources` (plurals, `pods/status` for a subresource, `*` for all) of
    /// `api_group` (`""` for core) in `api_version`, on CREATE and UPDATE, in any scope.
    pub fn new<R: Into<String>>(
        api_group: impl Into<String>,
        api_version: impl Into<String>,
        resources: impl IntoIterator<Item = R>,
    ) -> Rule {
        Rule {
            operations: vec![Operation::Create, Operation::Update],
            api_groups: vec![api_group.into()],
            api_versions: vec![api_version.into()],
            resources: resources.into_iter().map(Into::into).collect(),
            scope: Scope::All,
        }
    }

    /// The operations matched (default CREATE and UPDATE).
    #[must_use]
    pub fn operations(mut self, operations: impl IntoIterator<Item = Operation>) -> Rule {
        self.operations = operations.into_iter().collect();
        self
    }

    /// More API groups.
    #[must_use]
    pub fn api_groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Rule {
        self.api_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// More API versions.
    #[must_use]
    pub fn api_versions<S: Into<String>>(mut self, versions: impl IntoIterator<Item = S>) -> Rule {
        self.api_versions = versions.into_iter().map(Into::into).collect();
        self
    }

    /// The scope matched (default `*`).
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Rule {
        self.scope = scope;
        self
    }

    fn check(&self, path: &str) -> Result<(), Error> {
        for (field, empty) in [
            ("operation", self.operations.is_empty()),
            ("API group", self.api_groups.is_empty()),
            ("API version", self.api_versions.is_empty()),
            ("resource", self.resources.is_empty()),
        ] {
            if empty {
                return Err(Error::EmptyRule {
                    path: path.to_string(),
                    field,
                });
            }
        }
        Ok(())
    }

    fn to_api(&self) -> admreg::RuleWithOperations {
        admreg::RuleWithOperations {
            api_groups: Some(self.api_groups.clone()),
            api_versions: Some(self.api_versions.clone()),
            operations: Some(self.operations.iter().map(|o| o.as_str().to_string()).collect()),
            resources: Some(self.resources.clone()),
            scope: Some(self.scope.as_str().to_string()),
        }
    }
}

/// Settings of one webhook; every one unset takes the default given with its setter.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Webhook {
    name: Option<String>,
    kind: Option<Kind>,
    rules: Option<Vec<Rule>>,
    operations: Option<Vec<Operation>>,
    scope: Option<Scope>,
    subresources: Vec<String>,
    failure_policy: Option<FailurePolicy>,
    side_effects: Option<SideEffects>,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    timeout_seconds: Option<i32>,
    match_policy: Option<MatchPolicy>,
    reinvocation_policy: Option<ReinvocationPolicy>,
}

impl Webhook {
    /// Every setting at its default.
    pub fn new() -> Webhook {
        Webhook::default()
    }

    /// The webhook's name, a fully-qualified DNS name with at least three segments
    /// (`pods.validate.example.com`). Default: the path's segments joined with `-` (the
    /// leading `/` dropped), then `.kdev.io`: `/validate-pods` is named `validate-pods.kdev.io`.
    pub fn name(mut self, name: impl Into<String>) -> Webhook {
        self.name = Some(name.into());
        self
    }

    /// Puts a raw handler into the mutating configuration ([`Kind::Mutating`]) or the
    /// validating one ([`Kind::Validating`], the default). No effect on typed webhooks.
    pub fn kind(mut self, kind: Kind) -> Webhook {
        self.kind = Some(kind);
        self
    }

    /// Replaces the inferred rule with `rule`; call again to add more.
    pub fn rule(mut self, rule: Rule) -> Webhook {
        self.rules.get_or_insert_with(Vec::new).push(rule);
        self
    }

    /// The operations of the inferred rule (default CREATE and UPDATE, kubebuilder's
    /// scaffolding default).
    pub fn operations(mut self, operations: impl IntoIterator<Item = Operation>) -> Webhook {
        self.operations = Some(operations.into_iter().collect());
        self
    }

    /// The scope of the inferred rule (default `*`).
    pub fn scope(mut self, scope: Scope) -> Webhook {
        self.scope = Some(scope);
        self
    }

    /// Adds a subresource of the inferred resource to its rule (`status` matches `pods/status`).
    pub fn subresource(mut self, subresource: impl Into<String>) -> Webhook {
        self.subresources.push(subresource.into());
        self
    }

    /// `failurePolicy` (default `Fail`).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Webhook {
        self.failure_policy = Some(policy);
        self
    }

    /// `sideEffects` (default `None`).
    pub fn side_effects(mut self, side_effects: SideEffects) -> Webhook {
        self.side_effects = Some(side_effects);
        self
    }

    /// `namespaceSelector` (default: every namespace).
    pub fn namespace_selector(mut self, selector: LabelSelector) -> Webhook {
        self.namespace_selector = Some(selector);
        self
    }

    /// `objectSelector` (default: every object).
    pub fn object_selector(mut self, selector: LabelSelector) -> Webhook {
        self.object_selector = Some(selector);
        self
    }

    /// `timeoutSeconds`, 1–30 (default 10, kube-apiserver's).
    pub fn timeout_seconds(mut self, seconds: i32) -> Webhook {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// `matchPolicy` (default `Equivalent`).
    pub fn match_policy(mut self, policy: MatchPolicy) -> Webhook {
        self.match_policy = Some(policy);
        self
    }

    /// `reinvocationPolicy` of a mutating webhook (default `Never`).
    pub fn reinvocation_policy(mut self, policy: ReinvocationPolicy) -> Webhook {
        self.reinvocation_policy = Some(policy);
        self
    }

    /// `self`'s settings, each unset one taken from `defaults`.
    fn or(&self, defaults: &Webhook) -> Webhook {
        Webhook {
            name: self.name.clone(),
            kind: self.kind.or(defaults.kind),
            rules: self.rules.clone().or_else(|| defaults.rules.clone()),
            operations: self.operations.clone().or_else(|| defaults.operations.clone()),
            scope: self.scope.or(defaults.scope),
            subresources: if self.subresources.is_empty() {
                defaults.subresources.clone()
            } else {
                self.subresources.clone()
            },
            failure_policy: self.failure_policy.or(defaults.failure_policy),
            side_effects: self.side_effects.or(defaults.side_effects),
            namespace_selector: self
                .namespace_selector
                .clone()
                .or_else(|| defaults.namespace_selector.clone()),
            object_selector: self
                .object_selector
                .clone()
                .or_else(|| defaults.object_selector.clone()),
            timeout_seconds: self.timeout_seconds.or(defaults.timeout_seconds),
            match_policy: self.match_policy.or(defaults.match_policy),
            reinvocation_policy: self.reinvocation_policy.or(defaults.reinvocation_policy),
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
                    Some(Kind::Mutating) => Kind::Mutating,
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
                match_conditions: None,
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
                match_conditions: None,
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
    ///
    /// # Errors
    /// [`Error::UnknownPath`], [`Error::NotConversion`], [`Error::InvalidClientConfig`].
    pub fn conversion(&self, server: &Server, path: &str) -> Result<apiext::CustomResourceConversion, Error> {
        match server.webhooks().iter().find(|r| r.path == path) {
            None => Err(Error::UnknownPath { path: path.to_string() }),
            Some(r) if r.kind != Kind::Conversion => Err(Error::NotConversion { path: path.to_string() }),
            Some(_) => conversion(&self.client, path, self.ca_bundle.as_deref()),
        }
    }
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
    fn urls_must_be_https_with_a_host() {
        assert!(ClientConfig::url("https://h:9443").validate().is_ok());
        assert!(ClientConfig::url("http://h").validate().is_err());
        assert!(ClientConfig::url("https://u@h").validate().is_err());
        assert!(ClientConfig::service("ns", "svc").port(0).validate().is_err());
        let cfg = ClientConfig::url("https://h:9443/").admission("/v", None);
        assert_eq!(cfg.url.as_deref(), Some("https://h:9443/v"));
    }
}
