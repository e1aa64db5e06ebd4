//! Events are validated as kube-apiserver validates them: strictly when written through
//! events.k8s.io/v1, with the legacy rules only through core/v1.

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube_client::Api;
use kube_client::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{causes, setup};

fn event(name: &str, ns: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "kdev.dev/test",
        "reportingInstance": "test-1",
        "action": "Testing",
        "reason": "Tested",
        "type": "Normal",
        "note": "a note",
        "regarding": { "apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns },
    })
}

fn dynamic(mut v: Value) -> DynamicObject {
    v["apiVersion"] = json!("events.k8s.io/v1");
    v["kind"] = json!("Event");
    serde_json::from_value(v).expect("an object")
}

#[tokio::test]
async fn events_k8s_io_events_are_refused_as_kube_apiserver_refuses_them() {
    let (env, ns) = setup().await;
    let ar = ApiResource::erase::<Event>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ar);
    let pp = PostParams::default();
    api.create(&pp, &dynamic(event("valid", &ns)))
        .await
        .expect("a valid event");

    type Change = fn(&mut Value);
    // (what, change, expected field, expected message)
    let cases: Vec<(&str, Change, &str, &str)> = vec![
        (
            "no eventTime",
            |e| {
                e.as_object_mut().map(|m| m.remove("eventTime"));
            },
            "eventTime",
            "Required value",
        ),
        (
            "type Info",
            |e| e["type"] = json!("Info"),
            "type",
            "Invalid value: \"\": has invalid value: Info",
        ),
        (
            "no reportingController",
            |e| {
                e.as_object_mut().map(|m| m.remove("reportingController"));
            },
            "reportingController",
            "Required value",
        ),
        (
            "reportingController not a qualified name",
            |e| e["reportingController"] = json!("kdev test"),
            "reportingController",
            "",
        ),
        (
            "no reportingInstance",
            |e| {
                e.as_object_mut().map(|m| m.remove("reportingInstance"));
            },
            "reportingInstance",
            "Required value",
        ),
        (
            "reportingInstance of 129 bytes",
            |e| e["reportingInstance"] = json!("i".repeat(129)),
            "reportingInstance",
            "Invalid value: \"\": can have at most 128 characters",
        ),
        (
            "no action",
            |e| {
                e.as_object_mut().map(|m| m.remove("action"));
            },
            "action",
            "Required value",
        ),
        (
            "action of 129 bytes",
            |e| e["action"] = json!("a".repeat(129)),
            "action",
            "Invalid value: \"\": can have at most 128 characters",
        ),
        (
            "no reason",
            |e| {
                e.as_object_mut().map(|m| m.remove("reason"));
            },
            "reason",
            "Required value",
        ),
        (
            "reason of 65 two-byte characters",
            |e| e["reason"] = json!("é".repeat(65)),
            "reason",
            "Invalid value: \"\": can have at most 128 characters",
        ),
        (
            "note of 1025 bytes",
            |e| e["note"] = json!("n".repeat(1025)),
            "message",
            "Invalid value: \"\": can have at most 1024 characters",
        ),
        (
            "series of one",
            |e| e["series"] = json!({ "count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z" }),
            "series.count",
            "Invalid value: \"\": should be at least 2",
        ),
        (
            "series without lastObservedTime",
            |e| e["series"] = json!({ "count": 2 }),
            "series.lastObservedTime",
            "Required value",
        ),
        (
            "deprecatedCount",
            |e| e["deprecatedCount"] = json!(1),
            "count",
            "Invalid value: \"\": needs to be unset",
        ),
        (
            "deprecatedFirstTimestamp",
            |e| e["deprecatedFirstTimestamp"] = json!("2026-01-01T00:00:00Z"),
            "firstTimestamp",
            "Invalid value: \"\": needs to be unset",
        ),
        (
            "deprecatedLastTimestamp",
            |e| e["deprecatedLastTimestamp"] = json!("2026-01-01T00:00:00Z"),
            "lastTimestamp",
            "Invalid value: \"\": needs to be unset",
        ),
        (
            "deprecatedSource",
            |e| e["deprecatedSource"] = json!({ "component": "kubelet" }),
            "source",
            "Invalid value: \"\": needs to be unset",
        ),
    ];
    for (i, (what, change, field, message)) in cases.into_iter().enumerate() {
        let mut e = event(&format!("bad-{i}"), &ns);
        change(&mut e);
        let found = causes(what, api.create(&pp, &dynamic(e)).await);
        let hit = found
            .iter()
            .any(|(f, m)| f == field && (message.is_empty() || m == message));
        assert!(hit, "{what}: {found:?}");
    }

    // A note of 1024 bytes and a series of two are fine.
    let mut e = event("limits", &ns);
    e["note"] = json!("é".repeat(512));
    e["series"] = json!({ "count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z" });
    api.create(&pp, &dynamic(e)).await.expect("at the limits");
}

#[tokio::test]
async fn a_changed_series_is_validated_again() {
    let (env, ns) = setup().await;
    let api: Api<Event> = Api::namespaced(env.client(), &ns);
    let e: Event = serde_json::from_value(event("series", &ns)).expect("an event");
    api.create(&PostParams::default(), &e).await.expect("create");
    let pp = PatchParams::default();
    let bad = json!({ "series": { "count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z" } });
    let found = causes("series of one", api.patch("series", &pp, &Patch::Merge(&bad)).await);
    assert!(found.iter().any(|(f, _)| f == "series.count"), "{found:?}");
    let good = json!({ "series": { "count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z" } });
    let patched = api
        .patch("series", &pp, &Patch::Merge(&good))
        .await
        .expect("a series of two");
    assert_eq!(patched.series.map(|s| s.count), Some(2));
}

#[tokio::test]
async fn a_core_v1_event_with_an_event_time_names_its_reporter() {
    let (env, ns) = setup().await;
    let api: Api<CoreEvent> = Api::namespaced(env.client(), &ns);
    let pp = PostParams::default();
    let old_style: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "old" }, "involvedObject": { "kind": "Pod", "name": "p", "namespace": ns },
        "reason": "Tested", "message": "m", "type": "Odd", "count": 3,
    }))
    .expect("an event");
    api.create(&pp, &old_style)
        .await
        .expect("core/v1 checks only the namespace of an event without eventTime");
    let new_style: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "new" }, "involvedObject": { "kind": "Pod", "name": "p", "namespace": ns },
        "eventTime": "2026-01-01T00:00:00.000000Z", "message": "m", "type": "Normal",
    }))
    .expect("an event");
    let found: Vec<String> = causes("new style", api.create(&pp, &new_style).await)
        .into_iter()
        .filter(|(_, m)| m == "Required value")
        .map(|(f, _)| f)
        .collect();
    // core/v1 names the reporter by its own field (kube-apiserver since 1.25).
    assert_eq!(found, ["reportingComponent", "reportingInstance", "action", "reason"]);
}

/// An events.k8s.io/v1 Event's reason, note, type and reporter are fixed once written.
#[tokio::test]
async fn an_events_k8s_io_event_keeps_its_reason() {
    let (env, ns) = setup().await;
    let api: Api<Event> = Api::namespaced(env.client(), &ns);
    let e: Event = serde_json::from_value(event("fixed", &ns)).expect("an event");
    api.create(&PostParams::default(), &e).await.expect("create");
    let change = json!({ "reason": "Changed" });
    let found = causes(
        "a changed reason",
        api.patch("fixed", &PatchParams::default(), &Patch::Merge(&change))
            .await,
    );
    assert!(found.iter().any(|(f, _)| f == "reason"), "{found:?}");
}

/// An update through events.k8s.io/v1 is checked as `ValidateEventUpdate` checks it (the legacy
/// rules and the immutable fields), not as a create: an Event first written through core/v1
/// without the new fields can be labelled through events.k8s.io/v1.
#[tokio::test]
async fn a_core_v1_event_can_be_updated_through_events_k8s_io() {
    let (env, ns) = setup().await;
    let core: Api<CoreEvent> = Api::namespaced(env.client(), &ns);
    let old_style: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "old" }, "involvedObject": { "kind": "Pod", "name": "p", "namespace": ns },
        "reason": "Tested", "message": "m", "type": "Normal", "count": 1,
    }))
    .expect("an event");
    core.create(&PostParams::default(), &old_style)
        .await
        .expect("create through core/v1");
    let events: Api<Event> = Api::namespaced(env.client(), &ns);
    let labelled = json!({ "metadata": { "labels": { "seen": "yes" } } });
    let e = events
        .patch("old", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .expect("an update through events.k8s.io/v1");
    assert_eq!(
        e.metadata.labels.unwrap_or_default().get("seen").map(String::as_str),
        Some("yes")
    );
}
