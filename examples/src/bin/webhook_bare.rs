//! Lesson 15 — a webhook without a Service: the API server calls a URL (`clientConfig.url`)
//! instead of a Service, and the serving certificate is a single self-signed certificate for the
//! URL's host — no CA, no cluster DNS name. It is how a webhook running outside the cluster is
//! reached: on your laptop during development, or on a host of its own.
//!
//! Run it (no cluster needed: it starts kdev's embedded API server, which calls the URL served
//! by this very process):
//!
//! ```sh
//! cargo run -p kdev-examples --bin webhook_bare
//! ```
//!
//! With KUBECONFIG set it runs the parts that need no API server and explains why the rest
//! cannot run here: the URL is on this machine's loopback, which a real API server cannot reach.
//!
//! The page that goes with it: `docs/webhooks.md`.

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kdev::CancellationToken;
use kdev::testenv::TestEnv;
use kdev::webhook::admission::{Request, StatusCause, Validator, Verdict};
use kdev::webhook::config::{ClientConfig, Configurations, Webhook};
use kdev::webhook::tls::ServingCert;
use kdev::webhook::{Server, server};
use kube_client::api::{DeleteParams, PostParams};
use kube_client::{Api, Client};
use rcgen::{CertificateParams, KeyPair};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CONFIGURATION: &str = "kdev-lesson-bare";
const MAX_REPLICAS: i32 = 10;

/// Caps the replicas of a Deployment.
struct ReplicaCap;

impl Validator<Deployment> for ReplicaCap {
    async fn validate_create(&self, _req: &Request, deployment: &Deployment) -> Verdict {
        match deployment.spec.replicas {
            // A field error, as the API server's own validation reports one: 422 Invalid, and
            // the field in `details.causes`.
            Some(n) if n > MAX_REPLICAS => Verdict::invalid([StatusCause::invalid(
                "spec.replicas",
                n,
                format!("must be at most {MAX_REPLICAS} in this namespace"),
            )]),
            _ => Verdict::allow(),
        }
    }

    async fn validate_update(&self, req: &Request, _old: &Deployment, new: &Deployment) -> Verdict {
        self.validate_create(req, new).await
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("== 1. a port, and a self-signed certificate for its address");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // rcgen turns a name that parses as an IP address into an IP subjectAltName. No CA: the
    // certificate signs itself, and it is its own caBundle.
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec![addr.ip().to_string()])?.self_signed(&key)?;
    let cert_pem = cert.pem();
    println!("self-signed certificate for IP address {} (no DNS name)", addr.ip());

    println!("\n== 2. the server, and a configuration pointing at a URL");
    let server = Server::builder()
        .validating("/validate-deployments", ReplicaCap)
        .tls(ServingCert::from_pem(
            cert_pem.as_bytes(),
            key.serialize_pem().as_bytes(),
        )?)
        .build()?;
    // First with the host name "localhost": it reaches the right port, but the certificate only
    // names 127.0.0.1, and TLS checks the name in the URL.
    let configuration = |host: &str, ns: &str| {
        Configurations::new(
            CONFIGURATION,
            ClientConfig::url(format!("https://{host}:{}", addr.port())),
        )
        .ca_bundle(cert_pem.clone().into_bytes())
        .webhook(
            "/validate-deployments",
            Webhook::new()
                .name("replica-cap.deployments.kdev.dev")
                .namespace_selector(LabelSelector {
                    match_labels: Some([("kubernetes.io/metadata.name".to_string(), ns.to_string())].into()),
                    ..Default::default()
                })
                .timeout_seconds(5),
        )
        .validating(&server)
    };
    // The webhook only sees the lesson's namespace (named now, created in step 3).
    let ns = format!(
        "kdev-bare-{}",
        (0..5)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    );
    let wrong_host = configuration("localhost", &ns)?;
    let right_host = configuration("127.0.0.1", &ns)?;
    let mut shown = serde_json::to_value(&wrong_host)?;
    shown["webhooks"][0]["clientConfig"]["caBundle"] = json!("<the certificate's PEM, base64>");
    print!("{}", serde_saphyr::to_string(&shown)?);

    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        println!(
            "\n== 3. skipped: KUBECONFIG is set, but a real cluster's API server cannot call a webhook served \
             inside this process (it needs a Service in front of a pod, or a URL it can reach). \
             Unset KUBECONFIG to run the rest on kdev's embedded API server."
        );
        println!("lesson complete");
        return Ok(());
    }

    println!("\n== 3. serving; the embedded API server calls the URL as it is");
    let stop = CancellationToken::new();
    let served = tokio::spawn(
        server.serve_with_incoming_shutdown(server::tcp_incoming(listener), stop.clone().cancelled_owned()),
    );
    // No webhook_service mapping: a URL needs none, here as in a cluster.
    let env = TestEnv::embedded(Default::default()).await?;
    println!("serving on https://{addr}; started kdev's embedded API server");
    let client = env.client();
    let result = lesson(&client, &ns, wrong_host, right_host).await;
    let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(CONFIGURATION, &DeleteParams::default())
        .await;
    stop.cancel();
    served.await??;
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(
    client: &Client,
    ns: &str,
    wrong_host: ValidatingWebhookConfiguration,
    right_host: ValidatingWebhookConfiguration,
) -> Result<(), BoxError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.to_string());
    namespaces.create(&PostParams::default(), &namespace).await?;
    let result = deployments(client, ns, wrong_host, right_host).await;
    namespaces.delete(ns, &DeleteParams::default()).await?;
    result
}

async fn deployments(
    client: &Client,
    ns: &str,
    wrong_host: ValidatingWebhookConfiguration,
    mut right_host: ValidatingWebhookConfiguration,
) -> Result<(), BoxError> {
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();

    let created = configurations.create(&pp, &wrong_host).await?;
    println!("created the configuration with url https://localhost:<port>/validate-deployments");
    try_create(&deployments, "web", 3).await?;

    println!("\n== 4. the URL names the certificate's address: the webhook is called");
    right_host.metadata.resource_version = created.metadata.resource_version;
    configurations.replace(CONFIGURATION, &pp, &right_host).await?;
    println!("replaced the configuration: url https://127.0.0.1:<port>/validate-deployments");
    try_create(&deployments, "web", 3).await?;
    try_create(&deployments, "huge", 20).await?;
    let names: Vec<String> = deployments
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    println!("  deployments now: [{}]", names.join(", "));
    Ok(())
}

/// Creates a Deployment of `replicas` and prints the API server's answer.
async fn try_create(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Result<(), BoxError> {
    println!("  create deployment {name} ({replicas} replicas)");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1.27.2" }] },
            },
        },
    }))?;
    match deployments.create(&PostParams::default(), &deployment).await {
        Ok(_) => println!("    -> created"),
        Err(kube_client::Error::Api(st)) => println!("    -> {} {}: {}", st.code, st.reason, st.message),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
