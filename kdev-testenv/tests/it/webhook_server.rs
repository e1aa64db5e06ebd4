//! A small HTTPS webhook server for the admission and conversion tests: a fresh CA, a serving
//! certificate for loopback and one Service DNS name, and a handler per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use kdev_testenv::TestEnv;

/// The DNS name the serving certificate carries besides loopback: Service `hooks` in namespace
/// `webhooks`.
pub const SERVICE_NAMESPACE: &str = "webhooks";
pub const SERVICE_NAME: &str = "hooks";

/// What the handler answers.
pub struct Reply {
    pub delay: Option<Duration>,
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn json(body: Value) -> Self {
        Reply {
            delay: None,
            status: 200,
            body,
        }
    }
}

type Handler = dyn Fn(&str, &Value) -> Reply + Send + Sync;

/// A running webhook server; dropping it stops it.
pub struct WebhookServer {
    pub addr: SocketAddr,
    /// The CA (PEM, base64): what a `caBundle` carries.
    pub ca_bundle: String,
    /// Every request received: path and body.
    pub calls: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookServer {
    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A `clientConfig` with this server's URL and CA.
    pub fn client_config(&self, path: &str) -> Value {
        json!({ "url": self.url(path), "caBundle": self.ca_bundle })
    }

    /// A `clientConfig` naming the Service, for a server whose Config maps it here.
    pub fn service_config(&self, path: &str) -> Value {
        json!({
            "service": { "namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "path": path, "port": 443 },
            "caBundle": self.ca_bundle,
        })
    }

    /// The requests received on `path`.
    pub fn calls_to(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .iter()
            .filter(|(p, _)| p.split('?').next() == Some(path))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The paths called, in order.
    pub fn paths(&self) -> Vec<String> {
        self.calls
            .lock()
            .iter()
            .map(|(p, _)| p.split('?').next().unwrap_or("").to_string())
            .collect()
    }
}

fn certs() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc"),
    ];
    let leaf = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_cert.pem());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (bundle, vec![leaf.der().clone()], key)
}

/// Starts a server calling `handler(path, body)` for every POST.
pub async fn serve(handler: impl Fn(&str, &Value) -> Reply + Send + Sync + 'static) -> WebhookServer {
    let (ca_bundle, chain, key) = certs();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let recorded = calls.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, handler, calls) = (acceptor.clone(), handler.clone(), recorded.clone());
            conns.spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (handler, calls) = (handler.clone(), calls.clone());
                    async move {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        calls.lock().push((path.clone(), body.clone()));
                        let reply = handler(path.split('?').next().unwrap_or(""), &body);
                        if let Some(d) = reply.delay {
                            tokio::time::sleep(d).await;
                        }
                        let mut resp =
                            http::Response::new(Full::new(Bytes::from(serde_json::to_vec(&reply.body).unwrap())));
                        *resp.status_mut() = http::StatusCode::from_u16(reply.status).unwrap();
                        resp.headers_mut()
                            .insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    WebhookServer {
        addr,
        ca_bundle,
        calls,
        task,
    }
}

/// The `response` of an AdmissionReview answering `review`.
pub fn answer(review: &Value, response: Value) -> Value {
    let mut response = response;
    response["uid"] = review["request"]["uid"].clone();
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response })
}

pub fn allow(review: &Value) -> Reply {
    Reply::json(answer(review, json!({ "allowed": true })))
}

pub fn deny(review: &Value, message: &str) -> Reply {
    Reply::json(answer(
        review,
        json!({ "allowed": false, "status": { "message": message, "code": 403, "reason": "Forbidden" } }),
    ))
}

/// Allows with a JSON patch.
pub fn patch(review: &Value, ops: Value) -> Reply {
    let p = base64::engine::general_purpose::STANDARD.encode(ops.to_string());
    Reply::json(answer(
        review,
        json!({ "allowed": true, "patch": p, "patchType": "JSONPatch" }),
    ))
}

/// Skips on a real cluster, which cannot reach a webhook served inside the test process.
pub fn needs_local_webhooks() -> bool {
    if std::env::var(kdev_testenv::KUBECONFIG_ENV).is_ok_and(|v| !v.is_empty()) {
        eprintln!(
            "skipping: this test serves its webhook inside the test process, which a real cluster's API server cannot reach"
        );
        return false;
    }
    true
}

/// An embedded server whose Service `webhooks/hooks:443` leads to `hooks`.
pub async fn env_for(hooks: &WebhookServer) -> (TestEnv, String) {
    let config = kdev_testenv::Config::default().webhook_service(SERVICE_NAMESPACE, SERVICE_NAME, 443, hooks.addr);
    let env = TestEnv::embedded(config).await.expect("the embedded server starts");
    let ns = env.namespace().await.expect("a namespace");
    (env, ns)
}
