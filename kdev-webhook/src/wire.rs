//! The one place where failures become HTTP responses: an HTTP error when the request cannot be
//! read as an AdmissionReview (or ConversionReview), a denied review (a Failure review for
//! conversion), HTTP 200, when its uid can be.

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
    #[cfg(feature = "conversion")]
    #[error("the request body is not a ConversionReview")]
    NotConversionReview(#[source] serde_json::Error),
    #[cfg(feature = "conversion")]
    #[error("the ConversionReview has no request")]
    ConversionNoRequest,
    #[cfg(feature = "conversion")]
    #[error("the ConversionReview is malformed")]
    ConversionMalformed {
        uid: String,
        #[source]
        source: serde_json::Error,
    },
    #[cfg(feature = "conversion")]
    #[error("apiVersion {api_version:?} kind {kind:?} is not a ConversionReview v1 or v1beta1")]
    ConversionWrongType {
        uid: String,
        api_version: String,
        kind: String,
    },
    #[cfg(feature = "conversion")]
    #[error("converting {object} to {desired} failed")]
    ConversionFailed {
        uid: String,
        object: String,
        desired: String,
        #[source]
        source: kdev_crd::conversion::ConversionError,
    },
    #[cfg(feature = "conversion")]
    #[error("internal error occurred during conversion: the converter panicked")]
    ConverterPanicked { uid: String },
}

/// Just the uid of a review that does not otherwise parse.
#[derive(serde::Deserialize)]
struct UidProbe {
    request: Option<UidOnly>,
}

#[derive(serde::Deserialize)]
struct UidOnly {
    uid: String,
}

/// The `request.uid` of a review body that does not parse as a whole, when it is readable.
pub(crate) fn probe_uid(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<UidProbe>(body) {
        Ok(UidProbe {
            request: Some(UidOnly { uid }),
        }) => Some(uid),
        _ => None,
    }
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
        let (status, answer) = match self {
            Rejection::NotFound { .. } => (StatusCode::NOT_FOUND, Answer::Status),
            Rejection::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, Answer::Status),
            Rejection::ContentType { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Answer::Status),
            Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, Answer::Status),
            Rejection::ReadTimeout => (StatusCode::REQUEST_TIMEOUT, Answer::Status),
            Rejection::ReadBody(_) | Rejection::Unreadable(_) | Rejection::NoRequest => {
                (StatusCode::BAD_REQUEST, Answer::Status)
            }
            Rejection::Malformed { uid, .. }
            | Rejection::WrongType { uid, .. }
            | Rejection::MissingObject { uid, .. }
            | Rejection::DecodeObject { uid, .. }
            | Rejection::UnsupportedOperation { uid, .. } => (StatusCode::BAD_REQUEST, Answer::Admission(uid)),
            Rejection::EncodeObject { uid, .. } | Rejection::HandlerPanicked { uid } => {
                (StatusCode::INTERNAL_SERVER_ERROR, Answer::Admission(uid))
            }
            #[cfg(feature = "conversion")]
            Rejection::NotConversionReview(_) | Rejection::ConversionNoRequest => {
                (StatusCode::BAD_REQUEST, Answer::Status)
            }
            #[cfg(feature = "conversion")]
            Rejection::ConversionMalformed { uid, .. }
            | Rejection::ConversionWrongType { uid, .. }
            | Rejection::ConversionFailed { uid, .. } => (StatusCode::BAD_REQUEST, Answer::Conversion(uid)),
            #[cfg(feature = "conversion")]
            Rejection::ConverterPanicked { uid } => (StatusCode::INTERNAL_SERVER_ERROR, Answer::Conversion(uid)),
        };
        tracing::debug!(%status, %message, "webhook request rejected");
        match answer {
            Answer::Admission(uid) => review_as(
                API_VERSION_V1,
                Response {
                    uid,
                    ..Response::errored(status.as_u16(), message).with_reason(reason(status))
                },
            ),
            // A ConversionReview's result has no code: kube-apiserver reads the status and message.
            #[cfg(feature = "conversion")]
            Answer::Conversion(uid) => conversion_review_as(
                crate::conversion::API_VERSION_V1,
                crate::conversion::Response::failure(uid, message),
            ),
            Answer::Status => status_body(status, &message),
        }
    }
}

/// How a rejection is answered.
enum Answer {
    /// An HTTP error with a `metav1.Status` body.
    Status,
    /// A denied AdmissionReview (HTTP 200) for this uid.
    Admission(String),
    /// A Failure ConversionReview (HTTP 200) for this uid.
    #[cfg(feature = "conversion")]
    Conversion(String),
}

/// An HTTP 200 carrying `response` in a ConversionReview of `api_version` (the request's).
#[cfg(feature = "conversion")]
pub(crate) fn conversion_review_as(
    api_version: &str,
    response: crate::conversion::Response,
) -> http::Response<Full<Bytes>> {
    let review = crate::conversion::Review {
        api_version: api_version.to_string(),
        ..crate::conversion::Review::from_response(response)
    };
    match serde_json::to_vec(&review) {
        Ok(body) => json(StatusCode::OK, body),
        // Converted objects are JSON values already: unreachable in practice, answered all the same.
        Err(err) => status_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the response failed: {err}"),
        ),
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
