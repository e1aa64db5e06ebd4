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
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The openAPIV3Schema of a custom resource: `apiVersion`, `kind`, `metadata` and the given
/// structural `spec` (required) and `status` schemas.
pub fn resource_schema(spec: Value, status: Option<Value>) -> Value {
    let mut properties = Map::new();
    properties.insert("apiVersion".into(), json!({ "type": "string" }));
    properties.insert("kind".into(), json!({ "type": "string" }));
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

/// What the derive's generated code calls. Not public API: it changes with kdev-derive.
#[doc(hidden)]
pub mod __private {
    pub use k8s_openapi;
    pub use kube_core;
    pub use schemars;
    pub use serde;
    pub use serde_json;

    use super::*;

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
