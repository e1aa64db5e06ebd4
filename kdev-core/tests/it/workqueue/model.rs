//! A proptest model of the workqueue contract: random interleavings of add, add_after,
//! get, done, forget, time passing and shutdown across several workers, checked step by
//! step against a model of client-go's queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::FutureExt;
use kdev_core::workqueue::WorkQueue;
use proptest::prelude::*;

const WORKERS: usize = 3;
const KEYS: u8 = 5;

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    AddAfter(u8, u64),
    Get(usize),
    Done(usize),
    Forget(u8),
    Advance(u64),
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS).prop_map(Op::Add),
        2 => (0..KEYS, 0..50u64).prop_map(|(k, ms)| Op::AddAfter(k, ms)),
        5 => (0..WORKERS).prop_map(Op::Get),
        4 => (0..WORKERS).prop_map(Op::Done),
        1 => (0..KEYS).prop_map(Op::Forget),
        2 => (1..40u64).prop_map(Op::Advance),
        1 => Just(Op::Shutdown),
    ]
}

/// client-go's queue, written as plainly as possible.
#[derive(Default, Debug)]
struct Model {
    queue: VecDeque<u8>,
    dirty: HashSet<u8>,
    processing: HashSet<u8>,
    /// key -> (ready at, order of the change that set it)
    waiting: HashMap<u8, (u64, u64)>,
    now: u64,
    seq: u64,
    shutting_down: bool,
}

impl Model {
    fn add(&mut self, key: u8) {
        if self.shutting_down || !self.dirty.insert(key) {
            return;
        }
        if !self.processing.contains(&key) {
            self.queue.push_back(key);
        }
    }

    fn add_after(&mut self, key: u8, ms: u64) {
        if self.shutting_down {
            return;
        }
        if ms == 0 {
            return self.add(key);
        }
        let at = self.now + ms;
        self.seq += 1;
        let seq = self.seq;
        let entry = self.waiting.entry(key).or_insert((at, seq));
        if at < entry.0 {
            *entry = (at, seq);
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        let mut due: Vec<_> = self
            .waiting
            .iter()
            .filter(|(_, (at, _))| *at <= self.now)
            .map(|(k, v)| (*v, *k))
            .collect();
        due.sort();
        for (_, key) in due {
            self.waiting.remove(&key);
            self.add(key);
        }
    }

    fn get(&mut self) -> Option<u8> {
        let key = self.queue.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key);
        Some(key)
    }

    fn done(&mut self, key: u8) {
        self.processing.remove(&key);
        if self.dirty.contains(&key) {
            self.queue.push_back(key);
        }
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        self.waiting.clear();
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(async move {
        let queue: WorkQueue<u8> = WorkQueue::default();
        let mut model = Model::default();
        let mut held: [Option<u8>; WORKERS] = [None; WORKERS];
        // Every add that the queue accepted, and whether it was handed out afterwards.
        let mut owed: HashSet<u8> = HashSet::new();

        for op in ops {
            match op {
                Op::Add(k) => {
                    queue.add(k);
                    if !model.shutting_down {
                        owed.insert(k);
                    }
                    model.add(k);
                }
                Op::AddAfter(k, ms) => {
                    queue.add_after(k, Duration::from_millis(ms));
                    if !model.shutting_down {
                        owed.insert(k);
                    }
                    model.add_after(k, ms);
                }
                Op::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    // Delayed items join the queue when somebody looks at it.
                    queue.len();
                    model.advance(ms);
                }
                Op::Get(w) => {
                    if held[w].is_some() {
                        continue;
                    }
                    let got = queue.get().now_or_never();
                    let expected = model.get();
                    match (got, expected) {
                        (Some(Some(k)), Some(e)) => {
                            prop_assert_eq!(k, e, "FIFO order");
                            // (b) never handed to two workers at once.
                            prop_assert!(!held.contains(&Some(k)), "{} handed to two workers", k);
                            held[w] = Some(k);
                            owed.remove(&k);
                        }
                        (Some(None), None) => prop_assert!(model.shutting_down, "None before shutdown"),
                        (None, None) => prop_assert!(!model.shutting_down, "get blocked after shutdown"),
                        (got, expected) => {
                            return Err(TestCaseError::fail(format!(
                                "queue gave {got:?}, model {expected:?}, {model:?}"
                            )));
                        }
                    }
                }
                Op::Done(w) => {
                    if let Some(k) = held[w].take() {
                        queue.done(&k);
                        model.done(k);
                    }
                }
                Op::Forget(k) => queue.forget(&k),
                Op::Shutdown => {
                    queue.shutdown();
                    model.shutdown();
                    owed.retain(|k| model.dirty.contains(k));
                }
            }
            // (a) one entry per item, whatever the number of adds.
            prop_assert_eq!(queue.len(), model.queue.len());
            prop_assert_eq!(queue.is_shutting_down(), model.shutting_down);
        }

        // Every item added is eventually processed: finish, let timers fire, drain.
        for slot in &mut held {
            if let Some(k) = slot.take() {
                queue.done(&k);
                model.done(k);
            }
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        model.advance(100);
        queue.shutdown();
        model.shutdown();
        while let Some(Some(k)) = queue.get().now_or_never() {
            prop_assert_eq!(Some(k), model.get());
            owed.remove(&k);
            queue.done(&k);
            model.done(k);
        }
        prop_assert_eq!(queue.get().now_or_never(), Some(None), "drained and shut down");
        prop_assert!(owed.is_empty(), "added but never processed: {:?}", owed);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn queue_follows_client_go_contract_under_random_interleavings(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
