//! Owner references: tie an object's life to its owner's, so the garbage collector deletes
//! it with the owner ([owners and dependents](https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/);
//! controller-runtime's `controllerutil.SetControllerReference` and friends).
//!
//! An owner reference names the owner by apiVersion, kind, name and uid. At most one of an
//! object's owner references has `controller: true`: the controller that manages the object.
//! kdev's controller builder maps events of owned objects to their controller's request by
//! that reference ([`get_controller_of`]). `blockOwnerDeletion: true` makes a foreground
//! deletion of the owner wait for this dependent.
//!
//! The rules, as controller-runtime enforces them before anything is sent:
//!
//! 1. the owner must have a name and a uid (it must have been read from the API server);
//! 2. a namespaced owner (one with a namespace) can own only objects of the same namespace:
//!    the garbage collector would treat a cross-namespace or cluster-scoped dependent's
//!    reference as unresolvable. Set the dependent's namespace before calling;
//! 3. an object has at most one controller: [`set_controller_reference`] refuses with
//!    [`Error::AlreadyOwned`] when another owner is the controller, and updates the reference
//!    in place when the same owner (same group, kind and name) is.
//!
//! # Example
//!
//! ```
//! use k8s_openapi::api::apps::v1::Deployment;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::owner;
//!
//! let mut deploy = Deployment::default();
//! deploy.metadata.name = Some("web".into());
//! deploy.metadata.namespace = Some("shop".into());
//! deploy.metadata.uid = Some("3c1d...".into());
//!
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("web-config".into());
//! cm.metadata.namespace = Some("shop".into());
//! owner::set_controller_reference(&deploy, &mut cm)?;
//!
//! let r = owner::get_controller_of(&cm.metadata).unwrap();
//! assert_eq!((r.kind.as_str(), r.name.as_str(), r.block_owner_deletion), ("Deployment", "web", Some(true)));
//!
//! // Another controller cannot take it over.
//! let mut other = Deployment::default();
//! other.metadata.name = Some("api".into());
//! other.metadata.namespace = Some("shop".into());
//! other.metadata.uid = Some("9f2e...".into());
//! assert!(matches!(owner::set_controller_reference(&other, &mut cm), Err(owner::Error::AlreadyOwned { .. })));
//! # Ok::<(), owner::Error>(())
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube_core::Resource;

/// Why an owner reference was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The owner has no name or no uid: read it from the API server first.
    #[error("owner {kind} {name:?} has no {missing}")]
    IncompleteOwner {
        /// The owner's kind.
        kind: String,
        /// The owner's name, if any.
        name: Option<String>,
        /// `"name"` or `"uid"`.
        missing: &'static str,
    },
    /// A namespaced owner cannot own a cluster-scoped object (or one whose namespace is not
    /// set yet).
    #[error("cluster-scoped resource must not have a namespace-scoped owner, owner's namespace {owner_namespace}")]
    ClusterScopedDependent {
        /// The owner's namespace.
        owner_namespace: String,
    },
    /// Owner and object are in different namespaces.
    #[error(
        "cross-namespace owner references are disallowed, owner's namespace {owner_namespace}, obj's namespace {object_namespace}"
    )]
    CrossNamespace {
        /// The owner's namespace.
        owner_namespace: String,
        /// The object's namespace.
        object_namespace: String,
    },
    /// The object already has a different controller.
    #[error("object {object} is already owned by another {} controller {}", existing.kind, existing.name)]
    AlreadyOwned {
        /// The object's name.
        object: String,
        /// Its current controller reference.
        existing: Box<OwnerReference>,
    },
}

/// Options of [`set_controller_reference_with`] and [`set_owner_reference_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// `blockOwnerDeletion` of the reference. Default: `true` for controller references (as
    /// controller-runtime), unset for plain owner references.
    pub block_owner_deletion: Option<bool>,
}

fn reference<O: Resource>(owner: &O, dt: &O::DynamicType) -> Result<OwnerReference, Error> {
    let meta = owner.meta();
    let kind = O::kind(dt).into_owned();
    let missing = |what| Error::IncompleteOwner {
        kind: kind.clone(),
        name: meta.name.clone(),
        missing: what,
    };
    let name = meta
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| missing("name"))?;
    let uid = meta
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing("uid"))?;
    Ok(OwnerReference {
        api_version: O::api_version(dt).into_owned(),
        kind,
        name,
        uid,
        controller: None,
        block_owner_deletion: None,
    })
}

fn validate(owner: &ObjectMeta, object: &ObjectMeta) -> Result<(), Error> {
    let owner_ns = owner.namespace.as_deref().unwrap_or_default();
    if owner_ns.is_empty() {
        return Ok(());
    }
    let object_ns = object.namespace.as_deref().unwrap_or_default();
    if object_ns.is_empty() {
        return Err(Error::ClusterScopedDependent {
            owner_namespace: owner_ns.to_string(),
        });
    }
    if owner_ns != object_ns {
        return Err(Error::CrossNamespace {
            owner_namespace: owner_ns.to_string(),
            object_namespace: object_ns.to_string(),
        });
    }
    Ok(())
}

/// The group of an apiVersion (`""` for the core group).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Same owner as controller-runtime decides it: same group, kind and name (the version and
/// the uid may differ).
fn same_owner(a: &OwnerReference, b: &OwnerReference) -> bool {
    group(&a.api_version) == group(&b.api_version) && a.kind == b.kind && a.name == b.name
}

/// Inserts `r`, replacing a reference to the same owner.
fn upsert(meta: &mut ObjectMeta, r: OwnerReference) {
    let refs = meta.owner_references.get_or_insert_default();
    match refs.iter_mut().find(|e| same_owner(e, &r)) {
        Some(existing) => *existing = r,
        None => refs.push(r),
    }
}

/// Makes `owner` the controller of `object`: an owner reference with `controller: true` and
/// `blockOwnerDeletion: true` (controller-runtime's `SetControllerReference`). The object is
/// changed locally; write it to make it count. For dynamic owners use
/// [`set_controller_reference_with`].
///
/// # Errors
///
/// The rules in the [module docs](self): [`Error::IncompleteOwner`],
/// [`Error::ClusterScopedDependent`], [`Error::CrossNamespace`], [`Error::AlreadyOwned`].
pub fn set_controller_reference<O, K>(owner: &O, object: &mut K) -> Result<(), Error>
where
    O: Resource<DynamicType = ()>,
    K: Resource,
{
    set_controller_reference_with(owner, &(), object, Options::default())
}

/// [`set_controller_reference`] for any owner type, given its dynamic type (e.g. the
/// `ApiResource` of a `DynamicObject`), with [`Options`].
///
/// # Errors
///
/// As [`set_controller_reference`].
pub fn set_controller_reference_with<O, K>(
    owner: &O,
    dt: &O::DynamicType,
    object: &mut K,
    options: Options,
) -> Result<(), Error>
where
    O: Resource,
    K: Resource,
{
    let mut r = reference(owner, dt)?;
    r.controller = Some(true);
    r.block_owner_deletion = Some(options.block_owner_deletion.unwrap_or(true));
    validate(owner.meta(), object.meta())?;
    if let Some(existing) = get_controller_of(object.meta())
        && !same_owner(existing, &r)
    {
        return Err(Error::AlreadyOwned {
            object: object.meta().name.clone().unwrap_or_default(),
            existing: Box::new(existing.clone()),
        });
    }
    upsert(object.meta_mut(), r);
    Ok(())
}

/// Adds `owner` as a plain (non-controller) owner of `object`, or updates the reference to
/// it (controller-runtime's `SetOwnerReference`). A reference that marks the same owner as
/// controller keeps `controller: true`.
///
/// # Errors
///
/// [`Error::IncompleteOwner`], [`Error::ClusterScopedDependent`], [`Error::CrossNamespace`].
pub fn set_owner_reference<O, K>(owner: &O, object: &mut K) -> Result<(), Error>
where
    O: Resource<DynamicType = ()>,
    K: Resource,
{
    set_owner_reference_with(owner, &(), object, Options::default())
}

/// [`set_owner_reference`] for any owner type, given its dynamic type, with [`Options`].
///
/// # Errors
///
/// As [`set_owner_reference`].
pub fn set_owner_reference_with<O, K>(
    owner: &O,
    dt: &O::DynamicType,
    object: &mut K,
    options: Options,
) -> Result<(), Error>
where
    O: Resource,
    K: Resource,
{
    let mut r = reference(owner, dt)?;
    validate(owner.meta(), object.meta())?;
    let existing = object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|e| same_owner(e, &r));
    r.controller = existing.and_then(|e| e.controller);
    r.block_owner_deletion = options
        .block_owner_deletion
        .or_else(|| existing.and_then(|e| e.block_owner_deletion));
    upsert(object.meta_mut(), r);
    Ok(())
}

/// Removes the references to `owner` (same group, kind and name) from `object`; returns
/// whether there was one (controller-runtime's `RemoveOwnerReference`, which errors instead).
pub fn remove_owner_reference<O, K>(owner: &O, dt: &O::DynamicType, object: &mut K) -> bool
where
    O: Resource,
    K: Resource,
{
    let probe = OwnerReference {
        api_version: O::api_version(dt).into_owned(),
        kind: O::kind(dt).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let Some(refs) = object.meta_mut().owner_references.as_mut() else {
        return false;
    };
    let before = refs.len();
    refs.retain(|r| !same_owner(r, &probe));
    refs.len() != before
}

/// Whether some owner reference of `meta` has `controller: true`.
pub fn has_controller_reference(meta: &ObjectMeta) -> bool {
    get_controller_of(meta).is_some()
}

/// The owner reference of `meta` with `controller: true`, if any (apimachinery's
/// `metav1.GetControllerOf`).
pub fn get_controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube_core::{ApiResource, DynamicObject, GroupVersionKind};

    fn obj<K: Resource + Default>(ns: Option<&str>, name: &str, uid: Option<&str>) -> K {
        let mut k = K::default();
        k.meta_mut().namespace = ns.map(Into::into);
        k.meta_mut().name = Some(name.into());
        k.meta_mut().uid = uid.map(Into::into);
        k
    }

    #[test]
    fn controller_reference_is_set_once_and_updated_in_place_for_the_same_owner() {
        let owner: ConfigMap = obj(Some("ns"), "owner", Some("u1"));
        let mut child: ConfigMap = obj(Some("ns"), "child", None);
        set_controller_reference(&owner, &mut child).unwrap();
        // Same owner recreated (new uid): updated in place, still one reference.
        let owner2: ConfigMap = obj(Some("ns"), "owner", Some("u2"));
        set_controller_reference(&owner2, &mut child).unwrap();
        let refs = child.metadata.owner_references.as_deref().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, "u2");
        assert_eq!(
            (refs[0].controller, refs[0].block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(
            (refs[0].api_version.as_str(), refs[0].kind.as_str()),
            ("v1", "ConfigMap")
        );

        let other: ConfigMap = obj(Some("ns"), "other", Some("u3"));
        let err = set_controller_reference(&other, &mut child).unwrap_err();
        assert!(
            matches!(&err, Error::AlreadyOwned { existing, .. } if existing.name == "owner"),
            "{err}"
        );
        // A plain owner reference from the other owner is fine.
        set_owner_reference(&other, &mut child).unwrap();
        assert_eq!(child.metadata.owner_references.as_ref().unwrap().len(), 2);
        assert_eq!(get_controller_of(&child.metadata).unwrap().name, "owner");
    }

    #[test]
    fn namespace_rules_and_incomplete_owners_are_refused() {
        let owner: ConfigMap = obj(Some("a"), "owner", Some("u"));
        let mut other_ns: ConfigMap = obj(Some("b"), "c", None);
        assert!(matches!(
            set_controller_reference(&owner, &mut other_ns),
            Err(Error::CrossNamespace { .. })
        ));
        let mut cluster: Namespace = obj(None, "n", None);
        assert!(matches!(
            set_owner_reference(&owner, &mut cluster),
            Err(Error::ClusterScopedDependent { .. })
        ));
        let no_uid: ConfigMap = obj(Some("a"), "owner", None);
        let mut child: ConfigMap = obj(Some("a"), "c", None);
        assert!(matches!(
            set_controller_reference(&no_uid, &mut child),
            Err(Error::IncompleteOwner { missing: "uid", .. })
        ));
        // A cluster-scoped owner may own namespaced and cluster-scoped objects.
        let ns_owner: Namespace = obj(None, "n", Some("u"));
        set_controller_reference(&ns_owner, &mut child).unwrap();
        set_controller_reference(&ns_owner, &mut cluster).unwrap();
        assert!(child.metadata.owner_references.iter().flatten().all(|r| r.uid == "u"));
    }

    #[test]
    fn dynamic_owners_and_removal() {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
        let mut owner = DynamicObject::new("w", &ar).within("ns");
        owner.metadata.uid = Some("u".into());
        let mut child: ConfigMap = obj(Some("ns"), "c", None);
        set_controller_reference_with(
            &owner,
            &ar,
            &mut child,
            Options {
                block_owner_deletion: Some(false),
            },
        )
        .unwrap();
        let r = get_controller_of(&child.metadata).unwrap();
        assert_eq!((r.api_version.as_str(), r.kind.as_str()), ("example.com/v1", "Widget"));
        assert_eq!(r.block_owner_deletion, Some(false));
        // Plain set of the same owner keeps it the controller.
        set_owner_reference_with(&owner, &ar, &mut child, Options::default()).unwrap();
        assert!(has_controller_reference(&child.metadata));
        assert!(remove_owner_reference(&owner, &ar, &mut child));
        assert!(!remove_owner_reference(&owner, &ar, &mut child));
        assert!(!has_controller_reference(&child.metadata));
    }
}
