//! Client certificates (mutual TLS): required, verified if given, and refused when signed by
//! another CA.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::tls::{self, ClientAuth, ServingCert};
use kdev_webhook::{Server, server};
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
async fn get(
    addr: SocketAddr,
    version: &'static rustls::SupportedProtocolVersion,
    server_ca: &Ca,
    client: Option<&Leaf>,
) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
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
    // handshake is done: the refusal shows on the first request. With TLS 1.2 the handshake
    // fails.
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
async fn a_client_certificate_is_required_and_must_be_signed_by_the_client_ca() {
    let (server_ca, client_ca, other_ca) = (Ca::new(), Ca::new(), Ca::new());
    let running = serve(&server_ca, ClientAuth::required(client_ca.pem.as_bytes()).unwrap()).await;
    for versions in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // The server answers (405: a webhook path takes POST only) once the handshake passed.
        assert_eq!(
            get(running.addr, versions, &server_ca, Some(&client_ca.leaf())).await,
            Ok(405)
        );
        let without = get(running.addr, versions, &server_ca, None).await;
        assert!(without.is_err(), "no client certificate: {without:?}");
        let foreign = get(running.addr, versions, &server_ca, Some(&other_ca.leaf())).await;
        assert!(foreign.is_err(), "a certificate of another CA: {foreign:?}");
    }
    // The server is still up for the next good client.
    assert_eq!(
        get(
            running.addr,
            &rustls::version::TLS13,
            &server_ca,
            Some(&client_ca.leaf())
        )
        .await,
        Ok(405)
    );
}

#[tokio::test]
async fn without_client_auth_any_client_connects() {
    let server_ca = Ca::new();
    let leaf = server_ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls)).await;
    assert_eq!(
        get(running.addr, &rustls::version::TLS13, &server_ca, None).await,
        Ok(405)
    );
}

#[test]
fn a_server_with_conversion_paths_refuses_client_auth() {
    let (server_ca, client_ca) = (Ca::new(), Ca::new());
    let leaf = server_ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let built = Server::builder()
        .raw("/allow", allow)
        .conversion("/convert", crate::config::Widgets)
        .tls(tls)
        .client_auth(ClientAuth::required(client_ca.pem.as_bytes()).unwrap())
        .build();
    assert!(
        matches!(&built, Err(server::Error::ClientAuthWithConversion { path }) if path == "/convert"),
        "{built:?}"
    );
}

#[test]
fn a_client_ca_must_hold_usable_certificates() {
    assert!(matches!(ClientAuth::required(b""), Err(tls::Error::NoCertificate)));
    assert!(matches!(
        ClientAuth::required(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
        Err(tls::Error::Certificate(_))
    ));
    // Well-formed PEM around bytes that are no certificate.
    assert!(matches!(
        ClientAuth::required(b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n"),
        Err(tls::Error::ClientCa(_))
    ));
}
