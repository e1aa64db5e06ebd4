//! Who a token belongs to and what a user may do, as kube-apiserver answers a component that
//! delegates both to it (a metrics endpoint, an extension API server, kube-rbac-proxy):
//! `serviceaccounts/{name}/token` (TokenRequest) issues ServiceAccount tokens; `tokenreviews`
//! tells whose a token is; `subjectaccessreviews`, `localsubjectaccessreviews` and
//! `selfsubjectaccessreviews` decide by the RBAC objects stored here; `selfsubjectreviews` is
//! `kubectl auth whoami`.
//!
//! The server itself still authenticates and authorizes no request: every caller acts as
//! `system:admin` in `system:masters`, but the self reviews answer for the user a request's
//! `Impersonate-*` headers name (a client's `--as`). Reviews answer for other users as
//! kube-apiserver's RBAC authorizer would, so a component's own authentication and
//! authorization can be tested here and behave the same on a real cluster.
//!
//! Tokens are JSON Web Tokens with kube-apiserver's claims, signed with HMAC-SHA256 under a key
//! the server makes when it starts (kube-apiserver signs with RSA or ECDSA keys it is given).
//! The kubeconfig's own token, `kdev-testenv`, is `system:admin`.

use http::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, read};
use crate::schema::Cause;
use crate::status::ApiError;
use crate::store::State;
use crate::wire::{self, Body};

/// The token the kubeconfig's user carries.
pub(crate) const ADMIN_TOKEN: &str = "kdev-testenv";

/// The issuer and default audience of ServiceAccount tokens: kube-apiserver's
/// `--service-account-issuer` as kubeadm and kind set it, which `--api-audiences` defaults to.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A TokenRequest's default lifetime, and the shortest and longest it may ask for.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: serde_json::Map<String, Value>,
}

impl User {
    /// The user every request to this server acts as.
    pub(crate) fn admin() -> User {
        User {
            name: "system:admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: serde_json::Map::new(),
        }
    }

    /// Who a request acts as: `system:admin`, or the user its `Impersonate-*` headers name (as
    /// `kubectl --as` sends them), completed as kube-apiserver's impersonation filter completes
    /// it: a ServiceAccount without groups gets its account groups, and everyone but
    /// `system:anonymous` gets `system:authenticated`.
    pub(crate) fn requester(headers: &http::HeaderMap) -> User {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let Some(name) = values("impersonate-user").into_iter().next() else {
            return User::admin();
        };
        let mut groups = values("impersonate-group");
        if groups.is_empty()
            && let Some((ns, _)) = name
                .strip_prefix("system:serviceaccount:")
                .and_then(|r| r.split_once(':'))
        {
            groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
        }
        if name != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        let mut extra = serde_json::Map::new();
        for (key, value) in headers {
            if let Some(k) = key.as_str().strip_prefix("impersonate-extra-")
                && let Ok(v) = value.to_str()
            {
                let entry = extra.entry(k.to_string()).or_insert_with(|| json!([]));
                if let Some(list) = entry.as_array_mut() {
                    list.push(json!(v));
                }
            }
        }
        User {
            name,
            uid: values("impersonate-uid").into_iter().next().unwrap_or_default(),
            groups,
            extra,
        }
    }

    /// The user as a TokenReview's `status.user` and an AdmissionReview's `userInfo` show it.
    pub(crate) fn to_json(&self) -> Value {
        let mut user = json!({ "username": self.name, "groups": self.groups });
        if !self.uid.is_empty() {
            user["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            user["extra"] = Value::Object(self.extra.clone());
        }
        user
    }
}

/// A key for signing tokens, new for each server.
pub(crate) fn signing_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes());
    }
    key
}

fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner = Sha256::new();
    let mut outer = Sha256::new();
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

fn sign(key: &[u8; 32], claims: &Value) -> String {
    let header = json!({ "alg": "HS256", "kid": "kdev-testenv", "typ": "JWT" });
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = hmac_sha256(key, signed.as_bytes());
    format!("{signed}.{}", b64(&signature))
}

/// The claims of a token this server signed, if its signature holds.
fn verified_claims(key: &[u8; 32], token: &str) -> Option<Value> {
    let (signed, signature) = token.rsplit_once('.')?;
    let (header, claims) = signed.split_once('.')?;
    let expected = hmac_sha256(key, signed.as_bytes());
    let given = unb64(signature)?;
    // Compared in constant time, as any signature check should be.
    let same = given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
    if !same {
        return None;
    }
    let header: Value = serde_json::from_slice(&unb64(header)?).ok()?;
    if header["alg"] != "HS256" {
        return None;
    }
    serde_json::from_slice(&unb64(claims)?).ok()
}

fn invalid(kind: &str, group: &str, name: &str, field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        kind: kind.into(),
        group: group.into(),
        name: name.into(),
        causes: vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// POST `serviceaccounts/{name}/token`: a token for the ServiceAccount, as kube-apiserver's
/// TokenRequest issues it.
pub(crate) fn token_request(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let body = ctx.body_json()?;
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON object".into(),
        ));
    }
    let name = ctx.name();
    // The account is looked up before the request is validated, as kube-apiserver does.
    let account = ctx
        .shared
        .state
        .lock()
        .get(ctx.storage(), ctx.ns(), name)
        .cloned()
        .ok_or_else(|| read::not_found(ctx))?;
    let expiration = match body.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot unmarshal {v} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64"
            ))
        })?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            "spec.expirationSeconds",
            format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"),
        ));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            "spec.expirationSeconds",
            format!("Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let mut audiences = strings(body.pointer("/spec/audiences").unwrap_or(&Value::Null));
    if audiences.is_empty() {
        audiences = vec![ISSUER.to_string()];
    }
    let uid = account
        .value
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let now = jiff::Timestamp::now();
    let exp = now.as_second() + expiration;
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": now.as_second(),
        "iss": ISSUER,
        "jti": crate::meta::uid(),
        "kubernetes.io": {
            "namespace": ctx.ns(),
            "serviceaccount": { "name": name, "uid": uid },
        },
        "nbf": now.as_second(),
        "sub": format!("system:serviceaccount:{}:{name}", ctx.ns()),
    });
    let token = sign(&ctx.shared.token_key, &claims);
    let expires = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut spec = json!({ "audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null });
    if let Some(bound) = body.pointer("/spec/boundObjectRef").filter(|v| !v.is_null()) {
        spec["boundObjectRef"] = bound.clone();
    }
    Ok(wire::json_value(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": { "name": name, "namespace": ctx.ns(), "creationTimestamp": crate::meta::now() },
            "spec": spec,
            "status": { "token": token, "expirationTimestamp": expires },
        }),
    ))
}

/// Why a token does not authenticate, in kube-apiserver's words.
const INVALID_TOKEN: &str = "[invalid bearer token, service account token has been invalidated]";

/// Whose `token` is, for `audiences` (the API server's when empty): the user and the audiences
/// it is good for, or why it is not.
pub(crate) fn authenticate(
    state: &State,
    key: &[u8; 32],
    token: &str,
    audiences: &[String],
) -> Result<(User, Vec<String>), String> {
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let (user, token_audiences) = if token == ADMIN_TOKEN {
        (User::admin(), vec![ISSUER.to_string()])
    } else {
        let claims = verified_claims(key, token).ok_or_else(|| INVALID_TOKEN.to_string())?;
        let now = jiff::Timestamp::now().as_second();
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err("[invalid bearer token, service account token has expired]".into());
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
            return Err(INVALID_TOKEN.into());
        }
        let ns = claims
            .pointer("/kubernetes.io/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = claims
            .pointer("/kubernetes.io/serviceaccount/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let uid = claims
            .pointer("/kubernetes.io/serviceaccount/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        // A token outlives no ServiceAccount: one deleted, or deleted and made again, ends it.
        let current = state.get("/serviceaccounts", ns, name).and_then(|sa| {
            sa.value
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if current.as_deref() != Some(uid) {
            return Err(INVALID_TOKEN.into());
        }
        let mut extra = serde_json::Map::new();
        if let Some(jti) = claims["jti"].as_str() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                json!([format!("JTI={jti}")]),
            );
        }
        let user = User {
            name: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra,
        };
        (user, strings(&claims["aud"]))
    };
    let matched: Vec<String> = wanted.into_iter().filter(|a| token_audiences.contains(a)).collect();
    if matched.is_empty() {
        return Err("[invalid bearer token, token audiences is invalid for the target audience]".into());
    }
    Ok((user, matched))
}

/// POST to a review resource: the review answered, never stored.
pub(crate) fn review(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let mut body = ctx.body_json()?;
    super::write::check_type_meta(&ctx.res, ctx.version(), &body)?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let status = match ctx.res.plural.as_str() {
        "tokenreviews" => token_review(ctx, &spec)?,
        "selfsubjectreviews" => json!({ "userInfo": User::requester(&ctx.headers).to_json() }),
        "selfsubjectaccessreviews" => {
            attributes(&spec, "SelfSubjectAccessReview")?;
            decide(&ctx.shared.state.lock(), &User::requester(&ctx.headers), &spec)
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let kind = ctx.res.kind.as_str();
            let (resource, non_resource) = attributes(&spec, kind)?;
            if kind == "LocalSubjectAccessReview" {
                if let Some(nr) = non_resource {
                    return Err(invalid(
                        kind,
                        "authorization.k8s.io",
                        "",
                        "spec.nonResourceAttributes",
                        format!("Invalid value: {nr}: disallowed on this kind of request"),
                    ));
                }
                let ns = resource
                    .and_then(|r| r.get("namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if ns != ctx.ns() {
                    return Err(invalid(
                        kind,
                        "authorization.k8s.io",
                        "",
                        "spec.resourceAttributes.namespace",
                        format!("Invalid value: {ns:?}: must match metadata.namespace"),
                    ));
                }
            }
            let user = User {
                name: spec["user"].as_str().unwrap_or("").to_string(),
                uid: spec["uid"].as_str().unwrap_or("").to_string(),
                groups: strings(&spec["groups"]),
                extra: serde_json::Map::new(),
            };
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "authorization.k8s.io",
                    "",
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified".into(),
                ));
            }
            decide(&ctx.shared.state.lock(), &user, &spec)
        }
        other => return Err(ApiError::BadRequest(format!("{other} cannot be reviewed"))),
    };
    let metadata = body
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    body["metadata"] = metadata;
    body["metadata"]["creationTimestamp"] = Value::Null;
    body["status"] = status;
    Ok(wire::json_value(StatusCode::CREATED, &body))
}

fn token_review(ctx: &Ctx, spec: &Value) -> Result<Value, ApiError> {
    let token = spec["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let audiences = strings(&spec["audiences"]);
    let state = ctx.shared.state.lock();
    Ok(match authenticate(&state, &ctx.shared.token_key, token, &audiences) {
        Ok((user, audiences)) => json!({ "authenticated": true, "user": user.to_json(), "audiences": audiences }),
        Err(why) => json!({ "user": {}, "error": why }),
    })
}

/// A SubjectAccessReview's attributes, exactly one of the two (`ValidateSubjectAccessReviewSpec`).
fn attributes<'a>(spec: &'a Value, kind: &str) -> Result<(Option<&'a Value>, Option<&'a Value>), ApiError> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let refuse = |field: &str, message: &str| Err(invalid(kind, "authorization.k8s.io", "", field, message.into()));
    match (resource, non_resource) {
        (Some(_), Some(nr)) => refuse(
            "spec.nonResourceAttributes",
            &format!("Invalid value: {nr}: cannot be specified in combination with resourceAttributes"),
        ),
        (None, None) => refuse(
            "spec",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ),
        pair => Ok(pair),
    }
}

/// kube-apiserver's decision for `user`: `system:masters` may do anything; otherwise the RBAC
/// rules bound to the user, its groups or its ServiceAccount.
fn decide(state: &State, user: &User, spec: &Value) -> Value {
    if user.groups.iter().any(|g| g == "system:masters") {
        return json!({ "allowed": true });
    }
    let request = Request::from_spec(spec);
    match rbac_allows(state, user, &request) {
        Some(reason) => json!({ "allowed": true, "reason": reason }),
        None => json!({ "allowed": false }),
    }
}

/// What a review asks: a verb on a resource (in a namespace, perhaps of a name) or on a path.
struct Request {
    verb: String,
    /// `Some(path)` for a non-resource request.
    path: Option<String>,
    namespace: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
}

impl Request {
    fn from_spec(spec: &Value) -> Request {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(nr) = spec.get("nonResourceAttributes").filter(|v| !v.is_null()) {
            return Request {
                verb: text(nr, "verb"),
                path: Some(text(nr, "path")),
                namespace: String::new(),
                group: String::new(),
                resource: String::new(),
                subresource: String::new(),
                name: String::new(),
            };
        }
        let r = spec.get("resourceAttributes").unwrap_or(&Value::Null);
        Request {
            verb: text(r, "verb"),
            path: None,
            namespace: text(r, "namespace"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            name: text(r, "name"),
        }
    }

    /// Whether one PolicyRule of a role covers the request (RBAC's `RuleAllows`).
    fn allowed_by(&self, rule: &Value) -> bool {
        let listed = |key: &str, want: &str| strings(&rule[key]).iter().any(|v| v == "*" || v == want);
        if !listed("verbs", &self.verb) {
            return false;
        }
        if let Some(path) = &self.path {
            return strings(&rule["nonResourceURLs"]).iter().any(|url| {
                url == "*" || url == path || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
            });
        }
        if !listed("apiGroups", &self.group) {
            return false;
        }
        let combined = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let resource_ok = strings(&rule["resources"]).iter().any(|r| {
            r == "*" || *r == combined || (!self.subresource.is_empty() && *r == format!("*/{}", self.subresource))
        });
        let names = strings(&rule["resourceNames"]);
        resource_ok && (names.is_empty() || names.contains(&self.name))
    }
}

/// How RBAC names a subject in its reasons: a ServiceAccount as `name/namespace`, its namespace
/// the binding's when the subject has none.
fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    match kind {
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            format!("{kind} \"{name}/{ns}\"")
        }
        _ => format!("{kind} {name:?}"),
    }
}

/// The binding's subject that is `user`, if any.
fn subject_of<'a>(binding: &'a Value, user: &User, binding_ns: &str) -> Option<&'a Value> {
    binding["subjects"].as_array()?.iter().find(|s| {
        let name = s["name"].as_str().unwrap_or("");
        match s["kind"].as_str().unwrap_or("") {
            "User" => user.name == name,
            "Group" => user.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                let ns = s["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

/// The reason RBAC gives when a binding allows the request, or `None` when none does.
fn rbac_allows(state: &State, user: &User, request: &Request) -> Option<String> {
    let rbac = "rbac.authorization.k8s.io";
    let role_rules = |kind: &str, ns: &str, name: &str| -> Vec<Value> {
        let storage = if kind == "ClusterRole" {
            format!("{rbac}/clusterroles")
        } else {
            format!("{rbac}/roles")
        };
        let ns = if kind == "ClusterRole" { "" } else { ns };
        state
            .get(&storage, ns, name)
            .and_then(|r| r.value["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut bindings: Vec<(String, Value)> = state
        .list(&format!("{rbac}/clusterrolebindings"), None)
        .into_iter()
        .map(|b| (String::new(), b.value.clone()))
        .collect();
    if request.path.is_none() && !request.namespace.is_empty() {
        bindings.extend(
            state
                .list(&format!("{rbac}/rolebindings"), Some(&request.namespace))
                .into_iter()
                .map(|b| (request.namespace.clone(), b.value.clone())),
        );
    }
    bindings.into_iter().find_map(|(ns, binding)| {
        let subject = subject_of(&binding, user, &ns)?;
        let role_kind = binding.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
        let role_name = binding.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
        let rules = role_rules(role_kind, &ns, role_name);
        if !rules.iter().any(|rule| request.allowed_by(rule)) {
            return None;
        }
        let name = binding.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let binding_text = if ns.is_empty() {
            format!("ClusterRoleBinding {name:?}")
        } else {
            format!("RoleBinding \"{name}/{ns}\"")
        };
        Some(format!(
            "RBAC: allowed by {binding_text} of {role_kind} {role_name:?} to {}",
            describe_subject(subject, &ns)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_only_unchanged_and_under_its_key() {
        let key = signing_key();
        let claims = json!({ "sub": "system:serviceaccount:a:b" });
        let token = sign(&key, &claims);
        assert_eq!(verified_claims(&key, &token), Some(claims));
        assert_eq!(verified_claims(&signing_key(), &token), None);
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap_or(0) + 2, 'x');
        assert_eq!(verified_claims(&key, &tampered), None);
        assert_eq!(verified_claims(&key, "not-a-token"), None);
    }

    #[test]
    fn hmac_matches_rfc_4231_with_a_32_byte_key() {
        // RFC 4231 test case 2 uses a 4-byte key; zero-padding it to 32 bytes is the same HMAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn impersonation_headers_name_the_requester_as_kube_apiserver_completes_them() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(User::requester(&headers), User::admin());
        headers.insert(
            "impersonate-user",
            "system:serviceaccount:mon:prom".parse().expect("a value"),
        );
        let sa = User::requester(&headers);
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:mon",
                "system:authenticated"
            ]
        );
        headers.insert("impersonate-user", "alice".parse().expect("a value"));
        headers.append("impersonate-group", "devs".parse().expect("a value"));
        headers.append("impersonate-extra-scopes", "view".parse().expect("a value"));
        let alice = User::requester(&headers);
        assert_eq!(
            (alice.name.as_str(), alice.groups.as_slice()),
            ("alice", &["devs".to_string(), "system:authenticated".to_string()][..])
        );
        assert_eq!(alice.extra["scopes"], json!(["view"]));
    }

    #[test]
    fn subjects_are_described_as_rbac_describes_them() {
        let sa = json!({ "kind": "ServiceAccount", "name": "prom" });
        assert_eq!(describe_subject(&sa, "mon"), "ServiceAccount \"prom/mon\"");
        let sa = json!({ "kind": "ServiceAccount", "name": "prom", "namespace": "other" });
        assert_eq!(describe_subject(&sa, "mon"), "ServiceAccount \"prom/other\"");
        assert_eq!(
            describe_subject(&json!({ "kind": "User", "name": "alice" }), ""),
            "User \"alice\""
        );
    }

    #[test]
    fn rules_match_as_rbac_matches_them() {
        let nr = Request::from_spec(&json!({ "nonResourceAttributes": { "path": "/metrics", "verb": "get" } }));
        assert!(nr.allowed_by(&json!({ "verbs": ["get"], "nonResourceURLs": ["/metrics"] })));
        assert!(nr.allowed_by(&json!({ "verbs": ["*"], "nonResourceURLs": ["/met*"] })));
        assert!(nr.allowed_by(&json!({ "verbs": ["get"], "nonResourceURLs": ["/me**"] })));
        assert!(!nr.allowed_by(&json!({ "verbs": ["list"], "nonResourceURLs": ["/metrics"] })));
        assert!(!nr.allowed_by(&json!({ "verbs": ["get"], "nonResourceURLs": ["/healthz"] })));
        assert!(!nr.allowed_by(&json!({ "verbs": ["get"], "apiGroups": ["*"], "resources": ["*"] })));
        let pod_log = Request::from_spec(&json!({ "resourceAttributes": {
            "verb": "get", "group": "", "resource": "pods", "subresource": "log", "namespace": "a", "name": "p" } }));
        assert!(pod_log.allowed_by(&json!({ "verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"] })));
        assert!(pod_log.allowed_by(&json!({ "verbs": ["get"], "apiGroups": [""], "resources": ["*/log"] })));
        assert!(!pod_log.allowed_by(&json!({ "verbs": ["get"], "apiGroups": [""], "resources": ["pods"] })));
        assert!(!pod_log.allowed_by(
            &json!({ "verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"], "resourceNames": ["q"] })
        ));
    }
}
