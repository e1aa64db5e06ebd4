//! Lesson 2 — talking to the API server with kube-client: config loading, discovery, the
//! typed client, a raw REST request, the dynamic client with a custom resource, and a watch.
//! client-go's RESTClient, Clientset, DynamicClient and DiscoveryClient, done in Rust.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin client_basics
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin client_basics   # a real cluster
//! ```
//!
//! The page that goes with it: `docs/client_basics.md`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::testenv::TestEnv;
use kube_client::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube_client::discovery::Discovery;
use kube_client::{Api, Client, Config};
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    println!("== 1. connecting: kubeconfig, in-cluster, or the embedded API server");
    // Keep the embedded server (if any) alive for the whole lesson: dropping it stops it.
    let (client, _embedded) = connect().await?;
    let ns = format!(
        "kdev-lesson-{}",
        (0..5)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &named(&ns)).await?;
    println!("created namespace {ns} for this lesson");

    let result = lesson(&client, &ns).await;
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    println!("\ndeleted namespace {ns} (its contents go with it)");
    result?;
    println!("lesson complete");
    Ok(())
}

/// KUBECONFIG (or in-cluster config) when set, else kdev's embedded API server.
async fn connect() -> Result<(Client, Option<TestEnv>), Error> {
    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        // Config::infer: $KUBECONFIG or ~/.kube/config, else the in-cluster service account.
        let config = Config::infer().await?;
        println!("using the cluster at {} (Config::infer)", config.cluster_url);
        return Ok((Client::try_from(config)?, None));
    }
    let env = TestEnv::embedded(Default::default()).await?;
    let url = env.server().map(|s| s.url()).unwrap_or_default();
    println!("no KUBECONFIG: started kdev's embedded API server at {url}");
    Ok((env.client(), Some(env)))
}

async fn lesson(client: &Client, ns: &str) -> Result<(), Error> {
    let cached = discovery(client).await?;
    typed(client, ns).await?;
    raw(client, ns).await?;
    dynamic(client, ns, &cached).await?;
    watch(client, ns).await
}

/// Runs discovery and hands back its result: a cache that later lookups read without asking
/// the server again.
async fn discovery(client: &Client) -> Result<Discovery, Error> {
    println!("\n== 2. discovery (client-go's DiscoveryClient)");
    let version = client.apiserver_version().await?;
    println!("server version: {}.{}", version.major, version.minor);
    // Aggregated discovery (Kubernetes 1.30+; what kubectl and client-go use): every group,
    // version and resource in one request to /api and one to /apis.
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut groups: Vec<String> = discovery
        .groups()
        .map(|g| {
            if g.name().is_empty() {
                "core".into()
            } else {
                g.name().to_string()
            }
        })
        .collect();
    groups.sort();
    println!(
        "aggregated discovery found {} API groups, among them: {}",
        groups.len(),
        groups.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
    if let Some(apps) = discovery.get("apps") {
        for (ar, caps) in apps.recommended_resources() {
            if ar.plural == "deployments" {
                println!(
                    "GVK apps/{}/{} is served as GVR apps/{}/{} at /apis/apps/{}/namespaces/{{ns}}/deployments ({:?})",
                    ar.version, ar.kind, ar.version, ar.plural, ar.version, caps.scope
                );
            }
        }
    }
    // The older way asks every group-version in turn, and fails as a whole when one does not
    // answer (an aggregated API whose backend is down, a CRD still being set up): filter it to
    // the groups you need.
    let legacy = Discovery::new(client.clone()).filter(&["", "apps"]).run().await?;
    println!(
        "legacy discovery (a request per group and version), filtered to core and apps, found {} groups",
        legacy.groups().count()
    );
    // A `Discovery` is cached discovery (client-go's `memory.NewMemCacheClient`): once run, it
    // answers every lookup from memory, and knows nothing installed after it ran.
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    if let Some((ar, _)) = discovery.resolve_gvk(&gvk) {
        println!(
            "cached discovery resolves apps/v1 Deployment to the plural {:?} without a request",
            ar.plural
        );
    }
    Ok(discovery)
}

async fn typed(client: &Client, ns: &str) -> Result<(), Error> {
    println!("\n== 3. the typed client (client-go's Clientset): Api<Deployment>");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let web: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "app": "web" } },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } },
                                "spec": { "containers": [{ "name": "web", "image": "nginx:1.26" }] } } }
    }))?;
    let created = deployments.create(&PostParams::default(), &web).await?;
    println!("created deployment web (generation {:?})", created.metadata.generation);
    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } } } });
    let updated = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    let image = updated
        .spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image);
    println!(
        "updated the image to {} (generation {:?}: spec changes bump it)",
        image.unwrap_or_default(),
        updated.metadata.generation
    );

    // A Pod runs as a ServiceAccount, `default` unless it names one. kube-controller-manager
    // creates `default` in a new namespace shortly after the namespace, and the API server's
    // ServiceAccount admission rejects a Pod created before it exists: wait for it. A bare API
    // server (no kube-controller-manager, as envtest runs one) never makes it, and has none in
    // the `default` namespace either: there, make it as the controller would.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let controllers_run = Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .get_opt("default")
        .await?
        .is_some();
    if controllers_run {
        for _ in 0..300 {
            if accounts.get_opt("default").await?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        println!("no kube-controller-manager here: creating the namespace's default ServiceAccount ourselves");
        let mut account = ServiceAccount::default();
        account.metadata.name = Some("default".into());
        match accounts.create(&PostParams::default(), &account).await {
            Err(kube_client::Error::Api(status)) if status.code == 409 => {} // made meanwhile
            other => drop(other?),
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for (name, tier) in [("web-1", "front"), ("web-2", "front"), ("db-1", "back")] {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "labels": { "tier": tier } },
            "spec": { "containers": [{ "name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"] }] }
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let front = pods.list(&ListParams::default().labels("tier=front")).await?;
    let names: Vec<String> = front.items.into_iter().filter_map(|p| p.metadata.name).collect();
    println!("pods with tier=front: {}", names.join(", "));
    deployments.delete("web", &DeleteParams::default()).await?;
    println!("deleted deployment web");
    Ok(())
}

async fn raw(client: &Client, ns: &str) -> Result<(), Error> {
    println!("\n== 4. a raw REST request (client-go's RESTClient)");
    let req = http::Request::get(format!("/api/v1/namespaces/{ns}")).body(Vec::new())?;
    let text = client.request_text(req).await?;
    let obj: serde_json::Value = serde_json::from_str(&text)?;
    println!(
        "GET /api/v1/namespaces/{ns} -> kind {}, phase {}",
        obj["kind"], obj["status"]["phase"]
    );
    Ok(())
}

async fn dynamic(client: &Client, ns: &str, cached: &Discovery) -> Result<(), Error> {
    println!("\n== 5. the dynamic client (client-go's DynamicClient): a custom resource");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "notes.lesson.kdev.dev" },
        "spec": { "group": "lesson.kdev.dev", "scope": "Namespaced",
                  "names": { "plural": "notes", "singular": "note", "kind": "Note" },
                  "versions": [{ "name": "v1", "served": true, "storage": true,
                                 "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                                     "spec": { "type": "object", "properties": { "text": { "type": "string" } } } } } } }] }
    }))?;
    let name = "notes.lesson.kdev.dev";
    // A CRD left by an earlier run may still be terminating (its objects are deleted first):
    // wait for it to go, or objects of its kind cannot be created.
    for _ in 0..600 {
        match crds.get_opt(name).await? {
            Some(old) if old.metadata.deletion_timestamp.is_some() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => break,
        }
    }
    let created_crd = match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => true,
        Err(kube_client::Error::Api(e)) if e.code == 409 => false,
        Err(e) => return Err(e.into()),
    };
    let mut established = false;
    for _ in 0..600 {
        let c = crds.get(name).await?;
        established = c
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !established {
        return Err(format!("CRD {name} was not Established within 60 s").into());
    }
    println!("CRD {name} is Established: the API server now serves /apis/lesson.kdev.dev/v1");
    // The cache from step 2 ran before the CRD existed (unless an earlier run left it): it must
    // be refreshed, as client-go's cached discovery refreshes itself on a miss.
    let gvk = GroupVersionKind::gvk("lesson.kdev.dev", "v1", "Note");
    if created_crd {
        println!(
            "the discovery cache from step 2 knows kind Note: {}",
            cached.resolve_gvk(&gvk).is_some()
        );
    }
    // Discovery lists a new group a moment after the CRD is established on a real cluster.
    let mut ar: Option<ApiResource> = None;
    for _ in 0..300 {
        let fresh = Discovery::new(client.clone())
            .filter(&["lesson.kdev.dev"])
            .run()
            .await?;
        if let Some((found, _)) = fresh.resolve_gvk(&gvk) {
            ar = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ar = ar.ok_or("discovery did not list lesson.kdev.dev/v1 Note within 30 s")?;
    println!("discovery run again resolves kind Note to the resource {:?}", ar.plural);
    let notes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let note: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "lesson.kdev.dev/v1", "kind": "Note", "metadata": { "name": "first" }, "spec": { "text": "hello" }
    }))?;
    // Established means the API server accepts the kind; on a real cluster its handler for the
    // new group can still answer 404 for a moment, so the first create retries.
    let mut attempts = 0;
    loop {
        match notes.create(&PostParams::default(), &note).await {
            Err(kube_client::Error::Api(e)) if e.code == 404 && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => {
                result?;
                break;
            }
        }
    }
    // Get, change, update (a PUT with the resourceVersion read: a 409 if someone wrote since).
    let mut got = notes.get("first").await?;
    got.data["spec"]["text"] = json!("hello, dynamic world");
    let updated = notes.replace("first", &PostParams::default(), &got).await?;
    println!(
        "dynamic object {} says {}",
        updated.metadata.name.unwrap_or_default(),
        updated.data["spec"]["text"]
    );
    let listed = notes.list(&ListParams::default()).await?;
    println!(
        "listing notes through the dynamic client: {} item(s)",
        listed.items.len()
    );
    if created_crd {
        crds.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

async fn watch(client: &Client, ns: &str) -> Result<(), Error> {
    println!("\n== 6. a watch: changes as they happen, from a resourceVersion");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let rv = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut events = cms.watch(&WatchParams::default().timeout(60), &rv).await?.boxed();
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("greeting".into());
    cm.data = Some([("hello".to_string(), "world".to_string())].into());
    cms.create(&PostParams::default(), &cm).await?;
    cms.patch(
        "greeting",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "hello": "kdev" } })),
    )
    .await?;
    let mut seen = 0;
    while seen < 2 {
        let Ok(next) = tokio::time::timeout(Duration::from_secs(30), events.try_next()).await else {
            println!("no more events within 30 s");
            break;
        };
        match next? {
            Some(WatchEvent::Added(o)) => println!("ADDED {}", o.metadata.name.unwrap_or_default()),
            Some(WatchEvent::Modified(o)) => {
                let v = o.data.and_then(|d| d.get("hello").cloned()).unwrap_or_default();
                println!("MODIFIED {} (hello={v})", o.metadata.name.unwrap_or_default())
            }
            Some(WatchEvent::Deleted(o)) => println!("DELETED {}", o.metadata.name.unwrap_or_default()),
            Some(WatchEvent::Bookmark(_)) => continue,
            Some(WatchEvent::Error(e)) => return Err(format!("watch error: {}", e.message).into()),
            None => break,
        }
        seen += 1;
    }
    Ok(())
}

fn named(name: &str) -> Namespace {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    ns
}
