//! Every failed request becomes a `metav1.Status`, built here and nowhere else
//! ([API conventions: responses](https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind)).

use http::StatusCode;
use serde_json::{Value, json};

use crate::schema::Cause;

/// What went wrong with a request, in the terms kube-apiserver answers with.
///
/// Each variant maps to one HTTP code and one `reason` in [`ApiError::to_status`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 404 NotFound for a named object.
    #[error("{qualified} \"{name}\" not found")]
    NotFound {
        /// `configmaps`, `deployments.apps`, `myapps.example.com`.
        qualified: String,
        /// The object's name.
        name: String,
    },
    /// 404 NotFound for a path that serves nothing.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 AlreadyExists; kube-apiserver's message says when the existing object is being deleted.
    #[error("{}{qualified} \"{name}\" already exists", if *.deleting { "object is being deleted: " } else { "" })]
    AlreadyExists {
        /// Qualified resource, as in `NotFound`.
        qualified: String,
        /// The object's name.
        name: String,
        /// Whether the existing object has a deletionTimestamp.
        deleting: bool,
    },
    /// 409 Conflict: a stale resourceVersion or a failed precondition.
    #[error("Operation cannot be fulfilled on {qualified} \"{name}\": {detail}")]
    Conflict {
        /// Qualified resource.
        qualified: String,
        /// The object's name.
        name: String,
        /// Why, as kube-apiserver words it.
        detail: String,
    },
    /// 409 Conflict raised by server-side apply, one cause per conflicting field.
    #[error("{message}")]
    ApplyConflict {
        /// Qualified resource.
        qualified: String,
        /// The object's name.
        name: String,
        /// The whole message (`Apply failed with 1 conflict: conflict with "mgr": .spec.replicas`).
        message: String,
        /// `FieldManagerConflict` causes.
        causes: Vec<Cause>,
    },
    /// 422 Invalid with field causes.
    #[error("{}", crate::schema::status_message(&qualify(.kind, .group), .name, .causes))]
    Invalid {
        /// `ConfigMap`, `MyApp.example.com`.
        kind: String,
        /// The group of the kind (empty for core).
        group: String,
        /// The object's name (may be empty).
        name: String,
        /// One cause per invalid field.
        causes: Vec<Cause>,
    },
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 403 Forbidden (namespace terminating, for example).
    #[error("{message}")]
    Forbidden {
        /// Qualified resource.
        qualified: String,
        /// The object's name.
        name: String,
        /// The whole message.
        message: String,
    },
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 410 Gone / Expired: a resourceVersion or continue token older than the history.
    #[error("{0}")]
    Expired(String),
    /// 410 Gone / Expired for a continue token older than the history, with a fresh token in
    /// `metadata.continue` that continues the list from the same key at the latest version (an
    /// inconsistent list), as kube-apiserver's `handleCompactedErrorForPaging` sends.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list \
         without the continue parameter, or use the continue token in this response to retrieve the remainder of \
         the results. Continuing with the provided token results in an inconsistent list - objects that were \
         created, modified, or deleted between the time the first chunk was returned and now may show up in the \
         list."
    )]
    ContinueExpired {
        /// The token that continues at the latest version.
        token: String,
    },
    /// 413 RequestEntityTooLarge.
    #[error("the request entity is too large: limit is {0} bytes")]
    TooLarge(usize),
    /// 406 NotAcceptable: the Accept header asks for a shape the response cannot take.
    #[error("{0}")]
    NotAcceptable(String),
    /// 415 UnsupportedMediaType.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// A complete `metav1.Status` decided outside the server: an admission webhook's denial.
    #[error("{message}")]
    Status {
        /// HTTP code.
        code: u16,
        /// The `reason` field.
        reason: String,
        /// The whole message.
        message: String,
        /// The `details` field, when there is one.
        details: Option<Value>,
    },
    /// A failure injected by the fault handle: any code, any reason.
    #[error("{message}")]
    Injected {
        /// HTTP code.
        code: u16,
        /// Seconds for a `Retry-After` header and `details.retryAfterSeconds`.
        retry_after: Option<u32>,
        /// The message.
        message: String,
    },
}

impl ApiError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn code(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::ApplyConflict { .. } => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Expired(_) | Self::ContinueExpired { .. } => StatusCode::GONE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Injected { code, .. } | Self::Status { code, .. } => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The `reason` field (`metav1.StatusReason`).
    pub fn reason(&self) -> &str {
        match self {
            Self::NotFound { .. } | Self::NoRoute => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden { .. } => "Forbidden",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Expired(_) | Self::ContinueExpired { .. } => "Expired",
            Self::TooLarge(_) => "RequestEntityTooLarge",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Internal(_) => "InternalError",
            Self::Status { reason, .. } => reason,
            Self::Injected { code, .. } => match code {
                409 => "Conflict",
                410 => "Expired",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            },
        }
    }

    /// Seconds the client should wait before retrying, if any.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Injected { retry_after, .. } => *retry_after,
            // A webhook's denial: kube-apiserver's response writer reads the details.
            Self::Status { details: Some(d), .. } => d["retryAfterSeconds"]
                .as_u64()
                .filter(|s| *s > 0)
                .and_then(|s| u32::try_from(s).ok()),
            _ => None,
        }
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            Self::NotFound { qualified, name }
            | Self::AlreadyExists { qualified, name, .. }
            | Self::Conflict { qualified, name, .. }
            | Self::Forbidden { qualified, name, .. } => Some(details(qualified, name, &[])),
            Self::ApplyConflict {
                qualified,
                name,
                causes,
                ..
            } => Some(details(qualified, name, causes)),
            Self::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let mut d = json!({ "name": name, "group": group, "kind": kind, "causes": causes_json(causes) });
                if group.is_empty() {
                    d.as_object_mut().map(|m| m.remove("group"));
                }
                Some(d)
            }
            Self::Injected {
                retry_after: Some(secs),
                ..
            } => Some(json!({ "retryAfterSeconds": secs })),
            Self::Status { details, .. } => details.clone(),
            _ => None,
        };
        if let (Some(d), Some(map)) = (details, status.as_object_mut()) {
            map.insert("details".into(), d);
        }
        if let Self::ContinueExpired { token } = self {
            status["metadata"] = json!({ "continue": token });
        }
        // `reason` is omitted when empty, as a webhook's denial without one leaves it.
        if status["reason"] == "" {
            status.as_object_mut().map(|m| m.remove("reason"));
        }
        status
    }
}

fn qualify(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn details(qualified: &str, name: &str, causes: &[Cause]) -> Value {
    let (kind, group) = qualified.split_once('.').unwrap_or((qualified, ""));
    let mut d = json!({ "name": name, "kind": kind });
    if let Some(m) = d.as_object_mut() {
        if !group.is_empty() {
            m.insert("group".into(), group.into());
        }
        if !causes.is_empty() {
            m.insert("causes".into(), causes_json(causes));
        }
    }
    d
}

fn causes_json(causes: &[Cause]) -> Value {
    causes
        .iter()
        .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
        .collect()
}

/// The `Status` a successful immediate delete answers with.
pub fn deleted(qualified: &str, name: &str, uid: &str) -> Value {
    let (kind, group) = qualified.split_once('.').unwrap_or((qualified, ""));
    let mut d = json!({ "name": name, "kind": kind, "uid": uid });
    if !group.is_empty()
        && let Some(m) = d.as_object_mut()
    {
        m.insert("group".into(), group.into());
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_renders_as_kube_apiserver_does() {
        let e = ApiError::NotFound {
            qualified: "deployments.apps".into(),
            name: "web".into(),
        };
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            s["details"],
            json!({ "name": "web", "group": "apps", "kind": "deployments" })
        );
    }

    #[test]
    fn injected_429_carries_retry_after() {
        let e = ApiError::Injected {
            code: 429,
            retry_after: Some(2),
            message: "slow down".into(),
        };
        let s = e.to_status();
        assert_eq!(s["reason"], "TooManyRequests");
        assert_eq!(s["details"]["retryAfterSeconds"], 2);
        assert_eq!(e.code(), StatusCode::TOO_MANY_REQUESTS);
    }
}
