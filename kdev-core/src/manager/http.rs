//! The manager's HTTP listeners: `/healthz`, `/readyz` and `/metrics`, the metrics over TLS and
//! behind [`auth`](super::auth) when asked.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Inner;

/// What one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Routes {
    /// The probes and `/metrics` ([`ManagerBuilder::http_addr`](super::ManagerBuilder::http_addr)).
    All,
    /// `/metrics` alone.
    Metrics,
    /// The probes alone.
    Probes,
}

/// The OpenMetrics text format, as Prometheus scrapes it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn text(code: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    resp
}

/// Runs named checks and renders them as controller-runtime's healthz handler does: `ok` when
/// all pass, else 500 with one `[+]name ok` / `[-]name failed: reason` line per check, sorted
/// by name (kdev gives the reason; controller-runtime withholds it). `?verbose` lists the checks
/// when all pass too, and each `?exclude=name` skips one check.
fn checks(mut results: Vec<(String, Result<(), String>)>, query: &str) -> Response<Full<Bytes>> {
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let verbose = params.iter().any(|(k, _)| *k == "verbose");
    let mut unknown: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "exclude")
        .map(|(_, v)| *v)
        .collect();
    let mut lines = String::new();
    let mut failed = false;
    for (name, r) in &results {
        let before = unknown.len();
        unknown.retain(|e| e != name);
        if unknown.len() < before {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match r {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(why) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {why}\n"));
            }
        }
    }
    if !failed && !verbose {
        return text(StatusCode::OK, "ok".into(), "text/plain; charset=utf-8");
    }
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(", ")
        ));
    }
    let (code, verdict) = if failed {
        (StatusCode::INTERNAL_SERVER_ERROR, "healthz check failed\n")
    } else {
        (StatusCode::OK, "healthz check passed\n")
    };
    lines.push_str(verdict);
    text(code, lines, "text/plain; charset=utf-8")
}

/// One check of `results` by name (`/readyz/informers`): `ok`, or 500 with its reason; 404 for
/// a name no check has.
fn one_check(results: Vec<(String, Result<(), String>)>, name: &str) -> Response<Full<Bytes>> {
    match results.into_iter().find(|(n, _)| n == name) {
        Some((_, Ok(()))) => text(StatusCode::OK, "ok".into(), "text/plain; charset=utf-8"),
        Some((_, Err(why))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {why}\n"),
            "text/plain; charset=utf-8",
        ),
        None => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into(), "text/plain")
}

fn route(inner: &Inner, routes: Routes, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            "text/plain",
        );
    }
    let path = req.uri().path().trim_end_matches('/');
    let query = req.uri().query().unwrap_or("");
    let probe = |prefix: &str| -> Option<Option<&str>> {
        let rest = path.strip_prefix(prefix)?;
        match rest {
            "" => Some(None),
            _ => rest.strip_prefix('/').map(Some),
        }
    };
    let probes = routes != Routes::Metrics;
    if let Some(which) = probe("/healthz").or_else(|| probe("/livez")).filter(|_| probes) {
        return match which {
            None => checks(inner.health_results(), query),
            Some(name) => one_check(inner.health_results(), name),
        };
    }
    if let Some(which) = probe("/readyz").filter(|_| probes) {
        return match which {
            None => checks(inner.ready_results(), query),
            Some(name) => one_check(inner.ready_results(), name),
        };
    }
    match path {
        "/metrics" if serves_metrics(inner, routes) => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, &inner.registry.lock()) {
                Ok(()) => text(StatusCode::OK, body, OPENMETRICS),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("encoding metrics: {e}\n"),
                    "text/plain",
                ),
            }
        }
        _ => not_found(),
    }
}

/// Whether the metrics' TLS and authorization apply to the listener serving `routes`: the
/// metrics-only one, else the shared one.
fn secured(inner: &Inner, routes: Routes) -> bool {
    match routes {
        Routes::Metrics => true,
        Routes::All => inner.metrics_addr.is_none(),
        Routes::Probes => false,
    }
}

/// Whether a listener serving `routes` answers `/metrics`: the secured one does, and the shared
/// one too when nothing secures the metrics-only one (it would bypass the TLS or authorization).
fn serves_metrics(inner: &Inner, routes: Routes) -> bool {
    secured(inner, routes) || (routes == Routes::All && inner.metrics_tls.is_none() && inner.metrics_auth.is_none())
}

/// Whether a request must be authenticated and authorized: every request to the metrics-only
/// listener, and `/metrics` on the shared one when it is the secured one (kubelet's probes carry
/// no token).
fn guarded(inner: &Inner, routes: Routes, path: &str) -> bool {
    secured(inner, routes) && (routes == Routes::Metrics || path.trim_end_matches('/') == "/metrics")
}

fn refused(refusal: &super::auth::Refusal) -> Response<Full<Bytes>> {
    let mut resp = text(refusal.status(), refusal.body(), "text/plain; charset=utf-8");
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `stop` is cancelled, over TLS when the metrics' TLS applies to this listener.
pub(super) async fn serve(listener: TcpListener, routes: Routes, inner: Arc<Inner>, stop: CancellationToken) {
    let tls = inner
        .metrics_tls
        .clone()
        .filter(|_| secured(&inner, routes))
        .map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a probe/metrics connection failed");
                    continue;
                }
            },
        };
        let (inner, stop, tls) = (inner.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(stream), routes, inner, stop).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => connection(TokioIo::new(stream), routes, inner, stop).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "a metrics client's TLS handshake failed"),
                    Err(_) => tracing::debug!("a metrics client did not finish its TLS handshake in 10s"),
                },
            }
        });
    }
}

async fn connection<I>(io: I, routes: Routes, inner: Arc<Inner>, stop: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let inner = inner.clone();
        async move {
            if let Some(auth) = inner
                .metrics_auth
                .as_ref()
                .filter(|_| guarded(&inner, routes, req.uri().path()))
                && let Err(refusal) = auth.check(req.method(), req.uri().path(), req.headers()).await
            {
                return Ok::<_, Infallible>(refused(&refusal));
            }
            Ok(route(&inner, routes, &req))
        }
    });
    let conn = http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}
