//! Pruning of fields a structural schema does not specify
//! ([structural/pruning](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go)).

use serde_json::{Map, Value};

use super::{Additional, Node};

/// The fields of `metav1.ObjectMeta`: an embedded resource's metadata keeps only these.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Prunes a whole resource: the root behaves as an embedded resource whose metadata is kept as is.
pub(crate) fn prune_root(obj: &mut Value, root: &Node) {
    prune(obj, Some(root), true);
}

fn prune(x: &mut Value, s: Option<&Node>, is_root: bool) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(x, s, is_root);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                map.clear();
                return;
            };
            let embedded = is_root || s.embedded;
            map.retain(|key, value| {
                if embedded && keep_resource_field(key, value, is_root) {
                    return true;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune(value, Some(prop), false);
                    true
                } else {
                    match &s.additional {
                        Additional::Unset => false,
                        Additional::Bool(_) => {
                            prune(value, None, false);
                            true
                        }
                        Additional::Schema(extra) => {
                            prune(value, Some(extra), false);
                            true
                        }
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for item in items {
                prune(item, item_schema, false);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields` unknown keys stay, but specified ones are pruned.
fn skip_prune(x: &mut Value, s: &Node, is_root: bool) {
    match x {
        Value::Object(map) => {
            let embedded = is_root || s.embedded;
            for (key, value) in map.iter_mut() {
                if embedded && keep_resource_field(key, value, is_root) {
                    continue;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune(value, Some(prop), false);
                } else if let Additional::Schema(extra) = &s.additional {
                    prune(value, Some(extra), false);
                } else if matches!(s.additional, Additional::Bool(_)) {
                    prune(value, None, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for item in items {
                    skip_prune(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// apiVersion and kind (when strings) and metadata (when an object) of a resource are kept;
/// an embedded resource's metadata is cut down to ObjectMeta's fields.
fn keep_resource_field(key: &str, value: &mut Value, is_root: bool) -> bool {
    match (key, value) {
        ("apiVersion" | "kind", Value::String(_)) => true,
        ("metadata", Value::Object(meta)) => {
            if !is_root {
                retain_object_meta(meta);
            }
            true
        }
        _ => false,
    }
}

fn retain_object_meta(meta: &mut Map<String, Value>) {
    meta.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::schema::Schema;

    fn pruned(schema: &Value, mut obj: Value) -> Value {
        Schema::compile(schema).unwrap().prune(&mut obj);
        obj
    }

    fn rich() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                             "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true}}}}})
    }

    #[test]
    fn unknown_fields_are_removed_at_every_level_but_root_resource_fields_stay() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "odd": 1}, "junk": 1,
            "spec": {"replicas": 1, "extra": true, "items": [{"name": "a", "x": 1}], "labels": {"a": "b"}}});
        assert_eq!(
            pruned(&rich(), obj),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "odd": 1},
                "spec": {"replicas": 1, "items": [{"name": "a"}], "labels": {"a": "b"}}})
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_unknown_keys_but_prunes_specified_ones() {
        let obj = json!({"spec": {"free": {"anything": {"deep": 1}, "known": {"a": "x", "b": "y"}}}});
        assert_eq!(
            pruned(&rich(), obj),
            json!({"spec": {"free": {"anything": {"deep": 1}, "known": {"a": "x"}}}})
        );
    }

    #[test]
    fn embedded_resources_keep_only_object_meta_fields_in_metadata() {
        let obj = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "bogus": 1}, "spec": {"x": 1}}}});
        assert_eq!(
            pruned(&rich(), obj),
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}}})
        );
    }

    #[test]
    fn int_or_string_scalars_survive_and_non_string_kind_is_pruned_at_the_root() {
        let obj = json!({"kind": 5, "spec": {"port": "http"}});
        assert_eq!(pruned(&rich(), obj), json!({"spec": {"port": "http"}}));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let keys = prop_oneof![
            Just("spec".to_owned()),
            Just("replicas".to_owned()),
            Just("items".to_owned()),
            Just("name".to_owned()),
            Just("free".to_owned()),
            Just("known".to_owned()),
            Just("metadata".to_owned()),
            Just("kind".to_owned()),
            "[a-z]{1,4}",
        ];
        crate::schema::arb_json(keys)
    }

    proptest! {
        #[test]
        fn pruning_is_idempotent(obj in arb_json()) {
            let schema = Schema::compile(&rich()).unwrap();
            let mut once = obj;
            schema.prune(&mut once);
            let mut twice = once.clone();
            schema.prune(&mut twice);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn validate_and_default_never_panic_on_arbitrary_json(obj in arb_json()) {
            let schema = Schema::compile(&rich()).unwrap();
            let _ = schema.validate(&obj);
            let mut obj = obj;
            schema.default(&mut obj);
            let _ = schema.validate(&obj);
        }
    }
}
