//! Waiting until an object reaches a state: [`await_condition`] watches one object and
//! returns once a condition holds (kube-runtime's `wait::await_condition`, envtest's
//! `Eventually` without the polling), with ready-made [`conditions`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::wait::{await_condition, conditions};
//! use kube_client::{Api, api::{DeleteParams, PostParams}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let ns = env.namespace().await?;
//! let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("settings".into());
//! let created = api.create(&PostParams::default(), &cm).await?;
//! let uid = created.metadata.uid.clone().unwrap_or_default();
//!
//! api.delete("settings", &DeleteParams::default()).await?;
//! // Give up after 30 s: the wait itself never times out.
//! tokio::time::timeout(Duration::from_secs(30), await_condition(api, "settings", conditions::is_deleted(&uid)))
//!     .await??;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube_client::Api;
use kube_client::api::{ListParams, WatchEvent, WatchParams};
use kube_core::Resource;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::reflector::Backoff;

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

/// Waits until `condition` holds for the object `name` of `api` and returns the object as it
/// was then (`None`: it did not exist).
///
/// The condition is checked on the object as first listed, then on every change a watch of
/// that one object reports (`None` once it is deleted). A watch that ends or breaks resumes
/// from the last resourceVersion seen; one that is too old (410 Gone) lists again. Failures
/// that retrying can fix (5xx, 429, a lost connection) are retried with the reflector's
/// [`Backoff`], from 200 ms doubling to 5 s, jittered. The wait has no deadline of its own: wrap it in `tokio::time::timeout`.
///
/// # Errors
///
/// The API server's error when a request fails for good (403 without RBAC for `list` and
/// `watch` of the kind, 404 for a kind it does not serve), or an object that does not decode
/// into `K`.
///
/// # Cancel safety
/// Cancel safe: dropping the future (a `timeout`, a `select!`) ends the watch and nothing is
/// lost.
pub async fn await_condition<K>(
    api: Api<K>,
    name: &str,
    condition: impl Fn(Option<&K>) -> bool,
) -> Result<Option<K>, kube_client::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let selector = format!("metadata.name={name}");
    let mut backoff = retry_backoff();
    'list: loop {
        let list = match api.list(&ListParams::default().fields(&selector)).await {
            Ok(list) => list,
            Err(e) if transient(&e) => {
                tokio::time::sleep(backoff.failure()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut version = list.metadata.resource_version.unwrap_or_default();
        let current = list.items.into_iter().find(|o| o.meta().name.as_deref() == Some(name));
        if condition(current.as_ref()) {
            return Ok(current);
        }
        loop {
            let params = WatchParams::default().fields(&selector).timeout(290);
            let mut events = match api.watch(&params, &version).await {
                Ok(events) => events.boxed(),
                Err(kube_client::Error::Api(s)) if s.code == 410 => continue 'list,
                Err(e) if transient(&e) => {
                    tokio::time::sleep(backoff.failure()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                let event = match events.try_next().await {
                    Ok(Some(event)) => event,
                    // Ended (the server's timeout): watch again from where it was.
                    Ok(None) => break,
                    // Broke: the same, after a pause.
                    Err(e) if transient(&e) => {
                        tokio::time::sleep(backoff.failure()).await;
                        break;
                    }
                    // An object that does not decode into `K`, say: retrying cannot help.
                    Err(e) => return Err(e),
                };
                let (object, gone) = match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                    WatchEvent::Deleted(o) => (o, true),
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(e) if e.code == 410 => continue 'list,
                    WatchEvent::Error(e) => {
                        let e = kube_client::Error::Api(e);
                        if !transient(&e) {
                            return Err(e);
                        }
                        tokio::time::sleep(backoff.failure()).await;
                        break;
                    }
                };
                if let Some(v) = object.meta().resource_version.clone() {
                    version = v;
                }
                if gone {
                    if condition(None) {
                        return Ok(None);
                    }
                } else if condition(Some(&object)) {
                    return Ok(Some(object));
                }
            }
        }
    }
}

/// The reflector's backoff, faster: a wait is short-lived and its caller bounds it.
fn retry_backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
}

/// Whether retrying may fix `e`: a server error, throttling, or no answer at all.
fn transient(e: &kube_client::Error) -> bool {
    match e {
        kube_client::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube_client::Error::HyperError(_) | kube_client::Error::Service(_) => true,
        _ => false,
    }
}

/// Ready-made conditions for [`await_condition`] (kube-runtime's `wait::conditions`); any
/// `Fn(Option<&K>) -> bool` is one too.
pub mod conditions {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube_core::Resource;
    use serde::Serialize;

    /// The object is gone: missing, or replaced by another of the same name (a different
    /// uid). Pass the uid of the object whose deletion you wait for.
    pub fn is_deleted<K: Resource>(uid: &str) -> impl Fn(Option<&K>) -> bool + use<K> {
        let uid = uid.to_string();
        move |obj| obj.is_none_or(|o| o.meta().uid.as_deref() != Some(uid.as_str()))
    }

    /// The object exists.
    pub fn exists<K>() -> impl Fn(Option<&K>) -> bool {
        |obj| obj.is_some()
    }

    /// The object's `status.conditions` has an entry of type `type_` whose status is
    /// `status` (`"True"`, `"False"` or `"Unknown"`); for any type whose conditions follow
    /// the Kubernetes convention, custom resources included.
    pub fn has_condition<K: Serialize>(type_: &str, status: &str) -> impl Fn(Option<&K>) -> bool + use<K> {
        let (type_, status) = (type_.to_string(), status.to_string());
        move |obj| {
            let Some(value) = obj.and_then(|o| serde_json::to_value(o).ok()) else {
                return false;
            };
            value
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .any(|c| c["type"] == type_.as_str() && c["status"] == status.as_str())
        }
    }

    /// The CRD is established: the API server serves its kind.
    pub fn is_crd_established() -> impl Fn(Option<&CustomResourceDefinition>) -> bool {
        has_condition("Established", "True")
    }

    /// The Pod's phase is `Running`.
    pub fn is_pod_running() -> impl Fn(Option<&Pod>) -> bool {
        |pod| pod.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Running")
    }

    /// The Job has completed (its `Complete` condition is true).
    pub fn is_job_completed() -> impl Fn(Option<&Job>) -> bool {
        has_condition("Complete", "True")
    }

    /// The Deployment's rollout is complete, as `kubectl rollout status` decides: its
    /// controller has seen the current spec, every replica runs the current template, no old
    /// replica is left and every updated one is available. Where `kubectl rollout status` gives
    /// up on a rollout past its progress deadline (`Progressing` false with reason
    /// `ProgressDeadlineExceeded`), this condition simply stays false: bound the wait.
    pub fn is_deployment_completed() -> impl Fn(Option<&Deployment>) -> bool {
        |deployment| {
            let Some(d) = deployment else { return false };
            let Some(status) = &d.status else { return false };
            let generation = d.metadata.generation.unwrap_or(0);
            if status.observed_generation.unwrap_or(0) < generation {
                return false;
            }
            let updated = status.updated_replicas.unwrap_or(0);
            // `spec` is optional in the API before 1.37, required from it on.
            k8s_openapi::k8s_if_ge_1_37! { let spec = Some(&d.spec); }
            k8s_openapi::k8s_if_le_1_36! { let spec = d.spec.as_ref(); }
            let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
            updated >= wanted
                && status.replicas.unwrap_or(0) <= updated
                && status.available_replicas.unwrap_or(0) >= updated
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube_core::DynamicObject;
    use serde_json::json;

    use super::conditions::*;

    fn deployment(generation: i64, spec_replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "d", "generation": generation },
            "spec": { "replicas": spec_replicas, "selector": {}, "template": {} },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_rollout_is_complete_as_kubectl_rollout_status_says() {
        let done = is_deployment_completed();
        let complete = json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 });
        assert!(done(Some(&deployment(2, 3, complete.clone()))));
        // The controller has not seen the new spec yet.
        assert!(!done(Some(&deployment(3, 3, complete))));
        // Not every replica runs the new template.
        let partial = json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2 });
        assert!(!done(Some(&deployment(2, 3, partial))));
        // An old replica is still terminating.
        let old_left = json!({ "observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3 });
        assert!(!done(Some(&deployment(2, 3, old_left))));
        // Updated but not yet available.
        let unavailable =
            json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1 });
        assert!(!done(Some(&deployment(2, 3, unavailable))));
        assert!(!done(None));
    }

    #[test]
    fn is_deleted_compares_uids() {
        let mut cm = ConfigMap::default();
        cm.metadata.uid = Some("a".into());
        assert!(!is_deleted::<ConfigMap>("a")(Some(&cm)));
        assert!(
            is_deleted::<ConfigMap>("b")(Some(&cm)),
            "another object of the same name"
        );
        assert!(is_deleted::<ConfigMap>("a")(None));
        assert!(exists::<ConfigMap>()(Some(&cm)));
        assert!(!exists::<ConfigMap>()(None));
    }

    #[test]
    fn has_condition_reads_status_conditions_of_any_type() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" },
            "status": { "conditions": [
                { "type": "Ready", "status": "False" },
                { "type": "Available", "status": "True" }
            ] }
        }))
        .unwrap();
        assert!(has_condition::<DynamicObject>("Available", "True")(Some(&obj)));
        assert!(!has_condition::<DynamicObject>("Ready", "True")(Some(&obj)));
        assert!(has_condition::<DynamicObject>("Ready", "False")(Some(&obj)));
        assert!(!has_condition::<DynamicObject>("Missing", "True")(Some(&obj)));
        assert!(!has_condition::<DynamicObject>("Ready", "False")(None));
    }

    #[test]
    fn crd_job_and_pod_conditions() {
        let crd = serde_json::from_value(json!({
            "metadata": { "name": "ws.example.com" },
            "spec": { "group": "example.com", "scope": "Namespaced", "names": { "plural": "ws", "kind": "W" }, "versions": [] },
            "status": { "conditions": [{ "type": "Established", "status": "True" }] }
        }))
        .unwrap();
        assert!(is_crd_established()(Some(&crd)));
        let job =
            serde_json::from_value(json!({ "status": { "conditions": [{ "type": "Complete", "status": "True" }] } }))
                .unwrap();
        assert!(is_job_completed()(Some(&job)));
        let failed =
            serde_json::from_value(json!({ "status": { "conditions": [{ "type": "Failed", "status": "True" }] } }))
                .unwrap();
        assert!(!is_job_completed()(Some(&failed)));
        let pod = serde_json::from_value(json!({ "status": { "phase": "Running" } })).unwrap();
        assert!(is_pod_running()(Some(&pod)));
        let pending = serde_json::from_value(json!({ "status": { "phase": "Pending" } })).unwrap();
        assert!(!is_pod_running()(Some(&pending)));
    }
}
