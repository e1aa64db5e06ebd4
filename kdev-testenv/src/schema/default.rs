//! Defaulting of custom resources from `default` in the structural schema
//! ([structural/defaulting](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting/algorithm.go)).

use serde_json::Value;

use super::{Additional, Node};

/// Fills missing fields, and `null`s of non-nullable fields, with their defaults, recursively.
/// A `null` of a non-nullable field without a default is dropped first, as kube-apiserver's
/// `PruneNonNullableNullsWithoutDefaults` does: a client that writes `"field": null` for an
/// unset optional field is not refused.
pub(crate) fn default(x: &mut Value, s: Option<&Node>) {
    let Some(s) = s else { return };
    match x {
        Value::Object(map) => {
            map.retain(|key, value| {
                let schema = match s.properties.get(key) {
                    Some(prop) => Some(prop),
                    None => match &s.additional {
                        Additional::Schema(extra) => Some(&**extra),
                        _ => None,
                    },
                };
                !(is_non_nullable_null(value, schema) && schema.is_some_and(|s| s.default.is_none()))
            });
            for (key, prop) in &s.properties {
                let Some(default) = &prop.default else { continue };
                match map.get(key) {
                    Some(v) if !is_non_nullable_null(v, Some(prop)) => {}
                    _ => {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                if let Some(prop) = s.properties.get(key) {
                    default(value, Some(prop));
                } else if let Additional::Schema(extra) = &s.additional {
                    if is_non_nullable_null(value, Some(extra))
                        && let Some(d) = &extra.default
                    {
                        *value = d.clone();
                    }
                    default(value, Some(extra));
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.items.as_deref();
            for item in items {
                if is_non_nullable_null(item, item_schema)
                    && let Some(d) = item_schema.and_then(|i| i.default.as_ref())
                {
                    *item = d.clone();
                }
                default(item, item_schema);
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(x: &Value, s: Option<&Node>) -> bool {
    x.is_null() && s.is_some_and(|s| !s.nullable)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::Schema;

    fn defaulted(schema: serde_json::Value, mut obj: serde_json::Value) -> serde_json::Value {
        Schema::compile(&schema).unwrap().default(&mut obj);
        obj
    }

    #[test]
    fn missing_nested_fields_get_their_defaults_and_defaults_are_defaulted_again() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {},
            "properties": {"replicas": {"type": "integer", "default": 1},
                           "mode": {"type": "string", "default": "fast"}}}}});
        assert_eq!(
            defaulted(schema.clone(), json!({})),
            json!({"spec": {"replicas": 1, "mode": "fast"}})
        );
        assert_eq!(
            defaulted(schema, json!({"spec": {"replicas": 3}})),
            json!({"spec": {"replicas": 3, "mode": "fast"}})
        );
    }

    #[test]
    fn null_gets_the_default_only_when_the_field_is_not_nullable() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "string", "default": "x"},
            "b": {"type": "string", "nullable": true, "default": "y"}}});
        assert_eq!(
            defaulted(schema, json!({"a": null, "b": null})),
            json!({"a": "x", "b": null})
        );
    }

    #[test]
    fn a_null_of_a_non_nullable_field_without_a_default_is_dropped() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer", "nullable": true},
            "c": {"type": "integer", "default": 3},
            "list": {"type": "array", "items": {"type": "integer"}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}}}});
        assert_eq!(
            defaulted(
                schema,
                json!({"a": null, "b": null, "c": null, "list": [null], "map": {"k": null, "v": "x"}})
            ),
            json!({"b": null, "c": 3, "list": [null], "map": {"v": "x"}}),
            "kube-apiserver drops object fields only, never list items"
        );
    }

    #[test]
    fn defaults_apply_inside_array_items_and_additional_properties() {
        let schema = json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer", "default": 80}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}},
            "names": {"type": "array", "items": {"type": "string", "default": "anon"}}}});
        let got = defaulted(
            schema,
            json!({"list": [{}, {"port": 1}], "map": {"a": {}}, "names": [null, "b"]}),
        );
        assert_eq!(
            got,
            json!({"list": [{"port": 80}, {"port": 1}], "map": {"a": {"on": true}}, "names": ["anon", "b"]})
        );
    }

    #[test]
    fn int_or_string_defaults_keep_their_type() {
        let schema = json!({"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true, "default": "http"}}});
        assert_eq!(defaulted(schema, json!({})), json!({"port": "http"}));
    }
}
