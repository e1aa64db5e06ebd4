//! Lessons 19 and 20 — leader election: three candidates in one process campaign for one
//! lock; one leads, a crash fails over once the lease runs out, a graceful stop hands over at
//! once. First on a `coordination.k8s.io/v1` Lease (what Kubernetes components use), then on
//! a Redis key. client-go's `leaderelection` package, done in Rust.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server; the
//! Redis part runs when `redis-server` is on PATH):
//!
//! ```sh
//! cargo run -p kdev-examples --bin leader_election
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin leader_election   # a real cluster
//! cargo run -p kdev-examples --bin leader_election -- --redis                 # the Redis part only
//! ```
//!
//! It runs in real time (the API server and Redis keep real time): about 10 seconds.
//! The page that goes with it: `docs/leader_election.md`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use kdev::CancellationToken;
use kdev::leader_election::{Config, LeaderElector, LeaseLock, Lock, Outcome, RedisLock};
use kdev::testenv::TestEnv;
use kube_client::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use kube_client::{Api, Client};
use tokio::task::JoinHandle;
use tokio::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

const IDS: [&str; 3] = ["alpha", "beta", "gamma"];
const LEASE: &str = "lesson-controller";
const REDIS_KEY: &str = "kdev-lesson-election";

/// Lease duration, renew deadline and retry period.
#[derive(Clone, Copy)]
struct Timings {
    lease: Duration,
    renew: Duration,
    retry: Duration,
}

/// Short timings so the lesson runs in seconds; production uses 15 s / 10 s / 2 s (the
/// defaults). client-go's rules still hold: lease > renew deadline > 1.2 × retry period.
const SHORT: Timings = Timings {
    lease: Duration::from_secs(3),
    renew: Duration::from_secs(2),
    retry: Duration::from_millis(500),
};

/// On a real cluster one Lease update slower than a 2 s renew deadline (a loaded etcd, a token
/// refresh) would make the leader step down and add a transition to the story: longer ones.
const ON_A_CLUSTER: Timings = Timings {
    lease: Duration::from_secs(10),
    renew: Duration::from_secs(8),
    retry: Duration::from_secs(2),
};

impl Timings {
    fn config(self) -> Config {
        Config::default()
            .lease_duration(self.lease)
            .renew_deadline(self.renew)
            .retry_period(self.retry)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let redis_only = std::env::args().skip(1).any(|a| a == "--redis");
    if !redis_only {
        lease_lesson().await?;
    }
    if redis_only || on_path("redis-server") {
        redis_lesson().await?;
    } else {
        println!("\n== 5. skipped: redis-server is not on PATH (install it, e.g. `apt-get install -y redis-server`)");
    }
    println!("\nlesson complete");
    Ok(())
}

// ---- one candidate: an elector, its campaign task and a watcher of its leader() channel ----

struct Candidate<L: Lock> {
    id: &'static str,
    elector: LeaderElector<L>,
    stop: CancellationToken,
    campaign: Option<JoinHandle<Outcome>>,
    watcher: JoinHandle<()>,
}

impl<L: Lock> Candidate<L> {
    fn start(id: &'static str, lock: L, timings: Timings) -> Result<Self, Error> {
        // `new` validates the timings and the identity, as client-go's NewLeaderElector.
        let elector = LeaderElector::new(lock, timings.config())?;

        // client-go's OnNewLeader: every change of the holder this candidate has observed.
        let mut leader = elector.leader();
        let watcher = tokio::spawn(async move {
            while leader.changed().await.is_ok() {
                match leader.borrow_and_update().clone() {
                    Some(holder) => println!("  [{id}] new leader: {holder}"),
                    None => println!("  [{id}] the lock is free"),
                }
            }
        });

        // client-go's Run: campaign, and while leading run the work (OnStartedLeading). The
        // token handed to the work is cancelled when leading ends, whichever way it ends.
        let stop = CancellationToken::new();
        let campaign = tokio::spawn({
            let (elector, stop) = (elector.clone(), stop.clone());
            async move {
                elector
                    .run(stop, move |leading: CancellationToken| async move {
                        println!("  [{id}] started leading: a controller would start its workers here");
                        leading.cancelled().await;
                    })
                    .await
            }
        });
        Ok(Candidate {
            id,
            elector,
            stop,
            campaign: Some(campaign),
            watcher,
        })
    }

    fn leads(&self) -> bool {
        self.campaign.is_some() && self.elector.is_leader()
    }

    /// A crash: the process vanishes mid-term. Aborting the campaign means no release is ever
    /// written; the lock keeps naming this candidate until its lease runs out. Dropping `run`'s
    /// future also aborts the work it spawned, as the process's death would.
    async fn crash(&mut self) {
        if let Some(task) = self.campaign.take() {
            task.abort();
            let _ = task.await;
        }
        self.watcher.abort();
    }

    /// A graceful stop (SIGTERM): the work ends first, then the lock is released.
    async fn stop(&mut self) -> Result<Outcome, Error> {
        self.stop.cancel();
        let task = self.campaign.take().ok_or("the candidate is not running")?;
        Ok(task.await?)
    }

    /// Waits for the watcher to print what this candidate saw last (it ends once the last
    /// handle on the elector is dropped).
    async fn finish(self) {
        drop(self.elector);
        let _ = self.watcher.await;
    }
}

/// Waits until one live candidate leads, at most 30 s; returns its index.
async fn wait_for_leader<L: Lock>(cands: &[Candidate<L>]) -> Result<usize, Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = cands.iter().position(Candidate::leads) {
            return Ok(i);
        }
        if Instant::now() > deadline {
            return Err("no leader within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- part 1: the Lease lock ----

async fn lease_lesson() -> Result<(), Error> {
    // Keep the embedded server (if any) alive for the whole lesson: dropping it stops it.
    let (client, _embedded) = connect().await?;
    let ns = format!(
        "kdev-lesson-{}",
        (0..5)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect::<String>()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces.create(&PostParams::default(), &namespace).await?;

    let timings = if _embedded.is_some() { SHORT } else { ON_A_CLUSTER };
    let result = lease_election(&client, &ns, timings).await;
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    result
}

/// KUBECONFIG (or in-cluster config) when set, else kdev's embedded API server.
async fn connect() -> Result<(Client, Option<TestEnv>), Error> {
    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        let config = kube_client::Config::infer().await?;
        println!("using the cluster at {} (Config::infer)", config.cluster_url);
        return Ok((Client::try_from(config)?, None));
    }
    let env = TestEnv::embedded(Default::default()).await?;
    println!("no KUBECONFIG: started kdev's embedded API server");
    Ok((env.client(), Some(env)))
}

async fn lease_election(client: &Client, ns: &str, timings: Timings) -> Result<(), Error> {
    println!("\n== 1. three candidates campaign for the Lease {ns}/{LEASE}");
    let Timings { lease, renew, retry } = timings;
    println!(
        "timings: lease {lease:?}, renew deadline {renew:?}, retry period {retry:?} (jittered up to {:?})",
        retry.mul_f64(2.2)
    );
    let mut cands = Vec::new();
    for id in IDS {
        // The identity must be unique per candidate: in a pod, the pod name (plus a UUID).
        cands.push(Candidate::start(
            id,
            LeaseLock::new(client.clone(), ns, LEASE, id),
            timings,
        )?);
    }
    let first = wait_for_leader(&cands).await?;
    println!("leader elected: {}", cands[first].id);

    println!("\n== 2. the Lease, read back with Api<Lease>");
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let before = lease_spec(&leases).await?;
    print_spec(&before);
    // Longer than a retry period, and than the second that renewTime's precision needs.
    let wait = (retry * 2).max(Duration::from_millis(1200));
    tokio::time::sleep(wait).await;
    let after = lease_spec(&leases).await?;
    println!(
        "{:.1} s later: renewTime moved on: {} (renewed every retry period); acquireTime unchanged: {}",
        wait.as_secs_f64(),
        after.renew_time != before.renew_time,
        after.acquire_time == before.acquire_time
    );

    println!("\n== 3. the leader crashes (its task is aborted: nothing is released)");
    let crashed = cands[first].id;
    let crashed_at = Instant::now();
    cands[first].crash().await;
    let second = wait_for_leader(&cands).await?;
    println!(
        "failover after a crash: {} took over from {crashed} after {:.1} s \
         (the lease runs {lease:?} from the last renewal a candidate saw, seen up to a jittered retry late)",
        cands[second].id,
        crashed_at.elapsed().as_secs_f64()
    );
    let spec = lease_spec(&leases).await?;
    println!(
        "holderIdentity: {}, leaseTransitions: {}",
        spec.holder_identity.unwrap_or_default(),
        spec.lease_transitions.unwrap_or_default()
    );

    println!("\n== 4. the new leader stops gracefully (its token is cancelled: it releases)");
    // Watch the Lease from now on, to catch the release write even if a successor follows fast.
    let rv = leases.get(LEASE).await?.metadata.resource_version.unwrap_or_default();
    let mut events = leases.watch(&WatchParams::default().timeout(20), &rv).await?.boxed();
    let stopped = cands[second].id;
    let stopped_at = Instant::now();
    let outcome = cands[second].stop().await?;
    println!("{stopped} stopped: {outcome:?} (its work ended first, then it released the Lease)");
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), events.try_next()).await;
        let lease = match next.map_err(|_| "no release seen within 20 s")?? {
            Some(WatchEvent::Modified(lease)) => lease,
            Some(_) => continue,
            None => return Err("the watch ended before the release".into()),
        };
        let spec = lease.spec.unwrap_or_default();
        if spec.holder_identity.as_deref() == Some("") {
            println!(
                "released: holderIdentity \"\", leaseDurationSeconds {}, leaseTransitions {} (kept)",
                spec.lease_duration_seconds.unwrap_or_default(),
                spec.lease_transitions.unwrap_or_default()
            );
            break;
        }
    }
    let third = wait_for_leader(&cands).await?;
    println!(
        "hand-over after a graceful release: {} leads {:.1} s after {stopped} began stopping (no lease to wait out)",
        cands[third].id,
        stopped_at.elapsed().as_secs_f64()
    );

    cands[third].stop().await?;
    for c in cands {
        c.finish().await;
    }
    let spec = lease_spec(&leases).await?;
    println!(
        "all stopped: holderIdentity {:?}, leaseTransitions {}",
        spec.holder_identity.unwrap_or_default(),
        spec.lease_transitions.unwrap_or_default()
    );
    Ok(())
}

async fn lease_spec(leases: &Api<Lease>) -> Result<LeaseSpec, Error> {
    Ok(leases.get(LEASE).await?.spec.unwrap_or_default())
}

fn print_spec(spec: &LeaseSpec) {
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| {
        t.as_ref().map_or("-".to_string(), |t| t.0.to_string())
    };
    println!(
        "  holderIdentity:       {}",
        spec.holder_identity.as_deref().unwrap_or("")
    );
    println!(
        "  leaseDurationSeconds: {}",
        spec.lease_duration_seconds.unwrap_or_default()
    );
    println!("  acquireTime:          {}", time(&spec.acquire_time));
    println!("  renewTime:            {}", time(&spec.renew_time));
    println!("  leaseTransitions:     {}", spec.lease_transitions.unwrap_or_default());
}

// ---- part 2: the Redis lock ----

/// The `redis-server` this lesson starts; killed when dropped.
struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(bin).is_file()))
}

/// Starts a throwaway `redis-server` on a free port: no snapshots, no append-only file.
async fn start_redis() -> Result<(RedisServer, String), Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}); install it, e.g. `apt-get install -y redis-server`"))?;
    let server = RedisServer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start listening within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((server, format!("redis://127.0.0.1:{port}/")))
}

async fn redis_lesson() -> Result<(), Error> {
    let (server, url) = start_redis().await?;
    println!("\n== 5. the same three candidates on a Redis key (RedisLock)");
    println!("started redis-server at {url}");
    let mut cands = Vec::new();
    for id in IDS {
        cands.push(Candidate::start(
            id,
            RedisLock::connect(&url, REDIS_KEY, id).await?,
            SHORT,
        )?);
    }
    // A fourth connection that only reads the key: `get` returns the record and its raw value.
    let observer = RedisLock::connect(&url, REDIS_KEY, "observer").await?;
    let first = wait_for_leader(&cands).await?;
    println!("leader elected: {}", cands[first].id);
    if let Some(v) = observer.get().await? {
        println!("GET {REDIS_KEY} -> {}", v.version);
    }

    println!("\n== 6. crash the Redis leader");
    let crashed = cands[first].id;
    let crashed_at = Instant::now();
    cands[first].crash().await;
    let second = wait_for_leader(&cands).await?;
    println!(
        "failover after a crash: {} took over from {crashed} after {:.1} s",
        cands[second].id,
        crashed_at.elapsed().as_secs_f64()
    );
    if let Some(v) = observer.get().await? {
        println!(
            "holder {}, leaderTransitions: {}",
            v.record.holder_identity, v.record.leader_transitions
        );
    }

    println!("\n== 7. stop the Redis leader gracefully (a release deletes the key)");
    let stopped = cands[second].id;
    let stopped_at = Instant::now();
    let outcome = cands[second].stop().await?;
    println!("{stopped} stopped: {outcome:?}");
    let third = wait_for_leader(&cands).await?;
    println!(
        "hand-over after a graceful release: {} leads {:.1} s after {stopped} began stopping",
        cands[third].id,
        stopped_at.elapsed().as_secs_f64()
    );
    if let Some(v) = observer.get().await? {
        // The successor found no key and created it anew, so the count starts again.
        println!(
            "GET {REDIS_KEY} -> holder {}, leaderTransitions {} (the key was deleted and created anew)",
            v.record.holder_identity, v.record.leader_transitions
        );
    }

    cands[third].stop().await?;
    for c in cands {
        c.finish().await;
    }
    let gone = observer.get().await?.is_none();
    println!("all stopped: the key is gone: {gone}");
    drop(server);
    println!("stopped redis-server");
    Ok(())
}
