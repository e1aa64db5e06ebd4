//! Strategic merge patch over JSON values, as apimachinery's
//! [`strategicpatch`](https://github.com/kubernetes/apimachinery/blob/master/pkg/util/strategicpatch/patch.go).

use serde_json::{Map, Value};

use super::schema::{ListType, Schema, child_path};
use super::{Error, Result};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch to `original` using the list strategies of `schema`.
///
/// Lists declared [`ListType::Map`] merge element by element on their first key (the `patchMergeKey`),
/// [`ListType::Set`] lists merge by union and every other value is replaced; `null` deletes a key. The
/// directives `$patch: replace | delete | merge`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
/// `$setElementOrder/<field>` are honoured and never appear in the result.
///
/// # Errors
/// [`Error::BadStrategicPatch`] for a malformed patch or directive, [`Error::UnprocessableStrategicPatch`]
/// for lists of lists and keys outside `$retainKeys`, [`Error::MissingMergeKey`] for a keyed list element
/// without its key.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &Schema) -> Result<Value> {
    let Value::Object(patch) = patch else {
        return Err(Error::BadStrategicPatch("invalid JSON document".into()));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch, "", schema).map(Value::Object)
}

fn bad_patch_type(directive: &Value, patch: &impl serde::Serialize) -> Error {
    let shown = serde_json::to_string(patch).unwrap_or_default();
    Error::BadStrategicPatch(format!("unknown patch type: {directive} in map: {shown}"))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    schema: &Schema,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(DIRECTIVE);
                return merge_map(Map::new(), &rest, path, schema);
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(bad_patch_type(directive, patch)),
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, retain)?;
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(doomed) = value else {
                return Err(Error::BadStrategicPatch(
                    "invalid patch format of primitive list".into(),
                ));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !doomed.contains(item));
            }
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let current = original.remove(key);
        let merged = merge_value(current, value, &child_path(path, key), schema)?;
        original.insert(key.clone(), merged);
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let Value::Array(order) = value else {
                return Err(Error::BadStrategicPatch(
                    "invalid patch format of setElementOrder list".into(),
                ));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                let merge_key = match schema.list_type(&child_path(path, field)) {
                    ListType::Map(keys) => keys.first().map(|k| k.name.as_str()),
                    _ => None,
                };
                reorder(list, order, merge_key);
            }
        }
    }
    Ok(original)
}

/// `$retainKeys`: drops keys of `original` not listed, after checking the patch stays inside the list.
fn retain_keys(original: &mut Map<String, Value>, patch: &Map<String, Value>, retain: &Value) -> Result<()> {
    let bad = || Error::BadStrategicPatch("invalid patch format of retainKeys".into());
    let Value::Array(keys) = retain else { return Err(bad()) };
    let keys = keys
        .iter()
        .map(|k| k.as_str().ok_or_else(bad))
        .collect::<Result<Vec<_>>>()?;
    if patch.keys().any(|k| !k.starts_with('$') && !keys.contains(&k.as_str())) {
        return Err(Error::UnprocessableStrategicPatch(
            "patch content doesn't match retainKeys list".into(),
        ));
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

fn merge_value(current: Option<Value>, patch: &Value, path: &str, schema: &Schema) -> Result<Value> {
    match patch {
        Value::Object(patch) => {
            let current = match current {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            merge_map(current, patch, path, schema).map(Value::Object)
        }
        Value::Array(patch) => {
            let current = match current {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            match schema.list_type(path) {
                ListType::Map(keys) => match keys.first() {
                    Some(key) => merge_keyed_list(current, patch, &key.name, path, schema).map(Value::Array),
                    None => Ok(Value::Array(patch.clone())),
                },
                ListType::Set => merge_primitive_list(current, patch).map(Value::Array),
                ListType::Atomic => Ok(Value::Array(patch.clone())),
            }
        }
        scalar => Ok(scalar.clone()),
    }
}

fn missing_key(element: &Map<String, Value>, key: &str) -> Error {
    Error::MissingMergeKey {
        element: serde_json::to_string(element).unwrap_or_default(),
        key: key.to_owned(),
    }
}

fn merge_keyed_list(
    original: Vec<Value>,
    patch: &[Value],
    key: &str,
    path: &str,
    schema: &Schema,
) -> Result<Vec<Value>> {
    let mut items = original;
    let mut replace = false;
    let mut plain = Vec::new();
    for element in patch {
        match element {
            Value::Object(map) if map.contains_key(DIRECTIVE) => match map.get(DIRECTIVE).and_then(Value::as_str) {
                Some("replace") => replace = true,
                Some("delete") => {
                    let id = map.get(key).ok_or_else(|| missing_key(map, key))?;
                    items.retain(|item| item.get(key) != Some(id));
                }
                Some("merge") => plain.push(element),
                _ => return Err(bad_patch_type(map.get(DIRECTIVE).unwrap_or(&Value::Null), map)),
            },
            Value::Array(_) => {
                return Err(Error::UnprocessableStrategicPatch(
                    "lists of lists are not supported".into(),
                ));
            }
            _ => plain.push(element),
        }
    }
    if replace {
        items.clear();
    }
    for element in plain {
        let Value::Object(map) = element else {
            if !items.contains(element) {
                items.push(element.clone());
            }
            continue;
        };
        let id = map.get(key).ok_or_else(|| missing_key(map, key))?;
        match items.iter().position(|item| item.get(key) == Some(id)) {
            Some(pos) => {
                let current = match std::mem::take(&mut items[pos]) {
                    Value::Object(current) => current,
                    _ => Map::new(),
                };
                items[pos] = Value::Object(merge_map(current, map, path, schema)?);
            }
            None => items.push(Value::Object(merge_map(Map::new(), map, path, schema)?)),
        }
    }
    Ok(items)
}

fn merge_primitive_list(original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>> {
    let is_replace = |v: &Value| v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace");
    let mut items = if patch.iter().any(is_replace) {
        Vec::new()
    } else {
        original
    };
    for element in patch {
        match element {
            Value::Array(_) => {
                return Err(Error::UnprocessableStrategicPatch(
                    "lists of lists are not supported".into(),
                ));
            }
            Value::Object(map) if map.contains_key(DIRECTIVE) => {
                if !is_replace(element) {
                    return Err(bad_patch_type(map.get(DIRECTIVE).unwrap_or(&Value::Null), map));
                }
            }
            _ if items.contains(element) => {}
            _ => items.push(element.clone()),
        }
    }
    Ok(items)
}

/// `$setElementOrder`: stable-sorts `list` by the position of each element in `order`; elements the
/// order does not mention keep their relative order after the mentioned ones.
fn reorder(list: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let id = |value: &Value| match merge_key {
        Some(key) => value.get(key).cloned(),
        None => Some(value.clone()),
    };
    let wanted: Vec<Option<Value>> = order.iter().map(id).collect();
    list.sort_by_key(|item| {
        let item = id(item);
        wanted
            .iter()
            .position(|w| item.is_some() && *w == item)
            .unwrap_or(usize::MAX)
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    fn smp(original: &Value, patch: Value) -> Result<Value> {
        let (group, kind) = match original["kind"].as_str() {
            Some("Deployment") => ("apps", "Deployment"),
            Some(kind) => ("", kind),
            None => ("", "Pod"),
        };
        super::super::strategic_merge_patch(group, kind, original, &patch)
    }

    #[test]
    fn patch_tables_produce_the_expected_objects() {
        let two = deployment(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "containers merge by name, untouched ones stay",
                two.clone(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}}}),
                json!([{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}]),
            ),
            (
                "new container is appended",
                two.clone(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c:1"}]}}}}),
                json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}, {"name": "c", "image": "c:1"}]),
            ),
            (
                "$patch delete removes the keyed element",
                two.clone(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}}),
                json!([{"name": "b", "image": "b:1"}]),
            ),
            (
                "$patch replace in a list replaces it",
                two.clone(),
                json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}}}),
                json!([{"name": "z"}]),
            ),
            (
                "$setElementOrder reorders the merged list (kubectl apply shape)",
                two.clone(),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "a", "image": "a:3"}]}}}}),
                json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:3"}]),
            ),
            (
                "env merges by name inside a merged container, null deletes a field",
                deployment(
                    json!([{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]),
                ),
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "a", "image": null, "env": [{"name": "B", "value": "3"}]}]}}}}),
                json!([{"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]}]),
            ),
            (
                "ports merge by containerPort, volumeMounts by mountPath",
                deployment(json!([{"name": "a", "ports": [{"containerPort": 80}],
                    "volumeMounts": [{"mountPath": "/d", "name": "v1"}]}])),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
                    "ports": [{"containerPort": 443}], "volumeMounts": [{"mountPath": "/d", "name": "v2"}]}]}}}}),
                json!([{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 443}],
                    "volumeMounts": [{"mountPath": "/d", "name": "v2"}]}]),
            ),
        ];
        for (name, original, patch, containers) in cases {
            let out = smp(&original, patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out["spec"]["template"]["spec"]["containers"], containers, "{name}");
            assert_eq!(out["spec"]["replicas"], 1, "{name}");
        }
    }

    #[test]
    fn metadata_lists_and_directives_follow_apimachinery() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1", "b": "2"},
            "finalizers": ["x", "y"], "ownerReferences": [{"uid": "1", "name": "one"}]},
            "spec": {"tolerations": [{"key": "t1"}], "nodeSelector": {"zone": "a"}}});
        let cases: Vec<(&str, Value, &str, Value)> = vec![
            (
                "finalizers merge by union",
                json!({"metadata": {"finalizers": ["y", "z"]}}),
                "/metadata/finalizers",
                json!(["x", "y", "z"]),
            ),
            (
                "$deleteFromPrimitiveList removes values",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                "/metadata/finalizers",
                json!(["y"]),
            ),
            (
                "ownerReferences merge by uid",
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "two"}, {"uid": "1", "name": "uno"}]}}),
                "/metadata/ownerReferences",
                json!([{"uid": "1", "name": "uno"}, {"uid": "2", "name": "two"}]),
            ),
            (
                "labels merge like merge patch",
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                "/metadata/labels",
                json!({"b": "2", "c": "3"}),
            ),
            (
                "$patch replace on a map",
                json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
                "/metadata/labels",
                json!({"c": "3"}),
            ),
            (
                "$patch merge on a map merges",
                json!({"metadata": {"labels": {"$patch": "merge", "c": "3"}}}),
                "/metadata/labels",
                json!({"a": "1", "b": "2", "c": "3"}),
            ),
            (
                "$patch delete on a map empties it",
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                "/metadata/labels",
                json!({}),
            ),
            (
                "tolerations have no key and are replaced",
                json!({"spec": {"tolerations": [{"key": "t2"}]}}),
                "/spec/tolerations",
                json!([{"key": "t2"}]),
            ),
            (
                "directives never reach the result",
                json!({"spec": {"$retainKeys": ["nodeSelector"], "nodeSelector": {"zone": "b"}}}),
                "/spec",
                json!({"nodeSelector": {"zone": "b"}}),
            ),
        ];
        for (name, patch, pointer, expected) in cases {
            let out = smp(&pod, patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.pointer(pointer), Some(&expected), "{name}");
        }
    }

    #[test]
    fn services_nodes_and_conditions_use_their_keys() {
        let svc = json!({"kind": "Service", "spec": {"ports": [{"port": 80, "name": "http"}]}});
        let out = smp(
            &svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443}])
        );

        let node = json!({"kind": "Node", "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}});
        let patch = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}],
            "conditions": [{"type": "Ready", "status": "True"}]}});
        let out = smp(&node, patch).unwrap();
        assert_eq!(out["status"]["addresses"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            out["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["status"]["conditions"][1]["type"], "DiskPressure");
    }

    #[test]
    fn retain_keys_drops_keys_the_patch_does_not_list() {
        let dep = json!({"kind": "Deployment", "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = smp(&dep, patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn malformed_patches_give_the_status_kube_apiserver_gives() {
        let pod = json!({"kind": "Pod", "spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["x"]}});
        let cases: Vec<(Value, u16)> = vec![
            (json!({"spec": {"containers": [{"image": "no-name"}]}}), 500),
            (json!({"spec": {"containers": [[{"name": "a"}]]}}), 422),
            (json!({"spec": {"$retainKeys": ["x"], "containers": []}}), 422),
            (json!({"spec": {"$retainKeys": "x"}}), 400),
            (json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}), 400),
            (json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}), 400),
            (json!({"spec": {"$patch": "explode"}}), 400),
            (
                json!({"spec": {"containers": [{"name": "a", "$patch": "explode"}]}}),
                400,
            ),
            (json!(["not", "an", "object"]), 400),
        ];
        for (patch, code) in cases {
            let err = smp(&pod, patch.clone()).expect_err(&patch.to_string());
            assert_eq!(err.status_code(), code, "{patch}: {err}");
        }
        let err = super::super::strategic_merge_patch("example.com", "Widget", &pod, &json!({})).unwrap_err();
        assert_eq!((err.status_code(), err.reason()), (415, "UnsupportedMediaType"));
    }

    #[test]
    fn kubectl_set_image_patch_changes_only_the_named_container() {
        let dep = deployment(
            json!([{"name": "web", "image": "nginx:1.24", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "busybox"}]),
        );
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.25", "name": "web"}]}}}});
        let out = smp(&dep, patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "busybox"}])
        );
    }
}
