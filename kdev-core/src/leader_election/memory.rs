//! An in-process lock, for tests and lessons.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{LeaderElectionRecord, Lock, LockError, Versioned};

#[derive(Debug, Default)]
struct Shared {
    record: Mutex<Option<Versioned>>,
    writes: AtomicU64,
}

/// A lock held in memory and shared by the candidates of one process: make the first with
/// [`MemoryLock::new`] and the others with [`candidate`](MemoryLock::candidate).
///
/// Each handle can be made to fail ([`set_failing`](MemoryLock::set_failing)), which
/// simulates that candidate losing its connection to the store.
#[derive(Debug, Clone)]
pub struct MemoryLock {
    name: String,
    identity: String,
    shared: Arc<Shared>,
    failing: Arc<AtomicBool>,
}

impl MemoryLock {
    /// A new, empty lock named `name`, for the candidate `identity`.
    pub fn new(name: &str, identity: &str) -> Self {
        MemoryLock {
            name: name.to_string(),
            identity: identity.to_string(),
            shared: Arc::default(),
            failing: Arc::default(),
        }
    }

    /// A handle on the same lock for another candidate.
    pub fn candidate(&self, identity: &str) -> Self {
        MemoryLock {
            name: self.name.clone(),
            identity: identity.to_string(),
            shared: self.shared.clone(),
            failing: Arc::default(),
        }
    }

    /// While `failing`, every operation through this handle fails with a backend error.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }

    /// The record as stored now.
    pub fn record(&self) -> Option<LeaderElectionRecord> {
        self.shared.record.lock().as_ref().map(|v| v.record.clone())
    }

    fn check(&self) -> Result<(), LockError> {
        if self.failing.load(Ordering::Acquire) {
            return Err(LockError::Backend(
                format!("candidate {} cannot reach the lock", self.identity).into(),
            ));
        }
        Ok(())
    }

    fn write(&self, record: &LeaderElectionRecord) -> Versioned {
        let version = self.shared.writes.fetch_add(1, Ordering::AcqRel) + 1;
        Versioned {
            record: record.clone(),
            version: version.to_string(),
        }
    }
}

impl Lock for MemoryLock {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("memory lock {}", self.name)
    }

    async fn get(&self) -> Result<Option<Versioned>, LockError> {
        self.check()?;
        Ok(self.shared.record.lock().clone())
    }

    async fn create(&self, record: &LeaderElectionRecord) -> Result<Versioned, LockError> {
        self.check()?;
        let mut current = self.shared.record.lock();
        if current.is_some() {
            return Err(LockError::Conflict);
        }
        let written = self.write(record);
        *current = Some(written.clone());
        Ok(written)
    }

    async fn update(&self, record: &LeaderElectionRecord, version: &str) -> Result<Versioned, LockError> {
        self.check()?;
        let mut current = self.shared.record.lock();
        match &*current {
            Some(v) if v.version == version => {
                let written = self.write(record);
                *current = Some(written.clone());
                Ok(written)
            }
            _ => Err(LockError::Conflict),
        }
    }
}
