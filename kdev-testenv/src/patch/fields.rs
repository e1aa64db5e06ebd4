//! Sets of field paths in the `FieldsV1` wire format, as structured-merge-diff's
//! [`fieldpath.Set`](https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/fieldpath/set.go).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::schema::{ListType, Schema, child_path};

/// A set of field paths; each path element is a `FieldsV1` key: `f:<field>`, `k:<json key object>`,
/// `v:<json value>` or `i:<index>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias = "fieldpath.Set")]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Parses a `fieldsV1` object; `None` if it is not made of nested objects.
    pub fn from_fields_v1(value: &Value) -> Option<Self> {
        Self::parse(value, true)
    }

    /// Parses one node: an empty object below the root is a leaf member.
    fn parse(value: &Value, root: bool) -> Option<Self> {
        let Value::Object(map) = value else { return None };
        let leaf = !root && map.is_empty();
        let mut set = FieldSet {
            member: leaf || map.contains_key("."),
            children: BTreeMap::new(),
        };
        for (key, child) in map {
            if key != "." {
                set.children.insert(key.clone(), FieldSet::parse(child, false)?);
            }
        }
        Some(set)
    }

    /// The `fieldsV1` object (`{}` leaves, `".": {}` for paths that are members and have children).
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Adds `path` (an empty path is ignored).
    pub fn insert(&mut self, path: &[String]) {
        if let Some((first, rest)) = path.split_first() {
            let child = self.children.entry(first.clone()).or_default();
            if rest.is_empty() {
                child.member = true;
            } else {
                child.insert(rest);
            }
        }
    }

    /// Removes `path` and everything below it.
    pub fn remove_tree(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.children.remove(first);
        } else if let Some(child) = self.children.get_mut(first) {
            child.remove_tree(rest);
            if !child.member && child.children.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// Whether `path` is in the set.
    pub fn contains(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether `path` or any path below it is in the set.
    pub fn covers(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.member || !self.children.is_empty(),
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.covers(rest)),
        }
    }

    /// Adds every path of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, child) in &other.children {
            self.children.entry(key.clone()).or_default().union(child);
        }
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, |a, b| a && !b)
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, |a, b| a && b)
    }

    fn combine(&self, other: &FieldSet, keep: fn(bool, bool) -> bool) -> FieldSet {
        let empty = FieldSet::default();
        let mut out = FieldSet {
            member: keep(self.member, other.member),
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let result = child.combine(other.children.get(key).unwrap_or(&empty), keep);
            if result.member || !result.children.is_empty() {
                out.children.insert(key.clone(), result);
            }
        }
        out
    }

    /// This set with every named field that has paths below it a member too, as
    /// structured-merge-diff's `EnsureNamedFieldsAreMembers`: a set holding `spec.items[x]` also
    /// holds `spec` and `spec.items`, but one holding `spec.labels.a` not the map entry `a`'s
    /// parent entries (only [`Schema::is_field`] fields are promoted; list items never are).
    #[doc(alias = "EnsureNamedFieldsAreMembers")]
    pub(crate) fn with_named_fields(&self, schema: &Schema) -> FieldSet {
        self.named_fields_at(schema, "")
    }

    fn named_fields_at(&self, schema: &Schema, spath: &str) -> FieldSet {
        let mut out = FieldSet {
            member: self.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            let (below, named) = match element.strip_prefix("f:") {
                Some(name) => (child_path(spath, name), schema.is_field(spath, name)),
                None => (spath.to_owned(), false),
            };
            let mut promoted = child.named_fields_at(schema, &below);
            promoted.member |= named && !child.children.is_empty();
            out.children.insert(element.clone(), promoted);
        }
        out
    }

    /// The set below one path element.
    pub(crate) fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Whether this node's own path is in the set.
    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    /// Every path in the set, in `FieldsV1` key order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (key, child) in &self.children {
            prefix.push(key.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }
}

/// Renders a path as structured-merge-diff prints it: `.spec.containers[name="web"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(map) => map
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                Err(_) => key.to_owned(),
            };
            out.push_str(&format!("[{fields}]"));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// The `f:` element of a field.
pub(crate) fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The path elements of the items of a granular list, or `None` when the list must be treated as atomic
/// (its type is atomic, an element lacks a key, or two elements share one).
pub(crate) fn item_elements(list: &[Value], list_type: &ListType) -> Option<Vec<String>> {
    if *list_type == ListType::Atomic {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let element = match list_type {
            ListType::Atomic => return None,
            ListType::Set if item.is_object() || item.is_array() => return None,
            ListType::Set => format!("v:{item}"),
            ListType::Map(_) if !item.is_object() => return None,
            ListType::Map(keys) => {
                let mut key = Map::new();
                for k in keys {
                    match item.get(&k.name).or(k.default.as_ref()) {
                        Some(value) => key.insert(k.name.clone(), value.clone()),
                        None => return None,
                    };
                }
                format!("k:{}", Value::Object(key))
            }
        };
        if out.contains(&element) {
            return None;
        }
        out.push(element);
    }
    Some(out)
}

/// The fields an applied configuration sets (structured-merge-diff's `ToFieldSet`): every leaf,
/// every item of a granular list and every entry of a map; named fields holding an object are not
/// members themselves.
pub fn to_field_set(value: &Value, schema: &Schema) -> FieldSet {
    let mut set = FieldSet::default();
    walk_set(value, "", &mut Vec::new(), schema, &mut set);
    set
}

fn walk_set(value: &Value, spath: &str, path: &mut Vec<String>, schema: &Schema, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !schema.is_atomic_map(spath) => {
            for (key, child) in map {
                path.push(field(key));
                walk_set(child, &child_path(spath, key), path, schema, set);
                if !schema.is_field(spath, key) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(list) => match item_elements(list, schema.list_type(spath)) {
            Some(elements) => {
                for (element, item) in elements.into_iter().zip(list) {
                    path.push(element);
                    set.insert(path);
                    walk_set(item, spath, path, schema, set);
                    path.pop();
                }
            }
            None => set.insert(path),
        },
        _ => set.insert(path),
    }
}

/// What changed between two objects (structured-merge-diff's `Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// Fields added or modified.
    pub(crate) fn changed(&self) -> FieldSet {
        let mut out = self.added.clone();
        out.union(&self.modified);
        out
    }
}

/// Compares `old` with `new`, ignoring the server-set fields of [`strip`].
pub(crate) fn compare(old: &Value, new: &Value, schema: &Schema) -> Comparison {
    let mut out = Comparison::default();
    walk_compare(Some(old), Some(new), "", &mut Vec::new(), schema, &mut out);
    out.added = strip(&out.added);
    out.modified = strip(&out.modified);
    out.removed = strip(&out.removed);
    out
}

fn empty_or_none(value: Option<&Value>) -> bool {
    match value {
        None => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(list)) => list.is_empty(),
        Some(_) => false,
    }
}

fn walk_compare(
    old: Option<&Value>,
    new: Option<&Value>,
    spath: &str,
    path: &mut Vec<String>,
    schema: &Schema,
    out: &mut Comparison,
) {
    let both_empty = empty_or_none(old) && empty_or_none(new);
    let granular = match (old, new) {
        (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None) => !schema.is_atomic_map(spath) && !both_empty,
        (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) => {
            let list_type = schema.list_type(spath);
            !both_empty
                && item_elements(a_list(old), list_type).is_some()
                && item_elements(a_list(new), list_type).is_some()
        }
        _ => false,
    };
    if !granular {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    match (old, new) {
        (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) => {
            compare_lists(a_list(old), a_list(new), spath, path, schema, out);
        }
        _ => {
            let empty = Map::new();
            let (a, b) = (
                old.and_then(Value::as_object).unwrap_or(&empty),
                new.and_then(Value::as_object).unwrap_or(&empty),
            );
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                if spath == "metadata" && key == "managedFields" {
                    // Never part of any field set (kube-apiserver strips it the same way).
                    continue;
                }
                path.push(field(key));
                walk_compare(a.get(key), b.get(key), &child_path(spath, key), path, schema, out);
                path.pop();
            }
        }
    }
    if !path.is_empty() && !schema.always_present(spath) {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            _ => {}
        }
    }
}

fn a_list(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(list)) => list,
        _ => &[],
    }
}

fn compare_lists(
    old: &[Value],
    new: &[Value],
    spath: &str,
    path: &mut Vec<String>,
    schema: &Schema,
    out: &mut Comparison,
) {
    let list_type = schema.list_type(spath);
    let old_ids = item_elements(old, list_type).unwrap_or_default();
    let new_ids = item_elements(new, list_type).unwrap_or_default();
    for (id, item) in old_ids.iter().zip(old) {
        let other = new_ids.iter().position(|n| n == id).and_then(|i| new.get(i));
        path.push(id.clone());
        walk_item(Some(item), other, spath, path, schema, out);
        path.pop();
    }
    for (id, item) in new_ids.iter().zip(new) {
        if !old_ids.contains(id) {
            path.push(id.clone());
            walk_item(None, Some(item), spath, path, schema, out);
            path.pop();
        }
    }
}

/// A list item: a leaf for sets, a map with its own membership for associative lists.
fn walk_item(
    old: Option<&Value>,
    new: Option<&Value>,
    spath: &str,
    path: &mut Vec<String>,
    schema: &Schema,
    out: &mut Comparison,
) {
    if old.is_some_and(Value::is_object) || new.is_some_and(Value::is_object) {
        let empty = Map::new();
        let (a, b) = (
            old.and_then(Value::as_object).unwrap_or(&empty),
            new.and_then(Value::as_object).unwrap_or(&empty),
        );
        for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
            path.push(field(key));
            walk_compare(a.get(key), b.get(key), &child_path(spath, key), path, schema, out);
            path.pop();
        }
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if a != b && !a.is_object() => out.modified.insert(path),
        _ => {}
    }
}

/// Paths kube-apiserver never records in managed fields (its `stripMetaManager`).
const STRIPPED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "resourceVersion"],
];

/// The server-set fields of kube-apiserver's strip list, as a set.
pub(crate) fn server_set() -> &'static FieldSet {
    static MEMBERS: std::sync::LazyLock<FieldSet> = std::sync::LazyLock::new(|| {
        let mut members = FieldSet::default();
        for path in STRIPPED {
            members.insert(&path.iter().map(|p| field(p)).collect::<Vec<_>>());
        }
        members
    });
    &MEMBERS
}

/// Removes the server-set fields of kube-apiserver's strip list (and all of `metadata.managedFields`).
pub(crate) fn strip(set: &FieldSet) -> FieldSet {
    let mut out = set.difference(server_set());
    out.remove_tree(&[field("metadata"), field("managedFields")]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn path(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn fields_v1_round_trips_with_dot_markers() {
        let wire = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}});
        let set = FieldSet::from_fields_v1(&wire).unwrap();
        assert!(set.contains(&path(&["f:metadata", "f:labels"])));
        assert!(!set.contains(&path(&["f:metadata"])));
        assert!(set.contains(&path(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"])));
        assert_eq!(set.to_fields_v1(), wire);
        assert_eq!(FieldSet::from_fields_v1(&json!({"f:a": 1})), None);
    }

    #[test]
    fn paths_print_like_structured_merge_diff() {
        let cases = [
            (path(&["f:spec", "f:replicas"]), ".spec.replicas"),
            (
                path(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"]),
                ".spec.containers[name=\"web\"].image",
            ),
            (
                path(&["f:spec", "f:ports", "k:{\"port\":80,\"protocol\":\"TCP\"}"]),
                ".spec.ports[port=80,protocol=\"TCP\"]",
            ),
            (
                path(&["f:metadata", "f:finalizers", "v:\"a\""]),
                ".metadata.finalizers[=\"a\"]",
            ),
        ];
        for (p, printed) in cases {
            assert_eq!(path_string(&p), printed);
        }
    }

    #[test]
    fn strip_removes_server_set_fields_but_keeps_their_siblings() {
        let mut set = FieldSet::default();
        for p in [
            &["f:metadata", "f:name"][..],
            &["f:metadata", "f:labels", "f:a"],
            &["f:kind"],
            &["f:metadata", "f:uid"],
        ] {
            set.insert(&path(p));
        }
        assert_eq!(strip(&set).paths(), vec![path(&["f:metadata", "f:labels", "f:a"])]);
    }

    fn field_set() -> impl Strategy<Value = FieldSet> {
        let element = prop_oneof!["f:[a-c]", "k:\\{\"name\":\"[xy]\"\\}", "v:\"[xy]\""];
        prop::collection::vec(prop::collection::vec(element, 1..4), 0..6).prop_map(|paths| {
            let mut set = FieldSet::default();
            for p in paths {
                set.insert(&p);
            }
            set
        })
    }

    proptest! {
        #[test]
        fn every_set_survives_the_fields_v1_round_trip(set in field_set()) {
            prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Some(set));
        }

        #[test]
        fn difference_and_intersection_partition_a_set(a in field_set(), b in field_set()) {
            let mut rebuilt = a.difference(&b);
            rebuilt.union(&a.intersection(&b));
            prop_assert_eq!(rebuilt.paths(), a.paths());
        }
    }
}
