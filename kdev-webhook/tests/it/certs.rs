//! Generated certificates: what the directory holds, what a client trusting `ca.crt` accepts,
//! and renewal picked up by a running server.

use std::sync::Arc;
use std::time::Duration;

use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::certs::{self, Rotator, Settings};
use kdev_webhook::tls::ServingCert;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;

use crate::support::{self, pod, review};
use crate::watch::{temp_dir, wait_for_cert};

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

/// Verifies `cert_pem` for `name` against the roots in `ca_pem`, as a TLS client would.
pub fn verify(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let end_entity = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    verifier
        .verify_server_cert(
            &end_entity,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn a_service_certificate_verifies_for_every_service_name_and_ip() {
    let bundle = Settings::for_service("operators", "hooks")
        .ip("10.0.0.7".parse().unwrap())
        .generate()
        .unwrap();
    let ca = bundle.ca_pem();
    for name in [
        "hooks",
        "hooks.operators",
        "hooks.operators.svc",
        "hooks.operators.svc.cluster.local",
        "10.0.0.7",
    ] {
        verify(&ca, bundle.cert_pem(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify(&ca, bundle.cert_pem(), "other.operators.svc").is_err());
    // Another CA's bundle does not verify it.
    let other = Settings::for_service("operators", "hooks").generate().unwrap();
    assert!(verify(&other.ca_pem(), bundle.cert_pem(), "hooks").is_err());
}

#[test]
fn the_directory_holds_the_cert_manager_file_names_and_keys_are_private() {
    let dir = temp_dir("certs-files");
    let bundle = Settings::for_service("ns", "svc").generate().unwrap();
    bundle.write(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(certs::CERT_FILE)).unwrap(),
        bundle.cert_pem()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(certs::KEY_FILE)).unwrap(),
        bundle.key_pem()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(certs::CA_FILE)).unwrap(),
        bundle.ca_pem()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in [certs::KEY_FILE, certs::CA_KEY_FILE] {
            let mode = std::fs::metadata(dir.join(key)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_rotator_keeps_the_ca_it_finds_in_the_directory() {
    let dir = temp_dir("certs-restart");
    let settings = Settings::for_service("ns", "svc");
    let first = Rotator::new(settings.clone(), &dir).unwrap().current();
    let second = Rotator::new(settings, &dir).unwrap().current();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_ne!(first.cert_pem(), second.cert_pem());
    verify(&first.ca_pem(), second.cert_pem(), "svc.ns.svc").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The DER of every certificate of a PEM bundle, in order.
pub fn ders(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect()
}

#[test]
fn a_ca_is_renewed_in_two_phases_trusted_before_it_signs() {
    let dir = temp_dir("certs-ca");
    // A CA valid for an hour, renewed after 3.6 µs of it: due by the time it is asked; its
    // successor may sign as soon as it is published.
    let settings = Settings::for_service("ns", "svc")
        .ca_validity(Duration::from_secs(3600))
        .renew_at(1e-9)
        .ca_overlap(Duration::ZERO);
    let rotator = Rotator::new(settings, &dir).unwrap();
    let before = rotator.current();
    let old_ca = ders(&before.ca_pem());
    assert_eq!(old_ca.len(), 1);

    // Phase 1: the new CA is published first in the bundle, and the serving certificate is
    // still one the bundle already deployed trusts.
    let published = rotator.rotate().unwrap();
    let cas = ders(&published.ca_pem());
    assert_eq!(cas.len(), 2, "the bundle should hold the new CA and the old one");
    assert_ne!(cas[0], old_ca[0]);
    assert_eq!(cas[1], old_ca[0]);
    assert_eq!(ders(published.signing_ca_pem()), old_ca);
    verify(&before.ca_pem(), published.cert_pem(), "svc.ns.svc").unwrap();
    verify(&published.ca_pem(), published.cert_pem(), "svc.ns.svc").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), published.ca_pem());

    // Phase 2: the new CA signs; the bundle is unchanged and keeps the old CA.
    let switched = rotator.rotate().unwrap();
    assert_eq!(ders(&switched.ca_pem()), cas);
    assert_eq!(ders(switched.signing_ca_pem()), vec![cas[0].clone()]);
    verify(&published.ca_pem(), switched.cert_pem(), "svc.ns.svc").unwrap();
    assert!(verify(&before.ca_pem(), switched.cert_pem(), "svc.ns.svc").is_err());
    assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), switched.ca_pem());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_ca_signs_only_after_the_overlap_and_a_restart_meanwhile_keeps_the_trusted_one() {
    let dir = temp_dir("certs-overlap");
    let settings = Settings::for_service("ns", "svc")
        .ca_validity(Duration::from_secs(24 * 3600))
        .renew_at(1e-9);
    let rotator = Rotator::new(settings.clone(), &dir).unwrap();
    let before = rotator.current();
    let published = rotator.rotate().unwrap();
    // Within the default hour of overlap, renewals keep the old CA signing and the new one
    // published.
    let renewed = rotator.rotate().unwrap();
    assert_eq!(renewed.ca_pem(), published.ca_pem());
    assert_ne!(renewed.cert_pem(), published.cert_pem());
    verify(&before.ca_pem(), renewed.cert_pem(), "svc.ns.svc").unwrap();

    // A process restarted during the rollover signs with the CA of ca.key, the old one.
    drop(rotator);
    let restarted = Rotator::new(settings, &dir).unwrap().current();
    assert_eq!(ders(restarted.signing_ca_pem()), ders(before.signing_ca_pem()));
    verify(&before.ca_pem(), restarted.cert_pem(), "svc.ns.svc").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn the_rotator_renews_at_two_thirds_of_the_lifetime_and_tells_subscribers() {
    let dir = temp_dir("certs-run");
    let settings = Settings::for_service("ns", "svc").validity(Duration::from_secs(3 * 3600));
    let rotator = Rotator::new(settings, &dir).unwrap();
    let first = rotator.current();
    let wait = rotator.next_renewal();
    assert!(
        wait <= Duration::from_secs(2 * 3600) && wait > Duration::from_secs(3600),
        "{wait:?}"
    );
    let mut bundles = rotator.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(rotator.run(stop.clone()));
    // Virtual time: the two-hour wait passes at once.
    bundles.changed().await.unwrap();
    let renewed = bundles.borrow().clone();
    assert_ne!(renewed.cert_pem(), first.cert_pem());
    assert_eq!(renewed.ca_pem(), first.ca_pem());
    assert_eq!(
        std::fs::read_to_string(dir.join("tls.crt")).unwrap(),
        renewed.cert_pem()
    );
    stop.cancel();
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_server_reading_the_directory_serves_each_renewed_certificate() {
    let dir = temp_dir("certs-serve");
    let settings = Settings::for_service("ns", "svc").dns_names(["localhost"]);
    let rotator = Rotator::new(settings, &dir).unwrap();
    let first = rotator.current();
    let tls = ServingCert::from_dir(&dir).poll_interval(Duration::from_secs(3600));
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls)).await;
    let mut old = support::connect(running.addr, &first.ca_pem()).await;
    assert_eq!(old.peer_cert, der(first.cert_pem()));

    let second = rotator.rotate().unwrap();
    let seen = wait_for_cert(running.addr, &second.ca_pem(), &der(second.cert_pem())).await;
    assert_eq!(seen, der(second.cert_pem()), "the renewed certificate was never served");

    let answer = old
        .admit(
            "/allow",
            &review("old", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "old");
    let _ = std::fs::remove_dir_all(&dir);
}
