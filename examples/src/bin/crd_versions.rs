//! Lesson 10 — a custom resource's versions over time: `CronTab` ships in `v1beta1`, gains a
//! `v1` with one more field, moves its storage version to `v1`, deprecates `v1beta1`, migrates
//! the stored objects and drops `v1beta1`, four releases of one CRD. On the way: what strategy
//! `None` converts (only `apiVersion`), what a version that lacks a field does to it, the
//! deprecation warning, `status.storedVersions`, and why a stored version cannot be removed
//! before a storage version migration.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin crd_versions
//! ```
//!
//! The page that goes with it: `docs/crd_versions.md`.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::CustomResource;
use kdev::wait::{await_condition, conditions};
use kdev_examples::{BoxError, connect, create_namespace, delete_namespace, wait};
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use kube_core::crd::v1::CustomResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Two versions of one kind, each its own Rust type. v1 only adds an optional field: a
// compatible change, the one kind of change strategy None can carry.

/// A CronTab, v1beta1: what to run, and when.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "stable.example.com",
    version = "v1beta1",
    kind = "CronTab",
    struct = "CronTabV1beta1",
    namespaced,
    shortname = "ct",
    storage
)]
#[serde(rename_all = "camelCase")]
struct CronTabV1beta1Spec {
    /// A cron schedule, `*/5 * * * *`.
    cron_spec: String,
    /// The image to run.
    image: String,
}

/// A CronTab, v1: the same, and how many copies run.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "stable.example.com",
    version = "v1",
    kind = "CronTab",
    struct = "CronTabV1",
    namespaced,
    shortname = "ct"
)]
#[serde(rename_all = "camelCase")]
struct CronTabV1Spec {
    /// A cron schedule, `*/5 * * * *`.
    cron_spec: String,
    /// The image to run.
    image: String,
    /// How many copies run: new in v1, and optional, so v1beta1 objects are valid v1 objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
}

// ---------------------------------------------------------------------------------------------
// The CRD of each release.

/// Release 1: v1beta1 alone.
fn release_1() -> CustomResourceDefinition {
    CronTabV1beta1::crd()
}

/// Release 2: v1 served next to v1beta1, which stays the storage version (its
/// `#[kdev(storage)]`).
fn release_2() -> Result<CustomResourceDefinition, BoxError> {
    Ok(kdev::crd::merge_versions([CronTabV1beta1::crd(), CronTabV1::crd()])?)
}

/// Release 3: v1 is the storage version, v1beta1 is deprecated. In a real project this release
/// moves `#[kdev(storage)]` to `CronTabV1Spec` and adds `#[kdev(deprecated)]` to
/// `CronTabV1beta1Spec`; this program ships every release at once, so it sets the two fields.
fn release_3() -> Result<CustomResourceDefinition, BoxError> {
    let mut crd = release_2()?;
    for v in &mut crd.spec.versions {
        v.storage = v.name == "v1";
        if v.name == "v1beta1" {
            v.deprecated = Some(true);
        }
    }
    Ok(crd)
}

/// Release 4: v1 alone.
fn release_4() -> CustomResourceDefinition {
    CronTabV1::crd()
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, _embedded) = connect().await?;
    let ns = create_namespace(&client, "kdev-crd-versions").await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let result = lesson(&client, &crds, &ns).await;
    // Deleting the CRD deletes every CronTab; then the namespace. The lesson's error first.
    let deleted = crds.delete(CronTabV1::crd_name(), &DeleteParams::default()).await;
    delete_namespace(&client, &ns).await?;
    result?;
    deleted?;
    println!("deleted the CRD and the namespace");
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, crds: &Api<CustomResourceDefinition>, ns: &str) -> Result<(), BoxError> {
    let name = CronTabV1::crd_name();
    let beta: Api<CronTabV1beta1> = Api::namespaced(client.clone(), ns);
    let ga: Api<CronTabV1> = Api::namespaced(client.clone(), ns);
    let beta_json: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<CronTabV1beta1>(&()));
    let ga_json: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<CronTabV1>(&()));
    let pp = PostParams::default();

    println!("\n== 1. release 1: CronTab in v1beta1");
    let crd = release_1();
    print_versions(&crd);
    install(crds, &crd).await?;
    println!("status.storedVersions {:?}", stored_versions(crds).await?);
    let nightly = CronTabV1beta1::new(
        "nightly",
        CronTabV1beta1Spec {
            cron_spec: "0 2 * * *".into(),
            image: "backup:1.0".into(),
        },
    );
    beta.create(&pp, &nightly).await?;
    println!("created nightly in v1beta1");

    println!("\n== 2. release 2: v1 served too, v1beta1 still the storage version");
    let crd = release_2()?;
    print_versions(&crd);
    update(client, ns, crd).await?;
    // Read as JSON: the typed structs would keep neither the apiVersion the server sent nor a
    // field they do not declare.
    let read = raw(&ga_json, "nightly").await?;
    println!("  nightly read in v1: {read}");
    println!("  (strategy None: the API server only rewrote apiVersion)");
    let hourly = CronTabV1::new(
        "hourly",
        CronTabV1Spec {
            cron_spec: "0 * * * *".into(),
            image: "report:2.3".into(),
            replicas: Some(3),
        },
    );
    let created = ga.create(&pp, &hourly).await?;
    println!(
        "created hourly in v1 with replicas 3; the answer says replicas {:?}",
        created.spec.replicas
    );
    println!("  (stored in v1beta1, whose schema has no replicas: pruned on the way to storage)");

    println!("\n== 3. release 3: v1 is the storage version, v1beta1 deprecated");
    let crd = release_3()?;
    print_versions(&crd);
    update(client, ns, crd).await?;
    println!("status.storedVersions {:?}", stored_versions(crds).await?);
    set_replicas(&ga, "hourly", 3).await?;
    println!("patched hourly in v1 with replicas 3: kept now (stored in v1)");
    let warning = warning_of(
        client,
        &format!("/apis/stable.example.com/v1beta1/namespaces/{ns}/crontabs"),
    )
    .await?;
    println!("  a v1beta1 request's Warning header: {warning}");
    println!("  hourly read in v1beta1: {}", raw(&beta_json, "hourly").await?);
    // A v1beta1 client changes the image: the object it patches is the v1beta1 view.
    beta.patch(
        "hourly",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "image": "report:2.4" } })),
    )
    .await?;
    let after = ga.get("hourly").await?;
    println!(
        "  a v1beta1 client patched the image; read in v1: image {:?}, replicas {:?}",
        after.spec.image, after.spec.replicas
    );
    println!("  (lost: written through a version that does not declare it)");
    set_replicas(&ga, "hourly", 3).await?;
    println!("set replicas 3 again, in v1");

    println!("\n== 4. removing v1beta1 before the objects are migrated");
    let mut too_early = release_4();
    too_early.metadata.resource_version = crds.get(name).await?.metadata.resource_version;
    match crds.replace(name, &pp, &too_early).await {
        Err(kube_client::Error::Api(s)) => println!("refused, {}: {}", s.code, s.message),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    println!("\n== 5. storage version migration");
    let done = kdev::storage_version::migrate(client, name).await?;
    println!(
        "rewrote {} of {} CronTabs in {} (nightly was still stored in v1beta1; hourly was written again after release 3)",
        done.rewritten, done.objects, done.storage_version
    );
    println!(
        "status.storedVersions {:?} -> {:?}",
        done.stored_versions_before,
        stored_versions(crds).await?
    );

    println!("\n== 6. release 4: v1 alone");
    let crd = release_4();
    print_versions(&crd);
    update(client, ns, crd).await?;
    // A real API server stops serving a removed version a moment after the write.
    wait("v1beta1 to be gone", || async {
        Ok(beta
            .list(&Default::default())
            .await
            .is_err_and(|e| matches!(e, kube_client::Error::Api(ref s) if s.code == 404)))
    })
    .await?;
    println!("v1beta1 requests: 404 Not Found");
    let mut listed: Vec<String> = ga
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|c| {
            format!(
                "{} ({}, replicas {})",
                c.metadata.name.as_deref().unwrap_or(""),
                c.spec.image,
                c.spec.replicas.map_or("-".into(), |r| r.to_string())
            )
        })
        .collect();
    listed.sort();
    println!("v1 list: {}", listed.join(", "));
    Ok(())
}

/// An object's `apiVersion` and `spec` as the server sent them.
async fn raw(api: &Api<DynamicObject>, name: &str) -> Result<String, BoxError> {
    let obj = api.get(name).await?;
    let api_version = obj.types.map(|t| t.api_version).unwrap_or_default();
    Ok(format!(
        "apiVersion {api_version}, spec {}",
        serde_json::to_string(&obj.data["spec"])?
    ))
}

fn print_versions(crd: &CustomResourceDefinition) {
    for v in &crd.spec.versions {
        println!(
            "  version {:<8} served {:<5} storage {:<5} deprecated {}",
            v.name,
            v.served,
            v.storage,
            v.deprecated.unwrap_or(false)
        );
    }
}

/// Creates the CRD, after deleting one an earlier run left, and waits until it is served.
async fn install(crds: &Api<CustomResourceDefinition>, crd: &CustomResourceDefinition) -> Result<(), BoxError> {
    let name = CronTabV1::crd_name();
    if let Some(old) = crds.get_opt(name).await? {
        // Its storedVersions are an earlier run's: start from scratch.
        if old.metadata.deletion_timestamp.is_none() {
            crds.delete(name, &DeleteParams::default()).await?;
        }
        let uid = old.metadata.uid.unwrap_or_default();
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), name, conditions::is_deleted(&uid)),
        )
        .await??;
        println!("deleted the CRD an earlier run left");
    }
    crds.create(&PostParams::default(), crd).await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds.clone(), name, conditions::is_crd_established()),
    )
    .await??;
    println!("installed CRD {name}");
    Ok(())
}

/// Replaces the installed CRD with a release's, and waits until each of its versions is served
/// (a real API server serves a new version a moment after the write).
async fn update(client: &Client, ns: &str, mut crd: CustomResourceDefinition) -> Result<(), BoxError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = CronTabV1::crd_name();
    crd.metadata.resource_version = crds.get(name).await?.metadata.resource_version;
    crds.replace(name, &PostParams::default(), &crd).await?;
    for version in crd.spec.versions.iter().filter(|v| v.served) {
        let path = format!("/apis/stable.example.com/{}/namespaces/{ns}/crontabs", version.name);
        wait("the version to be served", || async {
            let request = http::Request::get(path.as_str()).body(Vec::new())?;
            Ok(client.request_text(request).await.is_ok())
        })
        .await?;
    }
    println!("updated CRD {name}");
    Ok(())
}

async fn stored_versions(crds: &Api<CustomResourceDefinition>) -> Result<Vec<String>, BoxError> {
    let crd = crds.get(CronTabV1::crd_name()).await?;
    Ok(crd.status.and_then(|s| s.stored_versions).unwrap_or_default())
}

/// Sets `spec.replicas` in v1 until the answer keeps it: a real API server stores in the new
/// storage version a moment after the CRD changed, and until then v1beta1 prunes it.
async fn set_replicas(ga: &Api<CronTabV1>, name: &str, replicas: i32) -> Result<(), BoxError> {
    let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
    wait("replicas to be kept", || async {
        let written = ga.patch(name, &PatchParams::default(), &patch).await?;
        Ok(written.spec.replicas == Some(replicas))
    })
    .await
}

/// The text of the first `Warning` header a GET of `path` gets, once there is one (a real API
/// server serves the CRD's change a moment after the write). `kube::Client` does not expose
/// response headers of typed calls, so this is a raw request.
async fn warning_of(client: &Client, path: &str) -> Result<String, BoxError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let request = http::Request::get(path).body(Vec::new())?;
        let response = client.send(request.map(Into::into)).await?;
        if let Some(header) = response.headers().get(http::header::WARNING) {
            return Ok(header.to_str()?.to_string());
        }
        if tokio::time::Instant::now() > deadline {
            return Err("timed out waiting for the deprecation warning".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
