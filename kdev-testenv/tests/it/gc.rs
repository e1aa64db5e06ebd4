//! Garbage collection through ownerReferences (background, foreground, orphan) and namespace deletion.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube_client::Api;
use kube_client::api::{DeleteParams, PostParams, PropagationPolicy};

use super::{HOLD, configmap, eventually, held, needs_controllers, release, setup};

async fn owner_and_child(api: &Api<ConfigMap>, block: bool) -> (ConfigMap, ConfigMap) {
    let owner = api
        .create(&PostParams::default(), &configmap("owner"))
        .await
        .expect("owner");
    let mut child = configmap("child");
    child.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        block_owner_deletion: Some(block),
        controller: Some(true),
    }]);
    let child = api.create(&PostParams::default(), &child).await.expect("child");
    (owner, child)
}

async fn gone(api: &Api<ConfigMap>, name: &str) {
    eventually(&format!("{name} to be deleted"), || async {
        api.get_opt(name).await.ok().filter(Option::is_none)
    })
    .await;
}

#[tokio::test]
async fn background_deletion_removes_the_dependents_after_the_owner() {
    let (env, ns) = setup().await;
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    owner_and_child(&api, false).await;
    api.delete("owner", &DeleteParams::background()).await.expect("delete");
    gone(&api, "owner").await;
    gone(&api, "child").await;
}

#[tokio::test]
async fn foreground_deletion_removes_the_dependents_before_the_owner() {
    let (env, ns) = setup().await;
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut hold = configmap("held-child");
    let (owner, _) = owner_and_child(&api, true).await;
    hold.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        block_owner_deletion: Some(true),
        controller: None,
    }]);
    hold.metadata.finalizers = Some(vec![HOLD.into()]);
    api.create(&PostParams::default(), &hold).await.expect("held child");
    api.delete("owner", &DeleteParams::foreground()).await.expect("delete");
    gone(&api, "child").await;
    // The held child blocks its owner until its own finalizer goes.
    let o = api.get("owner").await.expect("the owner waits");
    assert!(
        o.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    release(&api, "held-child").await;
    gone(&api, "held-child").await;
    gone(&api, "owner").await;
}

#[tokio::test]
async fn orphan_deletion_keeps_the_dependents_without_their_owner_reference() {
    let (env, ns) = setup().await;
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    owner_and_child(&api, false).await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("owner", &dp).await.expect("delete");
    gone(&api, "owner").await;
    let child = eventually("the owner reference to be removed", || async {
        api.get("child")
            .await
            .ok()
            .filter(|c| c.metadata.owner_references.as_ref().is_none_or(Vec::is_empty))
    })
    .await;
    assert!(child.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_then_the_namespace() {
    let (env, ns) = setup().await;
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let nss: Api<Namespace> = Api::all(env.client());
    nss.delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("the namespace to go", || async {
        nss.get_opt(&ns).await.ok().filter(Option::is_none)
    })
    .await;
    assert!(api.get_opt("a").await.map(|o| o.is_none()).unwrap_or(true));
}

#[tokio::test]
async fn a_terminating_namespace_refuses_new_content() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &held("held")).await.expect("create");
    let nss: Api<Namespace> = Api::all(env.client());
    nss.delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("the namespace to terminate", || async {
        let n = nss.get(&ns).await.ok()?;
        (n.status.and_then(|s| s.phase).as_deref() == Some("Terminating")).then_some(())
    })
    .await;
    match api.create(&PostParams::default(), &configmap("new")).await {
        Err(kube_client::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden")),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let controllers = env.has_controller_manager().await;
    if controllers {
        // The namespace controller says what keeps the namespace.
        let condition = |n: &Namespace, ty: &str| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == ty))
                .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()))
        };
        eventually("the namespace to say what remains", || async {
            let n = nss.get(&ns).await.ok()?;
            let remaining = condition(&n, "NamespaceContentRemaining")?;
            let finalizers = condition(&n, "NamespaceFinalizersRemaining")?;
            (remaining
                == (
                    "True".into(),
                    "Some resources are remaining: configmaps. has 1 resource instances".into(),
                )
                && finalizers
                    == (
                        "True".into(),
                        format!(
                            "Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances"
                        ),
                    ))
                .then_some(())
        })
        .await;
    }
    release(&api, "held").await;
    // Only the namespace controller finishes the deletion.
    if !needs_controllers(&env).await {
        return;
    }
    eventually("the namespace to go", || async {
        nss.get_opt(&ns).await.ok().filter(Option::is_none)
    })
    .await;
}

fn owned_by(name: &str, owners: &[(&str, &str)]) -> ConfigMap {
    let mut child = configmap(name);
    child.metadata.owner_references = Some(
        owners
            .iter()
            .map(|(owner, uid)| OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: (*owner).into(),
                uid: (*uid).into(),
                ..OwnerReference::default()
            })
            .collect(),
    );
    child
}

/// The garbage collector also acts on a dependent whose owner was never there, or is another
/// object of the same name (another uid): with no owner left it is deleted; with a live owner
/// as well it only loses the dangling reference.
#[tokio::test]
async fn a_dependent_whose_owner_is_already_gone_is_collected() {
    let (env, ns) = setup().await;
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let owner = api
        .create(&PostParams::default(), &configmap("owner"))
        .await
        .expect("owner");
    let uid = owner.metadata.uid.clone().expect("a uid");
    let ghost = "00000000-0000-4000-8000-000000000001";

    api.create(&PostParams::default(), &owned_by("orphaned", &[("owner", ghost)]))
        .await
        .expect("create with a stale owner uid");
    api.create(&PostParams::default(), &owned_by("never-owned", &[("nobody", ghost)]))
        .await
        .expect("create with an absent owner");
    api.create(
        &PostParams::default(),
        &owned_by("half", &[("owner", &uid), ("nobody", ghost)]),
    )
    .await
    .expect("create with one live owner");
    gone(&api, "orphaned").await;
    gone(&api, "never-owned").await;
    eventually("the dangling reference to go", || async {
        let half = api.get("half").await.ok()?;
        let refs = half.metadata.owner_references.unwrap_or_default();
        (refs.len() == 1 && refs[0].uid == uid).then_some(())
    })
    .await;
}
