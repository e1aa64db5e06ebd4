//! Leader election: one process of many leads at a time (client-go's
//! `tools/leaderelection`).
//!
//! Run two or more replicas of a controller for availability, and let only one of them act.
//! The candidates share a *lock*, a record that names the current holder, and follow one
//! protocol:
//!
//! 1. **Acquire.** Every [`retry_period`](Config::retry_period) (plus a jitter of up to
//!    1.2× more, so 1× to 2.2×, as client-go's `wait.JitterUntil`) a
//!    candidate reads the record. If nobody holds it, or the holder has not renewed it for
//!    [`lease_duration`](Config::lease_duration), the candidate writes itself in, with an
//!    optimistic-concurrency check, so of two racing candidates exactly one wins.
//! 2. **Lead and renew.** The leader rewrites the record every retry period. If no renewal
//!    succeeds within [`renew_deadline`](Config::renew_deadline), it stops leading at once:
//!    the token given to the leading work is cancelled and [`LeaderElector::run`] returns
//!    [`Outcome::Lost`].
//! 3. **Release.** On a graceful stop the leader keeps renewing its lease while its work winds
//!    down (however long that takes; losing the lease meanwhile ends it as a lost one), then
//!    writes an empty holder with a 1 s lease, so a successor takes over within a retry period
//!    instead of a whole lease duration.
//!
//! # Time: local observations only
//!
//! The record carries `acquireTime` and `renewTime`, but no candidate ever compares them with
//! its own clock. A candidate remembers *when it saw the record change*, on its own monotonic
//! clock, and the lease expires `leaseDurationSeconds` after that observation. Clock offsets
//! between machines therefore do not matter; clocks running at different *rates* do, and the
//! ratio `lease_duration / renew_deadline` is how much rate difference the scheme survives.
//!
//! There is no fencing: a leader that is paused (GC, a frozen VM) past its lease may act once
//! more before it notices. Make the leader's writes idempotent, or guard them yourself.
//! kdev narrows the window on its side: besides client-go's renew deadline, a leader never
//! considers itself leading longer than `lease_duration` after it *sent* its last successful
//! renewal, which is the earliest moment any other candidate could take over.
//!
//! # Locks
//!
//! - [`LeaseLock`]: a `coordination.k8s.io/v1` Lease, what Kubernetes components use.
//! - `RedisLock` (feature `leader-election-redis`): one Redis key, taken with `SET NX PX`
//!   and renewed and released only by its holder, with compare-and-set in Lua scripts. For
//!   processes outside Kubernetes, or many short-lived elections that would churn the API
//!   server.
//! - [`MemoryLock`]: in one process, for tests and lessons.
//! - Your own: implement [`Lock`].
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kdev_core::leader_election::{Config, LeaderElector, LeaseLock, Outcome};
//! use tokio_util::sync::CancellationToken;
//!
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let (client, namespace) = (env.client(), env.namespace().await?);
//! let lock = LeaseLock::new(client, &namespace, "my-controller", "pod-a");
//! let elector = LeaderElector::new(lock, Config::default())?;
//! let stop = CancellationToken::new();
//! let outcome = elector
//!     .run(stop.clone(), move |leading: CancellationToken| async move {
//!         // Lead until `leading` is cancelled; here, stop right away.
//!         stop.cancel();
//!         leading.cancelled().await;
//!     })
//!     .await;
//! assert_eq!(outcome, Outcome::Stopped);
//! # Ok(()) }
//! ```

mod elector;
mod lease;
mod memory;
#[cfg(feature = "leader-election-redis")]
mod redis;

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use elector::{LeaderElector, Metrics, Outcome};
pub use lease::LeaseLock;
pub use memory::MemoryLock;
#[cfg(feature = "leader-election-redis")]
pub use redis::RedisLock;

/// An error a lock backend reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a lock holds (client-go's `LeaderElectionRecord`; a Lease's spec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderElectionRecord {
    /// Who holds the lock; empty when released.
    pub holder_identity: String,
    /// How long, after a candidate observes this record, it stays valid.
    pub lease_duration_seconds: i32,
    /// When the current holder acquired it (the holder's clock; informational).
    pub acquire_time: Option<Timestamp>,
    /// When the holder last renewed it (the holder's clock; informational).
    pub renew_time: Option<Timestamp>,
    /// How many times the holder has changed.
    pub leader_transitions: i32,
}

/// A record and the backend's version token for compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The record.
    pub record: LeaderElectionRecord,
    /// Opaque to the elector: passed back to [`Lock::update`] (a Lease's resourceVersion).
    pub version: String,
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone else wrote the lock first (a 409, or a compare-and-set that did not match).
    #[error("the lock was changed by someone else")]
    Conflict,
    /// The call did not finish in time.
    #[error("the lock operation timed out")]
    Timeout,
    /// The backend failed.
    #[error("the lock backend failed")]
    Backend(#[source] BoxError),
}

/// A shared record with optimistic concurrency: what leader election runs on.
///
/// Implement it to elect over another store. `update` and `release` must be atomic
/// compare-and-set operations on the version token from the last `get`, `create` or `update`.
pub trait Lock: Send + Sync + 'static {
    /// This candidate's identity, unique among the candidates (e.g. the pod name).
    fn identity(&self) -> &str;

    /// The election's name: the `name` label of the metrics.
    fn name(&self) -> &str;

    /// A description for logs, e.g. `lease default/my-controller`.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Reads the record; `None` when it does not exist.
    fn get(&self) -> impl Future<Output = Result<Option<Versioned>, LockError>> + Send;

    /// Creates the record; [`LockError::Conflict`] when it already exists.
    fn create(&self, record: &LeaderElectionRecord) -> impl Future<Output = Result<Versioned, LockError>> + Send;

    /// Replaces the record if it is still at `version`; [`LockError::Conflict`] otherwise.
    fn update(
        &self,
        record: &LeaderElectionRecord,
        version: &str,
    ) -> impl Future<Output = Result<Versioned, LockError>> + Send;

    /// Gives the lock up (`record` has an empty holder and a 1 s lease) if it is still at
    /// `version`. The default writes `record` with [`update`](Self::update).
    fn release(
        &self,
        record: &LeaderElectionRecord,
        version: &str,
    ) -> impl Future<Output = Result<(), LockError>> + Send {
        async move { self.update(record, version).await.map(|_| ()) }
    }
}

/// The timings of an election (client-go's `LeaderElectionConfig`, with controller-runtime's
/// defaults: 15 s lease, 10 s renew deadline, 2 s retry, release on cancel).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Config {
    pub(crate) lease_duration: Duration,
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
    pub(crate) release_on_cancel: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            release_on_cancel: true,
        }
    }
}

/// The jitter of the acquire loop: it retries after `retry_period × (1 + rand × 1.2)`.
pub const JITTER_FACTOR: f64 = 1.2;

impl Config {
    /// How long non-leaders wait, after they last saw the record change, before they may take
    /// it over. Written to the record in whole seconds (at least 1). Default 15 s.
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.lease_duration = d;
        self
    }

    /// How long the leader keeps retrying a renewal before it gives up leading. Default 10 s.
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.renew_deadline = d;
        self
    }

    /// How often candidates try to acquire and the leader renews. Default 2 s.
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.retry_period = d;
        self
    }

    /// Whether a leader that is stopped gracefully releases the lock. Default true.
    pub fn release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }

    /// Checks client-go's rules: all durations positive, lease duration > renew deadline,
    /// renew deadline > 1.2 × retry period.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_duration.is_zero() || self.renew_deadline.is_zero() || self.retry_period.is_zero() {
            return Err(ConfigError::NotPositive);
        }
        if self.lease_duration.as_secs() < 1 {
            return Err(ConfigError::LeaseUnderOneSecond);
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(ConfigError::LeaseNotLongerThanDeadline);
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(ConfigError::DeadlineTooShort);
        }
        Ok(())
    }

    pub(crate) fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1)
    }
}

/// A [`Config`] or lock that client-go would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration is zero.
    #[error("lease duration, renew deadline and retry period must all be positive")]
    NotPositive,
    /// The lease is written in whole seconds.
    #[error("the lease duration must be at least one second")]
    LeaseUnderOneSecond,
    /// `lease_duration <= renew_deadline`.
    #[error("the lease duration must be greater than the renew deadline")]
    LeaseNotLongerThanDeadline,
    /// `renew_deadline <= 1.2 × retry_period`.
    #[error("the renew deadline must be greater than 1.2 × the retry period")]
    DeadlineTooShort,
    /// The lock has an empty identity.
    #[error("the lock's identity must not be empty")]
    EmptyIdentity,
}

/// A default identity for this process: the host name (a pod's name in Kubernetes) and a
/// random UUID, as controller-runtime does, so two processes on one host never share one.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kdev".to_string());
    format!("{host}_{}", crate::controller::new_uuid())
}
