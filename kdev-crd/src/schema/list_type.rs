//! The rules kube-apiserver puts on the lists of a CRD's schema by their
//! [`x-kubernetes-list-type`](https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy)
//! (apiextensions' `ValidateCustomResourceDefinitionOpenAPISchema` and
//! `validateMapListKeysMapSet`), checked before a CRD leaves `try_crd`.

use serde_json::{Map, Value};

/// A list the API server would refuse.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Misfit {
    /// Where the list is, from the schema given (`.properties.ports`).
    pub path: String,
    /// The key of a `map` list at fault, if one is.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub reason: String,
}

/// The first list in the structural schema `schema` (itself, its properties, items and map
/// values, depth first) whose list type the API server refuses:
///
/// 1. `list_map_keys` on a list that is not a `map` list;
/// 2. a `map` list without keys, with a key named twice, with items that are not objects or are
///    nullable, or with a key that is not a property of the items, is not a scalar, is
///    nullable, or is neither required nor defaulted;
/// 3. a `set` list with nullable items, or items that are objects or lists and not atomic.
pub(crate) fn misfit(schema: &Value) -> Option<Misfit> {
    let Value::Object(m) = schema else { return None };
    if let Some(mut misfit) = own_misfit(m) {
        misfit.path = String::new();
        return Some(misfit);
    }
    for (path, s) in super::child_schemas(m) {
        if let Some(mut misfit) = misfit(s) {
            misfit.path = format!("{path}{}", misfit.path);
            return Some(misfit);
        }
    }
    None
}

/// What is wrong with the list type of `m` itself, if anything (its `path` left empty).
fn own_misfit(m: &Map<String, Value>) -> Option<Misfit> {
    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = m
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let items = m.get("items").and_then(Value::as_object);
    let list = |reason: String| {
        Some(Misfit {
            path: String::new(),
            key: None,
            reason,
        })
    };
    if !keys.is_empty() && list_type != Some("map") {
        return list(format!(
            "`list_map_keys({})` keys a `map` list, and this list has {}: make it `list_type = \"map\"`",
            keys.join(", "),
            list_type.map_or_else(|| "no `list_type`".to_owned(), |t| format!("`list_type = {t:?}`"))
        ));
    }
    match (list_type, items) {
        (Some("map"), _) if keys.is_empty() => {
            list("a `map` list needs the fields that identify an item: add `list_map_keys(name)`".into())
        }
        (Some("map"), Some(items)) if type_of(items) != Some("object") => list(format!(
            "a `map` list holds objects keyed by some of their fields, and its items are {}: \
             use `list_type = \"set\"` for a list of distinct scalars",
            describe(items)
        )),
        (Some(t @ ("map" | "set")), Some(items)) if flag(items, "nullable") => list(format!(
            "the items of a `{t}` list cannot be nullable: drop `nullable` from the item type (or from `items(...)`)"
        )),
        (Some("map"), Some(items)) => keys.iter().enumerate().find_map(|(i, key)| {
            key_misfit(items, key, keys[..i].contains(key)).map(|reason| Misfit {
                path: String::new(),
                key: Some((*key).to_owned()),
                reason,
            })
        }),
        (Some("set"), Some(items)) if !atomic(items) => list(format!(
            "a `set` list (`list_type = \"set\"` or `unique_items`) compares its items whole, so they must be \
             scalars or atomic, and they are {}: {}",
            describe(items),
            if type_of(items) == Some("object") {
                "mark the item type `#[kdev(struct_type = \"atomic\")]` (with `#[kdev::schema]`; `map_type` for a \
                 map), or make this a `map` list keyed by the fields that identify an item"
            } else {
                "make the inner lists atomic (a `Vec` without `list_type`), or this list `list_type = \"atomic\"`"
            }
        )),
        _ => None,
    }
}

/// What is wrong with `key` as a key of a `map` list whose items are `items` (objects).
fn key_misfit(items: &Map<String, Value>, key: &str, repeated: bool) -> Option<String> {
    let quoted = format!("{key:?}");
    if repeated {
        return Some(format!("the key {quoted} is named twice in `list_map_keys(...)`"));
    }
    let props = items.get("properties").and_then(Value::as_object);
    let Some(prop) = props.and_then(|p| p.get(key)).and_then(Value::as_object) else {
        let names: Vec<&String> = props.into_iter().flat_map(Map::keys).collect();
        let loose = |s: &str| s.replace(['_', '-'], "").to_lowercase();
        let hint = match names.iter().find(|n| loose(n) == loose(key)) {
            Some(name) => format!("did you mean {name:?}? (keys are named as on the wire)"),
            None if names.is_empty() => "they have no fields".to_owned(),
            None => format!(
                "keys are named as on the wire, and the items have {}",
                names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            ),
        };
        return Some(format!("the key {quoted} is not a field of the items: {hint}"));
    };
    if let Some(compound @ ("object" | "array")) = type_of(prop) {
        return Some(format!(
            "the key {quoted} is {}: a key is a string, a number or a boolean; key the list by scalar fields",
            if compound == "object" { "an object" } else { "a list" }
        ));
    }
    if flag(prop, "nullable") {
        return Some(format!(
            "the key {quoted} is nullable: every item has a value for its key, drop `nullable` from the key field"
        ));
    }
    let required = items
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|r| r == key));
    if !required && !prop.contains_key("default") {
        return Some(format!(
            "the key {quoted} is optional and has no default, and every item needs its key: make the key field \
             required (`#[kdev(required)]`, with `#[kdev::schema]` on the item type, or a field that is neither \
             an `Option` nor `#[serde(default)]`) or give it a default (`#[kdev(default = ...)]`)"
        ));
    }
    None
}

/// Whether items of schema `items` can be in a `set` list: scalars (or anything else without a
/// type), objects with `x-kubernetes-map-type: atomic`, lists without a list type or atomic.
fn atomic(items: &Map<String, Value>) -> bool {
    let of = |k: &str| items.get(k).and_then(Value::as_str);
    match type_of(items) {
        Some("object") => of("x-kubernetes-map-type") == Some("atomic"),
        Some("array") => of("x-kubernetes-list-type").is_none_or(|t| t == "atomic"),
        _ => true,
    }
}

/// What items of schema `s` are, in words: `objects`, `` `set` lists``, `of type string`.
fn describe(s: &Map<String, Value>) -> String {
    match type_of(s) {
        Some("object") => "objects".to_owned(),
        Some("array") => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some(t) => format!("`{t}` lists"),
            None => "lists".to_owned(),
        },
        Some(t) => format!("of type {t}"),
        None if flag(s, "x-kubernetes-int-or-string") => "integers or strings".to_owned(),
        None => "of any type".to_owned(),
    }
}

fn type_of(m: &Map<String, Value>) -> Option<&str> {
    m.get("type").and_then(Value::as_str)
}

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k) == Some(&Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(extra: Value, items: Value) -> Value {
        let mut list = json!({ "type": "array", "items": items });
        if let (Value::Object(l), Value::Object(extra)) = (&mut list, extra) {
            l.extend(extra);
        }
        json!({ "type": "object", "properties": { "ports": list } })
    }

    fn port(required: Value) -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "port": { "type": "integer", "default": 80 },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } }
            },
            "required": required
        })
    }

    fn keyed(keys: Value, items: Value) -> Option<Misfit> {
        misfit(&list(
            json!({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys }),
            items,
        ))
    }

    fn on_key(key: &str, reason: &str) -> Option<Misfit> {
        Some(Misfit {
            path: ".properties.ports".into(),
            key: Some(key.into()),
            reason: reason.into(),
        })
    }

    #[test]
    fn a_map_list_keyed_by_required_or_defaulted_scalars_passes() {
        assert_eq!(keyed(json!(["name", "port"]), port(json!(["name"]))), None);
        let atomic = json!({ "type": "object", "x-kubernetes-map-type": "atomic", "properties": {} });
        assert_eq!(misfit(&list(json!({ "x-kubernetes-list-type": "set" }), atomic)), None);
        for scalar in [
            json!({ "type": "string" }),
            json!({ "x-kubernetes-int-or-string": true }),
        ] {
            assert_eq!(misfit(&list(json!({ "x-kubernetes-list-type": "set" }), scalar)), None);
        }
        let inner = json!({ "type": "array", "items": { "type": "string" } });
        assert_eq!(misfit(&list(json!({ "x-kubernetes-list-type": "set" }), inner)), None);
    }

    #[test]
    fn a_map_list_key_that_is_optional_without_a_default_names_the_fix() {
        assert_eq!(
            keyed(json!(["name"]), port(json!([]))),
            on_key(
                "name",
                "the key \"name\" is optional and has no default, and every item needs its key: make the key \
                 field required (`#[kdev(required)]`, with `#[kdev::schema]` on the item type, or a field that is \
                 neither an `Option` nor `#[serde(default)]`) or give it a default (`#[kdev(default = ...)]`)"
            )
        );
    }

    #[test]
    fn a_map_list_key_must_be_a_scalar_non_nullable_field_of_the_items_named_once() {
        assert_eq!(
            keyed(json!(["labels"]), port(json!(["labels"]))),
            on_key(
                "labels",
                "the key \"labels\" is an object: a key is a string, a number or a boolean; key the list by scalar fields"
            )
        );
        // (Fields in their order in the schema, sorted here with or without serde_json's
        // `preserve_order`.)
        let two = json!({ "type": "object", "properties": { "name": { "type": "string" }, "port": { "type": "integer" } },
                          "required": ["name", "port"] });
        assert_eq!(
            keyed(json!(["nmae"]), two),
            on_key(
                "nmae",
                "the key \"nmae\" is not a field of the items: keys are named as on the wire, and the items have \
                 \"name\", \"port\""
            )
        );
        let camel = json!({ "type": "object", "properties": { "containerPort": { "type": "integer" } },
                            "required": ["containerPort"] });
        assert_eq!(
            keyed(json!(["container_port"]), camel),
            on_key(
                "container_port",
                "the key \"container_port\" is not a field of the items: did you mean \"containerPort\"? \
                 (keys are named as on the wire)"
            )
        );
        let mut nullable = port(json!(["name"]));
        nullable["properties"]["name"]["nullable"] = json!(true);
        assert_eq!(
            keyed(json!(["name"]), nullable),
            on_key(
                "name",
                "the key \"name\" is nullable: every item has a value for its key, drop `nullable` from the key field"
            )
        );
        assert_eq!(
            keyed(json!(["name", "name"]), port(json!(["name"]))),
            on_key("name", "the key \"name\" is named twice in `list_map_keys(...)`")
        );
    }

    #[test]
    fn a_map_list_needs_keys_and_object_items_that_are_not_nullable() {
        let reason = |v: Option<Misfit>| v.map(|m| (m.key, m.reason));
        assert_eq!(
            reason(keyed(json!([]), port(json!(["name"])))),
            Some((
                None,
                "a `map` list needs the fields that identify an item: add `list_map_keys(name)`".into()
            ))
        );
        assert_eq!(
            reason(keyed(json!(["name"]), json!({ "type": "string" }))),
            Some((
                None,
                "a `map` list holds objects keyed by some of their fields, and its items are of type string: \
                 use `list_type = \"set\"` for a list of distinct scalars"
                    .into()
            ))
        );
        let mut nullable = port(json!(["name"]));
        nullable["nullable"] = json!(true);
        assert_eq!(
            reason(keyed(json!(["name"]), nullable)),
            Some((
                None,
                "the items of a `map` list cannot be nullable: drop `nullable` from the item type (or from \
                 `items(...)`)"
                    .into()
            ))
        );
        assert_eq!(
            reason(misfit(&list(
                json!({ "x-kubernetes-list-type": "atomic", "x-kubernetes-list-map-keys": ["name"] }),
                port(json!(["name"]))
            ))),
            Some((
                None,
                "`list_map_keys(name)` keys a `map` list, and this list has `list_type = \"atomic\"`: make it \
                 `list_type = \"map\"`"
                    .into()
            ))
        );
    }

    #[test]
    fn a_set_list_holds_atomic_items_that_are_not_nullable() {
        let set = |items: Value| misfit(&list(json!({ "x-kubernetes-list-type": "set" }), items)).map(|m| m.reason);
        assert_eq!(
            set(port(json!(["name"]))).as_deref(),
            Some(
                "a `set` list (`list_type = \"set\"` or `unique_items`) compares its items whole, so they must be \
                 scalars or atomic, and they are objects: mark the item type `#[kdev(struct_type = \"atomic\")]` \
                 (with `#[kdev::schema]`; `map_type` for a map), or make this a `map` list keyed by the fields \
                 that identify an item"
            )
        );
        assert_eq!(
            set(json!({ "type": "array", "x-kubernetes-list-type": "set", "items": { "type": "string" } })).as_deref(),
            Some(
                "a `set` list (`list_type = \"set\"` or `unique_items`) compares its items whole, so they must be \
                 scalars or atomic, and they are `set` lists: make the inner lists atomic (a `Vec` without \
                 `list_type`), or this list `list_type = \"atomic\"`"
            )
        );
        assert_eq!(
            set(json!({ "type": "string", "nullable": true })).as_deref(),
            Some(
                "the items of a `set` list cannot be nullable: drop `nullable` from the item type (or from \
                 `items(...)`)"
            )
        );
    }

    #[test]
    fn lists_are_found_in_items_and_map_values_and_reported_where_they_are() {
        let bad = json!({ "type": "array", "x-kubernetes-list-type": "set", "items": port(json!(["name"])) });
        let schema = json!({ "type": "object", "properties": {
            "fine": { "type": "array", "x-kubernetes-list-type": "atomic", "items": port(json!([])) },
            "byName": { "type": "object", "additionalProperties": {
                "type": "array", "items": { "type": "object", "properties": { "tags": bad } } } }
        } });
        let found = misfit(&schema).map(|m| m.path);
        assert_eq!(
            found.as_deref(),
            Some(".properties.byName.additionalProperties.items.properties.tags")
        );
    }
}
