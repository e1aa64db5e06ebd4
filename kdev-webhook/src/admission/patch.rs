//! A defaulter's patch: its own changes, and only those, carried onto the object as the request
//! sent it.
//!
//! A defaulter sees the object through its Rust type, and what the type encodes differs from
//! what the request carried even when the defaulter changes nothing: a field the type does not
//! know (one added to the API after the crate was built, say) is gone, an `Option` serialized
//! without `skip_serializing_if` appears as `null`, a serde default appears with its value. So the
//! defaulter's changes are the differences between the object as its type encodes it *before*
//! the defaulter runs and the same *after*; those differences are applied to the object as
//! received, and the patch is computed from it. Fields the defaulter did not touch stay exactly as
//! the request sent them: present, absent or `null`.
//!
//! Array elements are matched by identity, not by index: an element the defaulter left
//! unchanged, then one with the same unique `name` (the merge key of most Kubernetes lists), then,
//! in an array whose length did not change, the element at the same index. An element matched to
//! none (new, or changed and shifted without a name) is sent as the type encodes it: a field is
//! dropped with an element the defaulter removed, never carried onto another one.
//!
//! A value the defaulter adds where the request had none (a field, an object, an element) is
//! sent without the `null` members of its objects: each is a `None` of the type, and the request
//! did not send it either. Only a field the request carried can be set to `null`.

use serde_json::{Map, Value};

/// The JSON patch that applies the defaulter's changes (`before` to `after`, both as the type
/// encodes the object) to `original`, the object as the request sent it. Empty when the
/// defaulter changed nothing.
pub(crate) fn defaulted(original: &Value, before: &Value, after: &Value) -> json_patch::Patch {
    if before == after {
        return json_patch::Patch(Vec::new());
    }
    let patched = carry(original.clone(), before, after);
    json_patch::diff(original, &patched)
}

/// `original` with the changes from `before` to `after` applied, each where it belongs.
fn carry(original: Value, before: &Value, after: &Value) -> Value {
    if before == after {
        return original;
    }
    match (original, before, after) {
        (Value::Object(original), Value::Object(before), Value::Object(after)) => {
            Value::Object(carry_object(original, before, after))
        }
        (Value::Array(original), Value::Array(before), Value::Array(after)) if original.len() == before.len() => {
            let matched = match_elements(before, after);
            let mut original: Vec<Option<Value>> = original.into_iter().map(Some).collect();
            let carried = after
                .iter()
                .zip(matched)
                .map(|(now, from)| match from.and_then(|i| Some((i, original[i].take()?))) {
                    Some((i, was)) => carry(was, &before[i], now),
                    None => added(now),
                })
                .collect();
            Value::Array(carried)
        }
        // A scalar, a change of type, or an array the type changed the length of: the
        // defaulter's value.
        (_, _, after) => added(after),
    }
}

fn carry_object(
    mut original: Map<String, Value>,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Map<String, Value> {
    for (key, was) in before {
        match after.get(key) {
            // Removed by the defaulter (an `Option` it set to `None`, skipped when `None`).
            None => {
                original.remove(key);
            }
            Some(now) if now == was => {}
            Some(now) => match original.get_mut(key) {
                Some(slot) => {
                    let taken = slot.take();
                    *slot = carry(taken, was, now);
                }
                // Absent from the request (the type encoded a `null` or a default for it): the
                // defaulter's value is added, unless it is `None`, which absent already says.
                None if now.is_null() => {}
                None => {
                    original.insert(key.clone(), added(now));
                }
            },
        }
    }
    for (key, now) in after {
        // A `None` the request did not send either is no change.
        if !before.contains_key(key) && (!now.is_null() || original.contains_key(key)) {
            original.insert(key.clone(), added(now));
        }
    }
    original
}

/// A value the defaulter put where the request had none, without the `null` members of its
/// objects: each is a `None` the type encodes, which the request did not send either (and which
/// a `nullable` field would store).
fn added(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), added(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(added).collect()),
        other => other.clone(),
    }
}

/// For each element of `after`, the index of the element of `before` it is, if known.
fn match_elements(before: &[Value], after: &[Value]) -> Vec<Option<usize>> {
    let mut used = vec![false; before.len()];
    let mut matched = vec![None; after.len()];
    fn take(j: usize, i: usize, used: &mut [bool], matched: &mut [Option<usize>]) {
        used[i] = true;
        matched[j] = Some(i);
    }
    // 1. Unchanged, at the same index.
    for (j, value) in after.iter().enumerate() {
        if before.get(j) == Some(value) {
            take(j, j, &mut used, &mut matched);
        }
    }
    // 2. Unchanged, elsewhere (an element inserted or removed before it).
    for (j, value) in after.iter().enumerate() {
        if matched[j].is_none()
            && let Some(i) = (0..before.len()).find(|&i| !used[i] && before[i] == *value)
        {
            take(j, i, &mut used, &mut matched);
        }
    }
    // 3. Changed, with the same name, where names are unique on both sides.
    for (j, value) in after.iter().enumerate() {
        if matched[j].is_some() {
            continue;
        }
        let Some(name) = name(value) else { continue };
        if after.iter().filter(|v| name_is(v, name)).count() != 1 {
            continue;
        }
        let mut same = (0..before.len()).filter(|&i| name_is(&before[i], name));
        if let (Some(i), None) = (same.next(), same.next())
            && !used[i]
        {
            take(j, i, &mut used, &mut matched);
        }
    }
    // 4. Changed, without a name, in an array whose length did not change: the same index.
    if before.len() == after.len() {
        for j in 0..after.len() {
            if matched[j].is_none() && !used[j] && name(&after[j]).is_none() && name(&before[j]).is_none() {
                take(j, j, &mut used, &mut matched);
            }
        }
    }
    matched
}

/// An element's `name`, when it is an object with a string `name`.
fn name(value: &Value) -> Option<&str> {
    value.get("name").and_then(Value::as_str)
}

fn name_is(value: &Value, wanted: &str) -> bool {
    name(value) == Some(wanted)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The object a round trip through a type knowing only `name` and `image` gives.
    fn known_only(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, v)| !k.starts_with("unknown") && !v.is_null())
                    .map(|(k, v)| (k.clone(), known_only(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(known_only).collect()),
            other => other.clone(),
        }
    }

    fn apply(original: &Value, patch: &json_patch::Patch) -> Value {
        let mut applied = original.clone();
        json_patch::patch(&mut applied, &patch.0).unwrap();
        applied
    }

    /// `original` patched with the change from its round trip to `mutated`.
    fn patched(original: &Value, mutated: Value) -> Value {
        apply(original, &defaulted(original, &known_only(original), &mutated))
    }

    #[test]
    fn fields_the_type_drops_stay_and_the_defaulters_removals_go() {
        let original = json!({"a": 1, "unknown": true, "gone": 2, "nulled": null});
        let mutated = json!({"a": 5, "b": 1});
        assert_eq!(
            patched(&original, mutated),
            json!({"a": 5, "b": 1, "unknown": true, "nulled": null})
        );
    }

    #[test]
    fn nulls_the_type_adds_are_no_change_and_no_patch() {
        // A type whose `Option`s serialize as `null`: the request sent neither `b` nor `c`.
        let original = json!({"spec": {"a": 1}});
        let encoded = json!({"spec": {"a": 1, "b": null, "c": null}});
        assert_eq!(defaulted(&original, &encoded, &encoded).0, []);
    }

    #[test]
    fn a_field_set_that_the_request_lacked_is_one_add() {
        let original = json!({"spec": {"a": 1}});
        let before = json!({"spec": {"a": 1, "b": null, "c": null}});
        let after = json!({"spec": {"a": 1, "b": "x", "c": null}});
        let patch = serde_json::to_value(defaulted(&original, &before, &after)).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/spec/b", "value": "x"}]));
    }

    #[test]
    fn a_nested_object_the_request_lacked_is_added_whole_and_a_present_one_changed_in_place() {
        let original = json!({"spec": {"job": {"image": "x", "unknownField": 1}}});
        let before = json!({"spec": {"job": {"image": "x", "pull": null}, "policy": null}});
        let after = json!({"spec": {
            "job": {"image": "x", "pull": "Always"},
            "policy": {"limit": 3, "burst": null, "rules": [{"name": "r", "max": null}]},
        }});
        let patch = defaulted(&original, &before, &after);
        let ops = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            ops,
            json!([
                {"op": "add", "path": "/spec/job/pull", "value": "Always"},
                {"op": "add", "path": "/spec/policy", "value": {"limit": 3, "rules": [{"name": "r"}]}},
            ])
        );
        assert_eq!(
            apply(&original, &patch),
            json!({"spec": {
                "job": {"image": "x", "pull": "Always", "unknownField": 1},
                "policy": {"limit": 3, "rules": [{"name": "r"}]},
            }})
        );
    }

    #[test]
    fn a_value_the_request_sent_is_replaced_and_an_explicit_null_it_sent_stays() {
        let original = json!({"a": 1, "b": null});
        let before = json!({"a": 1, "b": null});
        let after = json!({"a": 2, "b": null});
        let ops = serde_json::to_value(defaulted(&original, &before, &after)).unwrap();
        assert_eq!(ops, json!([{"op": "replace", "path": "/a", "value": 2}]));
    }

    #[test]
    fn unknown_fields_follow_their_element_when_the_first_is_removed() {
        let original = json!({"items": [
            {"name": "a", "image": "x", "unknownA": 1},
            {"name": "b", "image": "y", "unknownB": 2},
        ]});
        let mutated = json!({"items": [{"name": "b", "image": "y"}]});
        assert_eq!(
            patched(&original, mutated),
            json!({"items": [{"name": "b", "image": "y", "unknownB": 2}]})
        );
    }

    #[test]
    fn unknown_fields_follow_their_element_when_one_is_prepended_and_it_changed() {
        let original = json!({"items": [
            {"name": "a", "image": "x", "unknownA": 1},
            {"name": "b", "image": "y", "unknownB": 2},
        ]});
        let mutated = json!({"items": [
            {"name": "init", "image": "z"},
            {"name": "a", "image": "x2"},
            {"name": "b", "image": "y"},
        ]});
        assert_eq!(
            patched(&original, mutated),
            json!({"items": [
                {"name": "init", "image": "z"},
                {"name": "a", "image": "x2", "unknownA": 1},
                {"name": "b", "image": "y", "unknownB": 2},
            ]})
        );
    }

    #[test]
    fn elements_keep_what_the_request_sent_for_fields_the_type_encodes_as_null() {
        let original = json!({"items": [{"name": "a"}, {"name": "b"}]});
        let before = json!({"items": [{"name": "a", "image": null}, {"name": "b", "image": null}]});
        let after = json!({"items": [
            {"name": "init", "image": "z"},
            {"name": "a", "image": "x"},
            {"name": "b", "image": null},
        ]});
        assert_eq!(
            apply(&original, &defaulted(&original, &before, &after)),
            json!({"items": [{"name": "init", "image": "z"}, {"name": "a", "image": "x"}, {"name": "b"}]})
        );
        // A new element leaves out the `None`s of its type too.
        let after = json!({"items": [{"name": "a", "image": null}, {"name": "b", "image": null}, {"name": "c", "image": null}]});
        assert_eq!(
            apply(&original, &defaulted(&original, &before, &after)),
            json!({"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
        );
    }

    proptest::proptest! {
        /// Whatever a defaulter does to a list of named elements (drop some, change some,
        /// insert new ones anywhere), each element it keeps gets back its own unknown fields
        /// and no other.
        #[test]
        fn unknown_fields_stay_with_their_named_element(
            images in proptest::collection::vec(0u8..4, 0..6),
            keep in proptest::collection::vec(proptest::bool::ANY, 6),
            change in proptest::collection::vec(proptest::bool::ANY, 6),
            inserts in proptest::collection::vec((0usize..8, 0u8..4), 0..3),
        ) {
            let original: Vec<Value> = images
                .iter()
                .enumerate()
                .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "unknownField": i}))
                .collect();
            let mut mutated: Vec<Value> = Vec::new();
            let mut expected: Vec<Value> = Vec::new();
            for (i, element) in original.iter().enumerate() {
                if !keep[i] {
                    continue;
                }
                let mut typed = known_only(element);
                if change[i] {
                    typed["image"] = json!(100 + i);
                }
                let mut with_unknown = typed.clone();
                with_unknown["unknownField"] = json!(i);
                mutated.push(typed);
                expected.push(with_unknown);
            }
            for (n, (at, image)) in inserts.into_iter().enumerate() {
                let at = at.min(mutated.len());
                let new = json!({"name": format!("new{n}"), "image": image});
                mutated.insert(at, new.clone());
                expected.insert(at, new);
            }
            let original = json!({"items": original});
            let applied = patched(&original, json!({"items": mutated}));
            proptest::prop_assert_eq!(applied, json!({"items": expected}));
        }

        /// A defaulter that changes nothing sends no patch, whatever the type adds or drops.
        #[test]
        fn no_change_is_no_patch(
            fields in proptest::collection::btree_map("[a-d]", proptest::option::of(0u8..3), 0..4),
            typed_nulls in proptest::collection::vec("[a-f]", 0..4),
        ) {
            let original = Value::Object(
                fields.iter().map(|(k, v)| (k.clone(), v.map_or(Value::Null, |v| json!(v)))).collect(),
            );
            let mut encoded = known_only(&original);
            for key in typed_nulls {
                encoded.as_object_mut().unwrap().entry(key).or_insert(Value::Null);
            }
            proptest::prop_assert!(defaulted(&original, &encoded, &encoded).0.is_empty());
        }
    }

    #[test]
    fn an_unnamed_changed_element_of_a_shifted_array_gets_nothing_rather_than_anothers_fields() {
        let original = json!([{"image": "x", "unknownA": 1}, {"image": "y", "unknownB": 2}]);
        let mutated = json!([{"image": "new"}, {"image": "x2"}, {"image": "y"}]);
        assert_eq!(
            patched(&original, mutated),
            json!([{"image": "new"}, {"image": "x2"}, {"image": "y", "unknownB": 2}])
        );
    }
}
