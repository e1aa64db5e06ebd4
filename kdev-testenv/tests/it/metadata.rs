//! Metadata-only reads: `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`
//! answers with the objects' metadata and nothing else, for get, list and watch.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube_client::Api;
use kube_client::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::Value;

use super::{code, configmap, setup};

const AS_OBJECT: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const AS_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn labelled(name: &str) -> ConfigMap {
    let mut cm = configmap(name);
    cm.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    cm
}

async fn raw(client: &kube_client::Client, path: &str, accept: &str) -> Result<Value, kube_client::Error> {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .expect("a valid request");
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text).expect("a JSON body"))
}

#[tokio::test]
async fn get_and_list_return_only_metadata() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &labelled("a"))
        .await
        .expect("create");

    let one = api.get_metadata("a").await.expect("get_metadata");
    let types = one.types.expect("type meta");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    assert_eq!(one.metadata.labels.expect("labels")["app"], "web");
    assert!(one.metadata.uid.is_some() && one.metadata.resource_version.is_some());

    let body = raw(
        &env.client(),
        &format!("/api/v1/namespaces/{ns}/configmaps/a"),
        AS_OBJECT,
    )
    .await
    .expect("raw get");
    assert!(body.get("data").is_none(), "no data in {body}");

    let list = api
        .list_metadata(&ListParams::default().labels("app=web"))
        .await
        .expect("list_metadata");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
    assert!(list.metadata.resource_version.is_some());

    let body = raw(
        &env.client(),
        &format!("/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Dweb"),
        AS_LIST,
    )
    .await
    .expect("raw list");
    assert_eq!(body["kind"], "PartialObjectMetadataList");
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(body["items"][0]["metadata"]["name"], "a");
    assert!(body["items"][0].get("data").is_none(), "no data in {body}");
}

#[tokio::test]
async fn a_list_cannot_be_read_as_a_single_object() {
    let (env, ns) = setup().await;
    let client = env.client();
    assert_eq!(
        code(raw(&client, &format!("/api/v1/namespaces/{ns}/configmaps"), AS_OBJECT).await),
        406
    );
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    assert_eq!(
        code(raw(&client, &format!("/api/v1/namespaces/{ns}/configmaps/a"), AS_LIST).await),
        406
    );
}

#[tokio::test]
async fn watch_events_carry_only_metadata() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let rv = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a list resourceVersion");
    let mut events = api
        .watch_metadata(&WatchParams::default().labels("app=web").timeout(30), &rv)
        .await
        .expect("watch_metadata")
        .boxed();
    api.create(&PostParams::default(), &labelled("a"))
        .await
        .expect("create");
    api.delete("a", &DeleteParams::default()).await.expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        match events
            .try_next()
            .await
            .expect("a watch event")
            .expect("the watch stays open")
        {
            WatchEvent::Added(o) => seen.push(("ADDED", o)),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o)),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen[0].0, "ADDED");
    assert_eq!(seen.last().expect("events").0, "DELETED");
    for (_, o) in &seen {
        assert_eq!(o.metadata.name.as_deref(), Some("a"));
        assert_eq!(o.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    }
}
