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

/// The manager's metrics listener, over TLS with a certificate from files: a renewal is served
/// on new connections while the reloader runs as a manager runnable.
#[tokio::test]
async fn the_metrics_listener_serves_a_certificate_renewed_on_disk() {
    let env = kdev_testenv::TestEnv::start().await.expect("test environment");
    let ca = Ca::new();
    let first = ca.leaf();
    let dir = temp_dir("metrics-reload");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    write_atomically(&cert, &first.cert_pem);
    write_atomically(&key, &first.key_pem);
    let (tls, reloader) = ServingCert::from_dir(&dir)
        .poll_interval(Duration::from_millis(50))
        .server_config()
        .await
        .expect("the certificate loads");
    let manager = kdev_core::manager::Manager::builder(env.client())
        .metrics_addr("127.0.0.1:0".parse().unwrap())
        .metrics_tls(tls)
        .handle_signals(false)
        .build();
    kdev_webhook::manager::add_reloader(&manager, "metrics-certificate", reloader);
    let stop = manager.shutdown_token();
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });
    let mut addr = None;
    for _ in 0..600 {
        addr = manager.metrics_addr();
        if addr.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = addr.expect("the metrics listener is bound");

    let mut conn = support::connect(addr, &ca.pem).await;
    assert_eq!(conn.peer_cert, first.der());
    let (code, body) = conn.send("GET", "/metrics", "text/plain", Vec::new()).await;
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).ends_with("# EOF\n"));

    let second = ca.leaf();
    write_atomically(&key, &second.key_pem);
    write_atomically(&cert, &second.cert_pem);
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = support::connect(addr, &ca.pem).await.peer_cert;
        if seen == second.der() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, second.der(), "the renewed certificate is served");

    stop.cancel();
    running.await.unwrap().expect("the manager stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}
