//! The typed adapters behind a route: decode the objects, call the user's trait, build the answer.

use std::marker::PhantomData;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Defaulter, Handler, Operation, Request, Response, Validator};
use crate::wire::Rejection;

/// One admission route, type-erased.
pub(crate) trait Endpoint: Send + Sync + 'static {
    /// Answers `req`; a `Rejection` is turned into a denied review by `crate::wire`.
    fn admit(&self, req: Request) -> BoxFuture<'_, Result<Response, Rejection>>;
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

/// A raw [`Handler`] as a route.
pub(crate) struct Raw<H>(pub(crate) H);

/// Decodes `req.object` (`old == false`) or `req.oldObject` into `K`.
fn decode<K: DeserializeOwned>(req: &Request, old: bool) -> Result<K, Rejection> {
    let (field, value) = if old {
        ("oldObject", &req.old_object)
    } else {
        ("object", &req.object)
    };
    match value {
        None | Some(Value::Null) => Err(Rejection::MissingObject {
            uid: req.uid.clone(),
            field,
            operation: req.operation,
        }),
        Some(v) => K::deserialize(v).map_err(|source| Rejection::DecodeObject {
            uid: req.uid.clone(),
            field,
            source,
        }),
    }
}

impl<K, V> Endpoint for Validating<K, V>
where
    K: DeserializeOwned + Send + Sync + 'static,
    V: Validator<K>,
{
    fn admit(&self, req: Request) -> BoxFuture<'_, Result<Response, Rejection>> {
        Box::pin(async move {
            let verdict = match req.operation {
                Operation::Create => {
                    let obj: K = decode(&req, false)?;
                    self.validator.validate_create(&req, &obj).await
                }
                Operation::Update => {
                    let new: K = decode(&req, false)?;
                    let old: K = decode(&req, true)?;
                    self.validator.validate_update(&req, &old, &new).await
                }
                Operation::Delete => {
                    let obj: K = decode(&req, true)?;
                    self.validator.validate_delete(&req, &obj).await
                }
                Operation::Connect => {
                    return Err(Rejection::UnsupportedOperation {
                        uid: req.uid.clone(),
                        operation: req.operation,
                    });
                }
            };
            Ok(verdict.into_response())
        })
    }
}

impl<K, D> Endpoint for Mutating<K, D>
where
    K: DeserializeOwned + Serialize + Send + Sync + 'static,
    D: Defaulter<K>,
{
    fn admit(&self, req: Request) -> BoxFuture<'_, Result<Response, Rejection>> {
        Box::pin(async move {
            if matches!(req.operation, Operation::Delete | Operation::Connect) {
                return Ok(Response::allowed());
            }
            let mut obj: K = decode(&req, false)?;
            // What a decode and encode alone does to the object: removals it causes are the
            // type's, not the defaulter's, and are kept out of the patch.
            let round_trip = serde_json::to_value(&obj).map_err(|source| Rejection::EncodeObject {
                uid: req.uid.clone(),
                source,
            })?;
            let verdict = self.defaulter.default(&req, &mut obj).await;
            if !verdict.is_allowed() {
                return Ok(verdict.into_response());
            }
            let mutated = serde_json::to_value(&obj).map_err(|source| Rejection::EncodeObject {
                uid: req.uid.clone(),
                source,
            })?;
            let original = req.object.as_ref().unwrap_or(&Value::Null);
            let patch = defaulting_patch(original, &round_trip, &mutated);
            Ok(verdict.into_response().with_patch(&patch))
        })
    }
}

/// The patch from `original` to `mutated`, without the removals a plain round trip through the
/// type (`round_trip`) also makes, as controller-runtime's defaulter does by default.
pub(crate) fn defaulting_patch(original: &Value, round_trip: &Value, mutated: &Value) -> json_patch::Patch {
    let type_removals: Vec<_> = json_patch::diff(original, round_trip)
        .0
        .into_iter()
        .filter_map(|op| match op {
            json_patch::PatchOperation::Remove(r) => Some(r.path),
            _ => None,
        })
        .collect();
    let mut patch = json_patch::diff(original, mutated);
    patch
        .0
        .retain(|op| !matches!(op, json_patch::PatchOperation::Remove(r) if type_removals.contains(&r.path)));
    patch
}

impl<H: Handler> Endpoint for Raw<H> {
    fn admit(&self, req: Request) -> BoxFuture<'_, Result<Response, Rejection>> {
        Box::pin(async move { Ok(self.0.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn removals_caused_by_the_type_stay_out_of_the_patch() {
        let original = json!({"a": 1, "unknown": true, "gone": 2});
        let round_trip = json!({"a": 1, "gone": 2});
        let mutated = json!({"a": 5, "b": 1});
        let patch = defaulting_patch(&original, &round_trip, &mutated);
        let mut applied = original.clone();
        json_patch::patch(&mut applied, &patch.0).unwrap();
        assert_eq!(applied, json!({"a": 5, "b": 1, "unknown": true}));
    }
}
