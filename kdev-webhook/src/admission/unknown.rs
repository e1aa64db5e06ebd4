//! Fields a defaulter's type does not know, put back where they were before the patch is
//! computed, so that the patch never removes or moves them.
//!
//! A defaulter sees the object through its Rust type: a field the type does not know (one
//! added to the API after the crate was built, say) is gone from what it returns. The patch is
//! the difference between the object as received and that value, so each such field is put back
//! first, on the element of the mutated value it came from. Array elements are matched by
//! identity, not by index: an element the defaulter left unchanged, then one with the same
//! unique `name` (the merge key of most Kubernetes lists), then, in an array whose length did
//! not change, the element at the same index. An element matched to none (new, or changed and
//! shifted without a name) gets no field back: a field is dropped with an element the
//! defaulter removed, never carried onto another one.

use serde_json::{Map, Value};

/// `mutated` with every field of `original` that a round trip through the type (`round_trip`)
/// drops put back on the value it belongs to, unless the defaulter set that field itself.
pub(crate) fn restore(original: &Value, round_trip: &Value, mutated: Value) -> Value {
    match (original, round_trip, mutated) {
        (Value::Object(original), Value::Object(round_trip), Value::Object(mutated)) => {
            Value::Object(restore_object(original, round_trip, mutated))
        }
        (Value::Array(original), Value::Array(round_trip), Value::Array(mutated))
            if original.len() == round_trip.len() =>
        {
            let matched = match_elements(round_trip, &mutated);
            let restored = mutated
                .into_iter()
                .zip(matched)
                .map(|(value, from)| match from {
                    Some(i) if original[i] != round_trip[i] => restore(&original[i], &round_trip[i], value),
                    _ => value,
                })
                .collect();
            Value::Array(restored)
        }
        (_, _, mutated) => mutated,
    }
}

fn restore_object(
    original: &Map<String, Value>,
    round_trip: &Map<String, Value>,
    mut mutated: Map<String, Value>,
) -> Map<String, Value> {
    for (key, value) in original {
        match round_trip.get(key) {
            // The type dropped it (unknown, or an explicit null): back, unless the defaulter
            // set it.
            None => {
                if !mutated.contains_key(key) {
                    mutated.insert(key.clone(), value.clone());
                }
            }
            // Known: fields below it may not be. Removed by the defaulter: stays removed.
            Some(known) if known != value => {
                if let Some(slot) = mutated.get_mut(key) {
                    let taken = slot.take();
                    *slot = restore(value, known, taken);
                }
            }
            Some(_) => {}
        }
    }
    mutated
}

/// For each element of `mutated`, the index of the element of `round_trip` it is, if known.
fn match_elements(round_trip: &[Value], mutated: &[Value]) -> Vec<Option<usize>> {
    let mut used = vec![false; round_trip.len()];
    let mut matched = vec![None; mutated.len()];
    fn take(j: usize, i: usize, used: &mut [bool], matched: &mut [Option<usize>]) {
        used[i] = true;
        matched[j] = Some(i);
    }
    // 1. Unchanged, at the same index.
    for (j, value) in mutated.iter().enumerate() {
        if round_trip.get(j) == Some(value) {
            take(j, j, &mut used, &mut matched);
        }
    }
    // 2. Unchanged, elsewhere (an element inserted or removed before it).
    for (j, value) in mutated.iter().enumerate() {
        if matched[j].is_none()
            && let Some(i) = (0..round_trip.len()).find(|&i| !used[i] && round_trip[i] == *value)
        {
            take(j, i, &mut used, &mut matched);
        }
    }
    // 3. Changed, with the same name, where names are unique on both sides.
    for (j, value) in mutated.iter().enumerate() {
        if matched[j].is_some() {
            continue;
        }
        let Some(name) = name(value) else { continue };
        if mutated.iter().filter(|v| name_is(v, name)).count() != 1 {
            continue;
        }
        let mut same = (0..round_trip.len()).filter(|&i| name_is(&round_trip[i], name));
        if let (Some(i), None) = (same.next(), same.next())
            && !used[i]
        {
            take(j, i, &mut used, &mut matched);
        }
    }
    // 4. Changed, without a name, in an array whose length did not change: the same index.
    if round_trip.len() == mutated.len() {
        for j in 0..mutated.len() {
            if matched[j].is_none() && !used[j] && name(&mutated[j]).is_none() && name(&round_trip[j]).is_none() {
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

    fn patched(original: &Value, mutated: Value) -> Value {
        let restored = restore(original, &known_only(original), mutated);
        let patch = json_patch::diff(original, &restored);
        let mut applied = original.clone();
        json_patch::patch(&mut applied, &patch.0).unwrap();
        applied
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
