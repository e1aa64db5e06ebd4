//! Lesson 6 — the work queue: add/get/done, deduplication, re-adds during processing,
//! delays, rate-limited retries, priorities, shutdown, and the queue's metrics.
//!
//! Run it (no cluster needed):
//!
//! ```sh
//! cargo run -p kdev-examples --bin workqueue
//! ```
//!
//! The page that goes with it: `docs/workqueue.md`.

use std::time::Duration;

use kdev::workqueue::{self, AddOptions, LOW_PRIORITY, WorkQueue};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

// The lesson runs on tokio's virtual clock: every delay below is exact, and the program
// finishes at once instead of waiting for it.
#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    println!("== 1. add, get, done");
    let queue = WorkQueue::<String>::default();
    queue.add("default/web".into());
    let key = queue.get().await.expect("a key is ready");
    println!("a worker took {key:?}; until it calls done, no other worker can take it");
    queue.done(&key);
    println!("done: the key left the queue (ready now: {})", queue.len());

    println!("\n== 2. many adds of one key collapse into one");
    for _ in 0..3 {
        queue.add("default/web".into());
    }
    queue.add("default/db".into());
    println!(
        "added default/web 3 times and default/db once: {} keys ready",
        queue.len()
    );
    let first = queue.get().await.expect("ready");
    let second = queue.get().await.expect("ready");
    println!("handed out {first:?} then {second:?}, each once");

    println!("\n== 3. a key added while it is processed comes back after done");
    queue.add(first.clone());
    println!(
        "re-added {first:?} while a worker still holds it: {} ready (it waits)",
        queue.len()
    );
    queue.done(&first);
    println!("after done: {} ready — the change is not lost", queue.len());
    let again = queue.get().await.expect("ready");
    println!("handed out {again:?} again");
    queue.done(&again);
    queue.done(&second);

    println!("\n== 4. add_after: for a key already waiting, the earlier time wins");
    let start = Instant::now();
    queue.add_after("default/later".into(), Duration::from_millis(60));
    queue.add_after("default/later".into(), Duration::from_millis(20));
    let later = queue.get().await.expect("ready");
    println!(
        "{later:?} became ready after {} ms (asked 60 ms, then 20 ms)",
        start.elapsed().as_millis()
    );
    queue.done(&later);

    println!("\n== 5. retries with the default controller rate limiter");
    println!("per key: 5 ms, doubling up to 1000 s; overall: 10 qps with a burst of 100");
    for attempt in 1..=4 {
        let start = Instant::now();
        queue.add_rate_limited("default/flaky".into());
        let key = queue.get().await.expect("ready");
        println!(
            "  attempt {attempt} failed, retried after {} ms; requeues so far: {}",
            start.elapsed().as_millis(),
            queue.num_requeues(&key)
        );
        queue.done(&key);
    }
    queue.forget(&"default/flaky".to_string());
    println!(
        "success: forget resets the backoff (requeues: {})",
        queue.num_requeues(&"default/flaky".into())
    );

    println!("\n== 6. priorities: real changes before the initial list");
    for i in 0..3 {
        queue.add_with(
            format!("default/listed-{i}"),
            AddOptions::default().priority(LOW_PRIORITY),
        );
    }
    queue.add("default/changed".into());
    let mut order = Vec::new();
    while !queue.is_empty() {
        let key = queue.get().await.expect("ready");
        order.push(key.clone());
        queue.done(&key);
    }
    println!("order: {}", order.join(", "));

    println!("\n== 7. workers, then a graceful shutdown");
    let queue = WorkQueue::<u32>::default();
    let workers: Vec<_> = (0..3)
        .map(|id| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut handled = 0;
                while let Some(item) = queue.get().await {
                    tokio::time::sleep(Duration::from_millis(1)).await; // "reconcile"
                    handled += 1;
                    queue.done(&item);
                }
                (id, handled)
            })
        })
        .collect();
    for item in 0..30 {
        queue.add(item % 10);
    }
    queue.shutdown_with_drain().await;
    println!("shutdown_with_drain returned: every key handed out is done, no more adds accepted");
    let mut total = 0;
    for worker in workers {
        let (_, handled) = worker.await.expect("worker");
        total += handled;
    }
    println!("3 workers handled {total} reconciles for 30 adds of 10 keys: repeated adds collapsed");

    println!("\n== 8. metrics, as controller-runtime names them");
    let mut registry = Registry::default();
    let metrics = workqueue::Metrics::register(&mut registry);
    let queue: WorkQueue<String> = WorkQueue::new(workqueue::Config::default().name("lesson").metrics(&metrics));
    queue.add("default/a".into());
    queue.add("default/a".into());
    queue.add("default/b".into());
    let key = queue.get().await.expect("ready");
    queue.done(&key);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in text
        .lines()
        .filter(|l| l.starts_with("workqueue_adds_total") || l.starts_with("workqueue_depth"))
    {
        println!("  {line}");
    }
    println!("3 adds, 2 counted: the second add of default/a found it queued (client-go counts so too)");

    println!("\nlesson complete");
}
