//! The reflector's backoff: client-go's `NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, 1.0)`.

use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff with full jitter that resets after a quiet period.
///
/// Each failure waits `delay + random(0..=delay)` (jitter factor 1.0), then doubles `delay` up
/// to `max`. When no failure happened for `reset_after`, the next one starts again from
/// `initial`, as client-go's backoff manager does for reflectors.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    next: Duration,
    last_failure: Option<Instant>,
}

impl Default for Backoff {
    /// 800 ms doubling to 30 s, reset after 2 minutes without failures (client-go's reflector).
    fn default() -> Self {
        Backoff::new(
            Duration::from_millis(800),
            Duration::from_secs(30),
            Duration::from_secs(120),
        )
    }
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`, reset after `reset_after` without failures.
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            reset_after,
            next: initial,
            last_failure: None,
        }
    }

    /// How long to wait after a failure now.
    pub fn failure(&mut self) -> Duration {
        let now = Instant::now();
        if self
            .last_failure
            .is_some_and(|t| now.duration_since(t) >= self.reset_after)
        {
            self.next = self.initial;
        }
        self.last_failure = Some(now);
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = base.mul_f64(fastrand::f64());
        base + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_double_up_to_the_cap_with_jitter_and_reset_after_quiet() {
        let mut b = Backoff::default();
        let bounds = [
            (800, 1600),
            (1600, 3200),
            (3200, 6400),
            (6400, 12800),
            (12800, 25600),
            (25600, 51200),
        ];
        for (lo, hi) in bounds {
            let d = b.failure().as_millis();
            assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
        }
        let capped = b.failure().as_millis();
        assert!((30_000..=60_000).contains(&capped), "{capped}");
        tokio::time::advance(Duration::from_secs(121)).await;
        let reset = b.failure().as_millis();
        assert!((800..=1600).contains(&reset), "{reset}");
    }
}
