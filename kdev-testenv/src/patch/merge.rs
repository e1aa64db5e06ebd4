//! The two object operations of server-side apply: merging an applied configuration into the live
//! object (structured-merge-diff's
//! [`typed/merge.go`](https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/typed/merge.go))
//! and pruning what its manager stopped applying (`Updater.prune` in
//! [`merge/update.go`](https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/merge/update.go)).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::fields::{FieldSet, field, item_elements, server_set, to_field_set};
use super::schema::{ListType, Schema, child_path};

/// Merges an apply configuration into the live object (structured-merge-diff's `Merge`): maps
/// merge key by key, granular lists item by item, everything else is replaced by the
/// configuration.
///
/// A granular list takes the configuration's order: the items both hold come in the
/// configuration's order, an item only the configuration holds goes where the configuration puts
/// it, and an item only the live list holds stays where it was (`visitListItems`).
pub(super) fn merge_applied(live: &Value, config: &Value, spath: &str, schema: &Schema) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !schema.is_atomic_map(spath) => {
            let mut out = l.clone();
            for (key, value) in c {
                if value.is_null() {
                    out.remove(key);
                    continue;
                }
                let merged = match l.get(key) {
                    Some(current) => merge_applied(current, value, &child_path(spath, key), schema),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let list_type = schema.list_type(spath);
            match (item_elements(l, list_type), item_elements(c, list_type)) {
                (Some(live_ids), Some(config_ids)) => {
                    Value::Array(merge_items(l, &live_ids, c, &config_ids, spath, schema))
                }
                _ => config.clone(),
            }
        }
        _ => config.clone(),
    }
}

/// The items of a granular list merged: structured-merge-diff's `visitListItems`, walking both
/// lists and taking the shared items in the configuration's order.
fn merge_items(
    live: &[Value],
    live_ids: &[String],
    config: &[Value],
    config_ids: &[String],
    spath: &str,
    schema: &Schema,
) -> Vec<Value> {
    let in_live = |id: &String| live_ids.iter().position(|l| l == id);
    let in_config = |id: &String| config_ids.contains(id);
    let mut shared = config_ids.iter().filter(|id| in_live(id).is_some());
    let mut next_shared = shared.next();
    let mut merged: BTreeSet<&String> = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut l, mut c) = (0, 0);
    while l < live.len() || c < config.len() {
        if let (Some(lid), Some(cid)) = (live_ids.get(l), config_ids.get(c)) {
            if lid == cid {
                merged.insert(cid);
                out.push(merge_applied(&live[l], &config[c], spath, schema));
                l += 1;
                c += 1;
                next_shared = shared.next();
                continue;
            }
            if in_config(lid) && next_shared.is_some_and(|next| next != lid) {
                // A shared item, but not the one due now: it comes when the configuration has it.
                l += 1;
                continue;
            }
        }
        if let Some(lid) = live_ids.get(l) {
            if !in_config(lid) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            if merged.contains(lid) {
                l += 1;
            }
        }
        if let Some(cid) = config_ids.get(c) {
            merged.insert(cid);
            out.push(match in_live(cid) {
                Some(i) => merge_applied(&live[i], &config[c], spath, schema),
                None => config[c].clone(),
            });
            c += 1;
            if next_shared == Some(cid) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Removes from `merged` what its manager applied last time (`last`) but owns no more, unless a
/// manager's set (`managed`, the manager's new one included) still holds it: structured-merge-diff's
/// `Updater.prune`, with its `addBackOwnedItems` and `addBackDanglingItems`.
///
/// A named field is owned through the fields below it, so a field whose last owned value goes
/// (`spec.items` once its last applied item does, `metadata.labels` once its last applied label
/// does) goes with it, rather than staying behind as `[]` or `{}`.
pub(super) fn prune(merged: &Value, last: &FieldSet, managed: &FieldSet, schema: &Schema) -> Value {
    let named = |set: &FieldSet| set.with_named_fields(schema);
    let last = named(last);
    let mut managed = managed.clone();
    // The fields kube-apiserver strips from every manager's set are the applier's too (its
    // configuration names the object): they never go with the rest of `metadata`.
    managed.union(server_set());
    let managed = named(&managed);
    let merged_set = named(&to_field_set(merged, schema));
    // Remove all the manager had, then add back what someone owns ...
    let mut kept = named(&to_field_set(&remove_items(merged, &last, "", schema), schema));
    kept.union(&managed);
    let pruned = remove_items(merged, &merged_set.difference(&kept), "", schema);
    // ... and of what went, remove only what the manager had.
    let gone = merged_set.difference(&named(&to_field_set(&pruned, schema)));
    remove_items(merged, &gone.intersection(&last), "", schema)
}

/// `value` without the members of `set` (structured-merge-diff's `RemoveItems`): a member goes
/// with everything below it, a path with members below it is walked into. A map or list left
/// empty by the removal goes too. The key fields of an associative list's remaining items stay.
fn remove_items(value: &Value, set: &FieldSet, spath: &str, schema: &Schema) -> Value {
    remove_below(value, set, spath, schema, &[])
}

fn remove_below(value: &Value, set: &FieldSet, spath: &str, schema: &Schema, keys: &[String]) -> Value {
    match value {
        Value::Object(map) if !schema.is_atomic_map(spath) => {
            let mut out = Map::new();
            for (key, child) in map {
                let below = set.child(&field(key));
                match below {
                    Some(b) if b.is_member() && !keys.contains(key) => {}
                    Some(b) => {
                        let child_spath = child_path(spath, key);
                        let kept = remove_below(child, b, &child_spath, schema, &[]);
                        if !emptied(child, &kept) {
                            out.insert(key.clone(), kept);
                        }
                    }
                    None => drop(out.insert(key.clone(), child.clone())),
                }
            }
            Value::Object(out)
        }
        Value::Array(list) => {
            let list_type = schema.list_type(spath);
            let Some(ids) = item_elements(list, list_type) else {
                return value.clone();
            };
            let keys: Vec<String> = match list_type {
                ListType::Map(keys) => keys.iter().map(|k| k.name.clone()).collect(),
                _ => Vec::new(),
            };
            let mut out = Vec::with_capacity(list.len());
            for (id, item) in ids.iter().zip(list) {
                match set.child(id) {
                    Some(b) if b.is_member() => {}
                    Some(b) => out.push(remove_below(item, b, spath, schema, &keys)),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        _ => value.clone(),
    }
}

/// Whether a removal emptied a map or list that had something in it.
fn emptied(before: &Value, after: &Value) -> bool {
    let len = |v: &Value| match v {
        Value::Object(m) => Some(m.len()),
        Value::Array(a) => Some(a.len()),
        _ => None,
    };
    matches!((len(before), len(after)), (Some(b), Some(0)) if b > 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::schema::ListKey;
    use super::*;

    fn set(paths: &[&[&str]]) -> FieldSet {
        let mut out = FieldSet::default();
        for p in paths {
            out.insert(&p.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>());
        }
        out
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().or(i.as_str()).unwrap())
            .collect()
    }

    #[test]
    fn a_keyed_list_takes_the_applied_order_and_places_new_items_where_applied() {
        let schema = Schema::for_kind("", "Pod");
        let live = json!({"spec": {"containers": [{"name": "main", "image": "a"}]}});
        let config = json!({"spec": {"containers": [{"name": "sidecar"}, {"name": "main"}]}});
        let out = merge_applied(&live, &config, "", &schema);
        assert_eq!(names(&out["spec"]["containers"]), ["sidecar", "main"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "a");

        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let config = json!({"spec": {"containers": [{"name": "c"}, {"name": "x"}, {"name": "a"}]}});
        let out = merge_applied(&live, &config, "", &schema);
        assert_eq!(names(&out["spec"]["containers"]), ["b", "c", "x", "a"]);
    }

    #[test]
    fn a_set_keeps_live_only_items_in_place_and_inserts_new_ones_before_the_next_shared() {
        let schema = Schema::custom();
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let config = json!({"metadata": {"finalizers": ["c", "b"]}});
        let out = merge_applied(&live, &config, "", &schema);
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "b"]));
    }

    #[test]
    fn pruning_removes_a_named_field_left_without_owned_values() {
        let schema = Schema::for_kind("example.com", "Widget")
            .with_list("spec.items", ListType::Map(vec![ListKey::new("name")]))
            .with_list("spec.tags", ListType::Set);
        let merged = json!({"metadata": {"name": "w", "uid": "u", "labels": {"l": "1"}},
            "spec": {"items": [{"name": "x"}], "tags": ["a"], "size": 1}});
        let last = set(&[
            &["f:metadata", "f:labels", "f:l"],
            &["f:spec", "f:items", "k:{\"name\":\"x\"}"],
            &["f:spec", "f:items", "k:{\"name\":\"x\"}", "f:name"],
            &["f:spec", "f:tags", "v:\"a\""],
        ]);
        let managed = set(&[&["f:spec", "f:size"]]);
        let out = prune(&merged, &last, &managed, &schema);
        assert_eq!(out, json!({"metadata": {"name": "w", "uid": "u"}, "spec": {"size": 1}}));
    }

    #[test]
    fn pruning_keeps_what_another_manager_owns() {
        let schema = Schema::for_kind("", "ConfigMap");
        let merged = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "x": "y"}});
        let last = set(&[&["f:metadata", "f:labels", "f:a"], &["f:data", "f:k"]]);
        let managed = set(&[&["f:metadata", "f:labels", "f:b"], &["f:data", "f:x"]]);
        let out = prune(&merged, &last, &managed, &schema);
        assert_eq!(
            out,
            json!({"metadata": {"name": "c", "labels": {"b": "2"}}, "data": {"x": "y"}})
        );
    }

    #[test]
    fn entries_of_a_map_are_not_promoted_but_owned_whole() {
        let schema = Schema::custom().with_map_entries("spec.config", Vec::<String>::new());
        assert!(schema.is_field("spec", "config"));
        assert!(!schema.is_field("spec.config", "a"));
        assert!(!schema.is_field("spec.config.a", "b"));
        let config = json!({"spec": {"config": {"a": {"b": 1}}}});
        let fields = to_field_set(&config, &schema);
        assert!(fields.contains(&["f:spec", "f:config", "f:a"].map(String::from)));
        assert!(!fields.contains(&["f:spec", "f:config"].map(String::from)));
        let named = fields.with_named_fields(&schema);
        assert!(named.contains(&["f:spec", "f:config"].map(String::from)));
    }
}
