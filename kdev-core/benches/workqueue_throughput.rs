//! Workqueue throughput, the workload measured for client-go on this machine:
//! one producer adds 1,000,000 keys, 4 consumer tasks on a 2-thread runtime `get`/`done`
//! until the queue is drained.
//!
//! Run with `cargo bench -p kdev-core --bench workqueue_throughput`.
//! `KDEV_BENCH_RUNS` sets the number of runs per workload (default 7); the median is reported.

use std::time::{Duration, Instant};

use kdev_core::workqueue::WorkQueue;

/// client-go v0.36.2's workqueue with the default controller rate limiter, same workload,
/// same machine (../shared/specs/rust-ecosystem.md, "Measured peers").
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
fn run(rt: &tokio::runtime::Runtime, keys: Vec<String>) -> (usize, Duration) {
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
            let yield_every: usize = std::env::var("YIELD").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            tokio::spawn(async move {
                for (i, key) in keys.into_iter().enumerate() {
                    queue.add(key);
                    if yield_every > 0 && i % yield_every == 0 {
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
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing else useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("KDEV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (label, distinct, peer) in [
        ("10,000 distinct keys", 10_000u64, CLIENT_GO_10K_KEYS),
        ("1,000,000 distinct keys", ADDS as u64, CLIENT_GO_DISTINCT),
    ] {
        let input = keys(distinct, 0x6b64_6576);
        let mut times = Vec::new();
        let mut processed = 0;
        for _ in 0..runs.max(1) {
            let (n, elapsed) = run(&rt, input.clone());
            processed = n;
            times.push(elapsed.as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "workqueue {label}: {ADDS} adds, {processed} items processed, {median:.3} s (median of {}), {:.0} items/s, \
             client-go {peer:.3} s, {:.2}x faster",
            times.len(),
            processed as f64 / median,
            peer / median,
        );
    }
}
