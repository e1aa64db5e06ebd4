//! Which read timeout applies to a connection now: the header read timeout from the first byte
//! of a request, the idle timeout between requests — Go's net/http `ReadHeaderTimeout` and
//! `IdleTimeout`, which hyper's single `header_read_timeout` cannot tell apart (it also times
//! the wait for the next request on a kept-alive connection).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers, whose first bytes arrived at (or, for a connection's
    /// first request, whose handshake ended at) the instant.
    Head(Instant),
    /// A request is being answered (its body is read under the server's own timeout).
    Serving,
    /// Kept alive with no request since the instant.
    Idle(Instant),
}

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request's headers did not arrive in time: drop the connection.
    Head,
    /// No request came on a kept-alive connection: close it gracefully.
    Idle,
}

/// One connection's phase, shared by its reads ([`Watched`]), its service and its watchdog
/// ([`Activity::expired`]).
#[derive(Debug)]
pub(super) struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    /// A connection whose handshake just ended: its first request's headers are due within the
    /// header read timeout, as Go's server does.
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock() = phase;
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts reading a request's headers.
    fn read(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A request's headers are in: no read timeout applies until the returned guard drops (when
    /// the response is handed to hyper), then the connection is idle.
    ///
    /// Bytes of a pipelined next request read while this one is served count as idle time, so
    /// such a request is bounded by the idle timeout rather than the header read timeout.
    pub(super) fn serving(self: &Arc<Self>) -> Serving {
        self.set(Phase::Serving);
        Serving(self.clone())
    }

    /// Completes when the phase the connection is in has lasted longer than its timeout:
    /// `read_timeout` for headers, `idle_timeout` between requests.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(super) async fn expired(&self, read_timeout: Duration, idle_timeout: Duration) -> Expiry {
        loop {
            let phase = *self.phase.lock();
            let (deadline, expiry) = match phase {
                Phase::Head(since) => (since + read_timeout, Expiry::Head),
                Phase::Idle(since) => (since + idle_timeout, Expiry::Idle),
                Phase::Serving => {
                    self.changed.notified().await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if *self.phase.lock() == phase {
                        return expiry;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Marks a request as served while alive; see [`Activity::serving`].
pub(super) struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.set(Phase::Idle(Instant::now()));
    }
}

/// A connection's stream that reports each read to its [`Activity`].
pub(super) struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    pub(super) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.activity.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_header_timeout_runs_from_the_first_byte_after_an_idle_wait() {
        let activity = Activity::new();
        drop(activity.serving());
        tokio::time::sleep(Duration::from_secs(100)).await;
        activity.read();
        // Under the idle timeout, the header timeout (30 s from the byte) is what expires.
        let expired = activity.expired(Duration::from_secs(30), Duration::from_secs(120));
        let expired = tokio::time::timeout(Duration::from_secs(31), expired).await;
        assert_eq!(expired, Ok(Expiry::Head));
    }
}
