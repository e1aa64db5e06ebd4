//! The typed adapters behind a route: decode the objects, call the user's trait, build the answer.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::review::{IncomingReview, Objects, RawObjects};
use super::{API_VERSION_V1, API_VERSION_V1BETA1, Defaulter, Handler, KIND, Operation, Request, Response, Validator};
use crate::wire::{self, Rejection};

/// A route's answer to a review: the response (its uid set) and the review's apiVersion.
pub(crate) struct Answer {
    pub(crate) api_version: String,
    pub(crate) response: Response,
}

/// One admission route, type-erased.
pub(crate) trait Endpoint: Send + Sync + 'static {
    /// Answers `req`, whose objects are `objects` (raw, borrowed from the request body); a
    /// `Rejection` is turned into a denied review by `crate::wire`.
    fn admit<'a>(&'a self, req: Request, objects: RawObjects<'a>) -> BoxFuture<'a, Result<Response, Rejection>>;

    /// Answers the AdmissionReview in `body`.
    fn answer<'a>(&'a self, body: &'a [u8]) -> BoxFuture<'a, Result<Answer, Rejection>> {
        Box::pin(general(self, body))
    }
}

/// The apiVersion, request and objects of `review`, once it is known to be an AdmissionReview
/// with a request.
fn checked<O>(review: IncomingReview<O>) -> Result<(String, Request, Objects<O>), Rejection> {
    let request = review.request.ok_or(Rejection::NoRequest)?;
    let api_version = review.api_version;
    if (api_version != API_VERSION_V1 && api_version != API_VERSION_V1BETA1) || review.kind != KIND {
        return Err(Rejection::WrongType {
            uid: request.uid,
            api_version,
            kind: review.kind,
        });
    }
    let (request, objects) = request.split();
    Ok((api_version, request, objects))
}

/// Runs a handler's future: a panic becomes a rejection, the answer gets the request's uid.
async fn guard(
    uid: String,
    answer: impl std::future::Future<Output = Result<Response, Rejection>>,
) -> Result<Response, Rejection> {
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(Ok(response)) => Ok(Response { uid, ..response }),
        Ok(Err(rejection)) => Err(rejection),
        Err(_) => Err(Rejection::HandlerPanicked { uid }),
    }
}

/// Answers the review in `body` with the objects kept raw until `endpoint` decodes them; what
/// every route does, and what a typed one falls back to for a precise rejection.
async fn general<E: Endpoint + ?Sized>(endpoint: &E, body: &[u8]) -> Result<Answer, Rejection> {
    let review: IncomingReview<&RawValue> =
        serde_json::from_slice(body).map_err(|source| match wire::probe_uid(body) {
            Some(uid) => Rejection::Malformed { uid, source },
            None => Rejection::Unreadable(source),
        })?;
    let (api_version, request, objects) = checked(review)?;
    let uid = request.uid.clone();
    let response = guard(uid, endpoint.admit(request, objects)).await?;
    Ok(Answer { api_version, response })
}

/// A [`Validator`] as a route.
pub(crate) struct Validating<K, V> {
    pub(crate) validator: V,
    pub(crate) _kind: PhantomData<fn() -> K>,
}

/// A [`Defaulter`] as a route.
pub(crate) struct Mutating<K, D> {
    pub(crate) defaulter: D,
    pub(crate) _kind: PhantomData<fn() -> K>,
}

/// A raw [`Handler`] as a route, of a mutating webhook (which may patch) or a validating one.
pub(crate) struct Raw<H> {
    pub(crate) handler: H,
    pub(crate) mutating: bool,
}

/// The request's `object` (`old == false`) or `oldObject`; missing is a rejection.
fn take<O>(req: &Request, objects: &mut Objects<O>, old: bool) -> Result<O, Rejection> {
    let (field, value) = if old {
        ("oldObject", objects.old_object.take())
    } else {
        ("object", objects.object.take())
    };
    value.ok_or_else(|| Rejection::MissingObject {
        uid: req.uid.clone(),
        field,
        operation: req.operation,
    })
}

/// Decodes a raw object, the request's `field`, into `T`.
fn decode<T: DeserializeOwned>(req: &Request, field: &'static str, raw: &RawValue) -> Result<T, Rejection> {
    serde_json::from_str(raw.get()).map_err(|source| Rejection::DecodeObject {
        uid: req.uid.clone(),
        field,
        source,
    })
}

/// Decodes both raw objects into `T`.
fn decode_both<T: DeserializeOwned>(req: &Request, objects: RawObjects<'_>) -> Result<Objects<T>, Rejection> {
    Ok(Objects {
        object: objects.object.map(|o| decode(req, "object", o)).transpose()?,
        old_object: objects.old_object.map(|o| decode(req, "oldObject", o)).transpose()?,
    })
}

impl<K, V> Validating<K, V>
where
    K: DeserializeOwned + Send + Sync + 'static,
    V: Validator<K>,
{
    async fn validate(&self, req: Request, mut objects: Objects<K>) -> Result<Response, Rejection> {
        let verdict = match req.operation {
            Operation::Create => {
                let obj = take(&req, &mut objects, false)?;
                self.validator.validate_create(&req, &obj).await
            }
            Operation::Update => {
                let new = take(&req, &mut objects, false)?;
                let old = take(&req, &mut objects, true)?;
                self.validator.validate_update(&req, &old, &new).await
            }
            Operation::Delete => {
                let obj = take(&req, &mut objects, true)?;
                self.validator.validate_delete(&req, &obj).await
            }
            Operation::Connect => {
                return Err(Rejection::UnsupportedOperation {
                    uid: req.uid.clone(),
                    operation: req.operation,
                });
            }
        };
        Ok(verdict.into_response(Some(&req)))
    }
}

impl<K, V> Endpoint for Validating<K, V>
where
    K: DeserializeOwned + Send + Sync + 'static,
    V: Validator<K>,
{
    fn admit<'a>(&'a self, req: Request, objects: RawObjects<'a>) -> BoxFuture<'a, Result<Response, Rejection>> {
        Box::pin(async move {
            // Only the objects the operation uses are decoded (a CONNECT's are not a `K`).
            let objects = match req.operation {
                Operation::Create => Objects {
                    object: objects.object.map(|o| decode(&req, "object", o)).transpose()?,
                    old_object: None,
                },
                Operation::Update => decode_both(&req, objects)?,
                Operation::Delete => Objects {
                    object: None,
                    old_object: objects.old_object.map(|o| decode(&req, "oldObject", o)).transpose()?,
                },
                Operation::Connect => Objects {
                    object: None,
                    old_object: None,
                },
            };
            self.validate(req, objects).await
        })
    }

    fn answer<'a>(&'a self, body: &'a [u8]) -> BoxFuture<'a, Result<Answer, Rejection>> {
        Box::pin(async move {
            // One pass over the body, the objects decoded straight into `K`. A review that does
            // not decode so takes the general path, which says precisely what is wrong.
            // UTF-8 is checked once for the whole body rather than string by string.
            let typed = std::str::from_utf8(body)
                .ok()
                .and_then(|text| serde_json::from_str::<IncomingReview<K>>(text).ok());
            let Some(review) = typed else {
                return general(self, body).await;
            };
            let (api_version, request, objects) = checked(review)?;
            let uid = request.uid.clone();
            let response = guard(uid, self.validate(request, objects)).await?;
            Ok(Answer { api_version, response })
        })
    }
}

impl<K, D> Endpoint for Mutating<K, D>
where
    K: DeserializeOwned + Serialize + Send + Sync + 'static,
    D: Defaulter<K>,
{
    fn admit<'a>(&'a self, req: Request, mut objects: RawObjects<'a>) -> BoxFuture<'a, Result<Response, Rejection>> {
        Box::pin(async move {
            if matches!(req.operation, Operation::Delete | Operation::Connect) {
                return Ok(Response::allowed());
            }
            let raw = take(&req, &mut objects, false)?;
            // The object as received, parsed once: the patch starts from it and `K` is read
            // from it rather than from the text again.
            let original: Value = decode(&req, "object", raw)?;
            let encoded = |obj: &K| {
                serde_json::to_value(obj).map_err(|source| Rejection::EncodeObject {
                    uid: req.uid.clone(),
                    source,
                })
            };
            let mut obj = K::deserialize(&original).map_err(|source| Rejection::DecodeObject {
                uid: req.uid.clone(),
                field: "object",
                source,
            })?;
            // The object as `K` encodes it before the defaulter runs: what the type adds (the
            // `null` of an `Option` serialized without `skip_serializing_if`, a serde default)
            // or drops (a field it does not know) is no change of the defaulter's.
            let before = encoded(&obj)?;
            let verdict = self.defaulter.set_defaults(&req, &mut obj).await;
            if !verdict.is_allowed() {
                return Ok(verdict.into_response(Some(&req)));
            }
            let after = encoded(&obj)?;
            drop(obj);
            let patch = super::patch::defaulted(&original, &before, &after);
            Ok(verdict.into_response(Some(&req)).with_patch(&patch))
        })
    }
}

impl<H: Handler> Endpoint for Raw<H> {
    fn admit<'a>(&'a self, mut req: Request, objects: RawObjects<'a>) -> BoxFuture<'a, Result<Response, Rejection>> {
        Box::pin(async move {
            // A raw handler gets the objects whole, as JSON values.
            let objects: Objects<Value> = decode_both(&req, objects)?;
            req.object = objects.object;
            req.old_object = objects.old_object;
            let uid = req.uid.clone();
            let mut response = self.handler.handle(req).await;
            if !self.mutating {
                // Sent as it is, as controller-runtime does: kube-apiserver counts a validating
                // webhook's patch as a failed call, which `failurePolicy` then decides.
                if response.patch.is_some() || response.patch_type.is_some() {
                    tracing::warn!(
                        %uid,
                        "a raw handler served as a validating webhook returned a patch, which kube-apiserver \
                         treats as a failed call (\"validating webhook may not return response.patch\"): \
                         serve it with Builder::raw_mutating"
                    );
                }
            } else if response.patch.is_some() {
                response.patch_type = Some(super::PatchType::JsonPatch);
            } else {
                response.patch_type = None;
            }
            Ok(response)
        })
    }
}
