//! The generated CRD on an API server: the structural-schema check accepts it, and every
//! validation it carries rejects an object that breaks it with 422 (on the embedded server and,
//! with `KDEV_TEST_KUBECONFIG`, on a real cluster).
//!
//! The CRDs are cluster-wide with fixed names (the derive fixes the group), so runs against one
//! real cluster must not overlap; each test deletes its CRD even when it fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{DeleteParams, DynamicObject, PostParams};
use kube_core::crd::v1::CustomResourceExt;
use serde_json::{Value, json};

use crate::resource::WebApp;

async fn established(crds: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..300 {
        let crd = crds.get(name).await.expect("get the CRD");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never became Established");
}

fn object(name: &str, spec: Value) -> WebApp {
    let mut base = json!({ "image": "nginx:1.27", "ports": [{ "name": "http", "port": 80 }] });
    if let (Value::Object(base), Value::Object(spec)) = (&mut base, spec) {
        base.extend(spec);
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": base })).expect("a WebApp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_crd_is_accepted_and_each_validation_rejects_a_bad_object() {
    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = WebApp::crd();
    with_crd(&crds, &crd, async {
    let ns = env.namespace().await.expect("a namespace");
    let apps: Api<WebApp> = Api::namespaced(client.clone(), &ns);
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &WebApp::api_resource());
    let good: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "derive.kdev.dev/v1", "kind": "WebApp", "metadata": { "name": "good" },
        "spec": { "image": "nginx:1.27", "ports": [{ "name": "http", "port": 80 }], "ratio": 0.5, "step": 10, "target": 8080 }
    }))
    .expect("an object");
    dynamic
        .create(&PostParams::default(), &good)
        .await
        .expect("a valid object is accepted");
    let typed = apps.get("good").await.expect("read back as a WebApp");
    assert_eq!(
        typed.spec.replicas, 1,
        "the default from #[kdev(default = 1)] is applied"
    );
    apps.create(&PostParams::default(), &object("typed", json!({})))
        .await
        .expect("a typed object is accepted");

    let cases = vec![
        ("minimum", json!({ "replicas": -1 })),
        ("maximum", json!({ "replicas": 11 })),
        ("exclusive-minimum", json!({ "ratio": 0.0 })),
        ("exclusive-maximum", json!({ "ratio": 1.0 })),
        ("multiple-of", json!({ "step": 7 })),
        ("min-length", json!({ "image": "ab" })),
        ("max-length", json!({ "image": "a".repeat(65) })),
        ("pattern", json!({ "image": "NGINX!" })),
        ("enum", json!({ "tier": "huge" })),
        ("min-items", json!({ "ports": [] })),
        (
            "max-items",
            json!({ "ports": [
            { "name": "a", "port": 1 }, { "name": "b", "port": 2 }, { "name": "c", "port": 3 }, { "name": "d", "port": 4 }
        ] }),
        ),
        (
            "list-map-keys",
            json!({ "ports": [{ "name": "a", "port": 1 }, { "name": "a", "port": 2 }] }),
        ),
        ("list-set", json!({ "hosts": ["a.example", "a.example"] })),
        ("min-properties", json!({ "labels": {} })),
        ("max-properties", json!({ "labels": { "a": "1", "b": "2", "c": "3" } })),
        ("cel", json!({ "replicas": 6, "tier": "small" })),
    ];
    for (case, spec) in cases {
        let bad = object(&format!("bad-{case}"), json!({}));
        let mut wire = serde_json::to_value(&bad).expect("serialize");
        if let (Some(Value::Object(s)), Value::Object(spec)) = (wire.get_mut("spec"), spec) {
            s.extend(spec);
        }
        let raw: DynamicObject = serde_json::from_value(wire).expect("an object");
        let result = dynamic.create(&PostParams::default(), &raw).await;
        match result {
            Err(kube_client::Error::Api(status)) => assert_eq!(status.code, 422, "{case}: {status:?}"),
            other => panic!("{case}: expected 422, got {other:?}"),
        }
    }
    })
    .await;
}

/// Installs `crd` afresh, runs `body`, and deletes the CRD afterwards, also when `body` panics:
/// on a real cluster a CRD is cluster-wide and outlives the test's namespace.
async fn with_crd(
    crds: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
    body: impl Future<Output = ()>,
) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    remove(crds, &name).await;
    crds.create(&PostParams::default(), crd)
        .await
        .unwrap_or_else(|e| panic!("{name} is structural and accepted: {e}"));
    established(crds, &name).await;
    let result = AssertUnwindSafe(body).catch_unwind().await;
    remove(crds, &name).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Deletes the CRD `name` if it exists and waits until it is gone. On a real cluster that is not
/// at once: the `customresourcecleanup` finalizer first deletes every object of the CRD.
async fn remove(crds: &Api<CustomResourceDefinition>, name: &str) {
    let _ = crds.delete(name, &DeleteParams::default()).await;
    for _ in 0..600 {
        if crds.get_opt(name).await.expect("get the CRD").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the CRD {name} is still there 60 s after its deletion");
}

/// Creates `spec` merged over `base` and expects a 422 naming `expect` in its message.
async fn rejects(
    api: &Api<DynamicObject>,
    api_version: &str,
    kind: &str,
    case: &str,
    base: &Value,
    spec: Value,
    expect: &str,
) {
    let mut merged = base.clone();
    if let (Value::Object(m), Value::Object(spec)) = (&mut merged, spec) {
        for (k, v) in spec {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
    }
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": api_version, "kind": kind, "metadata": { "name": format!("bad-{case}") }, "spec": merged
    }))
    .expect("an object");
    match api.create(&PostParams::default(), &object).await {
        Err(kube_client::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{case}: {status:?}");
            assert!(
                status.message.contains(expect),
                "{case}: {expect:?} not in {:?}",
                status.message
            );
        }
        other => panic!("{case}: expected 422, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_markers_crd_is_accepted_and_each_marker_rejects_a_bad_object() {
    use crate::markers::Gadget;

    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Gadget::crd();
    with_crd(&crds, &crd, async {
        let ns = env.namespace().await.expect("a namespace");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &Gadget::api_resource());
        let base = json!({
            "mode": "fast", "owner": "me", "git": "https://example.com/g.git", "cpu": 1,
            "names": ["ab"], "since": "2024-01-01T00:00:00Z", "slug": "a-slug",
            "object": { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": { "a": "b" } },
            "target": { "port": 80, "bucketName": "bucket" },
            "mirrors": [{ "port": 81, "tags": ["a", "b"] }],
            "listeners": [{ "name": "http", "port": 80 }, { "name": "http", "protocol": "UDP", "port": 80 }],
            "pairs": [{ "a": "x", "b": "y" }, { "a": "y", "b": "x" }]
        });
        let good: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "derive.kdev.dev/v1", "kind": "Gadget", "metadata": { "name": "good" }, "spec": base
        }))
        .expect("an object");
        let created = api
            .create(&PostParams::default(), &good)
            .await
            .expect("a valid object is accepted (without the optional `notes`)");
        assert_eq!(
            created.data["spec"]["object"]["data"],
            json!({ "a": "b" }),
            "a schemaless embedded resource keeps its fields"
        );
        assert_eq!(
            created.data["spec"]["listeners"][0]["protocol"], "TCP",
            "a list-map key's default is applied"
        );
        // `optional` changes the schema only: this Rust type still needs `notes` to deserialize.
        let typed: Api<Gadget> = Api::namespaced(client.clone(), &ns);
        let mut with_notes = base.clone();
        with_notes["notes"] = json!(["typed"]);
        let gadget = Gadget::new("typed", serde_json::from_value(with_notes).expect("a GadgetSpec"));
        typed
            .create(&PostParams::default(), &gadget)
            .await
            .expect("a typed object is accepted");
        let read = typed.get("typed").await.expect("read back as a Gadget");
        assert_eq!((read.spec.target.port, read.spec.notes), (80, vec!["typed".to_owned()]));

        let v = "derive.kdev.dev/v1";
        let cases = [
            ("items-pattern", json!({ "names": ["AB"] }), "spec.names[0]"),
            ("items-max-length", json!({ "names": ["abcdef"] }), "spec.names[0]"),
            ("max-items", json!({ "names": ["a", "b", "c", "d"] }), "spec.names"),
            ("unique-items", json!({ "names": ["a", "a"] }), "spec.names[1]"),
            (
                "embedded-resource",
                json!({ "object": { "apiVersion": "v1", "metadata": { "name": "c" } } }),
                "spec.object.kind",
            ),
            ("enum-values", json!({ "mode": "medium" }), "spec.mode"),
            ("schema-type", json!({ "since": { "a": "b" } }), "spec.since"),
            ("required-option", json!({ "owner": null }), "spec.owner"),
            (
                "nested-min-length",
                json!({ "target": { "port": 80, "bucketName": "ab" } }),
                "spec.target.bucketName",
            ),
            ("nested-minimum", json!({ "target": { "port": 0 } }), "spec.target.port"),
            (
                "nested-in-list",
                json!({ "mirrors": [{ "port": 70000 }] }),
                "spec.mirrors[0].port",
            ),
            (
                "nested-items",
                json!({ "mirrors": [{ "port": 81, "tags": [""] }] }),
                "spec.mirrors[0].tags[0]",
            ),
            (
                "nested-set",
                json!({ "mirrors": [{ "port": 81, "tags": ["a", "a"] }] }),
                "spec.mirrors[0].tags[1]",
            ),
            (
                "list-map-duplicate-key",
                json!({ "listeners": [{ "name": "a", "port": 1 }, { "name": "a", "protocol": "TCP", "port": 2 }] }),
                "spec.listeners[1]",
            ),
            (
                "list-map-required-key",
                json!({ "listeners": [{ "port": 1 }] }),
                "spec.listeners[0].name",
            ),
            (
                "set-of-atomic-objects",
                json!({ "pairs": [{ "a": "x", "b": "y" }, { "a": "x", "b": "y" }] }),
                "spec.pairs[1]",
            ),
            ("type-level-pattern", json!({ "slug": "Not A Slug" }), "spec.slug"),
            ("type-level-max-length", json!({ "slug": "a".repeat(21) }), "spec.slug"),
        ];
        for (case, spec, expect) in cases {
            rejects(&api, v, "Gadget", case, &base, spec, expect).await;
        }
        let cel = [
            (
                "exactly-one-of-both",
                json!({ "image": "nginx" }),
                "exactly one of the fields in [git image] must be set",
            ),
            (
                "exactly-one-of-none",
                json!({ "git": null }),
                "exactly one of the fields in [git image] must be set",
            ),
            (
                "at-most-one-of",
                json!({ "debug": true, "release": true }),
                "at most one of the fields in [debug release] may be set",
            ),
            (
                "at-least-one-of",
                json!({ "cpu": null }),
                "at least one of the fields in [cpu memory] must be set",
            ),
            ("nested-rule", json!({ "target": { "port": 22 } }), "not the ssh port"),
            (
                "nested-at-most-one-of",
                json!({ "target": { "port": 80, "bucketName": "bucket", "path": "/p" } }),
                "at most one of the fields in [bucketName path] may be set",
            ),
            (
                "nested-rule-in-list",
                json!({ "mirrors": [{ "port": 22 }] }),
                "not the ssh port",
            ),
        ];
        for (case, spec, expect) in cel {
            rejects(&api, v, "Gadget", case, &base, spec, expect).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merged_versions_are_accepted_and_served_each_with_its_own_schema() {
    use crate::markers::versions::{WidgetV1, WidgetV1Spec, WidgetV2, WidgetV2Spec};

    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = kdev::crd::merge_versions([WidgetV1::crd(), WidgetV2::crd()]).expect("one kind, one storage version");
    let name = crd.metadata.name.clone().unwrap_or_default();
    with_crd(&crds, &crd, async {
        let stored = crds.get(&name).await.expect("the CRD");
        assert_eq!(
            stored.status.and_then(|s| s.stored_versions),
            Some(vec!["v2".to_owned()]),
            "objects are stored in the version marked `storage`"
        );
        let ns = env.namespace().await.expect("a namespace");
        let v2: Api<WidgetV2> = Api::namespaced(client.clone(), &ns);
        let raw1: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &WidgetV1::api_resource());
        let raw2: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &WidgetV2::api_resource());
        // The CRD has no conversion webhook (strategy `None`), so a field only one version declares
        // does not survive the other: kube-apiserver prunes every object converted between versions
        // by the target version's schema. v1's `size` is dropped on the way into v2 storage, and
        // v2's `width`/`height` on the way out as v1. Hence the untyped reads of the other version.
        let one = WidgetV1::new("one", WidgetV1Spec { size: 2 });
        let one: DynamicObject = serde_json::from_value(serde_json::to_value(&one).expect("encodes")).expect("decodes");
        let one = raw1.create(&PostParams::default(), &one).await.expect("v1 is served");
        assert_eq!(
            one.data.get("spec"),
            Some(&json!({})),
            "v1's spec.size is not in the storage version's schema"
        );
        v2.create(
            &PostParams::default(),
            &WidgetV2::new("two", WidgetV2Spec { width: 2, height: 3 }),
        )
        .await
        .expect("v2 is served");
        assert_eq!(
            v2.get("two").await.expect("two, as stored").spec,
            WidgetV2Spec { width: 2, height: 3 }
        );
        let two_as_v1 = raw1.get("two").await.expect("two, read as v1");
        assert_eq!(
            two_as_v1.types.as_ref().map(|t| t.api_version.as_str()),
            Some("derive.kdev.dev/v1")
        );
        assert_eq!(
            two_as_v1.data.get("spec"),
            Some(&json!({})),
            "v2's fields are not in v1's schema"
        );
        rejects(
            &raw1,
            "derive.kdev.dev/v1",
            "Widget",
            "v1-minimum",
            &json!({}),
            json!({ "size": 0 }),
            "spec.size",
        )
        .await;
        rejects(
            &raw2,
            "derive.kdev.dev/v2",
            "Widget",
            "v2-minimum",
            &json!({}),
            json!({ "width": 0 }),
            "spec.width",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_enums_keep_every_variant_through_a_write_and_a_read() {
    use crate::shapes::{GitSource, Pipeline, PipelineSpec, Probe, Source, Step};

    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    with_crd(&crds, &Pipeline::crd(), async {
        let ns = env.namespace().await.expect("a namespace");
        let api: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
        let git = GitSource {
            url: "https://example.com/r.git".into(),
            rev: Some("main".into()),
        };
        let image = Source::Image {
            image: "busybox".into(),
            size: 3,
        };
        let specs = [
            (Source::Git(git.clone()), Step::Fetch(git.clone())),
            (Source::Empty, Step::Nothing),
            (image.clone(), Step::Repeat(2)),
            (image, Step::Run("make".into())),
        ];
        for (i, (source, step)) in specs.into_iter().enumerate() {
            let priority = std::num::NonZeroI32::new(i32::try_from(i).expect("small") - 1);
            // (`timeout: None` would be written as `null`, which the server drops; the serde
            // default checked below has that null removed from the schema's `default`.)
            let probe = Probe {
                timeout: Some(5),
                period: 10,
            };
            let label = format!("l{i}");
            let spec = PipelineSpec {
                source,
                step,
                priority,
                probe,
                label,
            };
            let name = format!("p{i}");
            api.create(&PostParams::default(), &Pipeline::new(&name, spec.clone()))
                .await
                .unwrap_or_else(|e| panic!("{spec:?} is accepted: {e}"));
            let read = api.get(&name).await.expect("read back");
            assert_eq!(read.spec, spec, "nothing is pruned");
        }
        let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &Pipeline::api_resource());
        let base = json!({ "source": { "type": "Empty" }, "step": { "t": "Nothing" } });
        let bare: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "derive.kdev.dev/v1", "kind": "Pipeline", "metadata": { "name": "bare" }, "spec": base
        }))
        .expect("an object");
        let created = raw.create(&PostParams::default(), &bare).await.expect("accepted");
        assert_eq!(
            created.data["spec"]["probe"],
            json!({ "period": 0 }),
            "the serde default, without its null"
        );
        assert!(
            created.data["spec"].get("label").is_none(),
            "no default that breaks min_length"
        );
        rejects(
            &raw,
            "derive.kdev.dev/v1",
            "Pipeline",
            "unknown-tag",
            &base,
            json!({ "source": { "type": "Zip" } }),
            "spec.source.type",
        )
        .await;
        rejects(
            &raw,
            "derive.kdev.dev/v1",
            "Pipeline",
            "missing-field",
            &base,
            json!({ "source": { "type": "Git" } }),
            "spec.source",
        )
        .await;
        rejects(
            &raw,
            "derive.kdev.dev/v1",
            "Pipeline",
            "zero",
            &base,
            json!({ "priority": 0 }),
            "spec.priority",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_keep_every_entry_through_a_write_and_a_read() {
    use crate::shapes::{Catalog, CatalogSpec, MapOrSource, Owner};

    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    with_crd(&crds, &Catalog::crd(), async {
        let ns = env.namespace().await.expect("a namespace");
        let api: Api<Catalog> = Api::namespaced(client.clone(), &ns);
        let spec = CatalogSpec {
            ports: [(80, "http".to_owned()), (443, "https".to_owned())].into(),
            owner: Owner {
                name: "me".into(),
                extra: [("team".to_owned(), json!("a")), ("size".to_owned(), json!({ "n": 1 }))].into(),
            },
            either: MapOrSource::Map([("a".to_owned(), "b".to_owned())].into()),
        };
        api.create(&PostParams::default(), &Catalog::new("c", spec.clone()))
            .await
            .expect("accepted");
        assert_eq!(api.get("c").await.expect("read back").spec, spec, "nothing is pruned");
    })
    .await;
}
