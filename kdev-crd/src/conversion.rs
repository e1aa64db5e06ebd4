//! Conversion between the versions of one kind, hub and spoke (kubebuilder's `Hub` and
//! `Convertible`).
//!
//! A kind served in several versions stores every object in one of them; the API server asks a
//! conversion webhook to turn objects into whichever version a client asked for. Writing a
//! conversion for every pair of N versions takes N×(N−1) functions; hub and spoke takes 2×(N−1):
//! one version is the **hub** (usually the storage version), every other version (a **spoke**)
//! converts to and from the hub, and any-to-any goes through it.
//!
//! - [`Hub`] marks the hub type; it has nothing to implement.
//! - [`Convertible<H>`] is what a spoke implements: [`to_hub`](Convertible::to_hub) and
//!   [`from_hub`](Convertible::from_hub). These are pure functions of the typed objects, so
//!   they are unit-tested like any other code.
//! - [`Converter<H>`] registers the spokes and converts JSON objects, as they arrive in a
//!   ConversionReview, from any registered version to any other. kdev-webhook serves it;
//!   it implements the object-safe [`Convert`] for that.
//!
//! # What the converter guarantees
//!
//! The API server rejects a conversion that changes an object's metadata other than its labels
//! and annotations. The [`Converter`] therefore keeps the object's original `metadata` and only
//! takes the converted labels and annotations, so a conversion cannot fail that way. A
//! conversion that built its object with fresh metadata (nothing of the original's name, uid,
//! namespace, resourceVersion... came through) keeps the original labels and annotations too,
//! rather than drop them from the stored object for good. An object
//! already in the desired version is returned unchanged, without a round trip through the hub.
//! An object whose kind differs from the converter's, whose `apiVersion` is not registered, or
//! that does not deserialize into its version's type is a [`ConversionError`], never a panic.
//!
//! A typed round trip keeps only the fields the Rust types know. Fields present in one version
//! and absent in another are lost on the way unless the conversion keeps them, as in Go: the
//! usual place for them is an annotation on the spoke (see the example's `legacyColor`).
//!
//! # Example
//!
//! ```
//! use kdev_crd::conversion::{ConversionError, Convertible, Converter, Hub};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! // v2, the hub: replicas became a structured field.
//! # macro_rules! resource { ($t:ident, $v:literal) => {
//! #   impl kube_core::Resource for $t {
//! #     type DynamicType = (); type Scope = kube_core::NamespaceResourceScope;
//! #     fn kind(_: &()) -> std::borrow::Cow<'_, str> { "Widget".into() }
//! #     fn group(_: &()) -> std::borrow::Cow<'_, str> { "example.com".into() }
//! #     fn version(_: &()) -> std::borrow::Cow<'_, str> { $v.into() }
//! #     fn plural(_: &()) -> std::borrow::Cow<'_, str> { "widgets".into() }
//! #     fn meta(&self) -> &ObjectMeta { &self.metadata }
//! #     fn meta_mut(&mut self) -> &mut ObjectMeta { &mut self.metadata }
//! #   }
//! # } }
//! #[derive(Serialize, Deserialize)]
//! struct WidgetV2 { metadata: ObjectMeta, spec: SpecV2 }
//! #[derive(Serialize, Deserialize)]
//! struct SpecV2 { scale: Scale }
//! #[derive(Serialize, Deserialize)]
//! struct Scale { replicas: i32 }
//! resource!(WidgetV2, "v2");
//! impl Hub for WidgetV2 {}
//!
//! // v1, a spoke.
//! #[derive(Serialize, Deserialize)]
//! struct WidgetV1 { metadata: ObjectMeta, spec: SpecV1 }
//! #[derive(Serialize, Deserialize)]
//! struct SpecV1 { replicas: i32 }
//! resource!(WidgetV1, "v1");
//!
//! impl Convertible<WidgetV2> for WidgetV1 {
//!     fn to_hub(self) -> Result<WidgetV2, ConversionError> {
//!         Ok(WidgetV2 { metadata: self.metadata, spec: SpecV2 { scale: Scale { replicas: self.spec.replicas } } })
//!     }
//!     fn from_hub(hub: WidgetV2) -> Result<Self, ConversionError> {
//!         Ok(WidgetV1 { metadata: hub.metadata, spec: SpecV1 { replicas: hub.spec.scale.replicas } })
//!     }
//! }
//!
//! let converter = Converter::<WidgetV2>::new().spoke::<WidgetV1>();
//! let v1 = json!({
//!     "apiVersion": "example.com/v1", "kind": "Widget",
//!     "metadata": { "name": "w", "namespace": "default", "uid": "1234" },
//!     "spec": { "replicas": 3 },
//! });
//! let v2 = converter.convert(v1.clone(), "example.com/v2").unwrap();
//! assert_eq!(v2["apiVersion"], "example.com/v2");
//! assert_eq!(v2["spec"], json!({ "scale": { "replicas": 3 } }));
//! assert_eq!(v2["metadata"], v1["metadata"]);
//! assert_eq!(converter.convert(v2, "example.com/v1").unwrap(), v1);
//! ```

use std::collections::HashMap;
use std::fmt;

use kube_core::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The hub of a kind's versions: the version every other one converts to and from.
///
/// Implement it (it has no methods) on the hub's type, usually the storage version. There is
/// one hub per kind.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the hub of its kind's versions",
    note = "mark the hub version's spec struct with `#[kdev(hub)]` (usually the storage version), or implement `kdev_crd::conversion::Hub` for `{Self}`"
)]
pub trait Hub: Resource<DynamicType = ()> + Serialize + DeserializeOwned + 'static {}

/// A spoke version of a kind: converts to and from the kind's [`Hub`] `H`.
///
/// Both directions are pure functions; return a [`ConversionError`] for an object that cannot
/// be represented in the other version (the API server turns it into a failed request).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not convert to and from the hub `{H}`",
    note = "implement `kdev_crd::conversion::Convertible<{H}>` for `{Self}` (`to_hub` and `from_hub`), or give the hub version `#[kdev(hub)]` if `{Self}` is meant to be it"
)]
pub trait Convertible<H: Hub>: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Sized + 'static {
    /// Converts this object into the hub version.
    fn to_hub(self) -> Result<H, ConversionError>;
    /// Converts a hub object into this version.
    fn from_hub(hub: H) -> Result<Self, ConversionError>;
}

/// Why an object could not be converted. Its message reaches the API server's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    message: String,
}

impl ConversionError {
    /// A conversion error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ConversionError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConversionError {}

/// Converts JSON objects of one kind between versions: what a conversion webhook needs,
/// object-safe so a server can hold any kind's converter.
pub trait Convert: Send + Sync + 'static {
    /// The kind's group (empty for the core group).
    fn group(&self) -> &str;
    /// The kind.
    fn kind(&self) -> &str;
    /// Every apiVersion (`group/version`) this converter reads and writes.
    fn api_versions(&self) -> Vec<String>;
    /// Converts `object` into `desired_api_version`.
    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, ConversionError>;
}

type ToHub<H> = fn(Value) -> Result<H, ConversionError>;
type FromHub<H> = fn(H) -> Result<Value, ConversionError>;

struct Version<H> {
    to_hub: ToHub<H>,
    from_hub: FromHub<H>,
}

/// A kind's versions, registered around its hub `H`; converts objects between any two of
/// them. See the [module docs](self).
pub struct Converter<H: Hub> {
    group: String,
    kind: String,
    versions: HashMap<String, Version<H>>,
}

impl<H: Hub> Default for Converter<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Hub> fmt::Debug for Converter<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut versions: Vec<&String> = self.versions.keys().collect();
        versions.sort();
        f.debug_struct("Converter")
            .field("group", &self.group)
            .field("kind", &self.kind)
            .field("hub", &H::api_version(&()))
            .field("versions", &versions)
            .finish()
    }
}

fn decode<T: DeserializeOwned>(object: Value) -> Result<T, ConversionError> {
    serde_json::from_value(object).map_err(|e| ConversionError::new(format!("the object does not decode: {e}")))
}

fn encode<T: Resource<DynamicType = ()> + Serialize>(object: T) -> Result<Value, ConversionError> {
    let mut value =
        serde_json::to_value(&object).map_err(|e| ConversionError::new(format!("the object does not encode: {e}")))?;
    // A type that does not serialize its own apiVersion and kind still yields a full object.
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(T::api_version(&()).into_owned()));
        map.insert("kind".into(), Value::String(T::kind(&()).into_owned()));
    }
    Ok(value)
}

fn spoke_to_hub<S: Convertible<H>, H: Hub>(object: Value) -> Result<H, ConversionError> {
    decode::<S>(object)?.to_hub()
}

fn hub_to_spoke<S: Convertible<H>, H: Hub>(hub: H) -> Result<Value, ConversionError> {
    encode(S::from_hub(hub)?)
}

impl<H: Hub> Converter<H> {
    /// A converter that knows the hub version only; add the others with [`spoke`](Self::spoke).
    pub fn new() -> Self {
        let mut versions = HashMap::new();
        versions.insert(
            H::api_version(&()).into_owned(),
            Version {
                to_hub: decode::<H>,
                from_hub: encode::<H>,
            },
        );
        Converter {
            group: H::group(&()).into_owned(),
            kind: H::kind(&()).into_owned(),
            versions,
        }
    }

    /// Registers the spoke version `S`.
    ///
    /// # Panics
    ///
    /// When `S` is of another group or kind than the hub: that is a programming error in the
    /// registration, found the first time the code runs.
    pub fn spoke<S: Convertible<H>>(mut self) -> Self {
        assert!(
            S::group(&()) == self.group && S::kind(&()) == self.kind,
            "kdev_crd::conversion: spoke {}/{} is not a version of the hub's kind {}/{}",
            S::api_version(&()),
            S::kind(&()),
            H::api_version(&()),
            self.kind,
        );
        self.versions.insert(
            S::api_version(&()).into_owned(),
            Version {
                to_hub: spoke_to_hub::<S, H>,
                from_hub: hub_to_spoke::<S, H>,
            },
        );
        self
    }

    /// Converts `object` (any registered version of the kind) into `desired_api_version`.
    ///
    /// The result keeps the object's metadata, except for the labels and annotations the
    /// conversion set (see the [module docs](self)).
    pub fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
        let Value::Object(fields) = &object else {
            return Err(ConversionError::new("the object is not a JSON object"));
        };
        let api_version = match fields.get("apiVersion") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(ConversionError::new("the object has no apiVersion")),
        };
        if let Some(kind) = fields.get("kind")
            && kind.as_str() != Some(self.kind.as_str())
        {
            return Err(ConversionError::new(format!(
                "cannot convert a {kind} with the converter of kind {}",
                self.kind
            )));
        }
        let target = self.versions.get(desired_api_version).ok_or_else(|| {
            ConversionError::new(format!(
                "{desired_api_version} is not a version of {} (known: {})",
                self.kind,
                self.known()
            ))
        })?;
        if api_version == desired_api_version {
            return Ok(object);
        }
        let source = self.versions.get(&api_version).ok_or_else(|| {
            ConversionError::new(format!(
                "{api_version} is not a version of {} (known: {})",
                self.kind,
                self.known()
            ))
        })?;
        let metadata = fields.get("metadata").cloned();
        let mut converted = (target.from_hub)((source.to_hub)(object)?)?;
        if let (Some(Value::Object(original)), Value::Object(out)) = (metadata, &mut converted) {
            let new_meta = out.remove("metadata");
            // A conversion that built its object afresh, without the original's metadata, did
            // not mean to drop the labels and annotations: it never saw them. Only metadata
            // carried over (something that identifies the object came through) speaks for them.
            let carried_over = new_meta.as_ref().is_some_and(|m| {
                [
                    "uid",
                    "name",
                    "generateName",
                    "namespace",
                    "resourceVersion",
                    "creationTimestamp",
                ]
                .iter()
                .any(|k| original.get(*k).is_some_and(|v| !v.is_null() && m.get(*k) == Some(v)))
            });
            let mut kept = original;
            if carried_over {
                for key in ["labels", "annotations"] {
                    match new_meta.as_ref().and_then(|m| m.get(key)) {
                        Some(v) if !v.is_null() => {
                            kept.insert(key.into(), v.clone());
                        }
                        _ => {
                            kept.remove(key);
                        }
                    }
                }
            }
            out.insert("metadata".into(), Value::Object(kept));
        }
        Ok(converted)
    }

    fn known(&self) -> String {
        let mut known: Vec<&str> = self.versions.keys().map(String::as_str).collect();
        known.sort_unstable();
        known.join(", ")
    }
}

impl<H: Hub> Convert for Converter<H> {
    fn group(&self) -> &str {
        &self.group
    }

    fn kind(&self) -> &str {
        &self.kind
    }

    fn api_versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = self.versions.keys().cloned().collect();
        versions.sort();
        versions
    }

    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
        Converter::convert(self, object, desired_api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::Deserialize;
    use serde_json::json;
    use std::borrow::Cow;

    macro_rules! widget {
        ($t:ident, $kind:literal, $v:literal, $spec:ty) => {
            #[derive(Debug, Serialize, Deserialize)]
            struct $t {
                metadata: ObjectMeta,
                spec: $spec,
            }
            impl Resource for $t {
                type DynamicType = ();
                type Scope = kube_core::NamespaceResourceScope;
                fn kind(_: &()) -> Cow<'_, str> {
                    $kind.into()
                }
                fn group(_: &()) -> Cow<'_, str> {
                    "example.com".into()
                }
                fn version(_: &()) -> Cow<'_, str> {
                    $v.into()
                }
                fn plural(_: &()) -> Cow<'_, str> {
                    "widgets".into()
                }
                fn meta(&self) -> &ObjectMeta {
                    &self.metadata
                }
                fn meta_mut(&mut self) -> &mut ObjectMeta {
                    &mut self.metadata
                }
            }
        };
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Size {
        size: u32,
    }
    #[derive(Debug, Serialize, Deserialize)]
    struct Millis {
        millis: u64,
    }
    widget!(Hubby, "Widget", "v2", Millis);
    widget!(Spoke, "Widget", "v1", Size);
    widget!(Gadget, "Gadget", "v1", Size);
    impl Hub for Hubby {}

    impl Convertible<Hubby> for Spoke {
        fn to_hub(mut self) -> Result<Hubby, ConversionError> {
            // A conversion may touch labels; any other metadata change is undone.
            self.metadata
                .labels
                .get_or_insert_default()
                .insert("converted".into(), "yes".into());
            self.metadata.name = Some("renamed".into());
            Ok(Hubby {
                metadata: self.metadata,
                spec: Millis {
                    millis: u64::from(self.spec.size) * 1000,
                },
            })
        }
        fn from_hub(hub: Hubby) -> Result<Self, ConversionError> {
            let size = u32::try_from(hub.spec.millis / 1000)
                .map_err(|_| ConversionError::new(format!("{} ms does not fit v1's size", hub.spec.millis)))?;
            Ok(Spoke {
                metadata: hub.metadata,
                spec: Size { size },
            })
        }
    }

    fn converter() -> Converter<Hubby> {
        Converter::new().spoke::<Spoke>()
    }

    fn v1(size: u64) -> Value {
        json!({ "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": { "name": "w", "namespace": "ns", "uid": "u-1", "resourceVersion": "7" },
                "spec": { "size": size } })
    }

    #[test]
    fn converts_both_ways_and_keeps_metadata_but_labels() {
        let c = converter();
        let v2 = c.convert(v1(3), "example.com/v2").unwrap();
        assert_eq!(v2["spec"], json!({ "millis": 3000 }));
        assert_eq!(v2["kind"], "Widget");
        assert_eq!(v2["metadata"]["name"], "w", "the name change was undone");
        assert_eq!(v2["metadata"]["uid"], "u-1");
        assert_eq!(v2["metadata"]["resourceVersion"], "7");
        assert_eq!(v2["metadata"]["labels"], json!({ "converted": "yes" }));
        let back = c.convert(v2, "example.com/v1").unwrap();
        assert_eq!(back["spec"], json!({ "size": 3 }));
        assert_eq!(back["apiVersion"], "example.com/v1");
    }

    widget!(Fresh, "Widget", "v3", Size);

    impl Convertible<Hubby> for Fresh {
        fn to_hub(self) -> Result<Hubby, ConversionError> {
            Ok(Hubby {
                metadata: ObjectMeta::default(),
                spec: Millis {
                    millis: u64::from(self.spec.size) * 1000,
                },
            })
        }
        fn from_hub(hub: Hubby) -> Result<Self, ConversionError> {
            // Built afresh: the hub's metadata, labels included, is not carried over.
            Ok(Fresh {
                metadata: ObjectMeta::default(),
                spec: Size {
                    size: u32::try_from(hub.spec.millis / 1000).unwrap_or(u32::MAX),
                },
            })
        }
    }

    #[test]
    fn a_conversion_that_rebuilds_the_metadata_keeps_the_labels_and_annotations() {
        let c = Converter::<Hubby>::new().spoke::<Spoke>().spoke::<Fresh>();
        let mut labelled = v1(2);
        labelled["metadata"]["labels"] = json!({ "team": "infra" });
        labelled["metadata"]["annotations"] = json!({ "note": "keep" });
        let v3 = c.convert(labelled, "example.com/v3").unwrap();
        assert_eq!(v3["spec"], json!({ "size": 2 }));
        assert_eq!(v3["metadata"]["name"], "w");
        assert_eq!(
            v3["metadata"]["labels"],
            json!({ "team": "infra" }),
            "the original labels, not none"
        );
        assert_eq!(v3["metadata"]["annotations"], json!({ "note": "keep" }));
    }

    #[test]
    fn same_version_is_returned_untouched() {
        let mut odd = v1(1);
        odd["spec"]["unknown"] = json!(true);
        assert_eq!(converter().convert(odd.clone(), "example.com/v1").unwrap(), odd);
    }

    #[test]
    fn failures_are_errors_with_a_message() {
        let c = converter();
        let err = |object: Value, to: &str| c.convert(object, to).unwrap_err().message().to_owned();
        assert!(err(v1(1), "example.com/v3").contains("example.com/v3 is not a version of Widget"));
        assert!(err(v1(1), "example.com/v3").contains("example.com/v1, example.com/v2"));
        let mut other = v1(1);
        other["apiVersion"] = json!("example.com/v9");
        assert!(err(other, "example.com/v2").contains("example.com/v9 is not a version"));
        let mut gadget = v1(1);
        gadget["kind"] = json!("Gadget");
        assert!(err(gadget, "example.com/v2").contains("Gadget"));
        assert!(err(json!([1]), "example.com/v2").contains("not a JSON object"));
        assert!(err(json!({ "kind": "Widget" }), "example.com/v2").contains("no apiVersion"));
        let mut bad = v1(1);
        bad["spec"]["size"] = json!("three");
        assert!(err(bad, "example.com/v2").contains("does not decode"));
        // The spoke's own refusal reaches the caller.
        let huge = json!({ "apiVersion": "example.com/v2", "kind": "Widget", "metadata": {},
                           "spec": { "millis": u64::MAX } });
        assert!(err(huge, "example.com/v1").contains("does not fit"));
    }

    #[test]
    fn is_usable_as_a_trait_object() {
        let c: Box<dyn Convert> = Box::new(converter());
        assert_eq!(c.api_versions(), ["example.com/v1", "example.com/v2"]);
        assert_eq!((c.group(), c.kind()), ("example.com", "Widget"));
        assert_eq!(c.convert(v1(2), "example.com/v2").unwrap()["spec"]["millis"], 2000);
    }

    impl Convertible<Hubby> for Gadget {
        fn to_hub(self) -> Result<Hubby, ConversionError> {
            unreachable!("never registered successfully")
        }
        fn from_hub(_: Hubby) -> Result<Self, ConversionError> {
            unreachable!("never registered successfully")
        }
    }

    #[test]
    #[should_panic(expected = "is not a version of the hub's kind")]
    fn a_spoke_of_another_kind_is_refused() {
        let _ = Converter::<Hubby>::new().spoke::<Gadget>();
    }
}
