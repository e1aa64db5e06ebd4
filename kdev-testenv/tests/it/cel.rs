//! CEL validation rules (`x-kubernetes-validations`): rules at the root of spec, on nested
//! objects and on list items; transition rules with `oldSelf` and `optionalOldSelf`;
//! `messageExpression`, `reason` and `fieldPath`; the status subresource; and CRDs whose rules do
//! not compile. Each test asserts kube-apiserver's status, reason, causes and message.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube_client::core::response::Status;
use kube_client::{Api, Client};
use serde_json::{Value, json};

use super::{setup, unique_group};

/// The `openAPIV3Schema` of the gadgets every test installs.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    { "rule": "has(self.a) != has(self.b)", "message": "must have exactly one of a or b" }
                ],
                "properties": {
                    "a": { "type": "string", "maxLength": 64 },
                    "b": { "type": "string", "maxLength": 64 },
                    "name": { "type": "string", "maxLength": 64,
                        "x-kubernetes-validations": [{ "rule": "self == oldSelf", "message": "name is immutable" }] },
                    "version": { "type": "string", "maxLength": 64,
                        "x-kubernetes-validations": [{
                            "rule": "oldSelf.hasValue() ? self == oldSelf.value() : self.startsWith('v')",
                            "optionalOldSelf": true,
                            "message": "must start with v and never change" }] },
                    "range": {
                        "type": "object",
                        "properties": { "min": { "type": "integer" }, "max": { "type": "integer" } },
                        "x-kubernetes-validations": [{
                            "rule": "self.min <= self.max",
                            "messageExpression": "'min ' + string(self.min) + ' is greater than max ' + string(self.max)",
                            "fieldPath": ".max",
                            "reason": "FieldValueForbidden" }]
                    },
                    "ports": {
                        "type": "array", "maxItems": 10,
                        "items": { "type": "integer",
                            "x-kubernetes-validations": [{ "rule": "self > 0 && self < 65536", "message": "must be a valid port" }] }
                    }
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "phase": { "type": "string", "maxLength": 64,
                        "x-kubernetes-validations": [{ "rule": "self != 'Broken'", "message": "phase may not be Broken" }] }
                }
            }
        }
    })
}

fn crd(group: &str, schema: Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("gadgets.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList" },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": schema }, "subresources": { "status": {} } }]
        }
    }))
    .expect("a valid CRD")
}

/// Installs the gadgets CRD and returns the gadgets of namespace `ns`. On a real cluster `env`
/// deletes the CRD when dropped, also after a failure.
async fn install(env: &kdev_testenv::TestEnv, group: &str, ns: &str) -> Api<DynamicObject> {
    env.install_crd(&crd(group, schema())).await.expect("install the CRD");
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Gadget"), "gadgets");
    Api::namespaced_with(env.client(), ns, &ar)
}

async fn uninstall(client: &Client, group: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(&format!("gadgets.{group}"), &DeleteParams::default()).await;
}

fn gadget(group: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({ "apiVersion": format!("{group}/v1"), "kind": "Gadget",
        "metadata": { "name": name }, "spec": spec }))
    .expect("a valid gadget")
}

/// The Invalid status of a rejected write.
fn invalid<T: std::fmt::Debug>(r: Result<T, kube_client::Error>) -> Box<Status> {
    match r {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
            s
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

/// Asserts a status has exactly one cause, and that its message is the apiserver's rendering.
///
/// The value in front of a rule's message is that of kube-apiserver 1.35 and later (the
/// offending value, none for an object); earlier servers print the schema type instead
/// (`Invalid value: "object": …`). On a real cluster older than 1.35 the value is left out of
/// the comparison; the embedded server and newer clusters must match exactly.
async fn assert_one_cause(
    env: &kdev_testenv::TestEnv,
    s: &Status,
    group: &str,
    name: &str,
    (reason, field, message): (&str, &str, &str),
) {
    let causes = &s.details.as_ref().expect("details").causes;
    assert_eq!(causes.len(), 1, "{causes:?}");
    let older_rendering = !env.is_embedded() && {
        let version = env.client().apiserver_version().await.expect("the server's version");
        version
            .minor
            .trim_end_matches('+')
            .parse::<u32>()
            .is_ok_and(|minor| minor < 35)
    };
    let shown = |m: &str| {
        if older_rendering {
            without_invalid_value(m).to_string()
        } else {
            m.to_string()
        }
    };
    assert_eq!(
        (
            causes[0].reason.as_str(),
            causes[0].field.as_str(),
            shown(&causes[0].message)
        ),
        (reason, field, shown(message))
    );
    let prefix = format!("Gadget.{group} \"{name}\" is invalid: {field}: ");
    let rest = s
        .message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{:?}", s.message));
    assert_eq!(shown(rest), shown(message));
}

/// A field error's message without its leading `Invalid value: <value>: `.
fn without_invalid_value(message: &str) -> &str {
    let Some(rest) = message.strip_prefix("Invalid value: ") else {
        return message;
    };
    let value_end = if let Some(quoted) = rest.strip_prefix('"') {
        // A JSON-quoted value: up to the closing quote that is not escaped.
        let mut escaped = false;
        quoted
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .map(|(i, _)| i + 2)
    } else {
        rest.find(": ").filter(|&i| rest[..i].parse::<f64>().is_ok())
    };
    match value_end.and_then(|i| rest[i..].strip_prefix(": ")) {
        Some(tail) => tail,
        None => rest,
    }
}

#[test]
fn the_value_before_a_rule_message_is_left_out_by_its_kind() {
    assert_eq!(without_invalid_value("Invalid value: must be set"), "must be set");
    assert_eq!(
        without_invalid_value("Invalid value: \"object\": must be set"),
        "must be set"
    );
    assert_eq!(
        without_invalid_value("Invalid value: \"a\\\": b\": must be set"),
        "must be set"
    );
    assert_eq!(
        without_invalid_value("Invalid value: 70000: must be a port"),
        "must be a port"
    );
    assert_eq!(without_invalid_value("Required value"), "Required value");
}

#[tokio::test]
async fn a_rule_at_the_root_of_spec_rejects_objects_that_break_it() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    let s = invalid(
        api.create(
            &PostParams::default(),
            &gadget(&group, "both", json!({ "a": "x", "b": "y" })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "both",
        (
            "FieldValueInvalid",
            "spec",
            "Invalid value: must have exactly one of a or b",
        ),
    )
    .await;
    invalid(
        api.create(&PostParams::default(), &gadget(&group, "none", json!({})))
            .await,
    );
    api.create(&PostParams::default(), &gadget(&group, "one", json!({ "a": "x" })))
        .await
        .expect("an object that keeps the rule is created");
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn rules_on_nested_objects_use_message_expression_reason_and_field_path() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    let s = invalid(
        api.create(
            &PostParams::default(),
            &gadget(&group, "r", json!({ "a": "x", "range": { "min": 5, "max": 1 } })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "r",
        (
            "FieldValueForbidden",
            "spec.range.max",
            "Forbidden: min 5 is greater than max 1",
        ),
    )
    .await;
    api.create(
        &PostParams::default(),
        &gadget(&group, "ok", json!({ "a": "x", "range": { "min": 1, "max": 5 } })),
    )
    .await
    .expect("a valid range");
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn rules_on_list_items_name_the_item() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    let s = invalid(
        api.create(
            &PostParams::default(),
            &gadget(&group, "p", json!({ "a": "x", "ports": [80, 70000] })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "p",
        (
            "FieldValueInvalid",
            "spec.ports[1]",
            "Invalid value: 70000: must be a valid port",
        ),
    )
    .await;
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn transition_rules_keep_a_field_immutable() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    let created = api
        .create(
            &PostParams::default(),
            &gadget(&group, "imm", json!({ "a": "x", "name": "first" })),
        )
        .await
        .expect("a transition rule is not evaluated on create");
    let mut changed = created.clone();
    changed.data["spec"]["name"] = json!("second");
    let s = invalid(api.replace("imm", &PostParams::default(), &changed).await);
    assert_one_cause(
        &env,
        &s,
        &group,
        "imm",
        (
            "FieldValueInvalid",
            "spec.name",
            "Invalid value: \"second\": name is immutable",
        ),
    )
    .await;
    let s = invalid(
        api.patch(
            "imm",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "name": "third" } })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "imm",
        (
            "FieldValueInvalid",
            "spec.name",
            "Invalid value: \"third\": name is immutable",
        ),
    )
    .await;
    let mut other = created.clone();
    other.data["spec"]["a"] = json!("y");
    api.replace("imm", &PostParams::default(), &other)
        .await
        .expect("an update that keeps the name");
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn optional_old_self_rules_run_on_create_too() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    let s = invalid(
        api.create(
            &PostParams::default(),
            &gadget(&group, "o", json!({ "a": "x", "version": "x1" })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "o",
        (
            "FieldValueInvalid",
            "spec.version",
            "Invalid value: \"x1\": must start with v and never change",
        ),
    )
    .await;
    api.create(
        &PostParams::default(),
        &gadget(&group, "o", json!({ "a": "x", "version": "v1" })),
    )
    .await
    .expect("create");
    let s = invalid(
        api.patch(
            "o",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "version": "v2" } })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "o",
        (
            "FieldValueInvalid",
            "spec.version",
            "Invalid value: \"v2\": must start with v and never change",
        ),
    )
    .await;
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn status_writes_are_checked_against_rules() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let api = install(&env, &group, &ns).await;
    api.create(&PostParams::default(), &gadget(&group, "s", json!({ "a": "x" })))
        .await
        .expect("create");
    let s = invalid(
        api.patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Broken" } })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "s",
        (
            "FieldValueInvalid",
            "status.phase",
            "Invalid value: \"Broken\": phase may not be Broken",
        ),
    )
    .await;
    api.patch_status(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Ready" } })),
    )
    .await
    .expect("a status that keeps the rule");
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn a_crd_whose_rule_does_not_compile_is_rejected() {
    let (env, _ns) = setup().await;
    let group = unique_group("c");
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let mut bad = schema();
    bad["properties"]["spec"]["x-kubernetes-validations"] = json!([{ "rule": "self.a ==" }]);
    let result = crds.create(&PostParams::default(), &crd(&group, bad)).await;
    if result.is_ok() {
        uninstall(&env.client(), &group).await;
    }
    let s = invalid(result);
    let causes = &s.details.as_ref().expect("details").causes;
    let field = "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule";
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldValueInvalid", field)
    );
    assert!(
        causes[0].message.starts_with(concat!(
            r#"Invalid value: {"Rule":"self.a ==","Message":"","MessageExpression":"","Reason":null,"#,
            r#""FieldPath":"","OptionalOldSelf":null}: compilation failed: "#
        )),
        "{}",
        causes[0].message
    );
    assert!(
        causes[0].message.contains(": compilation failed: "),
        "{}",
        causes[0].message
    );
    let head = format!("CustomResourceDefinition.apiextensions.k8s.io \"gadgets.{group}\" is invalid: {field}: ");
    assert!(s.message.starts_with(&head), "{}", s.message);
}

/// A rule sees an `x-kubernetes-list-type: set` list as a set: `==` ignores its order and `+` on it
/// is a union (X's elements in place, Y's new ones appended).
#[tokio::test]
async fn set_lists_compare_without_order_and_concatenate_as_unions() {
    let (env, ns) = setup().await;
    let group = unique_group("c");
    let tags = json!({ "type": "array", "maxItems": 4, "x-kubernetes-list-type": "set",
        "items": { "type": "string", "maxLength": 16 } });
    let schema = json!({ "type": "object", "properties": { "spec": {
        "type": "object", "required": ["tags"],
        "properties": { "tags": tags, "extra": tags },
        "x-kubernetes-validations": [
            { "rule": "!has(self.extra) || size(self.tags + self.extra) <= 3", "message": "at most 3 distinct tags" },
            { "rule": "self.tags == oldSelf.tags", "message": "tags are immutable" }
        ]
    } } });
    env.install_crd(&crd(&group, schema)).await.expect("install the CRD");
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Gadget"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ar);

    let created = api
        .create(
            &PostParams::default(),
            &gadget(&group, "tagged", json!({ "tags": ["a", "b"], "extra": ["b", "c"] })),
        )
        .await
        .expect("the union of the two sets has 3 tags");
    let s = invalid(
        api.create(
            &PostParams::default(),
            &gadget(&group, "many", json!({ "tags": ["a", "b"], "extra": ["c", "d"] })),
        )
        .await,
    );
    assert_one_cause(
        &env,
        &s,
        &group,
        "many",
        ("FieldValueInvalid", "spec", "Invalid value: at most 3 distinct tags"),
    )
    .await;

    let mut reordered = created.clone();
    reordered.data["spec"]["tags"] = json!(["b", "a"]);
    let reordered = api
        .replace("tagged", &PostParams::default(), &reordered)
        .await
        .expect("a set in another order is the same set");
    let mut changed = reordered.clone();
    changed.data["spec"]["tags"] = json!(["a", "c"]);
    let s = invalid(api.replace("tagged", &PostParams::default(), &changed).await);
    assert_one_cause(
        &env,
        &s,
        &group,
        "tagged",
        ("FieldValueInvalid", "spec", "Invalid value: tags are immutable"),
    )
    .await;
    uninstall(&env.client(), &group).await;
}
