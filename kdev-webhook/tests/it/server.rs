//! The HTTP layer: malformed requests, limits, routing, building and shutdown.

use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::server::Error;
use kdev_webhook::tls::ServingCert;
use serde_json::{Value, json};

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
