//! What the lessons share: finding a cluster, or starting the embedded one, and a namespace of
//! their own. Each lesson in `src/bin/` is otherwise a program of its own.

use k8s_openapi::api::core::v1::Namespace;
use kdev::testenv::TestEnv;
use kube_client::api::{DeleteParams, PostParams};
use kube_client::{Api, Client, Config};

/// Sends kdev's `tracing` log lines to stderr, where they do not mix with the story a lesson
/// prints on stdout, at the level `RUST_LOG` asks for (`RUST_LOG=kdev_core=debug` shows what the
/// reflector and the manager do), else at `default` (`"off"`, `"error"`).
pub fn log_to_stderr(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Any error, as the lessons' `main` returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Polls `check` every 20 ms until it says `true`, for up to two minutes (a real cluster pulls
/// images and schedules Pods); then fails, naming `what` it waited for.
///
/// # Errors
/// The first error `check` returns, or a timeout.
pub async fn wait<F, Fut>(what: &str, mut check: F) -> Result<(), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BoxError>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !check().await? {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The cluster of `KUBECONFIG` (or the in-cluster configuration) when one is set, else kdev's
/// embedded API server, which runs for as long as the returned `TestEnv` lives. Says which.
///
/// # Errors
/// When the configuration cannot be read, or the embedded server cannot start.
pub async fn connect() -> Result<(Client, Option<TestEnv>), BoxError> {
    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        let config = Config::infer().await?;
        println!("using the cluster at {}", config.cluster_url);
        return Ok((Client::try_from(config)?, None));
    }
    let env = TestEnv::embedded(Default::default()).await?;
    println!("no KUBECONFIG: started kdev's embedded API server");
    Ok((env.client(), Some(env)))
}

/// Creates a namespace named `<prefix>-` and five random characters, so that runs (and
/// lessons sharing a real cluster) never collide, and says so.
///
/// # Errors
/// When the API server refuses it.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String, BoxError> {
    let suffix: String = (0..5).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect();
    let ns = format!("{prefix}-{suffix}");
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    println!("created namespace {ns}");
    Ok(ns)
}

/// Deletes the namespace `ns` (and, through it, everything the lesson left in it).
///
/// # Errors
/// When the API server refuses it.
pub async fn delete_namespace(client: &Client, ns: &str) -> Result<(), BoxError> {
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await?;
    Ok(())
}
