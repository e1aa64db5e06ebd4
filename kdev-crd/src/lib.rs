//! kdev-crd: CustomResourceDefinitions from Rust types — the runtime half of
//! `#[derive(CustomResource)]` (kdev-derive).
//!
//! A derive macro can only emit code; turning schemars' JSON Schema into a *structural*
//! schema and assembling an apiextensions.k8s.io/v1 `CustomResourceDefinition` is ordinary
//! code, so it lives here, where it is tested, documented, and usable on its own (for a
//! hand-written resource type, or to inspect what the derive produces). Users normally reach it
//! through the facade: `kdev::crd` and `kdev::CustomResource` (feature `derive`).
//!
//! # Example
//!
//! ```
//! use serde_json::json;
//!
//! /// What the user asks for.
//! #[derive(schemars::JsonSchema)]
//! #[serde(rename_all = "camelCase")]
//! struct MyAppSpec {
//!     replicas: Option<i32>,
//!     image_pull_policy: Policy,
//! }
//!
//! #[derive(schemars::JsonSchema)]
//! enum Policy { Always, IfNotPresent, Never }
//!
//! let schema = kdev_crd::schema::schema_for::<MyAppSpec>();
//! assert_eq!(schema["properties"]["imagePullPolicy"],
//!            json!({ "type": "string", "enum": ["Always", "IfNotPresent", "Never"] }));
//! assert_eq!(schema["required"], json!(["imagePullPolicy"]));
//! ```
//!
//! # Modules
//!
//! | module | what it is |
//! |---|---|
//! | [`conversion`] | hub-and-spoke conversion between a kind's versions ([`conversion::Hub`], [`conversion::Convertible`], [`conversion::Converter`]) |
//! | [`schema`] | schemars' JSON Schema → structural OpenAPI v3 schema, and field-level overrides |
//!
//! At the crate root: [`merge_versions`] (the versions of one kind into one CRD, exactly one
//! storage version), and [`registered`], [`to_yaml`] and [`crdgen`] (every CRD the program's
//! derives generated, as the YAML `kubectl apply -f` reads: what `make manifests` is to
//! kubebuilder users).

pub mod conversion;
pub mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value, json};

/// What can go wrong assembling a CRD.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field-level attribute names a field the schema of the spec does not have (a field
    /// skipped by serde, or flattened into its parent).
    #[error("{kind}: field {field:?} carries schema attributes but is not in the spec's schema")]
    UnknownField {
        /// The resource kind.
        kind: String,
        /// The field's name on the wire.
        field: String,
    },
    /// The assembled JSON is not a valid apiextensions.k8s.io/v1 CustomResourceDefinition.
    #[error("{kind}: the assembled CustomResourceDefinition does not parse")]
    Assemble {
        /// The resource kind.
        kind: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A `default` given explicitly (`#[kdev(default = ...)]`, `default_json`) breaks the
    /// validations of its own field (its type, `enum`, bounds, lengths, sizes or required
    /// fields): the API server would refuse the CRD. (A default derived from
    /// `#[serde(default)]` that does so is left out of the schema instead.)
    #[error("{kind}: the default of spec{path} does not fit its schema: {reason}")]
    InvalidDefault {
        /// The resource kind.
        kind: String,
        /// Where the default is, in the spec's schema (`.properties.size`).
        path: String,
        /// What it breaks, from the default's value down (`default.limit: must be at most 5`).
        reason: String,
    },
    /// A list breaks the rules kube-apiserver puts on its `x-kubernetes-list-type`
    /// (`#[kdev(list_type = ...)]`, `list_map_keys(...)`, `unique_items`): the API server would
    /// refuse the CRD. A `map` list needs `list_map_keys`, items that are objects, and keys that
    /// are scalar fields of the items, never nullable, and required or defaulted (kubebuilder's
    /// "this property is in x-kubernetes-list-map-keys, so it must have a default or be a
    /// required property"); a `set` list needs scalar or atomic items; the items of neither may
    /// be nullable.
    #[error("{kind}: the list {path} breaks the rules of its list type: {reason}")]
    InvalidListType {
        /// The resource kind.
        kind: String,
        /// Where the list is, in the schema of the spec or the status
        /// (`spec.properties.ports`, `status.properties.conditions`).
        path: String,
        /// The key of a `map` list at fault (as in `list_map_keys`), if one is.
        key: Option<String>,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// The CRDs do not serialize as YAML.
    #[error("writing YAML: {0}")]
    Yaml(String),
    /// [`merge_versions`] got no CRD.
    #[error("merging versions: no CustomResourceDefinition given")]
    NoVersions,
    /// [`merge_versions`] got CRDs that do not describe the same kind: they differ in `what`.
    #[error(
        "merging versions of {kind}: versions {versions} disagree on {what}: {first:?} vs {other:?}{}",
        if *what == "spec.scope" { " (a derived kind is cluster-scoped unless #[kdev(namespaced)] says otherwise; give every version the same scope)" } else { "" }
    )]
    Mismatch {
        /// The resource kind (of the first CRD).
        kind: String,
        /// What differs: `spec.group`, `spec.names.kind`, `spec.names.plural`, `spec.scope`, ...
        what: &'static str,
        /// Which versions differ: those merged so far, then those of the CRD that differs
        /// (`v1 and v2`).
        versions: String,
        /// The first CRD's value.
        first: String,
        /// The differing value.
        other: String,
    },
    /// [`merge_versions`] got the same version name twice.
    #[error("merging versions of {kind}: version {version:?} is given twice")]
    DuplicateVersion {
        /// The resource kind.
        kind: String,
        /// The version name.
        version: String,
    },
    /// Several versions of one kind, and not exactly one of them is marked as the storage
    /// version (`#[kdev(storage)]`, kubebuilder's `+kubebuilder:storageversion`).
    #[error(
        "{kind} has {} storage versions ({}): a kind with several versions stores objects in exactly one, \
         mark it with #[kdev(storage)]",
        marked.len(),
        if marked.is_empty() { format!("none of {}", versions.join(", ")) } else { marked.join(", ") }
    )]
    StorageVersion {
        /// The resource kind.
        kind: String,
        /// The versions marked as storage.
        marked: Vec<String>,
        /// Every version.
        versions: Vec<String>,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The description of `apiVersion` (apimachinery's `TypeMeta`), as controller-gen writes it,
/// for `kubectl explain`.
const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object.\n\
    Servers should convert recognized schemas to the latest internal value, and\n\
    may reject unrecognized values.\n\
    More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";

/// The description of `kind` (apimachinery's `TypeMeta`), as controller-gen writes it.
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents.\n\
    Servers may infer this from the endpoint the client submits requests to.\n\
    Cannot be updated.\n\
    In CamelCase.\n\
    More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// The openAPIV3Schema of a custom resource: `apiVersion` and `kind` (with apimachinery's
/// descriptions), `metadata` and the given structural `spec` (required) and `status` schemas.
pub fn resource_schema(spec: Value, status: Option<Value>) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        json!({ "description": API_VERSION_DESCRIPTION, "type": "string" }),
    );
    properties.insert(
        "kind".into(),
        json!({ "description": KIND_DESCRIPTION, "type": "string" }),
    );
    properties.insert("metadata".into(), json!({ "type": "object" }));
    let description = spec.get("description").cloned();
    properties.insert("spec".into(), spec);
    if let Some(status) = status {
        properties.insert("status".into(), status);
    }
    let mut root = Map::new();
    if let Some(description) = description {
        root.insert("description".into(), description);
    }
    root.insert("type".into(), json!("object"));
    root.insert("properties".into(), Value::Object(properties));
    root.insert("required".into(), json!(["spec"]));
    Value::Object(root)
}

/// The annotation with which a version generated with `#[kdev(storage)]` carries its marker
/// until [`merge_versions`] turns it into `storage: true` on that version alone.
pub const STORAGE_VERSION_ANNOTATION: &str = "crd.kdev.dev/storage-version";

/// Combines the CRDs of several versions of one kind (each `MyKindV1::crd()`, ...) into the
/// kind's one CustomResourceDefinition, as controller-gen does for the versions of a group.
///
/// The CRDs must agree on group, kind, plural, singular, list kind and scope; short names,
/// categories, labels and annotations are joined. Each version keeps its schema,
/// subresources, printer columns, selectable fields and `served`/`deprecated` settings.
/// Exactly one version is the storage version: the one marked `#[kdev(storage)]`, or the only
/// version there is. The result lists the versions in the order given.
///
/// # Errors
///
/// [`Error::NoVersions`], [`Error::Mismatch`] (naming what differs),
/// [`Error::DuplicateVersion`], and [`Error::StorageVersion`] when several versions are given
/// and not exactly one is marked as the storage version.
///
/// # Examples
///
/// ```
/// # use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
/// # fn version(name: &str, storage: bool) -> CustomResourceDefinition {
/// #     let mut crd = serde_json::json!({ "metadata": { "name": "widgets.example.com" }, "spec": {
/// #         "group": "example.com", "scope": "Namespaced",
/// #         "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
/// #         "versions": [{ "name": name, "served": true, "storage": true }] } });
/// #     if storage { crd["metadata"]["annotations"] = serde_json::json!({ kdev_crd::STORAGE_VERSION_ANNOTATION: name }); }
/// #     serde_json::from_value(crd).unwrap()
/// # }
/// // WidgetV1::crd() and WidgetV2::crd(), v2 marked #[kdev(storage)]:
/// let crd = kdev_crd::merge_versions([version("v1", false), version("v2", true)]).unwrap();
/// let storage: Vec<_> = crd.spec.versions.iter().map(|v| (v.name.as_str(), v.storage)).collect();
/// assert_eq!(storage, [("v1", false), ("v2", true)]);
///
/// // Both marked: an error that names them.
/// let err = kdev_crd::merge_versions([version("v1", true), version("v2", true)]).unwrap_err();
/// assert!(err.to_string().starts_with("Widget has 2 storage versions (v1, v2)"));
/// ```
pub fn merge_versions(crds: impl IntoIterator<Item = CustomResourceDefinition>) -> Result<CustomResourceDefinition> {
    let mut crds = crds.into_iter();
    let mut merged = crds.next().ok_or(Error::NoVersions)?;
    let kind = merged.spec.names.kind.clone();
    let mut marked = Vec::new();
    let take_marker = |crd: &mut CustomResourceDefinition, marked: &mut Vec<String>| {
        let annotations = crd.metadata.annotations.as_mut();
        if let Some(version) = annotations.and_then(|a| a.remove(STORAGE_VERSION_ANNOTATION)) {
            marked.push(version);
        }
        if crd.metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            crd.metadata.annotations = None;
        }
    };
    take_marker(&mut merged, &mut marked);
    for mut crd in crds {
        take_marker(&mut crd, &mut marked);
        let (a, b) = (&merged.spec, &crd.spec);
        let checks: [(&'static str, String, String); 6] = [
            ("spec.group", a.group.clone(), b.group.clone()),
            ("spec.names.kind", a.names.kind.clone(), b.names.kind.clone()),
            ("spec.names.plural", a.names.plural.clone(), b.names.plural.clone()),
            (
                "spec.names.singular",
                a.names.singular.clone().unwrap_or_default(),
                b.names.singular.clone().unwrap_or_default(),
            ),
            (
                "spec.names.listKind",
                a.names.list_kind.clone().unwrap_or_default(),
                b.names.list_kind.clone().unwrap_or_default(),
            ),
            ("spec.scope", a.scope.clone(), b.scope.clone()),
        ];
        let names = |crd: &CustomResourceDefinition| {
            crd.spec
                .versions
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (what, first, other) in checks {
            if first != other {
                return Err(Error::Mismatch {
                    kind,
                    what,
                    versions: format!("{} and {}", names(&merged), names(&crd)),
                    first,
                    other,
                });
            }
        }
        let join = |own: &mut Option<Vec<String>>, more: Option<Vec<String>>| {
            for item in more.unwrap_or_default() {
                let own = own.get_or_insert_with(Vec::new);
                if !own.contains(&item) {
                    own.push(item);
                }
            }
        };
        join(&mut merged.spec.names.short_names, crd.spec.names.short_names);
        join(&mut merged.spec.names.categories, crd.spec.names.categories);
        for (own, more) in [
            (&mut merged.metadata.annotations, crd.metadata.annotations),
            (&mut merged.metadata.labels, crd.metadata.labels),
        ] {
            if let Some(more) = more {
                own.get_or_insert_with(Default::default).extend(more);
            }
        }
        for version in crd.spec.versions {
            if merged.spec.versions.iter().any(|v| v.name == version.name) {
                return Err(Error::DuplicateVersion {
                    kind,
                    version: version.name,
                });
            }
            merged.spec.versions.push(version);
        }
    }
    let versions: Vec<String> = merged.spec.versions.iter().map(|v| v.name.clone()).collect();
    let storage = match (marked.as_slice(), versions.as_slice()) {
        ([one], _) => one.clone(),
        ([], [only]) => only.clone(),
        _ => {
            return Err(Error::StorageVersion { kind, marked, versions });
        }
    };
    for version in &mut merged.spec.versions {
        version.storage = version.name == storage;
    }
    Ok(merged)
}

/// Every custom resource `#[derive(CustomResource)]` generated in this program, as one CRD per
/// kind: the versions of a kind (same group and plural) merged with [`merge_versions`], ordered
/// as Kubernetes orders versions (`v1alpha1` < `v1beta1` < `v1` < `v2`), the CRDs ordered by
/// name.
///
/// The derive registers each resource with the `inventory` crate (no `unsafe` in your crate),
/// so this sees every resource of every crate linked into the program: call it from a binary
/// of the crate that defines them (see [`crdgen`]).
///
/// # Errors
///
/// A resource whose CRD does not assemble ([`Error::UnknownField`], [`Error::Assemble`]) or
/// that the API server would refuse ([`Error::InvalidDefault`], [`Error::InvalidListType`]), or
/// a kind whose versions do not merge (see [`merge_versions`]).
pub fn registered() -> Result<Vec<CustomResourceDefinition>> {
    let mut kinds: std::collections::BTreeMap<String, Vec<CustomResourceDefinition>> = Default::default();
    for registered in inventory::iter::<__private::Registered> {
        let crd = (registered.crd)()?;
        kinds
            .entry(crd.metadata.name.clone().unwrap_or_default())
            .or_default()
            .push(crd);
    }
    kinds
        .into_values()
        .map(|mut versions| {
            versions.sort_by_key(|crd| {
                let name = crd.spec.versions.first().map(|v| v.name.as_str()).unwrap_or_default();
                kube_core::Version::parse(name).priority()
            });
            merge_versions(versions)
        })
        .collect()
}

/// The CRDs as multi-document YAML (documents separated by `---`), as `kubectl apply -f`
/// reads it. Whole numbers print as integers (`maximum: 10`, as controller-gen writes them),
/// though k8s-openapi holds a schema's bounds as floating point.
///
/// # Errors
///
/// [`Error::Yaml`] when a CRD does not serialize (it always does for k8s-openapi's types).
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String> {
    let documents = crds
        .iter()
        .map(|crd| serde_json::to_value(crd).map(whole_numbers))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Yaml(e.to_string()))?;
    serde_saphyr::to_string_multiple(&documents).map_err(|e| Error::Yaml(e.to_string()))
}

/// `value` with every floating-point number that is a whole number written as an integer.
fn whole_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                // In range, so the conversion is exact.
                #[allow(clippy::cast_possible_truncation)]
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, whole_numbers(v))).collect()),
        other => other,
    }
}

/// Prints every CRD of the program ([`registered`]) to stdout as YAML: the body of a
/// `crdgen` binary, what `make manifests` is to kubebuilder users.
///
/// Add `src/bin/crdgen.rs` to the crate that defines the resources (through the facade this is
/// `kdev::crd::crdgen()`):
///
/// ```no_run
/// fn main() -> std::process::ExitCode { kdev_crd::crdgen() }
/// ```
///
/// and run `cargo run --bin crdgen > config/crds.yaml`. (When the resources live in a library
/// and the binary is in another crate, name anything of the library in the binary, e.g.
/// `use my_operator as _;`, so that it is linked.) Errors go to stderr, with exit code 1.
pub fn crdgen() -> std::process::ExitCode {
    match registered().and_then(|crds| to_yaml(&crds)) {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What the derive's generated code calls. Not public API: it changes with kdev-derive.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use k8s_openapi;
    pub use kube_core;
    pub use schemars;
    pub use serde;
    pub use serde_json;

    use super::*;

    /// One resource the derive registered, for [`registered`](super::registered).
    pub struct Registered {
        /// Its `try_crd`.
        pub crd: fn() -> Result<CustomResourceDefinition>,
    }

    inventory::collect!(Registered);

    /// `schemars::JsonSchema`, as the derive requires it of the spec and status types: a
    /// missing impl is reported with this trait's message, which says what to add, instead of
    /// schemars' bound and a list of every type that implements it.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` does not implement `schemars::JsonSchema`, so `#[derive(CustomResource)]` cannot build the CRD's schema from it",
        label = "`{Self}` has no JSON schema",
        note = "add `#[derive(schemars::JsonSchema)]` to `{Self}`",
        note = "without a schemars dependency of your own, `use kdev::schemars;` lets that derive find it"
    )]
    pub trait CrdSchema: schemars::JsonSchema {}

    // An unsatisfied `CrdSchema` is reported as itself, with the message above, not as the
    // schemars bound this impl would need.
    #[diagnostic::do_not_recommend]
    impl<T: schemars::JsonSchema + ?Sized> CrdSchema for T {}

    /// [`schema_for`](crate::schema::schema_for) with the bound the derive's error message
    /// comes from.
    pub fn schema_for<T: CrdSchema + ?Sized>() -> Value {
        crate::schema::schema_for::<T>()
    }

    /// Builds the CRD from the derive's skeleton (`crd`, a CRD without its schema, as JSON),
    /// its field overrides (`patches`: wire field name, or `""` for the spec itself → schema
    /// keywords) and the spec and status schemas.
    pub fn crd(
        kind: &str,
        crd: &str,
        patches: &str,
        mut spec: Value,
        status: Option<Value>,
    ) -> Result<CustomResourceDefinition> {
        let assemble = |source| Error::Assemble {
            kind: kind.to_owned(),
            source,
        };
        let patches: Map<String, Value> = serde_json::from_str(patches).map_err(assemble)?;
        for (field, patch) in &patches {
            let Value::Object(patch) = patch else { continue };
            let target = if field.is_empty() {
                spec.as_object_mut()
            } else {
                spec.pointer_mut(&format!("/properties/{}", field.replace('~', "~0").replace('/', "~1")))
                    .and_then(Value::as_object_mut)
            };
            let Some(target) = target else {
                return Err(Error::UnknownField {
                    kind: kind.to_owned(),
                    field: field.clone(),
                });
            };
            schema::apply(target, patch);
            if !patch.contains_key("default") {
                // The attribute may add a validation the serde default breaks (`min_length`).
                schema::settle_default(target);
            }
        }
        if let Some((path, reason)) = schema::misfit_default(&spec) {
            return Err(Error::InvalidDefault {
                kind: kind.to_owned(),
                path,
                reason,
            });
        }
        for (root, schema) in [("spec", Some(&spec)), ("status", status.as_ref())] {
            if let Some(misfit) = schema.and_then(schema::list_type_misfit) {
                return Err(Error::InvalidListType {
                    kind: kind.to_owned(),
                    path: format!("{root}{}", misfit.path),
                    key: misfit.key,
                    reason: misfit.reason,
                });
            }
        }
        let mut crd: Value = serde_json::from_str(crd).map_err(assemble)?;
        if let Some(Value::Object(version)) = crd.pointer_mut("/spec/versions/0") {
            version.insert(
                "schema".into(),
                json!({ "openAPIV3Schema": resource_schema(spec, status) }),
            );
        }
        serde_json::from_value(crd).map_err(assemble)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_writes_whole_numbers_as_integers() {
        let mut crd = serde_json::to_value(version("Widget", "v1", true)).unwrap();
        crd["spec"]["versions"][0]["schema"] = json!({ "openAPIV3Schema": { "type": "object", "properties": {
            "size": { "type": "integer", "minimum": 1.0, "maximum": 10.0 },
            "ratio": { "type": "number", "maximum": 0.5 } } } });
        let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
        let yaml = to_yaml(&[crd]).unwrap();
        assert!(yaml.contains("maximum: 10\n"), "{yaml}");
        assert!(yaml.contains("minimum: 1\n"), "{yaml}");
        assert!(yaml.contains("maximum: 0.5\n"), "{yaml}");
        assert!(!yaml.contains(".0\n"), "{yaml}");
    }

    fn version(kind: &str, name: &str, storage: bool) -> CustomResourceDefinition {
        let mut crd = json!({
            "metadata": { "name": "widgets.example.com", "labels": { name: "yes" } },
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": { "kind": kind, "plural": "widgets", "singular": "widget", "listKind": "WidgetList",
                           "shortNames": [format!("w{name}")] },
                "versions": [{ "name": name, "served": name != "v1", "storage": true, "deprecated": name == "v1" }]
            }
        });
        if storage {
            crd["metadata"]["annotations"] = json!({ STORAGE_VERSION_ANNOTATION: name });
        }
        serde_json::from_value(crd).unwrap()
    }

    #[test]
    fn versions_merge_into_one_crd_with_one_storage_version() {
        let crd = merge_versions([
            version("Widget", "v1", false),
            version("Widget", "v2", true),
            version("Widget", "v3", false),
        ])
        .unwrap();
        let got: Vec<_> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage, v.deprecated))
            .collect();
        assert_eq!(
            got,
            [
                ("v1", false, false, Some(true)),
                ("v2", true, true, Some(false)),
                ("v3", true, false, Some(false))
            ]
        );
        assert_eq!(crd.metadata.annotations, None, "the marker annotation is consumed");
        assert_eq!(crd.metadata.labels.map(|l| l.len()), Some(3));
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["wv1".into(), "wv2".into(), "wv3".into()])
        );
    }

    #[test]
    fn a_single_version_is_its_own_storage_version() {
        let crd = merge_versions([version("Widget", "v1", false)]).unwrap();
        assert!(crd.spec.versions[0].storage);
    }

    #[test]
    fn merging_rejects_what_is_not_one_kind_with_one_storage_version() {
        let err = merge_versions([version("Widget", "v1", true), version("Widget", "v2", true)]).unwrap_err();
        assert!(
            matches!(&err, Error::StorageVersion { marked, .. } if marked == &["v1", "v2"]),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "Widget has 2 storage versions (v1, v2): a kind with several versions stores objects in exactly one, \
             mark it with #[kdev(storage)]"
        );
        let err = merge_versions([version("Widget", "v1", false), version("Widget", "v2", false)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Widget has 0 storage versions (none of v1, v2): a kind with several versions stores objects in \
             exactly one, mark it with #[kdev(storage)]"
        );
        let err = merge_versions([version("Widget", "v1", true), version("Gadget", "v2", false)]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Mismatch {
                    what: "spec.names.kind",
                    ..
                }
            ),
            "{err}"
        );
        let mut cluster = version("Widget", "v2", false);
        cluster.spec.scope = "Cluster".into();
        let err = merge_versions([version("Widget", "v1", true), cluster]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "merging versions of Widget: versions v1 and v2 disagree on spec.scope: {:?} vs \"Cluster\" (a derived \
                 kind is cluster-scoped unless #[kdev(namespaced)] says otherwise; give every version the same scope)",
                version("Widget", "v1", true).spec.scope
            )
        );
        let err = merge_versions([version("Widget", "v1", true), version("Widget", "v1", false)]).unwrap_err();
        assert!(
            matches!(err, Error::DuplicateVersion { ref version, .. } if version == "v1"),
            "{err}"
        );
        assert!(matches!(merge_versions([]), Err(Error::NoVersions)));
    }

    #[test]
    fn a_field_attribute_drops_the_serde_default_it_breaks_and_an_explicit_misfit_is_an_error() {
        let skeleton = r#"{"metadata":{"name":"ws.example.com"},"spec":{"group":"example.com","scope":"Namespaced",
            "names":{"kind":"W","plural":"ws"},"versions":[{"name":"v1","served":true,"storage":true}]}}"#;
        let spec = json!({ "type": "object", "properties": { "name": { "type": "string", "default": "" } } });
        let crd = __private::crd("W", skeleton, r#"{"name":{"minLength":1}}"#, spec.clone(), None).unwrap();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        let name = &schema.properties.as_ref().unwrap()["spec"].properties.as_ref().unwrap()["name"];
        assert_eq!((name.min_length, name.default.is_none()), (Some(1), true));
        let err = __private::crd("W", skeleton, r#"{"name":{"minLength":1,"default":""}}"#, spec, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "W: the default of spec.properties.name does not fit its schema: default: must have at least 1 characters"
        );
    }

    #[test]
    fn a_list_the_server_would_refuse_for_its_list_type_is_an_error_naming_it_in_the_spec_or_the_status() {
        let skeleton = r#"{"metadata":{"name":"ws.example.com"},"spec":{"group":"example.com","scope":"Namespaced",
            "names":{"kind":"W","plural":"ws"},"versions":[{"name":"v1","served":true,"storage":true}]}}"#;
        let ports = json!({ "type": "object", "properties": { "ports": { "type": "array", "items": {
            "type": "object", "properties": { "name": { "type": "string" } } } } } });
        let keyed = r#"{"ports":{"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"]}}"#;
        let err = __private::crd("W", skeleton, keyed, ports.clone(), None).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidListType { path, key: Some(key), .. }
                if path == "spec.properties.ports" && key == "name"),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "W: the list spec.properties.ports breaks the rules of its list type: the key \"name\" is optional \
                 and has no default"
            ),
            "{err}"
        );
        let defaulted = r#"{"ports":{"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
            "items":{"properties":{"name":{"default":"http"}}}}}"#;
        assert!(__private::crd("W", skeleton, defaulted, ports.clone(), None).is_ok());
        let mut status = ports.clone();
        status["properties"]["ports"]["x-kubernetes-list-type"] = json!("set");
        let err = __private::crd("W", skeleton, "{}", json!({ "type": "object" }), Some(status)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidListType { path, key: None, .. } if path == "status.properties.ports"),
            "{err:?}"
        );
    }
}
