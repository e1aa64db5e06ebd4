//! Lists: label and field selectors, pagination over a consistent snapshot, resourceVersion.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube_client::Api;
use kube_client::api::{ListParams, PostParams};
use serde_json::json;

use super::{code, configmap, eventually, setup};

fn labelled(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm = configmap(name);
    cm.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    cm
}

async fn names(api: &Api<ConfigMap>, lp: &ListParams) -> Vec<String> {
    sorted_names(api.list(lp).await.expect("list").items)
}

/// The names of `items`, sorted, without the namespace's `kube-root-ca.crt`.
fn sorted_names(items: Vec<ConfigMap>) -> Vec<String> {
    let mut v: Vec<String> = items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    v.sort();
    v
}

/// Creates `cm-0` .. `cm-3`.
async fn create_four(api: &Api<ConfigMap>) {
    for i in 0..4 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .expect("create");
    }
}

#[tokio::test]
async fn label_selectors_support_every_operator() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for cm in [
        labelled("a", &[("app", "web"), ("tier", "front")]),
        labelled("b", &[("app", "web"), ("tier", "back")]),
        labelled("c", &[("app", "db")]),
        labelled("d", &[]),
    ] {
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(&api, &sel("app=web")).await, ["a", "b"]);
    assert_eq!(names(&api, &sel("app==web,tier=back")).await, ["b"]);
    assert_eq!(names(&api, &sel("app!=web,app")).await, ["c"]);
    assert_eq!(names(&api, &sel("tier in (front, back)")).await, ["a", "b"]);
    assert_eq!(names(&api, &sel("tier notin (front),app")).await, ["b", "c"]);
    assert_eq!(names(&api, &sel("tier")).await, ["a", "b"]);
    assert_eq!(names(&api, &sel("!app")).await, ["d"]);
}

#[tokio::test]
async fn a_malformed_label_selector_is_a_bad_request() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    assert_eq!(code(api.list(&ListParams::default().labels("app in (web")).await), 400);
}

#[tokio::test]
async fn field_selectors_match_names_and_pod_fields() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &configmap(n)).await.expect("create");
    }
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name=b")).await,
        ["b"]
    );
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name!=b")).await,
        ["a"]
    );
    let pods: Api<Pod> = Api::namespaced(env.client(), &ns);
    for (name, node) in [("p1", Some("node-a")), ("p2", None)] {
        // A scheduler name nobody serves keeps p2 unscheduled on a real cluster too.
        let mut spec =
            json!({ "schedulerName": "kdev-test-scheduler", "containers": [{ "name": "c", "image": "busybox:1.36" }] });
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        let pod: Pod = serde_json::from_value(
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name }, "spec": spec }),
        )
        .expect("a valid pod");
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
    }
    let unscheduled: Vec<String> = pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(unscheduled, ["p2"]);
}

#[tokio::test]
async fn an_unsupported_field_selector_is_a_bad_request() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    assert_eq!(
        code(api.list(&ListParams::default().fields("data.key=value")).await),
        400
    );
}

#[tokio::test]
async fn pages_come_from_one_consistent_snapshot() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for i in 0..7 {
        api.create(&PostParams::default(), &labelled(&format!("cm-{i}"), &[("set", "x")]))
            .await
            .expect("create");
    }
    let lp = ListParams::default().labels("set=x").limit(3);
    let first = api.list(&lp).await.expect("page 1");
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Changes after the first page do not show up in later pages.
    api.create(&PostParams::default(), &labelled("cm-late", &[("set", "x")]))
        .await
        .expect("late create");
    let mut seen: Vec<String> = first.items.into_iter().filter_map(|c| c.metadata.name).collect();
    let mut next = Some(token);
    while let Some(t) = next {
        let page = api.list(&lp.clone().continue_token(&t)).await.expect("next page");
        assert_eq!(page.metadata.resource_version, first.metadata.resource_version);
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let want: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn lists_without_selectors_report_remaining_items() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    create_four(&api).await;
    let page = api.list(&ListParams::default().limit(2)).await.expect("page");
    // The whole snapshot, page by page: the four, plus kube-root-ca.crt where a controller has
    // published it (the embedded server always; not a bare kube-apiserver; a busy cluster
    // maybe not yet).
    let mut names: Vec<String> = page.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let mut next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
    while let Some(token) = next {
        let more = api
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .expect("page");
        names.extend(more.items.into_iter().filter_map(|c| c.metadata.name));
        next = more.metadata.continue_.filter(|c| !c.is_empty());
    }
    assert_eq!(page.items.len(), 2);
    let mut ours = names.clone();
    ours.retain(|n| n != "kube-root-ca.crt");
    ours.sort();
    assert_eq!(ours, ["cm-0", "cm-1", "cm-2", "cm-3"]);
    if env.is_embedded() {
        assert_eq!(names.len(), 5);
    }
    // (A real kube-apiserver serving the page from a watch cache without snapshots leaves the
    // count out.)
    match page.metadata.remaining_item_count {
        Some(n) => assert_eq!(n, i64::try_from(names.len()).expect("small") - 2),
        None => assert!(!env.is_embedded(), "the embedded server always reports the count"),
    }
}

#[tokio::test]
async fn a_list_reports_the_latest_resource_version() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let cm = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let list = api.list(&ListParams::default()).await.expect("list");
    // A consistent list reflects every write before it.
    let listed = list.items.iter().find(|c| c.metadata.name.as_deref() == Some("a"));
    assert_eq!(
        listed.and_then(|c| c.metadata.resource_version.as_deref()),
        cm.metadata.resource_version.as_deref()
    );
    // Clients must treat resourceVersions as opaque; this checks the server, whose versions are
    // etcd revisions (kube-apiserver) or a counter (the embedded server).
    let rv = |s: Option<String>| s.unwrap_or_default().parse::<u64>().expect("a numeric resourceVersion");
    assert!(rv(list.metadata.resource_version) >= rv(cm.metadata.resource_version));
}

#[tokio::test]
async fn a_list_at_resource_version_0_ignores_the_limit() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    create_four(&api).await;
    // client-go's first list: `resourceVersion=0&limit=500`. The watch cache answers it whole.
    // (kube-client leaves resourceVersion=0 out when a limit is set, hence the raw request.)
    // resourceVersion=0 is "any version": a real watch cache may answer before it has caught up
    // with the last create, so ask until it has.
    eventually("a list at resourceVersion 0 with all four", || async {
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/configmaps?resourceVersion=0&limit=2"))
            .body(Vec::new())
            .expect("request");
        let text = env.client().request_text(req).await.expect("list");
        let list: kube_client::core::ObjectList<ConfigMap> = serde_json::from_str(&text).expect("a ConfigMapList");
        assert!(
            list.metadata.continue_.unwrap_or_default().is_empty(),
            "no continue token"
        );
        (sorted_names(list.items) == ["cm-0", "cm-1", "cm-2", "cm-3"]).then_some(())
    })
    .await;
}

/// List options kube-apiserver refuses with 422 Invalid `ListOptions` (kube-client refuses the
/// first itself, so the requests go raw).
#[tokio::test]
async fn list_options_kube_apiserver_forbids_are_refused_as_invalid() {
    let (env, ns) = setup().await;
    let client = env.client();
    for (query, detail) in [
        (
            "resourceVersionMatch=Exact&resourceVersion=0",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        ("sendInitialEvents=true", "sendInitialEvents is forbidden for list"),
    ] {
        let request = http::Request::get(format!("/api/v1/namespaces/{ns}/configmaps?{query}"))
            .body(Vec::new())
            .expect("a request");
        match client.request_text(request).await {
            Err(kube_client::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{query}: {s:?}");
                assert!(s.message.contains(detail), "{query}: {}", s.message);
            }
            other => panic!("{query}: expected Invalid, got {other:?}"),
        }
    }
}

/// Fault injection, so the embedded server only: a continue token older than the history gets
/// 410 Expired with a fresh token in `metadata.continue`, which lists the rest as it is now.
#[tokio::test]
async fn an_expired_continue_token_comes_back_with_one_for_the_rest_as_it_is_now() {
    let (env, ns) = setup().await;
    if !super::needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for i in 0..5 {
        api.create(&PostParams::default(), &labelled(&format!("cm-{i}"), &[("set", "x")]))
            .await
            .expect("create");
    }
    let lp = ListParams::default().labels("set=x").limit(2);
    let first = api.list(&lp).await.expect("page 1");
    let token = first.metadata.continue_.clone().expect("a continue token");
    let late = api
        .create(&PostParams::default(), &labelled("cm-9", &[("set", "x")]))
        .await
        .expect("a late create");
    api.delete("cm-3", &Default::default()).await.expect("delete");
    env.faults().compact_history().expect("embedded");

    let req = http::Request::get(format!(
        "/api/v1/namespaces/{ns}/configmaps?labelSelector=set%3Dx&limit=2&continue={token}"
    ))
    .body(Vec::new())
    .expect("request");
    let answer = super::raw(&env, req).await;
    assert_eq!(answer.code, 410);
    let status = answer.body;
    assert_eq!(status["reason"], json!("Expired"), "{status}");
    let fresh = status["metadata"]["continue"].as_str().expect("a fresh continue token");

    let mut names = Vec::new();
    let mut next = Some(fresh.to_string());
    while let Some(t) = next {
        let page = api.list(&lp.clone().continue_token(&t)).await.expect("next page");
        assert_ne!(page.metadata.resource_version, first.metadata.resource_version);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    // After cm-1, as the store is now: without the deleted cm-3, with the late cm-9.
    assert_eq!(
        names,
        ["cm-2", "cm-4", "cm-9"],
        "late create at {:?}",
        late.metadata.resource_version
    );
}

#[tokio::test]
async fn a_malformed_continue_token_is_a_bad_request() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for token in [
        "not base64!",
        "e30",
        "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJhL2IifQ",
    ] {
        assert_eq!(
            code(api.list(&ListParams::default().limit(1).continue_token(token)).await),
            400,
            "{token}"
        );
    }
}
