//! controller-runtime's webhook metrics, from a bare server and from a Manager's `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use kdev_core::manager::Manager;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::certs::Settings;
use kdev_webhook::metrics::Metrics;
use kdev_webhook::tls::ServingCert;
use kdev_webhook::{Server, manager};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::support::{self, pod, review};
use crate::watch::temp_dir;

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

async fn slow(_req: Request) -> Response {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Response::allowed()
}

fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The value of the sample `series` (name and labels exactly as exported), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn requests_latency_and_in_flight_are_counted_per_path_and_code() {
    let ca = support::Ca::new();
    let leaf = ca.leaf();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(
        Server::builder()
            .raw("/allow", allow)
            .raw("/slow", slow)
            .tls(tls)
            .metrics(&metrics),
    )
    .await;

    // Before any request: the series of each path exist at 0.
    let text = encode(&registry);
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_requests_total{webhook="/allow",code="200"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_requests_in_flight{webhook="/slow"}"#
        ),
        Some(0.0)
    );

    let mut conn = support::connect(running.addr, &ca.pem).await;
    for uid in ["a", "b", "c"] {
        conn.admit("/allow", &review(uid, "CREATE", Some(pod("x", json!({}))), None, false))
            .await;
    }
    conn.admit("/slow", &review("d", "CREATE", Some(pod("x", json!({}))), None, false))
        .await;
    let (status, _) = conn
        .send("POST", "/allow", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);
    let (status, _) = conn.send("GET", "/allow", "application/json", Vec::new()).await;
    assert_eq!(status, 405);
    // An unknown path has no webhook label: not counted.
    let (status, _) = conn.send("POST", "/nowhere", "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 404);

    let text = encode(&registry);
    let total = |path: &str, code: u16| {
        sample(
            &text,
            &format!(r#"controller_runtime_webhook_requests_total{{webhook="{path}",code="{code}"}}"#),
        )
    };
    assert_eq!(total("/allow", 200), Some(3.0));
    assert_eq!(total("/allow", 400), Some(1.0));
    assert_eq!(total("/allow", 405), Some(1.0));
    assert_eq!(total("/slow", 200), Some(1.0));
    assert_eq!(total("/slow", 400), None);
    assert!(!text.contains("/nowhere"), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_latency_seconds_count{webhook="/allow"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_latency_seconds_count{webhook="/slow"}"#
        ),
        Some(1.0)
    );
    // controller-runtime's buckets, 10 ns · 10^i for i < 12, then +Inf.
    let buckets: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("controller_runtime_webhook_latency_seconds_bucket") && l.contains(r#"webhook="/allow""#)
        })
        .collect();
    assert_eq!(buckets.len(), 13, "{text}");
    assert!(buckets.iter().any(|l| l.contains(r#"le="+Inf""#)), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_requests_in_flight{webhook="/allow"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_request_in_flight_is_reported_until_it_is_answered() {
    let ca = support::Ca::new();
    let leaf = ca.leaf();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let handler = move |_req: Request| {
        let held = held.clone();
        async move {
            let _permit = held.acquire().await.unwrap();
            Response::allowed()
        }
    };
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(Server::builder().raw("/held", handler).tls(tls).metrics(&metrics)).await;
    let mut conn = support::connect(running.addr, &ca.pem).await;
    let call = tokio::spawn(async move {
        conn.admit("/held", &review("h", "CREATE", Some(pod("x", json!({}))), None, false))
            .await
    });
    let series = r#"controller_runtime_webhook_requests_in_flight{webhook="/held"}"#;
    let mut seen = None;
    for _ in 0..600 {
        seen = sample(&encode(&registry), series);
        if seen == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some(1.0));
    gate.add_permits(1);
    call.await.unwrap();
    assert_eq!(sample(&encode(&registry), series), Some(0.0));
}

/// GETs `path` from the manager's plain-HTTP listener: the status and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_manager_runs_the_server_and_serves_its_metrics_and_readiness() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let dir = temp_dir("manager");
    let bundle = Settings::for_service("default", "hooks")
        .dns_names(["localhost"])
        .generate()
        .unwrap();
    bundle.write(&dir).unwrap();
    let manager = Manager::builder(env.client())
        .http_addr("127.0.0.1:0".parse().unwrap())
        .handle_signals(false)
        .build();
    let builder = Server::builder()
        .raw("/validate", allow)
        .tls(ServingCert::from_dir(&dir));
    let webhook = manager::add(&manager, builder, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(!webhook.started());
    let stop = manager.shutdown_token();
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });

    let addr = webhook.local_addr().await;
    let mut conn = support::connect(addr, &bundle.ca_pem()).await;
    let answer = conn
        .admit(
            "/validate",
            &review("m", "CREATE", Some(pod("x", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["allowed"], true);

    let http = loop {
        if let Some(a) = manager.http_addr() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (status, text) = get(http, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_requests_total{webhook="/validate",code="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_latency_seconds_count{webhook="/validate"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"controller_runtime_webhook_requests_in_flight{webhook="/validate"}"#
        ),
        Some(0.0)
    );
    let mut ready = get(http, "/readyz").await;
    for _ in 0..600 {
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        ready = get(http, "/readyz").await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert!(webhook.started());

    // Stopping the manager stops the server: new connections are refused.
    stop.cancel();
    running.await.unwrap().unwrap();
    assert!(!webhook.started());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn certificate_reads_and_read_errors_are_counted() {
    let ca = support::Ca::new();
    let first = ca.leaf();
    let dir = temp_dir("certwatcher-metrics");
    std::fs::write(dir.join("tls.crt"), &first.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &first.key_pem).unwrap();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let tls = ServingCert::from_dir(&dir).poll_interval(Duration::from_secs(3600));
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls).metrics(&metrics)).await;
    let reads = "certwatcher_read_certificate_total";
    let errors = "certwatcher_read_certificate_errors_total";
    // The first read happens when the server starts: wait for it to serve.
    assert_eq!(support::connect(running.addr, &ca.pem).await.peer_cert, first.der());
    let text = encode(&registry);
    assert_eq!(sample(&text, reads), Some(1.0), "{text}");
    assert_eq!(sample(&text, errors), Some(0.0));

    // A certificate that does not parse: an error, and the first certificate still served.
    std::fs::write(dir.join("tls.crt"), "garbage").unwrap();
    let mut seen = None;
    for _ in 0..600 {
        seen = sample(&encode(&registry), errors);
        if seen >= Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen >= Some(1.0), "the broken certificate was never counted: {seen:?}");
    assert_eq!(support::connect(running.addr, &ca.pem).await.peer_cert, first.der());

    let second = ca.leaf();
    std::fs::write(dir.join("tls.key"), &second.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &second.cert_pem).unwrap();
    assert_eq!(
        crate::watch::wait_for_cert(running.addr, &ca.pem, &second.der()).await,
        second.der()
    );
    let text = encode(&registry);
    assert!(sample(&text, reads).unwrap() >= 3.0, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
