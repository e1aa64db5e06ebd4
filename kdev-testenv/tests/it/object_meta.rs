//! Object metadata is validated as kube-apiserver validates it (`ValidateObjectMeta` and, for the
//! core and apps types, its stricter finalizer rule), with its field paths and wording.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube_client::Api;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{causes, configmap, held, release, setup};

fn with_finalizers(name: &str, finalizers: &[&str]) -> ConfigMap {
    let mut cm = configmap(name);
    cm.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    cm
}

/// A bad `generateName` is reported for itself and for the name made from it.
#[tokio::test]
async fn a_bad_generate_name_is_refused_with_the_name_made_from_it() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut cm = configmap("");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("Bad-".into());
    let refused = causes("an upper-case prefix", api.create(&PostParams::default(), &cm).await);
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["metadata.generateName", "metadata.name"], "{refused:?}");
    assert!(
        refused[0]
            .1
            .starts_with(r#"Invalid value: "Bad-": a lowercase RFC 1123 subdomain must consist of"#),
        "{}",
        refused[0].1
    );
    assert!(refused[1].1.starts_with(r#"Invalid value: "Bad-"#), "{}", refused[1].1);
}

/// On core and apps types a finalizer without a domain must be `kubernetes`, `orphan` or
/// `foregroundDeletion`; a Lease (validated by apimachinery alone) takes any qualified name.
#[tokio::test]
async fn a_finalizer_without_a_domain_must_be_a_standard_one_on_core_types() {
    let (env, ns) = setup().await;
    let maps: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let refused = causes(
        "a finalizer without a domain",
        maps.create(
            &PostParams::default(),
            &with_finalizers("f", &["kubernetes", "cleanup"]),
        )
        .await,
    );
    assert_eq!(
        refused,
        [(
            "metadata.finalizers[1]".to_string(),
            r#"Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified"#
                .to_string()
        )]
    );
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    lease.metadata.finalizers = Some(vec!["cleanup".into()]);
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("a Lease takes a finalizer without a domain");
    release(&leases, "l").await;
    // An Event written through events.k8s.io/v1 is held to the core rule
    // (`ValidateEventCreate`), one written through core/v1 is not.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client(), &ns);
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": { "name": "e", "finalizers": ["cleanup"] },
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "kdev.dev/test",
        "reportingInstance": "t", "action": "Reconciling", "reason": "Started", "type": "Normal",
        "regarding": { "apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns }
    }))
    .expect("an event");
    let refused = causes(
        "a finalizer without a domain on an events.k8s.io/v1 Event",
        events.create(&PostParams::default(), &event).await,
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "metadata.finalizers[0]");
}

#[tokio::test]
async fn orphan_and_foreground_deletion_cannot_both_be_set() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let refused = causes(
        "both garbage collection finalizers",
        api.create(
            &PostParams::default(),
            &with_finalizers("both", &["orphan", "foregroundDeletion"]),
        )
        .await,
    );
    assert_eq!(
        refused,
        [(
            "metadata.finalizers".to_string(),
            r#"Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan and foregroundDeletion cannot be both set"#
                .to_string()
        )]
    );
}

#[tokio::test]
async fn no_finalizer_may_be_added_to_an_object_being_deleted() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &held("going"))
        .await
        .expect("create");
    api.delete("going", &DeleteParams::default())
        .await
        .expect("mark for deletion");
    let more = json!({ "metadata": { "finalizers": [super::HOLD, "example.com/z", "example.com/a"] } });
    let refused = causes(
        "a new finalizer",
        api.patch("going", &PatchParams::default(), &Patch::Merge(&more)).await,
    );
    release(&api, "going").await;
    // kube-apiserver reports this twice (the generic update checks and the ConfigMap's own update
    // validation); `causes` keeps it once. The detail is Go's `%#v` of a `[]string`, which Go
    // formats itself, so it keeps Go syntax where a bad value would print as JSON.
    assert_eq!(
        refused,
        [(
            "metadata.finalizers".to_string(),
            r#"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/a", "example.com/z"}"#
                .to_string()
        )]
    );
}

/// A Namespace's `spec.finalizers` follow the same rule as built-in types' finalizers.
#[tokio::test]
async fn a_namespace_spec_finalizer_without_a_domain_must_be_a_standard_one() {
    let (env, ns) = setup().await;
    let api: Api<Namespace> = Api::all(env.client());
    let name = format!("{ns}-finalized");
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.clone());
    namespace.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
        finalizers: Some(vec!["kubernetes".into(), "cleanup".into()]),
    });
    let result = api.create(&PostParams::default(), &namespace).await;
    if result.is_ok() {
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
    assert_eq!(
        causes("a namespace finalizer without a domain", result),
        [(
            "spec.finalizers".to_string(),
            r#"Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified"#
                .to_string()
        )]
    );
}
