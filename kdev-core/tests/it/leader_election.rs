//! Leader election: client-go's rules with virtual time on the in-memory lock, then the Lease
//! lock on kdev-testenv (or a real cluster) and the Redis lock on a `redis-server` the test
//! starts. Throughout, a tally of the leading work checks that no two candidates ever lead at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kdev_core::leader_election::{
    Config, ConfigError, JITTER_FACTOR, LeaderElector, LeaseLock, Lock, MemoryLock, Outcome,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counts the candidates whose leading work runs, and the most that ever ran at once.
#[derive(Default)]
struct Tally {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Tally {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.most.fetch_max(n, Ordering::AcqRel);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::Acquire)
    }
}

/// A candidate running its campaign; `kill` simulates a crash (nothing is released).
struct Candidate<L: Lock> {
    elector: LeaderElector<L>,
    stop: CancellationToken,
    task: Option<JoinHandle<Outcome>>,
    alive: Arc<AtomicBool>,
    working: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl<L: Lock> Candidate<L> {
    /// Starts campaigning; while leading, its work is counted in `tally`.
    fn start(elector: LeaderElector<L>, tally: &Arc<Tally>) -> Self {
        let stop = CancellationToken::new();
        let working = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (elector, stop, working, tally) = (elector.clone(), stop.clone(), working.clone(), tally.clone());
            async move {
                elector
                    .run(stop, move |leading: CancellationToken| async move {
                        working.store(true, Ordering::Release);
                        tally.enter();
                        leading.cancelled().await;
                        if working.swap(false, Ordering::AcqRel) {
                            tally.leave();
                        }
                    })
                    .await
            }
        });
        Candidate {
            elector,
            stop,
            task: Some(task),
            alive: Arc::new(AtomicBool::new(true)),
            working,
            tally: tally.clone(),
        }
    }

    fn leads(&self) -> bool {
        self.alive.load(Ordering::Acquire) && self.elector.is_leader()
    }

    /// A crash: the campaign is dropped without releasing anything, and its work is gone.
    fn kill(&mut self) {
        self.alive.store(false, Ordering::Release);
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if self.working.swap(false, Ordering::AcqRel) {
            self.tally.leave();
        }
    }

    /// A graceful stop (releases the lock when leading).
    async fn stop(&mut self) -> Outcome {
        self.stop.cancel();
        let outcome = self.task.take().expect("running").await.expect("campaign");
        self.alive.store(false, Ordering::Release);
        outcome
    }
}

fn candidates<L: Lock>(locks: impl IntoIterator<Item = L>, config: &Config) -> (Vec<Candidate<L>>, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let cands = locks
        .into_iter()
        .map(|l| Candidate::start(LeaderElector::new(l, config.clone()).expect("valid"), &tally))
        .collect();
    (cands, tally)
}

/// Waits until exactly one live candidate leads; returns its index.
async fn one_leader<L: Lock>(candidates: &[Candidate<L>], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let leaders: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].leads()).collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(leaders.len() < 2, "two leaders at once: {leaders:?}");
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn fast_config() -> Config {
    Config::default()
        .lease_duration(Duration::from_secs(3))
        .renew_deadline(Duration::from_secs(2))
        .retry_period(Duration::from_millis(500))
}

/// The Lease timings for `env`, with the lease duration in seconds: fast on the embedded
/// server; client-go's defaults (15 s / 10 s / 2 s) on a real cluster, where one Lease update
/// slower than a 2 s renew deadline (a loaded etcd, a token refresh) would make the leader
/// step down in the middle of the test.
fn lease_config(env: &kdev_testenv::TestEnv) -> (Config, i32) {
    if env.is_embedded() {
        (fast_config(), 3)
    } else {
        (Config::default(), 15)
    }
}

/// The worst case from a crash to a successor: a candidate may see the leader's last renewal
/// up to one jittered retry period late, and then waits a whole lease duration.
fn failover_bound(lease: Duration, retry: Duration) -> Duration {
    lease + retry.mul_f64(1.0 + JITTER_FACTOR) + Duration::from_millis(50)
}

#[test]
fn config_is_validated_as_client_go_does() {
    assert_eq!(Config::default().validate(), Ok(()));
    let bad = |c: Config| c.validate().expect_err("invalid");
    assert_eq!(
        bad(Config::default().retry_period(Duration::ZERO)),
        ConfigError::NotPositive
    );
    assert_eq!(
        bad(Config::default().lease_duration(Duration::from_secs(10))),
        ConfigError::LeaseNotLongerThanDeadline
    );
    assert_eq!(
        bad(Config::default().retry_period(Duration::from_millis(8500))),
        ConfigError::DeadlineTooShort
    );
    assert_eq!(
        bad(Config::default()
            .lease_duration(Duration::from_millis(900))
            .renew_deadline(Duration::from_millis(500))
            .retry_period(Duration::from_millis(100))),
        ConfigError::LeaseUnderOneSecond
    );
    let err = LeaderElector::new(MemoryLock::new("x", ""), Config::default()).expect_err("empty identity");
    assert_eq!(err, ConfigError::EmptyIdentity);
}

#[tokio::test(start_paused = true)]
async fn three_candidates_one_leader_and_failover_after_a_crash() {
    let config = Config::default();
    let lock = MemoryLock::new("election", "a");
    let (mut cands, tally) = candidates(["a", "b", "c"].map(|id| lock.candidate(id)), &config);
    let first = one_leader(&cands, Duration::from_secs(5)).await;
    // Steady state for a minute: still exactly the same leader.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(one_leader(&cands, Duration::ZERO).await, first);
    let record = lock.record().expect("record");
    assert_eq!(record.holder_identity, ["a", "b", "c"][first]);
    assert_eq!(record.leader_transitions, 0);
    assert_eq!(record.lease_duration_seconds, 15);

    // Crash the leader: a successor within the lease duration plus one jittered retry.
    let killed_at = Instant::now();
    cands[first].kill();
    let second = one_leader(&cands, Duration::from_secs(60)).await;
    let took = killed_at.elapsed();
    assert_ne!(second, first);
    let bound = failover_bound(Duration::from_secs(15), Duration::from_secs(2));
    assert!(took <= bound, "failover took {took:?}, more than {bound:?}");
    let record = lock.record().expect("record");
    assert_eq!(record.holder_identity, ["a", "b", "c"][second]);
    assert_eq!(record.leader_transitions, 1, "a takeover counts one transition");

    assert_eq!(tally.most(), 1, "never two leaders at once");
    for c in &mut cands {
        if c.task.is_some() {
            assert_eq!(c.stop().await, Outcome::Stopped);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn release_on_stop_hands_over_within_a_retry_period() {
    let config = Config::default();
    let lock = MemoryLock::new("election", "a");
    let (mut cands, tally) = candidates(["a", "b"].map(|id| lock.candidate(id)), &config);
    let first = one_leader(&cands, Duration::from_secs(5)).await;
    let acquired = lock.record().expect("record").acquire_time;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        lock.record().expect("record").acquire_time,
        acquired,
        "renewals keep acquireTime"
    );

    let stopped_at = Instant::now();
    assert_eq!(cands[first].stop().await, Outcome::Stopped);
    let released = lock.record().expect("record");
    assert_eq!(released.holder_identity, "", "released: no holder");
    assert_eq!(released.lease_duration_seconds, 1);
    let second = one_leader(&cands, Duration::from_secs(10)).await;
    let took = stopped_at.elapsed();
    let bound = Duration::from_secs(2).mul_f64(1.0 + JITTER_FACTOR) + Duration::from_millis(50);
    assert!(took <= bound, "hand-over took {took:?}, more than {bound:?}");
    assert_ne!(second, first);
    assert_eq!(lock.record().expect("record").leader_transitions, 1);
    assert_eq!(tally.most(), 1);
    assert_eq!(cands[second].stop().await, Outcome::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_steps_down_before_anyone_takes_over() {
    let config = Config::default();
    let lock = MemoryLock::new("election", "a");
    let locks: Vec<_> = ["a", "b", "c"].iter().map(|id| lock.candidate(id)).collect();
    let (mut cands, tally) = candidates(locks.clone(), &config);
    let first = one_leader(&cands, Duration::from_secs(5)).await;

    // The leader loses its connection to the lock: it must stop leading within a retry
    // period plus the renew deadline, and before any other candidate's lease runs out.
    let cut_at = Instant::now();
    locks[first].set_failing(true);
    let outcome = cands[first].task.take().expect("running").await.expect("campaign");
    assert_eq!(outcome, Outcome::Lost);
    let took = cut_at.elapsed();
    assert!(
        took <= Duration::from_secs(12) + Duration::from_millis(50),
        "stepped down after {took:?}"
    );
    assert!(!cands[first].elector.is_leader());
    cands[first].alive.store(false, Ordering::Release);
    let second = one_leader(&cands, Duration::from_secs(30)).await;
    assert_ne!(second, first);
    assert_eq!(tally.most(), 1, "never two leaders at once");
    assert_eq!(lock.record().expect("record").leader_transitions, 1);
    for c in &mut cands {
        if c.task.is_some() {
            c.stop().await;
        }
    }
}

/// A lock whose reads take a while (a slow API server) and return the record as it is when
/// they come back.
struct SlowReads {
    inner: MemoryLock,
    delay: Arc<parking_lot::Mutex<Duration>>,
}

impl Lock for SlowReads {
    fn identity(&self) -> &str {
        self.inner.identity()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn get(
        &self,
    ) -> Result<Option<kdev_core::leader_election::Versioned>, kdev_core::leader_election::LockError> {
        let delay = *self.delay.lock();
        tokio::time::sleep(delay).await;
        self.inner.get().await
    }
    async fn create(
        &self,
        record: &kdev_core::leader_election::LeaderElectionRecord,
    ) -> Result<kdev_core::leader_election::Versioned, kdev_core::leader_election::LockError> {
        self.inner.create(record).await
    }
    async fn update(
        &self,
        record: &kdev_core::leader_election::LeaderElectionRecord,
        version: &str,
    ) -> Result<kdev_core::leader_election::Versioned, kdev_core::leader_election::LockError> {
        self.inner.update(record, version).await
    }
}

/// A follower whose read was in flight while the leader renewed must date that renewal from
/// when its read came back, not from when it was sent: else it takes over before the leader's
/// own bound (its renewal's send time plus the lease) has passed, and two lead at once.
#[tokio::test(start_paused = true)]
async fn a_renewal_seen_by_a_slow_read_is_dated_from_when_the_read_came_back() {
    use kdev_core::leader_election::LeaderElectionRecord;
    let config = Config::default();
    let lease = Duration::from_secs(15);
    let lock = MemoryLock::new("election", "a");
    let record = || LeaderElectionRecord {
        holder_identity: "a".into(),
        lease_duration_seconds: 15,
        acquire_time: Some(jiff::Timestamp::now()),
        renew_time: Some(jiff::Timestamp::now()),
        leader_transitions: 0,
    };
    let first = lock.create(&record()).await.expect("a holds the lock");
    let delay = Arc::new(parking_lot::Mutex::new(Duration::from_secs(3)));
    let follower = SlowReads {
        inner: lock.candidate("b"),
        delay: delay.clone(),
    };
    let elector = LeaderElector::new(follower, config).expect("valid");
    let led_at = Arc::new(parking_lot::Mutex::new(None));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (elector, stop, led_at) = (elector.clone(), stop.clone(), led_at.clone());
        async move {
            elector
                .run(stop, move |leading: CancellationToken| async move {
                    *led_at.lock() = Some(Instant::now());
                    leading.cancelled().await;
                })
                .await
        }
    });
    // b's first read is sent now and comes back in 3 s; a renews just before it does, for
    // the last time: a leads, in its own eyes, until 15 s after it sent that renewal.
    tokio::time::sleep(Duration::from_millis(2900)).await;
    let renewed_at = Instant::now();
    lock.update(&record(), &first.version).await.expect("a renews");
    tokio::time::sleep(Duration::from_millis(200)).await;
    *delay.lock() = Duration::ZERO;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let led_at = led_at.lock().expect("b took over the abandoned lock");
    assert!(
        led_at >= renewed_at + lease,
        "b led {:?} after a's last renewal, before a's lease of {lease:?} had passed in a's eyes",
        led_at - renewed_at
    );
    stop.cancel();
    let _ = task.await;
}

/// A leader told to stop keeps renewing its lease while its work winds down, however long
/// that takes: nobody else may lead while the work still runs.
#[tokio::test(start_paused = true)]
async fn a_leader_keeps_its_lease_while_its_work_winds_down() {
    let lock = MemoryLock::new("election", "a");
    let a = LeaderElector::new(lock.clone(), Config::default()).expect("valid");
    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let slow = tokio::spawn({
        let (a, stop, tally) = (a.clone(), stop.clone(), tally.clone());
        async move {
            a.run(stop, move |leading: CancellationToken| async move {
                tally.enter();
                leading.cancelled().await;
                // Forty seconds to wind down: longer than the 15 s lease.
                tokio::time::sleep(Duration::from_secs(40)).await;
                tally.leave();
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.is_leader());
    let mut b = Candidate::start(
        LeaderElector::new(lock.candidate("b"), Config::default()).expect("valid"),
        &tally,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(a.is_leader(), "still leading while its work winds down");
    assert!(!b.elector.is_leader());
    assert_eq!(slow.await.expect("campaign"), Outcome::Stopped);
    assert!(!a.is_leader());
    let _ = one_leader(std::slice::from_ref(&b), Duration::from_secs(10)).await;
    assert_eq!(tally.most(), 1, "never two leaders' work at once");
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn new_leader_notifications_follow_the_holder() {
    let lock = MemoryLock::new("election", "a");
    let a = LeaderElector::new(lock.clone(), Config::default()).expect("valid");
    let b = LeaderElector::new(lock.candidate("b"), Config::default()).expect("valid");
    let mut seen_by_b = b.leader();
    let tally = Arc::new(Tally::default());
    let mut ca = Candidate::start(a, &tally);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut cb = Candidate::start(b.clone(), &tally);
    seen_by_b.changed().await.expect("first leader");
    assert_eq!(
        seen_by_b.borrow_and_update().as_deref(),
        Some("a"),
        "the first holder seen"
    );
    ca.stop().await;
    // b sees the release (no holder, unless it takes over in the same step: a watch keeps
    // only the latest value) and then itself; never anyone else.
    let mut history = Vec::new();
    while history.last().map(|h: &Option<String>| h.as_deref()) != Some(Some("b")) {
        seen_by_b.changed().await.expect("changes");
        history.push(seen_by_b.borrow_and_update().clone());
    }
    assert!(
        history == [Some("b".to_string())] || history == [None, Some("b".to_string())],
        "{history:?}"
    );
    assert!(b.is_leader());
    cb.stop().await;
}

#[tokio::test(start_paused = true)]
async fn run_twice_at_once_is_refused_and_a_health_check_reports_a_stuck_leader() {
    let lock = MemoryLock::new("election", "a");
    let elector = LeaderElector::new(lock.clone(), Config::default()).expect("valid");
    let mut c = Candidate::start(elector.clone(), &Arc::new(Tally::default()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(elector.is_leader());
    assert_eq!(
        elector.run(CancellationToken::new(), |_| async {}).await,
        Outcome::AlreadyRunning
    );
    assert_eq!(elector.check(Duration::from_secs(20)), Ok(()));
    c.stop().await;
}

// ---- the Lease lock, on kdev-testenv or a real cluster ----

async fn lease_setup() -> (kdev_testenv::TestEnv, kube_client::Client, String) {
    let env = kdev_testenv::TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let client = env.client();
    (env, client, ns)
}

#[tokio::test]
async fn lease_lock_three_candidates_failover_and_the_lease_fields() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (env, client, ns) = lease_setup().await;
    let (config, lease_seconds) = lease_config(&env);
    let locks = ["a", "b", "c"].map(|id| LeaseLock::new(client.clone(), &ns, "failover", id));
    let (mut cands, tally) = candidates(locks, &config);
    let first = one_leader(&cands, Duration::from_secs(10)).await;

    let leases: kube_client::Api<Lease> = kube_client::Api::namespaced(client.clone(), &ns);
    let spec = leases.get("failover").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(["a", "b", "c"][first]));
    assert_eq!(spec.lease_duration_seconds, Some(lease_seconds));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());

    cands[first].kill();
    let killed_at = Instant::now();
    let second = one_leader(&cands, Duration::from_secs(30)).await;
    let took = killed_at.elapsed();
    eprintln!("lease failover after a crash took {took:?}");
    assert_ne!(second, first);
    let spec = leases.get("failover").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(["a", "b", "c"][second]));
    assert_eq!(spec.lease_transitions, Some(1));

    // A graceful stop releases the Lease.
    assert_eq!(cands[second].stop().await, Outcome::Stopped);
    let third = one_leader(&cands, Duration::from_secs(10)).await;
    assert!(third != first && third != second);
    assert_eq!(tally.most(), 1, "never two leaders at once");
    assert_eq!(cands[third].stop().await, Outcome::Stopped);
    let spec = leases.get("failover").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(""), "released");
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(2), "transitions kept on release");
}

/// Fault injection (embedded server only): every Lease update fails, so the leader cannot
/// renew and must step down within the renew deadline, and nobody else may lead meanwhile.
#[tokio::test]
async fn lease_renewals_failing_make_the_leader_step_down() {
    let (env, client, ns) = lease_setup().await;
    let faults = env.faults();
    if !faults.supported() {
        eprintln!("skipped: fault injection needs the embedded API server");
        return;
    }
    let config = fast_config();
    let locks = ["a", "b", "c"].map(|id| LeaseLock::new(client.clone(), &ns, "faults", id));
    let (mut cands, tally) = candidates(locks, &config);
    let first = one_leader(&cands, Duration::from_secs(10)).await;
    faults
        .fail(
            kdev_testenv::Failure::new(500)
                .verb("update")
                .resource("leases")
                .times(100_000),
        )
        .expect("plan");
    let cut_at = Instant::now();
    let outcome = cands[first].task.take().expect("running").await.expect("campaign");
    assert_eq!(outcome, Outcome::Lost);
    eprintln!(
        "the leader stepped down {:?} after renewals started failing",
        cut_at.elapsed()
    );
    cands[first].alive.store(false, Ordering::Release);
    // Nobody can write the Lease: nobody leads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        cands.iter().all(|c| !c.leads()),
        "nobody leads while the Lease cannot be written"
    );
    faults.clear().expect("clear");
    let second = one_leader(&cands, Duration::from_secs(15)).await;
    assert_ne!(second, first);
    assert_eq!(tally.most(), 1, "never two leaders at once");
    for c in &mut cands {
        if c.task.is_some() {
            c.stop().await;
        }
    }
}

// ---- the Redis lock, on a redis-server this test starts ----

#[cfg(feature = "leader-election-redis")]
mod redis {
    use super::*;
    use kdev_core::leader_election::{LeaderElectionRecord, LockError, RedisLock};

    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts `redis-server` on a free port, or says why not.
    async fn redis_server() -> Option<(Server, String)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => Server(c),
            Err(e) => {
                eprintln!(
                    "skipped: cannot start redis-server ({e}); `apt-get install -y redis-server` enables this test"
                );
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                eprintln!("skipped: redis-server did not start listening");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some((child, format!("redis://127.0.0.1:{port}/")))
    }

    #[tokio::test]
    async fn redis_lock_three_candidates_failover_and_release() {
        let Some((_server, url)) = redis_server().await else {
            return;
        };
        let config = fast_config();
        let mut locks = Vec::new();
        for id in ["a", "b", "c"] {
            locks.push(RedisLock::connect(&url, "kdev-election", id).await.expect("connect"));
        }
        let (mut cands, tally) = candidates(locks, &config);
        let first = one_leader(&cands, Duration::from_secs(10)).await;
        cands[first].kill();
        let killed_at = Instant::now();
        let second = one_leader(&cands, Duration::from_secs(30)).await;
        eprintln!("redis failover after a crash took {:?}", killed_at.elapsed());
        assert_ne!(second, first);
        let observer = RedisLock::connect(&url, "kdev-election", "observer")
            .await
            .expect("connect");
        let current = observer.get().await.expect("get").expect("held");
        assert_eq!(current.record.holder_identity, ["a", "b", "c"][second]);
        assert_eq!(current.record.leader_transitions, 1);

        assert_eq!(cands[second].stop().await, Outcome::Stopped);
        let third = one_leader(&cands, Duration::from_secs(10)).await;
        assert!(third != first && third != second);
        assert_eq!(tally.most(), 1, "never two leaders at once");
        assert_eq!(cands[third].stop().await, Outcome::Stopped);
        assert!(
            observer.get().await.expect("get").is_none(),
            "a release deletes the key"
        );
    }

    #[tokio::test]
    async fn redis_only_the_holder_renews_or_releases() {
        let Some((_server, url)) = redis_server().await else {
            return;
        };
        let holder = RedisLock::connect(&url, "kdev-cas", "holder").await.expect("connect");
        let other = RedisLock::connect(&url, "kdev-cas", "other").await.expect("connect");
        let record = |who: &str| LeaderElectionRecord {
            holder_identity: who.to_string(),
            lease_duration_seconds: 10,
            acquire_time: Some(jiff::Timestamp::now()),
            renew_time: Some(jiff::Timestamp::now()),
            leader_transitions: 0,
        };
        let held = holder.create(&record("holder")).await.expect("create");
        assert!(
            matches!(other.create(&record("other")).await, Err(LockError::Conflict)),
            "SET NX"
        );
        // The holder renews; afterwards the old version no longer matches anything.
        let renewed = holder.update(&record("holder"), &held.version).await.expect("renew");
        assert!(matches!(
            other.update(&record("other"), &held.version).await,
            Err(LockError::Conflict)
        ));
        assert!(matches!(
            other.release(&record(""), &held.version).await,
            Err(LockError::Conflict)
        ));
        assert_eq!(
            other.get().await.expect("get").expect("held").record.holder_identity,
            "holder"
        );
        holder.release(&record(""), &renewed.version).await.expect("release");
        assert!(holder.get().await.expect("get").is_none());
        assert!(other.create(&record("other")).await.is_ok(), "free again");
    }
}

/// A candidate's labels go on the Lease also when someone else created it (client-go's
/// `LeaseLock` sets them on every update), and labels it does not set stay.
#[tokio::test]
async fn lease_lock_labels_are_set_on_a_lease_someone_else_created() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kdev_core::leader_election::LeaderElectionRecord;
    let (_env, client, ns) = lease_setup().await;
    let record = |holder: &str| LeaderElectionRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(jiff::Timestamp::now()),
        renew_time: Some(jiff::Timestamp::now()),
        leader_transitions: 0,
    };
    let plain = LeaseLock::new(client.clone(), &ns, "labelled", "a");
    plain.create(&record("a")).await.expect("create");
    let leases: kube_client::Api<Lease> = kube_client::Api::namespaced(client.clone(), &ns);
    let mut lease = leases.get("labelled").await.expect("the lease");
    lease.metadata.labels = Some([("team".to_string(), "infra".to_string())].into());
    leases
        .replace("labelled", &Default::default(), &lease)
        .await
        .expect("label it");
    let labelled = LeaseLock::new(client, &ns, "labelled", "b")
        .with_labels([("app.kubernetes.io/name".to_string(), "kdev".to_string())].into());
    let current = labelled.get().await.expect("read").expect("there");
    labelled.update(&record("b"), &current.version).await.expect("update");
    let labels = leases
        .get("labelled")
        .await
        .expect("the lease")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some("kdev"));
    assert_eq!(
        labels.get("team").map(String::as_str),
        Some("infra"),
        "others' labels stay"
    );
}

/// Dropping `run`'s future while leading is a crash of the campaign: the leading work must not
/// go on (another candidate takes the lease once it expires), the candidate no longer says it
/// leads, and `run` may be called again.
#[tokio::test(start_paused = true)]
async fn a_dropped_run_future_aborts_the_leading_work() {
    struct Alive(Arc<AtomicBool>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let lock = MemoryLock::new("election", "a");
    let elector = LeaderElector::new(lock.candidate("a"), fast_config()).expect("valid");
    let alive = Arc::new(AtomicBool::new(false));
    let campaign = tokio::spawn({
        let (elector, alive) = (elector.clone(), alive.clone());
        async move {
            elector
                .run(
                    CancellationToken::new(),
                    move |_leading: CancellationToken| async move {
                        alive.store(true, Ordering::Release);
                        let _alive = Alive(alive);
                        // Work that ignores its token: only an abort ends it.
                        std::future::pending::<()>().await;
                    },
                )
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(elector.is_leader() && alive.load(Ordering::Acquire)) {
        assert!(Instant::now() < deadline, "never led");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    campaign.abort();
    assert!(campaign.await.is_err_and(|e| e.is_cancelled()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!alive.load(Ordering::Acquire), "the leading work was aborted");
    assert!(!elector.is_leader());
    let stop = CancellationToken::new();
    stop.cancel();
    assert_eq!(
        elector.run(stop, |_: CancellationToken| async {}).await,
        Outcome::Stopped,
        "not AlreadyRunning"
    );
}
