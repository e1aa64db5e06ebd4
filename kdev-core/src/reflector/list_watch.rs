//! `ListWatch`: list and watch calls on an `Api<K>` with fixed selectors
//! (client-go's [`tools/cache/listwatch.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/listwatch.go)).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use kube_client::api::{ListParams, PartialObjectMeta, WatchEvent, WatchParams};
use kube_client::{Api, Client};
use kube_core::Resource;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A watch stream as `ListWatch` hands it out.
pub type WatchStream<K> = BoxStream<'static, kube_client::Result<WatchEvent<K>>>;

/// An object the server sent that did not decode as the `ListWatch`'s type (a custom resource
/// whose schema changed, say). It is skipped, and reported, so that one such object cannot
/// keep the whole list, and with it the cache, from ever loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undecodable {
    /// `namespace/name`, or `name`, as far as the object's metadata could be read.
    pub(crate) key: String,
    /// Why it did not decode.
    pub(crate) error: String,
    /// Its resourceVersion, when its metadata could be read.
    pub(crate) resource_version: Option<String>,
    /// The watch event that carried it; `None` for an item of a list.
    pub(crate) event: Option<Change>,
}

/// The kind of watch event that carried an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One line of a watch: an event, or an event whose object did not decode as the watch's type.
pub(crate) enum Line<K> {
    Event(WatchEvent<K>),
    Skipped(Undecodable),
}

/// A watch, line by line (see [`Line`]).
pub(crate) type Lines<K> = futures::stream::BoxStream<'static, kube_client::Result<Line<K>>>;

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.event {
            Some(Change::Deleted) => write!(
                f,
                "{} was deleted, but its final state did not decode (the last state that did is \
                 deleted): {}",
                self.key, self.error
            ),
            _ => write!(f, "{} did not decode and is skipped: {}", self.key, self.error),
        }
    }
}

/// One page of a list, its items decoded one at a time.
pub(crate) struct Page<K> {
    pub(crate) items: Vec<K>,
    pub(crate) resource_version: String,
    pub(crate) continue_: Option<String>,
    pub(crate) undecodable: Vec<Undecodable>,
}

/// A list response with each item still raw JSON, borrowed from the response body.
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(default, borrow, deserialize_with = "null_as_empty")]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct RawListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<&'de RawValue>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// What an undecodable object's key and resourceVersion are, as far as its metadata can be read.
fn identity(raw: &str) -> (String, Option<String>) {
    #[derive(Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default, rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Keyed {
        #[serde(default)]
        metadata: Meta,
    }
    match serde_json::from_str::<Keyed>(raw) {
        Ok(Keyed {
            metadata:
                Meta {
                    namespace,
                    name: Some(name),
                    resource_version,
                },
        }) => (crate::store::key_from(namespace.as_deref(), &name), resource_version),
        _ => ("an object with no readable name".to_string(), None),
    }
}

/// Decodes one object, or says which object did not decode and why.
fn decode_object<K: DeserializeOwned>(raw: &str, event: Option<Change>) -> Result<K, Undecodable> {
    serde_json::from_str::<K>(raw).map_err(|e| {
        let (key, resource_version) = identity(raw);
        Undecodable {
            key,
            error: e.to_string(),
            resource_version,
            event,
        }
    })
}

impl RawList<'_> {
    /// Decodes the items one by one, setting aside those that do not decode as `K`.
    fn decode<K: DeserializeOwned>(self) -> Page<K> {
        let mut items = Vec::with_capacity(self.items.len());
        let mut undecodable = Vec::new();
        for raw in self.items {
            match decode_object(raw.get(), None) {
                Ok(obj) => items.push(obj),
                Err(u) => undecodable.push(u),
            }
        }
        Page {
            items,
            resource_version: self.metadata.resource_version.unwrap_or_default(),
            continue_: self.metadata.continue_,
            undecodable,
        }
    }
}

/// Sends a list request and decodes its answer item by item.
async fn list_raw<K: DeserializeOwned>(
    client: Client,
    request: Result<http::Request<Vec<u8>>, kube_core::request::Error>,
    name: &'static str,
) -> kube_client::Result<Page<K>> {
    let mut request = request.map_err(kube_client::Error::BuildRequest)?;
    // What kube-client's own calls are named in its traces.
    request.extensions_mut().insert(name);
    let text = client.request_text(request).await?;
    let raw: RawList<'_> = serde_json::from_str(&text).map_err(kube_client::Error::SerdeError)?;
    Ok(raw.decode())
}

/// One line of a watch stream, its object still raw: `type` and `object` may come in either
/// order.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

/// Decodes one line of a watch stream; an event whose object does not decode as `K` is a
/// [`Line::Skipped`]. A line that is no event at all is an error (a `Status` one when it is a
/// status).
fn decode_event<K: DeserializeOwned>(line: &str) -> kube_client::Result<Line<K>> {
    let event: RawEvent<'_> = match serde_json::from_str(line) {
        Ok(event) => event,
        Err(e) => {
            return Err(match serde_json::from_str::<kube_core::Status>(line) {
                Ok(status) if status.code != 0 => kube_client::Error::Api(status.boxed()),
                _ => kube_client::Error::SerdeError(e),
            });
        }
    };
    let object = event.object.get();
    let decoded = |wrap: fn(K) -> WatchEvent<K>, change| match decode_object::<K>(object, Some(change)) {
        Ok(obj) => Line::Event(wrap(obj)),
        Err(u) => Line::Skipped(u),
    };
    Ok(match event.kind.as_ref() {
        "ADDED" => decoded(WatchEvent::Added, Change::Added),
        "MODIFIED" => decoded(WatchEvent::Modified, Change::Modified),
        "DELETED" => decoded(WatchEvent::Deleted, Change::Deleted),
        "BOOKMARK" => Line::Event(WatchEvent::Bookmark(
            serde_json::from_str(object).map_err(kube_client::Error::SerdeError)?,
        )),
        "ERROR" => Line::Event(WatchEvent::Error(
            serde_json::from_str::<kube_core::Status>(object)
                .map_err(kube_client::Error::SerdeError)?
                .boxed(),
        )),
        other => {
            return Err(kube_client::Error::SerdeError(serde::de::Error::custom(format!(
                "a watch event of unknown type {other:?}"
            ))));
        }
    })
}

/// Opens a watch and decodes it line by line, each event's object on its own: an object that
/// does not decode is a [`Line::Skipped`] and the stream goes on.
async fn watch_raw<K: DeserializeOwned + Clone + Send + 'static>(
    client: Client,
    request: Result<http::Request<Vec<u8>>, kube_core::request::Error>,
    name: &'static str,
) -> kube_client::Result<Lines<K>> {
    let mut request = request.map_err(kube_client::Error::BuildRequest)?;
    request.extensions_mut().insert(name);
    // As kube-client does for its watches: a gzipped watch stream is one gzip member per
    // event, which its decompression layer does not read past the first.
    request
        .headers_mut()
        .entry(http::header::ACCEPT_ENCODING)
        .or_insert(http::HeaderValue::from_static("identity"));
    let body = client.request_stream(request).await?;
    let lines = futures::AsyncBufReadExt::lines(body);
    Ok(lines
        .filter_map(move |line| {
            let next = match line {
                Ok(line) if line.trim().is_empty() => None,
                Ok(line) => Some(decode_event(&line)),
                // The connection ended mid-line: the end of the watch, to be resumed.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                Err(e) => Some(Err(kube_client::Error::ReadEvents(e))),
            };
            futures::future::ready(next)
        })
        .boxed())
}

/// The two calls a `ListWatch` makes, over full objects or over metadata only.
pub(crate) trait Calls<K: Clone>: Send + Sync {
    fn list(&self, lp: ListParams) -> BoxFuture<'static, kube_client::Result<Page<K>>>;
    fn watch(&self, wp: WatchParams, rv: String) -> BoxFuture<'static, kube_client::Result<Lines<K>>>;
}

/// A list of what `api` addresses: full objects, or with `metadata` only their metadata
/// (`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`).
fn list_call<T: DeserializeOwned + 'static>(
    at: &Endpoint,
    lp: &ListParams,
    metadata: bool,
) -> BoxFuture<'static, kube_client::Result<Page<T>>> {
    let request = kube_core::Request::new(&at.url);
    let (request, name) = if metadata {
        (request.list_metadata(lp), "list_metadata")
    } else {
        (request.list(lp), "list")
    };
    Box::pin(list_raw(at.client.clone(), request, name))
}

/// A watch of what `api` addresses, full objects or with `metadata` only their metadata.
fn watch_call<T: DeserializeOwned + Clone + Send + 'static>(
    at: &Endpoint,
    wp: &WatchParams,
    rv: &str,
    metadata: bool,
) -> BoxFuture<'static, kube_client::Result<Lines<T>>> {
    let request = kube_core::Request::new(&at.url);
    let (request, name) = if metadata {
        (request.watch_metadata(wp, rv), "watch_metadata")
    } else {
        (request.watch(wp, rv), "watch")
    };
    Box::pin(watch_raw(at.client.clone(), request, name))
}

/// Where the list and watch requests go: a client and the collection's path.
struct Endpoint {
    client: Client,
    url: String,
}

impl<K: Resource> From<Api<K>> for Endpoint {
    fn from(api: Api<K>) -> Self {
        let url = api.resource_url().to_string();
        Endpoint {
            client: api.into_client(),
            url,
        }
    }
}

/// Full objects (or metadata only, when `K` asks for it, as `Api<PartialObjectMeta<_>>` does).
struct Full<K>(Endpoint, std::marker::PhantomData<fn() -> K>);

impl<K> Calls<K> for Full<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn list(&self, lp: ListParams) -> BoxFuture<'static, kube_client::Result<Page<K>>> {
        list_call(&self.0, &lp, K::metadata_api())
    }
    fn watch(&self, wp: WatchParams, rv: String) -> BoxFuture<'static, kube_client::Result<Lines<K>>> {
        watch_call(&self.0, &wp, &rv, K::metadata_api())
    }
}

/// Metadata only: the server answers `PartialObjectMetadata(List)`.
struct Metadata<K>(Endpoint, std::marker::PhantomData<fn() -> K>);

impl<K> Calls<PartialObjectMeta<K>> for Metadata<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn list(&self, lp: ListParams) -> BoxFuture<'static, kube_client::Result<Page<PartialObjectMeta<K>>>> {
        list_call(&self.0, &lp, true)
    }
    fn watch(
        &self,
        wp: WatchParams,
        rv: String,
    ) -> BoxFuture<'static, kube_client::Result<Lines<PartialObjectMeta<K>>>> {
        watch_call(&self.0, &wp, &rv, true)
    }
}

/// The list and watch calls of one resource, in one namespace or all, with optional label and
/// field selectors. Works for typed k8s-openapi objects, `DynamicObject` (an `Api` made with an
/// `ApiResource`) and, through [`ListWatch::metadata`], `PartialObjectMeta<K>`: the server then
/// sends only each object's metadata, which is what a controller that needs only names, labels
/// or owner references should cache (client-go's `metadatainformer`).
#[derive(Clone)]
pub struct ListWatch<K> {
    calls: Arc<dyn Calls<K>>,
    url: Arc<str>,
    metadata: bool,
    labels: Option<String>,
    fields: Option<String>,
    request_timeout: Duration,
}

/// How long a list page, or a watch's response headers, may take by default: twice
/// kube-apiserver's own `--request-timeout` (1 minute) for requests that are not watches.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl<K> Debug for ListWatch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListWatch")
            .field("url", &self.url)
            .field("metadata", &self.metadata)
            .field("labels", &self.labels)
            .field("fields", &self.fields)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What the list and watch requests ask for, as the reflector's log lines name it: the path,
/// then the selectors and whether only metadata is asked for, e.g.
/// `/api/v1/namespaces/default/configmaps?labelSelector=app=web (metadata only)`.
impl<K> std::fmt::Display for ListWatch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)?;
        let selectors = [("labelSelector", &self.labels), ("fieldSelector", &self.fields)];
        let mut sep = '?';
        for (name, value) in selectors {
            if let Some(value) = value {
                write!(f, "{sep}{name}={value}")?;
                sep = '&';
            }
        }
        if self.metadata {
            f.write_str(" (metadata only)")?;
        }
        Ok(())
    }
}

impl<K> ListWatch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Lists and watches everything `api` addresses.
    pub fn new(api: Api<K>) -> Self {
        Self::at(api.into())
    }

    /// Lists and watches the collection at `at`.
    fn at(at: Endpoint) -> Self {
        let url = at.url.as_str().into();
        Self::with_calls(Arc::new(Full(at, std::marker::PhantomData)), url, false)
    }

    /// Lists and watches everything of `K` in `namespace`, or everywhere, for any `K` whatever
    /// its scope (`Api::namespaced` wants a namespaced `K` known as such at compile time).
    pub(crate) fn in_namespace(client: Client, namespace: Option<&str>) -> Self
    where
        K: Resource<DynamicType = ()>,
    {
        Self::at(Endpoint {
            client,
            url: K::url_path(&(), namespace),
        })
    }

    /// Lists and watches the metadata of everything `api` addresses: the objects arrive as
    /// `PartialObjectMeta<K>` (kind `PartialObjectMetadata`, apiVersion `meta.k8s.io/v1`)
    /// and carry no spec or status.
    ///
    /// ```no_run
    /// # fn f(client: kube_client::Client) {
    /// use k8s_openapi::api::core::v1::Secret;
    /// use kdev_core::reflector::ListWatch;
    ///
    /// // Names, labels and owners of every Secret, never their data.
    /// let lw = ListWatch::metadata(kube_client::Api::<Secret>::all(client));
    /// # }
    /// ```
    pub fn metadata(api: Api<K>) -> ListWatch<PartialObjectMeta<K>> {
        let url = api.resource_url().into();
        ListWatch::with_calls(Arc::new(Metadata(api.into(), std::marker::PhantomData)), url, true)
    }
}

impl<K> ListWatch<K>
where
    K: Clone + Send + Sync + 'static,
{
    pub(crate) fn with_calls(calls: Arc<dyn Calls<K>>, url: Arc<str>, metadata: bool) -> Self {
        ListWatch {
            calls,
            url,
            metadata,
            labels: None,
            fields: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// How long one list page, or the response to a watch request, may take before the call
    /// fails with a timeout (default [`DEFAULT_REQUEST_TIMEOUT`]). kube-client sets no read
    /// timeout, so without this bound a request sent on a pooled connection whose peer died
    /// silently would wait for the kernel to give up on it, about 15 minutes on Linux. An open
    /// watch's events are bounded by the reflector's idle timeout instead.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// `call`, failing with a timeout error after `request_timeout`.
    async fn bounded<T>(&self, what: &str, call: BoxFuture<'static, kube_client::Result<T>>) -> kube_client::Result<T> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(kube_client::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to the {what} request within {:?}", self.request_timeout),
            )))),
        }
    }

    /// Only objects matching a label selector (`app=web,tier in (a,b)`).
    #[must_use]
    pub fn labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string()).filter(|s| !s.is_empty());
        self
    }

    /// Only objects matching a field selector (`spec.nodeName=node-a`).
    #[must_use]
    pub fn fields(mut self, selector: &str) -> Self {
        self.fields = Some(selector.to_string()).filter(|s| !s.is_empty());
        self
    }

    /// The path the list and watch requests go to, e.g. `/api/v1/namespaces/default/configmaps`
    /// (kube-client's `Api::resource_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn list_params(&self) -> ListParams {
        let mut lp = ListParams::default();
        if let Some(l) = &self.labels {
            lp = lp.labels(l);
        }
        if let Some(f) = &self.fields {
            lp = lp.fields(f);
        }
        lp
    }

    fn watch_params(&self) -> WatchParams {
        let mut wp = WatchParams::default();
        if let Some(l) = &self.labels {
            wp = wp.labels(l);
        }
        if let Some(f) = &self.fields {
            wp = wp.fields(f);
        }
        wp
    }

    /// Lists everything, `page_size` objects a page, and returns the items with the list's
    /// resourceVersion.
    ///
    /// The list is a consistent read (no resourceVersion), as kube-runtime's watcher makes it
    /// by default, and not client-go's `resourceVersion=0`: kube-apiserver's watch cache
    /// ignores `limit` at version 0 and sends the whole collection in one body, which the
    /// client would then hold while decoding all of it. Paged, each page is decoded and handed
    /// on before the next is asked for. A consistent list never goes back in time, even
    /// against another API server of an HA control plane, and recent servers answer it from
    /// the watch cache too (KEP-2340, consistent reads from cache). When a continue token has
    /// expired (410) the pages so far are dropped and the list is asked again whole, in one
    /// unpaged request, as client-go's pager does (`FullListIfExpired`): starting over page by
    /// page could expire again, forever, on a collection that takes longer to page through
    /// than the server keeps its history.
    ///
    /// # Errors
    /// The API error of a page that failed.
    pub async fn list_all(&self, page_size: u32) -> kube_client::Result<(Vec<K>, String)> {
        self.list_all_into(page_size, |o| o).await
    }

    /// [`list_all`](Self::list_all), passing each object through `each` as its page arrives, so
    /// that what is kept (e.g. an `Arc`, a transformed object) is all that the list holds.
    ///
    /// Each item is decoded on its own. One that does not decode as `K` (a custom resource
    /// whose schema moved on, say) is left out of the result and logged at error level, so
    /// that it cannot keep every other object from loading: the result can then lack objects
    /// the server has.
    ///
    /// # Errors
    /// The API error of a page that failed.
    pub async fn list_all_into<T>(
        &self,
        page_size: u32,
        each: impl FnMut(K) -> T,
    ) -> kube_client::Result<(Vec<T>, String)> {
        let (items, rv, undecodable) = self.list_pages(page_size, each).await?;
        for skipped in undecodable {
            tracing::error!(%skipped, "a listed object");
        }
        Ok((items, rv))
    }

    /// [`list_all_into`](Self::list_all_into), also returning the objects that did not decode.
    pub(crate) async fn list_pages<T>(
        &self,
        page_size: u32,
        mut each: impl FnMut(K) -> T,
    ) -> kube_client::Result<(Vec<T>, String, Vec<Undecodable>)> {
        let mut items = Vec::new();
        let mut undecodable = Vec::new();
        let mut lp = self.list_params().limit(page_size);
        loop {
            let page = match self.bounded("list", self.calls.list(lp.clone())).await {
                Ok(p) => p,
                Err(kube_client::Error::Api(e)) if super::is_gone(&e) && lp.continue_token.is_some() => {
                    items.clear();
                    undecodable.clear();
                    lp = self.list_params();
                    self.bounded("list", self.calls.list(lp.clone())).await?
                }
                Err(e) => return Err(e),
            };
            tracing::trace!(
                target: "kdev_core::reflector",
                resource = %self,
                objects = page.items.len(),
                more = page.continue_.as_ref().is_some_and(|c| !c.is_empty()),
                "a list page"
            );
            undecodable.extend(page.undecodable);
            items.extend(page.items.into_iter().map(&mut each));
            match page.continue_.filter(|c| !c.is_empty()) {
                Some(token) if lp.limit.is_some() => lp = self.list_params().limit(page_size).continue_token(&token),
                _ => return Ok((items, page.resource_version, undecodable)),
            }
        }
    }

    /// Watches from `rv` with bookmarks, for at most `timeout_secs` (the server ends the watch).
    /// An event whose object does not decode as `K` is left out of the stream and logged at
    /// error level.
    ///
    /// # Errors
    /// The API error of the watch request (410 when `rv` is too old).
    pub async fn watch(&self, rv: &str, timeout_secs: u32) -> kube_client::Result<WatchStream<K>> {
        Ok(events(self.watch_lines(rv, timeout_secs).await?))
    }

    /// [`watch`](Self::watch), with the events whose object did not decode in the stream.
    pub(crate) async fn watch_lines(&self, rv: &str, timeout_secs: u32) -> kube_client::Result<Lines<K>> {
        let call = self
            .calls
            .watch(self.watch_params().timeout(timeout_secs), rv.to_string());
        self.bounded("watch", call).await
    }

    /// A streaming list: a watch that starts with the current objects as ADDED events and a
    /// bookmark annotated `k8s.io/initial-events-end` (`sendInitialEvents=true`). An object
    /// that does not decode as `K` is left out and logged at error level.
    ///
    /// # Errors
    /// The API error when the server refuses streaming lists.
    pub async fn watch_initial(&self, timeout_secs: u32) -> kube_client::Result<WatchStream<K>> {
        Ok(events(self.watch_initial_lines(timeout_secs).await?))
    }

    /// [`watch_initial`](Self::watch_initial), with the events whose object did not decode in
    /// the stream.
    pub(crate) async fn watch_initial_lines(&self, timeout_secs: u32) -> kube_client::Result<Lines<K>> {
        let mut wp = self.watch_params().timeout(timeout_secs);
        wp.send_initial_events = true;
        wp.bookmarks = true;
        self.bounded("watch", self.calls.watch(wp, String::new())).await
    }
}

/// The events of a watch; each one whose object did not decode is logged and left out.
fn events<K: Send + 'static>(lines: Lines<K>) -> WatchStream<K> {
    lines
        .filter_map(|line| {
            futures::future::ready(match line {
                Ok(Line::Event(event)) => Some(Ok(event)),
                Ok(Line::Skipped(skipped)) => {
                    tracing::error!(%skipped, "an object in a watch");
                    None
                }
                Err(e) => Some(Err(e)),
            })
        })
        .boxed()
}

/// Scripted answers to a `ListWatch`'s calls, for tests of what a reflector asks and when.
#[cfg(test)]
pub(crate) mod script {
    use std::collections::VecDeque;

    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
    use kube_client::api::ObjectList;
    use kube_client::core::{Status, TypeMeta};
    use parking_lot::Mutex;

    use super::*;

    /// One call, as the script saw it.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Asked {
        /// A list: its continue token, resourceVersion and limit.
        List(ListParams),
        /// A watch: whether it was a streaming list, and its resourceVersion.
        Watch { initial: bool, rv: String },
    }

    /// A scripted watch: its events, and whether it then closes or stays open.
    type ScriptedWatch = (kube_client::Result<Vec<kube_client::Result<Line<ConfigMap>>>>, bool);

    /// A scripted list page: its answer, and keys of objects on it that did not decode.
    type ScriptedList = (kube_client::Result<ObjectList<ConfigMap>>, Vec<String>);

    /// Answers lists and watches in order and records what was asked, and when (tokio's
    /// clock). A call with no answer left waits forever.
    #[derive(Default)]
    pub(crate) struct Script {
        lists: Mutex<VecDeque<ScriptedList>>,
        watches: Mutex<VecDeque<ScriptedWatch>>,
        pub(crate) asked: Mutex<Vec<Asked>>,
        pub(crate) asked_at: Mutex<Vec<tokio::time::Instant>>,
    }

    impl Script {
        pub(crate) fn list(&self, answer: kube_client::Result<ObjectList<ConfigMap>>) -> &Self {
            self.lists.lock().push_back((answer, Vec::new()));
            self
        }
        /// A list page on which the objects `undecodable` did not decode.
        pub(crate) fn list_with_undecodable(
            &self,
            answer: kube_client::Result<ObjectList<ConfigMap>>,
            undecodable: &[&str],
        ) -> &Self {
            let keys = undecodable.iter().map(|k| k.to_string()).collect();
            self.lists.lock().push_back((answer, keys));
            self
        }
        /// A watch that sends `events`, then stays open.
        pub(crate) fn watch(&self, answer: kube_client::Result<Vec<WatchEvent<ConfigMap>>>) -> &Self {
            self.watches.lock().push_back((
                answer.map(|events| events.into_iter().map(|e| Ok(Line::Event(e))).collect()),
                false,
            ));
            self
        }
        /// A watch that sends `items`, errors and objects that did not decode among them, then
        /// stays open.
        pub(crate) fn watch_lines(&self, items: Vec<kube_client::Result<Line<ConfigMap>>>) -> &Self {
            self.watches.lock().push_back((Ok(items), false));
            self
        }
        /// A watch that sends `events`, then closes (a server timeout, a dropped connection).
        pub(crate) fn closing_watch(&self, events: Vec<WatchEvent<ConfigMap>>) -> &Self {
            self.watches
                .lock()
                .push_back((Ok(events.into_iter().map(|e| Ok(Line::Event(e))).collect()), true));
            self
        }
        /// The time between call `from` and call `to` (tokio's clock).
        pub(crate) fn gap(&self, from: usize, to: usize) -> std::time::Duration {
            let at = self.asked_at.lock();
            at[to] - at[from]
        }
        pub(crate) fn list_watch(self: &Arc<Self>) -> ListWatch<ConfigMap> {
            ListWatch::with_calls(Arc::new(self.clone()), "/api/v1/configmaps".into(), false)
        }
    }

    impl Calls<ConfigMap> for Arc<Script> {
        fn list(&self, lp: ListParams) -> BoxFuture<'static, kube_client::Result<Page<ConfigMap>>> {
            self.asked.lock().push(Asked::List(lp));
            self.asked_at.lock().push(tokio::time::Instant::now());
            match self.lists.lock().pop_front() {
                Some((answer, undecodable)) => Box::pin(async move {
                    let list = answer?;
                    Ok(Page {
                        items: list.items,
                        resource_version: list.metadata.resource_version.unwrap_or_default(),
                        continue_: list.metadata.continue_,
                        undecodable: undecodable
                            .into_iter()
                            .map(|key| Undecodable {
                                key,
                                error: "scripted".into(),
                                resource_version: None,
                                event: None,
                            })
                            .collect(),
                    })
                }),
                None => Box::pin(futures::future::pending()),
            }
        }
        fn watch(&self, wp: WatchParams, rv: String) -> BoxFuture<'static, kube_client::Result<Lines<ConfigMap>>> {
            let initial = wp.send_initial_events;
            self.asked.lock().push(Asked::Watch { initial, rv });
            self.asked_at.lock().push(tokio::time::Instant::now());
            match self.watches.lock().pop_front() {
                Some((answer, closes)) => Box::pin(async move {
                    let events = futures::stream::iter(answer?);
                    Ok(if closes {
                        events.boxed()
                    } else {
                        events.chain(futures::stream::pending()).boxed()
                    })
                }),
                None => Box::pin(futures::future::pending()),
            }
        }
    }

    /// A ConfigMap named `name`.
    pub(crate) fn cm(name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.to_string());
        cm
    }

    /// A ConfigMap named `name` at resourceVersion `rv`.
    pub(crate) fn cm_at(name: &str, rv: &str) -> ConfigMap {
        let mut cm = cm(name);
        cm.metadata.resource_version = Some(rv.to_string());
        cm
    }

    /// A list page of ConfigMaps named `names`.
    pub(crate) fn page(names: &[&str], rv: &str, next: Option<&str>) -> kube_client::Result<ObjectList<ConfigMap>> {
        list_of(names.iter().map(|n| cm(n)).collect(), rv, next)
    }

    /// A list page of `items`.
    pub(crate) fn list_of(
        items: Vec<ConfigMap>,
        rv: &str,
        next: Option<&str>,
    ) -> kube_client::Result<ObjectList<ConfigMap>> {
        Ok(ObjectList {
            types: TypeMeta::list::<ConfigMap>(),
            metadata: ListMeta {
                resource_version: Some(rv.into()),
                continue_: next.map(str::to_string),
                ..ListMeta::default()
            },
            items,
        })
    }

    /// A watch ERROR event: the resourceVersion is too old.
    pub(crate) fn gone() -> WatchEvent<ConfigMap> {
        WatchEvent::Error(
            Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        )
    }

    /// An API error with `code`.
    pub(crate) fn api_error<T>(code: u16, reason: &str) -> kube_client::Result<T> {
        Err(kube_client::Error::Api(
            Status::failure("scripted", reason).with_code(code).boxed(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;

    use super::script::{Asked, Script, api_error, page};
    use super::{Change, Line, ListWatch, Page, RawList, Undecodable, decode_event};

    #[test]
    fn watch_lines_decode_in_any_key_order_and_an_object_that_does_not_decode_is_set_aside() {
        use kube_client::api::WatchEvent;
        let event = |line: &str| decode_event::<ConfigMap>(line);
        // `object` before `type`, as `serde_json::json!` writes it.
        let added = event(r#"{"object":{"metadata":{"name":"a","resourceVersion":"4"}},"type":"ADDED"}"#);
        assert!(matches!(added, Ok(Line::Event(WatchEvent::Added(cm))) if cm.metadata.name.as_deref() == Some("a")));
        let bad = event(
            r#"{"type":"MODIFIED","object":{"metadata":{"name":"b","namespace":"ns","resourceVersion":"5"},"data":{"k":1}}}"#,
        );
        assert!(
            matches!(&bad, Ok(Line::Skipped(Undecodable { key, resource_version: Some(rv), event: Some(Change::Modified), .. }))
                if key == "ns/b" && rv == "5"),
            "set aside with its key, resourceVersion and event"
        );
        let gone = event(r#"{"type":"DELETED","object":{"metadata":{"name":"c"},"immutable":"no"}}"#);
        assert!(
            matches!(&gone, Ok(Line::Skipped(Undecodable { key, resource_version: None, event: Some(Change::Deleted), .. }))
                if key == "c")
        );
        let bookmark = event(
            r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}"#,
        );
        assert!(matches!(bookmark, Ok(Line::Event(WatchEvent::Bookmark(b))) if b.metadata.resource_version == "9"));
        let error =
            event(r#"{"object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"},"type":"ERROR"}"#);
        assert!(matches!(error, Ok(Line::Event(WatchEvent::Error(s))) if s.code == 410));
        // Not events: a status outside the envelope, an unknown type, something else entirely.
        let status = event(r#"{"kind":"Status","code":500,"message":"boom"}"#);
        assert!(matches!(status, Err(kube_client::Error::Api(s)) if s.code == 500));
        let unknown = event(r#"{"type":"RENAMED","object":{}}"#);
        assert!(matches!(unknown, Err(kube_client::Error::SerdeError(e)) if e.to_string().contains("RENAMED")));
        assert!(matches!(event("<html>"), Err(kube_client::Error::SerdeError(_))));
        assert!(matches!(event("{}"), Err(kube_client::Error::SerdeError(_))));
    }

    #[test]
    fn a_list_watch_is_named_by_its_path_its_selectors_and_whether_it_asks_for_metadata_only() {
        let calls = Arc::new(Script::default());
        let all = ListWatch::with_calls(Arc::new(calls.clone()), "/api/v1/configmaps".into(), false);
        assert_eq!(all.to_string(), "/api/v1/configmaps");
        assert_eq!(all.url(), "/api/v1/configmaps");
        let selected = all.clone().labels("app=web").fields("metadata.name=a");
        assert_eq!(
            selected.to_string(),
            "/api/v1/configmaps?labelSelector=app=web&fieldSelector=metadata.name=a"
        );
        let meta = ListWatch::with_calls(Arc::new(calls), "/api/v1/namespaces/ns/secrets".into(), true).fields("a=b");
        assert_eq!(
            meta.to_string(),
            "/api/v1/namespaces/ns/secrets?fieldSelector=a=b (metadata only)"
        );
    }

    #[test]
    fn a_page_decodes_item_by_item_and_sets_aside_what_does_not_decode() {
        let body = r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"t"},
            "items":[
              {"metadata":{"name":"a","namespace":"ns"},"data":{"k":"v"}},
              {"metadata":{"name":"b","namespace":"ns"},"data":{"k":7}},
              {"metadata":{"name":"c"},"immutable":"yes"},
              {"metadata":"no"},
              {"metadata":{"name":"d","namespace":"ns"}}
            ]}"#;
        let raw: RawList = serde_json::from_str(body).expect("a list");
        let page: Page<ConfigMap> = raw.decode();
        let names: Vec<_> = page.items.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(
            (page.resource_version.as_str(), page.continue_.as_deref()),
            ("9", Some("t"))
        );
        let keys: Vec<_> = page.undecodable.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["ns/b", "c", "an object with no readable name"]);
        assert!(
            page.undecodable[0].error.contains("invalid type"),
            "{}",
            page.undecodable[0]
        );
        // `items: null` is an empty list, as kube-core's `ObjectList` reads it.
        let raw: RawList =
            serde_json::from_str(r#"{"metadata":{"resourceVersion":"3"},"items":null}"#).expect("a list");
        let page: Page<ConfigMap> = raw.decode();
        assert!(page.items.is_empty() && page.undecodable.is_empty());
        let mut shown = Undecodable {
            key: "ns/b".into(),
            error: "bad".into(),
            resource_version: None,
            event: Some(Change::Modified),
        };
        assert_eq!(shown.to_string(), "ns/b did not decode and is skipped: bad");
        shown.event = Some(Change::Deleted);
        assert!(
            shown
                .to_string()
                .starts_with("ns/b was deleted, but its final state did not decode")
        );
    }

    #[tokio::test]
    async fn lists_are_consistent_paged_reads_that_fall_back_to_one_whole_list_when_a_continue_token_expires() {
        let script = std::sync::Arc::new(Script::default());
        script
            .list(page(&["a", "b"], "5", Some("t1")))
            .list(api_error(410, "Expired"))
            .list(page(&["a", "b", "c"], "7", None));
        let lw = script.list_watch().labels("app=web");
        let (items, rv) = lw.list_all(2).await.expect("listed");
        let names: Vec<_> = items.into_iter().filter_map(|c| c.metadata.name).collect();
        assert_eq!((names, rv.as_str()), (vec!["a".into(), "b".into(), "c".into()], "7"));
        let asked = script.asked.lock();
        let lists: Vec<_> = asked
            .iter()
            .map(|a| match a {
                Asked::List(lp) => lp,
                other => panic!("only lists: {other:?}"),
            })
            .collect();
        let shape: Vec<_> = lists
            .iter()
            .map(|lp| (lp.continue_token.as_deref(), lp.limit))
            .collect();
        // Paged, then, once the token has expired, the whole list in one request.
        assert_eq!(shape, [(None, Some(2)), (Some("t1"), Some(2)), (None, None)]);
        for lp in lists {
            assert_eq!(lp.resource_version, None, "a consistent read: {lp:?}");
            assert_eq!(lp.version_match, None, "{lp:?}");
            assert_eq!(lp.label_selector.as_deref(), Some("app=web"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_page_or_a_watch_with_no_answer_fails_after_the_request_timeout() {
        // The script has no answers: every call waits forever.
        let script = std::sync::Arc::new(Script::default());
        let lw = script.list_watch().request_timeout(std::time::Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = lw.list_all(10).await.expect_err("timed out");
        assert!(err.to_string().contains("no answer to the list request"), "{err}");
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(5));
        let err = lw.watch("7", 300).await.map(|_| ()).expect_err("timed out");
        assert!(err.to_string().contains("no answer to the watch request"), "{err}");
    }

    #[tokio::test]
    async fn an_expired_continue_token_is_known_by_its_reason_when_the_code_is_missing() {
        let script = std::sync::Arc::new(Script::default());
        script
            .list(page(&["a"], "5", Some("t1")))
            .list(api_error(0, "Expired"))
            .list(page(&["a", "b"], "7", None));
        let (items, rv) = script.list_watch().list_all(1).await.expect("listed");
        assert_eq!((items.len(), rv.as_str()), (2, "7"));
    }
}
