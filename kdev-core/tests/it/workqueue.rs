//! Tests of `kdev_core::workqueue`: the contract (a)–(d), delays, priorities, rate
//! limiting, shutdown, cancellation and metrics.

mod model;
mod rate_limiters;
mod stress;

use std::time::Duration;

use futures::FutureExt;
use kdev_core::workqueue::{self, AddOptions, LOW_PRIORITY, WorkQueue, rate_limiter::ItemExponential};
use tokio::time::Instant;

fn queue() -> WorkQueue<&'static str> {
    WorkQueue::default()
}

/// Takes an item if one is ready now.
fn try_get<T: std::hash::Hash + Eq + Clone + Send + 'static>(queue: &WorkQueue<T>) -> Option<Option<T>> {
    queue.get().now_or_never()
}

#[tokio::test]
async fn an_item_added_many_times_before_it_is_taken_is_handed_out_once() {
    let queue = queue();
    for _ in 0..5 {
        queue.add("a");
    }
    queue.add("b");
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.get().await, Some("a"));
    assert_eq!(queue.get().await, Some("b"));
    assert_eq!(try_get(&queue), None, "nothing else is ready");
}

#[tokio::test]
async fn an_item_being_processed_is_not_handed_to_another_worker() {
    let queue = queue();
    queue.add("a");
    assert_eq!(queue.get().await, Some("a"));
    queue.add("a");
    assert_eq!(try_get(&queue), None, "a is still being processed");
    assert_eq!(queue.len(), 0);
}

#[tokio::test]
async fn an_item_added_while_processing_is_handed_out_again_after_done() {
    let queue = queue();
    queue.add("a");
    let item = queue.get().await.unwrap();
    queue.add("a");
    queue.add("a");
    queue.done(&item);
    assert_eq!(queue.len(), 1, "handed out again, once");
    assert_eq!(queue.get().await, Some("a"));
    queue.done(&"a");
    assert_eq!(queue.len(), 0);
}

#[tokio::test]
async fn done_for_an_item_not_being_processed_does_nothing() {
    let queue = queue();
    queue.done(&"ghost");
    queue.add("a");
    queue.done(&"a"); // queued, not processing
    assert_eq!(queue.len(), 1);
}

#[tokio::test]
async fn items_come_out_in_the_order_they_became_ready() {
    let queue = queue();
    for key in ["c", "a", "b", "a"] {
        queue.add(key);
    }
    let mut out = Vec::new();
    while let Some(Some(item)) = try_get(&queue) {
        out.push(item);
    }
    assert_eq!(out, ["c", "a", "b"]);
}

#[tokio::test]
async fn shutdown_stops_intake_and_still_hands_out_queued_items() {
    let queue = queue();
    queue.add("a");
    queue.add_after("later", Duration::from_secs(1));
    queue.shutdown();
    queue.add("b");
    assert!(queue.is_shutting_down());
    assert_eq!(queue.get().await, Some("a"));
    assert_eq!(queue.get().await, None, "b came after shutdown, later was waiting");
}

#[tokio::test]
async fn shutdown_wakes_every_waiting_worker() {
    let queue = queue();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        })
        .collect();
    tokio::task::yield_now().await;
    queue.shutdown();
    for worker in workers {
        assert_eq!(worker.await.unwrap(), None);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_drain_waits_until_in_flight_items_are_done() {
    let queue = queue();
    queue.add("a");
    let item = queue.get().await.unwrap();
    let drained = tokio::spawn({
        let queue = queue.clone();
        async move {
            queue.shutdown_with_drain().await;
            Instant::now()
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!drained.is_finished(), "a is still in flight");
    let done_at = Instant::now();
    queue.done(&item);
    assert_eq!(drained.await.unwrap(), done_at);
    assert_eq!(queue.get().await, None);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_a_pending_drain() {
    let queue = queue();
    queue.add("a");
    let _item = queue.get().await.unwrap();
    let drained = tokio::spawn({
        let queue = queue.clone();
        async move { queue.shutdown_with_drain().await }
    });
    tokio::task::yield_now().await;
    queue.shutdown();
    drained.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn add_after_makes_an_item_ready_once_its_delay_has_passed() {
    let queue = queue();
    let start = Instant::now();
    queue.add_after("a", Duration::from_millis(250));
    assert_eq!(queue.len(), 0);
    assert_eq!(queue.get().await, Some("a"));
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_zero_delay_adds_at_once() {
    let queue = queue();
    queue.add_after("a", Duration::ZERO);
    assert_eq!(queue.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn for_an_item_already_waiting_the_earlier_time_wins() {
    let queue = queue();
    let start = Instant::now();
    queue.add_after("a", Duration::from_secs(10));
    queue.add_after("a", Duration::from_secs(2));
    queue.add_after("a", Duration::from_secs(5));
    assert_eq!(queue.get().await, Some("a"));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    queue.done(&"a");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(queue.len(), 0, "the later timers were superseded");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_worker_wakes_for_a_timer_added_after_it_went_to_sleep() {
    let queue = queue();
    let start = Instant::now();
    let worker = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::task::yield_now().await;
    queue.add_after("a", Duration::from_millis(40));
    assert_eq!(worker.await.unwrap(), Some("a"));
    assert_eq!(start.elapsed(), Duration::from_millis(40));
}

/// Two sleeping workers; an add wakes one, and a delayed add comes before that one has run.
/// The woken worker takes the ready item and leaves: the other must still learn the timer.
#[tokio::test(start_paused = true)]
async fn a_timer_added_while_a_worker_is_on_its_way_still_wakes_the_other_worker() {
    let queue = queue();
    let worker = |queue: WorkQueue<&'static str>| tokio::spawn(async move { queue.get().await });
    let (a, b) = (worker(queue.clone()), worker(queue.clone()));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    queue.add("x");
    queue.add_after("y", Duration::from_secs(1));
    let both = tokio::time::timeout(Duration::from_secs(60), async { (a.await, b.await) }).await;
    let (a, b) = both.expect("the timer reached a sleeping worker");
    let mut got = [a.unwrap(), b.unwrap()];
    got.sort();
    assert_eq!(got, [Some("x"), Some("y")]);
}

/// `Duration::MAX` (say, a reconciler's "not for a long time") is far in the future, not an
/// overflow panic in the worker that adds it.
#[tokio::test(start_paused = true)]
async fn a_delay_too_long_for_the_clock_waits_instead_of_panicking() {
    let queue = queue();
    queue.add_after("forever", Duration::MAX);
    queue.add_after("soon", Duration::from_millis(5));
    assert_eq!(queue.get().await, Some("soon"));
    let next = tokio::time::timeout(Duration::from_secs(3600), queue.get()).await;
    assert!(next.is_err(), "still waiting an hour later");
}

#[tokio::test(start_paused = true)]
async fn delayed_items_come_out_in_the_order_of_their_ready_times() {
    let queue = queue();
    queue.add_after("c", Duration::from_millis(30));
    queue.add_after("a", Duration::from_millis(10));
    queue.add_after("b", Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = [queue.get().await, queue.get().await, queue.get().await];
    assert_eq!(out, [Some("a"), Some("b"), Some("c")]);
}

#[tokio::test]
async fn higher_priority_items_are_served_first_and_equal_priorities_in_order() {
    let queue = queue();
    queue.add_with("initial-1", AddOptions::default().priority(LOW_PRIORITY));
    queue.add_with("initial-2", AddOptions::default().priority(LOW_PRIORITY));
    queue.add("change-1");
    queue.add_with("urgent", AddOptions::default().priority(10));
    queue.add("change-2");
    let mut out = Vec::new();
    while let Some(Some(item)) = try_get(&queue) {
        out.push(item);
    }
    assert_eq!(out, ["urgent", "change-1", "change-2", "initial-1", "initial-2"]);
}

#[tokio::test]
async fn adding_a_queued_item_at_a_higher_priority_raises_it_and_never_lowers_it() {
    let queue = queue();
    queue.add_with("a", AddOptions::default().priority(LOW_PRIORITY));
    queue.add_with("b", AddOptions::default().priority(LOW_PRIORITY));
    queue.add("c");
    queue.add("b"); // raised to normal, behind c
    queue.add_with("c", AddOptions::default().priority(LOW_PRIORITY)); // not lowered
    assert_eq!(queue.len(), 3);
    let mut out = Vec::new();
    while let Some(Some(item)) = try_get(&queue) {
        out.push(item);
    }
    assert_eq!(out, ["c", "b", "a"]);
}

#[tokio::test]
async fn an_item_re_added_while_processing_keeps_the_highest_priority_it_was_given() {
    let queue = queue();
    queue.add("a");
    let a = queue.get().await.unwrap();
    queue.add_with("a", AddOptions::default().priority(LOW_PRIORITY));
    queue.add_with("a", AddOptions::default().priority(5));
    queue.add("b");
    queue.done(&a);
    assert_eq!(queue.get().await, Some("a"), "priority 5 beats b");
}

#[tokio::test(start_paused = true)]
async fn add_rate_limited_backs_off_per_item_and_forget_resets_it() {
    let limiter = ItemExponential::new(Duration::from_millis(5), Duration::from_secs(1)).unwrap();
    let queue: WorkQueue<&str> = WorkQueue::new(workqueue::Config::default().rate_limiter(limiter));
    let mut delays = Vec::new();
    for _ in 0..4 {
        let start = Instant::now();
        queue.add_rate_limited("a");
        let item = queue.get().await.unwrap();
        delays.push(start.elapsed());
        queue.done(&item);
    }
    assert_eq!(delays, [5, 10, 20, 40].map(Duration::from_millis));
    assert_eq!(queue.num_requeues(&"a"), 4);
    queue.forget(&"a");
    assert_eq!(queue.num_requeues(&"a"), 0);
}

#[tokio::test(start_paused = true)]
async fn add_with_after_and_rate_limited_waits_for_the_longer_of_the_two() {
    let limiter = ItemExponential::new(Duration::from_millis(5), Duration::from_secs(1)).unwrap();
    let queue: WorkQueue<&str> = WorkQueue::new(workqueue::Config::default().rate_limiter(limiter));
    let start = Instant::now();
    queue.add_with(
        "a",
        AddOptions::default().after(Duration::from_millis(100)).rate_limited(),
    );
    assert_eq!(queue.get().await, Some("a"));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

#[tokio::test(flavor = "current_thread")]
async fn a_worker_that_always_finds_work_still_lets_other_tasks_run() {
    let queue = WorkQueue::<u32>::default();
    for i in 0..10_000 {
        queue.add(i);
    }
    let other_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let other_ran = other_ran.clone();
        async move { other_ran.store(true, std::sync::atomic::Ordering::SeqCst) }
    });
    // This loop never awaits anything but `get`, which always has an item ready: only
    // `get`'s cooperative yields let the spawned task run before the queue is empty.
    let mut left_when_it_ran = None;
    for left in (0..10_000).rev() {
        let item = queue.get().await.expect("an item");
        queue.done(&item);
        if left_when_it_ran.is_none() && other_ran.load(std::sync::atomic::Ordering::SeqCst) {
            left_when_it_ran = Some(left);
        }
    }
    assert!(
        left_when_it_ran.is_some_and(|left| left > 9_000),
        "the other task ran with {left_when_it_ran:?} items left"
    );
}

#[tokio::test]
async fn a_cancelled_get_loses_no_item_and_no_wake_up() {
    let queue = queue();
    // A worker starts waiting, then is cancelled.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::task::yield_now().await;
    waiting.abort();
    let _ = waiting.await;
    // Another worker waits; an add must wake it.
    let worker = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::task::yield_now().await;
    queue.add("a");
    let got = tokio::time::timeout(Duration::from_secs(5), worker).await;
    assert_eq!(got.expect("the worker was woken").unwrap(), Some("a"));
}

#[tokio::test]
async fn a_get_cancelled_after_being_woken_passes_the_wake_on() {
    let queue = queue();
    let first = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    let second = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::task::yield_now().await;
    // Wake one of them, and cancel the first before it runs.
    queue.add("a");
    first.abort();
    let first = first.await;
    let second = tokio::time::timeout(Duration::from_secs(5), async {
        match first {
            Ok(got) => got, // the first ran before the abort and took it
            Err(_) => second.await.unwrap(),
        }
    })
    .await
    .expect("the wake reached a live worker");
    assert_eq!(second, Some("a"));
}

#[tokio::test]
async fn metrics_use_controller_runtime_names_and_labels() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = workqueue::Metrics::register(&mut registry);
    let queue: WorkQueue<&str> = WorkQueue::new(workqueue::Config::default().name("pods").metrics(&metrics));
    let unnamed: WorkQueue<&str> = WorkQueue::new(workqueue::Config::default().metrics(&metrics));
    unnamed.add("x");
    queue.add("a");
    queue.add("a");
    queue.add("b");
    queue.add_with("c", AddOptions::default().priority(LOW_PRIORITY));
    queue.add_after("d", Duration::from_secs(60));
    assert_eq!(queue.len(), 3);
    let item = queue.get().await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        // The second add of a finds it queued and does not count, as in client-go.
        r#"workqueue_adds_total{name="pods",controller="pods"} 3"#,
        r#"workqueue_retries_total{name="pods",controller="pods"} 1"#,
        r#"workqueue_depth{name="pods",controller="pods",priority="0"} 1"#,
        r#"workqueue_depth{name="pods",controller="pods",priority="-100"} 1"#,
        r#"workqueue_queue_duration_seconds_count{name="pods",controller="pods"} 1"#,
        "# TYPE workqueue_unfinished_work_seconds gauge",
        "# TYPE workqueue_longest_running_processor_seconds gauge",
        r#"workqueue_unfinished_work_seconds{name="pods",controller="pods"}"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains(r#"name="""#), "an unnamed queue reports nothing");
    queue.done(&item);
    text.clear();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"workqueue_work_duration_seconds_count{name="pods",controller="pods"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn unfinished_work_is_reported_at_scrape_time() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = workqueue::Metrics::register(&mut registry);
    let queue: WorkQueue<&str> = WorkQueue::new(workqueue::Config::default().name("slow").metrics(&metrics));
    queue.add("a");
    queue.add("b");
    let _a = queue.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _b = queue.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"workqueue_unfinished_work_seconds{name="slow",controller="slow"} 4.0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"workqueue_longest_running_processor_seconds{name="slow",controller="slow"} 3.0"#),
        "{text}"
    );
    drop(queue);
    text.clear();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        !text.contains(r#"workqueue_unfinished_work_seconds{name="slow""#),
        "a dropped queue is no longer reported"
    );
}

/// One `get`, with the time it returned.
fn one_get(queue: &WorkQueue<&'static str>) -> tokio::task::JoinHandle<(Option<&'static str>, Instant)> {
    let queue = queue.clone();
    tokio::spawn(async move { (queue.get().await, Instant::now()) })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Two workers sleep; a delayed add wakes one, which goes back to sleep until its time. A
/// later timer wakes nobody: only that worker knows when to look. It takes the first item
/// at its time and leaves; the other worker must still take the second at its time.
#[tokio::test(start_paused = true)]
async fn a_timer_is_served_after_the_worker_sleeping_until_the_earliest_one_takes_it_and_leaves() {
    let queue = queue();
    let start = Instant::now();
    let (first, second) = (one_get(&queue), one_get(&queue));
    settle().await;
    queue.add_after("a", Duration::from_secs(1));
    settle().await;
    queue.add_after("b", Duration::from_secs(2));
    let both = tokio::time::timeout(Duration::from_secs(60), async { (first.await, second.await) }).await;
    let (first, second) = both.expect("the second timer reached the other worker");
    let mut got = [first.unwrap(), second.unwrap()].map(|(item, at)| (item, at - start));
    got.sort();
    assert_eq!(
        got,
        [(Some("a"), Duration::from_secs(1)), (Some("b"), Duration::from_secs(2))]
    );
}

/// As above, but the worker that knows the timer is woken by an add and takes that item.
#[tokio::test(start_paused = true)]
async fn a_timer_is_served_after_the_worker_sleeping_until_it_takes_a_plain_add_and_leaves() {
    let queue = queue();
    let start = Instant::now();
    let (first, second) = (one_get(&queue), one_get(&queue));
    settle().await;
    queue.add_after("later", Duration::from_secs(1));
    settle().await;
    queue.add("now");
    let both = tokio::time::timeout(Duration::from_secs(60), async { (first.await, second.await) }).await;
    let (first, second) = both.expect("the timer reached the other worker");
    let mut got = [first.unwrap(), second.unwrap()].map(|(item, at)| (item, at - start));
    got.sort();
    assert_eq!(
        got,
        [(Some("later"), Duration::from_secs(1)), (Some("now"), Duration::ZERO)]
    );
}

/// As above, but the worker that knows the timer is cancelled while it sleeps.
#[tokio::test(start_paused = true)]
async fn a_timer_is_served_after_the_worker_sleeping_until_it_is_cancelled() {
    let queue = queue();
    let start = Instant::now();
    let (first, second) = (one_get(&queue), one_get(&queue));
    settle().await;
    queue.add_after("a", Duration::from_secs(1));
    settle().await;
    // The most recent sleeper (the second) was woken and went back to sleep until 1 s.
    second.abort();
    assert!(second.await.is_err(), "cancelled before its time");
    let got = tokio::time::timeout(Duration::from_secs(60), first).await;
    let (item, at) = got.expect("the timer reached the other worker").unwrap();
    assert_eq!((item, at - start), (Some("a"), Duration::from_secs(1)));
}

fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

fn named_queue(name: &str) -> (WorkQueue<String>, prometheus_client::registry::Registry) {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = workqueue::Metrics::register(&mut registry);
    let queue = WorkQueue::new(workqueue::Config::default().name(name).metrics(&metrics));
    (queue, registry)
}

#[tokio::test]
async fn depth_counts_items_added_while_every_worker_is_busy() {
    let (queue, registry) = named_queue("busy");
    for i in 0..100 {
        queue.add(format!("key-{i}"));
        queue.add(format!("key-{i}"));
    }
    let text = metrics_text(&registry);
    let line = r#"workqueue_depth{name="busy",controller="busy",priority="0"} 100"#;
    assert!(text.contains(line), "missing {line:?} in\n{text}");
}

#[tokio::test]
async fn an_item_added_while_processing_counts_once_in_depth_and_adds() {
    // client-go's `Add` marks the item dirty and counts it (depth and adds) at once, though
    // `Get` hands it out only after `Done`; further adds count nothing.
    let (queue, registry) = named_queue("again");
    queue.add("a".to_string());
    let item = queue.get().await.unwrap();
    let depth = |n: usize| format!(r#"workqueue_depth{{name="again",controller="again",priority="0"}} {n}"#);
    let adds = |n: usize| format!(r#"workqueue_adds_total{{name="again",controller="again"}} {n}"#);
    for _ in 0..3 {
        queue.add("a".to_string());
    }
    let text = metrics_text(&registry);
    for line in [depth(1), adds(2)] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    queue.done(&item);
    let text = metrics_text(&registry);
    for line in [depth(1), adds(2)] {
        assert!(text.contains(&line), "after done, missing {line:?} in\n{text}");
    }
    let again = queue.get().await.unwrap();
    let text = metrics_text(&registry);
    assert!(text.contains(&depth(0)), "after the second get, depth 0 in\n{text}");
    queue.done(&again);
    assert_eq!(queue.len(), 0);
}

#[tokio::test]
async fn a_raised_priority_moves_the_count_of_an_item_added_while_processing() {
    let (queue, registry) = named_queue("raise");
    queue.add_with("a".to_string(), AddOptions::default().priority(LOW_PRIORITY));
    let item = queue.get().await.unwrap();
    queue.add_with("a".to_string(), AddOptions::default().priority(LOW_PRIORITY));
    queue.add("a".to_string());
    queue.done(&item);
    let text = metrics_text(&registry);
    for line in [
        r#"workqueue_depth{name="raise",controller="raise",priority="0"} 1"#,
        r#"workqueue_depth{name="raise",controller="raise",priority="-100"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn queue_duration_counts_from_the_add_not_from_the_next_get() {
    let (queue, registry) = named_queue("late");
    queue.add("a".to_string());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(queue.get().await.as_deref(), Some("a"));
    let text = metrics_text(&registry);
    let sum = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"workqueue_queue_duration_seconds_sum{name="late",controller="late"} "#))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        sum.is_some_and(|s| (s - 60.0).abs() < 0.01),
        "queue duration sum {sum:?} in\n{text}"
    );
}

/// client-go starts an item's queue-duration clock at its first add while it was being
/// processed, not at `done`.
#[tokio::test(start_paused = true)]
async fn queue_duration_of_an_item_added_while_processing_counts_from_that_add() {
    let (queue, registry) = named_queue("again");
    queue.add("a".to_string());
    let a = queue.get().await.unwrap();
    queue.add("a".to_string());
    tokio::time::sleep(Duration::from_secs(30)).await;
    queue.done(&a);
    assert_eq!(queue.get().await.as_deref(), Some("a"));
    let text = metrics_text(&registry);
    let sum = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"workqueue_queue_duration_seconds_sum{name="again",controller="again"} "#))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        sum.is_some_and(|s| (s - 30.0).abs() < 0.01),
        "queue duration sum {sum:?} in\n{text}"
    );
}

/// A key whose live copies are counted.
#[derive(Debug)]
struct Counted {
    key: u32,
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counted {
    fn new(key: u32, live: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self {
            key,
            live: live.clone(),
        }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Self::new(self.key, &self.live)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl PartialEq for Counted {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Counted {}

impl std::hash::Hash for Counted {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

#[tokio::test]
async fn repeated_adds_while_every_worker_is_busy_keep_one_copy() {
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let queue = WorkQueue::<Counted>::default();
    for _ in 0..10_000 {
        queue.add(Counted::new(7, &live));
    }
    assert_eq!(
        live.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the queue's one copy"
    );
}

/// client-go's order: `done` puts an item added meanwhile behind the adds made before it.
#[tokio::test]
async fn an_item_requeued_by_done_comes_after_items_added_before_done() {
    let queue = queue();
    queue.add("x");
    assert_eq!(queue.get().await, Some("x"));
    queue.add("x");
    assert_eq!(queue.len(), 0, "x is being processed");
    queue.add("y");
    queue.done(&"x");
    assert_eq!(queue.get().await, Some("y"));
    assert_eq!(queue.get().await, Some("x"));
}
