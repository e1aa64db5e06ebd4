//! The Redis lock (feature `leader-election-redis`).

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{LeaderElectionRecord, Lock, LockError, Versioned};

/// Replaces the value only if it is still the one the caller read: compare-and-renew.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Deletes the key only if it is still the one the caller read: compare-and-release.
const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A lock on one Redis key.
///
/// The key's value is the [`LeaderElectionRecord`] as JSON, and the value itself is the
/// version: a candidate acquires a free key with `SET key record NX PX lease`, and renews or
/// releases it only if the value is still exactly what it read, atomically, in a Lua script.
/// Since every renewal writes a new `renewTime`, a stale reader can never overwrite a newer
/// record. The key also expires by itself two lease durations after the last write (`PX`), so
/// a holder that died leaves nothing behind; a release deletes it (and with it the transition
/// count, which starts again at 0).
///
/// The election logic is the same as with a Lease ([`LeaderElector`](super::LeaderElector)):
/// expiry is still judged on each candidate's own clock, never on Redis's TTL alone. One Redis
/// server is a single point of failure; with replicas, a failover can lose the last write
/// (Redis replication is asynchronous), so a second leader is possible for one lease duration.
#[derive(Clone)]
pub struct RedisLock {
    connection: ConnectionManager,
    key: String,
    identity: String,
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLock")
            .field("key", &self.key)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> LockError {
    LockError::Backend(Box::new(e))
}

impl RedisLock {
    /// Connects to the Redis server at `url` (`redis://host:port/db`) and locks `key` for the
    /// candidate `identity`. The connection reconnects by itself.
    ///
    /// # Errors
    /// A bad URL or an unreachable server.
    pub async fn connect(url: &str, key: &str, identity: impl Into<String>) -> Result<Self, LockError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let connection = ConnectionManager::new(client).await.map_err(backend)?;
        Ok(Self::new(connection, key, identity))
    }

    /// Locks `key` over an existing connection.
    pub fn new(connection: ConnectionManager, key: &str, identity: impl Into<String>) -> Self {
        RedisLock {
            connection,
            key: key.to_string(),
            identity: identity.into(),
        }
    }

    fn encode(record: &LeaderElectionRecord) -> Result<String, LockError> {
        serde_json::to_string(record).map_err(backend)
    }

    /// Two lease durations: the election decides takeovers by its own rules (so the record,
    /// with its transitions, survives a takeover); the expiry only cleans up.
    fn ttl_ms(record: &LeaderElectionRecord) -> u64 {
        u64::try_from(record.lease_duration_seconds).unwrap_or(1).max(1) * 2000
    }
}

impl Lock for RedisLock {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn name(&self) -> &str {
        &self.key
    }

    fn describe(&self) -> String {
        format!("redis key {}", self.key)
    }

    async fn get(&self) -> Result<Option<Versioned>, LockError> {
        let mut c = self.connection.clone();
        let value: Option<String> = c.get(&self.key).await.map_err(backend)?;
        let Some(value) = value else { return Ok(None) };
        let record = serde_json::from_str(&value)
            .map_err(|e| LockError::Backend(format!("the value of {} is not a lock record: {e}", self.key).into()))?;
        Ok(Some(Versioned { record, version: value }))
    }

    async fn create(&self, record: &LeaderElectionRecord) -> Result<Versioned, LockError> {
        let value = Self::encode(record)?;
        let mut c = self.connection.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(Self::ttl_ms(record))
            .query_async(&mut c)
            .await
            .map_err(backend)?;
        match set {
            Some(_) => Ok(Versioned {
                record: record.clone(),
                version: value,
            }),
            None => Err(LockError::Conflict),
        }
    }

    async fn update(&self, record: &LeaderElectionRecord, version: &str) -> Result<Versioned, LockError> {
        let value = Self::encode(record)?;
        let mut c = self.connection.clone();
        let swapped: i64 = Script::new(COMPARE_AND_SET)
            .key(&self.key)
            .arg(version)
            .arg(&value)
            .arg(Self::ttl_ms(record))
            .invoke_async(&mut c)
            .await
            .map_err(backend)?;
        if swapped == 1 {
            Ok(Versioned {
                record: record.clone(),
                version: value,
            })
        } else {
            Err(LockError::Conflict)
        }
    }

    async fn release(&self, _record: &LeaderElectionRecord, version: &str) -> Result<(), LockError> {
        let mut c = self.connection.clone();
        let deleted: i64 = Script::new(COMPARE_AND_DELETE)
            .key(&self.key)
            .arg(version)
            .invoke_async(&mut c)
            .await
            .map_err(backend)?;
        if deleted == 1 { Ok(()) } else { Err(LockError::Conflict) }
    }
}
