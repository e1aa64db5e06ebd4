//! watch: a chunked stream of ADDED / MODIFIED / DELETED / BOOKMARK / ERROR events, resumed
//! from a resourceVersion, with streaming lists
//! ([watches](https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes),
//! [streaming lists](https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists)).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, Sleep};

use super::read::Filter;
use super::{Ctx, convert_out, render, render_metadata, table};
use crate::registry::Resource;
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{EventType, Stored, WatchMsg};
use crate::wire::Body;

/// WATCH of a collection (or of one object, with the legacy path form).
pub(crate) fn watch(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_ctx(ctx)?;
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let rv_param = ctx.query.str("resourceVersion");
    let rv_match = ctx.query.str("resourceVersionMatch");
    // kube-apiserver 1.34+ (the WatchList feature, on by default) reads a plain watch from ""
    // or "0" as `sendInitialEvents=true&resourceVersionMatch=NotOlderThan`
    // (`SetListOptionsDefaults`): the same ADDED events first, then, when bookmarks are allowed,
    // the bookmark that ends them.
    let legacy_watch =
        ctx.query.get("sendInitialEvents").is_none() && rv_match.is_empty() && matches!(rv_param, "" | "0");
    let send_initial = match ctx.query.get("sendInitialEvents") {
        Some(v) => Some(crate::request::is_true(v)),
        None if legacy_watch => Some(true),
        None => None,
    };
    let rv_match = if legacy_watch { "NotOlderThan" } else { rv_match };
    if send_initial.is_some() {
        if rv_match != "NotOlderThan" {
            return Err(invalid_watch(
                ctx,
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
    } else if !rv_match.is_empty() {
        return Err(invalid_watch(
            ctx,
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    // `timeoutSeconds=0` is no timeout asked for, as kube-apiserver reads it: its default.
    let timeout = match ctx.query.uint("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => Duration::from_secs(1800 + fastrand::u64(..1800)),
    };
    let from: Option<u64> = match rv_param {
        "" | "0" => None,
        v => Some(
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v:?}")))?,
        ),
    };

    let mut stream = WatchStream {
        shared: ctx.shared.clone(),
        res: ctx.res.clone(),
        version: ctx.version().to_string(),
        storage: ctx.storage().to_string(),
        name: ctx.route.name.clone(),
        filter,
        table: ctx.wants_table(),
        metadata: ctx.metadata_as().map(|m| m.api_version),
        id: None,
        rx: None,
        pending: VecDeque::new(),
        bookmarks: bookmarks.then(|| {
            let every = ctx.shared.config.bookmark_interval;
            tokio::time::interval_at(Instant::now() + every, every)
        }),
        deadline: Box::pin(tokio::time::sleep(timeout)),
        done: false,
    };
    {
        let mut st = ctx.shared.state.lock();
        // A version the server has not reached yet: kube-apiserver's watch cache waits up to 3 s
        // for it, then refuses the watch with 504 (`Too large resource version`).
        if let Some(rv) = from
            && rv > st.rv()
        {
            return Err(super::read::too_large(rv, st.rv()));
        }
        // Initial events: with sendInitialEvents=true, or a plain watch from "" / "0" (kube-apiserver
        // sends the current state as ADDED events first in both cases).
        let initial = match send_initial {
            Some(true) => true,
            Some(false) => false,
            None => from.is_none(),
        };
        let replay_from = if initial { None } else { from };
        match st.watch(&stream.storage, replay_from) {
            Ok((id, rx)) => {
                stream.id = Some(id);
                stream.rx = Some(rx);
                if initial {
                    for o in st.list(&stream.storage, stream.filter.ns.as_deref()) {
                        if stream.visible(&o.value) {
                            let b = stream.encode("ADDED", &o);
                            stream.pending.push_back(b);
                        }
                    }
                    // The bookmark that ends the initial events comes only to a watch that
                    // allows bookmarks (kube-apiserver's `isInitialEventsEndBookmarkRequired`).
                    if send_initial == Some(true) && bookmarks {
                        st.bookmark(&stream.storage, id, true);
                    }
                }
            }
            Err(_) => {
                let current = st.rv();
                let err = ApiError::Expired(format!("too old resource version: {} ({current})", from.unwrap_or(0)));
                let line = json!({ "type": "ERROR", "object": err.to_status() });
                stream.pending.push_back(Bytes::from(format!("{line}\n")));
                stream.done = true;
            }
        }
    }
    let mut resp = Response::new(stream.boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn invalid_watch(ctx: &Ctx, field: &str, detail: &str) -> ApiError {
    let _ = ctx;
    ApiError::Invalid {
        kind: "ListOptions".into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes: vec![crate::schema::Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }],
    }
}

struct WatchStream {
    shared: Arc<Shared>,
    res: Arc<Resource>,
    version: String,
    storage: String,
    name: Option<String>,
    filter: Filter,
    table: bool,
    /// `Some(apiVersion)` when the client watches `PartialObjectMetadata`.
    metadata: Option<String>,
    id: Option<u64>,
    rx: Option<mpsc::UnboundedReceiver<WatchMsg>>,
    pending: VecDeque<Bytes>,
    bookmarks: Option<Interval>,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl WatchStream {
    fn visible(&self, obj: &Value) -> bool {
        if let Some(name) = &self.name
            && obj.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str())
        {
            return false;
        }
        self.filter.matches(&self.res, &self.version, obj)
    }

    fn encode(&self, ty: &str, obj: &Stored) -> Bytes {
        let body = if let Some(api_version) = &self.metadata {
            render_metadata(api_version, obj)
        } else if self.table {
            let o = convert_out(&self.res, &self.version, &obj.value);
            Bytes::from(
                serde_json::to_vec(&table::table(&self.res, &self.version, &[o], &obj.rv.to_string(), None))
                    .unwrap_or_default(),
            )
        } else {
            render(&self.res, &self.version, obj)
        };
        let mut out = Vec::with_capacity(body.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn on_message(&mut self, msg: WatchMsg) {
        match msg {
            WatchMsg::Close => self.done = true,
            WatchMsg::Bookmark { rv, initial_events_end } => {
                let mut meta = json!({ "resourceVersion": rv.to_string(), "creationTimestamp": null });
                if initial_events_end {
                    meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
                }
                let ev = json!({ "type": "BOOKMARK", "object": {
                    "kind": self.res.kind, "apiVersion": self.res.api_version(&self.version), "metadata": meta } });
                self.pending.push_back(Bytes::from(format!("{ev}\n")));
            }
            WatchMsg::Event(ev) => {
                let now = self.visible(&ev.object.value);
                let before = ev.prev.as_ref().is_some_and(|p| self.visible(&p.value));
                let line = match ev.ty {
                    EventType::Added if now => Some(self.encode("ADDED", &ev.object)),
                    EventType::Deleted if now => Some(self.encode("DELETED", &ev.object)),
                    EventType::Modified => match (before, now) {
                        (true, true) => Some(self.encode("MODIFIED", &ev.object)),
                        (false, true) => Some(self.encode("ADDED", &ev.object)),
                        (true, false) => {
                            // The object stopped matching: the watcher sees it deleted, at this version.
                            let prev = ev.prev.as_ref().map(|p| Stored::new(p.value.clone(), ev.rv));
                            prev.map(|p| self.encode("DELETED", &p))
                        }
                        (false, false) => None,
                    },
                    _ => None,
                };
                if let Some(line) = line {
                    self.pending.push_back(line);
                }
            }
        }
    }
}

impl hyper::body::Body for WatchStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.done = true;
                continue;
            }
            if let (Some(iv), Some(id)) = (this.bookmarks.as_mut(), this.id)
                && iv.poll_tick(cx).is_ready()
            {
                this.shared.state.lock().bookmark(&this.storage, id, false);
                continue;
            }
            let Some(rx) = this.rx.as_mut() else {
                this.done = true;
                continue;
            };
            match rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) => this.on_message(msg),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.state.lock().unwatch(&self.storage, id);
        }
    }
}
