//! The elector: client-go's `LeaderElector` (`tools/leaderelection`) on a [`Lock`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Config, ConfigError, JITTER_FACTOR, LeaderElectionRecord, Lock, LockError, Versioned};

/// How [`LeaderElector::run`] ended. It is client-go's `OnStoppedLeading`: `run` returns
/// whether or not this candidate ever led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The stop token was cancelled (after releasing the lock, if this candidate led and
    /// [`release_on_cancel`](Config::release_on_cancel) is on).
    Stopped,
    /// This candidate led and could not renew in time (or saw another holder): it stopped
    /// leading. Exit, or call `run` again to campaign anew.
    Lost,
    /// `run` was already running on this elector (or a clone of it).
    AlreadyRunning,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

/// The leader-election metrics of component-base and controller-runtime:
/// `leader_election_master_status{name}` (1 while leading) and
/// `leader_election_slowpath_total{name}` (renewals that had to read the lock first).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    master_status: Family<NameLabels, Gauge>,
    slowpath: Family<NameLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics::default();
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            metrics.master_status.clone(),
        );
        registry.register(
            "leader_election_slowpath",
            "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease.",
            metrics.slowpath.clone(),
        );
        metrics
    }

    fn labels(name: &str) -> NameLabels {
        NameLabels { name: name.to_string() }
    }
}

struct State {
    /// The last record seen or written, with its version.
    observed: Option<Versioned>,
    /// When (local monotonic clock) the record last changed in this candidate's eyes.
    observed_time: Instant,
}

impl State {
    fn lease_end(&self) -> Option<Instant> {
        let o = self.observed.as_ref()?;
        let secs = u64::try_from(o.record.lease_duration_seconds).unwrap_or(0);
        Some(self.observed_time + Duration::from_secs(secs))
    }

    fn valid_at(&self, now: Instant) -> bool {
        self.lease_end().is_some_and(|end| end > now)
    }

    fn holder(&self) -> &str {
        self.observed.as_ref().map_or("", |o| o.record.holder_identity.as_str())
    }
}

struct Inner<L> {
    lock: L,
    config: Config,
    state: Mutex<State>,
    leading: AtomicBool,
    running: AtomicBool,
    leader: watch::Sender<Option<String>>,
    metrics: Mutex<Option<Metrics>>,
}

/// Campaigns for a [`Lock`] and runs your work while it leads. Cheap to clone (a handle).
///
/// See the [module docs](super) for the protocol and an example.
pub struct LeaderElector<L: Lock> {
    inner: Arc<Inner<L>>,
}

impl<L: Lock> Clone for LeaderElector<L> {
    fn clone(&self) -> Self {
        LeaderElector {
            inner: self.inner.clone(),
        }
    }
}

impl<L: Lock> fmt::Debug for LeaderElector<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lock", &self.inner.lock.describe())
            .field("identity", &self.inner.lock.identity())
            .field("config", &self.inner.config)
            .field("leading", &self.is_leader())
            .finish()
    }
}

async fn call<T>(deadline: Instant, op: impl Future<Output = Result<T, LockError>>) -> Result<T, LockError> {
    tokio::time::timeout_at(deadline, op)
        .await
        .unwrap_or(Err(LockError::Timeout))
}

fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + fastrand::f64() * JITTER_FACTOR)
}

impl<L: Lock> LeaderElector<L> {
    /// An elector for `lock` with `config`.
    ///
    /// # Errors
    /// [`ConfigError`] when the timings break client-go's rules or the identity is empty.
    pub fn new(lock: L, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        if lock.identity().is_empty() {
            return Err(ConfigError::EmptyIdentity);
        }
        Ok(Self::new_unchecked(lock, config))
    }

    pub(crate) fn new_unchecked(lock: L, config: Config) -> Self {
        LeaderElector {
            inner: Arc::new(Inner {
                lock,
                config,
                state: Mutex::new(State {
                    observed: None,
                    observed_time: Instant::now(),
                }),
                leading: AtomicBool::new(false),
                running: AtomicBool::new(false),
                leader: watch::Sender::new(None),
                metrics: Mutex::new(None),
            }),
        }
    }

    /// Reports into `metrics` (see [`Metrics::register`]).
    pub fn with_metrics(self, metrics: &Metrics) -> Self {
        self.attach_metrics(metrics);
        self
    }

    pub(crate) fn attach_metrics(&self, metrics: &Metrics) {
        let labels = Metrics::labels(self.inner.lock.name());
        metrics
            .master_status
            .get_or_create(&labels)
            .set(i64::from(self.is_leader()));
        *self.inner.metrics.lock() = Some(metrics.clone());
    }

    /// The lock.
    pub fn lock(&self) -> &L {
        &self.inner.lock
    }

    /// The timings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether this candidate leads right now.
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::Acquire)
    }

    /// The holder this candidate last observed (`None`: nobody, or released). A change is
    /// client-go's `OnNewLeader`, including the first holder seen:
    /// `while rx.changed().await.is_ok() { ... }`. Like any `watch`, a slow reader sees only
    /// the latest holder, not every one in between.
    pub fn leader(&self) -> watch::Receiver<Option<String>> {
        self.inner.leader.subscribe()
    }

    /// The health check for a liveness probe (client-go's `HealthzAdaptor`): fails when this
    /// candidate leads but has not renewed for longer than the lease duration plus `tolerance`
    /// (it is stuck, and another process may already lead).
    ///
    /// # Errors
    /// A message saying how long ago the lease was last renewed.
    pub fn check(&self, tolerance: Duration) -> Result<(), String> {
        if !self.is_leader() {
            return Ok(());
        }
        let st = self.inner.state.lock();
        let since = st.observed_time.elapsed();
        if since > self.inner.config.lease_duration + tolerance {
            return Err(format!(
                "leader election: the lease {} was last renewed {since:?} ago, more than the lease duration plus {tolerance:?}",
                self.inner.lock.describe()
            ));
        }
        Ok(())
    }

    /// Campaigns until `stop` is cancelled or leadership is lost.
    ///
    /// Once this candidate leads, `on_started_leading` is called with a token and its future
    /// spawned; the token is cancelled when leading ends. On a graceful stop `run` waits for
    /// that future (so your work has stopped before the lock is released), then releases the
    /// lock; when leadership is lost it returns at once, without waiting.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (an aborted task, the losing branch of a `select!`) ends the
    /// campaign as if the process had died: while leading, the work's token is cancelled and
    /// its task aborted, so that it cannot go on acting once another candidate takes the lease;
    /// the lease is not released (it expires after `lease_duration`), and [`is_leader`](Self::is_leader)
    /// turns false. `run` may then be called again.
    pub async fn run<F, Fut>(&self, stop: CancellationToken, on_started_leading: F) -> Outcome
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return Outcome::AlreadyRunning;
        }
        let _running = crate::informer::OnDrop(|| self.inner.running.store(false, Ordering::Release));
        self.campaign(&stop, on_started_leading).await
    }

    async fn campaign<F, Fut>(&self, stop: &CancellationToken, on_started_leading: F) -> Outcome
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let config = &self.inner.config;
        let describe = self.inner.lock.describe();
        tracing::info!(lock = %describe, identity = self.inner.lock.identity(), "attempting to acquire the leader lease");
        loop {
            if stop.is_cancelled() {
                return Outcome::Stopped;
            }
            if self.try_acquire_or_renew(Instant::now() + config.renew_deadline).await {
                break;
            }
            // Retry after a jittered period, or as soon as the observed lease runs out.
            let mut wake = Instant::now() + jittered(config.retry_period);
            if let Some(end) = self.inner.state.lock().lease_end() {
                let end = end + Duration::from_millis(1);
                if end > Instant::now() && end < wake {
                    wake = end;
                }
            }
            tokio::select! {
                () = stop.cancelled() => return Outcome::Stopped,
                () = tokio::time::sleep_until(wake) => {}
            }
        }

        tracing::info!(lock = %describe, identity = self.inner.lock.identity(), "acquired the leader lease");
        self.set_leading(true);
        let leading = stop.child_token();
        let mut work = tokio::spawn(on_started_leading(leading.clone()));
        // Until `campaign` returns: if its future is dropped, the work must not outlive it.
        let returned = AtomicBool::new(false);
        let task = work.abort_handle();
        let _abandon = crate::informer::OnDrop(|| {
            if !returned.swap(true, Ordering::AcqRel) {
                leading.cancel();
                task.abort();
                self.set_leading(false);
                tracing::warn!(
                    lock = %self.inner.lock.describe(),
                    "the leader election's run future was dropped while leading: the leading work is aborted, the lease left to expire"
                );
            }
        });

        let outcome = loop {
            tokio::select! {
                () = stop.cancelled() => break Outcome::Stopped,
                () = tokio::time::sleep(config.retry_period) => {}
            }
            if let Err(outcome) = self.renew_round(Some(stop)).await {
                break outcome;
            }
        };

        leading.cancel();
        match outcome {
            Outcome::Lost => {
                // The work winds down on its own, told by its token: `run` does not wait.
                returned.store(true, Ordering::Release);
                self.set_leading(false);
                tracing::warn!(lock = %describe, identity = self.inner.lock.identity(), "leader election lost");
            }
            _ => {
                // The lease is kept, renewed, while the work winds down, as controller-runtime
                // keeps it while its runnables drain: stopping the renewals first could let
                // another candidate lead while this one's work still runs.
                let lost = loop {
                    tokio::select! {
                        joined = &mut work => {
                            if let Err(e) = joined
                                && e.is_panic()
                            {
                                tracing::error!(lock = %describe, "the leading work panicked");
                            }
                            break false;
                        }
                        () = tokio::time::sleep(config.retry_period) => {
                            if self.renew_round(None).await.is_err() {
                                break true;
                            }
                        }
                    }
                };
                returned.store(true, Ordering::Release);
                self.set_leading(false);
                if lost {
                    tracing::warn!(
                        lock = %describe,
                        identity = self.inner.lock.identity(),
                        "leader election lost while the leading work was stopping"
                    );
                } else if config.release_on_cancel {
                    self.release().await;
                }
            }
        }
        outcome
    }

    /// One renewal round: retry every period until the renew deadline, and never past the
    /// lease this candidate last wrote. `Err(Lost)` when the lease is lost; `Err(Stopped)`
    /// when `stop` is cancelled between tries.
    async fn renew_round(&self, stop: Option<&CancellationToken>) -> Result<(), Outcome> {
        let config = &self.inner.config;
        let round_end = Instant::now() + config.renew_deadline;
        loop {
            let deadline = self.lease_bound().map_or(round_end, |b| b.min(round_end));
            if Instant::now() >= deadline {
                return Err(Outcome::Lost);
            }
            if self.try_acquire_or_renew(deadline).await {
                return Ok(());
            }
            if self.inner.state.lock().holder() != self.inner.lock.identity() {
                return Err(Outcome::Lost);
            }
            let next = (Instant::now() + config.retry_period).min(deadline);
            match stop {
                Some(stop) => tokio::select! {
                    () = stop.cancelled() => return Err(Outcome::Stopped),
                    () = tokio::time::sleep_until(next) => {}
                },
                None => tokio::time::sleep_until(next).await,
            }
        }
    }

    /// Until when this candidate may still consider itself leading: the lease duration after
    /// the start of its last successful write.
    fn lease_bound(&self) -> Option<Instant> {
        let st = self.inner.state.lock();
        if st.holder() != self.inner.lock.identity() {
            return None;
        }
        st.lease_end()
    }

    fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::Release);
        if let Some(m) = &*self.inner.metrics.lock() {
            m.master_status
                .get_or_create(&Metrics::labels(self.inner.lock.name()))
                .set(i64::from(leading));
        }
    }

    /// Records `current` as observed at `now` if it differs from what was observed before,
    /// and tells `leader()` watchers when the holder changed.
    fn observe(&self, current: Versioned, now: Instant, force_time: bool) {
        let holder = {
            let mut st = self.inner.state.lock();
            if force_time || st.observed.as_ref().is_none_or(|o| o.record != current.record) {
                st.observed_time = now;
            }
            let holder = current.record.holder_identity.clone();
            st.observed = Some(current);
            holder
        };
        let new = (!holder.is_empty()).then_some(holder);
        self.inner.leader.send_if_modified(|cur| {
            if *cur == new {
                false
            } else {
                *cur = new;
                true
            }
        });
    }

    /// client-go's `tryAcquireOrRenew`; true when this candidate holds the lock afterwards.
    async fn try_acquire_or_renew(&self, deadline: Instant) -> bool {
        let inner = &*self.inner;
        let lock = &inner.lock;
        let me = lock.identity();
        let now = Instant::now();
        let wall = Timestamp::now();
        let mut desired = LeaderElectionRecord {
            holder_identity: me.to_string(),
            lease_duration_seconds: inner.config.lease_seconds(),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            leader_transitions: 0,
        };

        // 1. Fast path: leading and the lease still valid in our eyes: update optimistically.
        let fast = {
            let st = inner.state.lock();
            st.observed
                .clone()
                .filter(|o| o.record.holder_identity == me && st.valid_at(now))
        };
        if let Some(observed) = fast {
            desired.acquire_time = observed.record.acquire_time;
            desired.leader_transitions = observed.record.leader_transitions;
            match call(deadline, lock.update(&desired, &observed.version)).await {
                Ok(written) => {
                    self.observe(written, now, true);
                    return true;
                }
                Err(e) => {
                    tracing::debug!(lock = %lock.describe(), error = %e, "fast-path renewal failed; reading the lock")
                }
            }
            if let Some(m) = &*inner.metrics.lock() {
                m.slowpath.get_or_create(&Metrics::labels(lock.name())).inc();
            }
        }

        // 2. Read the lock, creating it when there is none.
        let current = match call(deadline, lock.get()).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                return match call(deadline, lock.create(&desired)).await {
                    Ok(written) => {
                        self.observe(written, now, true);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(lock = %lock.describe(), error = %e, "creating the lock failed");
                        false
                    }
                };
            }
            Err(e) => {
                tracing::warn!(lock = %lock.describe(), error = %e, "reading the lock failed");
                return false;
            }
        };

        // 3. A changed record restarts its lease, measured on our clock from when the answer
        //    came back (client-go's `observedTime`): the record may have been written while the
        //    read was in flight, so dating it from when the read was sent could end another's
        //    lease before it ends in the holder's eyes. Only our own writes are dated from when
        //    they were sent, the cautious end for the holder.
        let read_at = Instant::now();
        self.observe(current.clone(), read_at, false);
        let holder = current.record.holder_identity.as_str();

        // 4. Someone else holds an unexpired lease: not ours to take.
        if !holder.is_empty() && holder != me && inner.state.lock().valid_at(read_at) {
            return false;
        }

        // 5. Renewing keeps the acquire time and the transitions; taking over counts one more.
        if holder == me {
            desired.acquire_time = current.record.acquire_time;
            desired.leader_transitions = current.record.leader_transitions;
        } else {
            desired.leader_transitions = current.record.leader_transitions.saturating_add(1);
        }
        match call(deadline, lock.update(&desired, &current.version)).await {
            Ok(written) => {
                self.observe(written, now, true);
                true
            }
            Err(e) => {
                tracing::debug!(lock = %lock.describe(), error = %e, "updating the lock failed");
                false
            }
        }
    }

    /// Gives the lock up: empty holder, a 1 s lease, the transitions kept. Conflicts are
    /// retried within the renew deadline while this candidate is still the holder.
    async fn release(&self) {
        let inner = &*self.inner;
        let lock = &inner.lock;
        let deadline = Instant::now() + inner.config.renew_deadline;
        loop {
            let observed = {
                let st = inner.state.lock();
                st.observed
                    .clone()
                    .filter(|o| o.record.holder_identity == lock.identity())
            };
            let Some(observed) = observed else { return };
            let wall = Timestamp::now();
            let released = LeaderElectionRecord {
                holder_identity: String::new(),
                lease_duration_seconds: 1,
                acquire_time: Some(wall),
                renew_time: Some(wall),
                leader_transitions: observed.record.leader_transitions,
            };
            match call(deadline, lock.release(&released, &observed.version)).await {
                Ok(()) => {
                    tracing::info!(lock = %lock.describe(), "released the leader lease");
                    self.observe(
                        Versioned {
                            record: released,
                            version: String::new(),
                        },
                        Instant::now(),
                        true,
                    );
                    return;
                }
                Err(LockError::Conflict) => match call(deadline, lock.get()).await {
                    Ok(Some(current)) => self.observe(current, Instant::now(), false),
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(lock = %lock.describe(), error = %e, "releasing the lock failed");
                        return;
                    }
                },
                Err(e) => {
                    tracing::warn!(lock = %lock.describe(), error = %e, "releasing the lock failed");
                    if Instant::now() + inner.config.retry_period >= deadline {
                        return;
                    }
                    tokio::time::sleep(inner.config.retry_period).await;
                }
            }
        }
    }
}

impl<L: Lock> crate::manager::Campaign for LeaderElector<L> {
    fn run(
        &self,
        events: tokio::sync::mpsc::UnboundedSender<bool>,
        stop: CancellationToken,
    ) -> futures::future::BoxFuture<'static, ()> {
        let elector = self.clone();
        Box::pin(async move {
            let started = events.clone();
            elector
                .run(stop, move |_leading| {
                    let _ = started.send(true);
                    async {}
                })
                .await;
            let _ = events.send(false);
        })
    }

    fn check(&self) -> Result<(), String> {
        LeaderElector::check(self, Duration::from_secs(20))
    }

    fn attach_metrics(&self, metrics: &Metrics) {
        LeaderElector::attach_metrics(self, metrics);
    }
}
