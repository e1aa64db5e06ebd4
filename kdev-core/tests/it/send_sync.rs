//! Compile-time `Send`/`Sync` assertions for every public handle and future.

use k8s_openapi::api::core::v1::Pod;
use kdev_core::delta_fifo::{self, DeltaFifo};
use kdev_core::real_fifo::RealFifo;
use kdev_core::store::{Store, Writer};
use kdev_core::workqueue::{self, WorkQueue, rate_limiter};
use static_assertions::assert_impl_all;

assert_impl_all!(Store<Pod>: Send, Sync, Clone);
assert_impl_all!(kdev_core::feature_gate::FeatureGate: Send, Sync, Clone, Default);
assert_impl_all!(Writer<Pod>: Send, Sync);
assert_impl_all!(DeltaFifo<Pod>: Send, Sync);
assert_impl_all!(RealFifo<Pod>: Send, Sync);
assert_impl_all!(delta_fifo::Delta<Pod>: Send, Sync, Clone);
assert_impl_all!(delta_fifo::Config<Pod>: Send, Sync);
assert_impl_all!(WorkQueue<String>: Send, Sync, Clone);
assert_impl_all!(workqueue::Config<String>: Send, Sync);
assert_impl_all!(workqueue::Metrics: Send, Sync, Clone);
assert_impl_all!(rate_limiter::ItemExponential<String>: Send, Sync);
assert_impl_all!(rate_limiter::ItemFastSlow<String>: Send, Sync);
assert_impl_all!(rate_limiter::Bucket: Send, Sync);
assert_impl_all!(rate_limiter::MaxOf<String>: Send, Sync);

fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_futures_are_send() {
    let queue = WorkQueue::<String>::default();
    assert_send(&queue.get());
    assert_send(&queue.shutdown_with_drain());
    let fifo = DeltaFifo::<Pod>::default();
    assert_send(&fifo.pop(|_, _| ()));
    let real = RealFifo::<Pod>::default();
    assert_send(&real.pop(|_, _| ()));
}
