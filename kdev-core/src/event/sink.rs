//! The sending task: creates Event objects and patches their series, with client-go's
//! retry policy (`tools/events` `recordToSink`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::events::v1::Event;
use kube_client::api::{Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Job, Shared};

/// Sends queued writes in order until `stop` or until every sender is gone.
pub(super) async fn run(shared: Arc<Shared>, client: Client, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
    loop {
        let job = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = send_with_retries(&shared, &client, job) => {}
        }
        shared.outstanding.send_modify(|n| *n = n.saturating_sub(1));
    }
    // Whatever is still queued is dropped; nobody may wait for it.
    shared.state.lock().accepting = false;
    rx.close();
    shared.outstanding.send_replace(0);
}

/// Whether a failed write may succeed later: transport errors, 429 and 5xx. Other API
/// errors (AlreadyExists, a terminating namespace, validation) will not.
fn retriable(e: &kube_client::Error) -> bool {
    match e {
        kube_client::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

async fn send_with_retries(shared: &Shared, client: &Client, job: Job) {
    let config = &shared.config;
    for attempt in 1..=config.max_tries {
        match send(shared, client, &job).await {
            Ok(()) => return,
            Err(e) if retriable(&e) && attempt < config.max_tries => {
                tracing::debug!(error = %e, attempt, "writing event failed, will retry");
                // client-go randomises the first pause so that many recorders do not retry in step.
                let pause = if attempt == 1 {
                    config.retry_interval.mul_f64(fastrand::f64())
                } else {
                    config.retry_interval
                };
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, event = ?job.snapshot.metadata.name, "dropping event after failed write");
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// One attempt: create the Event, or patch its series (creating it if it disappeared).
async fn send(shared: &Shared, client: &Client, job: &Job) -> Result<(), kube_client::Error> {
    let (event, created) = {
        let mut state = shared.state.lock();
        match state.series.peek_mut(&job.key) {
            // Same Event object: send its latest count.
            Some(entry) if entry.event.metadata.name == job.snapshot.metadata.name => {
                entry.queued = false;
                (entry.event.clone(), entry.created)
            }
            _ => ((*job.snapshot).clone(), job.created),
        }
    };
    let ns = event.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let name = event.metadata.name.as_deref().unwrap_or_default();
    if created && let Some(series) = &event.series {
        let patch = json!({ "series": series });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                shared.counters.patched.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // Expired or deleted meanwhile: create it again, series included.
            Err(kube_client::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {}
        // An earlier try got through after all.
        Err(kube_client::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    shared.counters.created.fetch_add(1, Ordering::Relaxed);
    let mut state = shared.state.lock();
    if let Some(entry) = state.series.peek_mut(&job.key)
        && entry.event.metadata.name == event.metadata.name
    {
        entry.created = true;
    }
    Ok(())
}
