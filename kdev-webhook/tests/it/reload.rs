//! Serving certificates reloaded from files.

use std::time::Duration;

use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::tls::ServingCert;
use serde_json::json;

use crate::support::{self, Ca, pod, review};

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

/// Writes a file whole: readers see the old content or the new, never half of it.
fn write_atomically(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdev-webhook-{name}-{}-{}", std::process::id(), fastish_id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastish_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_rotated_certificate_is_served_on_new_connections_while_old_ones_keep_working() {
    let ca = Ca::new();
    let first = ca.leaf();
    let dir = temp_dir("reload");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    write_atomically(&cert, &first.cert_pem);
    write_atomically(&key, &first.key_pem);
    let tls = ServingCert::from_files(&cert, &key).poll_interval(Duration::from_millis(50));
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls)).await;

    let mut old = support::connect(running.addr, &ca.pem).await;
    assert_eq!(old.peer_cert, first.der());

    // A broken pair is skipped: the server keeps serving the first certificate.
    write_atomically(&cert, "garbage");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(support::connect(running.addr, &ca.pem).await.peer_cert, first.der());

    let second = ca.leaf();
    write_atomically(&key, &second.key_pem);
    write_atomically(&cert, &second.cert_pem);
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = support::connect(running.addr, &ca.pem).await.peer_cert;
        if seen == second.der() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, second.der(), "the rotated certificate was never served");

    // The connection opened before the rotation still answers.
    let answer = old
        .admit(
            "/allow",
            &review("kept", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "kept");
    assert_eq!(old.peer_cert, first.der());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_certificate_file_fails_the_start() {
    let dir = temp_dir("missing");
    let tls = ServingCert::from_files(dir.join("tls.crt"), dir.join("tls.key"));
    let server = Server::builder().raw("/allow", allow).tls(tls).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = server
        .serve_with_incoming(kdev_webhook::server::tcp_incoming(listener))
        .await
        .unwrap_err();
    assert!(matches!(err, kdev_webhook::server::Error::Tls(_)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
