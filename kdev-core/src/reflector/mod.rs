//! The reflector: list, then watch from the list's resourceVersion, forever — feeding a FIFO or
//! a store (client-go's [`tools/cache/reflector.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/reflector.go)).

mod backoff;
mod list_watch;
mod sink;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube_client::api::WatchEvent;
use kube_core::Resource;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
use list_watch::{Change, Line, Lines};
pub use list_watch::{DEFAULT_REQUEST_TIMEOUT, ListWatch, WatchStream};
pub use sink::Sink;

#[cfg(test)]
pub(crate) use list_watch::script;

/// How a reflector lists and watches. Defaults are client-go's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Objects per page of the initial list (default 500, client-go's `defaultPageSize`).
    pub page_size: u32,
    /// Try a streaming list (`sendInitialEvents`) first, falling back to a paginated list when
    /// the server refuses it (then for good) or the stream fails before its initial events end
    /// (then for that round). Default: the [`WatchListClient`](crate::feature_gate::WATCH_LIST_CLIENT)
    /// client gate, on unless `KUBE_FEATURE_WatchListClient=false` (client-go enables it by
    /// default since 1.35).
    pub streaming_lists: bool,
    /// Server-side watch timeouts are drawn from this range (default 5–10 minutes, as client-go's
    /// `minWatchTimeout` × [1, 2)).
    pub watch_timeout: (Duration, Duration),
    /// A watch with no event at all (bookmarks included) for this long is assumed dead and
    /// restarted from the last resourceVersion (default 11 minutes: longer than any server timeout).
    pub idle_timeout: Duration,
    /// Backoff between failed attempts (default 800 ms → 30 s with jitter, reset after 2 min).
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            page_size: 500,
            streaming_lists: crate::feature_gate::client_features().enabled(crate::feature_gate::WATCH_LIST_CLIENT),
            watch_timeout: (Duration::from_secs(300), Duration::from_secs(600)),
            idle_timeout: Duration::from_secs(660),
            backoff: Backoff::default(),
        }
    }
}

impl Config {
    /// Sets the page size of the initial list.
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Turns streaming lists on or off.
    #[must_use]
    pub fn streaming_lists(mut self, on: bool) -> Self {
        self.streaming_lists = on;
        self
    }

    /// Sets the backoff.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// What the reflector is doing, for logs, metrics and tests.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The resourceVersion of the last list, event or bookmark seen.
    last_rv: String,
    /// How many full lists (paginated or streaming) were delivered to the sink.
    lists: u64,
    /// How many watches were opened.
    watches: u64,
    /// The last error, as text.
    last_error: Option<String>,
    /// Objects skipped because they did not decode.
    undecodable: u64,
}

/// A handle to read a running reflector's progress.
#[derive(Debug, Clone, Default)]
pub struct Status(Arc<Mutex<Progress>>);

impl Status {
    /// The resourceVersion of the last list, event or bookmark the reflector saw
    /// (client-go's `LastSyncResourceVersion`); empty before the first list.
    pub fn last_resource_version(&self) -> String {
        self.0.lock().last_rv.clone()
    }

    /// How many full lists were delivered to the sink (1 after the first sync; each relist adds one).
    pub fn lists(&self) -> u64 {
        self.0.lock().lists
    }

    /// How many watch requests were opened.
    pub fn watches(&self) -> u64 {
        self.0.lock().watches
    }

    /// The last error the reflector met and recovered from, if any.
    pub fn last_error(&self) -> Option<String> {
        self.0.lock().last_error.clone()
    }

    /// How many objects, in lists or watch events, did not decode as the reflector's type and
    /// were skipped (each is logged at error level, and is the `last_error`). Not zero means
    /// the type no longer matches what the server stores, a custom resource's schema most
    /// often: the cache lacks those objects, or holds an older state of them.
    pub fn undecodable(&self) -> u64 {
        self.0.lock().undecodable
    }

    fn skipped(&self, what: impl std::fmt::Display) {
        tracing::error!(%what, "an object the server sent did not decode and is skipped");
        let mut p = self.0.lock();
        p.undecodable += 1;
        p.last_error = Some(what.to_string());
    }
}

/// Why one list-and-watch round ended.
enum Round {
    /// The resourceVersion is too old (410 Gone): list again.
    Relist,
    /// A failure on the way to the server or back (a dropped connection, a refused one, a
    /// timeout) or a 429: back off, then resume from the last resourceVersion if there is one.
    Failed(String),
    /// The server answered the watch with an error of its own (403, 500, 504, an `ERROR`
    /// event): back off, then list again, as client-go does. A watch the server keeps refusing
    /// must not leave the cache at its first list for good; a relist at least refreshes it.
    Refused(String),
}

/// Lists and watches one resource, forever, feeding a [`Sink`].
///
/// # Guarantees
/// 1. The sink first gets `replace` with the complete list (paginated, 500 a page, or a
///    streaming list where the server supports it), then `add` / `update` / `delete` for every
///    change after that list's resourceVersion, in the server's order.
/// 2. When a watch ends (timeout, dropped or broken connection, server restart) the reflector watches
///    again from the last resourceVersion it saw, without listing again: at once, unless the
///    watch closed within a second without an event, which counts as a failure (4).
/// 3. When the server answers 410 Gone (the version is older than its history) the reflector
///    waits out the backoff, lists again and hands the sink a fresh `replace`.
/// 4. Other failures back off (800 ms doubling to 30 s, with jitter, reset after 2 minutes
///    without failures) and retry; the reflector never gives up until cancelled. A failure on
///    the way to the server (a refused or dropped connection, a timeout) or a 429 then resumes
///    from the last resourceVersion; an error the server itself answers the watch with (403,
///    500, 504, an `ERROR` event) lists again, as client-go does.
/// 5. An object that does not decode as `K`, in a list or a watch event, is skipped, logged and
///    counted ([`Status::undecodable`]); the others load, and the watch goes on. A deletion
///    still deletes: when a DELETED event's object does not decode, the state the sink holds
///    for its key ([`Sink::current`]) is deleted instead.
///
/// # Logs
/// Through `tracing`, target `kdev_core::reflector`, each line with the `resource` it lists
/// (the [`ListWatch`]'s path and selectors): an error the server answers with (a 403 from
/// missing RBAC, a 500) at error level, a failure it retries (a dropped connection, a timeout,
/// a very short watch) at warn, each list, each watch that ends and each 410 at debug, each list
/// page at trace. Every line that reports a retry says when (`retry_in`).
///
/// # Examples
/// ```no_run
/// # async fn run(client: kube_client::Client) {
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kdev_core::{DeltaFifo, delta_fifo, store};
/// use kdev_core::reflector::{Config, ListWatch, Reflector};
/// use tokio_util::sync::CancellationToken;
///
/// // The FIFO knows what the cache holds, so that a relist after a 410 queues a delete for
/// // every cached object the new list no longer has.
/// let (cache, writer) = store::store::<ConfigMap>();
/// let fifo = Arc::new(DeltaFifo::new(delta_fifo::Config::default().known_objects(cache)));
/// let lw = ListWatch::new(kube_client::Api::<ConfigMap>::all(client));
/// let reflector = Reflector::new(lw, fifo.clone(), Config::default());
/// let stop = CancellationToken::new();
/// tokio::spawn(reflector.run(stop.clone()));
/// // ... pop deltas from `fifo` and apply them to the cache with `writer`;
/// // `stop.cancel()` ends the reflector.
/// # drop(writer);
/// # }
/// ```
///
/// # Cancel safety
/// [`Reflector::run`] returns when the token is cancelled; dropping its future stops it too.
pub struct Reflector<K, S> {
    lw: ListWatch<K>,
    sink: S,
    config: Config,
    status: Status,
}

/// Hands back the spare room serde leaves in an object's metadata lists before the object
/// is kept. serde grows a decoded `Vec` from nothing to four slots at its first element, so
/// an object with one managedFields entry would keep room for four: about 530 bytes for a
/// ConfigMap, 5 MB for a cache of 10,000 (`cargo bench -p kdev-core --bench informer_sync`).
fn settle<K: Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    if let Some(fields) = &mut meta.managed_fields {
        fields.shrink_to_fit();
    }
    if let Some(owners) = &mut meta.owner_references {
        owners.shrink_to_fit();
    }
    if let Some(finalizers) = &mut meta.finalizers {
        finalizers.shrink_to_fit();
    }
    obj
}

impl<K, S> Reflector<K, S>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    S: Sink<K>,
{
    /// A reflector of `lw` into `sink`.
    pub fn new(lw: ListWatch<K>, sink: S, config: Config) -> Self {
        Reflector {
            lw,
            sink,
            config,
            status: Status::default(),
        }
    }

    /// A handle on the reflector's progress.
    pub fn status(&self) -> Status {
        self.status.clone()
    }

    /// Lists and watches until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut backoff = self.config.backoff.clone();
        let mut resume: Option<String> = None;
        loop {
            let round = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.round(resume.clone()) => r,
            };
            let (round, last) = round;
            // Never resume from no resourceVersion: that watch would start with an ADDED event
            // per object and no list, so deletions made meanwhile would never show.
            resume = last.filter(|rv| !rv.is_empty());
            // Both a failure and a relist wait out the backoff, as client-go's `BackoffUntil`
            // does after every `ListAndWatch`: a resourceVersion that expires again and again
            // (a list slower than the server's history is long, every reflector after an API
            // server restart) must not turn into back-to-back full lists.
            let wait = backoff.failure();
            let resource = &self.lw;
            match round {
                Round::Relist => {
                    tracing::debug!(%resource, retry_in = ?wait, "the resourceVersion is too old (410 Gone): listing again");
                    resume = None;
                }
                Round::Failed(err) => {
                    match &resume {
                        Some(rv) => {
                            tracing::warn!(%resource, error = %err, retry_in = ?wait, resource_version = %rv, "the watch failed: watching again from the last resourceVersion")
                        }
                        None => {
                            tracing::warn!(%resource, error = %err, retry_in = ?wait, "list and watch failed: listing again")
                        }
                    }
                    self.status.0.lock().last_error = Some(err);
                }
                Round::Refused(err) => {
                    tracing::error!(%resource, error = %err, retry_in = ?wait, "the API server refused the list or watch: listing again");
                    resume = None;
                    self.status.0.lock().last_error = Some(err);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One round: list (unless resuming), then watch until the watch fails. Returns why it
    /// ended and the resourceVersion to resume from.
    async fn round(&mut self, resume: Option<String>) -> (Round, Option<String>) {
        let (mut rv, mut stream) = match resume {
            Some(rv) => (rv, None),
            None => match self.sync().await {
                Ok(synced) => synced,
                Err(round) => return (round, None),
            },
        };
        loop {
            // A streaming list's watch goes on carrying the changes after the list.
            let watched = match stream.take() {
                Some(stream) => self.consume(stream, &mut rv).await,
                None => self.watch(&mut rv).await,
            };
            match watched {
                // A watch from no resourceVersion that never learnt one: watching from "" again
                // would replay every object as ADDED with no list, and miss deletions.
                Ok(()) if rv.is_empty() => {
                    return (
                        Round::Failed("the watch ended before it learnt a resourceVersion".into()),
                        None,
                    );
                }
                // The watch ended normally (server timeout): watch again at once.
                Ok(()) => {
                    tracing::debug!(resource = %self.lw, resource_version = %rv, "the watch ended: watching again");
                    continue;
                }
                Err(round) => return (round, Some(rv)),
            }
        }
    }

    /// The initial list, as a streaming list when possible, else paginated. Returns the list's
    /// resourceVersion and, after a streaming list, the watch that goes on from it.
    ///
    /// A server that does not know streaming lists (400 or 422: it rejects
    /// `resourceVersionMatch` on a watch) is not asked again. Any other failure before the
    /// initial events end (an error, a 403, a stream that closes early) falls back to a
    /// paginated list in the same round, and the next round tries streaming again, as
    /// client-go does (kubernetes PR #120984): a server or proxy that breaks only the streaming
    /// path must not keep the cache from ever syncing, nor one passing failure turn streaming
    /// off for good.
    async fn sync(&mut self) -> Result<(String, Option<Lines<K>>), Round> {
        if self.config.streaming_lists {
            match self.streaming_list().await {
                Ok(Some((rv, stream))) => return Ok((rv, Some(stream))),
                Ok(None) => {
                    tracing::debug!(resource = %self.lw, "the API server does not serve streaming lists: listing in pages from now on");
                    self.config.streaming_lists = false;
                }
                Err(Round::Relist) => return Err(Round::Relist),
                Err(Round::Failed(err) | Round::Refused(err)) => {
                    tracing::debug!(resource = %self.lw, error = %err, "the streaming list failed: listing in pages this time");
                    self.status.0.lock().last_error = Some(format!("streaming list: {err}"));
                }
            }
        }
        let sink = &self.sink;
        let (mut items, rv, undecodable) = self
            .lw
            .list_pages(self.config.page_size, |o| sink.accept(settle(o)))
            .await
            .map_err(failed)?;
        for skipped in &undecodable {
            self.status.skipped(skipped);
        }
        self.keep(&mut items, undecodable.into_iter().map(|u| u.key));
        let objects = items.len();
        self.sink.replace(items);
        self.delivered_list(&rv, objects, false);
        Ok((rv, None))
    }

    /// Adds to a list what the sink holds for each of `keys`, objects the server listed but
    /// that did not decode: the server still has them, so the list must not delete them.
    fn keep(&self, items: &mut Vec<Arc<K>>, keys: impl IntoIterator<Item = String>) {
        items.extend(keys.into_iter().filter_map(|key| self.sink.current(&key)));
    }

    /// A streaming list: initial events until the bookmark that ends them; then the list's
    /// resourceVersion and the stream, which goes on as a watch. `Ok(None)` when the server
    /// refuses streaming lists.
    async fn streaming_list(&mut self) -> Result<Option<(String, Lines<K>)>, Round> {
        let stream = match self.lw.watch_initial_lines(self.timeout_secs()).await {
            Ok(s) => s,
            Err(kube_client::Error::Api(e)) if matches!(e.code, 400 | 422) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        self.status.0.lock().watches += 1;
        let mut stream = stream;
        let mut items = Initial::default();
        // The keys of the objects that did not decode, whose state the sink holds is kept.
        let mut undecodable: Vec<String> = Vec::new();
        loop {
            let next = tokio::time::timeout(self.config.idle_timeout, stream.try_next()).await;
            let line = match next {
                Err(_) => return Err(Round::Failed("streaming list idle".into())),
                Ok(Err(e)) => return Err(failed(e)),
                // Closed before the initial events ended: a dropped connection, a proxy, or a
                // server that ignores `sendInitialEvents`. List instead, this round.
                Ok(Ok(None)) => return Err(Round::Failed("the stream ended before its initial events did".into())),
                Ok(Ok(Some(line))) => line,
            };
            let ev = match line {
                Line::Event(ev) => ev,
                Line::Skipped(skipped) => {
                    self.status.skipped(&skipped);
                    if skipped.event == Some(Change::Deleted) {
                        items.delete_key(&skipped.key);
                        undecodable.retain(|key| *key != skipped.key);
                    } else {
                        undecodable.push(skipped.key);
                    }
                    continue;
                }
            };
            match ev {
                WatchEvent::Added(o) => items.add(self.sink.accept(settle(o))),
                WatchEvent::Modified(o) => items.set(self.sink.accept(settle(o))),
                WatchEvent::Deleted(o) => {
                    let key = crate::store::key_of(&o);
                    items.delete_key(&key);
                    undecodable.retain(|k| *k != key);
                }
                WatchEvent::Bookmark(b) => {
                    if b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str)
                        == Some("true")
                    {
                        let rv = b.metadata.resource_version;
                        for key in std::mem::take(&mut undecodable) {
                            if let Some(kept) = self.sink.current(&key) {
                                items.keep(key, kept);
                            }
                        }
                        let items = items.into_vec();
                        let objects = items.len();
                        self.sink.replace(items);
                        self.delivered_list(&rv, objects, true);
                        return Ok(Some((rv, stream)));
                    }
                }
                WatchEvent::Error(e) => return Err(refused(&e)),
            }
        }
    }

    fn delivered_list(&self, rv: &str, objects: usize, streaming: bool) {
        tracing::debug!(resource = %self.lw, resource_version = %rv, objects, streaming, "listed");
        let mut p = self.status.0.lock();
        p.lists += 1;
        p.last_rv = rv.to_string();
    }

    fn timeout_secs(&self) -> u32 {
        let (lo, hi) = self.config.watch_timeout;
        let (lo, hi) = (lo.as_secs().max(1), hi.as_secs().max(1));
        u32::try_from(fastrand::u64(lo..=hi.max(lo))).unwrap_or(u32::MAX)
    }

    /// One watch from `rv`, until it ends; `rv` follows the events and bookmarks seen.
    ///
    /// A watch from no resourceVersion (a list that came without one, which some aggregated
    /// APIs send) starts with an ADDED event for every object, in no particular order; `rv`
    /// moves only once another kind of event comes, as in client-go, so that a resume cannot
    /// skip what the server had not sent yet.
    async fn watch(&mut self, rv: &mut String) -> Result<(), Round> {
        let stream = match self.lw.watch_lines(rv, self.timeout_secs()).await {
            Ok(s) => s,
            Err(e) => return Err(failed(e)),
        };
        self.status.0.lock().watches += 1;
        self.consume(stream, rv).await
    }

    /// Delivers a watch stream's events to the sink until it ends.
    ///
    /// A connection that breaks while the stream is read (a server restart, a proxy closing it,
    /// a reset) ends the watch as a close does, to be resumed at once: client-go's stream
    /// watcher takes such read errors (`IsProbableEOF`, timeouts) for the end of the stream.
    ///
    /// A watch that closes within a second without a single event is a failure, as client-go's
    /// `VeryShortWatchError`: a proxy or an unhealthy server that keeps closing watches at once
    /// must meet the backoff, not a tight loop of watch requests.
    async fn consume(&mut self, mut stream: Lines<K>, rv: &mut String) -> Result<(), Round> {
        let started = tokio::time::Instant::now();
        let mut events = 0_u64;
        let mut synthetic_adds = rv.is_empty();
        loop {
            let next = tokio::time::timeout(self.config.idle_timeout, stream.next()).await;
            let line = match next {
                Err(_) => return Err(Round::Failed("watch idle for too long".into())),
                Ok(None) if events == 0 && started.elapsed() < VERY_SHORT_WATCH => {
                    return Err(Round::Failed(
                        "very short watch: it closed within a second without an event".into(),
                    ));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(kube_client::Error::ReadEvents(e)))) => {
                    if events == 0 && started.elapsed() < VERY_SHORT_WATCH {
                        return Err(Round::Failed(format!(
                            "very short watch: its connection broke within a second without an event: {e}"
                        )));
                    }
                    tracing::debug!(resource = %self.lw, error = %e, "the watch connection broke: watching again");
                    return Ok(());
                }
                Ok(Some(Err(e))) => return Err(failed(e)),
                Ok(Some(Ok(line))) => line,
            };
            events += 1;
            let new_rv = match line {
                Line::Skipped(skipped) => {
                    synthetic_adds &= skipped.event == Some(Change::Added);
                    self.status.skipped(&skipped);
                    // Gone, though its final state did not decode: the state the sink holds
                    // goes, or it would stay cached until a relist.
                    if skipped.event == Some(Change::Deleted)
                        && let Some(last) = self.sink.current(&skipped.key)
                    {
                        self.sink.delete(last);
                    }
                    skipped.resource_version.filter(|_| !synthetic_adds)
                }
                Line::Event(ev) => {
                    synthetic_adds &= matches!(ev, WatchEvent::Added(_));
                    match ev {
                        WatchEvent::Added(o) => {
                            let v = o.meta().resource_version.clone().filter(|_| !synthetic_adds);
                            let o = self.sink.accept(settle(o));
                            self.sink.add(o);
                            v
                        }
                        WatchEvent::Modified(o) => {
                            let v = o.meta().resource_version.clone();
                            let o = self.sink.accept(settle(o));
                            self.sink.update(o);
                            v
                        }
                        WatchEvent::Deleted(o) => {
                            let v = o.meta().resource_version.clone();
                            let o = self.sink.accept(settle(o));
                            self.sink.delete(o);
                            v
                        }
                        WatchEvent::Bookmark(b) => Some(b.metadata.resource_version),
                        WatchEvent::Error(e) => return Err(refused(&e)),
                    }
                }
            };
            if let Some(v) = new_rv.filter(|v| !v.is_empty()) {
                *rv = v.clone();
                self.status.0.lock().last_rv = v;
            }
        }
    }
}

/// The objects of a streaming list, as its events arrive. The initial events are ADDED events,
/// one per object; but nothing keeps a server from sending changes made after the list's
/// snapshot before the bookmark that ends them, so a MODIFIED event replaces its key's object
/// and a DELETED one removes it, as client-go's `watchList` does by buffering the events in a
/// temporary store. Dropping such a delete would leave the object cached for good, since the
/// watch goes on from the bookmark, after the delete. The index by key is built
/// when the first such change comes: a list without one costs no more than its `Vec`.
struct Initial<K> {
    items: Vec<Option<Arc<K>>>,
    at: Option<std::collections::HashMap<String, usize>>,
}

impl<K> Default for Initial<K> {
    fn default() -> Self {
        Initial {
            items: Vec::new(),
            at: None,
        }
    }
}

impl<K: Resource> Initial<K> {
    fn add(&mut self, obj: Arc<K>) {
        match &self.at {
            Some(_) => self.set(obj),
            None => self.items.push(Some(obj)),
        }
    }

    /// Replaces the object of `obj`'s key, or adds it.
    fn set(&mut self, obj: Arc<K>) {
        let key = crate::store::key_of(&*obj);
        let (items, at) = self.indexed();
        match at.get(&key) {
            Some(&i) => items[i] = Some(obj),
            None => {
                at.insert(key, items.len());
                items.push(Some(obj));
            }
        }
    }

    fn delete_key(&mut self, key: &str) {
        let (items, at) = self.indexed();
        if let Some(i) = at.remove(key) {
            items[i] = None;
        }
    }

    /// Adds `obj` under `key` unless the list has an object there: what the sink holds for an
    /// object that did not decode.
    fn keep(&mut self, key: String, obj: Arc<K>) {
        let (items, at) = self.indexed();
        at.entry(key).or_insert_with(|| {
            items.push(Some(obj));
            items.len() - 1
        });
    }

    fn indexed(&mut self) -> (&mut Vec<Option<Arc<K>>>, &mut std::collections::HashMap<String, usize>) {
        let items = &mut self.items;
        let at = self.at.get_or_insert_with(|| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.as_ref().map(|o| (crate::store::key_of(&**o), i)))
                .collect()
        });
        (items, at)
    }

    fn into_vec(self) -> Vec<Arc<K>> {
        self.items.into_iter().flatten().collect()
    }
}

/// A watch that closes sooner than this without an event is a failure (client-go's
/// `VeryShortWatchError`).
const VERY_SHORT_WATCH: Duration = Duration::from_secs(1);

/// What a failed request means for the round: 410 relists; another answer of the server's
/// own relists after the backoff, but 429 (too many requests), which resumes; a failure on the
/// way (connection, timeout, transport) resumes from the last resourceVersion.
fn failed(e: kube_client::Error) -> Round {
    match &e {
        kube_client::Error::Api(s) => refused(s),
        _ => Round::Failed(e.to_string()),
    }
}

/// What an error status from the server means for the round (see [`failed`]).
fn refused(status: &kube_core::Status) -> Round {
    if is_gone(status) {
        Round::Relist
    } else if status.code == 429 {
        Round::Failed(status.message.clone())
    } else if status.code == 404 {
        // A list or watch finds no resource at its path: the resource is not served.
        Round::Refused(format!(
            "{} (404): the API server does not serve this resource (for a custom resource: is its CRD \
             installed? Are the group and version right? A built-in kind may be missing from a test \
             server, or from this Kubernetes version)",
            status.message
        ))
    } else {
        Round::Refused(format!("{} ({})", status.message, status.code))
    }
}

/// Whether the server says the resourceVersion is too old: 410, or reason `Expired` / `Gone`
/// when the code is missing (client-go's `IsResourceExpired` || `IsGone`, which look at the
/// reason first).
pub(crate) fn is_gone(status: &kube_core::Status) -> bool {
    status.code == 410 || matches!(status.reason.as_str(), "Expired" | "Gone")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use tokio_util::sync::CancellationToken;

    use kube_client::api::WatchEvent;

    use super::list_watch::script::{Asked, Script, api_error, cm_at, gone, page};
    use super::{Change, Config, Line, Reflector, settle};

    #[tokio::test(start_paused = true)]
    async fn a_failed_streaming_list_falls_back_to_a_paginated_list_in_the_same_round() {
        let script = Arc::new(Script::default());
        // A proxy or aggregated server that fails only streaming lists, with a 500.
        script
            .watch(api_error(500, "InternalError"))
            .list(page(&["a"], "3", None))
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, Config::default(), 3).await;
        // No backoff first: the list follows the failed streaming list at once. (Without the
        // fallback the reflector would back off, retry the stream and never list.)
        let gap = script.gap(0, 1);
        assert!(gap < Duration::from_millis(800), "no backoff: {gap:?}");
        let asked = script.asked.lock().clone();
        assert!(
            matches!(
                &asked[..],
                [
                    Asked::Watch { initial: true, .. },
                    Asked::List(_),
                    Asked::Watch { initial: false, rv },
                ] if rv == "3"
            ),
            "{asked:#?}"
        );
        assert_eq!(status.lists(), 1);
        assert_eq!(store.list().len(), 1);
        assert!(status.last_error().is_some_and(|e| e.contains("streaming list")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_the_server_refuses_relists_after_the_backoff_but_a_429_resumes() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            .watch(api_error(429, "TooManyRequests"))
            .watch(api_error(403, "Forbidden"))
            .list(page(&["a", "b"], "5", None))
            .watch(Ok(vec![WatchEvent::Error(
                kube_core::Status::failure("etcd is unhappy", "InternalError")
                    .with_code(500)
                    .boxed(),
            )]))
            .list(page(&["a", "b", "c"], "8", None))
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 7).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(
                &asked[..],
                [
                    Asked::List(_),
                    Asked::Watch { rv: a, .. },
                    Asked::Watch { rv: b, .. },
                    Asked::List(_),
                    Asked::Watch { rv: c, .. },
                    Asked::List(_),
                    Asked::Watch { rv: d, .. },
                ] if a == "3" && b == "3" && c == "5" && d == "8"
            ),
            "{asked:#?}"
        );
        // Every refusal waited out the backoff first.
        for (from, to) in [(1, 2), (2, 3), (4, 5)] {
            assert!(script.gap(from, to) >= Duration::from_millis(400), "{from}->{to}");
        }
        assert_eq!(status.lists(), 3);
        assert_eq!(store.list().len(), 3);
        assert!(status.last_error().is_some_and(|e| e.contains("etcd is unhappy")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_keeps_what_it_could_not_decode_rather_than_delete_it() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a", "b", "c"], "3", None))
            .watch(Ok(vec![gone()]))
            // `b` is still on the server but no longer decodes; `c` is gone.
            .list_with_undecodable(page(&["a"], "7", None), &["b"])
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 4).await;
        let mut names: Vec<_> = store.list().iter().filter_map(|o| o.metadata.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(status.undecodable(), 1);
        assert!(status.last_error().is_some_and(|e| e.contains("b did not decode")));
    }

    /// An event whose object did not decode, with what the server sent of it.
    fn skipped(name: &str, rv: &str, event: Change) -> kube_client::Result<Line<ConfigMap>> {
        Ok(Line::Skipped(super::list_watch::Undecodable {
            key: name.to_string(),
            error: "scripted".into(),
            resource_version: Some(rv.to_string()),
            event: Some(event),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_deleted_in_a_state_that_does_not_decode_leaves_the_cache_all_the_same() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a", "b", "c"], "3", None))
            // a changes into a state that does not decode (its cached state stays), then is
            // deleted in that state; b is deleted in a state that does not decode.
            .watch_lines(vec![
                skipped("a", "4", Change::Modified),
                skipped("a", "5", Change::Deleted),
                skipped("b", "6", Change::Deleted),
            ])
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 3).await;
        // The undecodable events moved the resume point: no list, and a resume from 6 (but the
        // watch never ended here).
        assert_eq!(status.last_resource_version(), "6");
        let names: Vec<_> = store.list().iter().filter_map(|c| c.metadata.name.clone()).collect();
        assert_eq!(
            names,
            ["c"],
            "a and b are gone, though their final states did not decode"
        );
        assert_eq!(status.undecodable(), 3);
        assert!(status.last_error().is_some_and(|e| e.contains("b was deleted")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_list_drops_an_object_deleted_in_a_state_that_does_not_decode() {
        let script = Arc::new(Script::default());
        script.watch_lines(vec![
            Ok(Line::Event(WatchEvent::Added(cm_at("a", "3")))),
            skipped("b", "4", Change::Added),
            Ok(Line::Event(WatchEvent::Added(cm_at("c", "5")))),
            skipped("a", "6", Change::Deleted),
            Ok(Line::Event(initial_events_end("6"))),
        ]);
        let (status, store) = run_until(&script, Config::default(), 2).await;
        let names: Vec<_> = store.list().iter().filter_map(|c| c.metadata.name.clone()).collect();
        assert_eq!(
            names,
            ["c"],
            "a deleted; b never decoded and the empty sink holds none of it"
        );
        assert_eq!(status.undecodable(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_that_is_no_event_fails_the_watch_which_resumes() {
        let script = Arc::new(Script::default());
        let garbage = serde_json::from_str::<ConfigMap>("<html>").expect_err("not JSON");
        script
            .list(page(&["a"], "3", None))
            .watch_lines(vec![
                Ok(Line::Event(WatchEvent::Added(cm_at("b", "5")))),
                Err(kube_client::Error::SerdeError(garbage)),
            ])
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 3).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(&asked[..], [Asked::List(_), Asked::Watch { .. }, Asked::Watch { rv, .. }] if rv == "5"),
            "{asked:#?}"
        );
        assert_eq!(store.list().len(), 2);
        assert_eq!(status.undecodable(), 0, "not an object that did not decode");
        assert_eq!(status.lists(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_list_without_a_resource_version_adds_do_not_move_the_resume_point() {
        let script = Arc::new(Script::default());
        // The watch from "" starts with an ADDED event per object, in no order. A watch that
        // ends before it learnt a resourceVersion leads to a list, not to another watch from "".
        script
            .list(page(&["a"], "", None))
            .closing_watch(vec![
                WatchEvent::Added(cm_at("b", "7")),
                WatchEvent::Added(cm_at("c", "5")),
            ])
            .list(page(&["a", "b", "c"], "", None))
            .closing_watch(vec![
                WatchEvent::Added(cm_at("b", "7")),
                WatchEvent::Modified(cm_at("c", "9")),
                WatchEvent::Added(cm_at("d", "10")),
            ])
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 5).await;
        let asked = script.asked.lock().clone();
        let rvs: Vec<_> = asked
            .iter()
            .filter_map(|a| match a {
                Asked::Watch { rv, .. } => Some(rv.clone()),
                Asked::List(_) => None,
            })
            .collect();
        assert_eq!(rvs, ["", "", "10"]);
        assert_eq!(asked.len() - rvs.len(), 2, "two lists: {asked:#?}");
        assert_eq!(status.last_resource_version(), "10");
        assert_eq!(store.list().len(), 4);
    }

    /// Runs a reflector over `script` until it has made `calls` calls (or a virtual minute has
    /// passed), then stops it.
    async fn run_until(
        script: &Arc<Script>,
        config: Config,
        calls: usize,
    ) -> (super::Status, crate::store::Store<ConfigMap>) {
        let (store, writer) = crate::store::store::<ConfigMap>();
        let reflector = Reflector::new(script.list_watch(), writer, config);
        let status = reflector.status();
        let stop = CancellationToken::new();
        let run = tokio::spawn(reflector.run(stop.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while script.asked.lock().len() < calls && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        run.await.expect("the reflector stops");
        (status, store)
    }

    fn paged() -> Config {
        Config::default().streaming_lists(false)
    }

    /// A read error on the watch's connection.
    fn broken() -> kube_client::Result<Line<ConfigMap>> {
        Err(kube_client::Error::ReadEvents(std::io::Error::other(
            "error reading a body from connection: connection reset by peer",
        )))
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_whose_connection_breaks_is_resumed_at_once_as_client_go_resumes_it() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            // A server restart: events, then the connection breaks mid-stream.
            .watch_lines(vec![Ok(Line::Event(WatchEvent::Added(cm_at("b", "4")))), broken()])
            .watch(Ok(Vec::new()));
        let (status, store) = run_until(&script, paged(), 3).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(&asked[..], [Asked::List(_), Asked::Watch { .. }, Asked::Watch { rv, .. }] if rv == "4"),
            "{asked:#?}"
        );
        let gap = script.gap(1, 2);
        assert!(gap < Duration::from_millis(800), "no backoff: {gap:?}");
        assert_eq!((status.lists(), store.list().len()), (1, 2));
        assert_eq!(status.last_error(), None, "not a failure");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_whose_connection_breaks_at_once_waits_out_the_backoff() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            .watch_lines(vec![broken()])
            .watch(Ok(Vec::new()));
        let (status, _) = run_until(&script, paged(), 3).await;
        assert!(script.gap(1, 2) >= Duration::from_millis(400), "backed off");
        assert_eq!(status.lists(), 1, "resumed, not relisted");
        assert!(status.last_error().is_some_and(|e| e.contains("very short watch")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_closes_at_once_without_an_event_waits_out_the_backoff_then_resumes() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            .closing_watch(Vec::new())
            .watch(Ok(Vec::new()));
        let (status, _) = run_until(&script, paged(), 3).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(&asked[..], [Asked::List(_), Asked::Watch { rv: a, .. }, Asked::Watch { rv: b, .. }] if a == "3" && b == "3"),
            "resumed without a relist: {asked:#?}"
        );
        let gap = script.gap(1, 2);
        assert!(gap >= Duration::from_millis(800), "backed off: {gap:?}");
        assert!(status.last_error().is_some_and(|e| e.contains("very short watch")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_ends_after_events_is_opened_again_at_once_from_the_last_version() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            .closing_watch(vec![WatchEvent::Modified(cm_at("a", "4"))])
            .watch(Ok(Vec::new()));
        run_until(&script, paged(), 3).await;
        let asked = script.asked.lock().clone();
        assert!(matches!(&asked[2], Asked::Watch { rv, .. } if rv == "4"), "{asked:#?}");
        let gap = script.gap(1, 2);
        assert!(gap < Duration::from_millis(800), "no backoff: {gap:?}");
    }

    /// The events logged while it is the thread's subscriber: level and rendered fields.
    #[derive(Clone, Default)]
    struct Logs(Arc<parking_lot::Mutex<Vec<(tracing::Level, String)>>>);

    impl tracing::Subscriber for Logs {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().push((*event.metadata().level(), text.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test(start_paused = true)]
    async fn each_list_and_each_failed_round_is_logged_with_its_resource_and_cause() {
        let logs = Logs::default();
        // While only one subscriber is registered, tracing decides whether a log line is wanted
        // by asking the subscriber of the thread that first reaches it; a line first reached by
        // another test's thread would be turned off for good. With a second one registered it
        // asks every registered subscriber.
        let _second = tracing::Dispatch::new(Logs::default());
        let _guard = tracing::subscriber::set_default(logs.clone());
        let script = Arc::new(Script::default());
        script
            .list(api_error(403, "Forbidden"))
            .list(page(&["a"], "3", None))
            .closing_watch(Vec::new())
            .watch(Ok(vec![gone()]))
            .list(page(&["a", "b"], "9", None))
            .watch(Ok(Vec::new()));
        run_until(&script, paged(), 6).await;
        let logs = logs.0.lock().clone();
        let seen: Vec<(tracing::Level, &str)> = logs
            .iter()
            .filter(|(level, text)| *level != tracing::Level::TRACE && text.contains("resource=/api/v1/configmaps"))
            .map(|(level, text)| {
                let cause = [
                    "scripted (403)",
                    "objects=1",
                    "very short watch",
                    "410 Gone",
                    "objects=2",
                ]
                .into_iter()
                .find(|c| text.contains(c))
                .unwrap_or(text);
                (*level, cause)
            })
            .collect();
        use tracing::Level;
        assert_eq!(
            seen,
            [
                (Level::ERROR, "scripted (403)"),
                (Level::DEBUG, "objects=1"),
                (Level::WARN, "very short watch"),
                (Level::DEBUG, "410 Gone"),
                (Level::DEBUG, "objects=2"),
            ],
            "{logs:#?}"
        );
        let warn = logs.iter().find(|(level, _)| *level == Level::WARN).expect("a warning");
        assert!(
            warn.1.contains("resource_version=3"),
            "the watch resumes from 3: {}",
            warn.1
        );
    }

    /// The bookmark that ends a streaming list's initial events, at `rv`.
    fn initial_events_end(rv: &str) -> WatchEvent<ConfigMap> {
        WatchEvent::Bookmark(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "resourceVersion": rv, "annotations": { "k8s.io/initial-events-end": "true" } }
            }))
            .expect("a bookmark"),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn changes_a_streaming_list_sends_before_its_end_bookmark_apply_to_the_list() {
        let script = Arc::new(Script::default());
        let mut changed = cm_at("a", "7");
        changed.data = Some([("k".to_string(), "v".to_string())].into());
        script.watch(Ok(vec![
            WatchEvent::Added(cm_at("a", "3")),
            WatchEvent::Added(cm_at("b", "4")),
            WatchEvent::Added(cm_at("c", "5")),
            // Changes after the snapshot, before the bookmark: b deleted, a changed, d created,
            // c deleted and created again.
            WatchEvent::Deleted(cm_at("b", "6")),
            WatchEvent::Modified(changed),
            WatchEvent::Added(cm_at("d", "8")),
            WatchEvent::Deleted(cm_at("c", "9")),
            WatchEvent::Added(cm_at("c", "10")),
            initial_events_end("10"),
        ]));
        let (status, store) = run_until(&script, Config::default(), 2).await;
        assert_eq!(status.lists(), 1);
        assert_eq!(status.last_resource_version(), "10");
        let mut cached: Vec<(String, String)> = store
            .list()
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    c.metadata.resource_version.clone().unwrap_or_default(),
                )
            })
            .collect();
        cached.sort();
        let want = [("a", "7"), ("c", "10"), ("d", "8")].map(|(n, rv)| (n.to_string(), rv.to_string()));
        assert_eq!(cached, want, "b's delete is not lost, a holds its change");
        assert!(store.get_by_key("a").and_then(|a| a.data.clone()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_after_410_waits_out_the_backoff() {
        let script = Arc::new(Script::default());
        script
            .list(page(&["a"], "3", None))
            .watch(Ok(vec![gone()]))
            .list(page(&["a"], "9", None))
            .watch(Ok(Vec::new()));
        let (status, _) = run_until(&script, paged(), 4).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(&asked[..], [Asked::List(_), Asked::Watch { .. }, Asked::List(_), Asked::Watch { rv, .. }] if rv == "9"),
            "{asked:#?}"
        );
        let gap = script.gap(1, 2);
        assert!(gap >= Duration::from_millis(800), "backed off: {gap:?}");
        assert_eq!(status.lists(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_list_that_closes_early_falls_back_for_that_round_only() {
        let script = Arc::new(Script::default());
        script
            .closing_watch(Vec::new())
            .list(page(&["a"], "3", None))
            .watch(Ok(vec![gone()]))
            .watch(Ok(Vec::new()));
        run_until(&script, Config::default(), 4).await;
        let asked = script.asked.lock().clone();
        assert!(
            matches!(
                &asked[..],
                [
                    Asked::Watch { initial: true, .. },
                    Asked::List(_),
                    Asked::Watch { initial: false, .. },
                    Asked::Watch { initial: true, .. },
                ]
            ),
            "streaming lists are tried again in the next round: {asked:#?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_error_without_a_code_still_relists() {
        let script = Arc::new(Script::default());
        let mut expired = kube_client::core::Status::failure("too old resource version", "Expired");
        expired.code = 0;
        script
            .list(page(&["a"], "3", None))
            .watch(Ok(vec![WatchEvent::Error(expired.boxed())]))
            .list(page(&["a"], "9", None));
        let (status, _) = run_until(&script, paged(), 3).await;
        assert!(matches!(script.asked.lock()[2], Asked::List(_)));
        assert_eq!(status.lists(), 2);
    }

    #[test]
    fn settled_objects_keep_no_spare_room_in_their_metadata_lists() {
        // Decoded from text, as a response body is: a sequence's length is not known up front.
        let text = serde_json::json!({
            "metadata": {
                "name": "cm",
                "finalizers": ["example.com/keep"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:data": {}}}],
            },
        })
        .to_string();
        let decoded: ConfigMap = serde_json::from_str(&text).unwrap();
        let spare = |o: &ConfigMap| {
            let m = &o.metadata;
            let room = |cap: usize, len: usize| cap - len;
            let fields = m.managed_fields.as_ref().map_or(0, |v| room(v.capacity(), v.len()));
            let owners = m.owner_references.as_ref().map_or(0, |v| room(v.capacity(), v.len()));
            let finalizers = m.finalizers.as_ref().map_or(0, |v| room(v.capacity(), v.len()));
            (fields, owners, finalizers)
        };
        assert_ne!(spare(&decoded), (0, 0, 0), "serde leaves room to grow");
        let settled = settle(decoded.clone());
        assert_eq!(spare(&settled), (0, 0, 0));
        assert_eq!(settled, decoded, "only capacity changes");
    }
}
