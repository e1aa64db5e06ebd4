//! Webhook configurations generated from a server's webhooks, and accepted by an API server.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kdev_webhook::Server;
use kdev_webhook::admission::{Defaulter, Request, Response, Validator, Verdict};
use kdev_webhook::config::{
    self, ClientConfig, Configurations, Error, FailurePolicy, Kind, MatchPolicy, Operation, ReinvocationPolicy, Rule,
    Scope, SideEffects, Webhook,
};
use kdev_webhook::tls::ServingCert;
use kube_client::Api;
use kube_client::api::{DeleteParams, PostParams};
use kube_client::discovery::ApiResource;
use serde_json::json;

struct Allow;
impl Validator<Pod> for Allow {}

struct Noop;
impl Defaulter<Deployment> for Noop {
    async fn set_defaults(&self, _req: &Request, _obj: &mut Deployment) -> Verdict {
        Verdict::allow()
    }
}

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

fn tls() -> ServingCert {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap()
}

fn server() -> Server {
    Server::builder()
        .validating("/validate-pods", Allow)
        .mutating("/mutate-deployments", Noop)
        .raw("/raw", allow)
        .tls(tls())
        .build()
        .unwrap()
}

/// A unique lowercase suffix for cluster-scoped names: random, so that parallel tests and
/// test runs sharing a cluster never collide.
pub fn unique() -> String {
    (0..10).map(|_| fastrand::lowercase()).collect()
}

/// Matches no namespace: configurations created on a real cluster must never be called.
pub fn no_namespace(suffix: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("kdev.io/never".to_string(), suffix.to_string())])),
        ..LabelSelector::default()
    }
}

#[test]
fn typed_webhooks_take_their_rules_from_the_resource_type() {
    let server = server();
    let configs = Configurations::new("ops", ClientConfig::service("ops-system", "ops-webhook").port(9443))
        .ca_bundle(b"PEM".to_vec())
        .webhook("/raw", Webhook::new().rule(Rule::new("", "v1", ["configmaps"])));
    let validating = configs.validating(&server).unwrap();
    assert_eq!(validating.metadata.name.as_deref(), Some("ops"));
    let hooks = validating.webhooks.unwrap();
    // Ordered by path: /raw, then /validate-pods.
    assert_eq!(hooks.len(), 2);
    let pods = &hooks[1];
    assert_eq!(pods.name, "validate-pods.kdev.io");
    let rule = &pods.rules.as_ref().unwrap()[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(rule.api_versions.as_deref(), Some(&["v1".to_string()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string()][..]));
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_string(), "UPDATE".to_string()][..])
    );
    assert_eq!(rule.scope.as_deref(), Some("*"));
    let service = pods.client_config.service.as_ref().unwrap();
    assert_eq!(
        (
            service.namespace.as_str(),
            service.name.as_str(),
            service.path.as_deref(),
            service.port
        ),
        ("ops-system", "ops-webhook", Some("/validate-pods"), Some(9443))
    );
    assert_eq!(pods.client_config.ca_bundle.as_ref().unwrap().0, b"PEM");
    assert_eq!(pods.admission_review_versions, ["v1"]);
    assert_eq!(pods.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(pods.side_effects, "None");
    assert_eq!(pods.timeout_seconds, Some(10));
    assert_eq!(pods.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(
        hooks[0].rules.as_ref().unwrap()[0].resources.as_deref(),
        Some(&["configmaps".to_string()][..])
    );

    let mutating = configs.mutating(&server).unwrap().webhooks.unwrap();
    assert_eq!(mutating.len(), 1);
    let rule = &mutating[0].rules.as_ref().unwrap()[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&["apps".to_string()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["deployments".to_string()][..]));
    assert_eq!(mutating[0].reinvocation_policy.as_deref(), Some("Never"));
}

#[test]
#[allow(deprecated)]
fn a_raw_handler_is_mutating_only_when_served_with_raw_mutating() {
    // Served with `raw`, the server answers it as a validating webhook: asking for the mutating
    // configuration is an error, not a webhook whose patches kube-apiserver would refuse.
    let rule = || Rule::new("", "v1", ["configmaps"]);
    let configs = Configurations::new("ops", ClientConfig::service("ops", "hooks"))
        .webhook("/raw", Webhook::new().kind(Kind::Mutating).rule(rule()));
    let err = configs.mutating(&server()).unwrap_err();
    assert!(
        matches!(&err, Error::RawIsValidating { path } if path == "/raw"),
        "{err}"
    );
    assert!(err.to_string().contains("Builder::raw_mutating"), "{err}");

    let configs =
        Configurations::new("ops", ClientConfig::service("ops", "hooks")).webhook("/raw", Webhook::new().rule(rule()));
    let server = Server::builder()
        .raw_mutating("/raw", allow)
        .tls(tls())
        .build()
        .unwrap();
    assert!(
        configs
            .validating(&server)
            .unwrap()
            .webhooks
            .unwrap_or_default()
            .is_empty()
    );
    let hooks = configs.mutating(&server).unwrap().webhooks.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0].client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/raw")
    );
}

#[test]
fn every_setting_can_be_overridden_per_webhook() {
    let server = Server::builder()
        .validating("/validate-pods", Allow)
        .mutating("/mutate-deployments", Noop)
        .raw_mutating("/raw", allow)
        .tls(tls())
        .build()
        .unwrap();
    let selector = no_namespace("x");
    let configs = Configurations::new("ops", ClientConfig::url("https://hooks.example.com:8443/"))
        .defaults(Webhook::new().failure_policy(FailurePolicy::Ignore))
        .webhook(
            "/raw",
            Webhook::new().rule(Rule::new("", "v1", ["secrets"]).scope(Scope::Namespaced)),
        )
        .webhook(
            "/mutate-deployments",
            Webhook::new()
                .name("deployments.defaults.example.com")
                .operations([Operation::Create])
                .subresource("scale")
                .scope(Scope::Namespaced)
                .side_effects(SideEffects::NoneOnDryRun)
                .namespace_selector(selector.clone())
                .object_selector(selector.clone())
                .timeout_seconds(5)
                .match_policy(MatchPolicy::Exact)
                .reinvocation_policy(ReinvocationPolicy::IfNeeded)
                .match_condition("not-system", "!request.userInfo.username.startsWith('system:')"),
        );
    // The raw handler served with raw_mutating is in the mutating configuration.
    assert_eq!(configs.validating(&server).unwrap().webhooks.unwrap().len(), 1);
    let hooks = configs.mutating(&server).unwrap().webhooks.unwrap();
    assert_eq!(hooks.len(), 2);
    let d = &hooks[0];
    assert_eq!(d.name, "deployments.defaults.example.com");
    assert_eq!(
        d.client_config.url.as_deref(),
        Some("https://hooks.example.com:8443/mutate-deployments")
    );
    assert!(d.client_config.service.is_none());
    let rule = &d.rules.as_ref().unwrap()[0];
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["deployments".to_string(), "deployments/scale".to_string()][..])
    );
    assert_eq!(rule.operations.as_deref(), Some(&["CREATE".to_string()][..]));
    assert_eq!(rule.scope.as_deref(), Some("Namespaced"));
    assert_eq!(d.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(d.side_effects, "NoneOnDryRun");
    assert_eq!(d.namespace_selector.as_ref(), Some(&selector));
    assert_eq!(d.object_selector.as_ref(), Some(&selector));
    assert_eq!(d.timeout_seconds, Some(5));
    assert_eq!(d.match_policy.as_deref(), Some("Exact"));
    assert_eq!(d.reinvocation_policy.as_deref(), Some("IfNeeded"));
    let conditions = d.match_conditions.as_ref().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].name, "not-system");
    assert_eq!(
        conditions[0].expression,
        "!request.userInfo.username.startsWith('system:')"
    );
    assert!(hooks[1].match_conditions.is_none());
    assert_eq!(hooks[1].rules.as_ref().unwrap()[0].scope.as_deref(), Some("Namespaced"));
}

#[test]
fn invalid_settings_are_refused_with_a_typed_error() {
    let server = server();
    let base = || Configurations::new("ops", ClientConfig::service("ns", "svc"));
    let with_raw_rule = || base().webhook("/raw", Webhook::new().rule(Rule::new("", "v1", ["configmaps"])));
    assert!(matches!(base().validating(&server), Err(Error::NoRules { path }) if path == "/raw"));
    assert!(matches!(
        with_raw_rule()
            .webhook("/validate-pods", Webhook::new().name("pods.example"))
            .validating(&server),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        with_raw_rule()
            .webhook("/validate-pods", Webhook::new().name("a.b.c"))
            .webhook(
                "/raw",
                Webhook::new().name("a.b.c").rule(Rule::new("", "v1", ["configmaps"]))
            )
            .validating(&server),
        Err(Error::DuplicateName { .. })
    ));
    for seconds in [0, 31] {
        assert!(matches!(
            with_raw_rule().webhook("/validate-pods", Webhook::new().timeout_seconds(seconds)).validating(&server),
            Err(Error::InvalidTimeout { seconds: s, .. }) if s == seconds
        ));
    }
    assert!(matches!(
        with_raw_rule().webhook("/nowhere", Webhook::new()).validating(&server),
        Err(Error::UnknownPath { .. })
    ));
    assert!(matches!(
        with_raw_rule()
            .webhook("/validate-pods", Webhook::new().operations([]))
            .validating(&server),
        Err(Error::EmptyRule { field: "operation", .. })
    ));
    assert!(matches!(
        Configurations::new("ops", ClientConfig::url("http://insecure")).validating(&server),
        Err(Error::InvalidClientConfig { .. })
    ));
    assert!(matches!(
        base().conversion(&server, "/validate-pods"),
        Err(Error::NotConversion { .. })
    ));
    assert!(matches!(
        base().conversion(&server, "/nope"),
        Err(Error::UnknownPath { .. })
    ));
    assert!(config::validate_name("pods.validate.example.com").is_ok());
}

#[tokio::test]
async fn generated_configurations_are_accepted_by_the_api_server() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let suffix = unique();
    let name = format!("kdev-config-test-{suffix}");
    let server = server();
    let configs = Configurations::new(name.clone(), ClientConfig::service("default", "kdev-nowhere"))
        .ca_bundle(
            kdev_webhook::certs::Settings::for_service("default", "kdev-nowhere")
                .generate()
                .unwrap()
                .ca_pem(),
        )
        .defaults(
            Webhook::new()
                .failure_policy(FailurePolicy::Ignore)
                .namespace_selector(no_namespace(&suffix))
                .match_condition("not-system", "!request.userInfo.username.startsWith('system:')"),
        )
        .webhook("/raw", Webhook::new().rule(Rule::new("", "v1", ["configmaps"])));
    let validating = configs.validating(&server).unwrap();
    let mutating = configs.mutating(&server).unwrap();

    env.delete_on_drop(&ApiResource::erase::<ValidatingWebhookConfiguration>(&()), &name);
    env.delete_on_drop(&ApiResource::erase::<MutatingWebhookConfiguration>(&()), &name);
    let vapi: Api<ValidatingWebhookConfiguration> = Api::all(env.client());
    let mapi: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let created_v = vapi.create(&PostParams::default(), &validating).await;
    let created_m = mapi.create(&PostParams::default(), &mutating).await;
    let read_v = vapi.get(&name).await;
    let read_m = mapi.get(&name).await;
    let _ = vapi.delete(&name, &DeleteParams::default()).await;
    let _ = mapi.delete(&name, &DeleteParams::default()).await;
    created_v.unwrap();
    created_m.unwrap();
    let (read_v, read_m) = (read_v.unwrap(), read_m.unwrap());
    // The server defaults what was left unset (objectSelector, the service port), so compare
    // what was set.
    let brief =
        |name: &str, rules: &Option<Vec<_>>, cc: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig| {
            (
                name.to_string(),
                rules.clone(),
                cc.ca_bundle.clone(),
                cc.service.as_ref().map(|s| s.path.clone()),
            )
        };
    let v = |c: &ValidatingWebhookConfiguration| -> Vec<_> {
        c.webhooks
            .iter()
            .flatten()
            .map(|w| brief(&w.name, &w.rules, &w.client_config))
            .collect()
    };
    let m = |c: &MutatingWebhookConfiguration| -> Vec<_> {
        c.webhooks
            .iter()
            .flatten()
            .map(|w| brief(&w.name, &w.rules, &w.client_config))
            .collect()
    };
    assert_eq!(v(&read_v), v(&validating));
    assert_eq!(m(&read_m), m(&mutating));
    assert_eq!(v(&read_v).len(), 2);
}

pub(crate) struct Widgets;

impl kdev_crd::conversion::Convert for Widgets {
    fn group(&self) -> &str {
        "example.com"
    }
    fn kind(&self) -> &str {
        "Widget"
    }
    fn api_versions(&self) -> Vec<String> {
        vec!["example.com/v1".into(), "example.com/v2".into()]
    }
    fn convert(
        &self,
        mut object: serde_json::Value,
        desired: &str,
    ) -> Result<serde_json::Value, kdev_crd::conversion::ConversionError> {
        object["apiVersion"] = desired.into();
        Ok(object)
    }
}

/// A CRD of `kind` in `group` serving `versions`.
fn crd(group: &str, kind: &str, versions: &[&str]) -> apiext::CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{}s.{group}", kind.to_lowercase())},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": format!("{}s", kind.to_lowercase())},
            "scope": "Namespaced",
            "versions": versions.iter().enumerate().map(|(i, v)| serde_json::json!({
                "name": v, "served": true, "storage": i == 0,
            })).collect::<Vec<_>>(),
        },
    }))
    .unwrap()
}

#[test]
fn a_checked_conversion_stanza_needs_a_converter_of_the_crds_kind_and_every_version() {
    let server = Server::builder()
        .validating("/validate-pods", Allow)
        .conversion("/convert", Widgets)
        .tls(tls())
        .build()
        .unwrap();
    let converts = server.webhooks()[1].converts.clone().expect("a conversion path");
    assert_eq!(
        (converts.group.as_str(), converts.kind.as_str(), converts.api_versions),
        (
            "example.com",
            "Widget",
            vec!["example.com/v1".to_string(), "example.com/v2".into()]
        )
    );
    assert_eq!(server.webhooks()[0].converts, None);
    let configs = Configurations::new("ops", ClientConfig::service("ops-system", "ops-webhook"));
    let widgets = crd("example.com", "Widget", &["v2", "v1"]);
    let stanza = configs.conversion_for(&server, "/convert", &widgets).unwrap();
    assert_eq!(stanza, configs.conversion(&server, "/convert").unwrap());

    let three = crd("example.com", "Widget", &["v1", "v2", "v3"]);
    let err = configs.conversion_for(&server, "/convert", &three).unwrap_err();
    assert!(matches!(err, Error::ConverterMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "/convert cannot convert the CRD widgets.example.com: its converter does not know example.com/v3 \
         (it knows example.com/v1, example.com/v2)"
    );
    let gadgets = crd("example.com", "Gadget", &["v1"]);
    let err = configs.conversion_for(&server, "/convert", &gadgets).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/convert cannot convert the CRD gadgets.example.com: it converts Widget.example.com, not the CRD's Gadget.example.com"
    );
    let other_group = crd("example.org", "Widget", &["v1"]);
    assert!(configs.conversion_for(&server, "/convert", &other_group).is_err());
    assert!(matches!(
        configs.conversion_for(&server, "/validate-pods", &widgets),
        Err(Error::NotConversion { .. })
    ));
}

#[test]
fn a_conversion_path_gives_the_crd_conversion_stanza() {
    let server = Server::builder()
        .validating("/validate-pods", Allow)
        .conversion("/convert", Widgets)
        .tls(tls())
        .build()
        .unwrap();
    let configs = Configurations::new("ops", ClientConfig::service("ops-system", "ops-webhook").port(8443))
        .ca_bundle(b"CA".to_vec());
    let stanza = configs.conversion(&server, "/convert").unwrap();
    assert_eq!(stanza.strategy, "Webhook");
    let webhook = stanza.webhook.unwrap();
    assert_eq!(webhook.conversion_review_versions, ["v1"]);
    let cc = webhook.client_config.unwrap();
    assert_eq!(cc.ca_bundle.unwrap().0, b"CA");
    let service = cc.service.unwrap();
    assert_eq!(
        (
            service.namespace.as_str(),
            service.name.as_str(),
            service.path.as_deref(),
            service.port
        ),
        ("ops-system", "ops-webhook", Some("/convert"), Some(8443))
    );
    // The conversion path is in neither admission configuration.
    let hooks = configs.validating(&server).unwrap().webhooks.unwrap();
    assert_eq!(hooks.len(), 1);
    assert!(configs.mutating(&server).unwrap().webhooks.unwrap().is_empty());
    assert_eq!(
        server
            .webhooks()
            .iter()
            .map(|w| (w.path.as_str(), w.kind))
            .collect::<Vec<_>>(),
        [("/validate-pods", Kind::Validating), ("/convert", Kind::Conversion)]
    );
}

#[test]
fn public_handles_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let mut registry = prometheus_client::registry::Registry::default();
    send_sync(&kdev_webhook::metrics::Metrics::register(&mut registry));
    send_sync(&configs_for_assertions());
    let dir = crate::watch::temp_dir("send-sync");
    let rotator =
        kdev_webhook::certs::Rotator::new(kdev_webhook::certs::Settings::for_service("a", "b"), &dir).unwrap();
    send_sync(&rotator.current());
    let stop = tokio_util::sync::CancellationToken::new();
    let bundles = rotator.subscribe();
    send(&rotator.run(stop.clone()));
    // Type-checked, never called: these need a cluster.
    let _ = |injector: kdev_webhook::inject::Injector| {
        send_sync(&injector);
        send(&injector.inject(b"PEM"));
        send(&injector.run(bundles, stop));
    };
    let _ = |client: kube_client::Client, rotator: kdev_webhook::certs::SharedRotator| {
        send(&kdev_webhook::certs::SharedRotator::new(
            client,
            "ns",
            "certs",
            kdev_webhook::certs::Settings::for_service("a", "b"),
            "/tmp/certs",
        ));
        send(&rotator.rotate());
        send_sync(&rotator);
        send(&rotator.run(tokio_util::sync::CancellationToken::new()));
    };
    let _ = |webhook: kdev_webhook::manager::Webhook| {
        send_sync(&webhook);
        send(&webhook.local_addr());
    };
    let _ = std::fs::remove_dir_all(&dir);
}

fn configs_for_assertions() -> Configurations {
    Configurations::new("x", ClientConfig::service("a", "b"))
}

/// Only the labels: a partial type, not a `kube::Resource`.
#[derive(serde::Deserialize, serde::Serialize)]
struct Labelled {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
}

struct NeedsTeam;
impl Validator<Labelled> for NeedsTeam {
    async fn validate_create(&self, _req: &Request, obj: &Labelled) -> Verdict {
        match obj.metadata.labels.as_ref().and_then(|l| l.get("team")) {
            Some(_) => Verdict::allow(),
            None => Verdict::deny("a team label is required"),
        }
    }
}

struct AddTeam;
impl Defaulter<kube_core::DynamicObject> for AddTeam {
    async fn set_defaults(&self, _req: &Request, obj: &mut kube_core::DynamicObject) -> Verdict {
        obj.metadata
            .labels
            .get_or_insert_with(Default::default)
            .entry("team".into())
            .or_insert_with(|| "platform".into());
        Verdict::allow()
    }
}

#[tokio::test]
async fn dynamic_and_partial_types_are_served_and_need_a_rule_in_the_configuration() {
    let builder = || {
        Server::builder()
            .validating_dynamic("/validate-team", NeedsTeam)
            .mutating_dynamic("/default-team", AddTeam)
            .tls(tls())
    };
    let server = builder().build().unwrap();
    let base = Configurations::new("ops", ClientConfig::service("ns", "svc"));
    assert!(matches!(base.clone().mutating(&server), Err(Error::NoRules { path }) if path == "/default-team"));
    let configs = base
        .webhook(
            "/validate-team",
            Webhook::new().rule(Rule::new("", "v1", ["configmaps"])),
        )
        .webhook(
            "/default-team",
            Webhook::new().rule(Rule::new("", "v1", ["configmaps"])),
        );
    assert_eq!(
        configs.validating(&server).unwrap().webhooks.unwrap()[0].name,
        "validate-team.kdev.io"
    );
    assert_eq!(
        configs.mutating(&server).unwrap().webhooks.unwrap()[0].name,
        "default-team.kdev.io"
    );

    let server = builder().build_in_process().unwrap();
    let review = |path: &str| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": path, "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            }
        })
    };
    let call = |path: &'static str| {
        let body = serde_json::to_vec(&review(path)).unwrap();
        let server = &server;
        async move {
            let response = server.call(path, body.into()).await;
            serde_json::from_slice::<serde_json::Value>(response.body()).unwrap()
        }
    };
    let denied = call("/validate-team").await;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    let defaulted = call("/default-team").await;
    assert_eq!(defaulted["response"]["allowed"], true, "{defaulted}");
    assert_eq!(defaulted["response"]["patchType"], "JSONPatch", "{defaulted}");
}
