//! A CA, a running server and an HTTPS client trusting the CA.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kdev_webhook::server::{self, Builder};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// A self-signed CA that signs serving certificates for `localhost` and 127.0.0.1.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A serving certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The DER of the leaf certificate, to compare with what a server presents.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kdev-webhook-test-ca");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    pub fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A server running on a free loopback port; dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), server::Error>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start(builder: Builder) -> Running {
    let server = builder.build().unwrap();
    let bound = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
    Running { addr, stop, task }
}

/// One HTTPS keep-alive connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The leaf certificate the server presented.
    pub peer_cert: Vec<u8>,
}

pub async fn connect(addr: SocketAddr, ca_pem: &str) -> Conn {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connect_over(tcp, ca_pem).await
}

/// A TLS session for `localhost` over `io`, trusting `ca_pem`.
pub async fn tls_over<IO>(io: IO, ca_pem: &str) -> tokio_rustls::client::TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), io)
        .await
        .unwrap()
}

/// One HTTPS keep-alive connection over `io` (a TCP stream, an in-memory pipe).
pub async fn connect_over<IO>(io: IO, ca_pem: &str) -> Conn
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tls = tls_over(io, ca_pem).await;
    let peer_cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    Conn { sender, peer_cert }
}

impl Conn {
    /// Sends `body` to `path` with `method` and `content_type`; the status and the body.
    pub async fn send(&mut self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, body)
    }

    /// Whether the server closed the connection (a request sent now would fail).
    pub async fn is_closed(&mut self) -> bool {
        self.sender.ready().await.is_err()
    }

    /// Posts a review as JSON; the status and the body as JSON.
    pub async fn post(&mut self, path: &str, review: &Value) -> (u16, Value) {
        let (status, body) = self
            .send("POST", path, "application/json", serde_json::to_vec(review).unwrap())
            .await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// Posts a review that must be answered with HTTP 200; the review's `response`.
    pub async fn admit(&mut self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "AdmissionReview");
        body["response"].clone()
    }
}

/// An AdmissionReview v1 for pods.
pub fn review(uid: &str, operation: &str, object: Option<Value>, old_object: Option<Value>, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "name": "web",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old_object,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

/// A pod with one container running `image` and the given labels.
pub fn pod(image: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": image}]},
    })
}
