//! Watches: events from a resourceVersion, initial events, selectors, streaming lists,
//! bookmarks, timeouts, and 410 Gone.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube_client::Api;
use kube_client::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use super::{configmap, eventually, needs_faults, setup};

fn name_of(ev: &WatchEvent<ConfigMap>) -> String {
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.metadata.name.clone().unwrap_or_default()
        }
        WatchEvent::Bookmark(_) => "<bookmark>".into(),
        WatchEvent::Error(e) => format!("<error {}>", e.code),
    }
}

fn kind_of(ev: &WatchEvent<ConfigMap>) -> &'static str {
    match ev {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(_) => "BOOKMARK",
        WatchEvent::Error(_) => "ERROR",
    }
}

#[tokio::test]
async fn a_watch_from_a_resource_version_sees_every_later_change_in_order() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    // On a real cluster only `a`: kube-root-ca.crt may still be on its way into the namespace.
    // (The embedded server publishes it with the namespace, so it watches unfiltered.)
    let params = WatchParams::default().timeout(20);
    let params = if env.is_embedded() {
        params
    } else {
        params.fields("metadata.name=a")
    };
    let stream = api.watch(&params, &rv).await.expect("watch");
    let mut stream = stream.boxed();
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "two" } })),
    )
    .await
    .expect("patch");
    api.delete("a", &DeleteParams::default()).await.expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("an event in time");
        let ev = ev.expect("no stream error").expect("the stream stays open");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            seen.push(format!("{} {}", kind_of(&ev), name_of(&ev)));
        }
    }
    assert_eq!(seen, ["ADDED a", "MODIFIED a", "DELETED a"]);
}

#[tokio::test]
async fn a_watch_without_a_resource_version_starts_with_the_current_objects() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("existing"))
        .await
        .expect("create");
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), "0")
        .await
        .expect("watch")
        .boxed();
    let mut added = Vec::new();
    while !added.contains(&"existing".to_string()) {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("in time");
        let ev = ev.expect("no error").expect("open");
        assert_eq!(kind_of(&ev), "ADDED");
        added.push(name_of(&ev));
    }
}

#[tokio::test]
async fn an_object_that_stops_matching_the_selector_is_seen_as_deleted() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().labels("team=a").timeout(20), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut cm = configmap("moving");
    cm.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    api.create(&PostParams::default(), &cm).await.expect("create");
    api.patch(
        "moving",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "b" } } })),
    )
    .await
    .expect("relabel");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("in time");
        let ev = ev.expect("no error").expect("open");
        seen.push(format!("{} {}", kind_of(&ev), name_of(&ev)));
    }
    assert_eq!(seen, ["ADDED moving", "DELETED moving"]);
}

#[tokio::test]
async fn a_streaming_list_ends_its_initial_events_with_a_bookmark() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &configmap(n)).await.expect("create");
    }
    let wp = WatchParams::streaming_lists().timeout(20);
    let mut stream = api.watch(&wp, "").await.expect("watch").boxed();
    let mut initial = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("in time");
        match ev.expect("no error").expect("open") {
            WatchEvent::Added(o) => initial.push(o.metadata.name.unwrap_or_default()),
            WatchEvent::Bookmark(b) => {
                if b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str)
                    == Some("true")
                {
                    break;
                }
            }
            other => panic!("unexpected {}", kind_of(&other)),
        }
    }
    initial.retain(|n| n != "kube-root-ca.crt");
    initial.sort();
    assert_eq!(initial, ["a", "b"]);
}

/// kube-apiserver 1.34+ reads a plain watch from "0" with bookmarks as a streaming list (the
/// WatchList feature, on by default): the initial ADDED events end with the same bookmark.
#[tokio::test]
async fn a_plain_watch_from_zero_ends_its_initial_events_with_a_bookmark() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &configmap(n)).await.expect("create");
    }
    // A watch from "0" starts from kube-apiserver's watch cache as it is: wait until a list
    // from that cache (resourceVersion "0") shows both, or they could arrive after the bookmark.
    eventually("the watch cache to hold a and b", || {
        let api = api.clone();
        async move {
            let listed = api.list(&ListParams::default().match_any()).await.expect("list");
            let names: Vec<String> = listed.items.into_iter().filter_map(|c| c.metadata.name).collect();
            (names.iter().any(|n| n == "a") && names.iter().any(|n| n == "b")).then_some(())
        }
    })
    .await;
    // kube-client's default watch parameters allow bookmarks.
    let wp = WatchParams::default().timeout(20);
    assert!(wp.bookmarks);
    let mut stream = api.watch(&wp, "0").await.expect("watch").boxed();
    let mut initial = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("the initial-events-end bookmark in time");
        match ev.expect("no error").expect("open") {
            WatchEvent::Added(o) => initial.push(o.metadata.name.unwrap_or_default()),
            WatchEvent::Bookmark(b)
                if b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str)
                    == Some("true") =>
            {
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {}", kind_of(&other)),
        }
    }
    initial.retain(|n| n != "kube-root-ca.crt");
    initial.sort();
    assert_eq!(initial, ["a", "b"]);
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    // No object is named `none`: nothing but the end (or a bookmark) can come.
    let mut stream = api
        .watch(&WatchParams::default().fields("metadata.name=none").timeout(1), &rv)
        .await
        .expect("watch")
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn a_watch_from_before_the_kept_history_gets_410_gone() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    env.faults().compact_history().expect("compaction");
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
        .await
        .expect("in time");
    match ev.expect("no stream error").expect("an event") {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {}", kind_of(&other)),
    }
}

#[tokio::test]
async fn dropped_watches_end_and_can_resume_from_the_last_version() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .expect("watch")
        .boxed();
    let a = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("in time");
    assert!(matches!(first, Ok(Some(WatchEvent::Added(_)))));
    assert!(env.faults().drop_watches().expect("drop") >= 1);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    api.create(&PostParams::default(), &configmap("b"))
        .await
        .expect("create b");
    let from = a.metadata.resource_version.expect("rv");
    let mut resumed = api
        .watch(&WatchParams::default().timeout(20), &from)
        .await
        .expect("rewatch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), resumed.try_next())
        .await
        .expect("in time");
    let ev = ev.expect("no error").expect("open");
    assert_eq!(format!("{} {}", kind_of(&ev), name_of(&ev)), "ADDED b");
}

#[tokio::test]
async fn a_watch_with_bookmarks_gets_them_periodically() {
    // Configures the embedded server's bookmark interval (kube-apiserver's is about a minute):
    // embedded only, like fault injection.
    if std::env::var(kdev_testenv::KUBECONFIG_ENV).is_ok_and(|v| !v.is_empty()) {
        eprintln!("skipping: this test shortens the embedded server's bookmark interval");
        return;
    }
    let config = kdev_testenv::Config::default().bookmark_interval(Duration::from_millis(50));
    let env = kdev_testenv::TestEnv::embedded(config).await.expect("embedded server");
    let ns = env.namespace().await.expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let created = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("in time");
    match ev.expect("no error").expect("open") {
        WatchEvent::Bookmark(b) => {
            assert!(
                b.metadata.resource_version.parse::<u64>().expect("a number") >= rv.parse::<u64>().expect("a number")
            );
        }
        other => panic!("expected a bookmark, got {}", kind_of(&other)),
    }
}
