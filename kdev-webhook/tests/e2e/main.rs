//! End to end: kdev-webhook's server behind kdev-testenv, which calls it the way kube-apiserver
//! does (AdmissionReview and ConversionReview over HTTPS, the certificate verified against the
//! configuration's caBundle for the Service's DNS name).
//!
//! Every test here runs on the embedded server (`TestEnv::embedded`), even when
//! `KDEV_TEST_KUBECONFIG` names a real cluster: a real API server cannot reach a webhook served
//! inside the test process, and these configurations (fixed names, failurePolicy Fail, every
//! pod) must never be registered on a shared cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_testenv::{Config, TestEnv};
use kdev_webhook::admission::{Defaulter, Request, Validator, Verdict};
use kdev_webhook::{Server, tls::ServingCert};
use kube_client::Api;
use kube_client::api::{Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod gadgets;
mod memos;

const SERVICE_NAMESPACE: &str = "webhook-system";
const SERVICE_NAME: &str = "kdev-webhook";

/// A test CA issuing serving certificates for the webhook Service.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A serving certificate and key (PEM) for `<name>.<namespace>.svc`.
    fn issue(&self) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc")])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.pem)
    }
}

/// Refuses images without a tag or with `:latest`.
struct NoLatest;

fn latest_image(pod: &Pod) -> Option<String> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.image.clone())
        .find(|i| {
            let last = i.rsplit('/').next().unwrap_or(i);
            i.ends_with(":latest") || !(last.contains(':') || last.contains('@'))
        })
}

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
        match latest_image(pod) {
            Some(image) => Verdict::deny(format!("image {image} uses the :latest tag; pin a version")),
            None => Verdict::allow(),
        }
    }

    async fn validate_update(&self, req: &Request, _old: &Pod, new: &Pod) -> Verdict {
        self.validate_create(req, new).await
    }
}

/// Injects a logging sidecar and the default labels.
struct Sidecar;

impl Defaulter<Pod> for Sidecar {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.entry("team".into()).or_insert_with(|| "platform".into());
        labels.insert("sidecar.kdev.dev/injected".into(), "true".into());
        if let Some(spec) = pod.spec.as_mut()
            && !spec.containers.iter().any(|c| c.name == "log-shipper")
        {
            spec.containers.push(Container {
                name: "log-shipper".into(),
                image: Some("fluent/fluent-bit:3.1".into()),
                ..Default::default()
            });
        }
        Verdict::allow()
    }
}

/// A raw handler served as a validating webhook that (wrongly) returns a patch.
async fn patching_validator(_req: Request) -> kdev_webhook::admission::Response {
    let patch =
        serde_json::from_value(json!([{ "op": "add", "path": "/data/patched", "value": "yes" }])).expect("a patch");
    kdev_webhook::admission::Response::allowed().with_patch(&patch)
}

/// The webhook server on a free loopback port, and an embedded API server whose Service
/// `webhook-system/kdev-webhook:443` leads to it.
struct Setup {
    env: TestEnv,
    ns: String,
    ca: Ca,
    /// Where the webhook server listens.
    addr: SocketAddr,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), kdev_webhook::server::Error>>,
    conversions: Arc<Mutex<Vec<String>>>,
}

impl Setup {
    async fn start(ca: Ca, cert: ServingCert) -> Setup {
        let conversions: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = Server::builder()
            .validating("/validate-pods", NoLatest)
            .mutating("/mutate-pods", Sidecar)
            .mutating("/default-memos", memos::MemoDefaults)
            .raw("/validate-and-patch", patching_validator)
            .conversion("/convert-gadgets", gadgets::Recording::new(conversions.clone()))
            .tls(cert)
            .build()
            .expect("the webhook server builds");
        let bound = server.bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
        let addr: SocketAddr = bound.local_addr();
        let stop = CancellationToken::new();
        let served = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
        let config = Config::default().webhook_service(SERVICE_NAMESPACE, SERVICE_NAME, 443, addr);
        let env = TestEnv::embedded(config).await.expect("the embedded API server starts");
        let ns = env.namespace().await.expect("a namespace");
        Setup {
            env,
            ns,
            ca,
            addr,
            stop,
            served,
            conversions,
        }
    }

    fn client_config(&self, path: &str) -> Value {
        json!({
            "service": { "namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "path": path, "port": 443 },
            "caBundle": self.ca.bundle(),
        })
    }

    async fn register_pod_webhooks(&self) {
        let rules = json!([{ "operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods"], "scope": "Namespaced" }]);
        let hook = |name: &str, path: &str| {
            json!({ "name": name, "clientConfig": self.client_config(path), "rules": rules,
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 10 })
        };
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": { "name": "sidecar-injector" }, "webhooks": [hook("sidecar.kdev.dev", "/mutate-pods")],
        }))
        .expect("configuration");
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": { "name": "image-policy" }, "webhooks": [hook("no-latest.kdev.dev", "/validate-pods")],
        }))
        .expect("configuration");
        Api::<MutatingWebhookConfiguration>::all(self.env.client())
            .create(&PostParams::default(), &mutating)
            .await
            .expect("mutating configuration");
        Api::<ValidatingWebhookConfiguration>::all(self.env.client())
            .create(&PostParams::default(), &validating)
            .await
            .expect("validating configuration");
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.served
            .await
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name },
        "spec": { "containers": [{ "name": "app", "image": image }] },
    }))
    .expect("a pod")
}

/// The setup with a serving certificate held in memory.
async fn in_memory() -> Setup {
    let ca = Ca::new();
    let (cert, key) = ca.issue();
    let cert = ServingCert::from_pem(cert.as_bytes(), key.as_bytes()).expect("a serving certificate");
    Setup::start(ca, cert).await
}

#[tokio::test]
async fn the_validating_webhook_refuses_latest_images_and_allows_pinned_ones() {
    let s = in_memory().await;
    s.register_pod_webhooks().await;
    let pods: Api<Pod> = Api::namespaced(s.env.client(), &s.ns);

    for image in ["nginx:latest", "nginx", "registry.example.com:5000/team/app:latest"] {
        match pods.create(&PostParams::default(), &pod("refused", image)).await {
            Err(kube_client::Error::Api(st)) => {
                assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"), "{image}");
                assert_eq!(
                    st.message,
                    format!(
                        "admission webhook \"no-latest.kdev.dev\" denied the request: \
                         image {image} uses the :latest tag; pin a version"
                    )
                );
            }
            other => panic!("{image}: expected a denial, got {other:?}"),
        }
    }
    assert!(pods.get_opt("refused").await.expect("get").is_none());

    pods.create(&PostParams::default(), &pod("pinned", "nginx:1.27.2"))
        .await
        .expect("a pinned image is allowed");
    pods.create(
        &PostParams::default(),
        &pod(
            "digest",
            "nginx@sha256:0f05a0a1d8e0b0c61ba0de79fc0c8d2b3a2c1f3a3b8d8d1f7e6a9d7e2b8c2a11",
        ),
    )
    .await
    .expect("a digest is allowed");
    // Updates are checked too.
    let err = pods
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "containers": [{ "name": "app", "image": "nginx:latest" }] } })),
        )
        .await
        .expect_err("an update to :latest is refused");
    assert!(err.to_string().contains("uses the :latest tag"), "{err}");
    s.shutdown().await;
}

#[tokio::test]
async fn the_mutating_webhook_injects_a_sidecar_and_default_labels() {
    let s = in_memory().await;
    s.register_pod_webhooks().await;
    let pods: Api<Pod> = Api::namespaced(s.env.client(), &s.ns);
    pods.create(&PostParams::default(), &pod("web", "nginx:1.27.2"))
        .await
        .expect("create");
    let mut own = pod("owned", "nginx:1.27.2");
    own.metadata.labels = Some([("team".to_string(), "payments".to_string())].into());
    pods.create(&PostParams::default(), &own).await.expect("create");

    let stored = pods.get("web").await.expect("read back");
    let names: Vec<&str> = stored
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["app", "log-shipper"]);
    let sidecar = &stored.spec.as_ref().expect("spec").containers[1];
    assert_eq!(sidecar.image.as_deref(), Some("fluent/fluent-bit:3.1"));
    // The server's own defaults apply to the injected container as to any other.
    assert_eq!(sidecar.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let labels = stored.metadata.labels.expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("platform"));
    assert_eq!(
        labels.get("sidecar.kdev.dev/injected").map(String::as_str),
        Some("true")
    );

    let owned = pods.get("owned").await.expect("read back");
    let labels = owned.metadata.labels.expect("labels");
    assert_eq!(
        labels.get("team").map(String::as_str),
        Some("payments"),
        "a label already set is kept"
    );

    // An update goes through the defaulter again, which injects nothing twice.
    pods.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "touched": "yes" } } })),
    )
    .await
    .expect("update");
    let again = pods.get("web").await.expect("read back");
    assert_eq!(again.spec.expect("spec").containers.len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn the_conversion_webhook_serves_both_versions_of_a_derived_crd() {
    let s = in_memory().await;
    let mut crd = gadgets::crd();
    crd.spec.conversion = Some(
        serde_json::from_value(json!({ "strategy": "Webhook", "webhook": {
            "clientConfig": s.client_config("/convert-gadgets"), "conversionReviewVersions": ["v1"] } }))
        .expect("conversion"),
    );
    let crds: Api<CustomResourceDefinition> = Api::all(s.env.client());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("install the CRD");
    let name = crd.metadata.name.clone().expect("named");
    let established = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let c = crds.get(&name).await.expect("get CRD");
            let ok = c
                .status
                .as_ref()
                .and_then(|st| st.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if ok {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the CRD is established");
    assert_eq!(
        established.status.and_then(|st| st.stored_versions),
        Some(vec!["v2".to_string()]),
        "v2 is the storage version"
    );

    let v1: Api<gadgets::GadgetV1> = Api::namespaced(s.env.client(), &s.ns);
    let v2: Api<gadgets::GadgetV2> = Api::namespaced(s.env.client(), &s.ns);
    let created = v1
        .create(
            &PostParams::default(),
            &gadgets::GadgetV1::new("square", gadgets::GadgetV1Spec { size: 3 }),
        )
        .await
        .expect("create in v1");
    assert_eq!(created.spec.size, 3);
    // Written in v1, stored in v2: the write asked the webhook for the storage version.
    assert_eq!(
        s.conversions.lock().first().map(String::as_str),
        Some("gadgets.kdev.dev/v2")
    );

    let as_v2 = v2.get("square").await.expect("read in v2");
    assert_eq!((as_v2.spec.width, as_v2.spec.height), (3, 3));
    let as_v1 = v1.get("square").await.expect("read in v1");
    assert_eq!(as_v1.spec.size, 3);
    assert_eq!(as_v1.metadata.uid, as_v2.metadata.uid, "one object, two versions");

    // What only the storage version can hold: a v2 write that v1 cannot express is stored
    // whole, read whole in v2, and reading it in v1 fails with the converter's message.
    v2.patch(
        "square",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "width": 4, "height": 5 } })),
    )
    .await
    .expect("a v2 patch");
    let wide = v2.get("square").await.expect("read in v2");
    assert_eq!((wide.spec.width, wide.spec.height), (4, 5));
    match v1.get("square").await {
        Err(kube_client::Error::Api(st)) => {
            assert_eq!(st.code, 500);
            assert!(st.message.contains("a 4x5 gadget is not square"), "{}", st.message);
        }
        other => panic!("expected the conversion to fail, got {other:?}"),
    }

    // Lists are converted as a whole.
    v2.create(
        &PostParams::default(),
        &gadgets::GadgetV2::new("cube", gadgets::GadgetV2Spec { width: 2, height: 2 }),
    )
    .await
    .expect("create in v2");
    v2.patch(
        "square",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "width": 5 } })),
    )
    .await
    .expect("square again");
    let mut sizes: Vec<i32> = v1
        .list(&Default::default())
        .await
        .expect("list in v1")
        .items
        .into_iter()
        .map(|g| g.spec.size)
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [2, 5]);
    s.shutdown().await;
}

/// Writes a new serving certificate into `dir` as `tls.crt` and `tls.key`, each replaced by a
/// rename, and returns the certificate (PEM).
fn write_pair(dir: &std::path::Path, ca: &Ca) -> String {
    let (cert, key) = ca.issue();
    for (name, contents) in [("tls.key", &key), ("tls.crt", &cert)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
    cert
}

/// The leaf certificate (DER) the webhook server presents now.
async fn presented(addr: SocketAddr, ca: &Ca) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name =
        rustls::pki_types::ServerName::try_from(format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc")).expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_steady_load_without_a_failed_request() {
    let dir: PathBuf = std::env::temp_dir().join(format!("kdev-webhook-e2e-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = Ca::new();
    write_pair(&dir, &ca);
    let files = ServingCert::from_dir(&dir).poll_interval(Duration::from_millis(50));
    let s = Setup::start(ca, files).await;
    s.register_pod_webhooks().await;
    let webhook_addr = s.addr;

    let pods: Api<Pod> = Api::namespaced(s.env.client(), &s.ns);
    let done = CancellationToken::new();
    let (ok, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::<String>::new())),
    );
    let load = {
        let (pods, done, ok, failed) = (pods.clone(), done.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !done.is_cancelled() {
                i += 1;
                let name = format!("load-{i}");
                match pods.create(&PostParams::default(), &pod(&name, "nginx:1.27.2")).await {
                    Ok(p) if p.spec.as_ref().is_some_and(|s| s.containers.len() == 2) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(p) => failed.lock().push(format!("{name}: not mutated: {:?}", p.spec)),
                    Err(e) => failed.lock().push(format!("{name}: {e}")),
                }
            }
        })
    };

    let mut rotations = 0;
    for _ in 0..4 {
        let before = ok.load(Ordering::Relaxed);
        let cert = write_pair(&dir, &s.ca);
        let want = der_of(&cert);
        let picked_up = tokio::time::timeout(Duration::from_secs(30), async {
            while presented(webhook_addr, &s.ca).await != want {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(picked_up.is_ok(), "the server presents the rotated certificate");
        rotations += 1;
        // Let requests run on the new certificate before the next rotation.
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while ok.load(Ordering::Relaxed) < before + 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "requests keep succeeding after rotation {rotations}");
    }
    done.cancel();
    load.await.expect("the load loop");
    let failed = failed.lock().clone();
    assert!(failed.is_empty(), "{} failed requests: {failed:?}", failed.len());
    assert_eq!(rotations, 4);
    assert!(ok.load(Ordering::Relaxed) >= 20);
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_defaulter_changes_only_what_it_sets_and_stores_no_null_for_a_nullable_field() {
    let s = in_memory().await;
    let crd = memos::Memo::crd();
    s.env.install_crd(&crd).await.expect("install the CRD");
    let plural = crd.spec.names.plural.clone();
    let hook = json!({ "name": "memos.kdev.dev", "clientConfig": s.client_config("/default-memos"),
        "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": ["memos.kdev.dev"], "apiVersions": ["v1"],
            "resources": [plural.clone()] }],
        "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"] });
    let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": "memo-defaults" }, "webhooks": [hook],
    }))
    .expect("configuration");
    Api::<MutatingWebhookConfiguration>::all(s.env.client())
        .create(&PostParams::default(), &mutating)
        .await
        .expect("mutating configuration");

    // Sent without `note`, as kubectl or any client that leaves it out would.
    let ar = kube_client::api::ApiResource::erase::<memos::Memo>(&());
    let memos: Api<kube_client::api::DynamicObject> = Api::namespaced_with(s.env.client(), &s.ns, &ar);
    let sent: kube_client::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "memos.kdev.dev/v1", "kind": "Memo", "metadata": { "name": "m" }, "spec": {},
    }))
    .expect("a memo");
    memos.create(&PostParams::default(), &sent).await.expect("create");
    let stored = memos.get("m").await.expect("read back");
    assert_eq!(
        stored.data["spec"],
        json!({ "size": 1 }),
        "only the defaulter's own change"
    );

    // Nothing to default: no patch, the object stays as sent.
    let mut noted = sent.clone();
    noted.metadata.name = Some("n".into());
    noted.data["spec"] = json!({ "size": 2, "note": "hi" });
    memos.create(&PostParams::default(), &noted).await.expect("create");
    assert_eq!(
        memos.get("n").await.expect("read back").data["spec"],
        json!({ "size": 2, "note": "hi" })
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_patch_from_a_validating_raw_handler_fails_the_call_as_its_failure_policy_says() {
    let s = in_memory().await;
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(s.env.client());
    let configure = |policy: &str| {
        let hook = json!({ "name": "patching.kdev.dev", "clientConfig": s.client_config("/validate-and-patch"),
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"] }],
            "failurePolicy": policy, "sideEffects": "None", "admissionReviewVersions": ["v1"] });
        serde_json::from_value::<ValidatingWebhookConfiguration>(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": { "name": "patching" }, "webhooks": [hook],
        }))
        .expect("configuration")
    };
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(s.env.client(), &s.ns);
    let config_map = |name: &str| -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "a": "b" } })).expect("a config map")
    };

    // Ignore: the failed call is ignored and the write admitted, unpatched.
    configs
        .create(&PostParams::default(), &configure("Ignore"))
        .await
        .expect("create");
    let created = config_maps
        .create(&PostParams::default(), &config_map("ignored"))
        .await
        .expect("admitted under Ignore");
    assert_eq!(created.data, Some([("a".to_string(), "b".to_string())].into()));

    // Fail: the write is refused, saying why.
    configs
        .replace("patching", &PostParams::default(), &{
            let mut c = configure("Fail");
            c.metadata.resource_version = configs.get("patching").await.expect("get").metadata.resource_version;
            c
        })
        .await
        .expect("replace");
    match config_maps.create(&PostParams::default(), &config_map("refused")).await {
        Err(kube_client::Error::Api(st)) => {
            assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"), "{st:?}");
            // kube-apiserver: `Internal error occurred: failed calling webhook "patching.kdev.dev":
            // received invalid webhook response: validating webhook may not return response.patch`.
            assert!(
                st.message
                    .starts_with(r#"Internal error occurred: failed calling webhook "patching.kdev.dev": "#),
                "{}",
                st.message
            );
            assert!(st.message.contains("may not return response.patch"), "{}", st.message);
        }
        other => panic!("expected a refusal under Fail, got {other:?}"),
    }
    s.shutdown().await;
}
