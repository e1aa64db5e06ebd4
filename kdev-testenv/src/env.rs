//! [`TestEnv`]: the cluster a test, an example or a learner works against — the embedded
//! server by default, a real cluster when `KDEV_TEST_KUBECONFIG` names one.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::config::{KubeConfigOptions, Kubeconfig};
use kube_client::core::DynamicObject;
use kube_client::discovery::ApiResource;
use kube_client::{Client, Config as ClientConfig};

use crate::faults::{Faults, Unsupported};
use crate::server::{self, Config, Server};

/// The environment variable that switches [`TestEnv::start`] to a real cluster.
pub const KUBECONFIG_ENV: &str = "KDEV_TEST_KUBECONFIG";

/// The ServiceAccount every namespace gets, and a Pod without `serviceAccountName` runs as.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The label every namespace made by [`TestEnv::namespace`] carries (value `"true"`), so that
/// leftovers on a real cluster can be found and swept.
pub const TEST_NAMESPACE_LABEL: &str = "kdev.dev/test-namespace";

/// Why a test environment could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded server did not start.
    #[error("starting the embedded API server failed")]
    Server(#[from] server::Error),
    /// The kubeconfig named by `KDEV_TEST_KUBECONFIG` could not be read.
    #[error("reading the kubeconfig {path} failed")]
    ReadKubeconfig {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be parsed or used.
    #[error("loading the kubeconfig failed")]
    Kubeconfig(#[from] kube_client::config::KubeconfigError),
    /// The client could not be built.
    #[error("building the client failed")]
    Client(#[source] kube_client::Error),
    /// Creating a test namespace failed.
    #[error("creating the test namespace {name} failed")]
    Namespace {
        /// The namespace.
        name: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// Reading or creating a test namespace's `default` ServiceAccount failed.
    #[error("getting the default ServiceAccount of test namespace {namespace} failed")]
    ServiceAccount {
        /// The namespace.
        namespace: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// kube-controller-manager did not give a test namespace its `default` ServiceAccount in
    /// time.
    #[error("test namespace {namespace} still has no default ServiceAccount after {waited:?}")]
    NoServiceAccount {
        /// The namespace.
        namespace: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// Restarting the embedded server failed, or the environment is a real cluster.
    #[error("restarting the API server failed")]
    Restart(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Creating, replacing or reading a CustomResourceDefinition failed (a 422 names what the
    /// API server found wrong with it).
    #[error("installing the CustomResourceDefinition {name} failed")]
    Crd {
        /// The CRD's name.
        name: String,
        /// The cause.
        #[source]
        source: kube_client::Error,
    },
    /// [`TestEnv::send`] got no answer.
    #[error("sending the request failed")]
    Send(#[source] kube_client::Error),
    /// A CustomResourceDefinition was stored but not established: the API server does not
    /// serve it (its names conflict with another's, or it took too long).
    #[error("the CustomResourceDefinition {name} is not established: {reason}")]
    CrdNotEstablished {
        /// The CRD's name.
        name: String,
        /// The condition that says why, or how long it was waited for.
        reason: String,
    },
}

/// What the API server answered a [`TestEnv::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The `Warning` headers as sent (`299 - "unknown field \"spec.x\""`).
    pub warning_headers: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The text of each warning, without the `299 - ` code and agent and unquoted
    /// (`unknown field "spec.x"`); a header not in that form is given whole.
    pub fn warnings(&self) -> Vec<String> {
        self.warning_headers.iter().map(|h| warning_text(h)).collect()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The text of a `Warning` header (RFC 7234: `code agent "text" [date]`), unescaped.
fn warning_text(header: &str) -> String {
    let quoted = header
        .split_once(' ')
        .and_then(|(_, rest)| rest.split_once(' '))
        .map(|(_, q)| q);
    let Some(quoted) = quoted.and_then(|q| q.strip_prefix('"')) else {
        return header.to_owned();
    };
    let mut text = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            '"' => return text,
            c => text.push(c),
        }
    }
    header.to_owned()
}

/// A cluster for one test: its client, its kubeconfig, fresh namespaces, and faults.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube_client::{Api, api::PostParams};
///
/// let env = kdev_testenv::TestEnv::start().await?;
/// let ns = env.namespace().await?;
/// let cms: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("settings".into());
/// cms.create(&PostParams::default(), &cm).await?;
/// assert_eq!(cms.get("settings").await?.metadata.name.as_deref(), Some("settings"));
/// # Ok(()) }
/// ```
///
/// # Caveats
/// On a real cluster the namespaces made by [`TestEnv::namespace`] are deleted when the
/// `TestEnv` is dropped (the delete request is sent from a short-lived thread, so drop may
/// block for up to a few seconds). ConfigMaps and Secrets in them that still carry finalizers
/// lose them first, so that a test that failed half-way cannot leave its namespace stuck
/// terminating. Objects a test creates outside them are cleaned up only when the test hands
/// them to [`TestEnv::delete_on_drop`].
pub struct TestEnv {
    server: Option<Server>,
    client: Client,
    kubeconfig: String,
    /// The file named by `KDEV_TEST_KUBECONFIG` (a real cluster), read again for clean-up.
    kubeconfig_path: Option<std::path::PathBuf>,
    namespaces: parking_lot::Mutex<Vec<String>>,
    /// Cluster-scoped objects to delete on drop (a real cluster).
    cluster_objects: parking_lot::Mutex<Vec<(ApiResource, String)>>,
    /// The CRDs this environment installed on a real cluster and holds a share of.
    shared_crds: parking_lot::Mutex<Vec<String>>,
    /// Whether the cluster runs kube-controller-manager, once probed.
    controllers: std::sync::OnceLock<bool>,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl TestEnv {
    /// The embedded server, or the real cluster named by `KDEV_TEST_KUBECONFIG`.
    ///
    /// # Errors
    /// [`Error`] when the server cannot start or the kubeconfig cannot be used.
    pub async fn start() -> Result<Self, Error> {
        match std::env::var(KUBECONFIG_ENV) {
            Ok(path) if !path.is_empty() => Self::real_cluster(path.into()).await,
            _ => Self::embedded(Config::default()).await,
        }
    }

    /// The real cluster of the kubeconfig file at `path`.
    async fn real_cluster(path: std::path::PathBuf) -> Result<Self, Error> {
        let yaml = std::fs::read_to_string(&path).map_err(|source| Error::ReadKubeconfig {
            path: path.display().to_string(),
            source,
        })?;
        // `read_from`, not `from_yaml`: relative certificate, key and exec paths are relative
        // to the kubeconfig's folder, as kubectl reads them.
        let client = client_from(Kubeconfig::read_from(&path)?).await?;
        Ok(TestEnv {
            server: None,
            client,
            kubeconfig: yaml,
            kubeconfig_path: Some(path),
            namespaces: Default::default(),
            cluster_objects: Default::default(),
            shared_crds: Default::default(),
            controllers: Default::default(),
        })
    }

    /// Always the embedded server, with `config`.
    ///
    /// # Errors
    /// [`Error::Server`] when the server cannot start.
    pub async fn embedded(config: Config) -> Result<Self, Error> {
        let server = Server::start(config).await?;
        let kubeconfig = server.kubeconfig();
        let client = client_from(Kubeconfig::from_yaml(&kubeconfig)?).await?;
        Ok(TestEnv {
            server: Some(server),
            client,
            kubeconfig,
            kubeconfig_path: None,
            namespaces: Default::default(),
            cluster_objects: Default::default(),
            shared_crds: Default::default(),
            controllers: Default::default(),
        })
    }

    /// A client for the cluster (`kube::Client`); cheap to clone.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig (YAML) of the cluster.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// The kubeconfig file of a real cluster (the one `KDEV_TEST_KUBECONFIG` names, as given: a
    /// relative path is relative to the test's working directory, which cargo sets to the
    /// crate's folder); `None` for the embedded server, whose kubeconfig exists only as
    /// [`kubeconfig`](Self::kubeconfig)'s text. Hand the file itself, not a copy of its text,
    /// to tools such as kubectl: relative certificate, key and exec paths in it resolve against
    /// its own folder.
    pub fn kubeconfig_path(&self) -> Option<&std::path::Path> {
        self.kubeconfig_path.as_deref()
    }

    /// Whether this is the embedded server (`false`: a real cluster).
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// The embedded server, if this is one.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// The fault-injection handle; its methods return [`Unsupported`] on a real cluster.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.server.as_ref().map(|s| s.shared().clone()),
        }
    }

    /// Stops the embedded server and starts it again on the same port, with its state kept:
    /// open connections and watches break, as in an API server restart.
    ///
    /// # Errors
    /// [`Error::Restart`] on a real cluster or when the port was taken meanwhile.
    pub async fn restart(&self) -> Result<(), Error> {
        let server = self
            .server
            .as_ref()
            .ok_or_else(|| Error::Restart(Box::new(Unsupported::RealCluster)))?;
        server.restart().await.map_err(|e| Error::Restart(Box::new(e)))
    }

    /// Whether the cluster runs kube-controller-manager's controllers: the ones that give every
    /// namespace a `default` ServiceAccount, garbage-collect the dependents of a deleted owner,
    /// and finish deleting a namespace. The embedded server does all three itself; a bare
    /// kube-apiserver (kube-apiserver and etcd alone, as controller-runtime's envtest runs
    /// them) does none, and a test that relies on them checks this and skips there, saying why.
    ///
    /// A real cluster is probed once per `TestEnv`: kube-controller-manager's service-account
    /// controller gives the `default` namespace a `default` ServiceAccount, so its absence (a
    /// 404) means no controller manager.
    ///
    /// # Caveats
    /// - A probe that fails (no permission to read ServiceAccounts in `default`, a dropped
    ///   connection) answers true, logs why, and is tried again on the next call.
    /// - The probe is indirect: a cluster created a moment ago may not have the account yet,
    ///   and a bare kube-apiserver where someone created `default/default` passes for a full
    ///   cluster.
    pub async fn has_controller_manager(&self) -> bool {
        if self.is_embedded() {
            return true;
        }
        if let Some(known) = self.controllers.get() {
            return *known;
        }
        let api: kube_client::Api<ServiceAccount> = kube_client::Api::namespaced(self.client(), "default");
        match api.get_metadata_opt(DEFAULT_SERVICE_ACCOUNT).await {
            Ok(found) => {
                let _ = self.controllers.set(found.is_some());
                found.is_some()
            }
            Err(e) => {
                eprintln!("kdev-testenv: probing for kube-controller-manager failed ({e}); assuming it runs");
                true
            }
        }
    }

    /// Creates a namespace with a unique name (`kdev-test-xxxxxxxx`), labelled
    /// `kdev.dev/test-namespace=true`, and returns its name once it has its `default`
    /// ServiceAccount, which the API server's ServiceAccount admission plugin needs before it
    /// admits a Pod there.
    ///
    /// On a real cluster:
    /// - kube-controller-manager creates that ServiceAccount a moment after the namespace; this
    ///   waits for it, up to a minute (the Kubernetes e2e framework waits likewise, up to two).
    ///   On a bare kube-apiserver ([`has_controller_manager`](Self::has_controller_manager)
    ///   false) nothing would, and this creates it.
    /// - The namespace is deleted when the `TestEnv` is dropped (on a bare kube-apiserver it
    ///   then stays `Terminating`, as no namespace controller empties it); a test process that
    ///   is killed leaves its namespaces behind, and `kubectl delete namespace -l
    ///   kdev.dev/test-namespace=true` sweeps them.
    ///
    /// # Errors
    /// - [`Error::Namespace`] when the API server refuses the namespace.
    /// - [`Error::ServiceAccount`] when reading or creating its ServiceAccount fails.
    /// - [`Error::NoServiceAccount`] when kube-controller-manager does not make it in time.
    ///
    /// # Cancel safety
    /// Cancelling it after the namespace exists still leaves the namespace to the `TestEnv`'s
    /// clean-up.
    pub async fn namespace(&self) -> Result<String, Error> {
        use k8s_openapi::api::core::v1::Namespace;
        let name = format!(
            "kdev-test-{}",
            (0..8)
                .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
                .collect::<String>()
        );
        let api: kube_client::Api<Namespace> = kube_client::Api::all(self.client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into());
        api.create(&Default::default(), &ns)
            .await
            .map_err(|source| Error::Namespace {
                name: name.clone(),
                source,
            })?;
        self.namespaces.lock().push(name.clone());
        if !self.is_embedded() {
            self.default_service_account(&name).await?;
        }
        Ok(name)
    }

    /// Waits for namespace `ns`'s `default` ServiceAccount on a cluster that makes one, and
    /// creates it on one that does not.
    async fn default_service_account(&self, ns: &str) -> Result<(), Error> {
        let failed = |source| Error::ServiceAccount {
            namespace: ns.to_string(),
            source,
        };
        let api: kube_client::Api<ServiceAccount> = kube_client::Api::namespaced(self.client(), ns);
        if !self.has_controller_manager().await {
            let mut sa = ServiceAccount::default();
            sa.metadata.name = Some(DEFAULT_SERVICE_ACCOUNT.to_string());
            return match api.create(&Default::default(), &sa).await {
                Err(kube_client::Error::Api(s)) if s.code == 409 => Ok(()),
                other => other.map(drop).map_err(failed),
            };
        }
        let waited = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + waited;
        while api
            .get_metadata_opt(DEFAULT_SERVICE_ACCOUNT)
            .await
            .map_err(failed)?
            .is_none()
        {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NoServiceAccount {
                    namespace: ns.to_string(),
                    waited,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Sends `request` (a path and query relative to the server, like `/api/v1/namespaces`)
    /// through [`client`](Self::client) and returns the answer whatever its status, with the
    /// `Warning` headers kube-client's typed calls drop: how a test checks the warnings of
    /// `fieldValidation`, of a deprecated API or of an admission webhook.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let env = kdev_testenv::TestEnv::start().await?;
    /// let ns = env.namespace().await?;
    /// let body = serde_json::json!({
    ///     "apiVersion": "v1", "kind": "ConfigMap",
    ///     "metadata": { "name": "typo" }, "dta": { "a": "b" }
    /// });
    /// let request = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps"))
    ///     .header("content-type", "application/json")
    ///     .body(serde_json::to_vec(&body)?)?;
    /// let answer = env.send(request).await?;
    /// assert_eq!(answer.status, 201);
    /// assert_eq!(answer.warnings(), [r#"unknown field "dta""#]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Send`] when no answer came (the connection failed, or the body could not be
    /// read); an answer with an error status is an `Ok`.
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> Result<Answer, Error> {
        let response = self.client().send(request.map(Into::into)).await.map_err(Error::Send)?;
        let status = response.status().as_u16();
        let warning_headers = response
            .headers()
            .get_all(http::header::WARNING)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| Error::Send(kube_client::Error::Service(e.into())))?
            .to_bytes();
        Ok(Answer {
            status,
            warning_headers,
            body: body.to_vec(),
        })
    }

    /// Installs `crd` (creates it, or replaces the one of that name) and waits until the API
    /// server serves its kind (its `Established` condition), at most 60 s. Returns the CRD as
    /// established.
    ///
    /// On a real cluster the CRD is shared: tests running in parallel may install the same CRD
    /// (a derived type has one fixed name), and it is deleted when the last `TestEnv` of this
    /// process that installed it is dropped, not while another test still uses it. A CRD of
    /// that name still being deleted (by an earlier run) is waited for, at most 60 s, and then
    /// created afresh, as replacing it would not stop its deletion.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    ///
    /// let env = kdev_testenv::TestEnv::start().await?;
    /// let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
    ///     "metadata": { "name": "widgets.example.com" },
    ///     "spec": {
    ///         "group": "example.com", "scope": "Namespaced",
    ///         "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
    ///         "versions": [{ "name": "v1", "served": true, "storage": true,
    ///             "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
    ///     }
    /// }))?;
    /// let established = env.install_crd(&crd).await?;
    /// assert!(established.status.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Crd`] when the API server refuses the CRD (422 with what is wrong);
    /// [`Error::CrdNotEstablished`] when its names conflict with another CRD's
    /// (`NamesAccepted` false) or it is not established within 60 s.
    pub async fn install_crd(&self, crd: &CustomResourceDefinition) -> Result<CustomResourceDefinition, Error> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let failed = |source| Error::Crd {
            name: name.clone(),
            source,
        };
        let api: kube_client::Api<CustomResourceDefinition> = kube_client::Api::all(self.client());
        let mut wanted = crd.clone();
        wanted.metadata.resource_version = None;
        wanted.metadata.managed_fields = None;
        wanted.status = None;
        let waited = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + waited;
        if self.server.is_none() {
            self.hold_shared_crd(&name);
        }
        loop {
            match api.create(&Default::default(), &wanted).await {
                Ok(_) => break,
                Err(kube_client::Error::Api(s)) if s.code == 409 => {
                    let Some(current) = api.get_opt(&name).await.map_err(failed)? else {
                        continue; // deleted meanwhile: create it
                    };
                    if current.metadata.deletion_timestamp.is_some() {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(Error::CrdNotEstablished {
                                name,
                                reason: format!("an earlier CRD of this name was still being deleted after {waited:?}"),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    wanted.metadata.resource_version = current.metadata.resource_version;
                    wanted.metadata.finalizers = current.metadata.finalizers;
                    match api.replace(&name, &Default::default(), &wanted).await {
                        Ok(_) => break,
                        // Changed or deleted meanwhile: look again.
                        Err(kube_client::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                            wanted.metadata.resource_version = None;
                        }
                        Err(e) => return Err(failed(e)),
                    }
                }
                Err(e) => return Err(failed(e)),
            }
        }
        loop {
            let current = api.get(&name).await.map_err(failed)?;
            let conditions = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default();
            let condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
            if condition("Established").is_some_and(|c| c.status == "True") {
                return Ok(current);
            }
            if let Some(c) = condition("NamesAccepted").filter(|c| c.status == "False") {
                return Err(Error::CrdNotEstablished {
                    name,
                    reason: format!(
                        "NamesAccepted is False ({}): {}",
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    ),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CrdNotEstablished {
                    name,
                    reason: format!("not Established after {waited:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes a share of the CRD `name` on a real cluster (once per environment).
    fn hold_shared_crd(&self, name: &str) {
        let mut held = self.shared_crds.lock();
        if held.iter().any(|n| n == name) {
            return;
        }
        held.push(name.to_string());
        let key = (self.kubeconfig_path.clone().unwrap_or_default(), name.to_string());
        *SHARED_CRDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// Deletes the cluster-scoped object `name` of `resource` (a CRD, a ClusterRole, a webhook
    /// configuration a test made) when this `TestEnv` is dropped, whether the test passed or
    /// panicked. Only a real cluster needs it: the embedded server's state ends with it. An
    /// object the test already deleted is no error.
    ///
    /// ```no_run
    /// # async fn f(env: &kdev_testenv::TestEnv) {
    /// use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    /// use kube_client::discovery::ApiResource;
    ///
    /// env.delete_on_drop(&ApiResource::erase::<CustomResourceDefinition>(&()), "widgets.example.com");
    /// # }
    /// ```
    pub fn delete_on_drop(&self, resource: &ApiResource, name: &str) {
        self.cluster_objects.lock().push((resource.clone(), name.to_string()));
    }
}

async fn client_from(kc: Kubeconfig) -> Result<Client, Error> {
    let mut config = ClientConfig::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(295));
    Client::try_from(config).map_err(Error::Client)
}

/// How many live environments of this process hold each CRD `install_crd` installed on a real
/// cluster, by (kubeconfig file, CRD name): the last one to go deletes it.
static SHARED_CRDS: std::sync::Mutex<std::collections::BTreeMap<(std::path::PathBuf, String), usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

impl Drop for TestEnv {
    fn drop(&mut self) {
        let namespaces = std::mem::take(&mut *self.namespaces.lock());
        let mut cluster_objects = std::mem::take(&mut *self.cluster_objects.lock());
        let path = self.kubeconfig_path.clone().unwrap_or_default();
        let mut shared = SHARED_CRDS.lock().unwrap_or_else(|e| e.into_inner());
        for name in std::mem::take(&mut *self.shared_crds.lock()) {
            let key = (path.clone(), name);
            let Some(count) = shared.get_mut(&key) else { continue };
            *count -= 1;
            if *count == 0 {
                shared.remove(&key);
                cluster_objects.push((ApiResource::erase::<CustomResourceDefinition>(&()), key.1));
            }
        }
        drop(shared);
        if self.server.is_some() || (namespaces.is_empty() && cluster_objects.is_empty()) {
            return;
        }
        // A real cluster: delete the test namespaces from a thread with its own runtime, as the
        // test's runtime may be the one running this drop.
        let Some(path) = self.kubeconfig_path.clone() else {
            return;
        };
        let handle = std::thread::spawn(move || {
            let left = format!(
                "test namespaces {} and {} cluster-scoped objects are left behind",
                namespaces.join(", "),
                cluster_objects.len()
            );
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return eprintln!("kdev-testenv: no runtime to clean up with ({e}): {left}"),
            };
            rt.block_on(async move {
                use k8s_openapi::api::core::v1::Namespace;
                let kubeconfig = match Kubeconfig::read_from(&path) {
                    Ok(kc) => kc,
                    Err(e) => return eprintln!("kdev-testenv: reading {} failed ({e}): {left}", path.display()),
                };
                let client = match client_from(kubeconfig).await {
                    Ok(c) => c,
                    Err(e) => return eprintln!("kdev-testenv: no client to clean up with ({e}): {left}"),
                };
                for (resource, name) in cluster_objects {
                    let api: kube_client::Api<DynamicObject> = kube_client::Api::all_with(client.clone(), &resource);
                    match api.delete(&name, &Default::default()).await {
                        Err(kube_client::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => eprintln!("kdev-testenv: deleting {} {name} failed: {e}", resource.kind),
                        Ok(_) => {}
                    }
                }
                for ns in &namespaces {
                    release_finalizers::<k8s_openapi::api::core::v1::ConfigMap>(&client, ns).await;
                    release_finalizers::<k8s_openapi::api::core::v1::Secret>(&client, ns).await;
                }
                let api: kube_client::Api<Namespace> = kube_client::Api::all(client);
                for ns in namespaces {
                    if let Err(e) = api.delete(&ns, &Default::default()).await {
                        eprintln!("kdev-testenv: deleting test namespace {ns} failed: {e}");
                    }
                }
            });
        });
        let _ = handle.join();
    }
}

/// Drops the finalizers of every `K` in namespace `ns` that has some, so that deleting the
/// namespace cannot hang on an object whose controller (a test) is gone.
async fn release_finalizers<K>(client: &Client, ns: &str)
where
    K: kube_client::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: kube_client::Api<K> = kube_client::Api::namespaced(client.clone(), ns);
    let listed = match api.list_metadata(&Default::default()).await {
        Ok(list) => list,
        Err(e) => return eprintln!("kdev-testenv: listing {} in {ns} failed: {e}", K::kind(&())),
    };
    let clear = kube_client::api::Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } }));
    for obj in listed.items {
        let has_finalizers = obj.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty());
        let Some(name) = obj.metadata.name.filter(|_| has_finalizers) else {
            continue;
        };
        if let Err(e) = api.patch(&name, &Default::default(), &clear).await {
            eprintln!("kdev-testenv: releasing the finalizers of {ns}/{name} failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_header_gives_its_unquoted_text() {
        assert_eq!(
            warning_text(r#"299 - "unknown field \"spec.x\"""#),
            r#"unknown field "spec.x""#
        );
        assert_eq!(
            warning_text(r#"299 kube-apiserver "a \\ b" "Tue, 24 Nov 2026 10:00:00 GMT""#),
            r"a \ b"
        );
        assert_eq!(warning_text("not a warning"), "not a warning");
        assert_eq!(warning_text(r#"299 - "unterminated"#), r#"299 - "unterminated"#);
    }

    #[tokio::test]
    async fn a_kubeconfig_with_a_relative_certificate_path_is_read_from_its_own_folder() {
        use base64::Engine as _;
        let env = TestEnv::embedded(Config::default()).await.expect("server");
        let yaml = env.kubeconfig().to_string();
        let (before, rest) = yaml.split_once("certificate-authority-data: ").expect("inline CA");
        let (data, after) = rest.split_once('\n').expect("one line");
        let pem = base64::engine::general_purpose::STANDARD.decode(data).expect("base64");
        // The kubeconfig names `ca.crt` beside it; the test runs from another folder.
        let dir = std::env::temp_dir().join(format!("kdev-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ca.crt"), pem).expect("ca");
        let path = dir.join("config");
        std::fs::write(&path, format!("{before}certificate-authority: ca.crt\n{after}")).expect("config");
        let real = TestEnv::real_cluster(path).await;
        let _ = std::fs::remove_dir_all(&dir);
        let real = real.expect("the kubeconfig is usable");
        let api: kube_client::Api<k8s_openapi::api::core::v1::Namespace> = kube_client::Api::all(real.client());
        api.get("default").await.expect("the CA file was found and trusted");
    }

    /// kube-controller-manager is told apart by the `default` namespace's ServiceAccount, run
    /// against the embedded server through its kubeconfig. (Two workers: dropping a "real"
    /// env blocks one while the embedded server answers on the other.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_without_controllers_is_told_apart_and_its_namespaces_still_get_a_service_account() {
        let env = TestEnv::embedded(Config::default()).await.expect("server");
        let path = std::env::temp_dir().join(format!("kdev-controllers-{}.yaml", std::process::id()));
        std::fs::write(&path, env.kubeconfig()).expect("kubeconfig");
        let has_account = |ns: String| {
            let api: kube_client::Api<ServiceAccount> = kube_client::Api::namespaced(env.client(), &ns);
            async move { api.get_opt(DEFAULT_SERVICE_ACCOUNT).await.expect("get").is_some() }
        };

        let full = TestEnv::real_cluster(path.clone()).await.expect("usable");
        assert!(full.has_controller_manager().await);
        let ns = full.namespace().await.expect("namespace");
        assert!(has_account(ns).await);

        // What a bare kube-apiserver looks like: no ServiceAccount in `default`.
        let accounts: kube_client::Api<ServiceAccount> = kube_client::Api::namespaced(env.client(), "default");
        accounts
            .delete(DEFAULT_SERVICE_ACCOUNT, &Default::default())
            .await
            .expect("delete");
        let bare = TestEnv::real_cluster(path.clone()).await.expect("usable");
        assert!(!bare.has_controller_manager().await);
        // The embedded server made the account already (it does for every namespace), so this
        // shows only that the create's 409 is no error.
        let ns = bare.namespace().await.expect("namespace");
        assert!(has_account(ns).await);
        drop((full, bare));
        let _ = std::fs::remove_file(&path);
    }

    /// The clean-up a real cluster gets, run against the embedded server through its
    /// kubeconfig: finalizers left by a failed test are released, so the namespace goes, and
    /// cluster-scoped objects handed to `delete_on_drop` go too. (Two workers: the drop blocks
    /// one while the embedded server answers on the other.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_real_cluster_env_deletes_its_namespaces_and_cluster_objects() {
        use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let env = TestEnv::embedded(Config::default()).await.expect("server");
        let path = std::env::temp_dir().join(format!("kdev-cleanup-{}.yaml", std::process::id()));
        std::fs::write(&path, env.kubeconfig()).expect("kubeconfig");
        let real = TestEnv::real_cluster(path.clone()).await.expect("usable");
        let ns = real.namespace().await.expect("namespace");
        let cms: kube_client::Api<ConfigMap> = kube_client::Api::namespaced(real.client(), &ns);
        let mut held = ConfigMap::default();
        held.metadata.name = Some("held".into());
        held.metadata.finalizers = Some(vec!["example.com/keep".into()]);
        cms.create(&Default::default(), &held).await.expect("create");
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "things.cleanup.kdev.dev" },
            "spec": {
                "group": "cleanup.kdev.dev", "scope": "Cluster",
                "names": { "plural": "things", "kind": "Thing" },
                "versions": [{ "name": "v1", "served": true, "storage": true,
                    "schema": { "openAPIV3Schema": { "type": "object" } } }]
            }
        }))
        .expect("a CRD");
        let crds: kube_client::Api<CustomResourceDefinition> = kube_client::Api::all(env.client());
        crds.create(&Default::default(), &crd).await.expect("create the CRD");
        real.delete_on_drop(
            &ApiResource::erase::<CustomResourceDefinition>(&()),
            "things.cleanup.kdev.dev",
        );
        // Handed over twice, or deleted by the test already: no error either way.
        real.delete_on_drop(
            &ApiResource::erase::<CustomResourceDefinition>(&()),
            "things.cleanup.kdev.dev",
        );
        drop(real);
        let _ = std::fs::remove_file(&path);
        let namespaces: kube_client::Api<Namespace> = kube_client::Api::all(env.client());
        let mut gone = false;
        for _ in 0..100 {
            if namespaces.get_opt(&ns).await.expect("get").is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the namespace went, its finalizer released");
        assert!(crds.get_opt("things.cleanup.kdev.dev").await.expect("get").is_none());
    }
}
