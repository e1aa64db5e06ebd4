//! Tests of `kdev_core::delta_fifo`: client-go's DeltaFIFO rules, one by one, then a
//! proptest model of all of them together.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::delta_fifo::{self, Closed, Delta, DeltaFifo, DeltaObject, DeltaType};
use kdev_core::store::{self, Store, Writer};
use proptest::prelude::*;

pub(crate) fn cm(name: &str, version: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some("default".into());
    cm.metadata.name = Some(name.into());
    cm.metadata.resource_version = Some(version.into());
    cm
}

fn version(delta: &Delta<ConfigMap>) -> Option<String> {
    delta.object.get().and_then(|o| o.metadata.resource_version.clone())
}

/// Pops one key and returns its deltas as `(kind, tombstone?, resource version)`.
fn pop(fifo: &DeltaFifo<ConfigMap>) -> Option<(String, Vec<MDelta>)> {
    fifo.try_pop(|deltas, _| {
        let key = deltas.last().map(Delta::key).unwrap_or_default();
        let summary = deltas
            .iter()
            .map(|d| (d.kind, d.object.is_tombstone(), version(d)))
            .collect();
        (key, summary)
    })
}

fn with_known() -> (DeltaFifo<ConfigMap>, Store<ConfigMap>, Writer<ConfigMap>) {
    let (reader, writer) = store::store::<ConfigMap>();
    let fifo = DeltaFifo::new(delta_fifo::Config::default().known_objects(reader.clone()));
    (fifo, reader, writer)
}

#[test]
fn keys_pop_in_order_of_first_arrival_and_a_later_update_keeps_its_place() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    fifo.add(cm("b", "2"));
    fifo.update(cm("a", "3"));
    assert_eq!(
        fifo.list_keys(),
        ["default/a".into(), "default/b".into()] as [Arc<str>; 2]
    );
    let (key, deltas) = pop(&fifo).unwrap();
    assert_eq!(key, "default/a");
    assert_eq!(
        deltas,
        [
            (DeltaType::Added, false, Some("1".into())),
            (DeltaType::Updated, false, Some("3".into()))
        ]
    );
    assert_eq!(pop(&fifo).unwrap().0, "default/b");
    assert!(pop(&fifo).is_none());
}

#[test]
fn two_consecutive_deletes_collapse_keeping_the_older_real_object() {
    let (fifo, _, mut writer) = with_known();
    writer.apply(Arc::new(cm("a", "1")));
    fifo.delete(cm("a", "2"));
    fifo.delete(cm("a", "3"));
    assert_eq!(pop(&fifo).unwrap().1, [(DeltaType::Deleted, false, Some("2".into()))]);
}

#[test]
fn a_real_delete_wins_over_a_tombstone_when_deletes_collapse() {
    let (fifo, _, mut writer) = with_known();
    writer.apply(Arc::new(cm("a", "1")));
    fifo.replace(Vec::<ConfigMap>::new()); // a is missing: tombstone
    fifo.delete(cm("a", "2"));
    assert_eq!(pop(&fifo).unwrap().1, [(DeltaType::Deleted, false, Some("2".into()))]);
}

#[test]
fn only_deletes_collapse() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    fifo.update(cm("a", "2"));
    fifo.update(cm("a", "2"));
    fifo.delete(cm("a", "3"));
    let kinds: Vec<_> = pop(&fifo).unwrap().1.into_iter().map(|d| d.0).collect();
    assert_eq!(
        kinds,
        [
            DeltaType::Added,
            DeltaType::Updated,
            DeltaType::Updated,
            DeltaType::Deleted
        ]
    );
}

#[test]
fn a_delete_of_an_unknown_key_is_dropped() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.delete(cm("ghost", "1"));
    assert!(fifo.is_empty());
    let (fifo, _, mut writer) = with_known();
    fifo.delete(cm("ghost", "1"));
    assert!(fifo.is_empty());
    writer.apply(Arc::new(cm("known", "1")));
    fifo.delete(cm("known", "2"));
    assert_eq!(fifo.len(), 1, "the known-objects store has it");
}

#[test]
fn replace_queues_replaced_deltas_and_tombstones_for_what_the_list_lacks() {
    let (fifo, _, mut writer) = with_known();
    writer.apply(Arc::new(cm("popped-gone", "1")));
    writer.apply(Arc::new(cm("kept", "1")));
    fifo.add(cm("queued-gone", "2"));
    fifo.replace([cm("kept", "3"), cm("new", "4")]);
    let mut popped = HashMap::new();
    while let Some((key, deltas)) = pop(&fifo) {
        popped.insert(key, deltas);
    }
    assert_eq!(popped["default/kept"], [(DeltaType::Replaced, false, Some("3".into()))]);
    assert_eq!(popped["default/new"], [(DeltaType::Replaced, false, Some("4".into()))]);
    assert_eq!(
        popped["default/queued-gone"],
        [
            (DeltaType::Added, false, Some("2".into())),
            (DeltaType::Deleted, true, Some("2".into()))
        ],
        "tombstone carries the newest queued state"
    );
    assert_eq!(
        popped["default/popped-gone"],
        [(DeltaType::Deleted, true, Some("1".into()))],
        "tombstone carries the known state"
    );
}

#[test]
fn replace_can_emit_the_legacy_sync_type() {
    let fifo: DeltaFifo<ConfigMap> = DeltaFifo::new(delta_fifo::Config::default().emit_replaced(false));
    fifo.replace([cm("a", "1")]);
    assert_eq!(pop(&fifo).unwrap().1[0].0, DeltaType::Sync);
}

#[test]
fn a_tombstone_carries_its_key_even_without_a_known_state() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    fifo.replace(Vec::<ConfigMap>::new());
    let deltas = fifo.try_pop(|deltas, _| deltas).unwrap();
    match &deltas[1].object {
        DeltaObject::Tombstone(t) => assert_eq!(&*t.key, "default/a"),
        other => panic!("expected a tombstone, got {other:?}"),
    }
}

#[test]
fn resync_queues_sync_for_known_objects_but_never_overtakes_pending_events() {
    let (fifo, _, mut writer) = with_known();
    writer.apply(Arc::new(cm("a", "1")));
    writer.apply(Arc::new(cm("b", "1")));
    fifo.update(cm("a", "2"));
    fifo.resync();
    let mut popped = HashMap::new();
    while let Some((key, deltas)) = pop(&fifo) {
        popped.insert(key, deltas);
    }
    assert_eq!(popped["default/a"], [(DeltaType::Updated, false, Some("2".into()))]);
    assert_eq!(popped["default/b"], [(DeltaType::Sync, false, Some("1".into()))]);

    let plain = DeltaFifo::<ConfigMap>::default();
    plain.resync();
    assert!(plain.is_empty(), "nothing to resync without known objects");
}

#[test]
fn has_synced_waits_for_every_item_of_the_first_replace() {
    let (fifo, _, mut writer) = with_known();
    writer.apply(Arc::new(cm("gone", "1")));
    assert!(!fifo.has_synced());
    fifo.replace([cm("a", "1"), cm("b", "1")]);
    let mut initial = Vec::new();
    for _ in 0..3 {
        assert!(!fifo.has_synced());
        initial.push(fifo.try_pop(|_, in_initial_list| in_initial_list).unwrap());
    }
    assert_eq!(initial, [true, true, true]);
    assert!(fifo.has_synced(), "two listed items and one queued deletion");
    fifo.add(cm("c", "2"));
    assert_eq!(fifo.try_pop(|_, in_initial_list| in_initial_list), Some(false));
}

#[test]
fn an_add_before_the_first_replace_counts_as_synced() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    assert!(fifo.has_synced());
    fifo.replace([cm("a", "2")]);
    assert!(fifo.has_synced(), "only the first population counts");
}

#[tokio::test]
async fn close_fails_pops_once_empty_but_hands_out_what_was_queued() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    fifo.close();
    assert!(fifo.is_closed());
    assert_eq!(fifo.pop(|deltas, _| deltas.len()).await, Ok(1));
    assert_eq!(fifo.pop(|deltas, _| deltas.len()).await, Err(Closed));
}

#[tokio::test]
async fn a_waiting_pop_is_woken_by_an_add_and_by_close() {
    let fifo = Arc::new(DeltaFifo::<ConfigMap>::default());
    let waiter = tokio::spawn({
        let fifo = Arc::clone(&fifo);
        async move { fifo.pop(|deltas, _| deltas[0].key()).await }
    });
    tokio::task::yield_now().await;
    fifo.add(cm("a", "1"));
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken");
    assert_eq!(got.unwrap(), Ok("default/a".to_string()));

    let waiter = tokio::spawn({
        let fifo = Arc::clone(&fifo);
        async move { fifo.pop(|_, _| ()).await }
    });
    tokio::task::yield_now().await;
    fifo.close();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken");
    assert_eq!(got.unwrap(), Err(Closed));
}

#[test]
fn a_dropped_pop_loses_nothing() {
    let fifo = DeltaFifo::<ConfigMap>::default();
    assert!(fifo.pop(|_, _| ()).now_or_never().is_none(), "nothing to pop yet");
    fifo.add(cm("a", "1"));
    assert_eq!(fifo.len(), 1);
    assert_eq!(pop(&fifo).unwrap().0, "default/a");
}

// ---- the model ----

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u8),
    Update(u8, u8),
    Delete(u8, u8),
    Replace(Vec<(u8, u8)>),
    Resync,
    Pop,
}

fn name(n: u8) -> String {
    format!("cm-{n}")
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..5u8;
    let rv = 0..100u8;
    prop_oneof![
        3 => (key.clone(), rv.clone()).prop_map(|(k, v)| Op::Add(k, v)),
        3 => (key.clone(), rv.clone()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (key.clone(), rv.clone()).prop_map(|(k, v)| Op::Delete(k, v)),
        1 => prop::collection::vec((key, rv), 0..5).prop_map(Op::Replace),
        1 => Just(Op::Resync),
        4 => Just(Op::Pop),
    ]
}

/// A delta as the model sees it: kind, tombstone, resource version of the carried object.
type MDelta = (DeltaType, bool, Option<String>);

/// client-go's DeltaFIFO rules, plainly, with an informer applying what it pops.
#[derive(Default, Debug)]
struct Model {
    queue: VecDeque<String>,
    items: HashMap<String, Vec<MDelta>>,
    known: HashMap<String, String>,
}

impl Model {
    fn push(&mut self, key: &str, delta: MDelta) {
        let deltas = self.items.entry(key.to_owned()).or_default();
        if deltas.is_empty() {
            self.queue.push_back(key.to_owned());
        }
        deltas.push(delta);
        let n = deltas.len();
        if n >= 2 && deltas[n - 1].0 == DeltaType::Deleted && deltas[n - 2].0 == DeltaType::Deleted {
            if deltas[n - 2].1 {
                deltas.swap(n - 2, n - 1);
            }
            deltas.truncate(n - 1);
        }
    }

    fn delete(&mut self, key: &str, rv: String) {
        if self.items.contains_key(key) || self.known.contains_key(key) {
            self.push(key, (DeltaType::Deleted, false, Some(rv)));
        }
    }

    fn replace(&mut self, list: &[(String, String)]) {
        let mut listed = std::collections::HashSet::new();
        for (key, rv) in list {
            listed.insert(key.clone());
            self.push(key, (DeltaType::Replaced, false, Some(rv.clone())));
        }
        let queued: Vec<String> = self.queue.iter().filter(|k| !listed.contains(*k)).cloned().collect();
        for key in queued {
            let last = self.items[&key].last().and_then(|d| d.2.clone());
            self.push(&key, (DeltaType::Deleted, true, last));
        }
        let mut known: Vec<String> = self.known.keys().cloned().collect();
        known.sort();
        for key in known {
            if !listed.contains(&key) && !self.items.contains_key(&key) {
                let last = self.known.get(&key).cloned();
                self.push(&key, (DeltaType::Deleted, true, last));
            }
        }
    }

    fn resync(&mut self) {
        let mut known: Vec<(String, String)> = self.known.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        known.sort();
        for (key, rv) in known {
            if !self.items.contains_key(&key) {
                self.push(&key, (DeltaType::Sync, false, Some(rv)));
            }
        }
    }

    fn pop(&mut self) -> Option<(String, Vec<MDelta>)> {
        let key = self.queue.pop_front()?;
        let deltas = self.items.remove(&key).unwrap_or_default();
        for delta in &deltas {
            match delta {
                (DeltaType::Deleted, ..) => {
                    self.known.remove(&key);
                }
                (_, _, Some(rv)) => {
                    self.known.insert(key.clone(), rv.clone());
                }
                _ => {}
            }
        }
        Some((key, deltas))
    }
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (fifo, reader, mut writer) = with_known();
    let mut model = Model::default();
    let key = |n: u8| format!("default/{}", name(n));
    // Replaces with repeated names keep only the last occurrence in both.
    for op in ops {
        match op {
            Op::Add(k, v) => {
                fifo.add(cm(&name(k), &v.to_string()));
                model.push(&key(k), (DeltaType::Added, false, Some(v.to_string())));
            }
            Op::Update(k, v) => {
                fifo.update(cm(&name(k), &v.to_string()));
                model.push(&key(k), (DeltaType::Updated, false, Some(v.to_string())));
            }
            Op::Delete(k, v) => {
                fifo.delete(cm(&name(k), &v.to_string()));
                model.delete(&key(k), v.to_string());
            }
            Op::Replace(list) => {
                let mut dedup: Vec<(u8, u8)> = Vec::new();
                for (k, v) in list {
                    dedup.retain(|(other, _)| *other != k);
                    dedup.push((k, v));
                }
                fifo.replace(
                    dedup
                        .iter()
                        .map(|(k, v)| cm(&name(*k), &v.to_string()))
                        .collect::<Vec<_>>(),
                );
                model.replace(&dedup.iter().map(|(k, v)| (key(*k), v.to_string())).collect::<Vec<_>>());
            }
            Op::Resync => {
                fifo.resync();
                model.resync();
            }
            Op::Pop => {
                // The informer: apply every delta to the known-objects store.
                let got = fifo.try_pop(|deltas, _| {
                    let key = deltas.last().map(Delta::key).unwrap_or_default();
                    for delta in &deltas {
                        match (delta.kind, delta.object.get()) {
                            (DeltaType::Deleted, _) => {
                                writer.delete_key(&key);
                            }
                            (_, Some(obj)) => {
                                writer.apply(Arc::clone(obj));
                            }
                            (_, None) => {}
                        }
                    }
                    let summary: Vec<MDelta> = deltas
                        .iter()
                        .map(|d| (d.kind, d.object.is_tombstone(), version(d)))
                        .collect();
                    (key, summary)
                });
                prop_assert_eq!(got, model.pop());
            }
        }
        let keys: Vec<String> = fifo.list_keys().iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(keys, Vec::from(model.queue.clone()));
        for k in &model.queue {
            let deltas: Vec<MDelta> = fifo
                .get_by_key(k)
                .unwrap_or_default()
                .iter()
                .map(|d| (d.kind, d.object.is_tombstone(), version(d)))
                .collect();
            prop_assert_eq!(&deltas, &model.items[k]);
        }
    }
    // Drain; the store ends in the model's final state.
    while let Some(expected) = model.pop() {
        let got = fifo.try_pop(|deltas, _| {
            for delta in &deltas {
                match (delta.kind, delta.object.get()) {
                    (DeltaType::Deleted, _) => {
                        writer.delete_key(&delta.key());
                    }
                    (_, Some(obj)) => {
                        writer.apply(Arc::clone(obj));
                    }
                    (_, None) => {}
                }
            }
            deltas.last().map(Delta::key).unwrap_or_default()
        });
        prop_assert_eq!(got, Some(expected.0));
    }
    let mut stored: Vec<(String, String)> = reader
        .list()
        .iter()
        .map(|o| {
            (
                store::key_of(&**o),
                o.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    stored.sort();
    let mut expected: Vec<(String, String)> = model.known.into_iter().collect();
    expected.sort();
    prop_assert_eq!(stored, expected);
    Ok(())
}

proptest! {
    #[test]
    fn delta_fifo_follows_client_go_rules_under_random_operations(ops in prop::collection::vec(op(), 1..60)) {
        run_model(ops)?;
    }
}
