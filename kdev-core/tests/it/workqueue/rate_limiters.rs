//! The rate limiters, in virtual time where time matters.

use std::time::Duration;

use kdev_core::workqueue::rate_limiter::{
    Bucket, Error, ItemExponential, ItemFastSlow, MaxOf, RateLimiter, WithMaxWait, default_controller_rate_limiter,
    default_item_based_rate_limiter,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn exponential_doubles_per_failure_up_to_its_max() {
    let limiter = ItemExponential::new(ms(1), ms(10)).unwrap();
    let delays: Vec<_> = (0..6).map(|_| limiter.when(&"a")).collect();
    assert_eq!(delays, [ms(1), ms(2), ms(4), ms(8), ms(10), ms(10)]);
    assert_eq!(limiter.when(&"b"), ms(1), "per item");
    assert_eq!(limiter.num_requeues(&"a"), 6);
    limiter.forget(&"a");
    assert_eq!(limiter.num_requeues(&"a"), 0);
    assert_eq!(limiter.when(&"a"), ms(1));
}

#[test]
fn exponential_gives_its_max_when_the_delay_overflows() {
    let limiter = ItemExponential::new(ms(5), Duration::from_secs(1000)).unwrap();
    let last = (0..200).map(|_| limiter.when(&1u8)).last();
    assert_eq!(last, Some(Duration::from_secs(1000)));
}

#[test]
fn exponential_rejects_invalid_arguments() {
    assert_eq!(
        ItemExponential::<u8>::new(Duration::ZERO, ms(1)).unwrap_err(),
        Error::ZeroBaseDelay
    );
    assert_eq!(
        ItemExponential::<u8>::new(ms(10), ms(1)).unwrap_err(),
        Error::MaxBelowBase {
            base: ms(10),
            max: ms(1)
        }
    );
}

#[test]
fn item_based_default_starts_at_one_millisecond() {
    let limiter = default_item_based_rate_limiter();
    assert_eq!(limiter.when(&"a"), ms(1));
    assert_eq!(limiter.when(&"a"), ms(2));
}

#[test]
fn fast_slow_is_fast_for_max_fast_attempts_then_slow() {
    let limiter = ItemFastSlow::new(ms(5), Duration::from_secs(10), 3);
    let delays: Vec<_> = (0..5).map(|_| limiter.when(&"a")).collect();
    assert_eq!(
        delays,
        [ms(5), ms(5), ms(5), Duration::from_secs(10), Duration::from_secs(10)]
    );
    assert_eq!(limiter.num_requeues(&"a"), 5);
    limiter.forget(&"a");
    assert_eq!(limiter.when(&"a"), ms(5));
}

#[tokio::test(start_paused = true)]
async fn bucket_allows_a_burst_then_spaces_items_at_its_rate() {
    let bucket = Bucket::new(10.0, 3).unwrap();
    let delays: Vec<_> = (0..6).map(|i| RateLimiter::<u32>::when(&bucket, &i)).collect();
    assert_eq!(delays, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
    assert_eq!(RateLimiter::<u32>::num_requeues(&bucket, &0), 0);
}

#[tokio::test(start_paused = true)]
async fn bucket_refills_as_time_passes_up_to_its_burst() {
    let bucket = Bucket::new(10.0, 2).unwrap();
    for i in 0..2u32 {
        assert_eq!(bucket.when(&i), Duration::ZERO);
    }
    tokio::time::advance(ms(100)).await;
    assert_eq!(RateLimiter::<u32>::when(&bucket, &0), Duration::ZERO, "one token back");
    assert_eq!(RateLimiter::<u32>::when(&bucket, &0), ms(100));
    tokio::time::advance(Duration::from_secs(60)).await;
    let delays: Vec<_> = (0..3).map(|i| RateLimiter::<u32>::when(&bucket, &i)).collect();
    assert_eq!(delays, [ms(0), ms(0), ms(100)], "never more than the burst saved");
}

#[test]
fn bucket_rejects_invalid_arguments_and_infinity_never_limits() {
    assert!(matches!(Bucket::new(0.0, 1), Err(Error::InvalidRate(_))));
    assert!(matches!(Bucket::new(-1.0, 1), Err(Error::InvalidRate(_))));
    assert!(matches!(Bucket::new(f64::NAN, 1), Err(Error::InvalidRate(_))));
    assert_eq!(Bucket::new(1.0, 0).unwrap_err(), Error::ZeroBurst);
    let unlimited = Bucket::new(f64::INFINITY, 1).unwrap();
    for i in 0..1000u32 {
        assert_eq!(unlimited.when(&i), Duration::ZERO);
    }
}

#[test]
fn max_of_answers_the_worst_case_and_forgets_everywhere() {
    let limiter: MaxOf<&str> = MaxOf::new(vec![
        Box::new(ItemExponential::new(ms(1), ms(100)).unwrap()),
        Box::new(ItemFastSlow::new(ms(3), ms(50), 2)),
    ]);
    let delays: Vec<_> = (0..4).map(|_| limiter.when(&"a")).collect();
    assert_eq!(delays, [ms(3), ms(3), ms(50), ms(50)]);
    assert_eq!(limiter.num_requeues(&"a"), 4);
    limiter.forget(&"a");
    assert_eq!(limiter.num_requeues(&"a"), 0);
    assert_eq!(MaxOf::<&str>::new(Vec::new()).when(&"a"), Duration::ZERO);
}

#[test]
fn with_max_wait_caps_the_delay() {
    let limiter = WithMaxWait::new(ItemExponential::new(ms(10), Duration::from_secs(100)).unwrap(), ms(25));
    let delays: Vec<_> = (0..4).map(|_| limiter.when(&"a")).collect();
    assert_eq!(delays, [ms(10), ms(20), ms(25), ms(25)]);
    assert_eq!(limiter.num_requeues(&"a"), 4);
}

#[tokio::test(start_paused = true)]
async fn default_controller_limiter_is_max_of_5ms_exponential_and_10qps_burst_100() {
    let limiter = default_controller_rate_limiter::<u32>();
    // One item failing: the exponential part, since the bucket has tokens.
    let delays: Vec<_> = (0..4).map(|_| limiter.when(&0)).collect();
    assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40)]);
    // Many items failing at once: after the burst of 100 (4 tokens already used) the
    // bucket spaces them 100 ms apart.
    let delays: Vec<_> = (1..=98).map(|i| limiter.when(&i)).collect();
    assert!(delays[..96].iter().all(|d| *d == ms(5)), "{delays:?}");
    assert_eq!(delays[96..], [ms(100), ms(200)]);
    assert_eq!(limiter.num_requeues(&0), 4);
}
