//! Lesson 13 — an admission webhook by hand: the AdmissionReview as JSON, a handler that reads
//! it raw, a JSON patch written operation by operation, the certificates the API server needs to
//! trust the webhook, and webhook configurations written out in full. Lesson 14 (`webhook`) does
//! the same with typed validators and defaulters and generated configurations.
//!
//! Run it (no cluster needed: it starts kdev's embedded API server, which calls the webhooks
//! served by this very process, as kube-apiserver would call a webhook Service):
//!
//! ```sh
//! cargo run -p kdev-examples --bin webhook_by_hand
//! ```
//!
//! With KUBECONFIG set it runs the parts that need no API server and explains why the rest
//! cannot run: a real cluster's API server cannot reach a server inside this process.
//!
//! The page that goes with it: `docs/webhooks.md`.

use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kdev::CancellationToken;
use kdev::testenv::{Config, TestEnv};
use kdev::webhook::Server;
use kdev::webhook::admission::{PatchType, Request, Response, Review};
use kdev::webhook::tls::ServingCert;
use kube_client::api::{DeleteParams, PostParams};
use kube_client::{Api, Client};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVICE_NAMESPACE: &str = "webhook-system";
const SERVICE_NAME: &str = "kdev-lesson-by-hand";
const ANNOTATION: &str = "kdev.dev/created-by";

// ---------------------------------------------------------------------------------------------
// The handlers. A raw handler gets the AdmissionReview's `request` (kdev parsed the envelope and
// will copy the uid into the answer) and returns its `response`: everything else is ours to do.

/// Validating: a ConfigMap must not carry passwords (they belong in a Secret).
async fn validate(req: Request) -> Response {
    let keys: Vec<String> = req
        .object
        .as_ref()
        .and_then(|o| o.get("data"))
        .and_then(Value::as_object)
        .map(|data| data.keys().cloned().collect())
        .unwrap_or_default();
    match keys.iter().find(|k| k.to_lowercase().contains("password")) {
        Some(key) => Response::denied(format!("key {key:?} looks like a password: put it in a Secret")),
        None => Response::allowed(),
    }
}

/// Prints the first review the mutating handler receives.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Mutating: annotates every ConfigMap with who created it, through a JSON patch built by hand.
async fn mutate(req: Request) -> Response {
    if !SHOWN.swap(true, Ordering::Relaxed) {
        let review = json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req });
        println!(
            "    [mutate] the AdmissionReview the API server sent:\n{}",
            indent(&serde_json::to_string_pretty(&review).unwrap_or_default(), 6)
        );
    }
    let user = req.user_info.username.clone().unwrap_or_default();
    let has_annotations = req
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/annotations"))
        .is_some_and(Value::is_object);
    // RFC 6902: "add" to a member of an object that does not exist fails, so the first
    // annotation adds the whole map. In a JSON pointer '/' is written "~1" (and '~' is "~0"):
    // the key kdev.dev/created-by is the path segment kdev.dev~1created-by.
    let patch = if has_annotations {
        json!([{ "op": "add", "path": format!("/metadata/annotations/{}", ANNOTATION.replace('~', "~0").replace('/', "~1")), "value": user }])
    } else {
        json!([{ "op": "add", "path": "/metadata/annotations", "value": { ANNOTATION: user } }])
    };
    println!(
        "    [mutate] {} {}: patch {patch}",
        req.operation.as_str(),
        req.name.as_deref().unwrap_or("?")
    );
    let mut response = Response::allowed();
    // The patch travels as base64 of the JSON text, with patchType JSONPatch (the only type).
    response.patch = serde_json::to_vec(&patch).ok();
    response.patch_type = Some(PatchType::JsonPatch);
    response
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("== 1. certificates: a CA, and a serving certificate it signs for the Service's name");
    // The API server calls https://<service>.<namespace>.svc:<port><path> and checks the
    // certificate against the caBundle of the webhook's configuration, for that DNS name.
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "kdev lesson CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let dns = format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc");
    let serving_key = KeyPair::generate()?;
    let serving = CertificateParams::new(vec![dns.clone()])?.signed_by(&serving_key, &issuer)?;
    println!("CA \"kdev lesson CA\" (self-signed) signed a serving certificate for DNS name {dns}");
    let tls = ServingCert::from_pem(serving.pem().as_bytes(), serving_key.serialize_pem().as_bytes())?;

    println!("\n== 2. two raw handlers, called in process with a review written by hand");
    let server = Server::builder()
        .raw("/validate-configmaps", validate)
        // A handler that patches is served as a mutating webhook: kube-apiserver counts a patch
        // from a validating one as a failed call (refused under failurePolicy Fail, ignored
        // under Ignore); `raw` sends it as it is, as controller-runtime does, with a warning.
        .raw_mutating("/mutate-configmaps", mutate)
        .tls(tls)
        .build()?;
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0b6d3f1e-hand-made", "operation": "CREATE", "namespace": "default", "name": "creds",
            "kind": { "group": "", "version": "v1", "kind": "ConfigMap" },
            "resource": { "group": "", "version": "v1", "resource": "configmaps" },
            "userInfo": { "username": "alice" },
            "object": { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "creds" },
                        "data": { "db-password": "hunter2" } },
        },
    });
    // The mutating handler prints the first review the API server sends; not this one.
    SHOWN.store(true, Ordering::Relaxed);
    println!("POST /validate-configmaps {review}");
    let answer = server
        .call("/validate-configmaps", serde_json::to_vec(&review)?.into())
        .await;
    println!(
        "  -> HTTP {} {}",
        answer.status().as_u16(),
        String::from_utf8_lossy(answer.body())
    );
    let answer = server
        .call("/mutate-configmaps", serde_json::to_vec(&review)?.into())
        .await;
    println!(
        "POST /mutate-configmaps (the same review)\n  -> HTTP {} {}",
        answer.status().as_u16(),
        String::from_utf8_lossy(answer.body())
    );
    let decoded: Review = serde_json::from_slice(answer.body())?;
    let patch = decoded.response.and_then(|r| r.patch).unwrap_or_default();
    println!("  the patch, base64-decoded: {}", String::from_utf8_lossy(&patch));
    SHOWN.store(false, Ordering::Relaxed);

    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        println!(
            "\n== 3. skipped: KUBECONFIG is set, but a real cluster's API server cannot call a webhook served \
             inside this process (it needs a Service in front of a pod, or a URL it can reach). \
             Unset KUBECONFIG to run the rest on kdev's embedded API server."
        );
        println!("lesson complete");
        return Ok(());
    }

    println!("\n== 3. serving, and an API server that reaches the Service");
    let bound = server.bind("127.0.0.1:0".parse()?).await?;
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let served = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
    // kube-apiserver would send the request to a pod behind the Service; the embedded server has
    // no pod network, so the Service is mapped to the local port (TLS is still verified).
    let env = TestEnv::embedded(Config::default().webhook_service(SERVICE_NAMESPACE, SERVICE_NAME, 443, addr)).await?;
    println!("serving on https://{addr}; the embedded API server sends {dns}:443 there");
    let result = lesson(&env.client(), &ca_pem).await;
    stop.cancel();
    served.await??;
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, ca_pem: &str) -> Result<(), BoxError> {
    let ns = format!(
        "kdev-by-hand-{}",
        (0..5)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces.create(&PostParams::default(), &namespace).await?;

    println!("\n== 4. the webhook configurations, written by hand");
    // One webhook each. The namespaceSelector limits them to the lesson's namespace: a webhook
    // on every ConfigMap of the cluster would also sit in the path of kube-system's.
    let webhook = |name: &str, path: &str| {
        json!({
            "name": name,
            "clientConfig": { "service": { "namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "path": path, "port": 443 } },
            "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["configmaps"], "scope": "Namespaced" }],
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        })
    };
    let mut mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": "kdev-lesson-by-hand" },
        "webhooks": [webhook("created-by.configmaps.kdev.dev", "/mutate-configmaps")],
    }))?;
    let mut validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": "kdev-lesson-by-hand" },
        "webhooks": [webhook("no-passwords.configmaps.kdev.dev", "/validate-configmaps")],
    }))?;
    // caBundle: the CA's PEM (base64 on the wire, like every []byte of the API).
    for w in mutating.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    for w in validating.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    let mut shown = serde_json::to_value(&validating)?;
    shown["webhooks"][0]["clientConfig"]["caBundle"] = json!("<the CA's PEM, base64>");
    print!("{}", serde_saphyr::to_string(&shown)?);
    let pp = PostParams::default();
    let validatings: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutatings: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    validatings.create(&pp, &validating).await?;
    mutatings.create(&pp, &mutating).await?;
    println!("created both (the MutatingWebhookConfiguration is the same with /mutate-configmaps)");

    let result = through_the_webhooks(client, &ns).await;
    validatings
        .delete("kdev-lesson-by-hand", &DeleteParams::default())
        .await?;
    mutatings
        .delete("kdev-lesson-by-hand", &DeleteParams::default())
        .await?;
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    result?;
    println!("deleted the configurations and the namespace");
    Ok(())
}

async fn through_the_webhooks(client: &Client, ns: &str) -> Result<(), BoxError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();

    println!("\n== 5. a ConfigMap without annotations: the patch adds the map");
    configmaps
        .create(&pp, &config_map("settings", json!({}), json!({ "color": "blue" })))
        .await?;
    println!(
        "  read back: annotations {}",
        annotations(&configmaps.get("settings").await?)
    );

    println!("\n== 6. a ConfigMap with annotations: the patch adds one key (~1 for '/')");
    configmaps
        .create(
            &pp,
            &config_map("annotated", json!({ "owner": "team-a" }), json!({ "color": "green" })),
        )
        .await?;
    println!(
        "  read back: annotations {}",
        annotations(&configmaps.get("annotated").await?)
    );

    println!("\n== 7. a ConfigMap with a password: the validating webhook refuses it");
    println!("  create configmap creds (data key db-password)");
    match configmaps
        .create(
            &pp,
            &config_map("creds", json!({}), json!({ "db-password": "hunter2" })),
        )
        .await
    {
        Err(kube_client::Error::Api(st)) => println!("    -> {} {}: {}", st.code, st.reason, st.message),
        Ok(_) => println!("    -> created (the webhook let it through!)"),
        Err(e) => return Err(e.into()),
    }
    println!(
        "  configmap creds exists: {}",
        configmaps.get_opt("creds").await?.is_some()
    );
    Ok(())
}

fn config_map(name: &str, annotations: Value, data: Value) -> ConfigMap {
    let mut metadata = json!({ "name": name });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        metadata["annotations"] = annotations;
    }
    serde_json::from_value(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data }))
        .expect("a valid ConfigMap")
}

fn annotations(cm: &ConfigMap) -> String {
    let pairs: Vec<String> = cm
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("[{}]", pairs.join(", "))
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}
