//! Lesson 4 — the DeltaFIFO and the in-order FIFO: delta types, popping a key with its
//! whole history, collapsed deletes, relists with tombstones, resync, has_synced, and the
//! same events through the RealFIFO that client-go's informers use by default since 1.33.
//!
//! Run it (no cluster needed):
//!
//! ```sh
//! cargo run -p kdev-examples --bin delta_fifo
//! ```
//!
//! The page that goes with it: `docs/delta_fifo.md`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev::delta_fifo::{self, Delta, DeltaFifo, DeltaObject, DeltaType};
use kdev::real_fifo::RealFifo;
use kdev::store::{self, Writer};

fn cm(name: &str, resource_version: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some("default".into());
    cm.metadata.name = Some(name.into());
    cm.metadata.resource_version = Some(resource_version.into());
    cm
}

fn describe(delta: &Delta<ConfigMap>) -> String {
    match &delta.object {
        DeltaObject::Object(obj) => format!(
            "{} (resourceVersion {})",
            delta.kind,
            obj.metadata.resource_version.as_deref().unwrap_or("?")
        ),
        DeltaObject::Tombstone(t) => format!(
            "{} as a DeletedFinalStateUnknown tombstone (last known resourceVersion {})",
            delta.kind,
            t.object
                .as_ref()
                .and_then(|o| o.metadata.resource_version.as_deref())
                .unwrap_or("unknown")
        ),
    }
}

/// What an informer does with each popped key: apply the deltas to its cache.
fn pop_and_apply(fifo: &DeltaFifo<ConfigMap>, cache: &mut Writer<ConfigMap>) -> bool {
    fifo.try_pop(|deltas, in_initial_list| {
        let key = deltas.last().map(Delta::key).unwrap_or_default();
        let initial = if in_initial_list { " [initial list]" } else { "" };
        println!("  pop {key}{initial}:");
        for delta in &deltas {
            println!("    - {}", describe(delta));
            match (delta.kind, delta.object.get()) {
                (DeltaType::Deleted, _) => {
                    cache.delete_key(&key);
                }
                (_, Some(obj)) => {
                    cache.apply(Arc::clone(obj));
                }
                (_, None) => {}
            }
        }
    })
    .is_some()
}

fn main() {
    // The informer's cache doubles as the FIFO's "known objects".
    let (cache, mut writer) = store::store::<ConfigMap>();
    let fifo = DeltaFifo::new(delta_fifo::Config::default().known_objects(cache.clone()));

    println!("== 1. the initial list arrives as Replaced deltas");
    fifo.replace([cm("app-config", "10"), cm("feature-flags", "11")]);
    println!("has_synced before popping: {}", fifo.has_synced());
    while pop_and_apply(&fifo, &mut writer) {}
    println!("has_synced after popping the whole list: {}", fifo.has_synced());

    println!("\n== 2. watch events pile up per key; a key keeps its place in line");
    fifo.update(cm("app-config", "12"));
    fifo.add(cm("new-config", "13"));
    fifo.update(cm("app-config", "14"));
    println!("queued keys, in order: {:?}", fifo.list_keys());
    while pop_and_apply(&fifo, &mut writer) {}

    println!("\n== 3. two deletes in a row collapse into one");
    fifo.delete(cm("new-config", "15"));
    fifo.delete(cm("new-config", "15"));
    while pop_and_apply(&fifo, &mut writer) {}

    println!("\n== 4. a relist finds a delete the watch missed: a tombstone");
    println!("(the watch broke; feature-flags was deleted meanwhile; the relist lacks it)");
    fifo.replace([cm("app-config", "16")]);
    while pop_and_apply(&fifo, &mut writer) {}
    println!("cache now holds: {:?}", cache.list_keys());

    println!("\n== 5. resync replays the cache, but never over a pending event");
    writer.apply(Arc::new(cm("team-config", "17")));
    fifo.update(cm("app-config", "18"));
    fifo.resync();
    while pop_and_apply(&fifo, &mut writer) {}

    println!("\n== 6. the same kind of events through the RealFIFO: in order, nothing merged");
    let real = RealFifo::<ConfigMap>::default();
    real.add(cm("a", "1"));
    real.add(cm("b", "2"));
    real.update(cm("a", "3"));
    real.update(cm("a", "4"));
    while let Some(line) = real.try_pop(|delta, _| format!("{} {}", delta.key(), describe(&delta))) {
        println!("  pop {line}");
    }
    println!("the DeltaFIFO would have handed out a once with 3 deltas, then b");

    println!("\nlesson complete");
}
