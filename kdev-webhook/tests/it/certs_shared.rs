//! Certificates shared by several replicas through one Secret (`SharedRotator`), on an API
//! server: one bundle for all, one creation winning a race, renewals and CA rollovers carried
//! out by one replica and adopted by the other, and a Secret that is not a bundle left alone.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kdev_webhook::certs::{self, Bundle, Error, Settings, SharedRotator};
use kube_client::api::PostParams;
use kube_client::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::certs::{ders, verify};
use crate::watch::temp_dir;

const SECRET: &str = "webhook-certs";

fn settings() -> Settings {
    Settings::for_service("ns", "svc")
}

async fn read_secret(client: &Client, ns: &str, name: &str) -> Secret {
    Api::<Secret>::namespaced(client.clone(), ns).get(name).await.unwrap()
}

fn value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8(bytes.0.clone()).unwrap())
}

fn assert_dir_holds(dir: &Path, bundle: &Bundle) {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read(certs::CERT_FILE), bundle.cert_pem());
    assert_eq!(read(certs::KEY_FILE), bundle.key_pem());
    assert_eq!(read(certs::CA_FILE), bundle.ca_pem());
}

fn assert_same(a: &Bundle, b: &Bundle) {
    assert_eq!(a.cert_pem(), b.cert_pem());
    assert_eq!(a.key_pem(), b.key_pem());
    assert_eq!(a.ca_pem(), b.ca_pem());
    assert_eq!(a.signing_ca_pem(), b.signing_ca_pem());
}

#[tokio::test]
async fn replicas_on_one_secret_serve_the_same_ca_and_certificate() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let (dir_a, dir_b) = (temp_dir("shared-a"), temp_dir("shared-b"));

    let a = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_a)
        .await
        .unwrap();
    let b = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_b)
        .await
        .unwrap();
    let (first, second) = (a.current(), b.current());
    assert_same(&first, &second);
    verify(&second.ca_pem(), first.cert_pem(), "svc.ns.svc").unwrap();
    assert_dir_holds(&dir_a, &first);
    assert_dir_holds(&dir_b, &first);

    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(value(&secret, "tls.crt").as_deref(), Some(first.cert_pem()));
    assert_eq!(value(&secret, "tls.key").as_deref(), Some(first.key_pem()));
    assert_eq!(value(&secret, "ca.crt"), Some(first.ca_pem()));
    assert_eq!(
        value(&secret, "ca.key"),
        Some(std::fs::read_to_string(dir_a.join(certs::CA_KEY_FILE)).unwrap())
    );
    assert_eq!(value(&secret, certs::CA_NEXT_KEY), None);
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

#[tokio::test]
async fn replicas_started_together_on_a_missing_secret_agree_on_one_bundle() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    // A few rounds, each on a new Secret: each replica reads before either creates more
    // often than not, and then one of the two creations fails with AlreadyExists.
    for round in 0..3 {
        let name = format!("{SECRET}-{round}");
        let (dir_a, dir_b) = (temp_dir("shared-race-a"), temp_dir("shared-race-b"));
        let (a, b) = tokio::join!(
            SharedRotator::new(client.clone(), &ns, &name, settings(), &dir_a),
            SharedRotator::new(client.clone(), &ns, &name, settings(), &dir_b),
        );
        let (a, b) = (a.unwrap().current(), b.unwrap().current());
        assert_same(&a, &b);
        assert_dir_holds(&dir_a, &a);
        assert_dir_holds(&dir_b, &a);
        let secret = read_secret(&client, &ns, &name).await;
        assert_eq!(value(&secret, "tls.crt").as_deref(), Some(a.cert_pem()));
        let _ = std::fs::remove_dir_all(&dir_a);
        let _ = std::fs::remove_dir_all(&dir_b);
    }
}

#[tokio::test]
async fn a_renewal_by_one_replica_is_adopted_by_the_other_at_its_resync() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let (dir_a, dir_b) = (temp_dir("shared-renew-a"), temp_dir("shared-renew-b"));
    let a = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_a)
        .await
        .unwrap();
    let b = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_b)
        .await
        .unwrap()
        .resync(Duration::from_millis(100));
    let first = b.current();
    let mut bundles = b.subscribe();
    let stop = CancellationToken::new();
    let task = tokio::spawn(b.run(stop.clone()));

    // Passes that find the Secret as it was tell subscribers nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !bundles.has_changed().unwrap(),
        "an unchanged Secret was sent as a new bundle"
    );

    let renewed = a.rotate().await.unwrap();
    assert_ne!(renewed.cert_pem(), first.cert_pem());
    assert_eq!(renewed.ca_pem(), first.ca_pem());
    tokio::time::timeout(Duration::from_secs(60), bundles.changed())
        .await
        .expect("the other replica never adopted the renewed certificate")
        .unwrap();
    assert_same(&bundles.borrow_and_update(), &renewed);
    assert_dir_holds(&dir_b, &renewed);
    stop.cancel();
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

#[tokio::test]
async fn a_ca_rollover_started_by_one_replica_is_finished_by_another() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let (dir_a, dir_b) = (temp_dir("shared-ca-a"), temp_dir("shared-ca-b"));
    // A CA due 3.6 µs into its hour, whose successor may sign as soon as it is published.
    let settings = settings()
        .ca_validity(Duration::from_secs(3600))
        .renew_at(1e-9)
        .ca_overlap(Duration::ZERO);
    let a = SharedRotator::new(client.clone(), &ns, SECRET, settings.clone(), &dir_a)
        .await
        .unwrap();
    let old_ca = ders(&a.current().ca_pem());
    assert_eq!(old_ca.len(), 1);

    // Phase 1 by the first replica: the new CA is published, with its key, and the old one
    // still signs.
    let published = a.rotate().await.unwrap();
    let cas = ders(&published.ca_pem());
    assert_eq!(cas.len(), 2, "ca.crt should hold the new CA and the old one");
    assert_eq!(cas[1], old_ca[0]);
    assert_eq!(ders(published.signing_ca_pem()), old_ca);
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "ca.crt"), Some(published.ca_pem()));
    let next_key = value(&secret, certs::CA_NEXT_KEY).expect("the new CA's key is not in the Secret");

    // Phase 2 by the second replica, which finds it due as it starts: the new CA signs, with
    // the key the first one left in the Secret.
    let b = SharedRotator::new(client.clone(), &ns, SECRET, settings, &dir_b)
        .await
        .unwrap();
    let switched = b.current();
    assert_eq!(ders(switched.signing_ca_pem()), vec![cas[0].clone()]);
    assert_eq!(ders(&switched.ca_pem()), cas, "the old CA should stay in ca.crt");
    verify(&published.ca_pem(), switched.cert_pem(), "svc.ns.svc").unwrap();
    assert!(verify(published.signing_ca_pem(), switched.cert_pem(), "svc.ns.svc").is_err());
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "ca.key"), Some(next_key.clone()));
    assert_eq!(value(&secret, certs::CA_NEXT_KEY), None);
    assert_eq!(value(&secret, "ca.crt"), Some(switched.ca_pem()));
    assert_eq!(value(&secret, "tls.crt").as_deref(), Some(switched.cert_pem()));
    assert_eq!(
        std::fs::read_to_string(dir_b.join(certs::CA_KEY_FILE)).unwrap(),
        next_key
    );
    assert_dir_holds(&dir_b, &switched);
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

/// Creates the Secret `name` with `data` and `type_`; returns it as created.
async fn create_secret(client: &Client, ns: &str, name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([("kept".to_string(), "yes".to_string())].into()),
            ..Default::default()
        },
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_secret_that_is_not_a_bundle_is_an_error_and_left_untouched() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let dir = temp_dir("shared-bad");

    let garbage = [
        ("tls.crt", "not a certificate"),
        ("tls.key", "not a key"),
        (
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
        ("ca.key", "not a key"),
        ("other", "someone else's"),
    ];
    let created = create_secret(&client, &ns, "garbage", "Opaque", &garbage).await;
    let err = SharedRotator::new(client.clone(), &ns, "garbage", settings(), &dir)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ParseSecret { secret, .. } if *secret == format!("{ns}/garbage")),
        "{err:?}"
    );
    let after = read_secret(&client, &ns, "garbage").await;
    assert_eq!(after.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(after.data, created.data);

    // A cert-manager Secret: a valid certificate, key and CA, but no CA key to renew with.
    let bundle = settings().generate().unwrap();
    let ca = bundle.ca_pem();
    let cert_manager = [
        ("tls.crt", bundle.cert_pem()),
        ("tls.key", bundle.key_pem()),
        ("ca.crt", ca.as_str()),
    ];
    let created = create_secret(&client, &ns, "cert-manager", "kubernetes.io/tls", &cert_manager).await;
    let err = SharedRotator::new(client.clone(), &ns, "cert-manager", settings(), &dir)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::MissingKey { key: "ca.key", .. }), "{err:?}");
    let after = read_secret(&client, &ns, "cert-manager").await;
    assert_eq!(after.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(after.data, created.data);
    assert!(!dir.join(certs::CERT_FILE).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_secret_deployed_with_empty_values_is_filled() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let dir = temp_dir("shared-empty");
    // What a chart deploys so that RBAC needs no `create`.
    create_secret(
        &client,
        &ns,
        SECRET,
        "kubernetes.io/tls",
        &[("tls.crt", ""), ("tls.key", "")],
    )
    .await;
    let rotator = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir)
        .await
        .unwrap();
    let bundle = rotator.current();
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "tls.crt").as_deref(), Some(bundle.cert_pem()));
    assert_eq!(value(&secret, "ca.crt"), Some(bundle.ca_pem()));
    assert_eq!(
        secret
            .metadata
            .labels
            .unwrap_or_default()
            .get("kept")
            .map(String::as_str),
        Some("yes")
    );
    assert_dir_holds(&dir, &bundle);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_secret_whose_empty_manifest_was_applied_again_is_repaired_with_its_ca() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let (dir_a, dir_b) = (temp_dir("shared-reapplied-a"), temp_dir("shared-reapplied-b"));
    create_secret(
        &client,
        &ns,
        SECRET,
        "kubernetes.io/tls",
        &[("tls.crt", ""), ("tls.key", "")],
    )
    .await;
    let first = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_a)
        .await
        .unwrap()
        .current();
    // `kubectl apply` of the same manifest: tls.crt and tls.key are reset, ca.crt and ca.key stay.
    let api = Api::<Secret>::namespaced(client.clone(), &ns);
    let mut secret = read_secret(&client, &ns, SECRET).await;
    let data = secret.data.as_mut().unwrap();
    data.insert("tls.crt".into(), ByteString(Vec::new()));
    data.insert("tls.key".into(), ByteString(Vec::new()));
    api.replace(SECRET, &PostParams::default(), &secret).await.unwrap();

    let repaired = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir_b)
        .await
        .unwrap()
        .current();
    assert_eq!(repaired.signing_ca_pem(), first.signing_ca_pem());
    assert_eq!(repaired.ca_pem(), first.ca_pem());
    verify(&first.ca_pem(), repaired.cert_pem(), "svc.ns.svc").unwrap();
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "tls.crt").as_deref(), Some(repaired.cert_pem()));
    assert_eq!(value(&secret, "tls.key").as_deref(), Some(repaired.key_pem()));
    assert_dir_holds(&dir_b, &repaired);
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

#[tokio::test]
async fn a_secret_deleted_or_emptied_gets_the_replicas_bundle_back_with_its_ca() {
    let env = kdev_testenv::TestEnv::start().await.unwrap();
    let client = env.client();
    let ns = env.namespace().await.unwrap();
    let dir = temp_dir("shared-restore");
    let api = Api::<Secret>::namespaced(client.clone(), &ns);
    let rotator = SharedRotator::new(client.clone(), &ns, SECRET, settings(), &dir)
        .await
        .unwrap();
    let first = rotator.current();

    // Deleted: created again with a certificate of the CA the caBundle trusts.
    api.delete(SECRET, &Default::default()).await.unwrap();
    let restored = rotator.rotate().await.unwrap();
    assert_eq!(restored.signing_ca_pem(), first.signing_ca_pem());
    assert_eq!(restored.ca_pem(), first.ca_pem());
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "ca.crt"), Some(first.ca_pem()));
    assert_eq!(value(&secret, "tls.crt").as_deref(), Some(restored.cert_pem()));

    // Emptied: filled with the same CA.
    let mut secret = secret;
    for value in secret.data.as_mut().unwrap().values_mut() {
        value.0.clear();
    }
    api.replace(SECRET, &PostParams::default(), &secret).await.unwrap();
    let restored = rotator.rotate().await.unwrap();
    assert_eq!(restored.signing_ca_pem(), first.signing_ca_pem());
    let secret = read_secret(&client, &ns, SECRET).await;
    assert_eq!(value(&secret, "ca.crt"), Some(first.ca_pem()));
    assert_eq!(value(&secret, "ca.key").as_deref().map(str::is_empty), Some(false));
    assert_dir_holds(&dir, &restored);
    let _ = std::fs::remove_dir_all(&dir);
}
