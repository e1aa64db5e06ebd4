//! The markers the WebApp of `resource.rs` does not show: item validations, enum values on a
//! string, `schema_type`, `schemaless`, examples, external docs, `required`/`optional`
//! overrides, CRD labels and annotations, the one-of helpers, field attributes on nested
//! types through `#[kdev::schema]`, and `map` and `set` lists of objects.

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
    #[kdev(max_items = 3, unique_items, items(pattern = "^[a-z]+$", max_length = 5))]
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
    /// More places (bounded: a CEL rule on each item has a cost the server estimates per item).
    #[kdev(max_items = 8)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Target>,
    /// A name with the validations of its own type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    /// Listeners keyed by name and protocol: keys that are `Option`s, made required or defaulted.
    #[kdev(list_type = "map", list_map_keys(name, protocol))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// Distinct pairs: a set of atomic objects.
    #[kdev(list_type = "set")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<Pair>,
}

/// A listener, an item of a `map` list.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Listener {
    /// A key, required although it is an Option.
    #[kdev(required)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A key with a default.
    #[kdev(default = "TCP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port.
    pub port: i32,
}

/// Two names, compared whole: an item of a `set` list.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(struct_type = "atomic")]
pub struct Pair {
    /// The first.
    pub a: String,
    /// The second.
    pub b: String,
}

/// A lowercase name: validations on a type, wherever it is used.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(pattern = "^[a-z-]+$", max_length = 20)]
pub struct Slug(pub String);

/// A time, written as a string by hand-written serde impls while its derived schema says
/// "object": what `schema_type = "string"` corrects.
#[derive(Clone, Debug, schemars::JsonSchema)]
pub struct Since {
    /// The RFC 3339 text.
    pub rfc3339: String,
}

impl Serialize for Since {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339)
    }
}

impl<'de> Deserialize<'de> for Since {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|rfc3339| Since { rfc3339 })
    }
}

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

/// Two versions of one kind: v1 (served, deprecated) and v2 (the storage version and the hub).
pub mod versions {
    use kdev::CustomResource;
    use kdev::crd::conversion::{ConversionError, Convertible};
    use serde::{Deserialize, Serialize};

    /// A widget, v1: one size number.
    #[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[kdev(
        group = "derive.kdev.dev",
        version = "v1",
        kind = "Widget",
        struct = "WidgetV1",
        namespaced
    )]
    #[kdev(shortname = "wd", deprecated = "derive.kdev.dev/v1 Widget is deprecated; use v2")]
    pub struct WidgetV1Spec {
        /// The size.
        #[kdev(minimum = 1)]
        pub size: i32,
    }

    /// A widget, v2: the size became width and height.
    #[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[kdev(
        group = "derive.kdev.dev",
        version = "v2",
        kind = "Widget",
        struct = "WidgetV2",
        namespaced
    )]
    #[kdev(category = "kdev", storage, hub)]
    pub struct WidgetV2Spec {
        /// The width.
        #[kdev(minimum = 1)]
        pub width: i32,
        /// The height.
        #[kdev(minimum = 1)]
        pub height: i32,
    }

    impl Convertible<WidgetV2> for WidgetV1 {
        fn to_hub(self) -> Result<WidgetV2, ConversionError> {
            let mut hub = WidgetV2::new(
                "",
                WidgetV2Spec {
                    width: self.spec.size,
                    height: self.spec.size,
                },
            );
            hub.metadata = self.metadata;
            Ok(hub)
        }

        fn from_hub(hub: WidgetV2) -> Result<Self, ConversionError> {
            if hub.spec.width != hub.spec.height {
                return Err(ConversionError::new(format!(
                    "a {}x{} widget is not square: v1 cannot express it",
                    hub.spec.width, hub.spec.height
                )));
            }
            let mut spoke = WidgetV1::new("", WidgetV1Spec { size: hub.spec.width });
            spoke.metadata = hub.metadata;
            Ok(spoke)
        }
    }
}
