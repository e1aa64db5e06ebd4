//! Client certificates (mutual TLS): required, verified if given, and refused when signed by
//! another CA.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::tls::{self, ClientAuth, ServingCert};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::support::{self, Ca, Leaf, Running};

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

/// A server for `localhost` signed by `server_ca`, verifying clients by `auth`.
async fn serve(server_ca: &Ca, auth: ClientAuth) -> Running {
    let leaf = server_ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    support::start(Server::builder().raw("/allow", allow).tls(tls).client_auth(auth)).await
}

/// Sends one GET over a fresh TLS connection that trusts `server_ca` and presents `client`;
/// the HTTP status, or why the connection failed.
async fn get(addr: SocketAddr, server_ca: &Ca, client: Option<&Leaf>) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // With TLS 1.3 the server refuses a client certificate after the client's side of the
    // handshake is done: the refusal shows on the first request.
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method("GET")
        .uri("/allow")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok(status)
}

#[tokio::test]
async fn a_required_client_certificate_must_be_signed_by_the_client_ca() {
    let (server_ca, client_ca, other_ca) = (Ca::new(), Ca::new(), Ca::new());
    let auth = ClientAuth::required(client_ca.pem.as_bytes()).unwrap();
    assert!(auth.is_required());
    let running = serve(&server_ca, auth).await;
    // The server answers (405: a webhook path takes POST only) once the handshake passed.
    assert_eq!(get(running.addr, &server_ca, Some(&client_ca.leaf())).await, Ok(405));
    let without = get(running.addr, &server_ca, None).await;
    assert!(without.is_err(), "no client certificate: {without:?}");
    let foreign = get(running.addr, &server_ca, Some(&other_ca.leaf())).await;
    assert!(foreign.is_err(), "a certificate of another CA: {foreign:?}");
    // The server is still up for the next good client.
    assert_eq!(get(running.addr, &server_ca, Some(&client_ca.leaf())).await, Ok(405));
}

#[tokio::test]
async fn a_client_certificate_verified_if_given_may_be_absent_but_not_foreign() {
    let (server_ca, client_ca, other_ca) = (Ca::new(), Ca::new(), Ca::new());
    let auth = ClientAuth::verify_if_given(client_ca.pem.as_bytes()).unwrap();
    assert!(!auth.is_required());
    let running = serve(&server_ca, auth).await;
    assert_eq!(get(running.addr, &server_ca, None).await, Ok(405));
    assert_eq!(get(running.addr, &server_ca, Some(&client_ca.leaf())).await, Ok(405));
    let foreign = get(running.addr, &server_ca, Some(&other_ca.leaf())).await;
    assert!(foreign.is_err(), "a certificate of another CA: {foreign:?}");
}

#[test]
fn a_client_ca_must_hold_a_certificate() {
    assert!(matches!(ClientAuth::required(b""), Err(tls::Error::NoCertificate)));
    assert!(matches!(
        ClientAuth::verify_if_given(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"),
        Err(tls::Error::Certificate(_) | tls::Error::ClientCa(_) | tls::Error::NoCertificate)
    ));
}
