//! The `coordination.k8s.io/v1` Lease lock (client-go's `resourcelock.LeaseLock`).

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube_client::api::PostParams;
use kube_client::{Api, Client};
use parking_lot::Mutex;

use super::{LeaderElectionRecord, Lock, LockError, Versioned};

/// A lock on a Lease object: the record is the Lease's spec, the version its
/// resourceVersion. Updates send the last Lease read with a new spec, so labels and
/// annotations others put on it survive.
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    labels: BTreeMap<String, String>,
    last: Mutex<Option<Lease>>,
}

impl LeaseLock {
    /// The lock on Lease `namespace/name`, for the candidate `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: impl Into<String>) -> Self {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.into(),
            labels: BTreeMap::new(),
            last: Mutex::new(None),
        }
    }

    /// Labels to put on the Lease when this candidate creates or updates it (controller-runtime's
    /// `LeaderElectionLabels`): only these keys are set, others' labels stay, as client-go's
    /// `LeaseLock` does.
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    fn remember(&self, lease: Lease) -> Versioned {
        let versioned = Versioned {
            record: record_of(lease.spec.as_ref()),
            version: lease.metadata.resource_version.clone().unwrap_or_default(),
        };
        *self.last.lock() = Some(lease);
        versioned
    }
}

fn spec_of(record: &LeaderElectionRecord) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(record.holder_identity.clone()),
        lease_duration_seconds: Some(record.lease_duration_seconds),
        acquire_time: record.acquire_time.map(MicroTime),
        renew_time: record.renew_time.map(MicroTime),
        lease_transitions: Some(record.leader_transitions),
        ..LeaseSpec::default()
    }
}

fn record_of(spec: Option<&LeaseSpec>) -> LeaderElectionRecord {
    let Some(spec) = spec else {
        return LeaderElectionRecord::default();
    };
    LeaderElectionRecord {
        holder_identity: spec.holder_identity.clone().unwrap_or_default(),
        lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
        acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
        renew_time: spec.renew_time.as_ref().map(|t| t.0),
        leader_transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn lock_error(e: kube_client::Error) -> LockError {
    match e {
        // 409: someone wrote first. 404 on an update: the Lease was deleted underneath us.
        kube_client::Error::Api(s) if s.code == 409 || s.code == 404 => LockError::Conflict,
        e => LockError::Backend(Box::new(e)),
    }
}

impl Lock for LeaseLock {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("lease {}/{}", self.namespace, self.name)
    }

    async fn get(&self) -> Result<Option<Versioned>, LockError> {
        match self.api.get_opt(&self.name).await.map_err(lock_error)? {
            Some(lease) => Ok(Some(self.remember(lease))),
            None => Ok(None),
        }
    }

    async fn create(&self, record: &LeaderElectionRecord) -> Result<Versioned, LockError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec_of(record)),
        };
        let created = self
            .api
            .create(&PostParams::default(), &lease)
            .await
            .map_err(lock_error)?;
        Ok(self.remember(created))
    }

    async fn update(&self, record: &LeaderElectionRecord, version: &str) -> Result<Versioned, LockError> {
        let mut lease = self
            .last
            .lock()
            .clone()
            .filter(|l| l.metadata.resource_version.as_deref() == Some(version))
            .unwrap_or_else(|| Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    resource_version: Some(version.to_string()),
                    ..ObjectMeta::default()
                },
                spec: None,
            });
        lease.spec = Some(spec_of(record));
        if !self.labels.is_empty() {
            lease
                .metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(self.labels.clone());
        }
        let updated = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(lock_error)?;
        Ok(self.remember(updated))
    }
}
