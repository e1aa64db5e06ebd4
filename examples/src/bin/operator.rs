//! The operator quickstart: a `MyApp` custom resource (replicas, image) reconciled into a
//! Deployment and a Service, with owner references, status and conditions, events, a
//! finalizer and leader election — controller-runtime's whole loop, in Rust.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin operator
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin operator   # a real cluster
//! ```
//!
//! It installs the CRD, starts a manager with one controller, creates a sample, shows the
//! reconcile, scales the app, deletes it and shows the clean-up. The page that goes with it:
//! `docs/operator.md`.

use kdev_examples::{connect, create_namespace, delete_namespace, log_to_stderr, wait};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Service, ServicePort};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kdev::CustomResource;
use kdev::condition::{self, Status};
use kdev::controller::{self, Action, Context, Predicate, Reconciler};
use kdev::event::{EventType, Recorder};
use kdev::finalizer::{self, finalizer};
use kdev::manager::Manager;
use kdev::object::{self, OperationResult, create_or_update};
use kdev::owner;
use kube_client::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use kube_core::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FINALIZER: &str = "example.com/cleanup";
const OPERATOR: &str = "myapp-operator";

// ---------------------------------------------------------------------------------------------
// The custom resource. `#[derive(CustomResource)]` on the spec struct generates the rest:
// `struct MyApp { metadata, spec, status }` with its `apiVersion`/`kind` on the wire, the
// `Resource` impl that tells the client its group, version, kind and plural, `MyApp::new` and
// `MyApp::crd()` — the schema the API server validates `MyApp`s against, a status subresource
// (so status writes never race with spec writes) and the columns `kubectl get myapps` shows.
// Lesson 9 (`crd`, docs/crd.md) walks through every attribute.

/// `MyApp` (group `example.com`, version `v1`): run `replicas` copies of `image` behind a Service.
// Two printer columns of the same type read to clippy as one attribute written twice.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "example.com",
    version = "v1",
    kind = "MyApp",
    namespaced,
    status = "MyAppStatus"
)]
#[kdev(shortname = "ma")]
#[kdev(printcolumn(name = "Replicas", type = "integer", json_path = ".spec.replicas"))]
#[kdev(printcolumn(name = "Available", type = "integer", json_path = ".status.availableReplicas"))]
#[kdev(printcolumn(name = "Image", type = "string", json_path = ".spec.image"))]
#[kdev(printcolumn(name = "Age", type = "date", json_path = ".metadata.creationTimestamp"))]
#[serde(rename_all = "camelCase")]
struct MyAppSpec {
    /// How many copies of the image to run.
    #[kdev(minimum = 0)]
    #[serde(default = "one")]
    replicas: i32,
    /// The container image.
    #[kdev(min_length = 1)]
    image: String,
}

fn one() -> i32 {
    1
}

/// What the operator reports back.
#[kdev::schema]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct MyAppStatus {
    /// Replicas of the Deployment that are available.
    #[serde(default)]
    available_replicas: i32,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    /// The `Ready` condition, keyed by type as every Kubernetes API keys conditions.
    #[serde(default)]
    #[kdev(list_type = "map", list_map_keys(type))]
    conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------------------------
// The reconciler: make the Deployment and the Service match the MyApp, then report status.

/// What can go wrong in one reconcile; every variant converts into `controller::Error` with `?`
/// and is retried with per-key backoff.
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("writing a child object failed: {0}")]
    Child(#[from] object::Error<owner::Error>),
    #[error("writing the status failed: {0}")]
    Status(#[from] kube_client::Error),
    #[error("the object has no namespace")]
    NoNamespace,
}

struct MyAppReconciler {
    recorder: Recorder,
}

impl Reconciler<MyApp> for MyAppReconciler {
    async fn reconcile(&self, app: Arc<MyApp>, ctx: Context) -> controller::Result {
        let ns = app.namespace().ok_or(ReconcileError::NoNamespace)?;
        let apps: Api<MyApp> = Api::namespaced(ctx.client().clone(), &ns);
        // The finalizer helper adds our finalizer first, then calls us with Apply while the
        // object lives and with Cleanup once it is being deleted; only when Cleanup succeeds
        // does it remove the finalizer and let the object go.
        let action = finalizer(&apps, FINALIZER, app, move |event| async move {
            match event {
                finalizer::Event::Apply(app) => self.apply(&ctx, &app, &ns).await,
                finalizer::Event::Cleanup(app) => self.cleanup(&app),
            }
        })
        .await?;
        Ok(action)
    }
}

impl MyAppReconciler {
    async fn apply(&self, ctx: &Context, app: &MyApp, ns: &str) -> Result<Action, ReconcileError> {
        let name = app.name_any();
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), name.clone()),
            ("app.kubernetes.io/managed-by".to_string(), OPERATOR.to_string()),
        ]);
        let deployments: Api<Deployment> = Api::namespaced(ctx.client().clone(), ns);
        let services: Api<Service> = Api::namespaced(ctx.client().clone(), ns);

        // create_or_update reads the Deployment, lets us change it, and writes only if something
        // changed. Change only the fields we own: the API server fills in defaults (strategy,
        // imagePullPolicy, ...), and overwriting them every time would write on every reconcile.
        let (op, deployment) = create_or_update(&deployments, &name, |d: &mut Deployment| {
            owner::set_controller_reference(app, d)?; // GC deletes it with the MyApp
            d.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(labels.clone());
            let spec = &mut d.spec;
            spec.replicas = Some(app.spec.replicas);
            spec.selector.match_labels = Some(labels.clone()); // immutable after creation
            let template = spec.template.metadata.get_or_insert_with(Default::default);
            template.labels = Some(labels.clone());
            let pod = spec.template.spec.get_or_insert_with(Default::default);
            match pod.containers.iter_mut().find(|c| c.name == "app") {
                Some(c) => c.image = Some(app.spec.image.clone()),
                None => pod.containers.push(Container {
                    name: "app".into(),
                    image: Some(app.spec.image.clone()),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }),
            }
            Ok::<_, owner::Error>(())
        })
        .await?;
        self.report(
            app,
            op,
            "Deployment",
            &format!("{} replicas of {}", app.spec.replicas, app.spec.image),
        );

        let (op, _) = create_or_update(&services, &name, |s: &mut Service| {
            owner::set_controller_reference(app, s)?;
            let spec = s.spec.get_or_insert_with(Default::default);
            spec.selector = Some(labels.clone());
            if spec.ports.as_ref().is_none_or(Vec::is_empty) {
                spec.ports = Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::Int(80)),
                    ..ServicePort::default()
                }]);
            }
            Ok::<_, owner::Error>(())
        })
        .await?;
        self.report(app, op, "Service", "port 80");

        // Status: what the Deployment reports, and a Ready condition computed from it.
        let available = deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        let mut status = app.status.clone().unwrap_or_default();
        let before = status.clone();
        status.available_replicas = available;
        status.observed_generation = app.metadata.generation;
        let ready = if available >= app.spec.replicas {
            condition::for_object(
                app,
                "Ready",
                Status::True,
                "AllReplicasAvailable",
                "all replicas are available",
            )
        } else {
            condition::for_object(
                app,
                "Ready",
                Status::False,
                "Progressing",
                format!("{available} of {} replicas available", app.spec.replicas),
            )
        };
        let became_ready =
            condition::set(&mut status.conditions, ready) && condition::is_true(&status.conditions, "Ready");
        if status != before {
            // Write status only when it changed from what the cache shows, and only over the
            // object this reconcile read (its resourceVersion is a precondition): the cache can
            // lag behind our own last write, and a status computed from a stale copy must not
            // land (nor announce Ready twice). A 409 means a newer MyApp is on its way to the
            // cache, and its watch event reconciles again.
            let apps: Api<MyApp> = Api::namespaced(ctx.client().clone(), ns);
            let patch = json!({
                "metadata": { "resourceVersion": app.metadata.resource_version },
                "status": status,
            });
            match apps
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if object::is_conflict(&e) => return Ok(Action::done()),
                Err(e) => return Err(e.into()),
            }
            println!(
                "  [reconcile {name}] status: availableReplicas {available}, {}",
                ready_text(&status)
            );
        }
        if became_ready {
            self.event(app, "Ready", "Reconcile", &format!("{available} replicas available"));
        }
        // Nothing to poll: the controller owns the Deployment, so its status changes wake us.
        Ok(Action::done())
    }

    fn cleanup(&self, app: &MyApp) -> Result<Action, ReconcileError> {
        // A real operator releases what lives outside the cluster here (a DNS record, a cloud
        // volume): the object, held by our finalizer, stays until this succeeds. The Deployment
        // and the Service need nothing: their owner references let the garbage collector go.
        // Clean-up must be idempotent: a reconcile that started from a cache not yet showing
        // the finalizer's removal runs it again.
        println!(
            "  [reconcile {}] being deleted: cleanup runs, then the finalizer comes off",
            app.name_any()
        );
        self.event(app, "CleanedUp", "Cleanup", "external resources released");
        Ok(Action::done())
    }

    fn report(&self, app: &MyApp, op: OperationResult, kind: &str, what: &str) {
        let name = app.name_any();
        let verb = match op {
            OperationResult::Created => "Created",
            OperationResult::Unchanged => return,
            _ => "Updated",
        };
        println!("  [reconcile {name}] {verb} {kind} {name}: {what}");
        self.event(app, verb, &format!("{verb}{kind}"), &format!("{kind} {name}: {what}"));
    }

    fn event(&self, app: &MyApp, reason: &str, action: &str, note: &str) {
        let regarding = kdev::event::reference(app);
        self.recorder
            .publish(&regarding, None, EventType::Normal, reason, action, note);
    }
}

fn ready_text(status: &MyAppStatus) -> String {
    condition::get(&status.conditions, "Ready").map_or_else(
        || "Ready unknown".to_string(),
        |c| format!("Ready={} ({}: {})", c.status, c.reason, c.message),
    )
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The manager logs through `tracing`: without a subscriber, reconcile errors go unseen.
    // Errors by default; `RUST_LOG=kdev_core=debug` shows every reconcile.
    log_to_stderr("error");
    println!("== 1. connecting: kubeconfig, in-cluster, or the embedded API server");
    let (client, embedded) = connect().await?;
    let ns = create_namespace(&client, "kdev-operator").await?;

    let result = lesson(&client, &ns, embedded.is_some()).await;
    delete_namespace(&client, &ns).await?;
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, ns: &str, embedded: bool) -> Result<(), BoxError> {
    println!("\n== 2. installing the MyApp CustomResourceDefinition");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.create(&PostParams::default(), &MyApp::crd()).await {
        Ok(_) => println!("created CRD myapps.example.com"),
        Err(kube_client::Error::Api(e)) if e.code == 409 => println!("CRD myapps.example.com already installed"),
        Err(e) => return Err(e.into()),
    }
    wait("the CRD to be established", || async {
        let crd = crds.get("myapps.example.com").await?;
        let conds = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conds.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await?;
    println!("the API server now serves /apis/example.com/v1/namespaces/*/myapps");

    println!("\n== 3. starting a manager: leader election, one controller for MyApp owning Deployments and Services");
    let manager = Manager::builder(client.clone())
        .leader_election_lease(ns, OPERATOR)
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .build();
    // The manager's recorder: it sends what it still holds when the manager stops.
    let recorder = manager.event_recorder(OPERATOR)?;
    // The manager's client counts its requests in `rest_client_requests_total`.
    let counted = manager.client().clone();
    manager
        .controller_for(Api::<MyApp>::namespaced(counted.clone(), ns))
        .named("myapp")
        .owns_with(Api::<Deployment>::namespaced(counted.clone(), ns), Predicate::all())
        .owns_with(Api::<Service>::namespaced(counted, ns), Predicate::all())
        .complete(MyAppReconciler {
            recorder: recorder.clone(),
        })?;
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run().await }
    });

    let apps: Api<MyApp> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);

    println!("\n== 4. creating MyApp web (2 replicas of nginx:1.27)");
    let spec = MyAppSpec {
        replicas: 2,
        image: "nginx:1.27".into(),
    };
    apps.create(&PostParams::default(), &MyApp::new("web", spec)).await?;
    wait("the Deployment and the Service", || async {
        Ok(deployments.get_opt("web").await?.is_some() && services.get_opt("web").await?.is_some())
    })
    .await?;
    let d = deployments.get("web").await?;
    let owner = owner::get_controller_of(&d.metadata).map(|r| format!("{} {}", r.kind, r.name));
    println!(
        "Deployment web: replicas {}, controlled by {}",
        d.spec.replicas.unwrap_or(0),
        owner.unwrap_or_default()
    );
    let app = apps.get("web").await?;
    println!(
        "MyApp web finalizers: {:?}",
        app.metadata.finalizers.unwrap_or_default()
    );

    println!("\n== 5. the Deployment becomes available; the status follows");
    if embedded {
        println!(
            "(the embedded API server runs no kube-controller-manager: the lesson plays the Deployment controller)"
        );
        play_deployment_controller(&deployments, "web").await?;
    }
    wait_ready(&apps, 2).await?;
    println!("MyApp web status: {}", describe_status(&apps.get("web").await?));

    println!("\n== 6. scaling MyApp web to 4 replicas");
    let scale = Patch::Merge(json!({ "spec": { "replicas": 4 } }));
    apps.patch("web", &PatchParams::default(), &scale).await?;
    wait("the Deployment to ask for 4 replicas", || async {
        let d = deployments.get("web").await?;
        Ok(d.spec.replicas == Some(4))
    })
    .await?;
    println!("Deployment web now asks for 4 replicas");
    if embedded {
        play_deployment_controller(&deployments, "web").await?;
    }
    wait_ready(&apps, 4).await?;
    println!("MyApp web status: {}", describe_status(&apps.get("web").await?));

    println!("\n== 7. the events the operator recorded (events.k8s.io/v1)");
    // The reconcile announces Ready just after its status write, which the wait above may have
    // seen first: events are asynchronous, so wait for that one too.
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), ns);
    wait("the Ready event for 4 replicas", || async {
        recorder.flush().await;
        let listed = events.list(&ListParams::default()).await?.items;
        Ok(listed
            .iter()
            .any(|e| e.reason.as_deref() == Some("Ready") && e.note.as_deref() == Some("4 replicas available")))
    })
    .await?;
    let mut list = events.list(&ListParams::default()).await?.items;
    list.retain(|e| e.reporting_controller.as_deref() == Some(OPERATOR));
    list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    for e in &list {
        let count = e.series.as_ref().map_or(1, |s| s.count);
        println!(
            "  {} {}: {} (x{count})",
            e.type_.as_deref().unwrap_or(""),
            e.reason.as_deref().unwrap_or(""),
            e.note.as_deref().unwrap_or("")
        );
    }

    println!("\n== 8. deleting MyApp web: the finalizer holds it until cleanup, then GC takes the children");
    apps.delete("web", &DeleteParams::default()).await?;
    wait("MyApp web to be gone", || async {
        Ok(apps.get_opt("web").await?.is_none())
    })
    .await?;
    println!("MyApp web is gone: the cleanup succeeded and the finalizer came off");
    wait(
        "the garbage collector to delete the Deployment and the Service",
        || async { Ok(deployments.get_opt("web").await?.is_none() && services.get_opt("web").await?.is_none()) },
    )
    .await?;
    println!("Deployment web and Service web are gone: their owner was deleted");

    println!("\n== 9. stopping the manager (what SIGTERM does): in-flight reconciles finish, the lease is released");
    manager.shutdown_token().cancel();
    running.await??;
    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(&mut metrics, &manager.registry())?;
    println!("metrics (leader_election_master_status is 0: the lease was released):");
    for line in metrics.lines().filter(|l| {
        l.starts_with("controller_runtime_reconcile_total{") || l.starts_with("leader_election_master_status{")
    }) {
        println!("  {line}");
    }
    crds.delete("myapps.example.com", &DeleteParams::default()).await?;
    println!("deleted the CRD");
    Ok(())
}

/// On the embedded server only: what the Deployment controller and the kubelets would do —
/// report every replica as available.
async fn play_deployment_controller(deployments: &Api<Deployment>, name: &str) -> Result<(), BoxError> {
    let d = deployments.get(name).await?;
    let replicas = d.spec.replicas.unwrap_or(0);
    let status = Patch::Merge(json!({ "status": {
        "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "updatedReplicas": replicas, "observedGeneration": d.metadata.generation
    }}));
    deployments.patch_status(name, &PatchParams::default(), &status).await?;
    println!("  [deployment controller] Deployment {name}: {replicas} of {replicas} replicas available");
    Ok(())
}

async fn wait_ready(apps: &Api<MyApp>, replicas: i32) -> Result<(), BoxError> {
    wait("MyApp web to be Ready", || async {
        let app = apps.get("web").await?;
        let status = app.status.unwrap_or_default();
        Ok(status.available_replicas == replicas && condition::is_true(&status.conditions, "Ready"))
    })
    .await
}

fn describe_status(app: &MyApp) -> String {
    let status = app.status.clone().unwrap_or_default();
    format!(
        "availableReplicas {}, {}",
        status.available_replicas,
        ready_text(&status)
    )
}
