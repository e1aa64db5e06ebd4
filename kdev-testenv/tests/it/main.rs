//! kdev-testenv's conformance suite, written against `kube::Client`.
//!
//! Every test runs on the embedded server by default and on a real cluster when
//! `KDEV_TEST_KUBECONFIG` names a kubeconfig; tests that inject faults say so and skip there.
//! The suite is the specification: when it passes on both, the two agree.

mod apply;
mod auth;
mod batch;
mod builtin;
mod cel;
mod crd;
mod crd_versions;
mod create_on_update;
mod crud;
mod delete;
mod discovery;
mod event;
mod faults;
mod gc;
mod kubectl;
mod list;
mod metadata;
mod object_meta;
mod patch;
mod robustness;
mod watch;
mod webhook;
mod webhook_configuration;
mod webhook_conversion;
mod webhook_server;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_testenv::TestEnv;

/// A test environment and a fresh namespace in it.
pub async fn setup() -> (TestEnv, String) {
    let env = TestEnv::start().await.expect("the test environment starts");
    let ns = env.namespace().await.expect("a fresh namespace");
    (env, ns)
}

/// An API group no other test or run uses, `<prefix><8 random letters>.kdev.dev`, so that CRDs
/// of tests sharing a real cluster never collide.
pub fn unique_group(prefix: &str) -> String {
    format!(
        "{prefix}{}.kdev.dev",
        (0..8).map(|_| fastrand::lowercase()).collect::<String>()
    )
}

/// A ConfigMap named `name` with one data key.
pub fn configmap(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.data = Some([("key".to_string(), "value".to_string())].into());
    cm
}

/// What a raw request got back: its status code, its `Warning` headers and its body as JSON
/// (`Null` when it is not JSON). For what `kube::Client` does not expose.
pub struct Raw {
    /// The HTTP status code.
    pub code: u16,
    /// The `Warning` headers, in order.
    pub warnings: Vec<String>,
    /// The body.
    pub body: serde_json::Value,
}

/// Sends `req` through the environment's client, whatever its status code.
pub async fn raw(env: &TestEnv, req: http::Request<Vec<u8>>) -> Raw {
    let answer = env.send(req).await.expect("send");
    Raw {
        code: answer.status,
        body: answer.json(),
        warnings: answer.warning_headers,
    }
}

/// A finalizer tests put on objects to keep them after a delete; [`release`] takes it off.
pub const HOLD: &str = "kdev.dev/hold";

/// A ConfigMap that a [`HOLD`] finalizer keeps after a delete.
pub fn held(name: &str) -> ConfigMap {
    let mut cm = configmap(name);
    cm.metadata.finalizers = Some(vec![HOLD.into()]);
    cm
}

/// Takes every finalizer off `name`, letting its delete finish.
pub async fn release<K>(api: &kube_client::Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let none = serde_json::json!({ "metadata": { "finalizers": null } });
    api.patch(name, &Default::default(), &kube_client::api::Patch::Merge(&none))
        .await
        .expect("release the finalizers");
}

/// Polls `check` until it returns `Some`, for at most 30 s (a real cluster is asynchronous).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Skips a fault-injection test on a real cluster, saying why.
pub fn needs_faults(env: &TestEnv) -> bool {
    if env.faults().supported() {
        return true;
    }
    eprintln!("skipping: this test injects faults, which only the embedded server can do");
    false
}

/// Skips a test that needs kube-controller-manager (garbage collection, namespace deletion, a
/// namespace's own `default` ServiceAccount) on a bare kube-apiserver, saying why.
pub async fn needs_controllers(env: &TestEnv) -> bool {
    if env.has_controller_manager().await {
        return true;
    }
    eprintln!("skipping: this test needs kube-controller-manager, which this cluster does not run");
    false
}

/// The `(field, message)` causes of a write refused with 422 Invalid, each distinct one once, in
/// the order of their first appearance.
///
/// Exact duplicates are dropped because kube-apiserver validates an update's metadata two or
/// three times (the generic `rest.BeforeUpdate` checks, then the type's update validation, which
/// often runs its create validation too) and `errors.NewInvalid` keeps every cause (only the
/// Status `message` is deduplicated): kubernetes/kubernetes#130656 and #140339. kdev-testenv
/// reports each cause once, so a test compares the distinct causes.
pub fn causes<T: std::fmt::Debug>(what: &str, r: Result<T, kube_client::Error>) -> Vec<(String, String)> {
    match r {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{what}: {s:?}");
            let mut distinct: Vec<(String, String)> = Vec::new();
            for cause in s.details.map(|d| d.causes).unwrap_or_default() {
                let pair = (cause.field, cause.message);
                if !distinct.contains(&pair) {
                    distinct.push(pair);
                }
            }
            distinct
        }
        other => panic!("{what}: expected 422 Invalid, got {other:?}"),
    }
}

/// The API error code of a failed call.
pub fn code<T: std::fmt::Debug>(r: Result<T, kube_client::Error>) -> u16 {
    match r {
        Err(kube_client::Error::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}
