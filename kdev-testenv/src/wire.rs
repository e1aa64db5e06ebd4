//! HTTP response helpers: JSON bodies, streamed bodies, and errors as `metav1.Status`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

use crate::status::ApiError;

/// The body type of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response.
pub fn json(code: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A JSON response from a value.
pub fn json_value(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json(code, serde_json::to_vec(value).unwrap_or_default())
}

/// The error as kube-apiserver sends it: a `Status` body, the matching code, and `Retry-After`.
pub fn error(err: &ApiError) -> Response<Body> {
    let mut resp = json_value(err.code(), &err.to_status());
    if let Some(secs) = err.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
