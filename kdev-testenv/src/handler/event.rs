//! Validation of Events as kube-apiserver validates them through core/v1 and events.k8s.io/v1
//! (`pkg/apis/core/validation/events.go`: `ValidateEventCreate`, `ValidateEventUpdate`).
//!
//! kube-apiserver validates its internal (core) form whatever the API an Event came through,
//! so every field path names core/v1's field (`involvedObject`, `message`, `count`, ...), except
//! the reporter's: `reportingComponent` (core/v1's name) for a request through core/v1,
//! `reportingController` (the internal field's) through events.k8s.io/v1.

use serde_json::{Value, json};

use crate::schema::{Cause, go_json, go_json_struct, go_value};

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
/// In bytes, as Go's `len` counts them.
const NOTE_LIMIT: usize = 1024;

/// The causes of an Event written through core/v1 (`legacyValidateEvent` only, for backwards
/// compatibility). `event` is in core/v1 form.
pub(crate) fn validate_core(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    legacy(event, "reportingComponent", &mut causes);
    causes
}

/// The causes of an Event created through events.k8s.io/v1: `legacyValidateEvent` plus the
/// strict checks. `event` is in core/v1 form.
pub(crate) fn validate_v1_create(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    legacy(event, "reportingController", &mut causes);
    let name = event.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !name.is_empty() {
        for e in crate::meta::check_name(name, crate::meta::NameRule::Subdomain) {
            causes.push(Cause::invalid_str("metadata.name", name, &e));
        }
    }
    series(event, &mut causes);
    if is_zero(event.get("eventTime")) {
        causes.push(Cause::required("eventTime", ""));
    }
    let ty = str_of(event, "type");
    if ty != "Normal" && ty != "Warning" {
        causes.push(Cause::invalid_str("type", "", &format!("has invalid value: {ty}")));
    }
    for field in ["firstTimestamp", "lastTimestamp"] {
        if !is_zero(event.get(field)) {
            causes.push(Cause::invalid_str(field, "", "needs to be unset"));
        }
    }
    if event.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
        causes.push(Cause::invalid_str("count", "", "needs to be unset"));
    }
    let source = event.get("source");
    if ["component", "host"].iter().any(|k| {
        source
            .and_then(|s| s.get(*k))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    }) {
        causes.push(Cause::invalid_str("source", "", "needs to be unset"));
    }
    causes
}

/// What an update through events.k8s.io/v1 adds to `legacyValidateEvent` of the new Event
/// ([`validate_core`]): the series again when it changed, and the immutable fields. Both in
/// core/v1 form.
pub(crate) fn validate_v1_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if field(new, "series") != field(old, "series") {
        series(new, &mut causes);
    }
    const IMMUTABLE: &[(&str, &str)] = &[
        ("involvedObject", "involvedObject"),
        ("reason", "reason"),
        ("message", "message"),
        ("source", "source"),
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
        ("count", "count"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ];
    for (key, path) in IMMUTABLE {
        let (n, o) = (field(new, key), field(old, key));
        if n != o {
            let message = format!("Invalid value: {}: field is immutable", immutable_value(new, key));
            causes.push(Cause::with_message("FieldValueInvalid", path, message));
        }
    }
    causes
}

/// How a field error prints the new value of an immutable Event field: the internal
/// `core.Event`'s Go value as `json.Marshal` prints it (Kubernetes 1.34+). The internal structs
/// (`ObjectReference`, `EventSource`) have no json tags, so their Go field names are the keys;
/// timestamps print as their JSON (`null` when zero); strings and numbers as `%q` and `%v`.
fn immutable_value(event: &Value, key: &str) -> String {
    let got = event.get(key).filter(|v| !v.is_null());
    let text = |v: Option<&Value>, k: &str| {
        go_json(&Value::from(
            v.and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or(""),
        ))
    };
    match key {
        "involvedObject" | "related" => {
            // `Related` is a pointer: `null` when unset.
            if key == "related" && got.is_none() {
                return "null".to_owned();
            }
            let names = [
                ("Kind", "kind"),
                ("Namespace", "namespace"),
                ("Name", "name"),
                ("UID", "uid"),
                ("APIVersion", "apiVersion"),
                ("ResourceVersion", "resourceVersion"),
                ("FieldPath", "fieldPath"),
            ];
            let fields: Vec<(&str, String)> = names.iter().map(|(go, k)| (*go, text(got, k))).collect();
            go_json_struct(&fields)
        }
        "source" => go_json_struct(&[("Component", text(got, "component")), ("Host", text(got, "host"))]),
        "firstTimestamp" | "lastTimestamp" | "eventTime" => {
            if is_zero(got) {
                "null".to_owned()
            } else {
                go_json(got.unwrap_or(&Value::Null))
            }
        }
        "count" => got.and_then(Value::as_i64).unwrap_or(0).to_string(),
        _ => go_value(&Value::from(got.and_then(Value::as_str).unwrap_or(""))),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A field with Go's zero values read as unset: absent, null, `""`, `0`, `{}`.
fn field(v: &Value, key: &str) -> Value {
    match v.get(key) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Value::Null,
        Some(Value::Object(m)) if m.values().all(|x| x.is_null() || x == "" || x == 0) => Value::Null,
        Some(other) => other.clone(),
    }
}

/// A timestamp left at Go's zero time.
fn is_zero(t: Option<&Value>) -> bool {
    match t {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty() || s.starts_with("0001-01-01T00:00:00"),
        Some(_) => false,
    }
}

/// `validateV1EventSeries`.
fn series(event: &Value, causes: &mut Vec<Cause>) {
    let Some(series) = event.get("series").filter(|s| !s.is_null()) else {
        return;
    };
    if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        causes.push(Cause::invalid_str("series.count", "", "should be at least 2"));
    }
    if is_zero(series.get("lastObservedTime")) {
        causes.push(Cause::required("series.lastObservedTime", ""));
    }
}

/// `legacyValidateEvent`: the namespace agrees with the object's; an Event with an `eventTime`
/// names its reporter, action and reason within their limits. `reporter` is the reporter's field
/// name in the causes, which depends on the API of the request.
fn legacy(event: &Value, reporter: &str, causes: &mut Vec<Cause>) {
    check_namespace(event, causes);
    if is_zero(event.get("eventTime")) {
        return;
    }
    let controller = str_of(event, "reportingComponent");
    if controller.is_empty() {
        causes.push(Cause::required(reporter, ""));
    }
    for e in crate::selector::qualified_name(controller) {
        causes.push(Cause::invalid_str(reporter, controller, &e));
    }
    for (key, limit) in [
        ("reportingInstance", REPORTING_INSTANCE_LIMIT),
        ("action", ACTION_LIMIT),
        ("reason", REASON_LIMIT),
    ] {
        let value = str_of(event, key);
        if value.is_empty() {
            causes.push(Cause::required(key, ""));
        }
        if value.len() > limit {
            causes.push(Cause::invalid_str(
                key,
                "",
                &format!("can have at most {limit} characters"),
            ));
        }
    }
    if str_of(event, "message").len() > NOTE_LIMIT {
        causes.push(Cause::invalid_str(
            "message",
            "",
            &format!("can have at most {NOTE_LIMIT} characters"),
        ));
    }
}

/// An Event's namespace agrees with its object's. An old-style Event (no `eventTime`) about an
/// object without a namespace lives in `default`; a new-style one in `default` or `kube-system`.
fn check_namespace(event: &Value, causes: &mut Vec<Cause>) {
    let ns = event
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let object_ns = event
        .get("involvedObject")
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let agrees = match (!is_zero(event.get("eventTime")), object_ns) {
        (false, "") => ns.is_empty() || ns == "default",
        (false, object_ns) => ns == object_ns,
        (true, "") => ns == "default" || ns == "kube-system",
        (true, _) => true,
    };
    if !agrees {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            &json!(object_ns),
            "does not match event.namespace",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid events.k8s.io/v1 Event, in core/v1 form.
    fn event() -> Value {
        json!({
            "metadata": { "name": "web.1", "namespace": "team" },
            "involvedObject": { "kind": "Pod", "name": "web", "namespace": "team" },
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "type": "Normal",
            "reportingComponent": "example.com/web-controller",
            "reportingInstance": "web-controller-1",
            "action": "Scale",
            "reason": "Scaled",
            "message": "scaled to 3",
        })
    }

    fn fields(causes: Vec<Cause>) -> Vec<(String, String)> {
        causes.into_iter().map(|c| (c.field, c.message)).collect()
    }

    fn create(f: impl FnOnce(&mut Value)) -> Vec<(String, String)> {
        let mut e = event();
        f(&mut e);
        fields(validate_v1_create(&e))
    }

    #[test]
    fn an_event_agrees_with_its_object_on_the_namespace_as_kube_apiserver_checks() {
        // (event namespace, object namespace, new style with eventTime, accepted)
        let cases = [
            ("default", None, false, true),
            ("", None, false, true),
            ("team", None, false, false),
            ("team", Some("team"), false, true),
            ("team", Some("other"), false, false),
            ("default", None, true, true),
            ("kube-system", None, true, true),
            ("team", None, true, false),
            ("team", Some("team"), true, true),
            ("team", Some("other"), true, true),
        ];
        for (ns, object_ns, new_style, accepted) in cases {
            let mut event = json!({ "metadata": { "name": "e", "namespace": ns }, "involvedObject": { "name": "p" } });
            if let Some(object_ns) = object_ns {
                event["involvedObject"]["namespace"] = json!(object_ns);
            }
            if new_style {
                event["eventTime"] = json!("2026-01-01T00:00:00.000000Z");
            }
            let mut causes = Vec::new();
            check_namespace(&event, &mut causes);
            let case = format!("{ns:?} {object_ns:?} new_style={new_style}");
            assert_eq!(causes.is_empty(), accepted, "{case}");
            if let Some(c) = causes.first() {
                assert_eq!(c.field, "involvedObject.namespace", "{case}");
                let shown = json!(object_ns.unwrap_or(""));
                assert_eq!(
                    c.message,
                    format!("Invalid value: {shown}: does not match event.namespace")
                );
            }
        }
    }

    #[test]
    fn a_complete_event_is_valid_through_both_apis() {
        assert_eq!(create(|_| {}), vec![]);
        assert_eq!(fields(validate_core(&event())), vec![]);
    }

    #[test]
    fn a_core_event_without_event_time_needs_only_its_namespace() {
        let e = json!({ "metadata": { "name": "e", "namespace": "team" },
                        "involvedObject": { "namespace": "team" }, "count": 3, "type": "Odd" });
        assert_eq!(fields(validate_core(&e)), vec![]);
    }

    #[test]
    fn a_new_style_event_names_its_reporter_action_and_reason_through_either_api() {
        let mut e = event();
        for k in ["reportingComponent", "reportingInstance", "action", "reason"] {
            e.as_object_mut().map(|m| m.remove(k));
        }
        // The reporter's field is named as the request's API names it.
        let expected = |reporter: &str| {
            vec![
                (reporter.to_string(), "Required value".to_string()),
                ("reportingInstance".into(), "Required value".into()),
                ("action".into(), "Required value".into()),
                ("reason".into(), "Required value".into()),
            ]
        };
        // As kube-apiserver, an empty reporter is also not a qualified name.
        let required = |c: Vec<Cause>| -> Vec<(String, String)> {
            fields(c).into_iter().filter(|c| c.1 == "Required value").collect()
        };
        assert_eq!(required(validate_core(&e)), expected("reportingComponent"));
        assert_eq!(required(validate_v1_create(&e)), expected("reportingController"));
        assert_eq!(validate_core(&e).len(), 6);
        let c = create(|e| e["reportingComponent"] = json!("not a name"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "reportingController");
        assert!(
            c[0].1
                .starts_with("Invalid value: \"not a name\": name part must consist"),
            "{c:?}"
        );
    }

    #[test]
    fn limits_count_bytes() {
        for (key, path, limit) in [
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
            ("message", "message", 1024),
        ] {
            assert_eq!(create(|e| e[key] = json!("a".repeat(limit))), vec![], "{key}");
            // Half as many characters, but each is two bytes.
            let c = create(|e| e[key] = json!("é".repeat(limit / 2 + 1)));
            assert_eq!(
                c,
                vec![(
                    path.to_string(),
                    format!("Invalid value: \"\": can have at most {limit} characters")
                )],
                "{key}"
            );
        }
    }

    #[test]
    fn events_k8s_io_creates_need_event_time_type_and_no_deprecated_fields() {
        let c = create(|e| {
            e.as_object_mut().map(|m| m.remove("eventTime"));
        });
        assert_eq!(c, vec![("eventTime".into(), "Required value".into())]);
        let c = create(|e| e["type"] = json!("Info"));
        assert_eq!(
            c,
            vec![("type".into(), "Invalid value: \"\": has invalid value: Info".into())]
        );
        let c = create(|e| {
            e["firstTimestamp"] = json!("2026-01-01T00:00:00Z");
            e["lastTimestamp"] = json!("2026-01-01T00:00:00Z");
            e["count"] = json!(1);
            e["source"] = json!({ "component": "kubelet" });
        });
        let unset = |f: &str| (f.to_string(), "Invalid value: \"\": needs to be unset".to_string());
        assert_eq!(
            c,
            vec![
                unset("firstTimestamp"),
                unset("lastTimestamp"),
                unset("count"),
                unset("source")
            ]
        );
        let c = create(|e| e["metadata"]["name"] = json!("Web_1"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "metadata.name");
    }

    #[test]
    fn a_series_counts_at_least_two_and_has_a_last_observed_time() {
        let c = create(|e| e["series"] = json!({ "count": 1 }));
        assert_eq!(
            c,
            vec![
                (
                    "series.count".into(),
                    "Invalid value: \"\": should be at least 2".into()
                ),
                ("series.lastObservedTime".into(), "Required value".into()),
            ]
        );
        assert_eq!(
            create(|e| e["series"] = json!({ "count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z" })),
            vec![]
        );
    }

    #[test]
    fn an_update_keeps_the_immutable_fields_and_revalidates_a_changed_series() {
        let old = event();
        let mut new = old.clone();
        new["series"] = json!({ "count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z" });
        new["metadata"]["labels"] = json!({ "a": "b" });
        assert_eq!(fields(validate_v1_update(&new, &old)), vec![]);

        let mut bad = new.clone();
        bad["series"]["count"] = json!(1);
        assert_eq!(
            fields(validate_v1_update(&bad, &new)),
            vec![(
                "series.count".into(),
                "Invalid value: \"\": should be at least 2".into()
            )]
        );
        // An unchanged series is not checked again.
        assert_eq!(fields(validate_v1_update(&bad, &bad)), vec![]);

        for (key, path, value) in [
            ("message", "message", json!("another note")),
            ("reason", "reason", json!("Other")),
            ("type", "type", json!("Warning")),
            ("action", "action", json!("Other")),
            ("eventTime", "eventTime", json!("2026-01-02T00:00:00.000000Z")),
            ("reportingComponent", "reportingController", json!("example.com/other")),
            ("reportingInstance", "reportingInstance", json!("other")),
            ("related", "related", json!({ "kind": "Node", "name": "n" })),
            (
                "involvedObject",
                "involvedObject",
                json!({ "kind": "Pod", "name": "db", "namespace": "team" }),
            ),
        ] {
            let mut changed = new.clone();
            changed[key] = value;
            let c = fields(validate_v1_update(&changed, &new));
            assert_eq!(c.len(), 1, "{key}: {c:?}");
            assert_eq!(c[0].0, path);
            assert!(c[0].1.ends_with(": field is immutable"), "{c:?}");
        }
    }

    #[test]
    fn an_immutable_field_prints_its_new_value_as_kube_apiserver_1_34_does() {
        let old = event();
        let message_of = |key: &str, value: Value| {
            let mut changed = old.clone();
            changed[key] = value;
            fields(validate_v1_update(&changed, &old))[0].1.clone()
        };
        assert_eq!(
            message_of(
                "involvedObject",
                json!({ "kind": "Pod", "name": "db", "namespace": "team" })
            ),
            r#"Invalid value: {"Kind":"Pod","Namespace":"team","Name":"db","UID":"","APIVersion":"","ResourceVersion":"","FieldPath":""}: field is immutable"#
        );
        assert_eq!(
            message_of("source", json!({ "component": "kubelet" })),
            r#"Invalid value: {"Component":"kubelet","Host":""}: field is immutable"#
        );
        assert_eq!(
            message_of("eventTime", json!("2026-01-02T00:00:00.000000Z")),
            r#"Invalid value: "2026-01-02T00:00:00.000000Z": field is immutable"#
        );
        assert_eq!(
            message_of("eventTime", Value::Null),
            "Invalid value: null: field is immutable"
        );
        assert_eq!(message_of("count", json!(4)), "Invalid value: 4: field is immutable");
        assert_eq!(
            message_of("reason", json!("Other")),
            r#"Invalid value: "Other": field is immutable"#
        );
        let mut related = old.clone();
        related["related"] = json!({ "kind": "Node", "name": "n" });
        assert_eq!(
            fields(validate_v1_update(&old, &related))[0].1,
            "Invalid value: null: field is immutable"
        );
    }
}
