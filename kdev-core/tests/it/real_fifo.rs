//! Tests of `kdev_core::real_fifo`: every event in order, no coalescing, and the same
//! replace / resync / has_synced rules as client-go's RealFIFO.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::delta_fifo::{self, Closed, Delta, DeltaType};
use kdev_core::real_fifo::RealFifo;
use kdev_core::store::{self, Writer};
use proptest::prelude::*;

use crate::delta_fifo::cm;

type Seen = (String, DeltaType, bool, Option<String>);

fn drain(fifo: &RealFifo<ConfigMap>) -> Vec<Seen> {
    std::iter::from_fn(|| {
        fifo.try_pop(|d: Delta<ConfigMap>, _| {
            let rv = d.object.get().and_then(|o| o.metadata.resource_version.clone());
            (d.key(), d.kind, d.object.is_tombstone(), rv)
        })
    })
    .collect()
}

fn with_known() -> (RealFifo<ConfigMap>, Writer<ConfigMap>) {
    let (reader, writer) = store::store::<ConfigMap>();
    (
        RealFifo::new(delta_fifo::Config::default().known_objects(reader)),
        writer,
    )
}

fn seen(key: &str, kind: DeltaType, tombstone: bool, rv: &str) -> Seen {
    (format!("default/{key}"), kind, tombstone, Some(rv.to_owned()))
}

#[test]
fn every_event_comes_out_in_the_order_it_went_in() {
    let fifo = RealFifo::<ConfigMap>::default();
    fifo.add(cm("a", "1"));
    fifo.add(cm("b", "2"));
    fifo.update(cm("a", "3"));
    fifo.delete(cm("b", "4"));
    fifo.delete(cm("b", "4"));
    assert_eq!(fifo.len(), 5, "nothing is merged");
    assert_eq!(
        drain(&fifo),
        [
            seen("a", DeltaType::Added, false, "1"),
            seen("b", DeltaType::Added, false, "2"),
            seen("a", DeltaType::Updated, false, "3"),
            seen("b", DeltaType::Deleted, false, "4"),
            seen("b", DeltaType::Deleted, false, "4"),
        ]
    );
}

#[test]
fn replace_deletes_what_exists_by_the_store_or_the_queue_and_the_list_lacks() {
    let (fifo, mut writer) = with_known();
    writer.apply(Arc::new(cm("stored-gone", "1")));
    writer.apply(Arc::new(cm("stored-deleted", "1")));
    writer.apply(Arc::new(cm("kept", "1")));
    fifo.add(cm("queued-gone", "2"));
    fifo.delete(cm("stored-deleted", "2"));
    fifo.replace([cm("kept", "3")]);
    let events = drain(&fifo);
    assert_eq!(
        events[2..],
        [
            seen("queued-gone", DeltaType::Deleted, true, "2"),
            seen("stored-gone", DeltaType::Deleted, true, "1"),
            seen("kept", DeltaType::Replaced, false, "3"),
        ],
        "the deletions before the list, and no second delete for stored-deleted, whose latest \
         event already deletes it"
    );
}

#[test]
fn resync_skips_keys_with_pending_events() {
    let (fifo, mut writer) = with_known();
    writer.apply(Arc::new(cm("a", "1")));
    writer.apply(Arc::new(cm("b", "1")));
    fifo.update(cm("a", "2"));
    fifo.resync();
    assert_eq!(
        drain(&fifo),
        [
            seen("a", DeltaType::Updated, false, "2"),
            seen("b", DeltaType::Sync, false, "1")
        ]
    );
}

#[test]
fn has_synced_counts_every_event_of_the_first_replace() {
    let (fifo, mut writer) = with_known();
    writer.apply(Arc::new(cm("gone", "1")));
    fifo.replace([cm("a", "1")]);
    assert!(!fifo.has_synced());
    assert_eq!(fifo.try_pop(|_, initial| initial), Some(true));
    assert!(!fifo.has_synced(), "the tombstone is still queued");
    assert_eq!(fifo.try_pop(|_, initial| initial), Some(true));
    assert!(fifo.has_synced());
}

#[tokio::test]
async fn close_ends_pops_once_empty_and_wakes_waiters() {
    let fifo = Arc::new(RealFifo::<ConfigMap>::default());
    fifo.add(cm("a", "1"));
    fifo.close();
    assert_eq!(fifo.pop(|d, _| d.kind).await, Ok(DeltaType::Added));
    assert_eq!(fifo.pop(|d, _| d.kind).await, Err(Closed));

    let open = Arc::new(RealFifo::<ConfigMap>::default());
    let waiter = tokio::spawn({
        let open = Arc::clone(&open);
        async move { open.pop(|d, _| d.key()).await }
    });
    tokio::task::yield_now().await;
    open.add(cm("b", "1"));
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken");
    assert_eq!(got.unwrap(), Ok("default/b".to_string()));
}

proptest! {
    /// Whatever the events, an informer applying them in order ends with the state an
    /// oracle computes from the same events, and nothing is lost or reordered.
    #[test]
    fn popping_everything_replays_the_events_in_order(
        ops in prop::collection::vec((0..3u8, 0..4u8, 0..50u8), 1..60)
    ) {
        let (fifo, mut writer) = with_known();
        let mut expected: Vec<(String, DeltaType)> = Vec::new();
        let mut state: HashMap<String, String> = HashMap::new();
        for (kind, key, rv) in ops {
            let obj = cm(&format!("k{key}"), &rv.to_string());
            let k = format!("default/k{key}");
            match kind {
                0 => { fifo.add(obj); expected.push((k.clone(), DeltaType::Added)); state.insert(k, rv.to_string()); }
                1 => { fifo.update(obj); expected.push((k.clone(), DeltaType::Updated)); state.insert(k, rv.to_string()); }
                _ => { fifo.delete(obj); expected.push((k.clone(), DeltaType::Deleted)); state.remove(&k); }
            }
            // Pop now and then, applying to the store.
            if rv % 3 == 0 {
                let applied = fifo.try_pop(|d, _| {
                    match (d.kind, d.object.get()) {
                        (DeltaType::Deleted, _) => { writer.delete_key(&d.key()); }
                        (_, Some(o)) => { writer.apply(Arc::clone(o)); }
                        _ => {}
                    }
                    (d.key(), d.kind)
                });
                prop_assert_eq!(applied, Some(expected.remove(0)));
            }
        }
        while let Some(applied) = fifo.try_pop(|d, _| {
            match (d.kind, d.object.get()) {
                (DeltaType::Deleted, _) => { writer.delete_key(&d.key()); }
                (_, Some(o)) => { writer.apply(Arc::clone(o)); }
                _ => {}
            }
            (d.key(), d.kind)
        }) {
            prop_assert_eq!(applied, expected.remove(0));
        }
        prop_assert!(expected.is_empty());
        let mut stored: Vec<(String, String)> = writer
            .reader()
            .list()
            .iter()
            .map(|o| (store::key_of(&**o), o.metadata.resource_version.clone().unwrap_or_default()))
            .collect();
        stored.sort();
        let mut want: Vec<(String, String)> = state.into_iter().collect();
        want.sort();
        prop_assert_eq!(stored, want);
    }
}
