//! Two small operators for built-in types under one manager: a Pod operator (a label for every
//! Pod that asks for one) and a Deployment-extending operator (a Service, and a DNS name at an
//! outside provider, for every Deployment annotated `kdev.dev/expose`). Together they show the
//! everyday patterns: predicates, server-side apply vs create-or-update, `owns`, a transient
//! error retried with backoff, a terminal error, and `requeue_after` for periodic work.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin operator_patterns
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin operator_patterns   # a real cluster
//! ```
//!
//! The embedded API server runs no kubelet and no kube-controller-manager: a Deployment creates
//! no Pods and no Pod ever runs. The lesson creates its Pods itself and plays the kubelet's
//! status updates. The page that goes with it: `docs/operator_patterns.md`.

use kdev_examples::{connect, create_namespace, delete_namespace, log_to_stderr, wait};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kdev::controller::{self, Action, Context, Predicate, Reconciler, predicate};
use kdev::kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use kdev::kube_client::{Api, Client};
use kdev::kube_core::ResourceExt;
use kdev::manager::{Cache, CacheError, Manager};
use kdev::object::{self, OperationResult, create_or_update};
use kdev::owner;
use kdev::serde_json::json;
use kdev::workqueue::rate_limiter::ItemExponential;
use parking_lot::Mutex;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The Pod operator: Pods annotated `kdev.dev/add-pod-name-label: "true"` get the label
/// `kdev.dev/pod-name=<their name>`, so a Service or a NetworkPolicy can pick out one Pod.
const OPT_IN: &str = "kdev.dev/add-pod-name-label";
const POD_NAME: &str = "kdev.dev/pod-name";
const LABELLER: &str = "pod-labeller";

/// The Deployment-extending operator: a Deployment annotated `kdev.dev/expose: "<port>"` gets a
/// Service on that port and the DNS name `<name>.kdev.test`.
const EXPOSE: &str = "kdev.dev/expose";
const EXPOSER: &str = "deployment-exposer";
const ZONE: &str = "kdev.test";
/// How often the exposer checks the DNS records, which no watch can show changing. A real
/// operator checks every few minutes; the lesson cannot wait that long.
const RECHECK: Duration = Duration::from_secs(3);
/// The first retry delay of the exposer's rate limiter (doubling up to 30 s).
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// What the reconcilers said, so that the lesson can wait for a line before it goes on: the
/// output then reads in the same order on every run.
static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `println!` for the reconcilers: prints the line and keeps it in `SAID`.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        let mut said = SAID.lock();
        println!("{line}");
        said.push(line);
    }};
}

// ---------------------------------------------------------------------------------------------
// 1. The Pod operator.

/// A Pod takes part when it asks for the label, or still carries it (so that taking the
/// annotation away removes the label).
fn opted_in(pod: &Pod) -> bool {
    pod.annotations().contains_key(OPT_IN) || pod.labels().contains_key(POD_NAME)
}

fn wants_label(pod: &Pod) -> bool {
    pod.annotations().get(OPT_IN).is_some_and(|v| v == "true")
}

/// Which Pod events wake the labeller: events of Pods that take part (`opted_in`), and of those
/// only the changes of labels or annotations — a status update from the kubelet, or any change
/// to another Pod, never reaches the work queue. Deletes need nothing: the label goes with the Pod.
fn pod_predicate() -> Predicate<Pod> {
    let taking_part = Predicate::all()
        .on_create(opted_in)
        .on_update(|old: &Pod, new: &Pod| opted_in(old) || opted_in(new))
        .on_delete(|_: &Pod| false);
    taking_part & (predicate::labels_changed() | predicate::annotations_changed())
}

/// Counts the events a predicate sees and lets through, to show what it filters.
#[derive(Default)]
struct Tally {
    seen: AtomicU32,
    passed: AtomicU32,
}

impl Tally {
    fn count(&self, passed: bool) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed);
        if passed {
            self.passed.fetch_add(1, Ordering::Relaxed);
        }
        passed
    }

    fn counted(self: &Arc<Self>, p: Predicate<Pod>) -> Predicate<Pod> {
        let (t1, t2, t3) = (self.clone(), self.clone(), self.clone());
        let (p1, p2, p3) = (p.clone(), p.clone(), p);
        Predicate::all()
            .on_create(move |o| t1.count(p1.create(o)))
            .on_update(move |o, n| t2.count(p2.update(o, n)))
            .on_delete(move |o| t3.count(p3.delete(o)))
    }
}

/// Reconciles per object name, to show which objects were reconciled.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<String, u32>>>);

impl Counts {
    fn bump(&self, name: &str) -> u32 {
        let mut counts = self.0.lock();
        let n = counts.entry(name.to_string()).or_default();
        *n += 1;
        *n
    }

    fn get(&self, name: &str) -> u32 {
        self.0.lock().get(name).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> BTreeMap<String, u32> {
        self.0.lock().clone()
    }
}

struct PodLabeller {
    reconciles: Counts,
}

impl Reconciler<Pod> for PodLabeller {
    async fn reconcile(&self, pod: Arc<Pod>, ctx: Context) -> controller::Result {
        let name = pod.name_any();
        self.reconciles.bump(&name);
        let wanted = wants_label(&pod);
        if wanted == (pod.labels().get(POD_NAME) == Some(&name)) {
            return Ok(Action::done()); // already as it should be: write nothing
        }
        let ns = ctx.request().namespace.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), &ns);
        // Server-side apply: send only the fields this operator has an opinion about. The Pod
        // belongs to someone else (a user, a ReplicaSet); we own one label of it. Applying
        // without the label, once we applied it, removes it: the API server prunes fields a
        // manager stops applying.
        let mut intent = Pod::default();
        intent.metadata.name = Some(name.clone());
        if wanted {
            intent.metadata.labels = Some(BTreeMap::from([(POD_NAME.to_string(), name.clone())]));
        }
        object::apply(&pods, &intent, LABELLER, true).await?;
        if wanted {
            say!("  [{LABELLER}] {name}: applied label {POD_NAME}={name}");
        } else {
            say!("  [{LABELLER}] {name}: no longer asks: applied without the label, which removes it");
        }
        Ok(Action::done())
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The Deployment-extending operator.

/// Stands in for a cloud DNS API: its records live outside the cluster, so no watch shows them
/// changing. It answers 503 to the first `outage` registrations of a host.
#[derive(Clone, Default)]
struct DnsProvider(Arc<Mutex<DnsState>>);

#[derive(Default)]
struct DnsState {
    records: BTreeMap<String, String>,
    outages: BTreeMap<String, u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("the DNS provider answered 503 Service Unavailable")]
struct Unavailable;

impl DnsProvider {
    fn fail_next(&self, host: &str, times: u32) {
        self.0.lock().outages.insert(host.to_string(), times);
    }

    fn lookup(&self, host: &str) -> Option<String> {
        self.0.lock().records.get(host).cloned()
    }

    fn register(&self, host: &str, target: &str) -> Result<(), Unavailable> {
        let mut state = self.0.lock();
        if let Some(left) = state.outages.get_mut(host).filter(|n| **n > 0) {
            *left -= 1;
            return Err(Unavailable);
        }
        state.records.insert(host.to_string(), target.to_string());
        Ok(())
    }

    fn remove(&self, host: &str) -> bool {
        self.0.lock().records.remove(host).is_some()
    }
}

/// Which Deployment events wake the exposer: those of annotated Deployments (before or after
/// the change), and of those only spec or annotation changes — not the status the Deployment
/// controller writes all day. Deletes of annotated Deployments pass: the DNS name must go.
fn deployment_predicate() -> Predicate<Deployment> {
    let annotated = |d: &Deployment| d.annotations().contains_key(EXPOSE);
    let taking_part = Predicate::all()
        .on_create(annotated)
        .on_update(move |old: &Deployment, new: &Deployment| annotated(old) || annotated(new))
        .on_delete(annotated);
    taking_part & (predicate::generation_changed() | predicate::annotations_changed())
}

#[derive(Debug, thiserror::Error)]
enum ExposeError {
    #[error("{EXPOSE}={0:?} is not a port number")]
    BadPort(String),
    #[error("registering {0} failed")]
    Dns(String, #[source] Unavailable),
    #[error("writing Service failed")]
    Service(#[from] object::Error<owner::Error>),
    #[error("a request to the API server failed")]
    Api(#[from] kdev::kube_client::Error),
    #[error("reading the cache failed")]
    Cache(#[from] CacheError),
}

/// Whether `d` (by uid) still exists, asking the API server.
async fn still_exists(d: &Deployment, ctx: &Context) -> Result<bool, ExposeError> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client().clone(), &d.namespace().unwrap_or_default());
    let live = deployments.get_opt(&d.name_any()).await?;
    Ok(live.is_some_and(|live| live.metadata.uid == d.metadata.uid))
}

struct Exposer {
    cache: Cache,
    dns: DnsProvider,
    attempts: Counts,
    /// When each Deployment's last reconcile failed, to show the backoff.
    failed_at: Mutex<BTreeMap<String, Instant>>,
    /// The names this operator has registered (and not removed since).
    registered: Mutex<BTreeSet<String>>,
}

fn host_of(name: &str) -> String {
    format!("{name}.{ZONE}")
}

impl Reconciler<Deployment> for Exposer {
    async fn reconcile(&self, d: Arc<Deployment>, ctx: Context) -> controller::Result {
        let name = d.name_any();
        let attempt = self.attempts.bump(&name);
        self.show_backoff(&name, &ctx);
        let result = self.expose(&d, &ctx).await;
        if let Err(ExposeError::Dns(..)) = &result {
            self.failed_at.lock().insert(name.clone(), Instant::now());
        }
        match result {
            Ok(action) => Ok(action),
            Err(e @ ExposeError::BadPort(_)) => {
                // Retrying cannot fix a bad annotation; the user must. A terminal error is logged
                // and counted, and the Deployment is not reconciled again until it changes.
                say!("  [{EXPOSER}] {name}: {e}: a terminal error, not retried (attempt {attempt})");
                Err(controller::Error::terminal(e))
            }
            Err(e @ ExposeError::Dns(..)) => {
                // A transient failure: return it, and the controller requeues the key with the
                // rate limiter's per-key exponential backoff.
                say!(
                    "  [{EXPOSER}] {name}: {e}: {Unavailable} (attempt {attempt}): returned as an error, retried with backoff"
                );
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The Deployment is gone (it is no longer in the cache). The garbage collector deletes its
    /// Service, which has an owner reference; the DNS name lives outside, so it is ours to remove.
    async fn reconcile_missing(&self, ctx: Context) -> controller::Result {
        let name = &ctx.request().name;
        if self.unregister(&host_of(name)) {
            say!(
                "  [{EXPOSER}] {name}: the Deployment is gone: removed {} (its Service goes with the garbage collector)",
                host_of(name)
            );
        }
        Ok(Action::done())
    }
}

impl Exposer {
    async fn expose(&self, d: &Deployment, ctx: &Context) -> Result<Action, ExposeError> {
        let name = d.name_any();
        let ns = d.namespace().unwrap_or_default();
        let services: Api<Service> = Api::namespaced(ctx.client().clone(), &ns);
        let host = host_of(&name);

        // Reads come from the manager's cache (the informer `owns` started), not the API server.
        let cached = self.cache.namespaced(&ns).get::<Service>(&name).await?;
        let Some(value) = d.annotations().get(EXPOSE) else {
            // Not (or no longer) exposed: take away what we made. A Service someone else made
            // under the same name has no controller reference to this Deployment: leave it.
            let ours = cached.is_some_and(|s| {
                owner::get_controller_of(&s.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
            });
            if ours {
                // Gone already is fine (controller-runtime's `client.IgnoreNotFound`).
                object::ignore_not_found(services.delete(&name, &DeleteParams::default()).await)?;
            }
            if self.unregister(&host) || ours {
                say!("  [{EXPOSER}] {name}: no longer exposed: deleted Service {name} and removed {host}");
            }
            return Ok(Action::done());
        };
        let port: i32 = value
            .parse()
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| ExposeError::BadPort(value.clone()))?;

        // The cache can lag. Deleting the Deployment makes the garbage collector delete its
        // Service, and that delete can reach us first: we wake with the Deployment still cached,
        // and would create the Service again (for the collector to delete once more) and keep
        // its DNS name. So when the Service is missing, ask the API server, not the cache,
        // whether this Deployment (this uid) still exists.
        if cached.is_none() && !still_exists(d, ctx).await? {
            return Ok(Action::done());
        }

        // The outside world first: nothing is written to the cluster before it succeeds, so no
        // watch event of our own brings the key back before its backoff has passed.
        let target = format!("{name}.{ns}.svc.cluster.local");
        if self.dns.lookup(&host).as_deref() != Some(target.as_str()) {
            self.dns
                .register(&host, &target)
                .map_err(|e| ExposeError::Dns(host.clone(), e))?;
            if !self.registered.lock().insert(host.clone()) {
                say!("  [{EXPOSER}] {name}: {host} was missing at the provider: registered it again");
            } else {
                say!("  [{EXPOSER}] {name}: registered {host}");
            }
        }
        self.failed_at.lock().remove(&name);

        // create_or_update: read the Service, change the fields we own, write only if that
        // changed something. The API server fills in clusterIP, type, the ports' protocol...:
        // rebuilding the whole spec would differ from it every time and write on every reconcile.
        let selector = d.spec.selector.match_labels.clone().unwrap_or_default();
        let (op, _) = create_or_update(&services, &name, |s: &mut Service| {
            owner::set_controller_reference(d, s)?; // the garbage collector deletes it with `d`
            let spec = s.spec.get_or_insert_with(Default::default);
            spec.selector = Some(selector.clone());
            let ports = spec.ports.get_or_insert_with(Vec::new);
            match ports.iter_mut().find(|p| p.name.as_deref() == Some("http")) {
                Some(p) => {
                    p.port = port;
                    p.target_port = Some(IntOrString::Int(port));
                }
                None => ports.push(ServicePort {
                    name: Some("http".into()),
                    port,
                    target_port: Some(IntOrString::Int(port)),
                    ..ServicePort::default()
                }),
            }
            Ok::<_, owner::Error>(())
        })
        .await?;
        let verb = match op {
            OperationResult::Created => Some("Created"),
            OperationResult::Unchanged => None,
            _ => Some("Updated"),
        };
        if let Some(verb) = verb {
            say!("  [{EXPOSER}] {name}: {verb} Service {name}: port {port} -> {port}");
        }
        // Periodic work: nothing in the cluster tells us when a DNS record disappears at the
        // provider, so look again in a while. Events still wake us at once in between.
        Ok(Action::requeue_after(RECHECK))
    }

    /// Removes `host` at the provider; whether it was there.
    fn unregister(&self, host: &str) -> bool {
        self.registered.lock().remove(host);
        self.dns.remove(host)
    }

    /// On a retry, says how long after the failure it came: at least the rate limiter's delay,
    /// `base · 2^(retries - 1)`.
    fn show_backoff(&self, name: &str, ctx: &Context) {
        let retries = ctx.retries();
        let Some(failed) = self.failed_at.lock().get(name).copied() else {
            return;
        };
        if retries == 0 {
            return;
        }
        let backoff = BACKOFF_BASE * 2u32.pow(retries - 1);
        let waited = failed.elapsed();
        let verdict = if waited >= backoff {
            format!("at least {} ms after the failure", backoff.as_millis())
        } else {
            format!(
                "only {} ms after the failure, before its {} ms backoff",
                waited.as_millis(),
                backoff.as_millis()
            )
        };
        say!(
            "  [{EXPOSER}] {name}: attempt {} (ctx.retries() = {retries}), {verdict}",
            retries + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The manager logs reconcile errors through `tracing`, on stderr (the lesson prints its own on
    // stdout). `RUST_LOG=kdev_core=debug` shows every reconcile.
    log_to_stderr("error");
    println!("== 1. connecting: kubeconfig, in-cluster, or the embedded API server");
    let (client, embedded) = connect().await?;
    let ns = create_namespace(&client, "kdev-patterns").await?;

    let result = lesson(&client, &ns, embedded.is_some()).await;
    delete_namespace(&client, &ns).await?;
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, ns: &str, embedded: bool) -> Result<(), BoxError> {
    println!("\n== 2. one manager, two controllers: {LABELLER} (Pods) and {EXPOSER} (Deployments, owning Services)");
    let manager = Manager::builder(client.clone())
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .build();
    let counted = manager.client().clone();
    let pod_events = Arc::new(Tally::default());
    let pod_reconciles = Counts::default();
    manager
        .controller_for(Api::<Pod>::namespaced(counted.clone(), ns))
        .named(LABELLER)
        .with_predicate(pod_events.counted(pod_predicate()))
        .complete(PodLabeller {
            reconciles: pod_reconciles.clone(),
        })?;
    let dns = DnsProvider::default();
    let exposer = Exposer {
        cache: manager.cache(),
        dns: dns.clone(),
        attempts: Counts::default(),
        failed_at: Mutex::default(),
        registered: Mutex::default(),
    };
    let attempts = exposer.attempts.clone();
    manager
        .controller_for(Api::<Deployment>::namespaced(counted.clone(), ns))
        .named(EXPOSER)
        .with_predicate(deployment_predicate())
        .owns_with(Api::<Service>::namespaced(counted, ns), Predicate::all())
        .rate_limiter(ItemExponential::new(BACKOFF_BASE, Duration::from_secs(30))?)
        .complete(exposer)?;
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });
    wait("the manager's caches to sync", || async { Ok(manager.ready()) }).await?;
    println!("running: {LABELLER} passes label/annotation changes of opted-in Pods only;");
    println!("         {EXPOSER} passes spec/annotation changes of annotated Deployments, and owns Services");

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);

    println!("\n== 3. the Pod operator: web-1 and web-2 ask for the label ({OPT_IN}: \"true\"), plain does not");
    if embedded {
        println!(
            "(the embedded API server runs no kubelet or controller-manager: the lesson creates the Pods itself; they never run)"
        );
    }
    for (name, opt_in) in [("web-1", true), ("web-2", true), ("plain", false)] {
        pods.create(&PostParams::default(), &pod(name, opt_in)).await?;
    }
    wait("web-1 and web-2 to be labelled", || async {
        Ok(label_of(&pods, "web-1").await?.is_some() && label_of(&pods, "web-2").await?.is_some())
    })
    .await?;
    settle(&pod_reconciles, &pod_events).await;
    for name in ["web-1", "web-2", "plain"] {
        println!("{name} labels: {}", labels_text(&pods.get(name).await?));
    }
    println!("{}", owners_of_label(&pods.get("web-1").await?));
    println!("{}", pod_counts(&pod_reconciles, &pod_events));
    println!(
        "(each labelled Pod: one reconcile applied the label; its own write changed a label, which woke a second that found nothing to do)"
    );

    println!(
        "\n== 4. changes the predicate filters: the kubelet's status updates, a label on a Pod that did not opt in"
    );
    if embedded {
        println!("  [kubelet, played by the lesson] web-1, web-2, plain: status.phase Running");
        for name in ["web-1", "web-2", "plain"] {
            let running = Patch::Merge(json!({ "status": { "phase": "Running" } }));
            pods.patch_status(name, &PatchParams::default(), &running).await?;
        }
    }
    let tier = Patch::Merge(json!({ "metadata": { "labels": { "tier": "backend" } } }));
    println!("  [user] plain: label tier=backend");
    pods.patch("plain", &PatchParams::default(), &tier).await?;
    settle(&pod_reconciles, &pod_events).await;
    println!("{}", pod_counts(&pod_reconciles, &pod_events));

    println!("\n== 5. changes that pass: the label removed by hand comes back; web-2 opts out and loses it");
    let unlabel = Patch::Merge(json!({ "metadata": { "labels": { POD_NAME: null } } }));
    println!("  [user] web-1: removed label {POD_NAME}");
    let m = mark();
    pods.patch("web-1", &PatchParams::default(), &unlabel).await?;
    wait_said(m, "web-1: applied label").await?;
    let opt_out = Patch::Merge(json!({ "metadata": { "annotations": { OPT_IN: null } } }));
    println!("  [user] web-2: removed annotation {OPT_IN}");
    let m = mark();
    pods.patch("web-2", &PatchParams::default(), &opt_out).await?;
    wait_said(m, "web-2: no longer asks").await?;
    settle(&pod_reconciles, &pod_events).await;
    for name in ["web-1", "web-2"] {
        println!("{name} labels: {}", labels_text(&pods.get(name).await?));
    }
    println!("{}", pod_counts(&pod_reconciles, &pod_events));

    println!(
        "\n== 6. the Deployment operator: Deployment api ({EXPOSE}: \"8080\"); the DNS provider fails its first 3 calls"
    );
    if embedded {
        println!("(no controller-manager: the Deployment creates no ReplicaSet and no Pods; the Service selects none)");
    }
    dns.fail_next(&host_of("api"), 3);
    let m = mark();
    deployments
        .create(&PostParams::default(), &deployment("api", Some("8080")))
        .await?;
    deployments
        .create(&PostParams::default(), &deployment("internal", None))
        .await?;
    wait_said(m, "Created Service api").await?;
    settle_for(Duration::from_millis(300)).await; // time enough to reconcile internal, were it let through
    println!("{}", service_text(&services.get("api").await?));
    println!(
        "Deployment internal (no annotation): reconciles {}, Service internal exists: {}",
        attempts.get("internal"),
        services.get_opt("internal").await?.is_some()
    );

    println!("\n== 7. owns(Service): a hand-edited Service is put back, a deleted one made again");
    let edit = Patch::Merge(json!({ "spec": { "ports": [ { "name": "http", "port": 9999, "targetPort": 9999 } ] } }));
    println!("  [user] Service api: port 9999");
    let (m, edited) = (mark(), Instant::now());
    services.patch("api", &PatchParams::default(), &edit).await?;
    wait_said(m, "Updated Service api").await?;
    println!(
        "Service api is on port {} again, before the next periodic check: {}",
        service_port(&services.get("api").await?).unwrap_or(0),
        edited.elapsed() < RECHECK
    );
    println!("  [user] deleted Service api");
    let (m, deleted) = (mark(), Instant::now());
    services.delete("api", &DeleteParams::default()).await?;
    wait_said(m, "Created Service api").await?;
    println!(
        "Service api exists again, before the next periodic check: {}",
        services.get_opt("api").await?.is_some() && deleted.elapsed() < RECHECK
    );

    println!(
        "\n== 8. requeue_after({} s): the record disappears at the DNS provider, where no watch can see it",
        RECHECK.as_secs()
    );
    println!("  [provider] removed api.kdev.test");
    let m = mark();
    dns.remove(&host_of("api"));
    wait_said(m, "api.kdev.test was missing").await?;
    println!(
        "api.kdev.test is back: {}; the periodic reconcile found it missing, without any Kubernetes event",
        dns.lookup(&host_of("api")).is_some()
    );

    println!("\n== 9. a terminal error: Deployment bad says {EXPOSE}: \"http\"");
    let m = mark();
    deployments
        .create(&PostParams::default(), &deployment("bad", Some("http")))
        .await?;
    wait_said(m, "bad: ").await?;
    settle_for(Duration::from_millis(800)).await;
    println!(
        "reconciles of bad after 800 ms: {} (a terminal error waits for a change)",
        attempts.get("bad")
    );
    let fix = Patch::Merge(json!({ "metadata": { "annotations": { EXPOSE: "80" } } }));
    println!("  [user] bad: {EXPOSE}: \"80\"");
    let m = mark();
    deployments.patch("bad", &PatchParams::default(), &fix).await?;
    wait_said(m, "Created Service bad").await?;
    println!("{}", service_text(&services.get("bad").await?));

    println!(
        "\n== 10. opting out, and deleting: the operator removes what it made; the garbage collector does the rest"
    );
    let unexpose = Patch::Merge(json!({ "metadata": { "annotations": { EXPOSE: null } } }));
    println!("  [user] bad: removed annotation {EXPOSE}");
    let m = mark();
    deployments.patch("bad", &PatchParams::default(), &unexpose).await?;
    wait_said(m, "bad: no longer exposed").await?;
    println!("  [user] deleted Deployment api");
    let m = mark();
    deployments.delete("api", &DeleteParams::default()).await?;
    wait_said(m, "api: the Deployment is gone").await?;
    // Garbage collection is asynchronous in a real cluster: poll.
    wait("the garbage collector to delete Service api", || async {
        Ok(services.get_opt("api").await?.is_none())
    })
    .await?;
    println!("Service api is gone: the garbage collector followed its owner reference");

    println!("\n== 11. stopping the manager");
    manager.shutdown_token().cancel();
    running.await??;
    let mut metrics = String::new();
    kdev::prometheus_client::encoding::text::encode(&mut metrics, &manager.registry())?;
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("controller_runtime_reconcile_errors_total{")
                || l.starts_with("controller_runtime_terminal_reconcile_errors_total{")
                || l.starts_with(&format!(
                    "controller_runtime_reconcile_total{{controller=\"{LABELLER}\",result=\"success\""
                ))
        })
        .collect();
    lines.sort_unstable(); // a metric family's label sets come in no fixed order
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

fn pod(name: &str, opt_in: bool) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    let app = name.split('-').next().unwrap_or(name);
    pod.metadata.labels = Some(BTreeMap::from([("app".to_string(), app.to_string())]));
    if opt_in {
        pod.metadata.annotations = Some(BTreeMap::from([(OPT_IN.to_string(), "true".to_string())]));
    }
    pod.spec = Some(PodSpec {
        containers: vec![Container {
            name: "app".into(),
            image: Some("registry.k8s.io/pause:3.10".into()),
            ..Container::default()
        }],
        ..PodSpec::default()
    });
    pod
}

fn deployment(name: &str, expose: Option<&str>) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    let mut d = Deployment::default();
    d.metadata.name = Some(name.into());
    if let Some(port) = expose {
        d.metadata.annotations = Some(BTreeMap::from([(EXPOSE.to_string(), port.to_string())]));
    }
    d.spec.replicas = Some(1);
    d.spec.selector.match_labels = Some(labels.clone());
    let template = d.spec.template.metadata.get_or_insert_with(Default::default);
    template.labels = Some(labels);
    d.spec.template.spec = pod(name, false).spec;
    d
}

async fn label_of(pods: &Api<Pod>, name: &str) -> Result<Option<String>, BoxError> {
    Ok(pods.get(name).await?.labels().get(POD_NAME).cloned())
}

fn labels_text(obj: &impl ResourceExt) -> String {
    let labels: Vec<String> = obj.labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.join(", ")
}

/// Which field managers own the label, from `metadata.managedFields`.
fn owners_of_label(pod: &Pod) -> String {
    let key = format!("f:{POD_NAME}");
    let owners: Vec<String> = pod
        .managed_fields()
        .iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer("/f:metadata/f:labels"))
                .is_some_and(|labels| labels.get(&key).is_some())
        })
        .map(|m| {
            format!(
                "{} ({})",
                m.manager.as_deref().unwrap_or("?"),
                m.operation.as_deref().unwrap_or("?")
            )
        })
        .collect();
    format!(
        "{} on {}: owned by field manager {}",
        POD_NAME,
        pod.name_any(),
        owners.join(", ")
    )
}

fn pod_counts(reconciles: &Counts, events: &Tally) -> String {
    let r = reconciles.snapshot();
    let get = |n: &str| r.get(n).copied().unwrap_or(0);
    format!(
        "Pod events: {} seen by the predicate, {} passed; reconciles: web-1 {}, web-2 {}, plain {}",
        events.seen.load(Ordering::Relaxed),
        events.passed.load(Ordering::Relaxed),
        get("web-1"),
        get("web-2"),
        get("plain"),
    )
}

fn service_port(s: &Service) -> Option<i32> {
    s.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port)
}

fn service_text(s: &Service) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let port = spec.ports.unwrap_or_default().into_iter().next().unwrap_or_default();
    let target = match port.target_port {
        Some(IntOrString::Int(p)) => p.to_string(),
        Some(IntOrString::String(p)) => p,
        None => "-".into(),
    };
    let selector: Vec<String> = spec
        .selector
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let owner = owner::get_controller_of(&s.metadata).map(|r| format!("{} {}", r.kind, r.name));
    format!(
        "Service {}: port {} -> targetPort {target}, selector {}, controlled by {}",
        s.name_any(),
        port.port,
        selector.join(","),
        owner.unwrap_or_else(|| "nobody".into())
    )
}

/// Waits until the Pod counts stop changing for 300 ms: events still in flight have arrived,
/// and the reconciles they caused have run.
async fn settle(reconciles: &Counts, events: &Tally) {
    let snapshot = || {
        (
            reconciles.snapshot(),
            events.seen.load(Ordering::Relaxed),
            events.passed.load(Ordering::Relaxed),
        )
    };
    loop {
        let before = snapshot();
        settle_for(Duration::from_millis(300)).await;
        if snapshot() == before {
            return;
        }
    }
}

/// How many lines the reconcilers have said so far.
fn mark() -> usize {
    SAID.lock().len()
}

/// Waits until a reconciler has said a line containing `text` since `mark`.
async fn wait_said(mark: usize, text: &str) -> Result<(), BoxError> {
    wait(&format!("a reconciler to say {text:?}"), || async {
        Ok(SAID.lock()[mark..].iter().any(|l| l.contains(text)))
    })
    .await
}

async fn settle_for(d: Duration) {
    tokio::time::sleep(d).await;
}
