//! The shared index informer on kdev-testenv (and on a real cluster): sync and listers,
//! handlers that see every key's final state, a blocked handler that delays nobody, late
//! handlers, the transform.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kdev_core::informer::{Event, Order, SharedIndexInformer, SharedInformerFactory, strip_managed_fields};
use kdev_core::manager::Manager;
use kdev_core::reflector::{Config, ListWatch};
use kdev_core::store::Store;
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_core::{Expression, Selector};
use parking_lot::Mutex;
use serde_json::json;

fn cm(name: &str, team: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.metadata.labels = Some(
        [
            ("informer-test".to_string(), "yes".to_string()),
            ("team".to_string(), team.to_string()),
        ]
        .into(),
    );
    c.data = Some([("v".to_string(), "0".to_string())].into());
    c
}

async fn setup() -> (TestEnv, String, Api<ConfigMap>) {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api = Api::namespaced(env.client(), &ns);
    (env, ns, api)
}

fn informer(api: &Api<ConfigMap>) -> SharedIndexInformer<ConfigMap> {
    SharedIndexInformer::new(
        ListWatch::new(api.clone()).labels("informer-test=yes"),
        Config::default(),
    )
}

fn spawn<K>(inf: &SharedIndexInformer<K>)
where
    K: kube_core::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let inf = inf.clone();
    tokio::spawn(async move { inf.run().await });
}

/// Polls until `check` holds, for at most 60 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a handler believes: name → resourceVersion of the last add/update, removed on delete.
type View = Arc<Mutex<BTreeMap<String, String>>>;

fn recording() -> (View, impl FnMut(Event<ConfigMap>) + Send + 'static) {
    let view: View = Arc::default();
    let v = view.clone();
    let handler = move |ev: Event<ConfigMap>| {
        let mut m = v.lock();
        match ev {
            Event::Add { obj, .. } | Event::Update { new: obj, .. } => {
                m.insert(
                    obj.metadata.name.clone().unwrap_or_default(),
                    obj.metadata.resource_version.clone().unwrap_or_default(),
                );
            }
            Event::Delete { obj, .. } => {
                m.remove(obj.metadata.name.as_deref().unwrap_or_default());
            }
        }
    };
    (view, handler)
}

async fn server_view(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    api.list(&ListParams::default().labels("informer-test=yes"))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_informer_syncs_and_its_listers_read_the_cache() {
    let (_env, ns, api) = setup().await;
    for (n, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &cm(n, team)).await.expect("create");
    }
    let inf = informer(&api);
    assert!(!inf.has_synced());
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let lister = inf.lister().namespaced(&ns);
    assert!(lister.get("a").is_some());
    let team_x = Selector::from(Expression::Equal("team".into(), "x".into()));
    let mut names: Vec<String> = lister
        .list(&team_x)
        .into_iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(inf.lister().namespaced("elsewhere").list(&Selector::default()).len(), 0);
    // The empty namespace is every namespace (client-go's `NamespaceAll`).
    assert_eq!(inf.lister().namespaced("").list(&Selector::default()).len(), 3);
    // Reads hand out the cached object itself.
    let (one, two) = (lister.get("a").expect("a"), lister.get("a").expect("a"));
    assert!(Arc::ptr_eq(&one, &two));
    inf.shutdown();
}

#[tokio::test]
async fn a_delete_hands_handlers_the_object_of_the_deleted_event_with_its_resource_version() {
    let (_env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("doomed", "x"))
        .await
        .expect("create");
    let inf = informer(&api);
    let deleted: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let seen = deleted.clone();
    inf.add_event_handler(
        move |ev: Event<ConfigMap>| {
            if let Event::Delete {
                obj,
                final_state_unknown,
            } = ev
            {
                let rv = obj.metadata.resource_version.clone().unwrap_or_default();
                seen.lock().push((rv, final_state_unknown));
            }
        },
        None,
    );
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let cached = inf.lister().namespaced(&ns).get("doomed").expect("cached");
    api.delete("doomed", &DeleteParams::default()).await.expect("delete");
    eventually("the delete", || !deleted.lock().is_empty()).await;
    let (rv, unknown) = deleted.lock()[0].clone();
    assert!(!unknown, "the informer saw the deletion itself");
    // The API server stamps the deletion's resourceVersion on the object of the DELETED event
    // (client-go's `OnDelete` gets that object): not the older one of the cached copy.
    assert_ne!(Some(rv.as_str()), cached.metadata.resource_version.as_deref());
    assert!(!rv.is_empty());
    inf.shutdown();
}

/// A ConfigMap read as a stricter type, which needs `data.required`: a ConfigMap without it
/// does not decode, as a custom resource stored under an older schema does not.
#[derive(Clone, Debug, serde::Deserialize)]
struct Strict {
    metadata: ObjectMeta,
    data: StrictData,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct StrictData {
    required: String,
}

impl kube_core::Resource for Strict {
    type DynamicType = ();
    type Scope = kube_core::NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        "ConfigMap".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "configmaps".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn with_data(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = cm(name, "strict");
    c.data = Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    c
}

#[tokio::test]
async fn objects_that_do_not_decode_are_skipped_and_counted_and_the_rest_load() {
    let (env, ns, api) = setup().await;
    for (name, data) in [("good-1", ("required", "yes")), ("bad-1", ("other", "no"))] {
        api.create(&PostParams::default(), &with_data(name, &[data]))
            .await
            .expect("create");
    }
    // Both a paginated list (one page each) and a streaming list.
    for (round, config) in [Config::default().streaming_lists(false).page_size(1), Config::default()]
        .into_iter()
        .enumerate()
    {
        let strict: Api<Strict> = Api::namespaced(env.client(), &ns);
        let inf = SharedIndexInformer::new(ListWatch::new(strict).labels("informer-test=yes"), config);
        spawn(&inf);
        inf.wait_for_sync(Duration::from_secs(30))
            .await
            .expect("one bad object does not keep the cache from syncing");
        let status = inf.reflector_status().expect("running");
        assert_eq!(inf.store().len(), 1);
        assert_eq!(status.undecodable(), 1);
        assert!(
            status.last_error().is_some_and(|e| e.contains("required")),
            "{status:?}"
        );
        // A watch event that does not decode is skipped too, and the watch goes on.
        api.create(
            &PostParams::default(),
            &with_data(&format!("bad-w{round}"), &[("other", "no")]),
        )
        .await
        .expect("create");
        api.create(
            &PostParams::default(),
            &with_data(&format!("good-w{round}"), &[("required", "yes")]),
        )
        .await
        .expect("create");
        eventually("the good object after the bad one", || inf.store().len() == 2).await;
        assert_eq!(status.undecodable(), 2, "round {round}: {status:?}");
        // An update that no longer decodes leaves the cached object as it was, not deleted.
        let mut worse = api.get("good-1").await.expect("get");
        worse.data = Some([("other".to_string(), "no".to_string())].into());
        api.replace("good-1", &PostParams::default(), &worse)
            .await
            .expect("update");
        eventually("the update to be skipped", || status.undecodable() == 3).await;
        assert!(inf.lister().namespaced(&ns).get("good-1").is_some());
        let mut fixed = api.get("good-1").await.expect("get");
        fixed.data = Some([("required".to_string(), "yes".to_string())].into());
        api.replace("good-1", &PostParams::default(), &fixed)
            .await
            .expect("update");
        assert!(inf.store().list().iter().all(|s| s.data.required == "yes"));
        // An object deleted in a state that does not decode leaves the cache all the same.
        let doomed = format!("good-w{round}");
        let mut broken = api.get(&doomed).await.expect("get");
        broken.data = Some([("other".to_string(), "no".to_string())].into());
        api.replace(&doomed, &PostParams::default(), &broken)
            .await
            .expect("update");
        api.delete(&doomed, &DeleteParams::default()).await.expect("delete");
        eventually("the deleted object to leave the cache", || {
            inf.lister().namespaced(&ns).get(&doomed).is_none()
        })
        .await;
        inf.shutdown();
        api.delete(&format!("bad-w{round}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn an_informer_over_nothing_syncs() {
    let (_env, _ns, api) = setup().await;
    let inf = informer(&api);
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30))
        .await
        .expect("an empty list syncs too");
    inf.shutdown();
}

#[tokio::test]
async fn every_handler_sees_the_final_state_of_every_key() {
    let (_env, _ns, api) = setup().await;
    let inf = informer(&api);
    let (view_a, handler_a) = recording();
    let (view_b, handler_b) = recording();
    inf.add_event_handler(handler_a, None);
    inf.add_event_handler(handler_b, None);
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let names: Vec<String> = (0..40).map(|i| format!("k-{i}")).collect();
    for step in 0..600u32 {
        let name = &names[fastrand::usize(..names.len())];
        match fastrand::u8(..3) {
            0 => {
                let _ = api.create(&PostParams::default(), &cm(name, "x")).await;
            }
            1 => {
                let p = Patch::Merge(json!({ "data": { "v": step.to_string() } }));
                let _ = api.patch(name, &PatchParams::default(), &p).await;
            }
            _ => {
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
    }
    let want = server_view(&api).await;
    eventually("both handlers to see the final state", || {
        *view_a.lock() == want && *view_b.lock() == want
    })
    .await;
    inf.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_blocked_handler_delays_neither_the_store_nor_another_handler() {
    let (_env, _ns, api) = setup().await;
    let inf = informer(&api);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let blocked = inf.add_event_handler(
        move |_ev| {
            // Blocks its own thread until released.
            let _ = release_rx.lock().recv();
        },
        None,
    );
    let (view, handler) = recording();
    inf.add_event_handler(handler, None);
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("b-{i}"), "x"))
            .await
            .expect("create");
    }
    let want = server_view(&api).await;
    let store = inf.store();
    eventually("the store and the other handler to catch up", || {
        view.lock().len() == want.len() && store.len() == want.len()
    })
    .await;
    assert!(
        blocked.pending() >= 19,
        "the blocked handler still has its events buffered ({})",
        blocked.pending()
    );
    drop(release_tx);
    inf.shutdown();
}

#[tokio::test]
async fn a_late_handler_first_receives_the_whole_cache() {
    let (_env, _ns, api) = setup().await;
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, "x")).await.expect("create");
    }
    let inf = informer(&api);
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let initial: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = initial.clone();
    inf.add_event_handler(
        move |ev| {
            if let Event::Add { obj, initial: true } = ev {
                seen.lock().push(obj.metadata.name.clone().unwrap_or_default());
            }
        },
        None,
    );
    eventually("the replay", || initial.lock().len() == 3).await;
    let mut got = initial.lock().clone();
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
    inf.shutdown();
}

#[tokio::test]
async fn adds_from_the_initial_list_are_marked_initial_and_later_ones_are_not() {
    let (_env, _ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("listed", "x"))
        .await
        .expect("create");
    let inf = informer(&api);
    let adds: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let seen = adds.clone();
    inf.add_event_handler(
        move |ev| {
            if let Event::Add { obj, initial } = ev {
                seen.lock()
                    .push((obj.metadata.name.clone().unwrap_or_default(), initial));
            }
        },
        None,
    );
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    api.create(&PostParams::default(), &cm("created", "x"))
        .await
        .expect("create");
    eventually("both adds", || adds.lock().len() == 2).await;
    assert_eq!(
        *adds.lock(),
        [("listed".to_string(), true), ("created".to_string(), false)]
    );
    inf.shutdown();
}

#[tokio::test]
async fn the_transform_runs_before_objects_are_stored() {
    let (_env, _ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    let with_fields = api.get("a").await.expect("get");
    assert!(
        with_fields.metadata.managed_fields.is_some(),
        "the server records managed fields"
    );
    let inf = SharedIndexInformer::with_transform(
        ListWatch::new(api.clone()).labels("informer-test=yes"),
        Config::default(),
        Some(strip_managed_fields()),
    );
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let cached = inf.store().list();
    assert_eq!(cached.len(), 1);
    assert!(cached[0].metadata.managed_fields.is_none());
    inf.shutdown();
}

#[tokio::test]
async fn a_factory_transform_runs_on_every_informer_it_makes_unless_the_type_has_its_own() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    assert!(api.get("a").await.expect("get").metadata.managed_fields.is_some());
    let meta_from_server = api.get_metadata("a").await.expect("get metadata");
    assert!(meta_from_server.metadata.managed_fields.is_some());
    let strip = |meta: &mut ObjectMeta| meta.managed_fields = None;
    let gvk = kube_client::api::GroupVersionKind::gvk("", "v1", "ConfigMap");
    async fn synced(factory: &SharedInformerFactory) {
        factory.start();
        factory
            .wait_for_cache_sync(Duration::from_secs(30))
            .await
            .expect("sync");
    }
    /// Whether `a`, as `store` caches it, has no managedFields.
    fn stripped<K: kube_core::Resource>(store: &Store<K>, ns: &str) -> bool {
        let a = store.get(Some(ns), "a").expect("a is cached");
        a.meta().managed_fields.is_none()
    }

    // The default reaches typed, metadata-only and dynamic informers alike.
    let factory = SharedInformerFactory::new(env.client()).default_transform(strip);
    let typed = factory.informer(api.clone());
    let meta = factory.metadata_informer(api.clone());
    let dynamic = factory.dynamic_informer(&gvk, Some(&ns)).await.expect("discovery");
    synced(&factory).await;
    assert!(stripped(&typed.store(), &ns));
    assert!(stripped(&meta.store(), &ns));
    assert!(stripped(&dynamic.store(), &ns));
    factory.shutdown().await;

    // A type's own transform replaces the default for that type only.
    let factory = SharedInformerFactory::new(env.client())
        .default_transform(strip)
        .transform(|cm: &mut ConfigMap| {
            cm.metadata
                .annotations
                .get_or_insert_default()
                .insert("seen-by".into(), "informer".into());
        });
    let typed = factory.informer(api.clone());
    let meta = factory.metadata_informer(api.clone());
    synced(&factory).await;
    let a = typed.store().get(Some(&ns), "a").expect("a is cached");
    let seen_by = a.metadata.annotations.as_ref().and_then(|m| m.get("seen-by"));
    assert_eq!(seen_by.map(String::as_str), Some("informer"));
    assert!(
        a.metadata.managed_fields.is_some(),
        "the default does not run on top of the type's own"
    );
    assert!(stripped(&meta.store(), &ns));
    factory.shutdown().await;

    // A manager hands its transforms to the factory its controllers and cache read from.
    let manager = Manager::builder(env.client())
        .handle_signals(false)
        .default_transform(strip)
        .build();
    let typed = manager.factory().informer(api.clone());
    synced(&manager.factory()).await;
    assert!(stripped(&typed.store(), &ns));
    manager.factory().shutdown().await;
}

#[tokio::test]
async fn the_factory_shares_one_informer_per_type_scope_and_selectors() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    let factory = kdev_core::informer::SharedInformerFactory::new(env.client());
    let first = factory.informer(api.clone());
    let again = factory.informer(Api::<ConfigMap>::namespaced(env.client(), &ns));
    let selected = factory.informer_with_selectors(api.clone(), "team=x", "");
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(30))
        .await
        .expect("sync");
    // One informer: the very same cached object (two informers would each decode their own).
    // (By name: a real cluster also puts its kube-root-ca.crt ConfigMap in every namespace.)
    let a = |inf: &SharedIndexInformer<ConfigMap>| inf.store().get(Some(&ns), "a").expect("a is cached");
    assert!(Arc::ptr_eq(&a(&first), &a(&again)));
    assert_eq!(selected.store().len(), 1);
    assert_eq!(first.order(), Order::PerKey);
    factory.shutdown().await;
    // A factory's order is every informer's it makes, and a manager's is its factory's.
    let in_order = kdev_core::informer::SharedInformerFactory::new(env.client()).order(Order::Arrival);
    assert_eq!(in_order.informer(api.clone()).order(), Order::Arrival);
    let manager = Manager::builder(env.client()).informer_order(Order::Arrival).build();
    assert_eq!(manager.factory().informer(api).order(), Order::Arrival);
}

#[tokio::test]
async fn a_factory_default_resync_replays_to_handlers_without_their_own_period() {
    let (env, _ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    let factory = SharedInformerFactory::new(env.client())
        .default_resync(Duration::from_secs(1))
        .resync_for::<kube_client::api::PartialObjectMeta<ConfigMap>>(Duration::from_secs(3600));
    let typed = factory.informer_with_selectors(api.clone(), "informer-test=yes", "");
    let metadata = factory.metadata_informer(api.clone());
    assert_eq!(typed.default_resync(), Some(Duration::from_secs(1)));
    assert_eq!(metadata.default_resync(), Some(Duration::from_secs(3600)));
    let replays = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = replays.clone();
    typed.add_event_handler(
        move |event: Event<ConfigMap>| {
            if let Event::Update { old, new } = &event
                && Arc::ptr_eq(old, new)
            {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        },
        None,
    );
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(30))
        .await
        .expect("sync");
    eventually("two replays of the unchanged object", || {
        replays.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .await;
    factory.shutdown().await;
}

#[tokio::test]
async fn after_a_factory_shuts_down_nothing_starts_and_waiting_for_a_sync_ends_at_once() {
    let (env, ns, api) = setup().await;
    let factory = SharedInformerFactory::new(env.client());
    let before = factory.informer(api.clone());
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(30))
        .await
        .expect("sync");
    factory.shutdown().await;
    assert!(factory.is_shut_down());
    // A cache read of a new kind during a manager's shutdown, say: the informer it gets is
    // shut down, is not started, and its sync is refused at once rather than timed out.
    let late = factory.informer_with_selectors(api, "team=x", "");
    factory.start();
    let waited = tokio::time::timeout(Duration::from_secs(20), late.wait_for_sync(Duration::from_secs(600))).await;
    assert!(
        matches!(waited, Ok(Err(kdev_core::informer::Error::Stopped))),
        "{waited:?}"
    );
    assert!(late.reflector_status().is_none(), "never started");
    assert!(!late.has_synced());
    assert!(before.has_synced(), "an informer that synced stays synced");
    // The same for an informer shut down before it ever ran.
    let idle = informer(&Api::<ConfigMap>::namespaced(env.client(), &ns));
    idle.shutdown();
    assert!(matches!(
        idle.wait_for_sync(Duration::from_secs(600)).await,
        Err(kdev_core::informer::Error::Stopped)
    ));
    // And for a handler's registration on such an informer, before and after the shutdown.
    let unsynced = informer(&Api::<ConfigMap>::namespaced(env.client(), &ns));
    let registration = unsynced.add_event_handler(|_| {}, None);
    let waiting = tokio::spawn(async move { registration.wait_for_sync(Duration::from_secs(600)).await });
    unsynced.shutdown();
    let waited = tokio::time::timeout(Duration::from_secs(20), waiting).await;
    assert!(
        matches!(waited, Ok(Ok(Err(kdev_core::informer::Error::Stopped)))),
        "{waited:?}"
    );
    let late = unsynced.add_event_handler(|_| {}, None);
    assert!(matches!(
        late.wait_for_sync(Duration::from_secs(600)).await,
        Err(kdev_core::informer::Error::Stopped)
    ));
}

#[tokio::test]
async fn a_dynamic_informer_resolves_its_kind_through_discovery() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    let factory = kdev_core::informer::SharedInformerFactory::new(env.client());
    let gvk = kube_client::api::GroupVersionKind::gvk("", "v1", "ConfigMap");
    let dynamic = factory
        .dynamic_informer(&gvk, Some(&ns))
        .await
        .expect("discovery resolves ConfigMap");
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(30))
        .await
        .expect("sync");
    let names: Vec<String> = dynamic
        .store()
        .list()
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert!(names.contains(&"a".to_string()), "{names:?}");
    let missing = kube_client::api::GroupVersionKind::gvk("nosuch.kdev.dev", "v1", "Nothing");
    assert!(factory.dynamic_informer(&missing, None).await.is_err());
    // client-go's `ForResource(gvr)`: the same informer, found by its plural resource name.
    let gvr = kube_client::api::GroupVersionResource::gvr("", "v1", "configmaps");
    let by_resource = factory
        .dynamic_informer_for_resource(&gvr, Some(&ns))
        .await
        .expect("discovery resolves configmaps");
    let a = |inf: &SharedIndexInformer<kube_client::api::DynamicObject>| {
        inf.store().get(Some(&ns), "a").expect("a is cached")
    };
    assert!(Arc::ptr_eq(&a(&dynamic), &a(&by_resource)));
    let apps = kube_client::api::GroupVersionResource::gvr("apps", "v1", "nosuchresources");
    let err = factory
        .dynamic_informer_for_resource(&apps, None)
        .await
        .expect_err("no such resource");
    assert!(err.to_string().contains("apps/v1/nosuchresources"), "{err}");
    let group = kube_client::api::GroupVersionResource::gvr("nosuch.kdev.dev", "v1", "nothings");
    assert!(factory.dynamic_informer_for_resource(&group, None).await.is_err());
    factory.shutdown().await;
}

#[tokio::test]
async fn a_metadata_informer_caches_metadata_only_and_follows_changes() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a", "x")).await.expect("create");
    let factory = kdev_core::informer::SharedInformerFactory::new(env.client());
    let meta = factory.metadata_informer_with_selectors(api.clone(), "informer-test=yes", "");
    let again = factory.metadata_informer_with_selectors(
        Api::<ConfigMap>::namespaced(env.client(), &ns),
        "informer-test=yes",
        "",
    );
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(30))
        .await
        .expect("sync");
    let lister = meta.lister().namespaced(&ns);
    let a = lister.get("a").expect("a cached");
    assert_eq!(a.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    assert_eq!(a.metadata.labels.as_ref().expect("labels")["team"], "x");
    assert!(Arc::ptr_eq(
        &a,
        &again.lister().namespaced(&ns).get("a").expect("shared")
    ));

    // Label changes, new objects and deletes arrive through the metadata watch.
    let relabel = json!({ "metadata": { "labels": { "team": "z" } } });
    api.patch("a", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .expect("patch");
    api.create(&PostParams::default(), &cm("b", "y")).await.expect("create");
    eventually("the relabel and the new object", || {
        lister.get("b").is_some()
            && lister
                .get("a")
                .is_some_and(|a| a.metadata.labels.as_ref().is_some_and(|l| l["team"] == "z"))
    })
    .await;
    api.delete("a", &DeleteParams::default()).await.expect("delete");
    eventually("the delete", || lister.get("a").is_none()).await;
    factory.shutdown().await;
}

#[tokio::test]
async fn handlers_see_the_final_state_of_every_key_under_faults() {
    let (env, _ns, api) = setup().await;
    let faults = env.faults();
    if !faults.supported() {
        println!("a real cluster cannot inject faults: only the churn runs");
    }
    let fast = Config::default().backoff(kdev_core::reflector::Backoff::new(
        Duration::from_millis(10),
        Duration::from_millis(200),
        Duration::from_secs(120),
    ));
    let inf = SharedIndexInformer::new(ListWatch::new(api.clone()).labels("informer-test=yes"), fast);
    let (view, handler) = recording();
    inf.add_event_handler(handler, None);
    spawn(&inf);
    inf.wait_for_sync(Duration::from_secs(30)).await.expect("sync");
    let names: Vec<String> = (0..40).map(|i| format!("f-{i}")).collect();
    for step in 0..800u32 {
        let name = &names[fastrand::usize(..names.len())];
        match fastrand::u8(..3) {
            0 => {
                let _ = api.create(&PostParams::default(), &cm(name, "x")).await;
            }
            1 => {
                let p = Patch::Merge(json!({ "data": { "v": step.to_string() } }));
                let _ = api.patch(name, &PatchParams::default(), &p).await;
            }
            _ => {
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
        if faults.supported() {
            match step {
                100 | 500 => {
                    faults.drop_watches().expect("drop");
                }
                // Fall behind, then lose the history: the relist must turn deletions that
                // happened meanwhile into delete events (tombstones), not lose them.
                300 | 600 => {
                    faults
                        .fail(
                            kdev_testenv::Failure::new(500)
                                .verb("watch")
                                .resource("configmaps")
                                .times(2),
                        )
                        .expect("plan");
                    faults.drop_watches().expect("drop");
                }
                310 | 610 => faults.compact_history().expect("compact"),
                700 => env.restart().await.expect("restart"),
                _ => {}
            }
        }
    }
    if faults.supported() {
        faults.clear().expect("clear");
    }
    let want = server_view(&api).await;
    eventually("the handler to see the final state", || *view.lock() == want).await;
    if faults.supported() {
        let lists = inf.reflector_status().map_or(0, |s| s.lists());
        assert!(lists >= 2, "the faults forced a relist (lists: {lists})");
    }
    inf.shutdown();
}

/// An informer of a resource the server does not serve (a CRD not installed) never syncs; the
/// timeout says why, with the 404 its list met, instead of only how long it waited.
#[tokio::test]
async fn a_sync_timeout_carries_the_last_list_error() {
    let (env, ns, _api) = setup().await;
    let gvk = kube_client::api::GroupVersionKind::gvk("notinstalled.kdev.dev", "v1", "Widget");
    let resource = kube_client::api::ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let api: Api<kube_client::api::DynamicObject> = Api::namespaced_with(env.client(), &ns, &resource);
    let informer = SharedIndexInformer::new(ListWatch::new(api), Config::default());
    spawn(&informer);
    let mut waits = 0;
    let last_error = loop {
        // The first list fails at once; its error is kept once the round ends.
        waits += 1;
        assert!(waits <= 30, "no list error after 60 s");
        match informer.wait_for_sync(Duration::from_secs(2)).await {
            Err(kdev_core::informer::Error::SyncTimeout {
                last_error: Some(e), ..
            }) => break e,
            Err(kdev_core::informer::Error::SyncTimeout { last_error: None, .. }) => continue,
            other => panic!("expected a sync timeout, got {other:?}"),
        }
    };
    assert!(last_error.contains("(404)"), "{last_error}");
    assert!(last_error.contains("is its CRD installed"), "{last_error}");
    let message = informer
        .wait_for_sync(Duration::from_millis(10))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "the informer of /apis/notinstalled.kdev.dev/v1/namespaces/{ns}/widgets did not sync within 10ms; the last \
             list or watch failed: "
        )),
        "{message}"
    );
    informer.shutdown();
}

/// The factory owns its informers' tasks: once it is dropped, nothing watches any more and no
/// handler hears of later changes.
#[tokio::test]
async fn dropping_the_factory_stops_its_informers() {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let factory = SharedInformerFactory::new(env.client());
    let informer = factory.informer(api.clone());
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    informer.add_event_handler(
        move |ev: Event<ConfigMap>| {
            if let Event::Add { obj, .. } = ev {
                log.lock().push(obj.metadata.name.clone().unwrap_or_default());
            }
        },
        None,
    );
    factory.start();
    factory
        .wait_for_cache_sync(Duration::from_secs(60))
        .await
        .expect("synced");
    drop(factory);
    let mut late = ConfigMap::default();
    late.metadata.name = Some("after-drop".into());
    api.create(&PostParams::default(), &late).await.expect("create");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!seen.lock().iter().any(|n| n == "after-drop"), "{:?}", seen.lock());
    assert!(informer.store().get(Some(&ns), "after-drop").is_none());
}
