//! Storage version migration: rewrite every object of a custom resource in its CRD's current
//! storage version, then record that no other version is stored (what
//! kube-storage-version-migrator does, and the manual steps of the Kubernetes documentation's
//! "Upgrade existing objects to a new stored version").
//!
//! A CRD serves several versions but stores each object in one: the version marked `storage`
//! when the object was last written. Changing the storage version does not touch the objects
//! already in etcd; the API server adds the new version to `status.storedVersions`, which
//! keeps every version objects may still be stored in. A version listed there cannot be
//! removed from `spec.versions` (the API server answers 422, `missing from spec.versions; ...
//! was previously a storage version`), so dropping an old version takes three steps:
//!
//! 1. make the new version the storage version (and serve both for a while);
//! 2. rewrite every object: an update that changes nothing still encodes the object in the new
//!    storage version, and the API server writes it because the bytes differ ([`migrate`]);
//! 3. set `status.storedVersions` to the storage version alone ([`migrate`] does it last, once
//!    every object was rewritten), after which the old version can be removed.
//!
//! The API server applies a CRD change a moment after the write. [`migrate`] first waits until
//! discovery publishes the storage version's `storageVersionHash` for the resource (what
//! kube-storage-version-migrator watches), so that its writes are stored in the new version.
//!
//! # Example
//!
//! ```no_run
//! # async fn run(client: kube_client::Client) -> Result<(), kdev_core::storage_version::Error> {
//! // After switching the storage version of crontabs.stable.example.com from v1beta1 to v1:
//! let done = kdev_core::storage_version::migrate(&client, "crontabs.stable.example.com").await?;
//! println!(
//!     "{} of {} objects rewritten in {}; storedVersions was {:?}",
//!     done.rewritten, done.objects, done.storage_version, done.stored_versions_before
//! );
//! # Ok(())
//! # }
//! ```
//!
//! The lesson `crd_versions` of the learning path runs these steps on kdev's embedded API
//! server.
//!
//! # Caveats
//!
//! Discovery is answered by one API server: in a highly available control plane, wait until
//! every API server has seen the CRD change (another one would store a concurrent write in the
//! old version). The rewrites are ordinary updates: admission webhooks see them, and a mutating
//! one may change the objects. One that refuses updates of some objects makes the migration fail
//! with [`Error::Rewrite`], and `storedVersions` is then left as it was. Lists and writes that
//! fail for a while (429, 500, 503, 504, a lost connection) are retried; an expired continue
//! token is followed by the one its 410 answer carries, as kube-storage-version-migrator does.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use kube_core::ResourceExt;
use serde_json::json;

use crate::object::{is_conflict, is_not_found};

/// How many objects one list page asks for (client-go's pager default).
const PAGE_SIZE: u32 = 500;
/// How many times an object changed since it was read is read again and rewritten, and the
/// CRD's status is retried after a conflict (client-go's `retry.DefaultRetry` steps).
const ATTEMPTS: usize = 5;
/// How many times the listing starts over after its continue token expired without a new one.
const LIST_RESTARTS: usize = 3;
/// How many times a list or a write failing for a while is tried, 200 ms apart and doubling.
const TRANSIENT_ATTEMPTS: u32 = 6;
/// How long the API server may take to store in the CRD's storage version.
const SERVED_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// The CRD's name, `<plural>.<group>`.
    pub crd: String,
    /// The storage version every object is now stored in.
    pub storage_version: String,
    /// `status.storedVersions` before the migration; it is now `[storage_version]`.
    pub stored_versions_before: Vec<String>,
    /// How many objects were found.
    pub objects: usize,
    /// How many of them the API server wrote again (their resourceVersion changed); the others
    /// were stored in the storage version already, or deleted while the migration ran.
    pub rewritten: usize,
}

/// Why [`migrate`] failed. `storedVersions` is only changed after every object was rewritten,
/// so a failed migration can be run again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the CRD failed.
    #[error("reading CustomResourceDefinition {crd} failed")]
    GetCrd {
        /// The CRD's name.
        crd: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// The CRD marks no version, or more than one, as the storage version.
    #[error("CustomResourceDefinition {crd} has no single storage version")]
    NoStorageVersion {
        /// The CRD's name.
        crd: String,
    },
    /// The storage version is not served (`served: false`), or the API server did not publish it
    /// as the storage version in discovery within a minute.
    #[error("the API server does not store {crd} in {version}: it is not served, or not yet the storage version")]
    StorageVersionNotServed {
        /// The CRD's name.
        crd: String,
        /// The storage version.
        version: String,
    },
    /// Listing the custom resources failed.
    #[error("listing the objects of {crd} failed")]
    List {
        /// The CRD's name.
        crd: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// Rewriting one object failed (an admission webhook refused it, or it kept changing).
    #[error("rewriting {object} failed")]
    Rewrite {
        /// The object, `namespace/name` or `name`.
        object: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// The CRD's storage version changed while the objects were rewritten: run it again.
    #[error("the storage version of {crd} changed from {from} to {to} during the migration")]
    StorageVersionChanged {
        /// The CRD's name.
        crd: String,
        /// The storage version the objects were rewritten in.
        from: String,
        /// The storage version now.
        to: String,
    },
    /// Writing `status.storedVersions` failed.
    #[error("updating status.storedVersions of {crd} failed")]
    UpdateStatus {
        /// The CRD's name.
        crd: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
}

/// Rewrites every object of the custom resource `crd_name` (`<plural>.<group>`) in the CRD's
/// storage version, then sets its `status.storedVersions` to that version alone, so the
/// versions stored before can be removed from `spec.versions`.
///
/// It first waits (a minute at most) until discovery publishes the storage version for the
/// resource. Each object is then read in the storage version and written back as it was read,
/// with its resourceVersion; one that changed since is read again and rewritten, one deleted
/// since is skipped. A CRD whose `storedVersions` is already just its storage version is left
/// alone (`objects` and `rewritten` are then 0).
///
/// # Errors
/// See [`Error`]: reading the CRD or listing its objects failed, the storage version is not
/// served, an object could not be rewritten, the storage version changed meanwhile, or the status
/// write failed.
pub async fn migrate(client: &Client, crd_name: &str) -> Result<Migration, Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = retrying(|| crds.get(crd_name)).await.map_err(|source| Error::GetCrd {
        crd: crd_name.to_string(),
        source,
    })?;
    let storage_version = storage_version_of(&crd).ok_or_else(|| Error::NoStorageVersion {
        crd: crd_name.to_string(),
    })?;
    let stored_versions_before = stored_versions(&crd);
    let mut migration = Migration {
        crd: crd_name.to_string(),
        storage_version: storage_version.clone(),
        stored_versions_before,
        objects: 0,
        rewritten: 0,
    };
    if migration.stored_versions_before == [storage_version.as_str()] {
        return Ok(migration);
    }

    wait_until_stored_in(client, &crd, &storage_version).await?;
    let resource = ApiResource {
        group: crd.spec.group.clone(),
        version: storage_version.clone(),
        api_version: format!("{}/{storage_version}", crd.spec.group),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    let (objects, rewritten) = rewrite_all(client, crd_name, &resource).await?;
    migration.objects = objects;
    migration.rewritten = rewritten;
    tracing::info!(crd = crd_name, storage_version, objects, rewritten, "objects rewritten");

    for attempt in 1..=ATTEMPTS {
        let crd = retrying(|| crds.get(crd_name)).await.map_err(|source| Error::GetCrd {
            crd: crd_name.to_string(),
            source,
        })?;
        let now = storage_version_of(&crd).unwrap_or_default();
        if now != storage_version {
            return Err(Error::StorageVersionChanged {
                crd: crd_name.to_string(),
                from: storage_version,
                to: now,
            });
        }
        // The resourceVersion is a precondition: a CRD changed since this read is read again.
        let patch = json!({
            "metadata": { "resourceVersion": crd.resource_version() },
            "status": { "storedVersions": [storage_version] },
        });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        match retrying(|| crds.patch_status(crd_name, &params, &patch)).await {
            Ok(_) => return Ok(migration),
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => continue,
            Err(source) => {
                return Err(Error::UpdateStatus {
                    crd: crd_name.to_string(),
                    source,
                });
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// The name of the version `crd` stores objects in, when exactly one is marked.
fn storage_version_of(crd: &CustomResourceDefinition) -> Option<String> {
    let mut storage = crd.spec.versions.iter().filter(|v| v.storage);
    match (storage.next(), storage.next()) {
        (Some(v), None) => Some(v.name.clone()),
        _ => None,
    }
}

fn stored_versions(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default()
}

/// The `storageVersionHash` discovery publishes for a resource stored as `group/version/kind`
/// (apiserver's `StorageVersionHash`): the first 8 bytes of its SHA-256, in base64.
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}"));
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// Waits until discovery publishes `version` as the storage version of `crd`'s resource. A
/// server that publishes no hash is taken at its word.
async fn wait_until_stored_in(client: &Client, crd: &CustomResourceDefinition, version: &str) -> Result<(), Error> {
    let not_served = || Error::StorageVersionNotServed {
        crd: crd.name_any(),
        version: version.to_string(),
    };
    if !crd.spec.versions.iter().any(|v| v.name == version && v.served) {
        return Err(not_served());
    }
    let expected = storage_version_hash(&crd.spec.group, version, &crd.spec.names.kind);
    let group_version = format!("{}/{version}", crd.spec.group);
    let deadline = tokio::time::Instant::now() + SERVED_TIMEOUT;
    loop {
        // Until the version is served, discovery answers 404: keep asking.
        if let Ok(list) = client.list_api_group_resources(&group_version).await
            && let Some(found) = list.resources.iter().find(|r| r.name == crd.spec.names.plural)
        {
            match found.storage_version_hash.as_deref() {
                None | Some("") => return Ok(()),
                Some(hash) if hash == expected => return Ok(()),
                Some(_) => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(not_served());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a failed request may succeed if tried again (kube-storage-version-migrator's
/// `canRetry`): too many requests, a server error or timeout, or no answer at all.
fn transient(err: &kube_client::Error) -> bool {
    match err {
        kube_client::Error::Api(status) => matches!(status.code, 429 | 500 | 503 | 504),
        kube_client::Error::HyperError(_) | kube_client::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `request` until it succeeds, fails for good, or failed for a while
/// [`TRANSIENT_ATTEMPTS`] times.
async fn retrying<T, F, Fut>(mut request: F) -> Result<T, kube_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube_client::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match request().await {
            Err(e) if transient(&e) && attempt < TRANSIENT_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Lists every object of `resource` page by page and rewrites each; returns how many were
/// found and how many the API server wrote again.
async fn rewrite_all(client: &Client, crd: &str, resource: &ApiResource) -> Result<(usize, usize), Error> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let (mut objects, mut rewritten) = (0, 0);
    let mut restarts = 0;
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = match retrying(|| all.list(&params)).await {
            Ok(page) => page,
            // The continue token expired (410). Its answer carries one for the rest of the list
            // at the current resourceVersion (an "inconsistent" continue): go on with it, or
            // start over without one. Rewriting an object twice is harmless: the second is a
            // no-op.
            Err(kube_client::Error::Api(status)) if status.code == 410 && params.continue_token.is_some() => {
                let token = status.metadata.as_ref().and_then(|m| m.continue_.clone());
                match token.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None if restarts < LIST_RESTARTS => {
                        restarts += 1;
                        params = ListParams::default().limit(PAGE_SIZE);
                    }
                    None => {
                        return Err(Error::List {
                            crd: crd.to_string(),
                            source: kube_client::Error::Api(status),
                        });
                    }
                }
                tracing::debug!(crd, "list continue token expired; listing on");
                continue;
            }
            Err(source) => {
                return Err(Error::List {
                    crd: crd.to_string(),
                    source,
                });
            }
        };
        for object in page.items {
            objects += 1;
            if rewrite(client, resource, object).await? {
                rewritten += 1;
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((objects, rewritten)),
        }
    }
}

/// Writes `object` back as it was read; `true` when the API server stored it again. Reads it
/// again after a conflict; `false` for an object deleted meanwhile.
async fn rewrite(client: &Client, resource: &ApiResource, mut object: DynamicObject) -> Result<bool, Error> {
    let name = object.name_any();
    let api: Api<DynamicObject> = match object.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let shown = match object.namespace() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    };
    for attempt in 1..=ATTEMPTS {
        let before = object.resource_version();
        let params = PostParams::default();
        match retrying(|| api.replace(&name, &params, &object)).await {
            Ok(written) => return Ok(written.resource_version() != before),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => match retrying(|| api.get(&name)).await {
                Ok(latest) => object = latest,
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(source) => return Err(Error::Rewrite { object: shown, source }),
            },
            Err(source) => return Err(Error::Rewrite { object: shown, source }),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_version_hashes_are_kube_apiservers() {
        // As `kubectl get --raw /apis/apps/v1` shows them.
        assert_eq!(super::storage_version_hash("apps", "v1", "Deployment"), "8aSe+NMegvE=");
    }
}
