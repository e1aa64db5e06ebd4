//! Lesson 14 — typed admission webhooks: a `Validator<Pod>` that refuses `:latest` images and a
//! `Defaulter<Pod>` that adds default labels and a sidecar, served over HTTPS with a certificate
//! from `kdev::webhook::certs`, registered with webhook configurations that
//! `kdev::webhook::config` generates from the server, and made trusted by CA injection.
//!
//! Run it (no cluster needed: it starts kdev's embedded API server, which calls the webhooks
//! served by this very process, as kube-apiserver would call a webhook Service):
//!
//! ```sh
//! cargo run -p kdev-examples --bin webhook
//! ```
//!
//! With KUBECONFIG set it runs the parts that need no API server and explains why the rest
//! cannot run: a real cluster's API server cannot reach a server inside this process.
//!
//! The page that goes with it: `docs/webhooks.md`.

use std::path::PathBuf;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kdev::CancellationToken;
use kdev::testenv::{Config, TestEnv};
use kdev::webhook::Server;
use kdev::webhook::admission::{Defaulter, Request, Validator, Verdict};
use kdev::webhook::certs::{Rotator, Settings};
use kdev::webhook::config::{ClientConfig, Configurations, FailurePolicy, Operation, SideEffects, Webhook};
use kdev::webhook::inject::Injector;
use kdev::webhook::metrics::Metrics;
use kdev::webhook::tls::ServingCert;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the webhook's Service would live in a cluster. The serving certificate is issued for
/// `kdev-lesson-webhook.webhook-system.svc`, the name the API server checks.
const SERVICE_NAMESPACE: &str = "webhook-system";
const SERVICE_NAME: &str = "kdev-lesson-webhook";
/// The name of both generated configurations.
const CONFIGURATIONS: &str = "kdev-lesson";

// ---------------------------------------------------------------------------------------------
// The two webhooks. Each is a plain Rust type implementing a trait for one Kubernetes type: kdev
// decodes the AdmissionReview, hands over typed Pods, and turns the answer (and, for the
// defaulter, the changes made to the Pod) into the AdmissionReview response.

/// Refuses pods whose images float: `:latest`, or no tag at all (which means `:latest`).
/// controller-runtime's `webhook.CustomValidator`.
struct NoLatest;

fn floating_image(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.clone())
        .find(|image| {
            // The tag follows the last ':' of the last path segment ("host:5000/app" has none).
            let last = image.rsplit('/').next().unwrap_or(image);
            image.ends_with(":latest") || !(last.contains(':') || last.contains('@'))
        })
}

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
        match floating_image(pod) {
            Some(image) => Verdict::deny(format!("image {image:?} floats (:latest or no tag); pin a version")),
            None => Verdict::allow(),
        }
    }

    async fn validate_update(&self, req: &Request, _old: &Pod, new: &Pod) -> Verdict {
        self.validate_create(req, new).await
    }
    // validate_delete is left to its default: allow.
}

/// Adds the labels every pod must carry and a log-shipping sidecar.
/// controller-runtime's `webhook.CustomDefaulter`.
struct PodDefaults;

impl Defaulter<Pod> for PodDefaults {
    async fn set_defaults(&self, req: &Request, pod: &mut Pod) -> Verdict {
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        // or_insert: a label the user set wins over the default.
        labels.entry("team".into()).or_insert_with(|| "platform".into());
        labels.insert("kdev.dev/defaulted".into(), "true".into());
        if let Some(spec) = pod.spec.as_mut()
            && !spec.containers.iter().any(|c| c.name == "log-shipper")
        {
            spec.containers.push(Container {
                name: "log-shipper".into(),
                image: Some("fluent/fluent-bit:3.1".into()),
                ..Default::default()
            });
        }
        // The API server calls mutating webhooks on dry runs too (sideEffects: None says this
        // webhook is safe to call then); the mutation is the same, only side effects — writing
        // elsewhere, counting quotas — must be skipped when req.dry_run is true.
        println!(
            "    [defaulter] {} pod {} (dryRun {})",
            req.operation.as_str(),
            req.name.as_deref().unwrap_or("?"),
            req.dry_run
        );
        Verdict::allow()
    }
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("== 1. certificates: a self-signed CA and a serving certificate for the Service");
    let dir: PathBuf = std::env::temp_dir().join(format!("kdev-lesson-webhook-{}", std::process::id()));
    // Rotator::new makes a CA (or keeps the one in `dir`), issues the serving certificate for
    // the Service's DNS names and writes tls.crt, tls.key, ca.crt and ca.key. Rotator::run would
    // renew it at 2/3 of its lifetime; cert-manager does the same job in a cluster. A Rotator is
    // for one replica: each has its own CA, so with several replicas mount cert-manager's Secret
    // and serve it with ServingCert::from_dir instead (docs/webhooks.md).
    let rotator = Rotator::new(Settings::for_service(SERVICE_NAMESPACE, SERVICE_NAME), &dir)?;
    let bundle = rotator.current();
    let mut files: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    println!("wrote {} into {}", files.join(", "), dir.display());
    let days = bundle
        .not_after()
        .duration_since(std::time::SystemTime::now())
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    println!(
        "the serving certificate is valid for {SERVICE_NAME}.{SERVICE_NAMESPACE}.svc (and the shorter names) for {days} more days"
    );

    let result = lesson(&dir, rotator).await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(dir: &std::path::Path, rotator: Rotator) -> Result<(), BoxError> {
    let ca_pem = rotator.current().ca_pem();

    println!("\n== 2. the server: one HTTPS path per webhook");
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let server = Server::builder()
        .validating("/validate-pods", NoLatest)
        .mutating("/mutate-pods", PodDefaults)
        // Serves the files Rotator wrote and reloads them when they change (file watch + poll).
        .tls(ServingCert::from_dir(dir))
        .metrics(&metrics)
        .build()?;
    for hook in server.webhooks() {
        let resource = hook
            .resource
            .as_ref()
            .map(|r| format!("{}/{}/{}", r.group, r.version, r.resource))
            .unwrap_or_default();
        println!("  {} -> {:?} webhook for {resource}", hook.path, hook.kind);
    }

    println!("\n== 3. the webhook configurations, generated from the server's webhooks");
    // What kubebuilder's `+kubebuilder:webhook` markers generate: one webhook per path, its rule
    // inferred from the Rust type (Pod -> "" / v1 / pods, CREATE and UPDATE).
    let keep_out = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "NotIn".into(),
            values: Some(vec!["kube-system".into(), SERVICE_NAMESPACE.into()]),
        }]),
        ..Default::default()
    };
    let configurations = Configurations::new(CONFIGURATIONS, ClientConfig::service(SERVICE_NAMESPACE, SERVICE_NAME))
        .defaults(
            Webhook::new()
                // Fail: a request the webhook cannot answer is refused. Safe here only because
                // the namespaceSelector keeps kube-system and the webhook's own namespace out.
                .failure_policy(FailurePolicy::Fail)
                .side_effects(SideEffects::None)
                .timeout_seconds(5)
                .namespace_selector(keep_out),
        )
        .webhook("/validate-pods", Webhook::new().name("no-latest.pods.kdev.dev"))
        .webhook(
            "/mutate-pods",
            Webhook::new()
                .name("defaults.pods.kdev.dev")
                .operations([Operation::Create]),
        );
    // No .ca_bundle(...): the configurations are deployed without one and the bundle is
    // injected afterwards, as cert-manager's cainjector does (step 5).
    let validating = configurations.validating(&server)?;
    let mutating = configurations.mutating(&server)?;
    print!("{}", serde_saphyr::to_string(&validating)?);
    println!("---");
    print!("{}", serde_saphyr::to_string(&mutating)?);

    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        println!(
            "\n== 4. skipped: KUBECONFIG is set, but a real cluster's API server cannot call a webhook served \
             inside this process (it needs a Service in front of a pod, or a URL it can reach). \
             Unset KUBECONFIG to run the rest on kdev's embedded API server."
        );
        return Ok(());
    }

    println!("\n== 4. serving, and an API server that reaches the Service");
    let bound = server.bind("127.0.0.1:0".parse()?).await?;
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let served = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
    // kube-apiserver would resolve the Service to a pod; the embedded server has no pod network,
    // so the Service is mapped to the local port. TLS is still checked against the caBundle.
    let config = Config::default().webhook_service(SERVICE_NAMESPACE, SERVICE_NAME, 443, addr);
    let env = TestEnv::embedded(config).await?;
    println!(
        "serving on https://{addr}; the embedded API server sends {SERVICE_NAME}.{SERVICE_NAMESPACE}.svc:443 there"
    );

    let client = env.client();
    let result = on_the_server(&client, &validating, &mutating, &ca_pem).await;
    // Remove the configurations before the webhook goes away, or every pod write would fail.
    let validatings: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutatings: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = validatings.delete(CONFIGURATIONS, &DeleteParams::default()).await;
    let _ = mutatings.delete(CONFIGURATIONS, &DeleteParams::default()).await;
    stop.cancel();
    served.await??;
    result?;

    println!("\n== 8. the webhook metrics (controller-runtime's names)");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("controller_runtime_webhook_requests_total"))
    {
        println!("  {line}");
    }
    println!("stopped the webhook server and removed the configurations");
    Ok(())
}

async fn on_the_server(
    client: &Client,
    validating: &ValidatingWebhookConfiguration,
    mutating: &MutatingWebhookConfiguration,
    ca_pem: &str,
) -> Result<(), BoxError> {
    let ns = format!(
        "kdev-webhook-{}",
        (0..5)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces.create(&PostParams::default(), &namespace).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    let pp = PostParams::default();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&pp, validating)
        .await?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&pp, mutating)
        .await?;
    println!(
        "created ValidatingWebhookConfiguration and MutatingWebhookConfiguration {CONFIGURATIONS} (no caBundle yet)"
    );
    println!("  [before injection] create pod early (nginx:1.27.2)");
    // The API server cannot verify the serving certificate without the CA: the call fails, and
    // failurePolicy Fail turns that into a refused request.
    match pods.create(&pp, &pod("early", "nginx:1.27.2", None)).await {
        Err(kube_client::Error::Api(st)) => println!("    -> {} {}: {}", st.code, st.reason, st.message),
        Ok(_) => println!("    -> created (unexpected: nothing can verify the certificate)"),
        Err(e) => return Err(e.into()),
    }

    println!("\n== 5. CA injection: the CA bundle written into both configurations");
    let injector = Injector::new(client.clone())
        .validating(CONFIGURATIONS)
        .mutating(CONFIGURATIONS);
    let changed = injector.inject(ca_pem.as_bytes()).await?;
    let injected = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(CONFIGURATIONS)
        .await?;
    let bundle_len = injected
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| w.client_config.ca_bundle.as_ref())
        .map(|b| b.0.len())
        .next()
        .unwrap_or(0);
    println!("injected into {changed} configurations; clientConfig.caBundle now holds {bundle_len} bytes of PEM");
    println!(
        "(Injector::run follows the Rotator: every renewed CA is injected again, and every minute into configurations created or re-created since)"
    );

    println!("\n== 6. the validating webhook at work");
    for image in ["nginx:latest", "nginx"] {
        println!("  create pod floating ({image})");
        match pods.create(&pp, &pod("floating", image, None)).await {
            Err(kube_client::Error::Api(st)) => println!("    -> {} {}: {}", st.code, st.reason, st.message),
            Ok(_) => println!("    -> created (the webhook let it through!)"),
            Err(e) => return Err(e.into()),
        }
    }
    println!("  pod floating exists: {}", pods.get_opt("floating").await?.is_some());

    println!("\n== 7. the mutating webhook at work");
    let created = pods.create(&pp, &pod("web", "nginx:1.27.2", None)).await?;
    println!("created pod web with no labels and one container");
    let web = pods.get("web").await?;
    println!("  read back, labels: {}", labels_of(&web));
    println!("  read back, containers: {}", containers_of(&web));
    println!("  (the create's own answer already had them: {})", labels_of(&created));
    let own = pod("billing", "nginx:1.27.2", Some(("team", "payments")));
    pods.create(&pp, &own).await?;
    println!(
        "created pod billing labelled team=payments -> labels {}",
        labels_of(&pods.get("billing").await?)
    );

    // A dry run goes through every webhook and comes back mutated, but nothing is stored.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answer = pods.create(&dry, &pod("dry", "nginx:1.27.2", None)).await?;
    println!(
        "dry-run create of pod dry -> labels {}; stored: {}",
        labels_of(&answer),
        pods.get_opt("dry").await?.is_some()
    );

    // Updates go through both webhooks: pinning back to :latest is refused.
    let latest = Patch::Strategic(json!({ "spec": { "containers": [{ "name": "app", "image": "nginx:latest" }] } }));
    match pods.patch("web", &PatchParams::default(), &latest).await {
        Err(kube_client::Error::Api(st)) => println!("patch pod web to nginx:latest -> {} {}", st.code, st.message),
        Ok(_) => println!("patch pod web to nginx:latest -> accepted (the webhook let it through!)"),
        Err(e) => return Err(e.into()),
    }

    namespaces.delete(&ns, &DeleteParams::default()).await?;
    Ok(())
}

fn pod(name: &str, image: &str, label: Option<(&str, &str)>) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name },
        "spec": { "containers": [{ "name": "app", "image": image }] },
    }))
    .expect("a valid pod");
    if let Some((k, v)) = label {
        pod.metadata.labels = Some([(k.to_string(), v.to_string())].into());
    }
    pod
}

fn labels_of(pod: &Pod) -> String {
    let labels: Vec<String> = pod
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("[{}]", labels.join(", "))
}

fn containers_of(pod: &Pod) -> String {
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| format!("{} ({})", c.name, c.image.as_deref().unwrap_or("?")))
        .collect();
    containers.join(", ")
}
