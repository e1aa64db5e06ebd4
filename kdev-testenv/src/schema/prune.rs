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
    prune(obj, Some(root), true, &mut Pruned::default());
}

/// Prunes a whole resource as [`prune_root`] does, returning the paths of the fields it dropped
/// as kube-apiserver names unknown fields (`spec.ports[0].nmae`).
pub(crate) fn prune_root_reporting(obj: &mut Value, root: &Node) -> Vec<String> {
    let mut pruned = Pruned {
        paths: Some(Vec::new()),
        ..Pruned::default()
    };
    prune(obj, Some(root), true, &mut pruned);
    pruned.paths.unwrap_or_default()
}

/// Where the walk is, and the dropped fields' paths when they are asked for.
#[derive(Default)]
struct Pruned {
    at: Vec<String>,
    paths: Option<Vec<String>>,
}

impl Pruned {
    fn dropped(&mut self, key: &str) {
        if let Some(paths) = &mut self.paths {
            let mut path = self.at.concat();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            paths.push(path);
        }
    }

    fn within<T>(&mut self, step: String, f: impl FnOnce(&mut Self) -> T) -> T {
        self.at.push(step);
        let out = f(self);
        self.at.pop();
        out
    }
}

fn field_step(at: &[String], key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!(".{key}")
    }
}

fn prune(x: &mut Value, s: Option<&Node>, is_root: bool, pruned: &mut Pruned) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(x, s, is_root, pruned);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                for key in map.keys() {
                    pruned.dropped(key);
                }
                map.clear();
                return;
            };
            let embedded = is_root || s.embedded;
            map.retain(|key, value| {
                if embedded && keep_resource_field(key, value, is_root) {
                    return true;
                }
                let step = field_step(&pruned.at, key);
                if let Some(prop) = s.properties.get(key) {
                    pruned.within(step, |p| prune(value, Some(prop), false, p));
                    true
                } else {
                    match &s.additional {
                        Additional::Unset => {
                            pruned.dropped(key);
                            false
                        }
                        Additional::Bool(_) => {
                            pruned.within(step, |p| prune(value, None, false, p));
                            true
                        }
                        Additional::Schema(extra) => {
                            pruned.within(step, |p| prune(value, Some(extra), false, p));
                            true
                        }
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                pruned.within(format!("[{i}]"), |p| prune(item, item_schema, false, p));
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields` unknown keys stay, but specified ones are pruned.
fn skip_prune(x: &mut Value, s: &Node, is_root: bool, pruned: &mut Pruned) {
    match x {
        Value::Object(map) => {
            let embedded = is_root || s.embedded;
            for (key, value) in map.iter_mut() {
                if embedded && keep_resource_field(key, value, is_root) {
                    continue;
                }
                let step = field_step(&pruned.at, key);
                if let Some(prop) = s.properties.get(key) {
                    pruned.within(step, |p| prune(value, Some(prop), false, p));
                } else if let Additional::Schema(extra) = &s.additional {
                    pruned.within(step, |p| prune(value, Some(extra), false, p));
                } else if matches!(s.additional, Additional::Bool(_)) {
                    pruned.within(step, |p| prune(value, None, false, p));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    pruned.within(format!("[{i}]"), |p| skip_prune(item, item_schema, false, p));
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
