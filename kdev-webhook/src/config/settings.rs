//! Per-webhook settings: how kube-apiserver reaches the server, rules, and the policies of
//! `admissionregistration.k8s.io/v1` webhooks.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1 as admreg;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Error, Kind};

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

    pub(super) fn validate(&self) -> Result<(), Error> {
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
    pub(super) fn admission(&self, path: &str, ca_bundle: Option<&[u8]>) -> admreg::WebhookClientConfig {
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
    pub(super) fn conversion(&self, path: &str, ca_bundle: Option<&[u8]>) -> apiext::WebhookClientConfig {
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

    pub(super) fn check(&self, path: &str) -> Result<(), Error> {
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

    pub(super) fn to_api(&self) -> admreg::RuleWithOperations {
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
    pub(super) name: Option<String>,
    pub(super) kind: Option<Kind>,
    pub(super) rules: Option<Vec<Rule>>,
    pub(super) operations: Option<Vec<Operation>>,
    pub(super) scope: Option<Scope>,
    pub(super) subresources: Vec<String>,
    pub(super) failure_policy: Option<FailurePolicy>,
    pub(super) side_effects: Option<SideEffects>,
    pub(super) namespace_selector: Option<LabelSelector>,
    pub(super) object_selector: Option<LabelSelector>,
    pub(super) timeout_seconds: Option<i32>,
    pub(super) match_policy: Option<MatchPolicy>,
    pub(super) reinvocation_policy: Option<ReinvocationPolicy>,
    pub(super) match_conditions: Vec<(String, String)>,
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

    /// Formerly put a raw handler into the mutating configuration. The server must know
    /// whether a raw handler may patch, so that is now said where it is served:
    /// [`Builder::raw_mutating`](crate::server::Builder::raw_mutating) for a mutating webhook,
    /// [`Builder::raw`](crate::server::Builder::raw) for a validating one. `Kind::Mutating` on
    /// a path served with `raw` makes generating the configurations fail with
    /// [`Error::RawIsValidating`](super::Error::RawIsValidating); other kinds have no effect.
    #[deprecated(note = "serve a mutating raw handler with Builder::raw_mutating")]
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

    /// Adds a `matchConditions` entry: a CEL expression over `object`, `oldObject`, `request`
    /// and `authorizer` that must be true for the API server to call the webhook. All conditions
    /// must hold; a condition that fails to evaluate follows `failurePolicy`. Cheaper than a
    /// webhook call, and the way to exclude e.g. requests from a system user. At most 64 per
    /// webhook, each with a unique name (a Kubernetes qualified name); unset: none.
    pub fn match_condition(mut self, name: impl Into<String>, expression: impl Into<String>) -> Webhook {
        self.match_conditions.push((name.into(), expression.into()));
        self
    }

    /// `self`'s settings, each unset one taken from `defaults`.
    pub(super) fn or(&self, defaults: &Webhook) -> Webhook {
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
            match_conditions: if self.match_conditions.is_empty() {
                defaults.match_conditions.clone()
            } else {
                self.match_conditions.clone()
            },
        }
    }
}
