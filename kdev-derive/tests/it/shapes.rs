//! Shapes of serde data that need care in a structural schema: internally and adjacently tagged
//! enums with unit, newtype and struct variants.

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
