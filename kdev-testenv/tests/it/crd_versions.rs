//! A CRD's versions over time: the storage version and `status.storedVersions`, the rewrite a
//! storage version migration relies on, what a version that lacks a field shows, and the
//! warnings of a deprecated version.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::ResourceExt;
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use serde_json::{Value, json};

use super::{causes, setup, unique_group};

/// `gadgets.<group>` in `v1beta1` (the storage version) and `v1`, whose schema adds
/// `spec.replicas`.
fn gadgets_crd(group: &str) -> CustomResourceDefinition {
    let schema = |with_replicas: bool| {
        let mut spec = json!({ "type": "object", "properties": { "size": { "type": "integer" } } });
        if with_replicas {
            spec["properties"]["replicas"] = json!({ "type": "integer" });
        }
        json!({ "openAPIV3Schema": { "type": "object", "properties": { "spec": spec } } })
    };
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("gadgets.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList" },
            "versions": [
                { "name": "v1beta1", "served": true, "storage": true, "schema": schema(false) },
                { "name": "v1", "served": true, "storage": false, "schema": schema(true) }
            ]
        }
    }))
    .expect("a valid CRD")
}

fn gadgets(client: &Client, group: &str, version: &str, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, "Gadget"), "gadgets");
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn gadget(group: &str, version: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({ "apiVersion": format!("{group}/{version}"), "kind": "Gadget", "metadata": { "name": name }, "spec": spec }))
        .expect("a gadget")
}

async fn get_crd(client: &Client, group: &str) -> CustomResourceDefinition {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get(&format!("gadgets.{group}"))
        .await
        .expect("get the CRD")
}

fn stored_versions(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default()
}

/// The `storageVersionHash` discovery publishes for gadgets (through v1, always served).
async fn storage_hash(client: &Client, group: &str) -> Option<String> {
    let list = client.list_api_group_resources(&format!("{group}/v1")).await.ok()?;
    list.resources
        .into_iter()
        .find(|r| r.name == "gadgets")?
        .storage_version_hash
}

/// Makes `version` the only storage version of the installed CRD, and waits until discovery
/// publishes the change: a real API server applies it a moment after the write, and stores
/// objects in the old version until then.
async fn set_storage(
    client: &Client,
    group: &str,
    version: &str,
) -> Result<CustomResourceDefinition, kube_client::Error> {
    let before = storage_hash(client, group).await;
    let mut crd = get_crd(client, group).await;
    for v in &mut crd.spec.versions {
        v.storage = v.name == version;
    }
    let written = Api::<CustomResourceDefinition>::all(client.clone())
        .replace(&format!("gadgets.{group}"), &PostParams::default(), &crd)
        .await?;
    super::eventually("the new storage version in discovery", || async {
        let now = storage_hash(client, group).await;
        (now.is_some() && now != before).then_some(())
    })
    .await;
    Ok(written)
}

async fn uninstall(client: &Client, group: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(&format!("gadgets.{group}"), &DeleteParams::default()).await;
}

#[tokio::test]
async fn a_stored_version_stays_in_spec_until_stored_versions_drops_it() {
    let (env, _ns) = setup().await;
    let client = env.client();
    let group = unique_group("t");
    env.install_crd(&gadgets_crd(&group)).await.expect("install");
    assert_eq!(stored_versions(&get_crd(&client, &group).await), ["v1beta1"]);

    // A new storage version joins the list in the same write; the old one stays.
    let switched = set_storage(&client, &group, "v1")
        .await
        .expect("switch the storage version");
    assert_eq!(stored_versions(&switched), ["v1beta1", "v1"]);

    // A version objects may still be stored in cannot leave spec.versions.
    let mut without_old = switched.clone();
    without_old.spec.versions.retain(|v| v.name != "v1beta1");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("gadgets.{group}");
    let refused = crds.replace(&name, &PostParams::default(), &without_old).await;
    assert_eq!(
        causes("remove a stored version", refused),
        [(
            "status.storedVersions[0]".to_string(),
            "Invalid value: \"v1beta1\": missing from spec.versions; v1beta1 was previously a storage version, \
             and must remain in spec.versions until a storage migration ensures no data remains persisted in \
             v1beta1 and removes v1beta1 from status.storedVersions"
                .to_string()
        )]
    );

    // A main-resource write cannot change the status; the status subresource can.
    let mut status_ignored = get_crd(&client, &group).await;
    status_ignored.status.as_mut().expect("a status").stored_versions = Some(vec!["v1".into()]);
    let kept = crds
        .replace(&name, &PostParams::default(), &status_ignored)
        .await
        .expect("an update that only changes the status");
    assert_eq!(stored_versions(&kept), ["v1beta1", "v1"]);
    let trimmed = crds
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "storedVersions": ["v1"] } })),
        )
        .await
        .expect("trim storedVersions");
    assert_eq!(stored_versions(&trimmed), ["v1"]);

    let mut without_old = trimmed;
    without_old.spec.versions.retain(|v| v.name != "v1beta1");
    let removed = crds
        .replace(&name, &PostParams::default(), &without_old)
        .await
        .expect("remove a version no longer stored");
    let left: Vec<&str> = removed.spec.versions.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(left, ["v1"]);
    uninstall(&client, &group).await;
}

#[tokio::test]
async fn a_no_op_update_rewrites_an_object_kept_in_an_old_storage_version() {
    let (env, ns) = setup().await;
    let client = env.client();
    let group = unique_group("t");
    env.install_crd(&gadgets_crd(&group)).await.expect("install");
    let v1 = gadgets(&client, &group, "v1", &ns);
    let pp = PostParams::default();
    let created = v1
        .create(&pp, &gadget(&group, "v1", "g", json!({ "size": 1 })))
        .await
        .expect("create");

    // Stored in the storage version already: the same bytes, nothing is written.
    let same = v1.replace("g", &pp, &created).await.expect("no-op update");
    assert_eq!(same.resource_version(), created.resource_version());

    set_storage(&client, &group, "v1")
        .await
        .expect("switch the storage version");
    // Stored in v1beta1, written in v1 now: the encoding differs, so it is written.
    let read = v1.get("g").await.expect("get");
    let rewritten = v1.replace("g", &pp, &read).await.expect("rewrite");
    assert_ne!(rewritten.resource_version(), read.resource_version());
    let again = v1.replace("g", &pp, &rewritten).await.expect("no-op update");
    assert_eq!(again.resource_version(), rewritten.resource_version());
    uninstall(&client, &group).await;
}

#[tokio::test]
async fn a_field_only_one_version_declares_does_not_survive_another() {
    let (env, ns) = setup().await;
    let client = env.client();
    let group = unique_group("t");
    env.install_crd(&gadgets_crd(&group)).await.expect("install");
    let (v1, v1beta1) = (
        gadgets(&client, &group, "v1", &ns),
        gadgets(&client, &group, "v1beta1", &ns),
    );
    let pp = PostParams::default();

    // Stored in v1beta1, whose schema has no replicas: pruned on the way to storage.
    let created = v1
        .create(&pp, &gadget(&group, "v1", "early", json!({ "size": 1, "replicas": 3 })))
        .await
        .expect("create in v1");
    assert_eq!(created.data["spec"], json!({ "size": 1 }));

    set_storage(&client, &group, "v1")
        .await
        .expect("switch the storage version");
    v1.create(&pp, &gadget(&group, "v1", "late", json!({ "size": 1, "replicas": 3 })))
        .await
        .expect("create in v1");
    assert_eq!(v1.get("late").await.expect("get").data["spec"]["replicas"], 3);
    // Read in v1beta1, it is pruned from the answer; written back whole in v1beta1, it is gone.
    let old_view = v1beta1.get("late").await.expect("get in v1beta1");
    assert_eq!(old_view.data["spec"], json!({ "size": 1 }));
    v1beta1
        .replace("late", &pp, &old_view)
        .await
        .expect("replace in v1beta1");
    assert_eq!(v1.get("late").await.expect("get").data["spec"], json!({ "size": 1 }));
    uninstall(&client, &group).await;
}

#[tokio::test]
async fn a_deprecated_version_warns_on_every_request() {
    let (env, ns) = setup().await;
    let client = env.client();
    let group = unique_group("t");
    let mut crd = gadgets_crd(&group);
    crd.spec.versions[0].deprecated = Some(true);
    env.install_crd(&crd).await.expect("install");
    let path = |version: &str| format!("/apis/{group}/{version}/namespaces/{ns}/gadgets");
    let get = |uri: String| http::Request::get(uri).body(Vec::new()).expect("request");

    let answer = env.send(get(path("v1beta1"))).await.expect("list in v1beta1");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.warnings(),
        [format!("{group}/v1beta1 Gadget is deprecated; use {group}/v1 Gadget")]
    );
    let answer = env.send(get(path("v1"))).await.expect("list in v1");
    assert!(answer.warnings().is_empty(), "{:?}", answer.warnings());

    // The CRD's own text replaces the default; writes warn too.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut current = crds.get(&format!("gadgets.{group}")).await.expect("get the CRD");
    current.spec.versions[0].deprecation_warning = Some("v1beta1 goes away in 2027; use v1".into());
    crds.replace(&format!("gadgets.{group}"), &PostParams::default(), &current)
        .await
        .expect("set the warning");
    // The served CRD changes a moment after the write on a real cluster.
    let new_text = "v1beta1 goes away in 2027; use v1".to_string();
    super::eventually("the new warning", || async {
        let answer = env.send(get(path("v1beta1"))).await.expect("list in v1beta1");
        (answer.warnings() == [new_text.clone()]).then_some(())
    })
    .await;
    let body = serde_json::to_vec(&gadget(&group, "v1beta1", "g", json!({ "size": 1 }))).expect("json");
    let create = http::Request::post(path("v1beta1"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("request");
    let answer = env.send(create).await.expect("create in v1beta1");
    assert_eq!(answer.status, 201);
    assert_eq!(answer.warnings(), [new_text]);
    uninstall(&client, &group).await;
}
