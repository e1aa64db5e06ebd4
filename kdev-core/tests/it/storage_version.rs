//! Storage version migration on kdev-testenv (and on a real cluster): every object rewritten in
//! the new storage version, `status.storedVersions` trimmed, the old version removable.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_core::storage_version::{self, Error};
use kdev_testenv::TestEnv;
use kube_client::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube_client::{Api, Client};
use serde_json::json;

/// Installs `gadgets.<a unique group>`, stored in `v1beta1` and served in `v1` too; returns the
/// group.
async fn install_gadgets(env: &TestEnv) -> String {
    let group = super::unique_group();
    let schema = json!({ "openAPIV3Schema": { "type": "object", "properties": {
        "spec": { "type": "object", "properties": { "size": { "type": "integer" } } } } } });
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("gadgets.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList" },
            "versions": [
                { "name": "v1beta1", "served": true, "storage": true, "schema": schema },
                { "name": "v1", "served": true, "storage": false, "schema": schema }
            ]
        }
    }))
    .expect("a valid CRD");
    env.install_crd(&crd).await.expect("install the CRD");
    group
}

fn gadgets(client: &Client, group: &str, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Gadget"), "gadgets");
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn create(api: &Api<DynamicObject>, group: &str, name: &str) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Gadget",
        "metadata": { "name": name }, "spec": { "size": 1 }
    }))
    .expect("a gadget");
    api.create(&PostParams::default(), &obj).await.expect("create");
}

/// The `storageVersionHash` discovery publishes for gadgets, through v1.
async fn storage_hash(client: &Client, group: &str) -> Option<String> {
    let list = client.list_api_group_resources(&format!("{group}/v1")).await.ok()?;
    list.resources
        .into_iter()
        .find(|r| r.name == "gadgets")?
        .storage_version_hash
}

fn stored_versions(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn migrate_rewrites_every_object_then_trims_stored_versions() {
    let env = TestEnv::start().await.expect("test environment");
    let client = env.client();
    let (ns_a, ns_b) = (
        env.namespace().await.expect("namespace"),
        env.namespace().await.expect("namespace"),
    );
    let group = install_gadgets(&env).await;
    let name = format!("gadgets.{group}");
    let (a, b) = (gadgets(&client, &group, &ns_a), gadgets(&client, &group, &ns_b));
    for n in ["one", "two"] {
        create(&a, &group, n).await;
    }
    create(&b, &group, "three").await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let before = storage_hash(&client, &group).await;
    let mut crd = crds.get(&name).await.expect("get the CRD");
    for v in &mut crd.spec.versions {
        v.storage = v.name == "v1";
    }
    let crd = crds
        .replace(&name, &PostParams::default(), &crd)
        .await
        .expect("switch the storage version");
    assert_eq!(stored_versions(&crd), ["v1beta1", "v1"]);
    // Written once the API server stores in v1 (a real one applies the change a moment after
    // the write; discovery's storageVersionHash tells when): stored in v1 already.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while storage_hash(&client, &group).await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the storage version never changed in discovery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    create(&b, &group, "four").await;

    let done = storage_version::migrate(&client, &name).await.expect("migrate");
    assert_eq!(done.crd, name);
    assert_eq!(done.storage_version, "v1");
    assert_eq!(done.stored_versions_before, ["v1beta1", "v1"]);
    assert_eq!((done.objects, done.rewritten), (4, 3));

    let mut crd = crds.get(&name).await.expect("get the CRD");
    assert_eq!(stored_versions(&crd), ["v1"]);
    // The old version can go now.
    crd.spec.versions.retain(|v| v.name == "v1");
    crds.replace(&name, &PostParams::default(), &crd)
        .await
        .expect("remove v1beta1");
    assert_eq!(a.get("one").await.expect("still there").data["spec"]["size"], 1);

    // Nothing left to do: the objects are not read again.
    let again = storage_version::migrate(&client, &name).await.expect("migrate again");
    assert_eq!(again.stored_versions_before, ["v1"]);
    assert_eq!((again.objects, again.rewritten), (0, 0));
}

#[tokio::test]
async fn migrating_a_missing_crd_names_it() {
    let env = TestEnv::start().await.expect("test environment");
    let missing = "gadgets.nowhere.kdev.dev";
    match storage_version::migrate(&env.client(), missing).await {
        Err(Error::GetCrd { crd, source }) => {
            assert_eq!(crd, missing);
            assert!(kdev_core::object::is_not_found(&source), "{source}");
        }
        other => panic!("expected GetCrd, got {other:?}"),
    }
}
