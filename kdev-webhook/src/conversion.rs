//! CRD conversion webhooks: the ConversionReview v1 wire types and the route that serves a
//! kind's [`Convert`] (kdev-crd's hub-and-spoke [`Converter`]).
//!
//! When a CustomResourceDefinition serves several versions with `spec.conversion.strategy:
//! Webhook`, kube-apiserver posts a ConversionReview whenever it needs objects in a version
//! other than the stored one: `request.objects` to be converted into
//! `request.desiredAPIVersion`. [`Builder::conversion`](crate::server::Builder::conversion)
//! serves one at a path:
//!
//! 1. every object is converted into the desired version; the answer carries them in order in
//!    `response.convertedObjects`, with `result.status: Success` and the request's uid;
//! 2. when any object fails to convert (or the converter panics), the answer is
//!    `result.status: Failure` with a message naming the object (index, namespace/name,
//!    apiVersion), and no converted objects at all — never a partial list;
//! 3. a body that is not a ConversionReview gets HTTP 400 with a `metav1.Status`; one whose
//!    uid is readable but that is otherwise malformed gets a Failure review carrying that uid.
//!
//! # Examples
//!
//! ```
//! use kdev_crd::conversion::{ConversionError, Convert};
//! use kdev_webhook::Server;
//! use serde_json::{Value, json};
//!
//! /// Widgets in v1 carry `spec.size`; v2 renamed it `spec.replicas`.
//! struct Widgets;
//!
//! impl Convert for Widgets {
//!     fn group(&self) -> &str { "example.com" }
//!     fn kind(&self) -> &str { "Widget" }
//!     fn api_versions(&self) -> Vec<String> { vec!["example.com/v1".into(), "example.com/v2".into()] }
//!     fn convert(&self, mut object: Value, desired: &str) -> Result<Value, ConversionError> {
//!         let (from, to) = match desired {
//!             "example.com/v1" => ("replicas", "size"),
//!             "example.com/v2" => ("size", "replicas"),
//!             other => return Err(ConversionError::new(format!("unknown version {other}"))),
//!         };
//!         if object["apiVersion"] != desired {
//!             let spec = object["spec"].as_object_mut().ok_or_else(|| ConversionError::new("no spec"))?;
//!             if let Some(v) = spec.remove(from) { spec.insert(to.into(), v); }
//!             object["apiVersion"] = desired.into();
//!         }
//!         Ok(object)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! # let tls = kdev_webhook::tls::ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?;
//! let server = Server::builder().conversion("/convert", Widgets).tls(tls).build()?;
//! let review = json!({
//!     "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
//!     "request": {
//!         "uid": "705ab4f5", "desiredAPIVersion": "example.com/v2",
//!         "objects": [{"apiVersion": "example.com/v1", "kind": "Widget",
//!                      "metadata": {"name": "w"}, "spec": {"size": 3}}],
//!     },
//! });
//! let answer = server.call("/convert", serde_json::to_vec(&review)?.into()).await;
//! let answer: Value = serde_json::from_slice(answer.body())?;
//! assert_eq!(answer["response"]["uid"], "705ab4f5");
//! assert_eq!(answer["response"]["result"]["status"], "Success");
//! assert_eq!(answer["response"]["convertedObjects"][0]["spec"], json!({"replicas": 3}));
//! # Ok(())
//! # }
//! ```

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use http_body_util::Full;
pub use kdev_crd::conversion::{ConversionError, Convert, Converter, Convertible, Hub};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use crate::admission::Status;
use crate::wire::{self, Rejection};

/// The `apiVersion` of ConversionReview v1.
pub const API_VERSION_V1: &str = "apiextensions.k8s.io/v1";
/// The `apiVersion` of ConversionReview v1beta1, which has the same shape and is still accepted.
pub const API_VERSION_V1BETA1: &str = "apiextensions.k8s.io/v1beta1";
/// The `kind` of a ConversionReview.
pub const KIND: &str = "ConversionReview";

/// `result.status` of a conversion that succeeded.
pub const SUCCESS: &str = "Success";
/// `result.status` of a conversion that failed.
pub const FAILURE: &str = "Failure";

/// A ConversionReview: the envelope kube-apiserver posts to a conversion webhook and expects
/// back (`k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// `apiextensions.k8s.io/v1` (or `v1beta1`).
    pub api_version: String,
    /// `ConversionReview`.
    pub kind: String,
    /// What to convert; set on the way in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The webhook's answer; set on the way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
}

impl Review {
    /// A v1 review carrying `response`.
    pub fn from_response(response: Response) -> Review {
        Review {
            api_version: API_VERSION_V1.to_string(),
            kind: KIND.to_string(),
            request: None,
            response: Some(response),
        }
    }
}

/// What kube-apiserver asks to convert: the `request` of a ConversionReview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Identifies this round trip; the response must echo it (kdev does).
    pub uid: String,
    /// The `group/version` every object must be converted into (for example `example.com/v2`).
    #[serde(rename = "desiredAPIVersion")]
    pub desired_api_version: String,
    /// The objects, each a full object with its own `apiVersion` (they may differ).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub objects: Vec<Value>,
}

/// The webhook's answer: the `response` of a ConversionReview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's uid.
    pub uid: String,
    /// The converted objects, in the order of the request's; empty on failure.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub converted_objects: Vec<Value>,
    /// `status` is [`SUCCESS`], or [`FAILURE`] with a `message` saying which object failed and why.
    pub result: Status,
}

impl Response {
    /// A successful conversion of `uid` into `converted_objects`.
    pub fn success(uid: impl Into<String>, converted_objects: Vec<Value>) -> Response {
        Response {
            uid: uid.into(),
            converted_objects,
            result: Status {
                status: SUCCESS.to_string(),
                ..Status::default()
            },
        }
    }

    /// A failed conversion of `uid`, with `message`; no objects.
    pub fn failure(uid: impl Into<String>, message: impl Into<String>) -> Response {
        Response {
            uid: uid.into(),
            converted_objects: Vec::new(),
            result: Status {
                status: FAILURE.to_string(),
                message: message.into(),
                ..Status::default()
            },
        }
    }

    /// Whether `result.status` is [`SUCCESS`].
    pub fn is_success(&self) -> bool {
        self.result.status == SUCCESS
    }
}

/// Go serializes a nil slice as `null`: read it as empty.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

/// A [`Convert`] as a route.
pub(crate) struct Converting(pub(crate) Box<dyn Convert>);

/// `namespace/name` (or `name`) of an object, when it has readable ones.
fn object_name(object: &Value) -> Option<String> {
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    })
}

/// How the failing object is named in a Failure message: its index, name and apiVersion.
fn describe(index: usize, object: &Value) -> String {
    let mut text = format!("object {index}");
    if let Some(name) = object_name(object) {
        text.push_str(&format!(" ({name})"));
    }
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(version) => text.push_str(&format!(" of apiVersion {version}")),
        None => text.push_str(" without an apiVersion"),
    }
    text
}

impl Converting {
    /// Answers the ConversionReview in `body`.
    pub(crate) fn answer(&self, body: &[u8]) -> Result<http::Response<Full<Bytes>>, Rejection> {
        let review: Review = serde_json::from_slice(body).map_err(|source| match wire::probe_uid(body) {
            Some(uid) => Rejection::ConversionMalformed { uid, source },
            None => Rejection::NotConversionReview(source),
        })?;
        let request = review.request.ok_or(Rejection::ConversionNoRequest)?;
        let api_version = review.api_version;
        if (api_version != API_VERSION_V1 && api_version != API_VERSION_V1BETA1) || review.kind != KIND {
            return Err(Rejection::ConversionWrongType {
                uid: request.uid,
                api_version,
                kind: review.kind,
            });
        }
        let Request {
            uid,
            desired_api_version,
            objects,
        } = request;
        let mut converted = Vec::with_capacity(objects.len());
        for (index, object) in objects.into_iter().enumerate() {
            let described = describe(index, &object);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.0.convert(object, &desired_api_version)));
            match outcome {
                Ok(Ok(value)) => converted.push(value),
                Ok(Err(source)) => {
                    return Err(Rejection::ConversionFailed {
                        uid,
                        object: described,
                        desired: desired_api_version,
                        source,
                    });
                }
                Err(_) => return Err(Rejection::ConverterPanicked { uid }),
            }
        }
        Ok(wire::conversion_review_as(
            &api_version,
            Response::success(uid, converted),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wire_names_match_the_kubernetes_types() {
        let request: Request = serde_json::from_value(json!({
            "uid": "u", "desiredAPIVersion": "g/v2", "objects": null,
        }))
        .unwrap();
        assert_eq!(request.desired_api_version, "g/v2");
        assert!(request.objects.is_empty());
        let wire = serde_json::to_value(Response::failure("u", "boom")).unwrap();
        assert_eq!(
            wire,
            json!({"uid": "u", "convertedObjects": [], "result": {"status": "Failure", "message": "boom"}})
        );
    }

    #[test]
    fn failing_objects_are_named_by_index_name_and_version() {
        let object = json!({"apiVersion": "g/v1", "metadata": {"name": "w", "namespace": "ns"}});
        assert_eq!(describe(2, &object), "object 2 (ns/w) of apiVersion g/v1");
        assert_eq!(describe(0, &json!(7)), "object 0 without an apiVersion");
    }
}
