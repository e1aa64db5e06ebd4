//! Tests of `kdev_core::store`: keys, `Arc` sharing, the built-in and custom indexes,
//! updates, deletes and replace, checked against client-go's `ThreadSafeStore` rules; then a
//! proptest that drives random writes and compares every index with a model built from scratch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kdev_core::store::{self, Error, NAMESPACE_INDEX, Store, Writer, key_of, split_key};
use kube_core::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta, PartialObjectMetaExt};
use proptest::prelude::*;

fn meta(namespace: Option<&str>, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        labels: (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
        ..ObjectMeta::default()
    }
}

fn pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: meta(Some(namespace), name, labels),
        ..Pod::default()
    }
}

fn pod_with_images(namespace: &str, name: &str, images: &[&str]) -> Pod {
    let containers = images
        .iter()
        .enumerate()
        .map(|(i, image)| Container {
            name: format!("c{i}"),
            image: Some((*image).to_owned()),
            ..Container::default()
        })
        .collect();
    Pod {
        metadata: meta(Some(namespace), name, &[]),
        spec: Some(PodSpec {
            containers,
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: meta(None, name, &[]),
        ..Namespace::default()
    }
}

/// The value of label `key`, if set: at most one index value per object.
fn label(key: &'static str) -> impl Fn(&Pod) -> Vec<String> + Send + Sync + 'static {
    move |pod: &Pod| {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key).cloned())
            .into_iter()
            .collect()
    }
}

/// Every container image: any number of index values per object, possibly repeated.
fn images(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .filter_map(|c| c.image.clone())
        .collect()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn sorted_keys<K: kube_core::Resource>(objects: &[Arc<K>]) -> Vec<String> {
    sorted(objects.iter().map(|obj| key_of(&**obj)).collect())
}

fn keys(keys: Result<Vec<Arc<str>>, Error>) -> Vec<String> {
    sorted(keys.unwrap().iter().map(|key| key.to_string()).collect())
}

#[test]
fn namespaced_objects_are_keyed_namespace_slash_name_and_cluster_scoped_ones_by_name() {
    assert_eq!(key_of(&pod("default", "web-0", &[])), "default/web-0");
    assert_eq!(key_of(&namespace("kube-system")), "kube-system");
    // An empty namespace is no namespace, as in client-go's MetaNamespaceKeyFunc.
    let mut blank = namespace("kube-public");
    blank.metadata.namespace = Some(String::new());
    assert_eq!(key_of(&blank), "kube-public");
    assert_eq!(key_of(&Pod::default()), "", "no name: an empty key, no panic");

    let (pods, mut pod_writer) = store::store::<Pod>();
    pod_writer.apply(Arc::new(pod("default", "web-0", &[])));
    assert!(pods.get_by_key("default/web-0").is_some());
    assert!(pods.get(Some("default"), "web-0").is_some());
    assert!(pods.get(Some("other"), "web-0").is_none());
    assert!(pods.get(None, "web-0").is_none());

    let (namespaces, mut ns_writer) = store::store::<Namespace>();
    ns_writer.apply(Arc::new(namespace("kube-system")));
    ns_writer.apply(Arc::new(blank));
    assert_eq!(keys(Ok(namespaces.list_keys())), ["kube-public", "kube-system"]);
    assert!(namespaces.get(None, "kube-system").is_some());
    assert!(namespaces.get(Some(""), "kube-public").is_some());
}

#[test]
fn split_key_inverts_key_of() {
    let pod = pod("default", "web-0", &[]);
    assert_eq!(split_key(&key_of(&pod)), Some((Some("default"), "web-0")));
    let ns = namespace("kube-system");
    assert_eq!(split_key(&key_of(&ns)), Some((None, "kube-system")));
}

#[test]
fn split_key_rejects_a_key_with_two_slashes() {
    assert_eq!(split_key("a/b/c"), None);
    assert_eq!(split_key("a//b"), None);
    assert_eq!(split_key("/a/"), None);
}

#[test]
fn reads_hand_out_the_stored_arc_never_a_deep_copy() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("app", label("app")).unwrap();
    let stored = Arc::new(pod("default", "web-0", &[("app", "web")]));
    assert!(writer.apply(Arc::clone(&stored)).is_none());

    assert!(Arc::ptr_eq(&reader.get_by_key("default/web-0").unwrap(), &stored));
    assert!(Arc::ptr_eq(&reader.get(Some("default"), "web-0").unwrap(), &stored));
    assert!(Arc::ptr_eq(&reader.list()[0], &stored));
    assert!(Arc::ptr_eq(
        &reader.by_index(NAMESPACE_INDEX, "default").unwrap()[0],
        &stored
    ));
    assert!(Arc::ptr_eq(&reader.by_index("app", "web").unwrap()[0], &stored));
    assert!(Arc::ptr_eq(&reader.index("app", &stored).unwrap()[0], &stored));

    // Writes hand back the Arc they displaced.
    let newer = Arc::new(pod("default", "web-0", &[("app", "web"), ("v", "2")]));
    assert!(Arc::ptr_eq(&writer.apply(Arc::clone(&newer)).unwrap(), &stored));
    assert!(Arc::ptr_eq(&writer.delete(&newer).unwrap(), &newer));
}

#[test]
fn the_namespace_index_groups_objects_by_namespace() {
    let (reader, mut writer) = store::store::<Pod>();
    assert_eq!(reader.index_names(), [NAMESPACE_INDEX]);
    writer.apply(Arc::new(pod("default", "a", &[])));
    writer.apply(Arc::new(pod("default", "b", &[])));
    writer.apply(Arc::new(pod("kube-system", "a", &[])));

    assert_eq!(
        keys(reader.index_keys(NAMESPACE_INDEX, "default")),
        ["default/a", "default/b"]
    );
    assert_eq!(
        keys(reader.index_keys(NAMESPACE_INDEX, "kube-system")),
        ["kube-system/a"]
    );
    assert_eq!(
        sorted_keys(&reader.by_index(NAMESPACE_INDEX, "default").unwrap()),
        ["default/a", "default/b"]
    );
    assert!(reader.by_index(NAMESPACE_INDEX, "missing").unwrap().is_empty());
    assert!(reader.index_keys(NAMESPACE_INDEX, "missing").unwrap().is_empty());
    assert_eq!(
        sorted(reader.index_values(NAMESPACE_INDEX).unwrap()),
        ["default", "kube-system"]
    );
    writer.check_consistency().unwrap();
}

#[test]
fn the_namespace_index_gives_cluster_scoped_objects_no_value() {
    let (reader, mut writer) = store::store::<Namespace>();
    writer.apply(Arc::new(namespace("kube-system")));
    // Keyed as cluster-scoped (see key_of), so it must not be indexed under "".
    let mut blank = namespace("kube-public");
    blank.metadata.namespace = Some(String::new());
    writer.apply(Arc::new(blank));

    assert_eq!(reader.len(), 2);
    assert!(reader.index_values(NAMESPACE_INDEX).unwrap().is_empty());
    assert!(reader.by_index(NAMESPACE_INDEX, "").unwrap().is_empty());
    writer.check_consistency().unwrap();
}

#[test]
fn a_custom_index_can_give_one_object_several_values() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("image", images).unwrap();
    writer.apply(Arc::new(pod_with_images("default", "web", &["nginx", "envoy"])));
    writer.apply(Arc::new(pod_with_images("default", "api", &["api", "envoy"])));
    // The same value twice from one object is one entry.
    writer.apply(Arc::new(pod_with_images("other", "twins", &["api", "api"])));
    writer.apply(Arc::new(pod_with_images("other", "bare", &[])));

    assert_eq!(
        sorted_keys(&reader.by_index("image", "envoy").unwrap()),
        ["default/api", "default/web"]
    );
    assert_eq!(
        sorted_keys(&reader.by_index("image", "nginx").unwrap()),
        ["default/web"]
    );
    assert_eq!(keys(reader.index_keys("image", "api")), ["default/api", "other/twins"]);
    assert_eq!(sorted(reader.index_values("image").unwrap()), ["api", "envoy", "nginx"]);
    assert_eq!(sorted(reader.index_names()), ["image", NAMESPACE_INDEX]);
    writer.check_consistency().unwrap();
}

#[test]
fn add_indexer_after_objects_exist_back_fills_the_index() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.apply(Arc::new(pod("default", "a", &[("app", "web")])));
    writer.apply(Arc::new(pod("default", "b", &[("app", "db")])));
    writer.apply(Arc::new(pod("other", "c", &[("app", "web")])));
    writer.apply(Arc::new(pod("other", "d", &[])));

    writer.add_indexer("app", label("app")).unwrap();
    assert_eq!(keys(reader.index_keys("app", "web")), ["default/a", "other/c"]);
    assert_eq!(keys(reader.index_keys("app", "db")), ["default/b"]);
    assert_eq!(sorted(reader.index_values("app").unwrap()), ["db", "web"]);
    writer.check_consistency().unwrap();

    // And it keeps up with later writes.
    writer.apply(Arc::new(pod("other", "d", &[("app", "db")])));
    assert_eq!(keys(reader.index_keys("app", "db")), ["default/b", "other/d"]);
    writer.check_consistency().unwrap();
}

#[test]
fn add_indexer_with_a_taken_name_fails_with_indexer_conflict() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.apply(Arc::new(pod("default", "a", &[("app", "web"), ("tier", "front")])));
    writer.add_indexer("app", label("app")).unwrap();

    assert_eq!(
        writer.add_indexer("app", label("tier")),
        Err(Error::IndexerConflict("app".into()))
    );
    assert_eq!(
        writer.add_indexer(NAMESPACE_INDEX, label("tier")),
        Err(Error::IndexerConflict(NAMESPACE_INDEX.into()))
    );
    // The indexes in place are untouched.
    assert_eq!(keys(reader.index_keys("app", "web")), ["default/a"]);
    assert!(reader.index_keys("app", "front").unwrap().is_empty());
    assert_eq!(keys(reader.index_keys(NAMESPACE_INDEX, "default")), ["default/a"]);
    assert_eq!(sorted(reader.index_names()), ["app", NAMESPACE_INDEX]);
}

#[test]
fn queries_on_an_unknown_index_fail_with_unknown_index() {
    let (reader, mut writer) = store::store::<Pod>();
    let web = pod("default", "a", &[("app", "web")]);
    writer.apply(Arc::new(web.clone()));
    let unknown = Err(Error::UnknownIndex("app".into()));

    assert_eq!(reader.by_index("app", "web").map(|objs| objs.len()), unknown.clone());
    assert_eq!(reader.index_keys("app", "web").map(|keys| keys.len()), unknown.clone());
    assert_eq!(reader.index_values("app").map(|values| values.len()), unknown.clone());
    assert_eq!(reader.index("app", &web).map(|objs| objs.len()), unknown);
}

#[test]
fn updating_an_object_moves_its_key_between_index_values_and_drops_empty_values() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("image", images).unwrap();
    writer.apply(Arc::new(pod_with_images("default", "web", &["nginx:1", "envoy"])));
    writer.apply(Arc::new(pod_with_images("default", "api", &["envoy"])));
    assert_eq!(sorted(reader.index_values("image").unwrap()), ["envoy", "nginx:1"]);

    // One value kept, one swapped.
    writer.apply(Arc::new(pod_with_images("default", "web", &["envoy", "nginx:2"])));
    assert_eq!(keys(reader.index_keys("image", "nginx:2")), ["default/web"]);
    assert_eq!(
        keys(reader.index_keys("image", "envoy")),
        ["default/api", "default/web"]
    );
    assert!(reader.index_keys("image", "nginx:1").unwrap().is_empty());
    // kubernetes#84959: a value with no key left is gone, not kept as an empty set.
    assert_eq!(sorted(reader.index_values("image").unwrap()), ["envoy", "nginx:2"]);
    writer.check_consistency().unwrap();

    // Same values in another order: nothing moves.
    writer.apply(Arc::new(pod_with_images("default", "web", &["nginx:2", "envoy"])));
    assert_eq!(
        keys(reader.index_keys("image", "envoy")),
        ["default/api", "default/web"]
    );
    writer.check_consistency().unwrap();

    // All values dropped.
    writer.apply(Arc::new(pod_with_images("default", "web", &[])));
    writer.apply(Arc::new(pod_with_images("default", "api", &["api"])));
    assert_eq!(reader.index_values("image").unwrap(), ["api"]);
    assert_eq!(reader.len(), 2);
    writer.check_consistency().unwrap();
}

#[test]
fn delete_removes_the_object_from_every_index() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("app", label("app")).unwrap();
    writer.add_indexer("tier", label("tier")).unwrap();
    let a = pod("default", "a", &[("app", "web"), ("tier", "front")]);
    writer.apply(Arc::new(a.clone()));
    writer.apply(Arc::new(pod("default", "b", &[("app", "web")])));
    writer.apply(Arc::new(pod("other", "c", &[("tier", "back")])));

    assert_eq!(writer.delete(&a).as_deref(), Some(&a));
    assert_eq!(keys(reader.index_keys("app", "web")), ["default/b"]);
    assert_eq!(reader.index_values("tier").unwrap(), ["back"]);
    assert_eq!(keys(reader.index_keys(NAMESPACE_INDEX, "default")), ["default/b"]);

    assert!(writer.delete_key("other/c").is_some());
    assert!(reader.index_values("tier").unwrap().is_empty());
    assert_eq!(reader.index_values(NAMESPACE_INDEX).unwrap(), ["default"]);

    // Deleting what is not there changes nothing.
    assert!(writer.delete_key("other/c").is_none());
    assert!(writer.delete(&a).is_none());
    assert_eq!(keys(Ok(reader.list_keys())), ["default/b"]);
    writer.check_consistency().unwrap();
}

#[test]
fn replace_swaps_the_content_and_rebuilds_every_index() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("app", label("app")).unwrap();
    let early_reader = reader.clone();
    writer.apply(Arc::new(pod("old", "a", &[("app", "web")])));
    writer.apply(Arc::new(pod("old", "b", &[("app", "db")])));
    writer.apply(Arc::new(pod("both", "c", &[("app", "web")])));

    writer.replace([
        Arc::new(pod("both", "c", &[("app", "db")])),
        Arc::new(pod("new", "d", &[("app", "cache")])),
        // Two objects with one key: the later wins.
        Arc::new(pod("new", "e", &[("app", "web")])),
        Arc::new(pod("new", "e", &[("app", "queue")])),
    ]);

    for reader in [&reader, &early_reader] {
        assert_eq!(keys(Ok(reader.list_keys())), ["both/c", "new/d", "new/e"]);
        assert!(reader.get_by_key("old/a").is_none());
        assert_eq!(
            reader.get_by_key("both/c").unwrap().metadata.labels.as_ref().unwrap()["app"],
            "db"
        );
        // No stale entries: neither from removed objects nor from replaced ones.
        assert_eq!(sorted(reader.index_values("app").unwrap()), ["cache", "db", "queue"]);
        assert!(reader.by_index("app", "web").unwrap().is_empty());
        assert_eq!(keys(reader.index_keys("app", "db")), ["both/c"]);
        assert_eq!(sorted(reader.index_values(NAMESPACE_INDEX).unwrap()), ["both", "new"]);
        assert!(reader.index_keys(NAMESPACE_INDEX, "old").unwrap().is_empty());
    }
    writer.check_consistency().unwrap();

    writer.replace(Vec::new());
    assert!(early_reader.is_empty());
    assert!(reader.index_values("app").unwrap().is_empty());
    assert!(reader.index_values(NAMESPACE_INDEX).unwrap().is_empty());
    assert_eq!(sorted(reader.index_names()), ["app", NAMESPACE_INDEX]);
    writer.check_consistency().unwrap();
}

#[test]
fn readers_see_the_content_before_or_after_a_replace_never_a_mix() {
    fn content(ns: &str, n: usize) -> Vec<Arc<Pod>> {
        (0..n).map(|i| Arc::new(pod(ns, &format!("p{i}"), &[]))).collect()
    }
    let (reader, mut writer) = store::store::<Pod>();
    let (small, large) = (content("small", 10), content("large", 30));
    writer.replace(small.iter().cloned());
    let done = Arc::new(AtomicBool::new(false));

    let watcher = {
        let (reader, done) = (reader.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0usize;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let listed = reader.list();
                let namespaces: BTreeSet<_> = listed.iter().map(|p| p.metadata.namespace.clone().unwrap()).collect();
                let seen = (listed.len(), namespaces.into_iter().collect::<Vec<_>>());
                assert!(
                    seen == (10, vec!["small".into()]) || seen == (30, vec!["large".into()]),
                    "a reader saw a mix: {seen:?}"
                );
                reads += 1;
            }
        })
    };
    for round in 0..500 {
        let next = if round % 2 == 0 { &large } else { &small };
        writer.replace(next.iter().cloned());
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    writer.check_consistency().unwrap();
}

#[test]
fn index_returns_every_object_sharing_a_value_once() {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer("image", images).unwrap();
    writer.apply(Arc::new(pod_with_images("default", "both", &["nginx", "envoy"])));
    writer.apply(Arc::new(pod_with_images("default", "nginx", &["nginx"])));
    writer.apply(Arc::new(pod_with_images("default", "envoy", &["envoy"])));
    writer.apply(Arc::new(pod_with_images("default", "other", &["redis"])));

    // The probe need not be stored; "both" shares two values with it but comes back once.
    let probe = pod_with_images("elsewhere", "probe", &["envoy", "nginx", "envoy"]);
    assert_eq!(
        sorted_keys(&reader.index("image", &probe).unwrap()),
        ["default/both", "default/envoy", "default/nginx"]
    );
    let single = pod_with_images("elsewhere", "probe", &["redis"]);
    assert_eq!(sorted_keys(&reader.index("image", &single).unwrap()), ["default/other"]);
    let unknown = pod_with_images("elsewhere", "probe", &["postgres"]);
    assert!(reader.index("image", &unknown).unwrap().is_empty());
    assert!(reader.index("image", &pod("default", "x", &[])).unwrap().is_empty());
    // The namespace index works the same way.
    assert!(reader.index(NAMESPACE_INDEX, &probe).unwrap().is_empty());
    assert_eq!(
        reader.index(NAMESPACE_INDEX, &pod("default", "x", &[])).unwrap().len(),
        4
    );
}

#[test]
fn dynamic_objects_are_keyed_and_indexed_like_typed_ones() {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widget = |ns: &str, name: &str, color: &str| {
        Arc::new(
            DynamicObject::new(name, &widgets)
                .within(ns)
                .data(serde_json::json!({ "spec": { "color": color } })),
        )
    };

    let (reader, mut writer) = store::store::<DynamicObject>();
    writer
        .add_indexer("color", |obj: &DynamicObject| {
            obj.data["spec"]["color"]
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect()
        })
        .unwrap();
    let red = widget("default", "a", "red");
    writer.apply(Arc::clone(&red));
    writer.apply(widget("default", "b", "blue"));
    writer.apply(widget("other", "c", "red"));
    let cluster_scoped = Arc::new(DynamicObject::new("global", &widgets));
    writer.apply(Arc::clone(&cluster_scoped));

    assert_eq!(key_of(&*red), "default/a");
    assert!(Arc::ptr_eq(&reader.get(Some("default"), "a").unwrap(), &red));
    assert!(Arc::ptr_eq(&reader.get_by_key("global").unwrap(), &cluster_scoped));
    assert_eq!(
        sorted_keys(&reader.by_index("color", "red").unwrap()),
        ["default/a", "other/c"]
    );
    assert_eq!(
        keys(reader.index_keys(NAMESPACE_INDEX, "default")),
        ["default/a", "default/b"]
    );
    assert_eq!(
        sorted(reader.index_values(NAMESPACE_INDEX).unwrap()),
        ["default", "other"]
    );

    writer.apply(widget("default", "a", "green"));
    assert_eq!(sorted(reader.index_values("color").unwrap()), ["blue", "green", "red"]);
    assert_eq!(keys(reader.index_keys("color", "red")), ["other/c"]);
    writer.check_consistency().unwrap();
}

#[test]
fn partial_object_metadata_is_keyed_and_indexed_like_typed_ones() {
    let partial = |ns: &str, name: &str, app: &str| -> Arc<PartialObjectMeta<Pod>> {
        Arc::new(meta(Some(ns), name, &[("app", app)]).into_response_partial::<Pod>())
    };

    let (reader, mut writer) = store::store::<PartialObjectMeta<Pod>>();
    writer
        .add_indexer("app", |obj: &PartialObjectMeta<Pod>| {
            obj.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get("app").cloned())
                .into_iter()
                .collect()
        })
        .unwrap();
    let web = partial("default", "web-0", "web");
    writer.apply(Arc::clone(&web));
    writer.apply(partial("default", "db-0", "db"));
    writer.apply(partial("other", "web-1", "web"));

    assert_eq!(key_of(&*web), "default/web-0");
    assert!(Arc::ptr_eq(&reader.get_by_key("default/web-0").unwrap(), &web));
    assert_eq!(keys(reader.index_keys("app", "web")), ["default/web-0", "other/web-1"]);
    assert_eq!(
        keys(reader.index_keys(NAMESPACE_INDEX, "default")),
        ["default/db-0", "default/web-0"]
    );

    writer.delete_key("default/web-0");
    assert_eq!(keys(reader.index_keys("app", "web")), ["other/web-1"]);
    writer.check_consistency().unwrap();
}

// Model-based proptest.

const NAMES: &[&str] = &["a", "b", "c", "d"];
/// `None` and `Some("")` are both cluster-scoped.
const NAMESPACES: &[Option<&str>] = &[None, Some(""), Some("ns1"), Some("ns2")];
const LABEL_KEYS: &[&str] = &["app", "tier", "team"];
const LABEL_VALUES: &[&str] = &["x", "y", "z"];

/// The `app` label: zero or one value per object.
const APP_INDEX: &str = "app";
/// Every label value, repeats included: zero to three values per object.
const VALUES_INDEX: &str = "label-values";

type IndexFn = fn(&Pod) -> Vec<String>;

#[derive(Debug, Clone)]
struct Spec {
    namespace: Option<&'static str>,
    name: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
}

impl Spec {
    fn pod(&self) -> Pod {
        let labels: Vec<_> = self.labels.iter().map(|(k, v)| (*k, *v)).collect();
        Pod {
            metadata: meta(self.namespace, self.name, &labels),
            ..Pod::default()
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Spec),
    Delete(Option<&'static str>, &'static str),
    DeleteKey(String),
    Replace(Vec<Spec>),
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(NAMESPACES),
        prop::sample::select(NAMES),
        prop::collection::btree_map(
            prop::sample::select(LABEL_KEYS),
            prop::sample::select(LABEL_VALUES),
            0..=3,
        ),
    )
        .prop_map(|(namespace, name, labels)| Spec {
            namespace,
            name,
            labels,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let target = || (prop::sample::select(NAMESPACES), prop::sample::select(NAMES));
    prop_oneof![
        8 => spec().prop_map(Op::Apply),
        3 => target().prop_map(|(ns, name)| Op::Delete(ns, name)),
        2 => target().prop_map(|(ns, name)| Op::DeleteKey(model_key(ns, name))),
        1 => prop::collection::vec(spec(), 0..8).prop_map(Op::Replace),
    ]
}

/// The cache key, computed independently of `key_of`.
fn model_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

fn app_values(pod: &Pod) -> Vec<String> {
    label("app")(pod)
}

fn label_values(pod: &Pod) -> Vec<String> {
    pod.metadata
        .labels
        .iter()
        .flat_map(|labels| labels.values().cloned())
        .collect()
}

fn namespace_values(pod: &Pod) -> Vec<String> {
    pod.metadata
        .namespace
        .iter()
        .filter(|ns| !ns.is_empty())
        .cloned()
        .collect()
}

/// value → keys, from scratch.
fn model_index(model: &HashMap<String, Pod>, func: IndexFn) -> BTreeMap<String, BTreeSet<String>> {
    let mut index = BTreeMap::<String, BTreeSet<String>>::new();
    for (key, pod) in model {
        for value in func(pod) {
            index.entry(value).or_default().insert(key.clone());
        }
    }
    index
}

fn check(reader: &Store<Pod>, writer: &Writer<Pod>, model: &HashMap<String, Pod>) -> Result<(), TestCaseError> {
    writer.check_consistency().map_err(TestCaseError::fail)?;
    prop_assert_eq!(reader.len(), model.len());
    prop_assert_eq!(keys(Ok(reader.list_keys())), sorted(model.keys().cloned().collect()));
    for (key, pod) in model {
        let stored = reader.get_by_key(key);
        prop_assert_eq!(stored.as_deref(), Some(pod));
    }

    let indexes: [(&str, IndexFn); 3] = [
        (NAMESPACE_INDEX, namespace_values),
        (APP_INDEX, app_values),
        (VALUES_INDEX, label_values),
    ];
    let probes = LABEL_VALUES
        .iter()
        .chain(NAMESPACES.iter().flatten())
        .chain(&["missing"]);
    for (name, func) in indexes {
        let expected = model_index(model, func);
        prop_assert_eq!(
            sorted(reader.index_values(name).unwrap()),
            expected.keys().cloned().collect::<Vec<_>>(),
            "index_values({})",
            name
        );
        for value in probes.clone() {
            let want: Vec<String> = expected.get(*value).into_iter().flatten().cloned().collect();
            prop_assert_eq!(
                &keys(reader.index_keys(name, value)),
                &want,
                "index_keys({}, {})",
                name,
                value
            );
            let objects = reader.by_index(name, value).unwrap();
            prop_assert_eq!(&sorted_keys(&objects), &want, "by_index({}, {})", name, value);
            for obj in &objects {
                prop_assert_eq!(Some(&**obj), model.get(&key_of(&**obj)));
            }
        }
        // `index` of every stored object: the union of its values' keys, once each.
        for pod in model.values() {
            let want: BTreeSet<String> = func(pod)
                .iter()
                .filter_map(|value| expected.get(value))
                .flatten()
                .cloned()
                .collect();
            let got = sorted_keys(&reader.index(name, pod).unwrap());
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "index({}, ..)", name);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (reader, mut writer) = store::store::<Pod>();
    writer.add_indexer(APP_INDEX, app_values).unwrap();
    writer.add_indexer(VALUES_INDEX, label_values).unwrap();
    let mut model = HashMap::<String, Pod>::new();

    for op in ops {
        match op {
            Op::Apply(spec) => {
                let pod = spec.pod();
                let old = writer.apply(Arc::new(pod.clone()));
                let expected = model.insert(model_key(spec.namespace, spec.name), pod);
                prop_assert_eq!(old.as_deref(), expected.as_ref());
            }
            Op::Delete(namespace, name) => {
                let probe = Spec {
                    namespace,
                    name,
                    labels: BTreeMap::new(),
                };
                let old = writer.delete(&probe.pod());
                let expected = model.remove(&model_key(namespace, name));
                prop_assert_eq!(old.as_deref(), expected.as_ref());
            }
            Op::DeleteKey(key) => {
                let old = writer.delete_key(&key);
                let expected = model.remove(&key);
                prop_assert_eq!(old.as_deref(), expected.as_ref());
            }
            Op::Replace(specs) => {
                writer.replace(specs.iter().map(|spec| Arc::new(spec.pod())));
                model = specs
                    .iter()
                    .map(|spec| (model_key(spec.namespace, spec.name), spec.pod()))
                    .collect();
            }
        }
        check(&reader, &writer, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn indexes_match_a_model_rebuilt_from_scratch_after_every_write(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
