//! Real concurrency: producers and workers on a multi-thread runtime. Each worker checks
//! that no other worker holds its item (b), and every add is followed by a processing of
//! its key (a, c: nothing lost, nothing processed twice at once).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kdev_core::workqueue::WorkQueue;
use parking_lot::Mutex;

#[derive(Default)]
struct Ledger {
    /// key -> (sequence number of its last add, last sequence seen at processing start)
    keys: Mutex<HashMap<u32, (u64, u64)>>,
    in_flight: Mutex<std::collections::HashSet<u32>>,
}

#[test]
fn concurrent_producers_and_workers_keep_the_contract() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let queue: WorkQueue<u32> = WorkQueue::default();
        let ledger = Arc::new(Ledger::default());
        let clock = Arc::new(AtomicU64::new(0));

        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (queue, ledger, clock) = (queue.clone(), Arc::clone(&ledger), Arc::clone(&clock));
                tokio::spawn(async move {
                    while let Some(key) = queue.get().await {
                        assert!(ledger.in_flight.lock().insert(key), "{key} handed to two workers");
                        let now = clock.fetch_add(1, Ordering::SeqCst);
                        ledger.keys.lock().entry(key).or_default().1 = now;
                        if key % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        assert!(ledger.in_flight.lock().remove(&key));
                        queue.done(&key);
                    }
                })
            })
            .collect();

        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let (queue, ledger, clock) = (queue.clone(), Arc::clone(&ledger), Arc::clone(&clock));
                tokio::spawn(async move {
                    let mut x = 0x9e37_79b9u32.wrapping_mul(p + 1);
                    for i in 0..50_000u32 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let key = x % 500;
                        {
                            // Record the add before making it, so a worker that takes the
                            // key at once sees a later clock value.
                            let now = clock.fetch_add(1, Ordering::SeqCst);
                            ledger.keys.lock().entry(key).or_default().0 = now;
                            queue.add(key);
                        }
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.expect("producer");
        }
        queue.shutdown_with_drain().await;
        for worker in workers {
            worker.await.expect("worker");
        }
        for (key, (added, processed)) in ledger.keys.lock().iter() {
            assert!(
                processed > added,
                "key {key} added at {added} but last processed at {processed}"
            );
        }
    });
}
