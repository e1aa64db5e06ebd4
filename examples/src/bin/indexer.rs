//! Lesson 5 — the indexer: a thread-safe cache with secondary indexes, read through
//! cheap handles that never copy an object.
//!
//! Run it (no cluster needed):
//!
//! ```sh
//! cargo run -p kdev-examples --bin indexer
//! ```
//!
//! The page that goes with it: `docs/indexer.md`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kdev::store::{self, NAMESPACE_INDEX};

fn pod(namespace: &str, name: &str, node: &str, app: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.namespace = Some(namespace.into());
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some([("app".to_string(), app.to_string())].into());
    pod.spec = Some(PodSpec {
        node_name: Some(node.into()),
        ..PodSpec::default()
    });
    pod
}

/// An index function: which node a pod runs on (none while it is unscheduled).
fn by_node(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .into_iter()
        .collect()
}

/// Another: the pod's `app` label.
fn by_app(pod: &Pod) -> Vec<String> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app").cloned())
        .into_iter()
        .collect()
}

fn sorted(mut keys: Vec<Arc<str>>) -> Vec<Arc<str>> {
    keys.sort();
    keys
}

fn main() -> Result<(), store::Error> {
    println!("== 1. one writer, many readers");
    let (reader, mut writer) = store::store::<Pod>();
    let another_reader = reader.clone();
    writer.add_indexer("node", by_node)?;
    writer.add_indexer("app", by_app)?;
    println!("indexes: {:?}", reader.index_names());

    println!("\n== 2. objects are stored under namespace/name keys");
    writer.apply(Arc::new(pod("shop", "web-0", "node-a", "web")));
    writer.apply(Arc::new(pod("shop", "web-1", "node-b", "web")));
    writer.apply(Arc::new(pod("shop", "db-0", "node-a", "db")));
    writer.apply(Arc::new(pod("blog", "web-0", "node-b", "web")));
    println!("keys: {:?}", sorted(reader.list_keys()));

    println!("\n== 3. reading by key hands out the cached Arc, not a copy");
    let a = reader.get_by_key("shop/web-0").expect("cached");
    let b = another_reader.get(Some("shop"), "web-0").expect("cached");
    println!("two readers, same object in memory: {}", Arc::ptr_eq(&a, &b));

    println!("\n== 4. secondary indexes");
    println!(
        "namespace shop: {:?}",
        sorted(reader.index_keys(NAMESPACE_INDEX, "shop")?)
    );
    println!("on node-a: {:?}", sorted(reader.index_keys("node", "node-a")?));
    println!("app=web: {} pods", reader.by_index("app", "web")?.len());
    let mut nodes = reader.index_values("node")?;
    nodes.sort();
    println!("nodes in use: {nodes:?}");

    println!("\n== 5. an update moves the key between index values");
    writer.apply(Arc::new(pod("shop", "db-0", "node-c", "db")));
    println!("on node-a now: {:?}", sorted(reader.index_keys("node", "node-a")?));
    println!("on node-c now: {:?}", sorted(reader.index_keys("node", "node-c")?));

    println!("\n== 6. a delete leaves no empty index value behind");
    writer.delete_key("shop/db-0");
    let mut nodes = reader.index_values("node")?;
    nodes.sort();
    println!("nodes in use: {nodes:?}");

    println!("\n== 7. replace: a relist swaps the whole content at once");
    writer.replace([
        Arc::new(pod("shop", "web-0", "node-a", "web")),
        Arc::new(pod("shop", "web-2", "node-a", "web")),
    ]);
    println!("keys: {:?}", sorted(reader.list_keys()));
    println!("on node-b: {:?}", sorted(reader.index_keys("node", "node-b")?));

    println!("\n== 8. asking for an index that does not exist is an error, not a panic");
    match reader.by_index("zone", "eu-1") {
        Err(err) => println!("error: {err}"),
        Ok(pods) => println!("unexpected: {} pods", pods.len()),
    }

    println!("\nlesson complete");
    Ok(())
}
