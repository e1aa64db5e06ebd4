//! The ready items and the processing set: a deduplicating FIFO per priority.
//!
//! Items are stored once, in arrival order, in one slot deque per priority ("lane"); a hash
//! index of small `(hash, lane, slot)` records finds an item for deduplication. Taking an
//! item reads its lane front to back, so a deep queue (an initial list of 100,000 keys) is
//! walked sequentially instead of by random hash-table probes. Hashes are computed once per
//! call and kept, so growing a table never hashes an item again.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use super::metrics::QueueMetrics;

/// Stale index records tolerated before a purge.
const PURGE_MIN: usize = 64;

/// An item in a lane; `None` once the item moved to a higher lane. Nothing else is kept
/// per slot, to keep a deep queue small.
type Slot<T> = Option<T>;

struct Lane<T> {
    priority: i32,
    /// The id of `slots[0]`; ids grow by one per pushed slot.
    base: u64,
    slots: VecDeque<Slot<T>>,
    /// When each slot was queued, in step with `slots`; only when metrics are on.
    queued_at: VecDeque<Instant>,
    live: usize,
    depth: Option<Gauge>,
}

/// Where a queued item is: 12 bytes, so that the index of a deep queue stays cache-sized.
/// `hash` is the upper half of the item's hash, `id` the low 32 bits of its slot id.
struct Loc {
    hash: u32,
    priority: i32,
    id: u32,
}

/// The index's table hash, a function of a [`Loc`]'s 32 stored bits so that growing the
/// table needs no access to the item.
fn table_hash(hash32: u32) -> u64 {
    u64::from(hash32).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn hash32(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// An item being processed. `again` is set by the adds made meanwhile (guarantee (c)).
struct Processing<T> {
    hash: u64,
    item: T,
    started: Option<Instant>,
    again: Option<Again>,
}

/// The adds of an item made while it was being processed.
struct Again {
    /// The highest priority they asked for: the item is queued there by `done`.
    priority: i32,
    /// With metrics on, when the first of them was made: the queue duration starts there, as
    /// in client-go.
    added_at: Option<Instant>,
    /// With metrics on, the depth gauge the first of them raised. client-go counts an item
    /// added while processing in the depth at once (it is "dirty"), though `Get` cannot hand
    /// it out until `Done`; `done` moves the count to the lane the item is queued in.
    counted: Option<Gauge>,
}

/// What an `add` did, so the caller knows whom to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new item became ready.
    Ready,
    /// The item was already queued or is being processed.
    Nothing,
}

/// What `done` did.
pub(crate) enum Done<T> {
    /// The item was not being processed.
    NotProcessing,
    /// The item was added meanwhile and is ready again.
    Requeued,
    /// The item is finished; this is the queue's copy of it.
    Released(T),
}

pub(crate) struct Ready<T> {
    hasher: foldhash::fast::RandomState,
    /// Sorted by priority, highest first; usually a single lane of priority 0.
    lanes: Vec<Lane<T>>,
    /// Records of queued items, plus records of items taken since the last purge: `take`
    /// does not touch the index (that would cost a random memory access per item); a
    /// record whose slot id is below its lane's `base` is stale and matches nothing.
    index: HashTable<Loc>,
    stale: usize,
    processing: HashTable<Processing<T>>,
    len: usize,
}

fn lane_of<T>(lanes: &[Lane<T>], priority: i32) -> Option<&Lane<T>> {
    lanes.iter().find(|l| l.priority == priority)
}

impl<T> Lane<T> {
    /// The position of the slot whose id ends in `id32`, if it is still in the lane.
    /// Ids of taken slots fall outside. (With 2^32 slots or more in one lane a stale id
    /// could alias a queued slot; callers compare the item itself, so that stays correct.)
    fn position(&self, id32: u32) -> Option<usize> {
        let offset = id32.wrapping_sub(self.base as u32) as usize;
        (offset < self.slots.len()).then_some(offset)
    }
}

fn slot_of<'a, T>(lanes: &'a [Lane<T>], loc: &Loc) -> Option<&'a Slot<T>> {
    let lane = lane_of(lanes, loc.priority)?;
    lane.slots.get(lane.position(loc.id)?)
}

/// Appends a slot to the lane of `priority`, creating the lane if needed; returns its id.
fn push<T>(
    lanes: &mut Vec<Lane<T>>,
    metrics: Option<&QueueMetrics>,
    priority: i32,
    slot: Slot<T>,
    queued_at: Option<Instant>,
) -> u64 {
    let at = match lanes.iter().position(|l| l.priority <= priority) {
        Some(i) if lanes[i].priority == priority => i,
        found => {
            let at = found.unwrap_or(lanes.len());
            let lane = Lane {
                priority,
                base: 0,
                slots: VecDeque::new(),
                queued_at: VecDeque::new(),
                live: 0,
                depth: metrics.map(|m| m.depth(priority)),
            };
            lanes.insert(at, lane);
            at
        }
    };
    let lane = &mut lanes[at];
    lane.slots.push_back(slot);
    if let Some(queued_at) = queued_at {
        lane.queued_at.push_back(queued_at);
    }
    lane.live += 1;
    if let Some(depth) = &lane.depth {
        depth.inc();
    }
    lane.base + lane.slots.len() as u64 - 1
}

impl<T: Hash + Eq + Clone> Ready<T> {
    pub(crate) fn new(hasher: foldhash::fast::RandomState) -> Self {
        Self {
            hasher,
            lanes: Vec::new(),
            index: HashTable::new(),
            stale: 0,
            processing: HashTable::new(),
            len: 0,
        }
    }

    /// Items ready to be handed out.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn processing_len(&self) -> usize {
        self.processing.len()
    }

    /// Queues an item not queued yet.
    fn enqueue(
        &mut self,
        hash: u64,
        item: T,
        priority: i32,
        queued_at: Option<Instant>,
        metrics: Option<&QueueMetrics>,
    ) {
        let id = push(&mut self.lanes, metrics, priority, Some(item), queued_at) as u32;
        let hash = hash32(hash);
        self.index
            .insert_unique(table_hash(hash), Loc { hash, priority, id }, |loc| table_hash(loc.hash));
        self.len += 1;
    }

    /// client-go's `Add`, with controller-runtime's priorities: an item already queued keeps
    /// its place unless `priority` is higher, which moves it to the higher lane.
    pub(crate) fn add(&mut self, item: T, priority: i32, metrics: Option<&QueueMetrics>) -> Added {
        let hash = self.hasher.hash_one(&item);
        if let Some(processing) = self.processing.find_mut(hash, |p| p.item == item) {
            match &mut processing.again {
                Some(again) => again.priority = again.priority.max(priority),
                None => {
                    // The first add since the item was taken: client-go's `Add` counts it
                    // (the later ones find the item dirty and count nothing).
                    let counted = metrics.map(|m| {
                        m.adds.inc();
                        let depth = m.depth(priority);
                        depth.inc();
                        depth
                    });
                    processing.again = Some(Again {
                        priority,
                        added_at: metrics.map(|_| Instant::now()),
                        counted,
                    });
                }
            }
            return Added::Nothing;
        }
        let lanes = &self.lanes;
        let short = hash32(hash);
        // Comparing the stored hash bits first keeps the probe from reading slots (and the
        // items they point to) for records that merely share the table's 7-bit tag.
        // One probe finds the item or the free bucket it goes to.
        let found = self.index.entry(
            table_hash(short),
            |loc| {
                loc.hash == short
                    && slot_of(lanes, loc)
                        .and_then(Option::as_ref)
                        .is_some_and(|queued| *queued == item)
            },
            |loc| table_hash(loc.hash),
        );
        let entry = match found {
            Entry::Occupied(entry) => entry,
            Entry::Vacant(vacant) => {
                let now = metrics.map(|m| {
                    m.adds.inc();
                    Instant::now()
                });
                let id = push(&mut self.lanes, metrics, priority, Some(item), now) as u32;
                vacant.insert(Loc {
                    hash: short,
                    priority,
                    id,
                });
                self.len += 1;
                return Added::Ready;
            }
        };
        if priority > entry.get().priority {
            // Raise: leave an empty slot behind and queue the item in the higher lane.
            let (loc, _) = entry.remove();
            let queued_at = self.vacate(&loc);
            self.len -= 1;
            self.enqueue(hash, item, priority, queued_at, metrics);
        }
        Added::Nothing
    }

    /// Empties the slot at `loc`, returning when its item was queued.
    fn vacate(&mut self, loc: &Loc) -> Option<Instant> {
        let lane = self.lanes.iter_mut().find(|l| l.priority == loc.priority)?;
        let at = lane.position(loc.id)?;
        *lane.slots.get_mut(at)? = None;
        lane.live -= 1;
        if let Some(depth) = &lane.depth {
            depth.dec();
        }
        lane.queued_at.get(at).copied()
    }

    /// client-go's `Get` without the waiting: the oldest item of the highest priority,
    /// moved to the processing set.
    pub(crate) fn take(&mut self, metrics: Option<&QueueMetrics>) -> Option<T> {
        let item = self.take_front(metrics);
        if self.stale >= PURGE_MIN && self.stale >= 4 * self.len {
            self.purge();
        }
        item
    }

    /// Drops the index records of taken items. Called once they outnumber the live ones
    /// four to one, so the sequential scan costs O(1) per take, amortized, and the index
    /// never holds more than five records per queued item (plus a small constant).
    fn purge(&mut self) {
        if self.len == 0 {
            self.index.clear();
        } else {
            let lanes = &self.lanes;
            self.index
                .retain(|loc| lane_of(lanes, loc.priority).is_some_and(|lane| lane.position(loc.id).is_some()));
        }
        self.stale = 0;
    }

    fn take_front(&mut self, metrics: Option<&QueueMetrics>) -> Option<T> {
        for lane in &mut self.lanes {
            if lane.live == 0 {
                lane.base += lane.slots.len() as u64;
                lane.slots.clear();
                lane.queued_at.clear();
                continue;
            }
            while let Some(slot) = lane.slots.pop_front() {
                lane.base += 1;
                let queued_at = lane.queued_at.pop_front();
                let Some(item) = slot else {
                    continue; // moved to a higher lane
                };
                self.stale += 1;
                lane.live -= 1;
                if let Some(depth) = &lane.depth {
                    depth.dec();
                }
                self.len -= 1;
                let started = match (metrics, queued_at) {
                    (Some(m), Some(queued_at)) => {
                        let now = Instant::now();
                        m.queue_duration.observe((now - queued_at).as_secs_f64());
                        Some(now)
                    }
                    _ => None,
                };
                let hash = self.hasher.hash_one(&item);
                let processing = Processing {
                    hash,
                    item: item.clone(),
                    started,
                    again: None,
                };
                self.processing.insert_unique(hash, processing, |p| p.hash);
                return Some(item);
            }
        }
        None
    }

    /// client-go's `Done`: the item leaves processing and, if it was added meanwhile, is
    /// queued again ([`Done::Requeued`]); otherwise the queue's copy is handed back, for the
    /// caller to drop after releasing the lock.
    pub(crate) fn done(&mut self, item: &T, hash: u64, metrics: Option<&QueueMetrics>) -> Done<T> {
        let Ok(entry) = self.processing.find_entry(hash, |p| p.item == *item) else {
            return Done::NotProcessing;
        };
        let (processing, _) = entry.remove();
        if let (Some(m), Some(started)) = (metrics, processing.started) {
            m.work_duration.observe(started.elapsed().as_secs_f64());
        }
        match processing.again {
            Some(again) => {
                if let Some(depth) = again.counted {
                    depth.dec(); // `enqueue` counts it in its lane
                }
                self.enqueue(hash, processing.item, again.priority, again.added_at, metrics);
                Done::Requeued
            }
            None => Done::Released(processing.item),
        }
    }

    /// Seconds of work in progress summed, and the longest.
    pub(crate) fn unfinished(&self) -> (f64, f64) {
        let now = Instant::now();
        self.processing
            .iter()
            .filter_map(|p| p.started)
            .map(|started| (now - started).as_secs_f64())
            .fold((0.0, 0.0), |(sum, max), secs| (sum + secs, f64::max(max, secs)))
    }
}
