//! The resource every test uses: one field per validation the derive supports.

use std::collections::BTreeMap;

use kdev::CustomResource;
use serde::{Deserialize, Serialize};

/// A web application.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "derive.kdev.dev", version = "v1", namespaced, status = "WebAppStatus")]
#[kdev(shortname = "wa", category = "all", category = "kdev", singular = "webapp")]
#[kdev(scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"))]
#[kdev(printcolumn(
    name = "Replicas",
    type = "integer",
    json_path = ".spec.replicas",
    description = "wanted copies"
))]
#[kdev(printcolumn(
    name = "Ratio",
    type = "number",
    format = "float",
    json_path = ".spec.ratio",
    priority = 1
))]
#[kdev(selectable_field = ".spec.tier")]
#[kdev(validation(
    rule = "self.replicas <= 5 || self.tier == 'large'",
    message = "only large apps run more than 5"
))]
#[serde(rename_all = "camelCase")]
pub struct WebAppSpec {
    /// Copies to run.
    #[kdev(minimum = 0, maximum = 10, default = 1)]
    #[serde(default)]
    pub replicas: i32,
    /// A share of traffic, in (0, 1).
    #[kdev(minimum = 0, exclusive_minimum, maximum = 1, exclusive_maximum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Granularity of scaling steps.
    #[kdev(multiple_of = 5)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// The container image.
    #[kdev(min_length = 3, max_length = 64, pattern = "^[a-z0-9./:-]+$")]
    pub image: String,
    /// Size class.
    #[serde(default)]
    pub tier: Tier,
    /// Where it listens.
    #[kdev(min_items = 1, max_items = 3, list_type = "map", list_map_keys(name))]
    pub ports: Vec<Port>,
    /// Host names.
    #[kdev(list_type = "set")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Free-form labels, at most two.
    #[kdev(max_properties = 2, min_properties = 1)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Set once at creation.
    #[kdev(immutable, format = "email")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Anything the app wants.
    #[kdev(preserve_unknown_fields)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, serde_json::Value>>,
    /// A port number or name.
    #[kdev(int_or_string)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    /// An object template.
    #[kdev(embedded_resource, preserve_unknown_fields)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<serde_json::Value>,
    /// Nullable on request.
    #[kdev(nullable, default_json = r#"{"a": 1}"#, map_type = "atomic")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<BTreeMap<String, i32>>,
}

/// Size class, an enum of strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// The default.
    #[default]
    Small,
    /// Allowed more than 5 replicas.
    Large,
}

/// A named port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Port {
    /// The key of the list.
    pub name: String,
    /// The port number.
    pub port: u16,
}

/// What the controller reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebAppStatus {
    /// Running copies.
    pub replicas: i32,
}
