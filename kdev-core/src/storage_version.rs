//! Storage version migration: rewrite every object of a custom resource in its CRD's current
//! storage version, then record that no other version is stored (what
//! kube-storage-version-migrator does, and the manual steps of the Kubernetes documentation's
//! "Upgrade existing objects to a new stored version").
//!
//! A CRD serves several versions but stores each object in one: the version marked `storage`
//! when the object was last written. Changing the storage version does not touch the objects
//! already in etcd; the API server adds the new version to `status.storedVersions`, which
//! keeps every version objects may still be stored in. A version listed there cannot be
//! removed from `spec.versions` (the API server answers 422, `must appear in spec.versions`),
//! so dropping an old version takes three steps:
//!
//! 1. make the new version the storage version (and serve both for a while);
//! 2. rewrite every object: an update that changes nothing still encodes the object in the new
//!    storage version, and the API server writes it because the bytes differ ([`migrate`]);
//! 3. set `status.storedVersions` to the storage version alone ([`migrate`] does it last, once
//!    every object was rewritten), after which the old version can be removed.
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
//! Run it after every API server has seen the new storage version: in a highly available
//! control plane one that has not yet would store a concurrent write in the old version.
//! Objects created while it runs are stored in the new version anyway. An admission webhook that
//! refuses updates of some objects makes the migration fail with [`Error::Rewrite`], and
//! `storedVersions` is then left as it was.

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
/// How many times the listing starts over after its continue token expired.
const LIST_RESTARTS: usize = 3;

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
/// Each object is read in the storage version and written back unchanged with its
/// resourceVersion; one that changed since it was read is read again and rewritten, one deleted
/// since is skipped. A CRD whose `storedVersions` is already just its storage version is left
/// alone (`objects` and `rewritten` are then 0).
///
/// # Errors
/// See [`Error`]: reading the CRD or listing its objects failed, an object could not be
/// rewritten, the storage version changed meanwhile, or the status write failed.
pub async fn migrate(client: &Client, crd_name: &str) -> Result<Migration, Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get(crd_name).await.map_err(|source| Error::GetCrd {
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
        let crd = crds.get(crd_name).await.map_err(|source| Error::GetCrd {
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
        match crds
            .patch_status(crd_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
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

/// Lists every object of `resource` page by page and rewrites each; returns how many were
/// found and how many the API server wrote again.
async fn rewrite_all(client: &Client, crd: &str, resource: &ApiResource) -> Result<(usize, usize), Error> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let mut restarts = 0;
    'listing: loop {
        let (mut objects, mut rewritten) = (0, 0);
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            let page = match all.list(&params).await {
                Ok(page) => page,
                // The continue token expired (410): every object rewritten so far stays
                // rewritten, and rewriting it again is a no-op, so start over.
                Err(kube_client::Error::Api(status))
                    if status.code == 410 && params.continue_token.is_some() && restarts < LIST_RESTARTS =>
                {
                    restarts += 1;
                    tracing::debug!(crd, restarts, "list continue token expired; listing again");
                    continue 'listing;
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
}

/// Writes `object` back unchanged; `true` when the API server stored it again. Reads it again
/// after a conflict; `false` for an object deleted meanwhile.
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
        match api.replace(&name, &PostParams::default(), &object).await {
            Ok(written) => return Ok(written.resource_version() != before),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => match api.get(&name).await {
                Ok(latest) => object = latest,
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(source) => return Err(Error::Rewrite { object: shown, source }),
            },
            Err(source) => return Err(Error::Rewrite { object: shown, source }),
        }
    }
    unreachable!("the last attempt returns")
}
