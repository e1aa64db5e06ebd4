//! Calling a webhook in process: a request body handed to the handler of a path, no network,
//! no TLS — for unit tests of webhooks, property tests and fuzzing.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;

use super::{Builder, Error, Server, Shared};
use crate::wire::Rejection;

impl Shared {
    /// The answer to `body` posted to `path`, as the network path gives it after reading the body.
    async fn call(&self, path: &str, body: Bytes) -> http::Response<Bytes> {
        let response = match self.routes.get(path) {
            None => Rejection::NotFound { path: path.to_string() }.into_http(),
            Some(route) if body.len() > self.body_limit(route) => Rejection::TooLarge {
                limit: self.body_limit(route),
            }
            .into_http(),
            Some(route) => match self.answer(route, &body).await {
                Ok(response) => response,
                Err(rejection) => rejection.into_http(),
            },
        };
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        http::Response::from_parts(parts, bytes)
    }
}

impl Server {
    /// Hands `body`, as if POSTed with `Content-Type: application/json` to `path`, to the
    /// webhook registered there and returns its HTTP response — without the network or TLS.
    ///
    /// The answer is exactly what a client of [`serve`](Self::serve) gets for that body: a
    /// review (HTTP 200), or an HTTP error with a `metav1.Status` body (404 for an unknown path,
    /// 413 for a body over [`Config::max_body_size`](super::Config::max_body_size) (at a
    /// conversion path, [`Config::max_conversion_body_size`](super::Config::max_conversion_body_size)), 400 for one
    /// that is not a review). Use it to unit-test webhooks; [`Builder::build_in_process`] gives
    /// the same without a certificate.
    ///
    /// # Examples
    /// ```
    /// use kdev_webhook::Server;
    /// use kdev_webhook::admission::{Request, Response};
    /// use serde_json::{Value, json};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    /// # let tls = kdev_webhook::tls::ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?;
    /// let server = Server::builder()
    ///     .raw("/deny-all", |_req: Request| async { Response::denied("closed") })
    ///     .tls(tls)
    ///     .build()?;
    /// let review = json!({
    ///     "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    ///     "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
    ///                 "resource": {"group": "", "version": "v1", "resource": "pods"},
    ///                 "operation": "CREATE", "object": {}},
    /// });
    /// let answer = server.call("/deny-all", serde_json::to_vec(&review)?.into()).await;
    /// assert_eq!(answer.status(), 200);
    /// let answer: Value = serde_json::from_slice(answer.body())?;
    /// assert_eq!(answer["response"]["allowed"], false);
    ///
    /// assert_eq!(server.call("/elsewhere", "{}".into()).await.status(), 404);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call(&self, path: &str, body: Bytes) -> http::Response<Bytes> {
        self.shared.call(path, body).await
    }
}

/// The webhooks of a [`Builder`] without a server: [`call`](Self::call) hands a request body to
/// the webhook at a path, as [`Server::call`] does, and needs no certificate. Cheap to clone.
///
/// # Examples
/// ```
/// use kdev_webhook::Server;
/// use kdev_webhook::admission::{Request, Response};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let webhooks = Server::builder()
///     .raw("/allow-all", |_req: Request| async { Response::allowed() })
///     .build_in_process()?;
/// let answer = webhooks.call("/allow-all", "not json".into()).await;
/// assert_eq!(answer.status(), 400);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("paths", &self.shared.routes.keys().collect::<Vec<_>>())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl InProcess {
    /// Hands `body` to the webhook at `path`; see [`Server::call`].
    pub async fn call(&self, path: &str, body: Bytes) -> http::Response<Bytes> {
        self.shared.call(path, body).await
    }
}

impl Builder {
    /// Builds the webhooks for in-process calls only: no certificate is needed (one given is
    /// ignored).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] or [`Error::DuplicatePath`].
    pub fn build_in_process(self) -> Result<InProcess, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        Ok(InProcess {
            shared: Arc::new(Shared {
                routes: self.routes,
                config: self.config,
                metrics: Default::default(),
            }),
        })
    }
}
