//! The manager's one HTTP listener: `/healthz`, `/readyz` and `/metrics`.

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
/// all pass, else 500 with one `[+]name ok` / `[-]name failed: reason` line per check.
fn checks(results: Vec<(String, Result<(), String>)>) -> Response<Full<Bytes>> {
    if results.iter().all(|(_, r)| r.is_ok()) {
        return text(StatusCode::OK, "ok".into(), "text/plain; charset=utf-8");
    }
    let mut body = String::new();
    for (name, r) in &results {
        match r {
            Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
            Err(why) => body.push_str(&format!("[-]{name} failed: {why}\n")),
        }
    }
    body.push_str("healthz check failed\n");
    text(StatusCode::INTERNAL_SERVER_ERROR, body, "text/plain; charset=utf-8")
}

fn route(inner: &Inner, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/healthz" | "/livez" => checks(inner.health_results()),
        "/readyz" => checks(inner.ready_results()),
        "/metrics" => {
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
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n".into(), "text/plain"),
    }
}

/// Serves until `stop` is cancelled.
pub(super) async fn serve(listener: TcpListener, inner: Arc<Inner>, stop: CancellationToken) {
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
        let (inner, stop) = (inner.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = route(&inner, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}
