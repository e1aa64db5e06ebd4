//! Recording [events](https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/)
//! (`events.k8s.io/v1`) about objects, as client-go's
//! [`tools/events`](https://github.com/kubernetes/client-go/tree/master/tools/events) does:
//! aggregated into series and sent in the background; on top of that, spam-filtered as
//! client-go's older `tools/record` does.
//!
//! An event tells humans (`kubectl describe`, `kubectl events`) what a controller did to an
//! object and why: `Normal`/`Warning`, a CamelCase `reason` (`ScalingReplicaSet`), an
//! `action` (`Scale`), a `note` for people. A controller in a loop can emit the same event
//! thousands of times; [`Recorder`] keeps that cheap for the API server:
//!
//! 1. **Spam filter.** Each regarding object has a token bucket: 25 events, then one more
//!    every 5 minutes (client-go's `EventSourceObjectSpamFilter`). Events over the limit are
//!    dropped ([`Published::Spam`]). Every publish takes a token, repeats included.
//! 2. **Series.** An event identical to one published less than 6 minutes ago (same
//!    regarding, related, type, reason, action and note) is not a new Event object: the first
//!    one gets `series: {count, lastObservedTime}` and is PATCHed ([`Published::Series`]).
//!    6 minutes after its last occurrence the series is finished and the next identical event
//!    starts a new Event object (client-go's finishTime). Unlike client-go, which sends
//!    counts lazily and refreshes every series every 30 minutes, each occurrence is sent —
//!    coalesced: while a write for the series waits in the queue, later occurrences only
//!    raise the count it will send. So the API server is never more than one write behind,
//!    and a refresh would have nothing to send.
//! 3. **Background sending.** [`Recorder::publish`] never blocks: it queues a write (at most
//!    1000 waiting; more are dropped and counted in [`Stats`]). One task sends them in order,
//!    retrying transport errors, 429 and 5xx up to 12 tries 10 s apart (the first pause
//!    random), and giving up at once on other API errors (AlreadyExists, a terminating
//!    namespace, validation). [`Recorder::flush`] waits until everything queued is sent.
//!
//! Event objects are named `<regarding name>.<hex nanoseconds>` (the name made a DNS subdomain
//! when it is not one, as `events.k8s.io/v1` requires) and live in the regarding
//! object's namespace (`default` for cluster-scoped objects); notes are cut to 1 KiB, the
//! `events.k8s.io/v1` limit. The recorder remembers at most 4096 series and 4096 buckets.
//!
//! # Example
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_openapi::api::events::v1::Event;
//! use kdev_core::event::Recorder;
//! use kube_client::{Api, api::{ListParams, PostParams}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let ns = env.namespace().await?;
//! let cms: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("app-config".into());
//! let cm = cms.create(&PostParams::default(), &cm).await?;
//!
//! let recorder = Recorder::new(env.client(), "example.com/app-controller")?;
//! for _ in 0..3 {
//!     // `publish(&event::reference(&cm), None, EventType::Normal, ..)` in full.
//!     recorder.normal(&cm, "Synced", "Sync", "config is in sync");
//! }
//! recorder.flush().await;
//!
//! let events: Api<Event> = Api::namespaced(env.client(), &ns);
//! let list = events.list(&ListParams::default()).await?;
//! assert_eq!(list.items.len(), 1);
//! assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(3));
//! # Ok(())
//! # }
//! ```

pub(crate) mod cache;
mod sink;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube_client::Client;
use kube_core::Resource;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use cache::{Lru, SpamFilter};

/// The longest note `events.k8s.io/v1` accepts, in bytes.
pub const NOTE_LIMIT: usize = 1024;

/// The longest reason, action and reporting instance `events.k8s.io/v1` accepts, in bytes
/// (kube-apiserver measures them with Go's `len`).
const FIELD_LIMIT: usize = 128;

/// `Normal` or `Warning`, the two event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something may need attention.
    Warning,
}

impl EventType {
    /// `"Normal"` or `"Warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reference to `obj` that events regard: apiVersion, kind, namespace, name, uid and
/// resourceVersion. For dynamic types use [`Resource::object_ref`].
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

/// Why a [`Recorder`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The reporting controller is empty.
    #[error("the reporting controller must not be empty")]
    EmptyController,
    /// The reporting controller is not a qualified name (`[prefix/]name`, the name at most 63
    /// characters of `[A-Za-z0-9_.-]`, the prefix a DNS subdomain), which the API server
    /// requires of every `events.k8s.io/v1` Event: each write would be refused.
    #[error("invalid reporting controller {0:?}: a qualified name such as example.com/app-controller")]
    InvalidController(String),
    /// The reporting instance is empty or longer than 128 bytes.
    #[error("invalid reporting instance {0:?}: 1 to 128 bytes")]
    InvalidInstance(String),
    /// A setting is out of range.
    #[error("invalid recorder config: {0}")]
    InvalidConfig(&'static str),
    /// There is no Tokio runtime to run the sending task on.
    #[error("a recorder must be made inside a Tokio runtime")]
    NoRuntime,
}

/// How a [`Recorder`] behaves. The defaults are client-go's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `reportingController`, e.g. `example.com/app-controller`. Required.
    pub reporting_controller: String,
    /// `reportingInstance`. Default: `<reporting controller>-<hostname>`, cut to 128
    /// bytes (at a character boundary), as client-go.
    pub reporting_instance: Option<String>,
    /// How many writes may wait to be sent; more are dropped. Default 1000.
    pub queue_capacity: usize,
    /// Tries per write. Default 12.
    pub max_tries: u32,
    /// Pause between tries (the first one is random up to it). Default 10 s.
    pub retry_interval: Duration,
    /// Spam filter: events per object before throttling. Default 25.
    pub spam_burst: u32,
    /// Spam filter: one more event per object every this long. Default 300 s.
    pub spam_refill: Duration,
    /// A series ends this long after its last occurrence. Default 6 min.
    pub series_finish: Duration,
    /// Series and spam buckets remembered (each an LRU). Default 4096.
    pub cache_size: usize,
}

impl Config {
    /// client-go's defaults for `reporting_controller`.
    pub fn new(reporting_controller: impl Into<String>) -> Self {
        Config {
            reporting_controller: reporting_controller.into(),
            reporting_instance: None,
            queue_capacity: 1000,
            max_tries: 12,
            retry_interval: Duration::from_secs(10),
            spam_burst: 25,
            spam_refill: Duration::from_secs(300),
            series_finish: Duration::from_secs(6 * 60),
            cache_size: 4096,
        }
    }

    /// Sets the reporting instance.
    #[must_use]
    pub fn reporting_instance(mut self, instance: impl Into<String>) -> Self {
        self.reporting_instance = Some(instance.into());
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retries(mut self, max_tries: u32, interval: Duration) -> Self {
        self.max_tries = max_tries;
        self.retry_interval = interval;
        self
    }

    /// Sets the spam filter's burst and refill period.
    #[must_use]
    pub fn spam_filter(mut self, burst: u32, refill: Duration) -> Self {
        self.spam_burst = burst;
        self.spam_refill = refill;
        self
    }

    /// Sets the queue capacity.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }
}

/// What [`Recorder::publish`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// A new Event object was queued for creation.
    Created,
    /// It repeats a recent event: the series count was raised, and its write queued
    /// (or already waiting).
    Series,
    /// Dropped by the spam filter.
    Spam,
    /// Dropped: the queue was full.
    QueueFull,
    /// Dropped: reason or action empty or longer than 128 bytes.
    Invalid,
    /// Dropped: the recorder was shut down.
    ShutDown,
}

/// Counters of a [`Recorder`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Event objects created.
    pub created: u64,
    /// Series updates patched.
    pub patched: u64,
    /// Events dropped by the spam filter.
    pub dropped_spam: u64,
    /// Events dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Events dropped as invalid.
    pub dropped_invalid: u64,
    /// Writes given up after errors.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    patched: AtomicU64,
    dropped_spam: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_invalid: AtomicU64,
    failed: AtomicU64,
}

/// The fields of an object reference that identify it.
type RefKey = [Option<String>; 6];

fn ref_key(r: &ObjectReference) -> RefKey {
    [
        r.api_version.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
        r.uid.clone(),
        r.field_path.clone(),
    ]
}

/// What makes two events "the same" for a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: RefKey,
    related: Option<RefKey>,
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

/// A remembered event: what was created, its series, and whether a write is queued.
#[derive(Debug)]
struct Entry {
    event: Event,
    last_seen: Instant,
    /// A write for this entry waits in the queue.
    queued: bool,
    /// The Event object exists on the server.
    created: bool,
}

/// A queued write: the entry's key, and a snapshot in case the entry was forgotten since.
#[derive(Debug)]
struct Job {
    key: SeriesKey,
    snapshot: Box<Event>,
    created: bool,
}

#[derive(Debug)]
struct State {
    series: Lru<SeriesKey, Entry>,
    spam: SpamFilter<RefKey>,
    last_nanos: i128,
    accepting: bool,
}

/// State shared by the recorder handles and the sending task.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    counters: Counters,
    /// Writes queued and not yet finished.
    outstanding: watch::Sender<usize>,
    config: Config,
    instance: String,
}

/// Records `events.k8s.io/v1` events: aggregated into series, spam-filtered, sent by a
/// background task (client-go's `tools/events` `EventRecorder`). The flow is numbered in the
/// [module docs](self).
///
/// Cheap to clone; all clones share one cache and one sending task. The task stops when the
/// last clone is dropped (dropping what is still queued) or after [`shutdown`](Self::shutdown).
#[derive(Clone)]
#[doc(alias = "EventRecorder")]
pub struct Recorder {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Job>,
    stop: CancellationToken,
    _guard: Arc<DropGuard>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("reporting_controller", &self.shared.config.reporting_controller)
            .field("reporting_instance", &self.shared.instance)
            .finish_non_exhaustive()
    }
}

/// The host's name: `$HOSTNAME`, else the kernel's, else `unknown`.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `s` cut to at most `max` bytes, on a character boundary.
/// `<name>.<hex nanoseconds>`, the name client-go gives an Event, made a DNS subdomain as
/// `events.k8s.io/v1` requires: an object named otherwise (a ClusterRole
/// `system:aggregate-to-admin`) has its name lowercased, other characters turned into `-`, and
/// cut to fit in 253 characters.
fn event_name(regarding: &str, nanos: i128) -> String {
    let suffix = format!(".{nanos:x}");
    let mut base: String = regarding
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect();
    base.truncate(253 - suffix.len());
    // Each dot-separated label must start and end with a letter or digit.
    let base = base
        .split('.')
        .map(|label| label.trim_matches('-'))
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    let base = if base.is_empty() { "event".to_string() } else { base };
    format!("{base}{suffix}")
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Recorder {
    /// A recorder reporting as `reporting_controller`, with client-go's defaults
    /// ([`Config::new`]); it starts its sending task on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyController`], [`Error::InvalidController`]; [`Error::NoRuntime`] outside
    /// a Tokio runtime.
    pub fn new(client: Client, reporting_controller: impl Into<String>) -> Result<Self, Error> {
        Self::with_config(client, Config::new(reporting_controller))
    }

    /// A recorder with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyController`], [`Error::InvalidController`], [`Error::InvalidInstance`],
    /// [`Error::InvalidConfig`] (a zero queue capacity, tries or cache size);
    /// [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn with_config(client: Client, config: Config) -> Result<Self, Error> {
        if config.reporting_controller.is_empty() {
            return Err(Error::EmptyController);
        }
        if !crate::finalizer::valid_name(&config.reporting_controller) {
            return Err(Error::InvalidController(config.reporting_controller));
        }
        let instance = match &config.reporting_instance {
            Some(i) if i.is_empty() || i.len() > FIELD_LIMIT => {
                return Err(Error::InvalidInstance(i.clone()));
            }
            Some(i) => i.clone(),
            None => {
                let default = format!("{}-{}", config.reporting_controller, hostname());
                truncate(&default, FIELD_LIMIT).to_string()
            }
        };
        if config.queue_capacity == 0 {
            return Err(Error::InvalidConfig("queue_capacity must be at least 1"));
        }
        if config.max_tries == 0 {
            return Err(Error::InvalidConfig("max_tries must be at least 1"));
        }
        if config.cache_size == 0 {
            return Err(Error::InvalidConfig("cache_size must be at least 1"));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                series: Lru::new(config.cache_size),
                spam: SpamFilter::new(config.spam_burst, config.spam_refill, config.cache_size),
                last_nanos: 0,
                accepting: true,
            }),
            counters: Counters::default(),
            outstanding: watch::Sender::new(0),
            config,
            instance,
        });
        let stop = CancellationToken::new();
        runtime.spawn(sink::run(Arc::clone(&shared), client, rx, stop.clone()));
        Ok(Recorder {
            shared,
            tx,
            _guard: Arc::new(stop.clone().drop_guard()),
            stop,
        })
    }

    /// The `reportingInstance` of this recorder's events.
    pub fn reporting_instance(&self) -> &str {
        &self.shared.instance
    }

    /// [`publish`](Self::publish) of a `Normal` event about `obj` (no related object): the
    /// everyday form, controller-runtime's `recorder.Event(obj, "Normal", reason, message)`
    /// with the events API's `action`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: &str) -> Published {
        self.publish(&reference(obj), None, EventType::Normal, reason, action, note)
    }

    /// [`publish`](Self::publish) of a `Warning` event about `obj` (no related object).
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: &str) -> Published {
        self.publish(&reference(obj), None, EventType::Warning, reason, action, note)
    }

    /// Records an event about `regarding` (and optionally `related`), without waiting: it
    /// goes through the spam filter and the series cache, then a write is queued for the
    /// background task. Returns what happened to it; ignoring that is fine.
    ///
    /// `reason` (CamelCase: why) and `action` (what was done) must have 1 to 128 bytes;
    /// `note` is cut to [`NOTE_LIMIT`] bytes.
    pub fn publish(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Published {
        let counters = &self.shared.counters;
        let bad = |s: &str| s.is_empty() || s.len() > FIELD_LIMIT;
        if bad(reason) || bad(action) {
            counters.dropped_invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(reason, action, "dropping event: reason and action need 1 to 128 bytes");
            return Published::Invalid;
        }
        let note = truncate(note, NOTE_LIMIT);
        let now = Instant::now();
        let wall = Timestamp::now();
        let key = SeriesKey {
            regarding: ref_key(regarding),
            related: related.map(ref_key),
            type_,
            reason: reason.to_string(),
            action: action.to_string(),
            note: note.to_string(),
        };
        let mut state = self.shared.state.lock();
        if !state.accepting {
            return Published::ShutDown;
        }
        if !state.spam.allow(&key.regarding, now) {
            counters.dropped_spam.fetch_add(1, Ordering::Relaxed);
            return Published::Spam;
        }
        let finish = self.shared.config.series_finish;
        if let Some(entry) = state.series.get_mut(&key)
            && now.saturating_duration_since(entry.last_seen) < finish
        {
            entry.last_seen = now;
            let count = entry.event.series.as_ref().map_or(2, |s| s.count.saturating_add(1));
            entry.event.series = Some(EventSeries {
                count,
                last_observed_time: MicroTime(wall),
            });
            if entry.queued {
                return Published::Series;
            }
            let job = Job {
                key: key.clone(),
                snapshot: Box::new(entry.event.clone()),
                created: entry.created,
            };
            entry.queued = true;
            if self.enqueue(job) {
                return Published::Series;
            }
            if let Some(e) = state.series.peek_mut(&key) {
                e.queued = false;
            }
            return Published::QueueFull;
        }
        // A new event (or the first after a finished series).
        let nanos = wall.as_nanosecond().max(state.last_nanos + 1);
        state.last_nanos = nanos;
        let event = self.make_event(regarding, related, type_, reason, action, note, wall, nanos);
        let job = Job {
            key: key.clone(),
            snapshot: Box::new(event.clone()),
            created: false,
        };
        if !self.enqueue(job) {
            state.series.remove(&key);
            return Published::QueueFull;
        }
        state.series.insert(
            key,
            Entry {
                event,
                last_seen: now,
                queued: true,
                created: false,
            },
        );
        Published::Created
    }

    #[allow(clippy::too_many_arguments)]
    fn make_event(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        wall: Timestamp,
        nanos: i128,
    ) -> Event {
        let namespace = regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let name = event_name(regarding.name.as_deref().unwrap_or_default(), nanos);
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(wall)),
            series: None,
            reporting_controller: Some(self.shared.config.reporting_controller.clone()),
            reporting_instance: Some(self.shared.instance.clone()),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            regarding: Some(regarding.clone()),
            related: related.cloned(),
            note: Some(note.to_string()).filter(|n| !n.is_empty()),
            type_: Some(type_.as_str().to_string()),
            ..Event::default()
        }
    }

    /// Queues `job` without waiting; `false` (and counted) when the queue is full or closed.
    fn enqueue(&self, job: Job) -> bool {
        self.shared.outstanding.send_modify(|n| *n += 1);
        if self.tx.try_send(job).is_ok() {
            return true;
        }
        self.shared.outstanding.send_modify(|n| *n = n.saturating_sub(1));
        self.shared.counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Waits until every write queued so far has been sent (or given up).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it stops only the waiting.
    pub async fn flush(&self) {
        let mut rx = self.shared.outstanding.subscribe();
        // The sender lives in `shared`, so the channel cannot close while we hold it.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Stops taking events (later publishes return [`Published::ShutDown`]), sends what is
    /// queued, and stops the sending task. Affects every clone.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while flushing leaves the recorder closed to new events, with the task
    /// still sending what was queued.
    pub async fn shutdown(&self) {
        self.shared.state.lock().accepting = false;
        self.flush().await;
        self.stop.cancel();
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            created: c.created.load(Ordering::Relaxed),
            patched: c.patched.load(Ordering::Relaxed),
            dropped_spam: c.dropped_spam.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_dns_subdomains_whatever_the_object_is_called() {
        assert_eq!(event_name("web-1", 255), "web-1.ff");
        assert_eq!(
            event_name("system:aggregate-to-admin", 16),
            "system-aggregate-to-admin.10"
        );
        assert_eq!(event_name("Weird_Name.", 1), "weird-name.1");
        assert_eq!(event_name(":", 1), "event.1");
        let long = event_name(&"a".repeat(300), 1);
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("a.1"));
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        let s = "é".repeat(600); // 1200 bytes
        let t = truncate(&s, NOTE_LIMIT);
        assert_eq!(t.len(), 1024);
        let s = format!("a{}", "é".repeat(600));
        assert_eq!(truncate(&s, NOTE_LIMIT).len(), 1023);
        assert_eq!(truncate("short", NOTE_LIMIT), "short");
    }
}
