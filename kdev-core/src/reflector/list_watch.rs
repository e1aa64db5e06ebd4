//! `ListWatch`: list and watch calls on an `Api<K>` with fixed selectors
//! (client-go's [`tools/cache/listwatch.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/listwatch.go)).

use std::fmt::Debug;

use futures::Stream;
use kube_client::Api;
use kube_client::api::{ListParams, WatchEvent, WatchParams};
use kube_core::Resource;
use serde::de::DeserializeOwned;

/// The list and watch calls of one resource, in one namespace or all, with optional label and
/// field selectors. Works for typed k8s-openapi objects, `DynamicObject` (an `Api` made with an
/// `ApiResource`) and `PartialObjectMeta<K>` (metadata only).
#[derive(Clone)]
pub struct ListWatch<K> {
    api: Api<K>,
    labels: Option<String>,
    fields: Option<String>,
}

impl<K> Debug for ListWatch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListWatch")
            .field("labels", &self.labels)
            .field("fields", &self.fields)
            .finish()
    }
}

impl<K> ListWatch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Lists and watches everything `api` addresses.
    pub fn new(api: Api<K>) -> Self {
        ListWatch {
            api,
            labels: None,
            fields: None,
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
    /// resourceVersion. The first page is served from the API server's cache
    /// (`resourceVersion=0`, as client-go does); when a page's continue token has expired
    /// (410), the list starts over as a consistent read.
    ///
    /// # Errors
    /// The API error of a page that failed.
    pub async fn list_all(&self, page_size: u32) -> kube_client::Result<(Vec<K>, String)> {
        let mut consistent = false;
        'again: loop {
            let mut items = Vec::new();
            let mut lp = self.list_params().limit(page_size);
            if !consistent {
                lp = lp.match_any();
            }
            loop {
                let page = match self.api.list(&lp).await {
                    Ok(p) => p,
                    Err(kube_client::Error::Api(e)) if e.code == 410 && lp.continue_token.is_some() => {
                        consistent = true;
                        continue 'again;
                    }
                    Err(e) => return Err(e),
                };
                let rv = page.metadata.resource_version.clone().unwrap_or_default();
                items.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => {
                        lp = self.list_params().limit(page_size).continue_token(&token);
                        lp.version_match = None;
                        lp.resource_version = None;
                    }
                    None => return Ok((items, rv)),
                }
            }
        }
    }

    /// Watches from `rv` with bookmarks, for at most `timeout_secs` (the server ends the watch).
    ///
    /// # Errors
    /// The API error of the watch request (410 when `rv` is too old).
    pub async fn watch(
        &self,
        rv: &str,
        timeout_secs: u32,
    ) -> kube_client::Result<impl Stream<Item = kube_client::Result<WatchEvent<K>>> + use<K>> {
        self.api.watch(&self.watch_params().timeout(timeout_secs), rv).await
    }

    /// A streaming list: a watch that starts with the current objects as ADDED events and a
    /// bookmark annotated `k8s.io/initial-events-end` (`sendInitialEvents=true`).
    ///
    /// # Errors
    /// The API error when the server refuses streaming lists.
    pub async fn watch_initial(
        &self,
        timeout_secs: u32,
    ) -> kube_client::Result<impl Stream<Item = kube_client::Result<WatchEvent<K>>> + use<K>> {
        let mut wp = self.watch_params().timeout(timeout_secs);
        wp.send_initial_events = true;
        wp.bookmarks = true;
        self.api.watch(&wp, "").await
    }
}
