//! Calling a webhook the way kube-apiserver does: HTTPS POST to `clientConfig.url` or to a
//! Service (mapped to a local address by [`Config::webhook_service`](crate::Config::webhook_service)),
//! the server certificate verified against `caBundle`, a `?timeout=` parameter, and the whole
//! call bounded by the webhook's timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::server::Shared;

/// Largest webhook response read (kube-apiserver reads whole responses; this bounds memory).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Where one call goes.
struct Target {
    /// The URL as kube-apiserver prints it in errors (with `?timeout=`).
    url: String,
    /// Host and port to connect to.
    connect: Connect,
    /// The name the certificate must carry.
    server_name: ServerName<'static>,
    /// Path and query of the request.
    path: String,
    /// The `Host` header.
    host: String,
}

enum Connect {
    Addr(SocketAddr),
    Host(String, u16),
}

/// Rounds a timeout up to whole seconds, as the `?timeout=` parameter kube-apiserver sends.
fn timeout_param(timeout: Duration) -> String {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    format!("{secs}s")
}

fn with_query(path: &str, timeout: Duration) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}timeout={}", timeout_param(timeout))
}

fn target(shared: &Shared, client_config: &Value, timeout: Duration) -> Result<Target, String> {
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: http::Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook URL {url:?} must use the https scheme"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|e| format!("invalid host {host:?}: {e}"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = with_query(path, timeout);
        let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
        return Ok(Target {
            url: format!("https://{authority}{path}"),
            connect: Connect::Host(host, port),
            server_name,
            path,
            host: authority,
        });
    }
    let Some(svc) = client_config.get("service").filter(|s| s.is_object()) else {
        return Err("webhook clientConfig has neither url nor service".into());
    };
    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
    let port = svc
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    let path = with_query(if path.is_empty() { "/" } else { path }, timeout);
    let dns = format!("{name}.{ns}.svc");
    let addr = shared
        .config
        .webhook_services
        .get(&(ns.to_string(), name.to_string(), port))
        .copied()
        .ok_or_else(|| format!("services \"{name}\" not found"))?;
    let server_name = ServerName::try_from(dns.clone()).map_err(|e| format!("invalid service name {dns:?}: {e}"))?;
    Ok(Target {
        url: format!("https://{dns}:{port}{path}"),
        connect: Connect::Addr(addr),
        server_name,
        path,
        host: format!("{dns}:{port}"),
    })
}

fn tls_config(client_config: &Value) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(bundle) = client_config.get("caBundle").and_then(Value::as_str) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("unable to load root certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// POSTs `body` to the webhook and returns the response body of a 2xx answer.
///
/// Errors read as Go's HTTP client words them: `Post "<url>": <cause>`.
pub(crate) async fn post(
    shared: &Shared,
    client_config: &Value,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Bytes, String> {
    let target = target(shared, client_config, timeout)?;
    let url = target.url.clone();
    match tokio::time::timeout(timeout, exchange(client_config, target, body)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(format!("Post \"{url}\": {e}")),
        Err(_) => Err(format!("Post \"{url}\": context deadline exceeded")),
    }
}

async fn exchange(client_config: &Value, target: Target, body: Vec<u8>) -> Result<Bytes, String> {
    let tls = tls_config(client_config)?;
    let tcp = match &target.connect {
        Connect::Addr(addr) => tokio::net::TcpStream::connect(addr).await,
        Connect::Host(host, port) => tokio::net::TcpStream::connect((host.as_str(), *port)).await,
    }
    .map_err(|e| format!("dial tcp: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let req = Request::post(target.path.as_str())
        .header(header::HOST, target.host.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, */*")
        .header(header::USER_AGENT, "kube-apiserver-admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let work = async move {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    tokio::pin!(work);
    tokio::pin!(conn);
    let mut conn_done = false;
    let (status, bytes) = loop {
        tokio::select! {
            biased;
            r = &mut work => break r?,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                c.map_err(|e| e.to_string())?;
            }
        }
    };
    if status.is_success() {
        return Ok(bytes);
    }
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    Err(format!(
        "the server responded with the status code {} but did not return more information: {message}",
        status.as_u16()
    ))
}
