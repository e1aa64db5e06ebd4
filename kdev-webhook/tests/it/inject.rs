//! CA injection into webhook configurations and CRDs on an API server.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_testenv::TestEnv;
use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response, Validator};
use kdev_webhook::certs::Settings;
use kdev_webhook::config::{self, ClientConfig, Configurations, FailurePolicy, Rule, Webhook};
use kdev_webhook::inject::{Error, Injector};
use kdev_webhook::tls::ServingCert;
use kube_client::api::{DeleteParams, PostParams};
use kube_client::discovery::ApiResource;
use kube_client::{Api, Client};
use serde_json::json;

use crate::config::{no_namespace, unique};

struct Allow;
impl Validator<Pod> for Allow {}

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

/// Creates a validating and a mutating configuration (no caBundle, two webhooks in the
/// validating one) named `name`, and a CRD with a conversion webhook; returns the CRD's name.
/// All three are handed to `env` first, so they are deleted when it drops, even after a panic.
async fn create_objects(env: &TestEnv, name: &str, suffix: &str, annotations: Option<(&str, &str)>) -> String {
    let client = env.client();
    let group = format!("inject{suffix}.kdev.io");
    let crd_name = format!("widgets.{group}");
    env.delete_on_drop(&ApiResource::erase::<ValidatingWebhookConfiguration>(&()), name);
    env.delete_on_drop(&ApiResource::erase::<MutatingWebhookConfiguration>(&()), name);
    env.delete_on_drop(&ApiResource::erase::<CustomResourceDefinition>(&()), &crd_name);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap();
    let server = Server::builder()
        .validating("/validate-pods", Allow)
        .raw("/validate-configmaps", allow)
        .raw_mutating("/mutate", allow)
        .tls(tls)
        .build()
        .unwrap();
    let client_config = ClientConfig::service("default", "kdev-nowhere");
    let configs = Configurations::new(name, client_config.clone())
        .defaults(
            Webhook::new()
                .failure_policy(FailurePolicy::Ignore)
                .namespace_selector(no_namespace(suffix)),
        )
        .webhook(
            "/validate-configmaps",
            Webhook::new().rule(Rule::new("", "v1", ["configmaps"])),
        )
        .webhook("/mutate", Webhook::new().rule(Rule::new("", "v1", ["configmaps"])));
    let mut validating = configs.validating(&server).unwrap();
    let mut mutating = configs.mutating(&server).unwrap();
    if let Some((key, value)) = annotations {
        let a = Some([(key.to_string(), value.to_string())].into());
        validating.metadata.annotations = a.clone();
        mutating.metadata.annotations = a;
    }
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await
        .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating)
        .await
        .unwrap();

    let mut crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap();
    crd.spec.conversion = Some(config::conversion(&client_config, "/convert", None).unwrap());
    if let Some((key, value)) = annotations {
        crd.metadata.annotations = Some([(key.to_string(), value.to_string())].into());
    }
    Api::<CustomResourceDefinition>::all(client)
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    crd_name
}

/// Every caBundle of the three objects.
async fn bundles(client: &Client, name: &str, crd: &str) -> Vec<Option<Vec<u8>>> {
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    let c = Api::<CustomResourceDefinition>::all(client.clone())
        .get(crd)
        .await
        .unwrap();
    let mut out: Vec<Option<Vec<u8>>> = v
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.ca_bundle.map(|b| b.0))
        .collect();
    out.extend(
        m.webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.client_config.ca_bundle.map(|b| b.0)),
    );
    out.push(
        c.spec
            .conversion
            .and_then(|c| c.webhook)
            .and_then(|w| w.client_config)
            .and_then(|cc| cc.ca_bundle)
            .map(|b| b.0),
    );
    out
}

#[tokio::test]
async fn the_ca_bundle_is_injected_into_named_configurations_and_crds() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let suffix = unique();
    let name = format!("kdev-inject-{suffix}");
    let crd = create_objects(&env, &name, &suffix, None).await;

    assert_eq!(bundles(&client, &name, &crd).await, vec![None; 4]);
    let injector = Injector::new(client.clone())
        .validating(&name)
        .mutating(&name)
        .crd(&crd);
    let first = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    assert_eq!(injector.inject(first.as_bytes()).await.unwrap(), 3);
    assert_eq!(
        bundles(&client, &name, &crd).await,
        vec![Some(first.clone().into_bytes()); 4]
    );
    // Nothing to change: nothing is written.
    let rv = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&name)
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(injector.inject(first.as_bytes()).await.unwrap(), 0);
    let rv_after = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&name)
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(rv, rv_after);
    // A rotated CA replaces the bundle everywhere.
    let second = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    assert_eq!(injector.inject(second.as_bytes()).await.unwrap(), 3);
    assert_eq!(bundles(&client, &name, &crd).await, vec![Some(second.into_bytes()); 4]);
}

#[tokio::test]
async fn annotated_objects_are_found_and_missing_named_ones_are_an_error() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let suffix = unique();
    let name = format!("kdev-inject-annotated-{suffix}");
    let value = format!("operators/webhook-{suffix}");
    let crd = create_objects(&env, &name, &suffix, Some(("kdev.io/inject-ca-from", &value))).await;

    let ca = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    let injector = Injector::new(client.clone()).annotated("kdev.io/inject-ca-from", &value);
    assert_eq!(injector.inject(ca.as_bytes()).await.unwrap(), 3);
    assert_eq!(
        bundles(&client, &name, &crd).await,
        vec![Some(ca.clone().into_bytes()); 4]
    );

    let missing = Injector::new(client.clone()).validating(format!("kdev-absent-{suffix}"));
    assert!(matches!(
        missing.inject(ca.as_bytes()).await,
        Err(Error::NotFound { .. })
    ));

    // A missing named object is reported, and the other targets still get the bundle.
    let renewed = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    let both = Injector::new(client.clone())
        .validating(format!("kdev-absent-{suffix}"))
        .annotated("kdev.io/inject-ca-from", &value);
    assert!(matches!(
        both.inject(renewed.as_bytes()).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(bundles(&client, &name, &crd).await, vec![Some(renewed.into_bytes()); 4]);
}

#[tokio::test]
async fn the_injector_follows_the_rotator() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let suffix = unique();
    let name = format!("kdev-inject-run-{suffix}");
    let crd = create_objects(&env, &name, &suffix, None).await;
    let dir = crate::watch::temp_dir("inject-run");

    // A CA renewed at every rotation.
    let settings = Settings::for_service("default", "kdev-nowhere")
        .ca_validity(std::time::Duration::from_secs(3600))
        .renew_at(1e-9);
    let rotator = kdev_webhook::certs::Rotator::new(settings, &dir).unwrap();
    let injector = Injector::new(client.clone())
        .validating(&name)
        .mutating(&name)
        .crd(&crd);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(injector.run(rotator.subscribe(), stop.clone()));
    for round in 0..2 {
        let bundle = if round == 0 {
            rotator.current()
        } else {
            rotator.rotate().unwrap()
        };
        let want = vec![Some(bundle.ca_pem().into_bytes()); 4];
        let mut seen = Vec::new();
        for _ in 0..300 {
            seen = bundles(&client, &name, &crd).await;
            if seen == want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen, want);
    }
    stop.cancel();
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

struct NoLatest;

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> kdev_webhook::admission::Verdict {
        let latest = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| c.image.as_deref())
            .any(|i| i.ends_with(":latest"));
        if latest {
            kdev_webhook::admission::Verdict::deny("kdev-e2e: the :latest tag is not allowed")
        } else {
            kdev_webhook::admission::Verdict::allow()
        }
    }
}

/// Creates a pod running `image`; the API server's error message when refused.
async fn create_pod(client: &Client, ns: &str, name: &str, image: &str) -> Result<(), String> {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube_client::Error::Api(status) => status.message,
            other => other.to_string(),
        })
}

/// Tries to create `:latest` pods until the webhook's denial comes back (at most 30 s): the
/// API server reached the server and trusted its certificate. The last error seen.
async fn wait_for_denial(client: &Client, ns: &str) -> String {
    let mut last = String::new();
    for i in 0..300 {
        match create_pod(client, ns, &format!("latest-{i}"), "nginx:latest").await {
            Err(message) if message.contains("kdev-e2e: the :latest tag is not allowed") => return message,
            Err(message) => last = message,
            Ok(()) => panic!("a :latest pod was admitted"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn the_api_server_calls_a_generated_configuration_through_generated_and_rotated_certificates() {
    // Always on the embedded server, even when KDEV_TEST_KUBECONFIG names a real cluster: it
    // maps the webhook Service to this test's loopback address, which a real API server cannot
    // reach, and the configuration (fixed name, failurePolicy Fail, every pod) must never be
    // registered on a shared cluster.
    let dir = crate::watch::temp_dir("inject-e2e");
    // Every rotation renews the CA too (renewal point 3.6 µs into an hour).
    let settings = Settings::for_service("webhooks", "kdev-e2e")
        .ca_validity(std::time::Duration::from_secs(3600))
        .renew_at(1e-9);
    let rotator = kdev_webhook::certs::Rotator::new(settings, &dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .validating("/validate-pods", NoLatest)
        .tls(ServingCert::from_dir(&dir))
        .build()
        .unwrap();
    let client_config = ClientConfig::service("webhooks", "kdev-e2e");
    let configs = Configurations::new("kdev-e2e", client_config)
        .webhook("/validate-pods", Webhook::new().name("pods.kdev-e2e.kdev.io"));
    let validating = configs.validating(&server).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(server.serve_with_incoming_shutdown(
        kdev_webhook::server::tcp_incoming(listener),
        stop.clone().cancelled_owned(),
    ));
    let env = kdev_testenv::TestEnv::embedded(
        kdev_testenv::Config::default().webhook_service("webhooks", "kdev-e2e", 443, addr),
    )
    .await
    .unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();

    // The configuration is deployed without a caBundle; the injector adds it and follows the CA.
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await
        .unwrap();
    let injector = Injector::new(client.clone()).validating("kdev-e2e");
    let injecting = tokio::spawn(injector.run(rotator.subscribe(), stop.clone()));

    let denial = wait_for_denial(&client, &ns).await;
    assert!(denial.contains("kdev-e2e: the :latest tag is not allowed"), "{denial}");
    create_pod(&client, &ns, "pinned-1", "nginx:1.27").await.unwrap();

    // A new CA and a new serving certificate: the server reloads the files, the injector writes
    // the new bundle, and the API server trusts the webhook again.
    let rotated = rotator.rotate().unwrap();
    let want = rotated.ca_pem().into_bytes();
    let mut bundle = Vec::new();
    for _ in 0..300 {
        let stored = Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .get("kdev-e2e")
            .await
            .unwrap();
        bundle = stored.webhooks.unwrap()[0].client_config.ca_bundle.clone().unwrap().0;
        if bundle == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        String::from_utf8_lossy(&bundle),
        rotated.ca_pem(),
        "the new bundle was never injected"
    );
    let denial = wait_for_denial(&client, &ns).await;
    assert!(denial.contains("kdev-e2e: the :latest tag is not allowed"), "{denial}");
    create_pod(&client, &ns, "pinned-2", "nginx:1.27").await.unwrap();

    stop.cancel();
    injecting.await.unwrap();
    serving.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn conflicting_writes_are_retried_and_a_persistent_conflict_is_reported() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    if !env.faults().supported() {
        println!("skipped on a real cluster: it needs the embedded server's fault injection to answer 409");
        return;
    }
    let client = env.client();
    let suffix = unique();
    let name = format!("kdev-inject-conflict-{suffix}");
    let crd = create_objects(&env, &name, &suffix, None).await;
    let conflicts = |times| {
        kdev_testenv::Failure::new(409)
            .verb("update")
            .resource("validatingwebhookconfigurations")
            .times(times)
    };

    let injector = Injector::new(client.clone()).validating(&name);
    let ca = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    // Two conflicts, then the write goes through.
    env.faults().fail(conflicts(2)).unwrap();
    assert_eq!(injector.inject(ca.as_bytes()).await.unwrap(), 1);
    assert_eq!(
        bundles(&client, &name, &crd).await[..2],
        [Some(ca.clone().into_bytes()), Some(ca.into_bytes())]
    );
    // A conflict on every try: a typed error after the retries.
    let other = Settings::for_service("default", "kdev-nowhere")
        .generate()
        .unwrap()
        .ca_pem();
    env.faults().fail(conflicts(100)).unwrap();
    let err = injector.inject(other.as_bytes()).await.unwrap_err();
    env.faults().clear().unwrap();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn a_named_crd_without_a_conversion_webhook_is_an_error() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let suffix = unique();
    let group = format!("plain{suffix}.kdev.io");
    let name = format!("gadgets.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap();
    env.delete_on_drop(&ApiResource::erase::<CustomResourceDefinition>(&()), &name);
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let result = Injector::new(client.clone()).crd(&name).inject(b"PEM").await;
    let _ = crds.delete(&name, &DeleteParams::default()).await;
    assert!(
        matches!(&result, Err(Error::NoConversionWebhook { name: n }) if *n == name),
        "{result:?}"
    );
}

/// What changes when the injector writes the three objects: the configurations'
/// resourceVersions, and the CRD's generation (the API server itself writes the CRD's status,
/// `NamesAccepted` and `Established`, on a real cluster a moment after it is created, bumping
/// its resourceVersion; a `spec.conversion` write bumps its generation).
async fn versions(client: &Client, name: &str, crd: &str) -> Vec<Option<String>> {
    vec![
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .get(name)
            .await
            .unwrap()
            .metadata
            .resource_version,
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get(name)
            .await
            .unwrap()
            .metadata
            .resource_version,
        Api::<CustomResourceDefinition>::all(client.clone())
            .get(crd)
            .await
            .unwrap()
            .metadata
            .generation
            .map(|g| format!("generation {g}")),
    ]
}

/// Waits (up to 30 s) until the three objects carry `want`; what they carry.
async fn wait_for_bundles(client: &Client, name: &str, crd: &str, want: &[Option<Vec<u8>>]) -> Vec<Option<Vec<u8>>> {
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = bundles(client, name, crd).await;
        if seen == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn the_injector_injects_targets_created_or_recreated_after_it_started() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let suffix = unique();
    let annotation = ("kdev.io/inject-ca-from", format!("test/{suffix}"));
    let first = format!("kdev-inject-early-{suffix}");
    let first_crd = create_objects(&env, &first, &suffix, Some((annotation.0, &annotation.1))).await;
    let dir = crate::watch::temp_dir("inject-resync");
    let rotator = kdev_webhook::certs::Rotator::new(Settings::for_service("default", "kdev-nowhere"), &dir).unwrap();
    let want = vec![Some(rotator.current().ca_pem().into_bytes()); 4];
    let injector = Injector::new(client.clone())
        .annotated(annotation.0, &annotation.1)
        .validating(&first)
        .resync(std::time::Duration::from_millis(200));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(injector.run(rotator.subscribe(), stop.clone()));
    assert_eq!(wait_for_bundles(&client, &first, &first_crd, &want).await, want);
    let injected_versions = versions(&client, &first, &first_crd).await;

    // Objects annotated after the first injection, with no CA rotation since: injected too.
    let late = format!("kdev-inject-late-{suffix}");
    let late_crd = create_objects(
        &env,
        &late,
        &format!("{suffix}late"),
        Some((annotation.0, &annotation.1)),
    )
    .await;
    assert_eq!(wait_for_bundles(&client, &late, &late_crd, &want).await, want);
    // The passes that found them did not write the objects already right.
    assert_eq!(versions(&client, &first, &first_crd).await, injected_versions);

    // A named configuration deleted and created again without a bundle (a Helm reinstall).
    let api = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let mut again = api.get(&first).await.unwrap();
    api.delete(&first, &DeleteParams::default()).await.unwrap();
    again.metadata.resource_version = None;
    again.metadata.uid = None;
    again.metadata.creation_timestamp = None;
    again.metadata.managed_fields = None;
    for webhook in again.webhooks.iter_mut().flatten() {
        webhook.client_config.ca_bundle = None;
    }
    api.create(&PostParams::default(), &again).await.unwrap();
    assert_eq!(wait_for_bundles(&client, &first, &first_crd, &want).await, want);

    stop.cancel();
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
