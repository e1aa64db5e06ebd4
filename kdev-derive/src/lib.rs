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
/// | `version = "v1"` (required) | `+versionName` | `spec.versions[0].name` |
/// | `kind = "MyApp"` (default: the struct's name without `Spec`) | type name | `spec.names.kind` |
/// | `namespaced` (default: cluster-scoped, as kube-rs) | `resource:scope` | `spec.scope` |
/// | `plural`, `singular`, `shortname` (repeatable), `category` (repeatable) | `resource:path,singular,shortName,categories` | `spec.names` |
/// | `status = "MyAppStatus"` | `subresource:status` | `subresources.status` and the `status` field |
/// | `scale(spec_replicas_path, status_replicas_path, label_selector_path)` | `subresource:scale` | `subresources.scale` |
/// | `printcolumn(name, type, json_path, format, description, priority)` | `printcolumn` | `additionalPrinterColumns` |
/// | `selectable_field = ".spec.x"` | `selectablefield` | `selectableFields` |
/// | `served = false` | `unservedversion` | `served` |
/// | `deprecated` or `deprecated = "warning"` | `deprecatedversion` | `deprecated`, `deprecationWarning` |
/// | `validation(rule, message, message_expression, reason, field_path, optional_old_self)` | `XValidation` on the type | the spec's `x-kubernetes-validations` |
/// | `crate = "path"` (default `::kdev::crd`) | | where the generated code finds kdev-crd |
///
/// # Field attributes
///
/// `minimum`, `maximum` (numbers), `exclusive_minimum`, `exclusive_maximum` (flags),
/// `multiple_of`, `min_length`, `max_length`, `pattern`, `format`, `min_items`, `max_items`,
/// `min_properties`, `max_properties`, `default = <literal>`, `default_json = "<JSON>"`,
/// `nullable`, `title`, `validation(...)` (repeatable), `immutable` (`self == oldSelf`),
/// `list_type = "atomic" | "set" | "map"`, `list_map_keys(a, b)`, `map_type`/`struct_type =
/// "atomic" | "granular"`, `preserve_unknown_fields`, `embedded_resource`, `int_or_string`.
#[proc_macro_derive(CustomResource, attributes(kdev))]
pub fn derive_custom_resource(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::custom_resource(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
