//! `/metrics` over TLS, behind authentication and authorization delegated to the API server
//! (kubebuilder's secure metrics), on kdev-testenv and on a real cluster: a ServiceAccount bound
//! to a `metrics-reader` ClusterRole scrapes, one without the binding is refused, no token or a
//! bad one is refused, and the probes stay open.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kdev_core::manager::Manager;
use kdev_core::manager::auth::DelegatingAuth;
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{ApiResource, ObjectMeta, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `localhost`: the server's TLS config and a client's trusting it.
fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let cert_pem = issued.cert.pem();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("the certificate parses");
    let key = PrivateKeyDer::from_pem_slice(issued.signing_key.serialize_pem().as_bytes()).expect("the key parses");
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .expect("a server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).expect("a trust anchor");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// An HTTPS/1.1 GET of `path`, with `token` as a bearer token: (status, body).
async fn get(
    tls: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut stream = connector.connect(name, tcp).await.expect("a TLS handshake");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    // The server may close without a TLS close_notify once it has answered.
    let _ = stream.read_to_end(&mut raw).await;
    super::manager::status_and_body(&String::from_utf8_lossy(&raw))
}

/// Runs `manager` (until its shutdown token is cancelled), returning once it listens.
async fn run(manager: &Manager) -> tokio::task::JoinHandle<Result<(), kdev_core::manager::ManagerError>> {
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while manager.http_addr().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the manager never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running
}

async fn token_for(env: &TestEnv, ns: &str, name: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(env.client(), ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &sa)
        .await
        .expect("create a ServiceAccount");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec::default()),
        ..TokenRequest::default()
    };
    api.create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token")
        .status
        .and_then(|s| s.token)
        .expect("the token")
}

/// kubebuilder's `metrics-reader` ClusterRole, bound to `ns`'s ServiceAccount `account`, under a
/// name no other run uses; deleted when `env` is dropped.
async fn bind_metrics_reader(env: &TestEnv, ns: &str, account: &str) {
    let name = format!(
        "kdev-metrics-reader-{}",
        (0..6).map(|_| fastrand::lowercase()).collect::<String>()
    );
    env.delete_on_drop(&ApiResource::erase::<ClusterRole>(&()), &name);
    env.delete_on_drop(&ApiResource::erase::<ClusterRoleBinding>(&()), &name);
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/metrics".into()]),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(env.client())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(ns.into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(env.client())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the ClusterRoleBinding");
}

#[tokio::test]
async fn metrics_over_tls_are_read_only_by_accounts_rbac_allows() {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let reader = token_for(&env, &ns, "prometheus").await;
    let stranger = token_for(&env, &ns, "stranger").await;
    bind_metrics_reader(&env, &ns, "prometheus").await;

    let (server_tls, client_tls) = tls_pair();
    let manager = Manager::builder(env.client())
        .http_addr("127.0.0.1:0".parse().expect("an address"))
        .metrics_tls(server_tls)
        // No denial is kept, so the reader is allowed as soon as its binding is seen (a real
        // cluster's authorizer catches up with a new binding within moments).
        .metrics_auth(DelegatingAuth::new(env.client()).deny_cache_ttl(Duration::ZERO))
        .handle_signals(false)
        .build();
    let stop = manager.shutdown_token();
    let running = run(&manager).await;
    let addr = manager.http_addr().expect("listening");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);

    // The reader scrapes once its binding takes effect.
    let (code, body) = loop {
        let (code, body) = get(&client_tls, addr, "/metrics", Some(&reader)).await;
        if code == 200 || tokio::time::Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("process_cpu_seconds_total"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");

    let denied = format!("Authorization denied for user system:serviceaccount:{ns}:stranger\n");
    assert_eq!(get(&client_tls, addr, "/metrics", Some(&stranger)).await, (403, denied));
    assert_eq!(
        get(&client_tls, addr, "/metrics", None).await,
        (401, "Unauthorized\n".to_string())
    );
    assert_eq!(
        get(&client_tls, addr, "/metrics", Some("not-a-token")).await,
        (500, "Authentication failed\n".to_string())
    );
    // kubelet's probes carry no token: they stay open, over the same TLS.
    assert_eq!(get(&client_tls, addr, "/healthz", None).await, (200, "ok".to_string()));

    stop.cancel();
    running
        .await
        .expect("the manager task")
        .expect("the manager stops cleanly");
}

/// With a metrics-only listener behind authorization, the shared listener keeps the probes but
/// no longer serves `/metrics`, which would bypass it.
#[tokio::test]
async fn a_secured_metrics_listener_is_the_only_way_to_the_metrics() {
    let env = TestEnv::start().await.expect("test environment");
    let any = "127.0.0.1:0".parse().expect("an address");
    let manager = Manager::builder(env.client())
        .http_addr(any)
        .metrics_addr(any)
        .metrics_auth(DelegatingAuth::new(env.client()))
        .handle_signals(false)
        .build();
    let stop = manager.shutdown_token();
    let running = run(&manager).await;
    let shared = manager.http_addr().expect("listening");
    // Bound with the shared listener, and recorded right after it.
    let mut metrics = manager.metrics_addr();
    while metrics.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = manager.metrics_addr();
    }
    let metrics = metrics.expect("listening");
    assert_eq!(super::manager::get(shared, "/metrics").await.0, 404);
    assert_eq!(super::manager::get(shared, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(
        super::manager::get(metrics, "/metrics").await,
        (401, "Unauthorized\n".to_string())
    );
    stop.cancel();
    running
        .await
        .expect("the manager task")
        .expect("the manager stops cleanly");
}
