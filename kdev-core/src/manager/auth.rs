//! Who may scrape `/metrics`: authentication and authorization delegated to the API server, as
//! controller-runtime's `filters.WithAuthenticationAndAuthorization` (kubebuilder's default since
//! v4) and kube-rbac-proxy do it.
//!
//! A request's bearer token goes to a
//! [TokenReview](https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/),
//! which says whose it is; then a
//! [SubjectAccessReview](https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/subject-access-review-v1/)
//! asks whether that user may use the HTTP method, lowercased, as the verb on the request's
//! path: `get` on the non-resource URL `/metrics`. The manager's ServiceAccount therefore needs
//! `create` on `tokenreviews` and `subjectaccessreviews`, and the scraper's account a ClusterRole
//! such as kubebuilder's `metrics-reader`:
//!
//! ```yaml
//! rules:
//! - nonResourceURLs: ["/metrics"]
//!   verbs: ["get"]
//! ```
//!
//! Answers are those of controller-runtime, in Go's `http.Error` form (`text/plain`, the message
//! and a newline):
//!
//! | request | status | body |
//! |---|---|---|
//! | no `Authorization: Bearer` token | 401 | `Unauthorized` |
//! | a token that does not authenticate, or a TokenReview that fails | 500 | `Authentication failed` |
//! | a SubjectAccessReview that fails | 500 | `Authorization for user <name> failed` |
//! | a user not allowed | 403 | `Authorization denied for user <name>` |
//!
//! (A token that does not authenticate is 500 rather than 401 because the API server's
//! bearer-token authenticator reports it as an error, and the filter answers every
//! authentication error so.)
//!
//! Reviews are cached as the API server's delegating authenticator and authorizer cache them:
//! a token's user for 1 minute, an allowed decision for 5 minutes and a denied one for 30
//! seconds, never an error; tokens are kept only as their SHA-256. A review that fails with a
//! connection error, 429, 500 or 504 is retried with backoff (500 ms, growing 1.5 times, five
//! tries), all within 10 seconds.
//!
//! Serve the metrics over TLS ([`ManagerBuilder::metrics_tls`](super::ManagerBuilder::metrics_tls))
//! when you use this: a bearer token sent over plain HTTP can be read on the way.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube_client::api::PostParams;
use kube_client::{Api, Client};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::event::cache::Lru;

/// How many answers each cache keeps at most.
const CACHE_CAPACITY: usize = 8192;

/// How long one review may take, retries included.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Authentication and authorization of requests through the API server (TokenReview, then
/// SubjectAccessReview), with caches; see the [module docs](self).
///
/// Cloning is cheap and clones share the caches.
///
/// # Examples
/// ```
/// # async fn run(client: kube_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use kdev_core::manager::Manager;
/// use kdev_core::manager::auth::DelegatingAuth;
///
/// let auth = DelegatingAuth::new(client.clone()).deny_cache_ttl(Duration::from_secs(10));
/// let manager = Manager::builder(client)
///     .metrics_addr("0.0.0.0:8443".parse()?)
///     .metrics_auth(auth)
///     .build();
/// # let _ = manager; Ok(()) }
/// ```
#[derive(Clone)]
pub struct DelegatingAuth {
    client: Client,
    token_ttl: Duration,
    allow_ttl: Duration,
    deny_ttl: Duration,
    caches: Arc<Caches>,
}

#[derive(Default)]
struct Caches {
    /// By the token's SHA-256: the user, or `None` when the token is not authenticated.
    tokens: Mutex<Ttl<[u8; 32], Option<UserInfo>>>,
    /// By the SubjectAccessReview's spec as JSON: whether it was allowed.
    decisions: Mutex<Ttl<String, bool>>,
}

impl fmt::Debug for DelegatingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegatingAuth")
            .field("token_ttl", &self.token_ttl)
            .field("allow_ttl", &self.allow_ttl)
            .field("deny_ttl", &self.deny_ttl)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused; [`status`](Self::status) and [`body`](Self::body) are the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request carries no bearer token (no `Authorization: Bearer` header, or an empty token).
    #[error("Unauthorized")]
    Unauthenticated,
    /// The token does not authenticate, or the TokenReview failed.
    #[error("Authentication failed")]
    AuthenticationFailed {
        /// What the API server said.
        reason: String,
    },
    /// The SubjectAccessReview failed.
    #[error("Authorization for user {user} failed")]
    AuthorizationFailed {
        /// The user.
        user: String,
        /// What went wrong.
        reason: String,
    },
    /// The user may not do this.
    #[error("Authorization denied for user {user}")]
    Denied {
        /// The user.
        user: String,
        /// The authorizer's reason, when it gave one (empty for a decision from the cache).
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status: 401, 500 or 403.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::AuthenticationFailed { .. } | Refusal::AuthorizationFailed { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Refusal::Denied { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// The response body, as Go's `http.Error` writes it: the message and a newline. The API
    /// server's reasons are logged, never sent to the client.
    pub fn body(&self) -> String {
        format!("{self}\n")
    }
}

impl DelegatingAuth {
    /// Reviews through `client`, with the API server's cache lifetimes (1 minute for tokens,
    /// 5 minutes for allowed decisions, 30 seconds for denied ones).
    pub fn new(client: Client) -> DelegatingAuth {
        DelegatingAuth {
            client,
            token_ttl: Duration::from_secs(60),
            allow_ttl: Duration::from_secs(5 * 60),
            deny_ttl: Duration::from_secs(30),
            caches: Arc::default(),
        }
    }

    /// How long a token's review is reused (`Duration::ZERO`: never).
    #[must_use]
    pub fn token_cache_ttl(mut self, ttl: Duration) -> DelegatingAuth {
        self.token_ttl = ttl;
        self
    }

    /// How long an allowed decision is reused.
    #[must_use]
    pub fn allow_cache_ttl(mut self, ttl: Duration) -> DelegatingAuth {
        self.allow_ttl = ttl;
        self
    }

    /// How long a denied decision is reused.
    #[must_use]
    pub fn deny_cache_ttl(mut self, ttl: Duration) -> DelegatingAuth {
        self.deny_ttl = ttl;
        self
    }

    /// Authenticates and authorizes a request to `path` with `method` and `headers`: the user,
    /// or why not.
    ///
    /// # Errors
    /// A [`Refusal`], whose status and body are the answer to send.
    pub async fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<UserInfo, Refusal> {
        let token = bearer_token(headers).ok_or(Refusal::Unauthenticated)?;
        let user = self.authenticate(token).await?;
        self.authorize(&user, method, path).await?;
        Ok(user)
    }

    async fn authenticate(&self, token: &str) -> Result<UserInfo, Refusal> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.caches.tokens.lock().get(&key);
        let answer = match cached {
            Some(answer) => answer,
            None => {
                #[allow(
                    clippy::useless_conversion,
                    reason = "the token is an `Option` before Kubernetes 1.34"
                )]
                let spec = TokenReviewSpec {
                    token: token.to_string().into(),
                    ..TokenReviewSpec::default()
                };
                let review = TokenReview {
                    spec,
                    ..TokenReview::default()
                };
                let api: Api<TokenReview> = Api::all(self.client.clone());
                let reviewed = with_retries(|| async { api.create(&PostParams::default(), &review).await })
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "a TokenReview for a metrics request failed");
                        Refusal::AuthenticationFailed { reason: e.to_string() }
                    })?;
                let status = reviewed.status.unwrap_or_default();
                let error = status.error.unwrap_or_default();
                if !error.is_empty() {
                    // The API server's error: not cached, as its authenticator caches no errors.
                    tracing::debug!(reason = %error, "a metrics request's token was rejected");
                    return Err(Refusal::AuthenticationFailed { reason: error });
                }
                let answer = (status.authenticated == Some(true)).then(|| status.user.unwrap_or_default());
                self.caches.tokens.lock().put(key, answer.clone(), self.token_ttl);
                answer
            }
        };
        // The API server's bearer-token authenticator reports a token that does not authenticate
        // as an error, which the filter answers as every authentication error.
        answer.ok_or_else(|| Refusal::AuthenticationFailed {
            reason: "invalid bearer token".into(),
        })
    }

    async fn authorize(&self, user: &UserInfo, method: &Method, path: &str) -> Result<(), Refusal> {
        let name = user.username.clone().unwrap_or_default();
        let spec = SubjectAccessReviewSpec {
            user: user.username.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.to_string()),
                verb: Some(method.as_str().to_ascii_lowercase()),
            }),
            ..SubjectAccessReviewSpec::default()
        };
        // Never fails for this type; were it to, nothing is cached rather than all under one key.
        let key = serde_json::to_string(&spec).ok();
        let cached = key.as_ref().and_then(|k| self.caches.decisions.lock().get(k));
        let (allowed, reason) = match cached {
            Some(allowed) => (allowed, String::new()),
            None => {
                let review = SubjectAccessReview {
                    spec,
                    ..SubjectAccessReview::default()
                };
                let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
                let reviewed = with_retries(|| async { api.create(&PostParams::default(), &review).await })
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, user = %name, "a SubjectAccessReview for a metrics request failed");
                        Refusal::AuthorizationFailed {
                            user: name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                let status = reviewed.status.unwrap_or_default();
                if status.allowed && status.denied == Some(true) {
                    // The API server's webhook authorizer takes this for an error, too.
                    return Err(Refusal::AuthorizationFailed {
                        user: name,
                        reason: "the review is both allowed and denied".into(),
                    });
                }
                let allowed = status.allowed;
                let ttl = if allowed { self.allow_ttl } else { self.deny_ttl };
                if let Some(key) = key {
                    self.caches.decisions.lock().put(key, allowed, ttl);
                }
                (allowed, status.reason.unwrap_or_default())
            }
        };
        if allowed {
            Ok(())
        } else {
            tracing::debug!(user = %name, path, reason = %reason, "a metrics request was denied");
            Err(Refusal::Denied { user: name, reason })
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, as the API server's bearer-token
/// authenticator reads it: the scheme in any case, the token up to the next space.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Calls `call` until it succeeds, fails in a way a retry cannot help, or five tries are spent,
/// as the API server's webhook client retries (500 ms, then 1.5 times longer each time, with
/// 20 % jitter), all within 10 seconds (`TokenAccessReviewTimeout`): a scrape is answered
/// before Prometheus' own 10 s timeout gives up on it.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, kube_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube_client::Error>>,
{
    const TRIES: u32 = 5;
    let tries = async {
        let mut delay = Duration::from_millis(500);
        let mut tries = 0;
        loop {
            tries += 1;
            match call().await {
                Err(e) if tries < TRIES && retriable(&e) => {
                    let jitter = delay.mul_f64(0.2 * fastrand::f64());
                    tokio::time::sleep(delay + jitter).await;
                    delay = delay.mul_f64(1.5);
                }
                other => return other,
            }
        }
    };
    tokio::time::timeout(REVIEW_TIMEOUT, tries)
        .await
        .unwrap_or_else(|_| Err(kube_client::Error::Service("the review did not finish in 10s".into())))
}

/// Whether a failed review may succeed if tried again: a connection that failed or timed out,
/// or the API server answering 429, 500 or 504.
fn retriable(e: &kube_client::Error) -> bool {
    match e {
        kube_client::Error::Api(status) => matches!(status.code, 429 | 500 | 504),
        kube_client::Error::HyperError(_) | kube_client::Error::Service(_) => true,
        _ => false,
    }
}

/// Answers that expire, at most [`CACHE_CAPACITY`] of them: the event recorder's LRU, with a
/// deadline on each entry (the API server's caches are LRUs with TTLs too).
struct Ttl<K, V> {
    lru: Lru<K, (V, Instant)>,
}

impl<K: std::hash::Hash + Eq + Clone, V> Default for Ttl<K, V> {
    fn default() -> Self {
        Ttl {
            lru: Lru::new(CACHE_CAPACITY),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Ttl<K, V> {
    fn get(&mut self, key: &K) -> Option<V> {
        let now = Instant::now();
        let fresh = self
            .lru
            .get_mut(key)
            .map(|(v, until)| (*until > now).then(|| v.clone()));
        match fresh {
            Some(None) => {
                self.lru.remove(key);
                None
            }
            found => found.flatten(),
        }
    }

    fn put(&mut self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        // A TTL too long to add is a century: for ever, as far as a process is concerned.
        let until = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.lru.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};

    use super::*;

    /// What the fake API server has answered so far, by kind of review.
    #[derive(Default)]
    struct Calls {
        tokens: AtomicUsize,
        decisions: AtomicUsize,
    }

    /// A client whose API server knows the token `good` as `alice`, rejects every other token
    /// with an error, lets `alice` `get` `/metrics` only, and fails the first `failures`
    /// SubjectAccessReviews with `code`.
    fn fake(calls: Arc<Calls>, failures: usize, code: u16) -> Client {
        let service = tower::service_fn(move |req: http::Request<kube_client::client::Body>| {
            let calls = calls.clone();
            async move {
                let path = req.uri().path().to_string();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let mut review: Value = serde_json::from_slice(&body).unwrap_or_default();
                let (status, answer) = if path.ends_with("/tokenreviews") {
                    calls.tokens.fetch_add(1, Ordering::SeqCst);
                    review["status"] = if review["spec"]["token"] == "good" {
                        json!({ "authenticated": true, "user": { "username": "alice", "groups": ["system:authenticated"] } })
                    } else if review["spec"]["token"] == "unknown" {
                        json!({ "user": {} })
                    } else {
                        json!({ "user": {}, "error": "[invalid bearer token]" })
                    };
                    (200, review)
                } else {
                    let n = calls.decisions.fetch_add(1, Ordering::SeqCst);
                    if n < failures {
                        let status = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                                             "message": "try again", "reason": "InternalError", "code": code });
                        (code, status)
                    } else {
                        let nr = &review["spec"]["nonResourceAttributes"];
                        let allowed =
                            review["spec"]["user"] == "alice" && nr["path"] == "/metrics" && nr["verb"] == "get";
                        review["status"] = json!({ "allowed": allowed });
                        (200, review)
                    }
                };
                let mut resp = http::Response::new(Full::new(Bytes::from(answer.to_string())));
                *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(resp)
            }
        });
        Client::new(service, "default")
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(header::HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn the_bearer_token_is_read_as_the_api_server_reads_it() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                header::HeaderValue::from_str(value).expect("a header value"),
            );
            bearer_token(&h).map(str::to_string)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("BEARER abc extra").as_deref(), Some("abc"));
        assert_eq!(with("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(with("Bearer  abc"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_known_user_allowed_passes_and_both_answers_are_cached() {
        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), 0, 500));
        for _ in 0..3 {
            let user = auth
                .check(&Method::GET, "/metrics", &bearer("good"))
                .await
                .expect("allowed");
            assert_eq!(user.username.as_deref(), Some("alice"));
        }
        assert_eq!(calls.tokens.load(Ordering::SeqCst), 1);
        assert_eq!(calls.decisions.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refusals_answer_as_controller_runtime_does() {
        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), 0, 500));
        let refusal = |r: Result<UserInfo, Refusal>| {
            let refusal = r.expect_err("refused");
            (refusal.status().as_u16(), refusal.body())
        };
        assert_eq!(
            refusal(auth.check(&Method::GET, "/metrics", &HeaderMap::new()).await),
            (401, "Unauthorized\n".to_string())
        );
        assert_eq!(calls.tokens.load(Ordering::SeqCst), 0, "no token, no review");
        assert_eq!(
            refusal(auth.check(&Method::GET, "/metrics", &bearer("unknown")).await),
            (500, "Authentication failed\n".to_string())
        );
        assert_eq!(
            refusal(auth.check(&Method::GET, "/metrics", &bearer("forged")).await),
            (500, "Authentication failed\n".to_string())
        );
        assert_eq!(
            refusal(auth.check(&Method::PUT, "/metrics", &bearer("good")).await),
            (403, "Authorization denied for user alice\n".to_string())
        );
        assert_eq!(
            refusal(auth.check(&Method::GET, "/debug", &bearer("good")).await),
            (403, "Authorization denied for user alice\n".to_string())
        );
        // A rejected token is an error, which is never cached; an unknown one is.
        let before = calls.tokens.load(Ordering::SeqCst);
        let _ = auth.check(&Method::GET, "/metrics", &bearer("forged")).await;
        let _ = auth.check(&Method::GET, "/metrics", &bearer("unknown")).await;
        assert_eq!(calls.tokens.load(Ordering::SeqCst), before + 1);
    }

    #[tokio::test]
    async fn a_denial_is_cached_for_its_own_shorter_time() {
        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), 0, 500)).deny_cache_ttl(Duration::ZERO);
        for _ in 0..2 {
            let _ = auth.check(&Method::PUT, "/metrics", &bearer("good")).await;
        }
        assert_eq!(
            calls.decisions.load(Ordering::SeqCst),
            2,
            "denials not cached with a zero TTL"
        );
        for _ in 0..2 {
            auth.check(&Method::GET, "/metrics", &bearer("good"))
                .await
                .expect("allowed");
        }
        assert_eq!(
            calls.decisions.load(Ordering::SeqCst),
            3,
            "the allowed decision is cached"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_that_fails_for_a_moment_is_retried_and_one_that_keeps_failing_is_500() {
        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), 2, 500));
        auth.check(&Method::GET, "/metrics", &bearer("good"))
            .await
            .expect("allowed on the third try");
        assert_eq!(calls.decisions.load(Ordering::SeqCst), 3);

        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), usize::MAX, 500));
        let refusal = auth
            .check(&Method::GET, "/metrics", &bearer("good"))
            .await
            .expect_err("refused");
        assert_eq!(refusal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(refusal.body(), "Authorization for user alice failed\n");
        assert_eq!(calls.decisions.load(Ordering::SeqCst), 5, "five tries");

        // A 403 (the manager may not create reviews) is not retried.
        let calls = Arc::new(Calls::default());
        let auth = DelegatingAuth::new(fake(calls.clone(), usize::MAX, 403));
        let refusal = auth
            .check(&Method::GET, "/metrics", &bearer("good"))
            .await
            .expect_err("refused");
        assert_eq!(refusal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(calls.decisions.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_cache_expires_entries_and_holds_a_bounded_number() {
        let mut cache: Ttl<usize, bool> = Ttl::default();
        cache.put(1, true, Duration::from_secs(60));
        cache.put(2, true, Duration::ZERO);
        cache.put(3, true, Duration::MAX);
        assert_eq!(cache.get(&1), Some(true));
        assert_eq!(cache.get(&3), Some(true));
        assert_eq!(cache.get(&2), None);
        for i in 0..CACHE_CAPACITY + 10 {
            cache.put(i + 10, false, Duration::from_secs(60 + i as u64));
        }
        assert!(cache.lru.len() <= CACHE_CAPACITY);
        assert_eq!(cache.get(&(CACHE_CAPACITY + 19)), Some(false), "the newest is kept");
    }
}
