//! kdev-derive: `#[derive(CustomResource)]` — a typed Kubernetes custom resource and its
//! CustomResourceDefinition from the Rust struct of its spec, with kubebuilder's markers as
//! `#[kdev(...)]` attributes.
//!
//! The derive is named `CustomResource` because that is the name Kubernetes gives the thing
//! and the name kube-rs users already type: switching to kdev changes the attribute (`kdev`
//! instead of `kube`), not the habit. Its generated code calls the runtime crate `kdev-crd`
//! (schema post-processing, CRD assembly) through the facade, as `::kdev::crd`; use it through
//! `kdev` with the `derive` feature, or point it elsewhere with `#[kdev(crate = "::kdev_crd")]`.
//!
//! The full attribute reference and a runnable example are on `kdev::CustomResource`.

mod attrs;
mod expand;
mod nested;

use proc_macro::TokenStream;

/// Derives a typed custom resource from its spec struct.
///
/// On `struct MyAppSpec` with `#[kdev(group = "example.com", version = "v1", kind = "MyApp")]`
/// it generates `struct MyApp { metadata, spec, status }`, serialized with its `apiVersion` and
/// `kind`, implementing `kube_core::Resource` (and `HasSpec`, `HasStatus`,
/// `CustomResourceExt`), with `MyApp::new(name, spec)`, `MyApp::crd()` and `MyApp::try_crd()`.
///
/// # Struct attributes
///
/// | attribute | kubebuilder marker | CRD field |
/// |---|---|---|
/// | `group = "example.com"` (required) | `+groupName` | `spec.group` |
/// | `version = "v1"` (required) | `+versionName` | `spec.versions[].name` |
/// | `kind = "MyApp"` (default: the struct's name without `Spec`) | type name | `spec.names.kind` |
/// | `struct = "MyAppV1"` (default: the kind) | | the generated type's name, for several versions in one module |
/// | `namespaced` (default: cluster-scoped, as kube-rs) | `resource:scope` | `spec.scope` |
/// | `plural`, `singular`, `shortname` (repeatable), `category` (repeatable) | `resource:path,singular,shortName,categories` | `spec.names` |
/// | `status = "MyAppStatus"` | `subresource:status` | `subresources.status` and the `status` field |
/// | `scale(spec_replicas_path, status_replicas_path, label_selector_path)` | `subresource:scale` | `subresources.scale` |
/// | `printcolumn(name, type, json_path, format, description, priority)` | `printcolumn` | `additionalPrinterColumns` |
/// | `selectable_field = ".spec.x"` | `selectablefield` | `selectableFields` |
/// | `served = false` | `unservedversion` | `served` |
/// | `storage` | `storageversion` | `storage` (see [`merge_versions`](#several-versions)) |
/// | `hub` | (`Hub()` method) | implements `kdev::crd::conversion::Hub` |
/// | `deprecated` or `deprecated = "warning"` | `deprecatedversion` | `deprecated`, `deprecationWarning` |
/// | `annotation = "key=value"`, `label = "key=value"` (repeatable) | `metadata:annotations`, `metadata:labels` | the CRD's `metadata` |
/// | `validation(rule, message, message_expression, reason, field_path, optional_old_self)` (repeatable) | `XValidation` on the type | the spec's `x-kubernetes-validations` |
/// | `exactly_one_of(a, b)`, `at_most_one_of(a, b)`, `at_least_one_of(a, b)` | `ExactlyOneOf`, `AtMostOneOf`, `AtLeastOneOf` | a CEL rule `(has(self.a)?1:0)+(has(self.b)?1:0) == 1` (`<= 1`, `>= 1`); the fields must be able to be absent (`Option<T>` or `skip_serializing_if`, not `required`), a compile error otherwise |
/// | `external_docs(url, description)`, `title`, `min_properties`, `max_properties`, `preserve_unknown_fields`, `struct_type` | the same markers on the type | the spec's schema |
/// | `crate = "path"` (default `::kdev::crd`) | | where the generated code finds kdev-crd |
///
/// # Field attributes
///
/// On the spec's fields; on the fields of types used inside the spec, through
/// [`#[kdev::schema]`](macro@schema). Validations that need a type are checked at compile
/// time (`kdev::crd::schema::{StringSchema, NumberSchema, ArraySchema}`).
///
/// | attribute | kubebuilder marker | schema keyword | field types |
/// |---|---|---|---|
/// | `minimum = 1`, `maximum = 10` | `Minimum`, `Maximum` | `minimum`, `maximum` | numbers |
/// | `exclusive_minimum`, `exclusive_maximum` | `ExclusiveMinimum`, `ExclusiveMaximum` | the boolean forms | numbers |
/// | `multiple_of = 5` | `MultipleOf` | `multipleOf` | numbers |
/// | `min_length`, `max_length`, `pattern = "^[a-z]+$"` | `MinLength`, `MaxLength`, `Pattern` | `minLength`, `maxLength`, `pattern` | strings |
/// | `min_items`, `max_items`, `unique_items` | `MinItems`, `MaxItems`, `UniqueItems` | `minItems`, `maxItems`, `x-kubernetes-list-type: set` for scalars | lists |
/// | `items(...)`, e.g. `items(max_length = 63, pattern = "...")` | `items:<Name>` | the item schema | lists |
/// | `min_properties`, `max_properties` | `MinProperties`, `MaxProperties` | `minProperties`, `maxProperties` | maps, structs |
/// | enums | `Enum` (a Go string type's constants) | `enum`, from a Rust unit enum automatically | |
/// | `enum_values = ["a", "b"]` | `Enum=a;b` | `enum` | any |
/// | `format = "email"` | `Format` | `format` | any |
/// | `schema_type = "string"` | `Type` | `type` (keywords of the old type go) | any |
/// | `default = 1` (a literal), `default_json = "{...}"` | `default` | `default` | any |
/// | `example = "x"`, `example_json = "{...}"` | `example` | `example` | any |
/// | `title = "..."`, doc comments | `title`, comments | `title`, `description` | any |
/// | `external_docs(url, description)` | `externalDocs` | `externalDocs` | any |
/// | `nullable` | `nullable` | `nullable: true` | any |
/// | `required`, `optional` (default: optional for `Option<T>` and `#[serde(default)]`, as schemars says; these change the schema only, the Rust type must still accept what the schema allows) | `+required`, `+optional` | the parent's `required` | any |
/// | `validation(rule, message, message_expression, reason, field_path, optional_old_self)` | `XValidation` | `x-kubernetes-validations` | any |
/// | `immutable` | `+k8s:immutable` | the rule `self == oldSelf` | any |
/// | `list_type = "atomic" \| "set" \| "map"`, `list_map_keys(a, b)` (keys by their names on the wire; see [list types](#list-types)) | `listType`, `listMapKey` | `x-kubernetes-list-type`, `-list-map-keys` | lists |
/// | `map_type`, `struct_type = "atomic" \| "granular"` | `mapType`, `structType` | `x-kubernetes-map-type` | maps, structs |
/// | `preserve_unknown_fields` | `pruning:PreserveUnknownFields` | `x-kubernetes-preserve-unknown-fields` | any |
/// | `embedded_resource` | `EmbeddedResource` | `x-kubernetes-embedded-resource` | objects |
/// | `int_or_string` (automatic for `IntOrString`) | `XIntOrString` | `x-kubernetes-int-or-string` | any |
/// | `schemaless` | `Schemaless` | the schema is replaced by `x-kubernetes-preserve-unknown-fields` | any |
///
/// An unknown attribute is a compile error suggesting the closest known one.
///
/// # List types
///
/// kube-apiserver refuses a CRD whose lists break the rules of their list type, and so does
/// kdev: what the attributes alone show is a compile error (`list_map_keys` without
/// `list_type = "map"`, none or a key twice, `items(nullable)` in a `set` or `map` list); what
/// needs the item type's schema is `kdev::crd::Error::InvalidListType` from `try_crd()` (and a
/// panic from `crd()`), naming the list and the fix:
///
/// - a `map` list holds objects, and each key is a field of them that is a string, number or
///   boolean, not `nullable`, and **required or defaulted**: an `Option<String>` key needs
///   `#[kdev(required)]` (with `#[kdev::schema]` on the item type) or `#[kdev(default = ...)]`,
///   as kubebuilder's "this property is in x-kubernetes-list-map-keys, so it must have a
///   default or be a required property";
/// - a `set` list (also `unique_items` on a list of objects) holds scalars, or objects marked
///   `#[kdev(struct_type = "atomic")]`, or lists that are not sets or maps themselves;
/// - the items of neither are `nullable`.
///
/// # Left out
///
/// - `+kubebuilder:object:root`, `+kubebuilder:object:generate`, `+k8s:deepcopy-gen`: Rust has
///   `Clone`; the derive itself marks the root type.
/// - `+kubebuilder:skip`, `+kubebuilder:skipversion`: a type without the derive, or a version
///   left out of `merge_versions`, is not generated.
/// - `+kubebuilder:validation:Optional`/`:Required` on a package: Rust has no package-level
///   attributes; each field says it with `Option<T>`, serde defaults, `required`/`optional`.
/// - `+default=<JSON>`: spelled `default_json`.
/// - RBAC and webhook markers: not part of a CRD; they belong with the controller and
///   kdev-webhook.
///
/// # The generated type and its status
///
/// `struct MyApp { pub metadata: ObjectMeta, pub spec: MyAppSpec, pub status: Option<MyAppStatus> }`
/// (`status` only with `status = "MyAppStatus"`). The status struct derives `JsonSchema` as the
/// spec does, and its fields take the same attributes through `#[kdev::schema]` on it.
/// Conditions are k8s-openapi's `Condition` (`metav1.Condition`) in a map list keyed by `type`,
/// kubebuilder's `+listType=map` and `+listMapKey=type`:
///
/// ```
/// use kdev::CustomResource;
/// use kdev::{schemars, serde_json};
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
/// #[kdev(group = "example.com", version = "v1", namespaced, status = "BackupStatus")]
/// pub struct BackupSpec {
///     pub schedule: String,
/// }
///
/// #[kdev::schema]
/// #[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
/// pub struct BackupStatus {
///     #[kdev(list_type = "map", list_map_keys(type))]
///     #[serde(default)]
///     pub conditions: Vec<Condition>,
/// }
///
/// let backup = Backup::new("nightly", BackupSpec { schedule: "@daily".into() });
/// assert!(backup.status.is_none());
/// let crd = serde_json::to_value(Backup::crd()).unwrap();
/// let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
/// assert_eq!(status["properties"]["conditions"]["x-kubernetes-list-type"], "map");
/// assert_eq!(status["properties"]["conditions"]["x-kubernetes-list-map-keys"][0], "type");
/// ```
///
/// # Several versions
///
/// Derive each version's spec (in its own module, or with `struct = "WidgetV1"`), mark one
/// `storage` (and usually `hub`), and combine them with `kdev::crd::merge_versions([WidgetV1::crd(),
/// WidgetV2::crd()])`, which checks that they describe one kind and that exactly one is the
/// storage version. Two `storage` markers for one kind in one module fail to compile.
///
/// # Every CRD of a crate
///
/// The derive registers every resource it generates; `kdev::crd::registered()` returns their
/// CRDs (one per kind, versions merged) and `kdev::crd::crdgen()` prints them as
/// multi-document YAML, what `make manifests` is to kubebuilder users. A crate adds
/// `src/bin/crdgen.rs` containing
/// `fn main() -> std::process::ExitCode { kdev::crd::crdgen() }` and runs
/// `cargo run --bin crdgen > crds.yaml`.
#[proc_macro_derive(CustomResource, attributes(kdev))]
pub fn derive_custom_resource(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::custom_resource(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Field attributes on a type used inside a spec.
///
/// `#[derive(CustomResource)]` reads `#[kdev(...)]` on the spec's own fields; a struct nested
/// in the spec gets the same field attributes (and the type-level schema attributes:
/// `validation(...)`, `exactly_one_of(...)`, `min_properties`, ...) by putting
/// `#[kdev::schema]` on it, **above** its `#[derive(JsonSchema)]` (below it, or without it, is a
/// compile error: the derive would run first and the overrides be lost). The overrides travel in the
/// type's own schema, so they apply wherever the type is used (behind `Option`, in a `Vec`,
/// in several resources).
///
/// ```
/// use kdev::CustomResource;
/// // The derives find schemars through kdev; no dependency of your own needed.
/// use kdev::{schemars, serde_json};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
/// #[kdev(group = "example.com", version = "v1")]
/// struct BackupSpec {
///     target: Target,
///     retention: Option<Retention>,
/// }
///
/// #[kdev::schema]
/// #[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
/// #[kdev(exactly_one_of(bucket, path))]
/// struct Target {
///     #[kdev(min_length = 3, max_length = 63)]
///     bucket: Option<String>,
///     path: Option<String>,
/// }
///
/// #[kdev::schema]
/// #[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
/// struct Retention {
///     #[kdev(minimum = 1, maximum = 365)]
///     days: u32,
/// }
///
/// let crd = serde_json::to_value(Backup::crd()).unwrap();
/// let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
/// assert_eq!(spec["properties"]["target"]["properties"]["bucket"]["maxLength"], 63);
/// assert_eq!(spec["properties"]["retention"]["properties"]["days"]["maximum"], 365.0);
/// assert_eq!(
///     spec["properties"]["target"]["x-kubernetes-validations"][0]["rule"],
///     "(has(self.bucket)?1:0)+(has(self.path)?1:0) == 1"
/// );
/// ```
///
/// On the type itself it takes every field attribute except `required`/`optional` (they apply
/// to the type's schema wherever it is used, as kubebuilder's markers on a type: e.g.
/// `#[kdev(pattern = "^[a-z]+$")]` on `struct Name(String)`), the one-of helpers, and
/// `crate = "path"` (default `::kdev::crd`) like the derive.
#[proc_macro_attribute]
pub fn schema(args: TokenStream, item: TokenStream) -> TokenStream {
    nested::schema(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
