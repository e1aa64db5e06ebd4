//! Store benchmarks at 100,000 objects: `Writer::replace` (what a relist does) and
//! `Store::by_index` on the namespace index and a label index.
//!
//! Run with `cargo bench -p kdev-core --bench store`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::store::{self, NAMESPACE_INDEX};

const OBJECTS: usize = 100_000;
const NAMESPACES: usize = 100;
const APPS: usize = 1_000;

fn objects() -> Vec<Arc<ConfigMap>> {
    (0..OBJECTS)
        .map(|i| {
            let mut cm = ConfigMap::default();
            cm.metadata.namespace = Some(format!("ns-{}", i % NAMESPACES));
            cm.metadata.name = Some(format!("cm-{i}"));
            cm.metadata.labels = Some([("app".to_string(), format!("app-{}", i % APPS))].into());
            Arc::new(cm)
        })
        .collect()
}

fn by_app(cm: &ConfigMap) -> Vec<String> {
    cm.metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| *k == "app")
        .map(|(_, v)| v.clone())
        .collect()
}

fn bench(c: &mut Criterion) {
    let objects = objects();
    let (reader, mut writer) = store::store::<ConfigMap>();
    writer.add_indexer("app", by_app).expect("fresh index name");

    let mut group = c.benchmark_group("store 100k");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("replace (namespace + label index)", |b| {
        b.iter(|| writer.replace(objects.iter().cloned()));
    });
    group.sample_size(100).measurement_time(Duration::from_secs(3));
    group.bench_function("by_index namespace (1,000 objects)", |b| {
        b.iter(|| black_box(reader.by_index(NAMESPACE_INDEX, black_box("ns-42")).expect("index")).len());
    });
    group.bench_function("by_index label (100 objects)", |b| {
        b.iter(|| black_box(reader.by_index("app", black_box("app-42")).expect("index")).len());
    });
    group.bench_function("get_by_key", |b| {
        b.iter(|| black_box(reader.get_by_key(black_box("ns-42/cm-4242"))));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
