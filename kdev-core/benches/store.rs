//! Store benchmarks at 100,000 ConfigMaps spread over 100 namespaces, with a custom index on
//! the `app` label (1,000 values): `Writer::replace` of the whole content (what a relist
//! does: new map, namespace index and label index, then a swap) and `Store::by_index` on the
//! namespace index (1,000 objects per value) and on the label index (100 objects per value).
//!
//! Run with `cargo bench -p kdev-core --bench store`
//! (add `--features k8s-openapi/latest` when building outside the workspace's dev profile).
//! Sample sizes are kept small so the whole run takes well under a minute on 2 cores.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kdev_core::store::{self, NAMESPACE_INDEX};

const OBJECTS: usize = 100_000;
const NAMESPACES: usize = 100;
const APPS: usize = 1_000;
const APP_INDEX: &str = "app";

fn config_maps() -> Vec<Arc<ConfigMap>> {
    (0..OBJECTS)
        .map(|i| {
            Arc::new(ConfigMap {
                metadata: ObjectMeta {
                    namespace: Some(format!("ns-{}", i % NAMESPACES)),
                    name: Some(format!("config-{i}")),
                    labels: Some([("app".to_owned(), format!("app-{}", i % APPS))].into()),
                    ..ObjectMeta::default()
                },
                data: Some([("key".to_owned(), format!("value-{i}"))].into()),
                ..ConfigMap::default()
            })
        })
        .collect()
}

fn by_app(cm: &ConfigMap) -> Vec<String> {
    cm.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("app").cloned())
        .into_iter()
        .collect()
}

fn store_100k(c: &mut Criterion) {
    let objects = config_maps();
    let (reader, mut writer) = store::store::<ConfigMap>();
    writer.add_indexer(APP_INDEX, by_app).expect("a fresh index name");

    let mut replace = c.benchmark_group("store/replace");
    replace
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(OBJECTS as u64));
    replace.bench_function("100k configmaps, namespace + label index", |b| {
        b.iter(|| writer.replace(objects.iter().cloned()));
    });
    replace.finish();
    assert_eq!(reader.len(), OBJECTS);

    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("ns-{i}")).collect();
    let apps: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    let mut by_index = c.benchmark_group("store/by_index");
    by_index
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (index, values, per_value) in [
        (NAMESPACE_INDEX, &namespaces, OBJECTS / NAMESPACES),
        (APP_INDEX, &apps, OBJECTS / APPS),
    ] {
        assert_eq!(reader.by_index(index, &values[0]).unwrap().len(), per_value);
        by_index.throughput(Throughput::Elements(per_value as u64));
        let mut next = 0;
        by_index.bench_function(format!("{index} index, {per_value} objects per value"), |b| {
            b.iter(|| {
                next = (next + 1) % values.len();
                black_box(reader.by_index(index, &values[next]).expect("the index exists"))
            });
        });
    }
    by_index.finish();
}

criterion_group!(benches, store_100k);
criterion_main!(benches);
