//! The markers the WebApp of `resource.rs` does not show: item validations, enum values on a
//! string, `schema_type`, `schemaless`, examples, external docs, `required`/`optional`
//! overrides, CRD labels and annotations, the one-of helpers, and field attributes on nested
//! types through `#[kdev::schema]`.

use kdev::CustomResource;
use serde::{Deserialize, Serialize};

/// A gadget.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "derive.kdev.dev", version = "v1", namespaced)]
#[kdev(annotation = "derive.kdev.dev/owner=team-a", label = "derive.kdev.dev/tier=test")]
#[kdev(
    exactly_one_of(git, image),
    at_most_one_of(debug, release),
    at_least_one_of(cpu, memory)
)]
#[kdev(external_docs(url = "https://example.com/gadget", description = "What a gadget is."))]
#[serde(rename_all = "camelCase")]
pub struct GadgetSpec {
    /// Short lowercase names, at most three.
    #[kdev(max_items = 3, items(pattern = "^[a-z]+$", max_length = 5))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// A string limited to two values.
    #[kdev(enum_values = ["fast", "slow"])]
    pub mode: String,
    /// A time, a string on the wire.
    #[kdev(schema_type = "string", format = "date-time", example = "2024-01-01T00:00:00Z")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
    /// Any object with apiVersion and kind.
    #[kdev(schemaless, embedded_resource, preserve_unknown_fields)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
    /// Required although it is an Option.
    #[kdev(required)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Optional although its type has no default.
    #[kdev(optional)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Source: a git URL...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// ... or an image, exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Debug build, or...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// ... release build, at most one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<bool>,
    /// CPU, or...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    /// ... memory, at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    /// Where to deliver.
    pub target: Target,
    /// More places.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Target>,
}

/// A time that `schema_type = "string"` describes as a string.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Since(pub std::collections::BTreeMap<String, String>);

/// A place to deliver to: field attributes on a nested type.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    at_most_one_of(bucket_name, path),
    validation(rule = "self.port != 22", message = "not the ssh port")
)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// A bucket.
    #[kdev(min_length = 3, max_length = 10)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// Or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The port.
    #[kdev(minimum = 1, maximum = 65535)]
    pub port: i32,
    /// Labels, as a set.
    #[kdev(list_type = "set", items(min_length = 1))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

