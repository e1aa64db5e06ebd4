//! Waiting on a mutex-guarded state without holding the lock across `.await`.

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Runs `step` on the state until it returns `Some`, sleeping on `notify` in between.
///
/// `step` runs with the lock held, so a value it takes out is never lost to cancellation:
/// the future either returns it or has not taken it. Wakers must call `notify_one` (or
/// `notify_waiters`) after changing the state.
pub(crate) async fn until<S, R>(state: &Mutex<S>, notify: &Notify, mut step: impl FnMut(&mut S) -> Option<R>) -> R {
    loop {
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a notification between the check and the
        // `.await` is not missed.
        notified.as_mut().enable();
        if let Some(out) = step(&mut state.lock()) {
            return out;
        }
        notified.await;
    }
}
