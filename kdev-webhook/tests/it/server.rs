//! The HTTP layer: malformed requests, limits, routing, building and shutdown.

use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::server::Error;
use kdev_webhook::tls::ServingCert;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use crate::support::{self, Ca, Conn, Running, pod, review};

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

async fn setup(max_body: Option<usize>) -> (Running, Conn) {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let mut builder = Server::builder().raw("/allow", allow).tls(tls);
    if let Some(limit) = max_body {
        builder = builder.max_body_size(limit);
    }
    let running = support::start(builder).await;
    let conn = support::connect(running.addr, &ca.pem).await;
    (running, conn)
}

fn status(body: &[u8]) -> Value {
    let status: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(status["kind"], "Status");
    status
}

#[tokio::test]
async fn malformed_json_gets_400_with_a_clear_message() {
    let (_server, mut conn) = setup(None).await;
    let (code, body) = conn
        .send("POST", "/allow", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(code, 400);
    let message = status(&body)["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("the request body is not an AdmissionReview: "),
        "{message}"
    );
    // The connection survives a bad request.
    let answer = conn
        .admit(
            "/allow",
            &review("ok", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "ok");
}

#[tokio::test]
async fn a_review_without_a_request_gets_400() {
    let (_server, mut conn) = setup(None).await;
    let (code, body) = conn
        .post(
            "/allow",
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "the AdmissionReview has no request");
}

#[tokio::test]
async fn a_malformed_review_with_a_readable_uid_is_denied_with_400() {
    let (_server, mut conn) = setup(None).await;
    let mut bad = review("u-bad", "CREATE", None, None, false);
    bad["request"]["operation"] = json!("EXPLODE");
    let answer = conn.admit("/allow", &bad).await;
    assert_eq!(answer["uid"], "u-bad");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 400);
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(message.contains("EXPLODE"), "{message}");

    let mut wrong = review("u-kind", "CREATE", None, None, false);
    wrong["kind"] = json!("ConversionReview");
    let answer = conn.admit("/allow", &wrong).await;
    assert_eq!(answer["uid"], "u-kind");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 400);
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let (_server, mut conn) = setup(Some(1024)).await;
    let (code, body) = conn.send("POST", "/allow", "application/json", vec![b' '; 4096]).await;
    assert_eq!(code, 413);
    assert_eq!(status(&body)["code"], 413);
}

#[tokio::test]
async fn the_default_limit_is_7_mib_so_an_update_with_two_3_mib_objects_fits() {
    let (_server, mut conn) = setup(None).await;
    // An UPDATE carries the object and its old state, each up to kube-apiserver's 3 MiB.
    let big = "x".repeat(3 * 1024 * 1024 - 1024);
    let object = json!({"data": big});
    let mut update = review("fits", "UPDATE", Some(object.clone()), Some(object), false);
    let answer = conn.admit("/allow", &update).await;
    assert_eq!(answer["uid"], "fits");
    update["request"]["object"] = json!({"data": "x".repeat(4 * 1024 * 1024 + 1024)});
    let (code, _) = conn.post("/allow", &update).await;
    assert_eq!(code, 413);
}

#[tokio::test]
async fn wrong_path_method_and_content_type_are_refused() {
    let (_server, mut conn) = setup(None).await;
    let body = serde_json::to_vec(&review("x", "CREATE", None, None, false)).unwrap();
    let (code, reply) = conn.send("POST", "/nope", "application/json", body.clone()).await;
    assert_eq!(code, 404);
    assert_eq!(status(&reply)["message"], "no webhook is registered at /nope");
    let (code, _) = conn.send("GET", "/allow", "application/json", Vec::new()).await;
    assert_eq!(code, 405);
    let (code, _) = conn.send("POST", "/allow", "text/plain", body.clone()).await;
    assert_eq!(code, 415);
    let (code, _) = conn
        .send("POST", "/allow", "application/json; charset=utf-8", body)
        .await;
    assert_eq!(code, 200);
}

#[test]
fn building_checks_paths_and_the_certificate() {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = || ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let err = Server::builder()
        .raw("/a", allow)
        .raw("/a", allow)
        .tls(tls())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicatePath { path } if path == "/a"));
    let err = Server::builder().raw("a", allow).tls(tls()).build().unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }));
    let err = Server::builder().raw("/a", allow).build().unwrap_err();
    assert!(matches!(err, Error::NoCertificate));
    assert!(ServingCert::from_pem(b"not pem", leaf.key_pem.as_bytes()).is_err());
    assert!(ServingCert::from_pem(leaf.cert_pem.as_bytes(), ca.leaf().key_pem.as_bytes()).is_err());
}

#[tokio::test]
async fn serve_with_shutdown_returns_once_signalled() {
    let (mut server, _conn) = setup(None).await;
    server.stop.cancel();
    (&mut server.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn bind_reports_the_chosen_port_and_a_taken_address_is_a_bind_error() {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = || ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let server = Server::builder().raw("/allow", allow).tls(tls()).build().unwrap();
    let bound = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = bound.local_addr();
    assert_ne!(addr.port(), 0, "the system's port is reported, not the requested 0");

    // The address is held from `bind` on: a second server cannot take it.
    let second = Server::builder().raw("/allow", allow).tls(tls()).build().unwrap();
    let err = second.bind(addr).await.unwrap_err();
    assert!(matches!(&err, Error::Bind { addr: a, .. } if *a == addr), "{err:?}");

    // A connection made before serving waits in the backlog and is answered once serving.
    let connecting = tokio::spawn({
        let pem = ca.pem.clone();
        async move { support::connect(addr, &pem).await }
    });
    let stop = kdev_webhook::CancellationToken::new();
    let task = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
    let mut conn = connecting.await.unwrap();
    let answer = conn
        .admit(
            "/allow",
            &review("early", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "early");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A server with default timeouts serving one in-memory connection (so that virtual time only
/// advances when both ends wait); the server and the client's end of the pipe.
fn in_memory(ca: &Ca) -> (Running, DuplexStream) {
    use futures::StreamExt as _;
    let leaf = ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let server = Server::builder().raw("/allow", allow).tls(tls).build().unwrap();
    let (client, served) = tokio::io::duplex(64 * 1024);
    let incoming = futures::stream::iter([Ok::<_, std::io::Error>(served)]).chain(futures::stream::pending());
    let stop = kdev_webhook::CancellationToken::new();
    let task = tokio::spawn(server.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()));
    let running = Running {
        addr: "127.0.0.1:0".parse().unwrap(),
        stop,
        task,
    };
    (running, client)
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout() {
    let ca = Ca::new();
    let (_server, pipe) = in_memory(&ca);
    let mut conn = support::connect_over(pipe, &ca.pem).await;
    let request = review("first", "CREATE", Some(pod("a", json!({}))), None, false);
    assert_eq!(conn.admit("/allow", &request).await["uid"], "first");
    // kube-apiserver's transport keeps an idle connection for up to 90 s and reuses it.
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert!(!conn.is_closed().await);
    let request = review("second", "CREATE", Some(pod("a", json!({}))), None, false);
    assert_eq!(conn.admit("/allow", &request).await["uid"], "second");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let ca = Ca::new();
    let (_server, pipe) = in_memory(&ca);
    let mut conn = support::connect_over(pipe, &ca.pem).await;
    let request = review("first", "CREATE", Some(pod("a", json!({}))), None, false);
    assert_eq!(conn.admit("/allow", &request).await["uid"], "first");
    tokio::time::sleep(Duration::from_secs(121)).await;
    assert!(conn.is_closed().await);
}

#[tokio::test(start_paused = true)]
async fn headers_that_started_arriving_are_bounded_by_the_read_timeout() {
    let ca = Ca::new();
    let (_server, pipe) = in_memory(&ca);
    let mut tls = support::tls_over(pipe, &ca.pem).await;
    let request = serde_json::to_vec(&review("first", "CREATE", Some(pod("a", json!({}))), None, false)).unwrap();
    let head = format!(
        "POST /allow HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        request.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&request).await.unwrap();
    let mut answer = vec![0; 64 * 1024];
    let n = tls.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    // After 100 s idle, the first half of a request's headers, and then nothing.
    tokio::time::sleep(Duration::from_secs(100)).await;
    tls.write_all(b"POST /allow HTTP/1.1\r\nhost: loc").await.unwrap();
    tls.flush().await.unwrap();
    // The server gives up on the headers after the read timeout (30 s), well before the idle
    // timeout would end at 220 s: the read sees the connection end, and virtual time shows when.
    let started = tokio::time::Instant::now();
    let end = tls.read(&mut answer).await;
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}
