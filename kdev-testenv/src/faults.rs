//! Faults a real cluster cannot produce on demand: failed requests, latency, dropped watches,
//! compacted history, a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::server::Shared;
use crate::status::ApiError;

/// A planned failure: the next `times` requests matching a verb and a resource fail with `code`.
///
/// # Examples
/// ```
/// use kdev_testenv::Failure;
/// // The next two lists of configmaps answer 429 with Retry-After: 1.
/// let f = Failure::new(429).verb("list").resource("configmaps").times(2).retry_after(1);
/// # let _ = f;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Failure {
    verb: Option<String>,
    resource: Option<String>,
    times: u32,
    code: u16,
    retry_after: Option<u32>,
}

impl Failure {
    /// Fails the next request (any verb, any resource) with `code` (500, 429, 409, 504, ...).
    pub fn new(code: u16) -> Self {
        Failure {
            verb: None,
            resource: None,
            times: 1,
            code,
            retry_after: None,
        }
    }

    /// Only requests with this verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }

    /// Only requests for this resource plural (`pods`, or `pods/status` for a subresource).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// How many matching requests fail (default 1).
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Sends `Retry-After: secs` (kube-client retries 429/503/504 after it).
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

#[derive(Debug, Default)]
pub(crate) struct FaultState {
    failures: Vec<Failure>,
    latency: Duration,
}

impl FaultState {
    /// The injected failure for this request, if one is planned; counts it down.
    pub(crate) fn check(&mut self, verb: &str, resource: &str) -> Option<ApiError> {
        let idx = self.failures.iter().position(|f| {
            f.verb.as_deref().is_none_or(|v| v == verb) && f.resource.as_deref().is_none_or(|r| r == resource)
        })?;
        let f = &mut self.failures[idx];
        f.times = f.times.saturating_sub(1);
        let err = ApiError::Injected {
            code: f.code,
            retry_after: f.retry_after,
            message: format!("injected failure: {verb} {resource} answered {}", f.code),
        };
        if f.times == 0 {
            let _ = self.failures.remove(idx);
        }
        Some(err)
    }

    pub(crate) fn latency(&self) -> Duration {
        self.latency
    }
}

/// Why a fault could not be injected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// The test runs against a real cluster (`KDEV_TEST_KUBECONFIG`), which cannot inject faults.
    #[error("fault injection needs the embedded API server; this test runs on a real cluster")]
    RealCluster,
}

/// The fault-injection handle of a [`TestEnv`](crate::TestEnv).
///
/// Every method returns [`Unsupported::RealCluster`] when the environment is a real cluster:
/// tests that need faults print the reason and skip there.
#[derive(Clone)]
pub struct Faults {
    pub(crate) shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("embedded", &self.shared.is_some())
            .finish()
    }
}

impl Faults {
    fn shared(&self) -> Result<&Arc<Shared>, Unsupported> {
        self.shared.as_ref().ok_or(Unsupported::RealCluster)
    }

    /// Whether faults can be injected (the embedded server) or not (a real cluster).
    pub fn supported(&self) -> bool {
        self.shared.is_some()
    }

    /// Ends every open watch, as a dropped connection or an API server restart would.
    /// Returns how many watches were open.
    ///
    /// # Errors
    /// [`Unsupported`] on a real cluster.
    pub fn drop_watches(&self) -> Result<usize, Unsupported> {
        Ok(self.shared()?.state.lock().drop_watches())
    }

    /// Forgets the event history: a watch from any older resourceVersion then gets
    /// 410 Gone (Expired), as after an etcd compaction.
    ///
    /// # Errors
    /// [`Unsupported`] on a real cluster.
    pub fn compact_history(&self) -> Result<(), Unsupported> {
        self.shared()?.state.lock().compact();
        Ok(())
    }

    /// Plans a failure; failures are matched in the order they were planned.
    ///
    /// # Errors
    /// [`Unsupported`] on a real cluster.
    pub fn fail(&self, failure: Failure) -> Result<(), Unsupported> {
        if failure.times > 0 {
            let shared = self.shared()?;
            shared.faults.lock().failures.push(failure);
            shared.faults_armed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Delays every request by `latency` before it is handled (zero turns it off).
    ///
    /// # Errors
    /// [`Unsupported`] on a real cluster.
    pub fn set_latency(&self, latency: Duration) -> Result<(), Unsupported> {
        let shared = self.shared()?;
        shared.faults.lock().latency = latency;
        shared.faults_armed.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes every planned failure and the latency.
    ///
    /// # Errors
    /// [`Unsupported`] on a real cluster.
    pub fn clear(&self) -> Result<(), Unsupported> {
        let shared = self.shared()?;
        *shared.faults.lock() = FaultState::default();
        shared.faults_armed.store(false, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_applies_to_matching_requests_only_and_counts_down() {
        let mut s = FaultState::default();
        s.failures
            .push(Failure::new(500).verb("list").resource("pods").times(2));
        assert!(s.check("get", "pods").is_none());
        assert!(s.check("list", "configmaps").is_none());
        assert_eq!(s.check("list", "pods").map(|e| e.code().as_u16()), Some(500));
        assert!(s.check("list", "pods").is_some());
        assert!(s.check("list", "pods").is_none());
    }
}
