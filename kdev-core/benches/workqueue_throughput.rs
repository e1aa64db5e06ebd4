//! Workqueue throughput on the workload measured for client-go's workqueue on this machine:
//! one producer adds 1,000,000 keys drawn with a fixed seed from 10,000 distinct keys (and
//! then 1,000,000 distinct keys); 4 consumer tasks on a 2-thread tokio runtime call
//! `get`/`done` until the queue is drained. The queue has the default controller rate
//! limiter, as client-go's did.
//!
//! Run with `cargo bench -p kdev-core --bench workqueue_throughput`.
//! `KDEV_BENCH_RUNS` sets the runs per workload (default 7); the median is reported. Free
//! arguments select workloads by the start of their name (`producer/label`), e.g. `-- "task/1,000,000"`.
//!
//! Two producers are measured:
//! - **task** (the reference setup): the producer is a task on the same runtime that adds
//!   all keys without yielding. tokio puts a task woken by the producer in the producer's
//!   LIFO slot, which other workers cannot steal, so the workers mostly run after the
//!   producer is done and the queue grows to its full depth.
//! - **cooperative task**: the producer yields to the scheduler every 1,000 adds, as an
//!   informer does between watch events; workers then run alongside it, deduplicate less
//!   (they take keys before repeats arrive) and the queue stays shallow.

use std::time::{Duration, Instant};

use kdev_core::workqueue::WorkQueue;

/// client-go v0.36.2's workqueue with the default controller rate limiter, same workload,
/// same machine (shared/specs/rust-ecosystem.md, "Measured peers").
const CLIENT_GO_10K_KEYS: f64 = 0.287;
const CLIENT_GO_DISTINCT: f64 = 0.661;

const ADDS: usize = 1_000_000;
const CONSUMERS: usize = 4;

/// splitmix64: a fixed-seed generator, so every run draws the same keys.
fn keys(distinct: u64, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..ADDS as u64)
        .map(|i| {
            let n = if distinct >= ADDS as u64 { i } else { next() % distinct };
            format!("default/object-{n}")
        })
        .collect()
}

/// One run: returns (items processed, elapsed).
fn run(rt: &tokio::runtime::Runtime, keys: Vec<String>, yield_every: Option<usize>) -> (usize, Duration) {
    rt.block_on(async move {
        let queue = WorkQueue::<String>::default();
        let start = Instant::now();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut processed = 0usize;
                    while let Some(key) = queue.get().await {
                        processed += 1;
                        queue.done(&key);
                    }
                    processed
                })
            })
            .collect();
        let producer = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for (i, key) in keys.into_iter().enumerate() {
                    queue.add(key);
                    if yield_every.is_some_and(|every| i % every == every - 1) {
                        tokio::task::yield_now().await;
                    }
                }
                queue.shutdown();
            })
        };
        producer.await.expect("producer");
        let mut processed = 0;
        for consumer in consumers {
            processed += consumer.await.expect("consumer");
        }
        (processed, start.elapsed())
    })
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs: usize = std::env::var("KDEV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    // Free arguments select workloads by the start of their name, e.g. `-- task/`.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (producer, yield_every) in [("task", None), ("cooperative task", Some(1_000))] {
        println!("producer: {producer}");
        for (label, distinct, peer) in [
            ("10,000 distinct keys", 10_000u64, CLIENT_GO_10K_KEYS),
            ("1,000,000 distinct keys", ADDS as u64, CLIENT_GO_DISTINCT),
        ] {
            let name = format!("{producer}/{label}");
            if !filters.is_empty() && !filters.iter().any(|f| name.starts_with(f.as_str())) {
                continue;
            }
            let input = keys(distinct, 0x6b64_6576);
            let mut times = Vec::new();
            let mut processed = 0;
            for _ in 0..runs {
                let (n, elapsed) = run(&rt, input.clone(), yield_every);
                processed = n;
                times.push(elapsed.as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            if std::env::var_os("KDEV_BENCH_VERBOSE").is_some() {
                println!("    runs: {times:.3?}");
            }
            println!(
                "  {label}: {ADDS} adds, {processed} items processed, {median:.3} s (median of {runs}), \
                 {:.0} adds/s; client-go {peer:.3} s, ratio {:.2}x",
                ADDS as f64 / median,
                peer / median,
            );
        }
    }
}
