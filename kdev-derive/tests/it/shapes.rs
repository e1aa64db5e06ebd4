//! Shapes of serde data that need care in a structural schema: internally and adjacently tagged
//! enums with unit, newtype and struct variants, maps (integer keys, flattened, untagged),
//! NonZero integers, and serde defaults.

use kdev::CustomResource;
use serde::{Deserialize, Serialize};

/// A pipeline: where its code comes from and one step.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "derive.kdev.dev", version = "v1", namespaced)]
pub struct PipelineSpec {
    /// Internally tagged: `{"type": "Git", "url": ...}`.
    pub source: Source,
    /// Adjacently tagged: `{"t": "Num", "c": 3}`.
    pub step: Step,
    /// Anything but zero: schemars says `not: {const: 0}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<std::num::NonZeroI32>,
    /// A serde default with a `null` inside: `{"timeout": null, "period": 0}`.
    #[serde(default)]
    pub probe: Probe,
    /// A serde default (`""`) that breaks the field's own validation: not in the schema.
    #[kdev(min_length = 1)]
    #[serde(default)]
    pub label: String,
}

/// A health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Probe {
    /// Seconds to wait, none for no limit.
    pub timeout: Option<u32>,
    /// Seconds between checks.
    pub period: u32,
}

/// A git repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitSource {
    /// The repository.
    pub url: String,
    /// A revision, the default branch's head without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
}

/// Where the code comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum Source {
    /// A newtype variant: the struct's fields next to the tag.
    Git(GitSource),
    /// A unit variant: only the tag.
    Empty,
    /// A struct variant.
    Image {
        /// The image.
        image: String,
        /// Its size.
        size: u32,
    },
}

/// One step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "t", content = "c")]
pub enum Step {
    /// An object content.
    Fetch(GitSource),
    /// No content.
    Nothing,
    /// A number content.
    Repeat(u32),
    /// A string content.
    Run(String),
}

/// A catalog: maps the Rust types serialize, which the server must not prune.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "derive.kdev.dev", version = "v1", namespaced)]
pub struct CatalogSpec {
    /// Integer keys: schemars gives `patternProperties`.
    pub ports: std::collections::BTreeMap<u16, String>,
    /// A struct with a flattened map next to its fields.
    pub owner: Owner,
    /// A map or a struct.
    pub either: MapOrSource,
}

/// Named, with any other keys kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Owner {
    /// The name.
    pub name: String,
    /// Every other key.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// An untagged enum with a map variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum MapOrSource {
    /// A git repository.
    Source(GitSource),
    /// A map.
    Map(std::collections::BTreeMap<String, String>),
}
