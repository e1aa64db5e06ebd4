//! The one place where failures become HTTP responses: an HTTP error when the request cannot be
//! read as an AdmissionReview, a denied review (HTTP 200) when its uid can be.

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::Full;

use crate::admission::{API_VERSION_V1, Operation, Response, Review};

/// Why a request was not handed to a handler, or why its object could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("no webhook is registered at {path}")]
    NotFound { path: String },
    #[error("method {method} is not allowed: webhooks accept POST")]
    MethodNotAllowed { method: http::Method },
    #[error("content type {content_type:?} is not supported: send application/json")]
    ContentType { content_type: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the request body timed out")]
    ReadTimeout,
    #[error("reading the request body failed")]
    ReadBody(#[source] hyper::Error),
    #[error("the request body is not an AdmissionReview")]
    Unreadable(#[source] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview is malformed")]
    Malformed {
        uid: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("apiVersion {api_version:?} kind {kind:?} is not an AdmissionReview v1 or v1beta1")]
    WrongType {
        uid: String,
        api_version: String,
        kind: String,
    },
    #[error("the request's {field} is missing, which a {} needs", operation.as_str())]
    MissingObject {
        uid: String,
        field: &'static str,
        operation: Operation,
    },
    #[error("decoding the request's {field} failed")]
    DecodeObject {
        uid: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding the defaulted object failed")]
    EncodeObject {
        uid: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a typed webhook does not handle {} requests; register a raw handler", operation.as_str())]
    UnsupportedOperation { uid: String, operation: Operation },
    #[error("internal error occurred during admission: the handler panicked")]
    HandlerPanicked { uid: String },
}

/// The rejection's message followed by its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Rejection {
    /// The HTTP response for this rejection.
    pub(crate) fn into_http(self) -> http::Response<Full<Bytes>> {
        let message = chain(&self);
        let (status, uid) = match self {
            Rejection::NotFound { .. } => (StatusCode::NOT_FOUND, None),
            Rejection::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, None),
            Rejection::ContentType { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, None),
            Rejection::ReadTimeout => (StatusCode::REQUEST_TIMEOUT, None),
            Rejection::ReadBody(_) | Rejection::Unreadable(_) | Rejection::NoRequest => (StatusCode::BAD_REQUEST, None),
            Rejection::Malformed { uid, .. }
            | Rejection::WrongType { uid, .. }
            | Rejection::MissingObject { uid, .. }
            | Rejection::DecodeObject { uid, .. }
            | Rejection::UnsupportedOperation { uid, .. } => (StatusCode::BAD_REQUEST, Some(uid)),
            Rejection::EncodeObject { uid, .. } | Rejection::HandlerPanicked { uid } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Some(uid))
            }
        };
        tracing::debug!(%status, %message, "admission request rejected");
        match uid {
            Some(uid) => review_as(
                API_VERSION_V1,
                Response {
                    uid,
                    ..Response::errored(status.as_u16(), message).with_reason(reason(status))
                },
            ),
            None => status_body(status, &message),
        }
    }
}

fn reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
        _ => "",
    }
}

/// An HTTP 200 carrying `response` in an AdmissionReview of `api_version` (the request's).
pub(crate) fn review_as(api_version: &str, response: Response) -> http::Response<Full<Bytes>> {
    let review = Review {
        api_version: api_version.to_string(),
        ..Review::from_response(response)
    };
    match serde_json::to_vec(&review) {
        Ok(body) => json(StatusCode::OK, body),
        // Only strings, maps and numbers: unreachable in practice, answered all the same.
        Err(err) => status_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the response failed: {err}"),
        ),
    }
}

/// A `metav1.Status` body with `status` as its code.
fn status_body(status: StatusCode, message: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": status.canonical_reason().unwrap_or("").replace(' ', ""),
        "code": status.as_u16(),
    });
    json(status, body.to_string().into_bytes())
}

fn json(status: StatusCode, body: Vec<u8>) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
