//! Object semantics: create, get, update, delete; names, uids, resourceVersions, generations,
//! optimistic concurrency, the status split, finalizers, subresources.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube_client::Api;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{HOLD, causes, code, configmap, eventually, held, needs_controllers, release, setup};

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                          "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } }
        }
    }))
    .expect("a valid deployment")
}

#[tokio::test]
async fn create_sets_uid_creation_timestamp_and_resource_version() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let cm = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    assert!(cm.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(cm.metadata.creation_timestamp.is_some());
    assert!(cm.metadata.resource_version.is_some());
    assert_eq!(cm.metadata.namespace.as_deref(), Some(ns.as_str()));
    let got = api.get("a").await.expect("get");
    assert_eq!(got.metadata.uid, cm.metadata.uid);
    assert_eq!(got.data, cm.data);
}

#[tokio::test]
async fn resource_versions_increase_with_every_write() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let a = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create a");
    let b = api
        .create(&PostParams::default(), &configmap("b"))
        .await
        .expect("create b");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(rv(&b) > rv(&a), "{} then {}", rv(&a), rv(&b));
}

#[tokio::test]
async fn creating_an_existing_name_is_already_exists() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let err = api.create(&PostParams::default(), &configmap("a")).await;
    match err {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
            assert_eq!(s.message, "configmaps \"a\" already exists");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

#[tokio::test]
async fn getting_a_missing_object_is_not_found() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    match api.get("missing").await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "configmaps \"missing\" not found");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut cm = configmap("");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("job-".into());
    let a = api.create(&PostParams::default(), &cm).await.expect("create a");
    let b = api.create(&PostParams::default(), &cm).await.expect("create b");
    let (a, b) = (a.metadata.name.unwrap_or_default(), b.metadata.name.unwrap_or_default());
    assert!(a.starts_with("job-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn an_invalid_name_is_rejected_with_a_cause() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    match api.create(&PostParams::default(), &configmap("Not_Valid")).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message
                    .starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value"),
                "{}",
                s.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found() {
    let (env, _ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), "kdev-no-such-namespace");
    assert_eq!(code(api.create(&PostParams::default(), &configmap("a")).await), 404);
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_conflicts() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let first = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let mut second = first.clone();
    second.data = Some([("key".to_string(), "two".to_string())].into());
    api.replace("a", &PostParams::default(), &second)
        .await
        .expect("first update");
    let mut stale = first.clone();
    stale.data = Some([("key".to_string(), "three".to_string())].into());
    match api.replace("a", &PostParams::default(), &stale).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("the object has been modified"), "{}", s.message);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Most kinds take a PUT without a resourceVersion as "replace whatever is there"; a Lease (as
/// custom resources, CRDs and webhook configurations) insists on the version it replaces.
#[tokio::test]
async fn an_update_without_a_resource_version_is_refused_for_a_lease_but_not_a_config_map() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    let (env, ns) = setup().await;
    let maps: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    maps.create(&PostParams::default(), &configmap("any"))
        .await
        .expect("create");
    let mut blind = configmap("any");
    blind.data = Some([("key".to_string(), "blind".to_string())].into());
    let replaced = maps
        .replace("any", &PostParams::default(), &blind)
        .await
        .expect("a ConfigMap replaced without a resourceVersion");
    assert_eq!(replaced.data, blind.data);

    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let mut lease = Lease::default();
    lease.metadata.name = Some("held".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("a".into()),
        ..LeaseSpec::default()
    });
    leases.create(&PostParams::default(), &lease).await.expect("create");
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("b".into()),
        ..LeaseSpec::default()
    });
    match leases.replace("held", &PostParams::default(), &lease).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
            assert!(s.message.contains("metadata.resourceVersion"), "{}", s.message);
            assert!(s.message.contains("must be specified for an update"), "{}", s.message);
            // kube-apiserver names the resource here, not the kind.
            assert!(
                s.message
                    .starts_with(r#"leases.coordination.k8s.io "held" is invalid: "#),
                "{}",
                s.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // A missing Lease is created by the PUT (its strategy's `AllowCreateOnUpdate`), before any
    // resourceVersion is asked for.
    let created = leases
        .replace("missing", &PostParams::default(), &{
            let mut l = lease.clone();
            l.metadata.name = Some("missing".into());
            l
        })
        .await
        .expect("a missing Lease created by a PUT");
    assert!(created.metadata.uid.is_some());
    // The body's name is checked against the URL's first, missing object or not.
    match leases.replace("missing", &PostParams::default(), &lease).await {
        Err(kube_client::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (
                400,
                "the name of the object (held) does not match the name on the URL (missing)"
            )
        ),
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let cm = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let same = api.replace("a", &PostParams::default(), &cm).await.expect("update");
    assert_eq!(same.metadata.resource_version, cm.metadata.resource_version);
}

#[tokio::test]
async fn generation_counts_spec_changes_only() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let d = api
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "tier": "a" } } })),
        )
        .await
        .expect("label");
    assert_eq!(labelled.metadata.generation, Some(1));
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .expect("scale");
    assert_eq!(scaled.metadata.generation, Some(2));
}

#[tokio::test]
async fn the_main_endpoint_ignores_status_and_the_status_endpoint_ignores_the_rest() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create");
    let via_main = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 }, "status": { "replicas": 7 } })),
        )
        .await
        .expect("patch main");
    assert_eq!(via_main.spec.replicas, Some(2));
    assert_ne!(via_main.status.as_ref().and_then(|s| s.replicas), Some(7));
    let via_status = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 }, "status": { "replicas": 7 } })),
        )
        .await
        .expect("patch status");
    assert_eq!(via_status.spec.replicas, Some(2));
    assert_eq!(via_status.status.as_ref().and_then(|s| s.replicas), Some(7));
}

#[tokio::test]
async fn the_scale_subresource_reads_and_writes_replicas() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create");
    let scale = api.get_scale("web").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
    )
    .await
    .expect("patch scale");
    let d = api.get("web").await.expect("get");
    assert_eq!(d.spec.replicas, Some(4));
}

#[tokio::test]
async fn a_new_pod_is_pending_until_bound() {
    let (env, ns) = setup().await;
    let api: Api<Pod> = Api::namespaced(env.client(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
        "spec": { "schedulerName": "kdev-test-scheduler", "containers": [{ "name": "c", "image": "busybox:1.36" }] }
    }))
    .expect("a valid pod");
    let created = api.create(&PostParams::default(), &pod).await.expect("create");
    assert_eq!(created.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert_eq!(created.spec.and_then(|s| s.node_name), None);
}

#[tokio::test]
async fn an_object_with_a_finalizer_stays_until_the_finalizer_is_removed() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &held("held")).await.expect("create");
    api.delete("held", &DeleteParams::default()).await.expect("delete");
    let held = api.get("held").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    let adding = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["kdev.dev/hold", "kdev.dev/more"] } })),
        )
        .await;
    assert_eq!(code(adding), 422, "no new finalizers while deleting");
    release(&api, "held").await;
    eventually("the object to go", || async {
        api.get_opt("held").await.ok().filter(Option::is_none)
    })
    .await;
}

/// Marking an object for deletion bumps its generation (kube-apiserver's `markAsDeleting`), so
/// a controller that only reacts to generation changes still sees the deletion begin.
#[tokio::test]
async fn marking_an_object_for_deletion_bumps_its_generation() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let mut d = deployment("leaving", 1);
    d.metadata.finalizers = Some(vec![HOLD.into()]);
    let created = api.create(&PostParams::default(), &d).await.expect("create");
    let before = created.metadata.generation.expect("a generation");
    api.delete("leaving", &DeleteParams::default()).await.expect("delete");
    let marked = api.get("leaving").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.generation, Some(before + 1));
    release(&api, "leaving").await;
}

#[tokio::test]
async fn delete_preconditions_guard_against_deleting_a_changed_object() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let cm = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let wrong = DeleteParams {
        preconditions: Some(kube_client::api::Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(code(api.delete("a", &wrong).await), 409);
    let right = DeleteParams {
        preconditions: Some(kube_client::api::Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    api.delete("a", &right).await.expect("delete");
    assert_eq!(code(api.get("a").await), 404);
}

#[tokio::test]
async fn a_new_namespace_gets_a_default_service_account() {
    let (env, ns) = setup().await;
    // On a bare kube-apiserver, TestEnv::namespace makes the account itself.
    if !needs_controllers(&env).await {
        return;
    }
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(env.client(), &ns);
    eventually("the default service account", || async {
        api.get_opt("default").await.ok().flatten()
    })
    .await;
    let nss: Api<Namespace> = Api::all(env.client());
    let n = nss.get(&ns).await.expect("namespace");
    assert_eq!(n.status.and_then(|s| s.phase).as_deref(), Some("Active"));
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &configmap("dry"),
        )
        .await
        .expect("dry run");
    assert_eq!(code(api.get("dry").await), 404);
    // Never stored, so no resourceVersion; the uid and creation time are filled in.
    assert_eq!(dry.metadata.resource_version, None);
    assert!(dry.metadata.uid.is_some() && dry.metadata.creation_timestamp.is_some());
}

/// Owner references are validated as kube-apiserver does: each needs an apiVersion with a
/// version, a kind, a name and a uid, and only one may be the controller.
#[tokio::test]
async fn owner_references_need_their_fields_and_one_controller_at_most() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let owner = |name: &str, uid: &str, controller: bool| json!({ "apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid, "controller": controller });
    let with_owners = |name: &str, owners: serde_json::Value| -> ConfigMap {
        let mut cm = configmap(name);
        cm.metadata.owner_references = Some(serde_json::from_value(owners).expect("owner references"));
        cm
    };
    let no_uid = api
        .create(
            &PostParams::default(),
            &with_owners("a", json!([owner("o", "", false)])),
        )
        .await;
    match no_uid {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("uid must not be empty"), "{}", s.message);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let two = api
        .create(
            &PostParams::default(),
            &with_owners("b", json!([owner("o1", "u1", true), owner("o2", "u2", true)])),
        )
        .await;
    match two {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains("Only one reference can have Controller set to true"),
                "{}",
                s.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    api.create(
        &PostParams::default(),
        &with_owners("c", json!([owner("o1", "u1", true), owner("o2", "u2", false)])),
    )
    .await
    .expect("one controller and a plain owner are fine");
}

#[tokio::test]
async fn an_annotation_change_bumps_a_deployments_generation() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create");
    let annotated = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "kdev.dev/note": "a" } } })),
        )
        .await
        .expect("annotate");
    // Annotations are copied to the ReplicaSets, so the deployment strategy counts them.
    assert_eq!(annotated.metadata.generation, Some(2));
}

#[tokio::test]
async fn a_generated_name_fits_in_63_characters() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let prefix = "p".repeat(60);
    let mut cm = configmap("");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some(prefix.clone());
    let made = api.create(&PostParams::default(), &cm).await.expect("create");
    let name = made.metadata.name.unwrap_or_default();
    assert_eq!(name.len(), 63, "{name}");
    assert!(name.starts_with(&prefix[..58]), "{name}");
}

#[tokio::test]
async fn a_stale_copy_of_a_re_created_object_does_not_overwrite_it() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut old = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    api.delete("a", &DeleteParams::default()).await.expect("delete");
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("re-create");
    // A ConfigMap may be replaced without a resourceVersion; its uid is still a precondition.
    old.metadata.resource_version = None;
    assert_eq!(code(api.replace("a", &PostParams::default(), &old).await), 409);
    // A patch cannot change the uid at all.
    let patch = json!({ "metadata": { "uid": old.metadata.uid } });
    assert_eq!(
        code(api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await),
        422
    );
}

#[tokio::test]
async fn server_side_apply_creates_only_the_object_the_url_names() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let applied = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "b" } });
    assert_eq!(
        code(
            api.patch("a", &PatchParams::apply("kdev-test"), &Patch::Apply(&applied))
                .await
        ),
        400
    );
    assert_eq!(code(api.get("b").await), 404);
    assert_eq!(code(api.get("a").await), 404);
}

#[tokio::test]
async fn a_dry_run_other_than_all_is_refused() {
    let (env, ns) = setup().await;
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps?dryRun=true"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&configmap("dry")).expect("json"))
        .expect("a request");
    match env.client().request_text(req).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("dryRun"), "{}", s.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    assert_eq!(code(api.get("dry").await), 404, "nothing was created");
}

#[tokio::test]
async fn a_status_write_of_a_built_in_type_keeps_its_metadata_changes_but_reset_ones() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create");
    let d = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "kdev.dev/seen": "yes" }, "labels": { "tier": "x" } } }),
            ),
        )
        .await
        .expect("patch status");
    // The deployment status strategy resets the spec and the labels, nothing else.
    let annotations = d.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("kdev.dev/seen").map(String::as_str), Some("yes"));
    assert!(!d.metadata.labels.unwrap_or_default().contains_key("tier"));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "a status write never bumps the generation"
    );
}

#[tokio::test]
async fn creating_the_name_of_an_object_being_deleted_says_so() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &held("held")).await.expect("create");
    api.delete("held", &DeleteParams::default())
        .await
        .expect("mark for deletion");
    match api.create(&PostParams::default(), &configmap("held")).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
            assert!(s.message.starts_with("object is being deleted: "), "{}", s.message);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    release(&api, "held").await;
}

/// An update cannot start a deletion: a deletionTimestamp set on a live object is refused
/// (`ValidateObjectMetaUpdate`), and labels, annotations and finalizers are checked as
/// apimachinery checks them.
#[tokio::test]
async fn metadata_updates_are_validated_as_apimachinery_validates_them() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("m"))
        .await
        .expect("create");
    let patch = |body: serde_json::Value| {
        let api = api.clone();
        async move { api.patch("m", &PatchParams::default(), &Patch::Merge(body)).await }
    };
    let refused = causes(
        "a deletionTimestamp",
        patch(json!({ "metadata": { "deletionTimestamp": "2030-01-01T00:00:00Z" } })).await,
    );
    assert_eq!(
        refused,
        [(
            "metadata.deletionTimestamp".to_string(),
            r#"Invalid value: "2030-01-01T00:00:00Z": field is immutable"#.to_string()
        )]
    );
    let long = "v".repeat(64);
    let refused = causes(
        "a long label value",
        patch(json!({ "metadata": { "labels": { "a": long } } })).await,
    );
    assert_eq!(
        refused,
        [(
            "metadata.labels".to_string(),
            format!("Invalid value: {long:?}: must be no more than 63 characters")
        )]
    );
    let refused = causes(
        "a finalizer that is not a qualified name",
        patch(json!({ "metadata": { "finalizers": ["example.com/ok", "not ok"] } })).await,
    );
    // apimachinery's qualified-name check, then (a ConfigMap being a core type) the core rule
    // for a finalizer without a domain, at its index. kube-apiserver reports each of them up to
    // three times on an update; these are the distinct ones `causes` keeps.
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, "metadata.finalizers");
    assert!(
        refused[0]
            .1
            .starts_with(r#"Invalid value: "not ok": name part must consist"#),
        "{}",
        refused[0].1
    );
    assert_eq!(refused[1].0, "metadata.finalizers[1]");
}
