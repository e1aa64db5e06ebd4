//! Tests of `kdev_core::store`: keys, zero-copy reads, indexes, atomic replace, and a
//! proptest that the indexes stay consistent under random changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kdev_core::store::{self, Error, NAMESPACE_INDEX, key_of, split_key};
use kube_core::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use proptest::prelude::*;

fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.namespace = Some(ns.into());
    pod.metadata.name = Some(name.into());
    if !labels.is_empty() {
        pod.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    pod
}

/// Index values: every label value of the pod.
fn label_values(pod: &Pod) -> Vec<String> {
    pod.metadata.labels.iter().flatten().map(|(_, v)| v.clone()).collect()
}

fn sorted(keys: Vec<Arc<str>>) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn keys_are_namespace_slash_name_or_name_for_cluster_scoped_objects() {
    assert_eq!(key_of(&pod("default", "web", &[])), "default/web");
    let mut ns = Namespace::default();
    ns.metadata.name = Some("prod".into());
    assert_eq!(key_of(&ns), "prod");
    assert_eq!(key_of(&Pod::default()), "", "no name: no panic");
}

#[test]
fn split_key_inverts_key_of_and_rejects_extra_slashes() {
    assert_eq!(split_key("default/web"), Some((Some("default"), "web")));
    assert_eq!(split_key("prod"), Some((None, "prod")));
    assert_eq!(split_key("a/b/c"), None);
}

#[test]
fn reads_hand_out_the_stored_arc_never_a_copy() {
    let (reader, mut writer) = store::store::<Pod>();
    let stored = Arc::new(pod("default", "web", &[("app", "web")]));
    writer.apply(Arc::clone(&stored));
    assert!(Arc::ptr_eq(&reader.get_by_key("default/web").unwrap(), &stored));
    assert!(Arc::ptr_eq(&reader.get(Some("default"), "web").unwrap(), &stored));
    assert!(Arc::ptr_eq(&reader.list()[0], &stored));
    assert!(Arc::ptr_eq(
        &reader.by_index(NAMESPACE_INDEX, "default").unwrap()[0],
        &stored
    ));
}

#[test]
fn the_namespace_index_is_built_in() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.apply(Arc::new(pod("a", "x", &[])));
    writer.apply(Arc::new(pod("a", "y", &[])));
    writer.apply(Arc::new(pod("b", "x", &[])));
    assert_eq!(reader.index_names(), [NAMESPACE_INDEX]);
    assert_eq!(sorted(reader.index_keys(NAMESPACE_INDEX, "a").unwrap()), ["a/x", "a/y"]);
    let mut values = reader.index_values(NAMESPACE_INDEX).unwrap();
    values.sort();
    assert_eq!(values, ["a", "b"]);
}

#[test]
fn an_object_can_have_many_index_values_and_index_finds_objects_sharing_any() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("labels", label_values).unwrap();
    writer.apply(Arc::new(pod("ns", "p1", &[("a", "red"), ("b", "blue")])));
    writer.apply(Arc::new(pod("ns", "p2", &[("a", "blue")])));
    writer.apply(Arc::new(pod("ns", "p3", &[("a", "green")])));
    assert_eq!(sorted(reader.index_keys("labels", "blue").unwrap()), ["ns/p1", "ns/p2"]);
    let probe = pod("ns", "probe", &[("x", "red"), ("y", "blue")]);
    let mut found: Vec<String> = reader
        .index("labels", &probe)
        .unwrap()
        .iter()
        .map(|p| key_of(&**p))
        .collect();
    found.sort();
    assert_eq!(found, ["ns/p1", "ns/p2"], "p1 matches twice but is listed once");
}

#[test]
fn an_index_added_after_objects_exist_is_back_filled() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.apply(Arc::new(pod("ns", "p1", &[("app", "web")])));
    writer.add_indexer("labels", label_values).unwrap();
    assert_eq!(sorted(reader.index_keys("labels", "web").unwrap()), ["ns/p1"]);
}

#[test]
fn index_names_must_be_unique_and_queries_must_name_an_existing_index() {
    let (reader, mut writer) = store::store::<Pod>();
    assert_eq!(
        writer.add_indexer(NAMESPACE_INDEX, label_values),
        Err(Error::IndexerConflict(NAMESPACE_INDEX.into()))
    );
    assert_eq!(
        reader.by_index("nope", "x").unwrap_err(),
        Error::UnknownIndex("nope".into())
    );
    assert_eq!(
        reader.index_keys("nope", "x").unwrap_err(),
        Error::UnknownIndex("nope".into())
    );
    assert_eq!(
        reader.index_values("nope").unwrap_err(),
        Error::UnknownIndex("nope".into())
    );
}

#[test]
fn an_update_moves_the_key_between_values_and_empty_values_disappear() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("labels", label_values).unwrap();
    writer.apply(Arc::new(pod("ns", "p", &[("app", "old")])));
    let replaced = writer.apply(Arc::new(pod("ns", "p", &[("app", "new")])));
    assert!(replaced.is_some());
    assert!(reader.index_keys("labels", "old").unwrap().is_empty());
    assert_eq!(
        reader.index_values("labels").unwrap(),
        ["new"],
        "no empty set left behind (kubernetes#84959)"
    );
}

#[test]
fn delete_removes_the_object_from_every_index() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("labels", label_values).unwrap();
    writer.apply(Arc::new(pod("ns", "p", &[("app", "web")])));
    assert!(writer.delete(&pod("ns", "p", &[])).is_some());
    assert!(writer.delete_key("ns/p").is_none());
    assert!(reader.is_empty());
    assert!(reader.index_values("labels").unwrap().is_empty());
    assert!(reader.index_values(NAMESPACE_INDEX).unwrap().is_empty());
}

#[test]
fn replace_swaps_the_whole_content_and_rebuilds_indexes() {
    let (reader, mut writer) = store::store::<Pod>();
    let earlier_reader = reader.clone();
    writer.add_indexer("labels", label_values).unwrap();
    writer.apply(Arc::new(pod("old", "p", &[("app", "old")])));
    writer.replace([
        Arc::new(pod("new", "a", &[("app", "new")])),
        Arc::new(pod("new", "b", &[("app", "new")])),
    ]);
    assert_eq!(sorted(earlier_reader.list_keys()), ["new/a", "new/b"]);
    assert_eq!(reader.index_values("labels").unwrap(), ["new"]);
    assert_eq!(reader.index_values(NAMESPACE_INDEX).unwrap(), ["new"]);
    assert!(writer.check_consistency().is_ok());
}

#[test]
fn dynamic_objects_and_metadata_only_objects_are_stored_too() {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let resource = ApiResource::from_gvk(&gvk);
    let (reader, mut writer) = store::store::<DynamicObject>();
    writer.apply(Arc::new(DynamicObject::new("w1", &resource).within("team-a")));
    assert!(reader.get_by_key("team-a/w1").is_some());
    assert_eq!(reader.index_keys(NAMESPACE_INDEX, "team-a").unwrap().len(), 1);

    let (reader, mut writer) = store::store::<PartialObjectMeta<Pod>>();
    let mut meta = PartialObjectMeta::<Pod>::default();
    meta.metadata.namespace = Some("ns".into());
    meta.metadata.name = Some("p".into());
    writer.apply(Arc::new(meta));
    assert!(reader.get(Some("ns"), "p").is_some());
}

#[derive(Debug, Clone)]
enum Op {
    Apply(u8, u8, u8),
    Delete(u8, u8),
    Replace(Vec<(u8, u8, u8)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3u8, 0..5u8, 0..4u8).prop_map(|(ns, n, l)| Op::Apply(ns, n, l)),
        2 => (0..3u8, 0..5u8).prop_map(|(ns, n)| Op::Delete(ns, n)),
        1 => prop::collection::vec((0..3u8, 0..5u8, 0..4u8), 0..8).prop_map(Op::Replace),
    ]
}

fn model_pod(ns: u8, name: u8, label: u8) -> Pod {
    // Two label values per pod, so an object sits under several values of one index.
    let (a, b) = (format!("v{label}"), format!("v{}", (label + 1) % 4));
    pod(
        &format!("ns{ns}"),
        &format!("p{name}"),
        &[("a", a.as_str()), ("b", b.as_str())],
    )
}

proptest! {
    #[test]
    fn indexes_stay_consistent_under_random_changes(ops in prop::collection::vec(op(), 1..50)) {
        let (reader, mut writer) = store::store::<Pod>();
        writer.add_indexer("labels", label_values).unwrap();
        writer
            .add_indexer("first-letter", |p: &Pod| p.metadata.name.iter().map(|n| n[..1].to_string()).collect())
            .unwrap();
        let mut model: BTreeMap<String, Pod> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Apply(ns, n, l) => {
                    let p = model_pod(ns, n, l);
                    model.insert(key_of(&p), p.clone());
                    writer.apply(Arc::new(p));
                }
                Op::Delete(ns, n) => {
                    let key = format!("ns{ns}/p{n}");
                    prop_assert_eq!(writer.delete_key(&key).is_some(), model.remove(&key).is_some());
                }
                Op::Replace(list) => {
                    let pods: Vec<Pod> = list.into_iter().map(|(ns, n, l)| model_pod(ns, n, l)).collect();
                    model = pods.iter().map(|p| (key_of(p), p.clone())).collect();
                    writer.replace(pods.into_iter().map(Arc::new));
                }
            }
            prop_assert!(writer.check_consistency().is_ok(), "{:?}", writer.check_consistency());
            prop_assert_eq!(sorted(reader.list_keys()), model.keys().cloned().collect::<Vec<_>>());
            // Every index, recomputed from the model.
            type IndexFn = fn(&Pod) -> Vec<String>;
            let indexes: [(&str, IndexFn); 3] = [
                (NAMESPACE_INDEX, |p| p.metadata.namespace.iter().cloned().collect()),
                ("labels", label_values),
                ("first-letter", |p| p.metadata.name.iter().map(|n| n[..1].to_string()).collect()),
            ];
            for (index, f) in indexes {
                let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (key, p) in &model {
                    for value in f(p) {
                        expected.entry(value).or_default().insert(key.clone());
                    }
                }
                let values: BTreeSet<String> = reader.index_values(index).unwrap().into_iter().collect();
                prop_assert_eq!(&values, &expected.keys().cloned().collect::<BTreeSet<_>>());
                for (value, keys) in expected {
                    let got: BTreeSet<String> = sorted(reader.index_keys(index, &value).unwrap()).into_iter().collect();
                    prop_assert_eq!(&got, &keys);
                    prop_assert_eq!(reader.by_index(index, &value).unwrap().len(), keys.len());
                }
            }
        }
    }
}
