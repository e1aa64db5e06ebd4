//! The recorder's bounded memory: a small LRU map (also the metrics filter's caches), and the
//! per-object token bucket of the spam filter (client-go's `EventSourceObjectSpamFilter`).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// A map that forgets its least recently used entry beyond `capacity` entries.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    map: HashMap<K, (V, u64)>,
    capacity: usize,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Lru {
            map: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry, marked as just used.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let tick = self.next_tick();
        self.map.get_mut(key).map(|(v, t)| {
            *t = tick;
            v
        })
    }

    /// The entry, without marking it used.
    pub(crate) fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    /// Inserts `value`, evicting the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key)
            && self.map.len() >= self.capacity
            && let Some(oldest) = self.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        let tick = self.next_tick();
        self.map.insert(key, (value, tick));
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(v, _)| v)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A token bucket: `burst` tokens, one more every `refill` (client-go's spam filter uses
/// burst 25 and one token per 300 s). Tokens are counted in nanoseconds of refill time, so
/// the arithmetic is exact.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    credit: u128,
    last: Instant,
}

/// Limits events per object with one [`Bucket`] each, remembering at most `capacity` objects.
#[derive(Debug)]
pub(crate) struct SpamFilter<K> {
    buckets: Lru<K, Bucket>,
    burst: u32,
    refill: Duration,
}

impl<K: Hash + Eq + Clone> SpamFilter<K> {
    pub(crate) fn new(burst: u32, refill: Duration, capacity: usize) -> Self {
        SpamFilter {
            buckets: Lru::new(capacity),
            burst,
            refill,
        }
    }

    /// Takes a token for `key` at `now`; `false` means the event is spam and must be dropped.
    pub(crate) fn allow(&mut self, key: &K, now: Instant) -> bool {
        let cost = self.refill.as_nanos().max(1);
        let full = cost * u128::from(self.burst);
        if self.buckets.get_mut(key).is_none() {
            self.buckets.insert(
                key.clone(),
                Bucket {
                    credit: full,
                    last: now,
                },
            );
        }
        let Some(bucket) = self.buckets.peek_mut(key) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_nanos();
        bucket.credit = bucket.credit.saturating_add(elapsed).min(full);
        bucket.last = now;
        if bucket.credit >= cost {
            bucket.credit -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_least_recently_used_entry() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get_mut(&"a"), Some(&mut 1)); // a is now fresher than b
        lru.insert("c", 3);
        assert_eq!(lru.len(), 2);
        assert!(lru.get_mut(&"b").is_none());
        assert!(lru.get_mut(&"a").is_some() && lru.get_mut(&"c").is_some());
        assert_eq!(lru.remove(&"a"), Some(1));
    }

    #[test]
    fn spam_filter_allows_a_burst_then_one_event_per_refill_period() {
        let mut f = SpamFilter::new(25, Duration::from_secs(300), 16);
        let t0 = Instant::now();
        assert!((0..25).all(|_| f.allow(&"pod-a", t0)));
        assert!(!f.allow(&"pod-a", t0));
        // Other objects have their own bucket.
        assert!(f.allow(&"pod-b", t0));
        // 299 s later still nothing; at 300 s exactly one token.
        assert!(!f.allow(&"pod-a", t0 + Duration::from_secs(299)));
        assert!(f.allow(&"pod-a", t0 + Duration::from_secs(300)));
        assert!(!f.allow(&"pod-a", t0 + Duration::from_secs(301)));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(300 * 100);
        assert!((0..25).all(|_| f.allow(&"pod-a", later)));
        assert!(!f.allow(&"pod-a", later));
    }
}
