//! Admission webhooks as kube-apiserver calls them
//! (`k8s.io/apiserver/pkg/admission/plugin/webhook`): which webhooks match a request (rules,
//! matchPolicy, namespaceSelector, objectSelector, matchConditions), the AdmissionReview sent,
//! the checks on the answer, mutating webhooks in order with their JSON patches and
//! reinvocation, validating webhooks in parallel, failurePolicy, dry runs and warnings.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{client, conversion};
use crate::registry::Resource;
use crate::selector::LabelSelector;
use crate::server::Shared;
use crate::status::ApiError;

const MUTATING: &str = "admissionregistration.k8s.io/mutatingwebhookconfigurations";
const VALIDATING: &str = "admissionregistration.k8s.io/validatingwebhookconfigurations";

/// The admission operation of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What a request is, in the terms of `admission.Attributes`.
#[derive(Debug, Clone)]
pub(crate) struct Attributes {
    pub op: Operation,
    pub res: Arc<Resource>,
    /// The version the objects handed to the chain are in.
    pub version: String,
    /// The version the client used.
    pub request_version: String,
    /// `status`, `scale`, ... or empty.
    pub sub: String,
    pub name: String,
    pub namespace: String,
    pub dry_run: bool,
    /// CreateOptions, UpdateOptions or DeleteOptions.
    pub options: Value,
}

impl Attributes {
    fn is_scale(&self) -> bool {
        self.sub == "scale"
    }

    /// The kind of the objects at `version` (a Scale is `autoscaling/v1` whatever the version).
    fn kind_at(&self, version: &str) -> Value {
        if self.is_scale() {
            return json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" });
        }
        json!({ "group": self.res.group, "version": version, "kind": self.res.kind })
    }

    fn resource_at(&self, version: &str) -> Value {
        json!({ "group": self.res.group, "version": version, "resource": self.res.plural })
    }
}

/// One webhook of a configuration.
#[derive(Debug, Clone)]
struct Hook {
    /// Configuration name and index: what reinvocation tracks.
    id: (String, usize),
    name: String,
    spec: Value,
}

impl Hook {
    fn ignore_failures(&self) -> bool {
        self.spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore")
    }

    /// `timeoutSeconds`: a stored configuration has 1–30 (validated, defaulted to 10 on every
    /// write); anything else read here falls back to 10 s rather than waiting without bound.
    fn timeout(&self) -> Duration {
        let secs = self
            .spec
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .filter(|s| (1..=30).contains(s))
            .unwrap_or(10);
        Duration::from_secs(secs)
    }

    fn reinvoke_if_needed(&self) -> bool {
        self.spec.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded")
    }
}

/// The webhooks of every configuration of one type: configurations sorted by name, webhooks in
/// their order (kube-apiserver's configuration managers sort the same way).
fn hooks(shared: &Shared, storage: &str) -> Vec<Hook> {
    let configs = shared.state.lock().list(storage, None);
    let mut configs: Vec<Value> = configs.iter().map(|c| c.value.clone()).collect();
    let name_of = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    configs.sort_by_key(name_of);
    let mut out = Vec::new();
    for c in configs {
        let config = name_of(&c);
        for (i, w) in c
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.push(Hook {
                id: (config.clone(), i),
                name: w.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                spec: w.clone(),
            });
        }
    }
    out
}

/// Whether any admission webhook is configured at all (the fast path skips admission otherwise).
pub(crate) fn any_configured(shared: &Shared) -> bool {
    let st = shared.state.lock();
    !st.list(MUTATING, None).is_empty() || !st.list(VALIDATING, None).is_empty()
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one rule matches the request seen at `version`.
fn rule_matches(rule: &Value, attrs: &Attributes, version: &str) -> bool {
    let any = |list: &[&str], want: &str| list.iter().any(|x| *x == "*" || *x == want);
    if !any(&strs(rule.get("operations")), attrs.op.as_str())
        || !any(&strs(rule.get("apiGroups")), &attrs.res.group)
        || !any(&strs(rule.get("apiVersions")), version)
    {
        return false;
    }
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => attrs.namespace.is_empty(),
        "Namespaced" => !attrs.namespace.is_empty(),
        _ => true,
    };
    if !scope_ok {
        return false;
    }
    strs(rule.get("resources")).into_iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == attrs.res.plural) && (sub == "*" || sub == attrs.sub)
    })
}

/// The version a webhook is called with: the request's when a rule names it, otherwise (with
/// `matchPolicy: Equivalent`, the default) another served version of the same resource that a
/// rule names. The embedded server knows one equivalence: the served versions of a CRD.
fn matched_version(hook: &Hook, attrs: &Attributes) -> Option<String> {
    let rules: Vec<&Value> = hook
        .spec
        .get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let matches = |v: &str| rules.iter().any(|r| rule_matches(r, attrs, v));
    if matches(&attrs.request_version) {
        return Some(attrs.request_version.clone());
    }
    if hook.spec.get("matchPolicy").and_then(Value::as_str) == Some("Exact") || attrs.res.crd.is_none() {
        return None;
    }
    attrs
        .res
        .versions
        .iter()
        .find(|v| **v != attrs.request_version && matches(v))
        .cloned()
}

/// A `metav1.LabelSelector` object as a selector; `None` when it is malformed.
fn label_selector(sel: Option<&Value>) -> Option<LabelSelector> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return LabelSelector::parse("").ok();
    };
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str()?));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str)?;
        let values = strs(e.get("values")).join(",");
        parts.push(match e.get("operator").and_then(Value::as_str)? {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    LabelSelector::parse(&parts.join(",")).ok()
}

fn labels(obj: Option<&Value>) -> Option<&Map<String, Value>> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
}

/// namespaceSelector and objectSelector.
fn selectors_match(
    shared: &Shared,
    hook: &Hook,
    attrs: &Attributes,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    let is_namespace = attrs.res.group.is_empty() && attrs.res.plural == "namespaces";
    if is_namespace || attrs.res.namespaced {
        let sel = label_selector(hook.spec.get("namespaceSelector"))
            .ok_or_else(|| format!("invalid namespaceSelector of webhook {:?}", hook.name))?;
        if !sel.is_empty() {
            let ns_labels = if is_namespace {
                labels(obj.or(old)).cloned()
            } else {
                let st = shared.state.lock();
                st.get("/namespaces", "", &attrs.namespace)
                    .and_then(|n| n.value.pointer("/metadata/labels").and_then(Value::as_object).cloned())
            };
            if !sel.matches(ns_labels.as_ref()) {
                return Ok(false);
            }
        }
    }
    let sel = label_selector(hook.spec.get("objectSelector"))
        .ok_or_else(|| format!("invalid objectSelector of webhook {:?}", hook.name))?;
    if sel.is_empty() {
        return Ok(true);
    }
    Ok([obj, old].into_iter().flatten().any(|o| sel.matches(labels(Some(o)))))
}

/// Evaluates `matchConditions` (CEL over `object`, `oldObject` and `request`): `Ok(false)` when
/// one is false, an error when one cannot be evaluated and none is false.
fn conditions_match(hook: &Hook, obj: Option<&Value>, old: Option<&Value>, request: &Value) -> Result<bool, String> {
    let conditions = hook
        .spec
        .get("matchConditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conditions.is_empty() {
        return Ok(true);
    }
    let mut ctx = cel::Context::default();
    for (name, v) in [
        ("object", obj.cloned().unwrap_or(Value::Null)),
        ("oldObject", old.cloned().unwrap_or(Value::Null)),
        ("request", request.clone()),
    ] {
        let v = cel::to_value(v).map_err(|e| e.to_string())?;
        ctx.add_variable_from_value(name, v);
    }
    // As the matchconditions matcher: any false condition skips the webhook; otherwise every
    // error is reported, each naming its expression, aggregated as Go's `NewAggregate` prints.
    let mut errors = Vec::new();
    for c in &conditions {
        let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
        let outcome = compile_condition(expr).and_then(|p| p.execute(&ctx).map_err(|e| e.to_string()));
        match outcome {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Ok(false),
            Ok(other) => {
                errors.push(format!(
                    "expression '{expr}' resulted in error: expected a bool, got {other:?}"
                ));
            }
            Err(e) => errors.push(format!("expression '{expr}' resulted in error: {e}")),
        }
    }
    match errors.as_slice() {
        [] => Ok(true),
        [one] => Err(one.clone()),
        many => Err(format!("[{}]", many.join(", "))),
    }
}

/// Compiles a `matchConditions` expression: what the configuration's validation checks (the
/// expression is parsed, not type-checked) and what each admission evaluates.
pub(crate) fn compile_condition(expr: &str) -> Result<cel::Program, String> {
    guard(expr)?;
    cel::Program::compile(expr).map_err(|e| e.to_string())
}

/// Refuses expressions the CEL parser would recurse too deeply on: the server must not crash on
/// a configuration, whatever it holds.
fn guard(expr: &str) -> Result<(), String> {
    const MAX_LEN: usize = 5_000;
    const MAX_DEPTH: usize = 32;
    if expr.len() > MAX_LEN {
        return Err(format!("expression longer than {MAX_LEN} characters"));
    }
    let (mut depth, mut run) = (0usize, 0usize);
    for c in expr.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        run = if matches!(c, '!' | '-') { run + 1 } else { 0 };
        if depth > MAX_DEPTH || run > MAX_DEPTH {
            return Err(format!("expression nested more than {MAX_DEPTH} levels deep"));
        }
    }
    Ok(())
}

/// Why calling a webhook failed (`ErrCallingWebhook`): the failurePolicy decides what it means.
enum CallError {
    Calling(String),
}

/// A webhook's verified answer.
struct Answer {
    allowed: bool,
    result: Option<Value>,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// The `request` of the AdmissionReview for one webhook, objects at `version`.
fn review_request(attrs: &Attributes, version: &str, obj: Option<&Value>, old: Option<&Value>) -> Value {
    let mut r = json!({
        "uid": crate::meta::uid(),
        "kind": attrs.kind_at(version),
        "resource": attrs.resource_at(version),
        "requestKind": attrs.kind_at(&attrs.request_version),
        "requestResource": attrs.resource_at(&attrs.request_version),
        "operation": attrs.op.as_str(),
        "userInfo": crate::handler::auth::User::admin().to_json(),
        "object": obj.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    });
    if let Some(m) = r.as_object_mut() {
        if !attrs.sub.is_empty() {
            m.insert("subResource".into(), json!(attrs.sub));
            m.insert("requestSubResource".into(), json!(attrs.sub));
        }
        if !attrs.name.is_empty() {
            m.insert("name".into(), json!(attrs.name));
        }
        if !attrs.namespace.is_empty() {
            m.insert("namespace".into(), json!(attrs.namespace));
        }
    }
    r
}

/// Sends the review and checks the answer as `VerifyAdmissionResponse` does.
async fn call(shared: &Shared, hook: &Hook, request: Value, mutating: bool) -> Result<Answer, CallError> {
    let versions = strs(hook.spec.get("admissionReviewVersions"));
    // The first version the webhook lists that the server knows (`CreateAdmissionObjects`).
    let api_version = match versions.iter().find(|v| matches!(**v, "v1" | "v1beta1")) {
        Some(&"v1beta1") => "admission.k8s.io/v1beta1",
        Some(_) => "admission.k8s.io/v1",
        None => {
            return Err(CallError::Calling(format!(
                "webhook does not accept known AdmissionReview versions (v1, v1beta1), accepts {versions:?}"
            )));
        }
    };
    let uid = request.get("uid").and_then(Value::as_str).unwrap_or("").to_string();
    let review = json!({ "apiVersion": api_version, "kind": "AdmissionReview", "request": request });
    let client_config = hook.spec.get("clientConfig").cloned().unwrap_or_else(|| json!({}));
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let bytes = client::post(shared, &client_config, body, hook.timeout())
        .await
        .map_err(|e| CallError::Calling(format!("failed to call webhook: {e}")))?;
    let invalid = |why: String| CallError::Calling(format!("received invalid webhook response: {why}"));
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
        CallError::Calling(format!(
            "failed to call webhook: the response could not be decoded: {e}"
        ))
    })?;
    let (av, kind) = (
        answer.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        answer.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    if av != api_version || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of {api_version}, Kind=AdmissionReview, got {av}, Kind={kind}"
        )));
    }
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| invalid("webhook response was absent".into()))?;
    let got = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got != uid {
        return Err(invalid(format!("expected response.uid={uid:?}, got {got:?}")));
    }
    let patch = response.get("patch").and_then(Value::as_str).filter(|p| !p.is_empty());
    let patch_type = response
        .get("patchType")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    if !mutating {
        if patch.is_some() {
            return Err(invalid("validating webhook may not return response.patch".into()));
        }
        // Any patchType at all, even an empty one (Go decodes it into a non-nil pointer).
        if response.get("patchType").is_some_and(|t| !t.is_null()) {
            return Err(invalid("validating webhook may not return response.patchType".into()));
        }
    }
    let patch = match (patch, patch_type) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        (Some(_), Some(t)) if t != "JSONPatch" => {
            return Err(invalid(format!("webhook returned invalid response.patchType of {t:?}")));
        }
        (Some(p), Some(_)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| CallError::Calling(format!("received undecodable patch in webhook response: {e}")))?,
        ),
    };
    Ok(Answer {
        allowed: response.get("allowed").and_then(Value::as_bool).unwrap_or(false),
        result: response.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        warnings: strs(response.get("warnings")).into_iter().map(String::from).collect(),
    })
}

/// A webhook's denial as kube-apiserver reports it (`webhook/errors.ToStatusErr`): the webhook's
/// own status, its message prefixed with the webhook's name, a code under 400 raised to 400;
/// reason and details pass through as the webhook sent them.
fn denial(hook: &str, result: Option<&Value>) -> ApiError {
    let result = result.cloned().unwrap_or_else(|| json!({}));
    let code = result
        .get("code")
        .and_then(Value::as_u64)
        .map_or(400, |c| u16::try_from(c.clamp(400, 599)).unwrap_or(500));
    let message = result.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = result.get("reason").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {hook:?} denied the request");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError::Status {
        code,
        reason: reason.to_string(),
        message,
        details: result.get("details").filter(|d| d.is_object()).cloned(),
    }
}

fn calling_failed(hook: &str, why: &str) -> ApiError {
    ApiError::Internal(format!("failed calling webhook {hook:?}: {why}"))
}

/// Whether a webhook applies, and at which version.
fn applies(
    shared: &Shared,
    hook: &Hook,
    attrs: &Attributes,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Option<String>, ApiError> {
    let Some(version) = matched_version(hook, attrs) else {
        return Ok(None);
    };
    match selectors_match(shared, hook, attrs, obj, old) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(calling_failed(&hook.name, &e)),
    }
    Ok(Some(version))
}

/// The dry-run rule: a dry run may only reach webhooks without side effects.
fn check_dry_run(hook: &Hook, attrs: &Attributes) -> Result<(), ApiError> {
    if !attrs.dry_run {
        return Ok(());
    }
    match hook.spec.get("sideEffects").and_then(Value::as_str) {
        Some("None" | "NoneOnDryRun") => Ok(()),
        None => Err(ApiError::Internal(format!(
            "failed calling webhook {:?}: Webhook SideEffects is nil",
            hook.name
        ))),
        Some(_) => Err(ApiError::BadRequest(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        ))),
    }
}

/// Objects at the webhook's version (converted when the webhook matched another version). A
/// conversion that fails fails the request as kube-apiserver's dispatchers report it
/// (`apierrors.NewInternalError` around the conversion's error, whatever the `failurePolicy`).
async fn at_version(
    shared: &Shared,
    attrs: &Attributes,
    version: &str,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<(Option<Value>, Option<Value>), ApiError> {
    if version == attrs.version || attrs.is_scale() {
        return Ok((obj.cloned(), old.cloned()));
    }
    let convert = |o: Option<Value>| async move {
        match o {
            Some(o) => conversion::one_to_version(shared, &attrs.res, o, version)
                .await
                .map(Some)
                .map_err(internal_error),
            None => Ok(None),
        }
    };
    Ok((convert(obj.cloned()).await?, convert(old.cloned()).await?))
}

/// `apierrors.NewInternalError(err)`: a 500 InternalError whose one cause is the error.
fn internal_error(e: ApiError) -> ApiError {
    let message = e.to_string();
    ApiError::Status {
        code: 500,
        reason: "InternalError".into(),
        message: format!("Internal error occurred: {message}"),
        details: Some(json!({ "causes": [{ "message": message }] })),
    }
}

/// One invocation of one webhook: matching, the call, and what its failure means.
/// `Ok(None)` when the webhook did not apply or failed open.
async fn invoke(
    shared: &Shared,
    hook: &Hook,
    attrs: &Attributes,
    obj: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
) -> Result<Option<(String, Answer)>, ApiError> {
    let Some(version) = applies(shared, hook, attrs, obj, old)? else {
        return Ok(None);
    };
    let (vobj, vold) = at_version(shared, attrs, &version, obj, old).await?;
    let request = review_request(attrs, &version, vobj.as_ref(), vold.as_ref());
    match conditions_match(hook, vobj.as_ref(), vold.as_ref(), &request) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) if hook.ignore_failures() => {
            let _ = e;
            return Ok(None);
        }
        // kube-apiserver fails closed with a Forbidden naming the object, not a webhook failure.
        Err(e) => {
            let qualified = attrs.res.qualified();
            let message = match attrs.name.as_str() {
                "" => format!("{qualified} is forbidden: {e}"),
                name => format!("{qualified} {name:?} is forbidden: {e}"),
            };
            return Err(ApiError::Forbidden {
                qualified,
                name: attrs.name.clone(),
                message,
            });
        }
    }
    check_dry_run(hook, attrs)?;
    match call(shared, hook, request, mutating).await {
        Ok(answer) => Ok(Some((version, answer))),
        Err(CallError::Calling(_)) if hook.ignore_failures() => Ok(None),
        Err(CallError::Calling(why)) => Err(calling_failed(&hook.name, &why)),
    }
}

/// Runs the mutating webhooks on `obj` (at `attrs.version`; `None` for a delete) and returns the
/// object they produced. Warnings are appended to `warnings` even when the chain fails.
pub(crate) async fn mutate(
    shared: &Shared,
    attrs: &Attributes,
    obj: Option<Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<Value>, ApiError> {
    let hooks = hooks(shared, MUTATING);
    if hooks.is_empty() {
        return Ok(obj);
    }
    let mut obj = obj;
    // Webhooks with reinvocationPolicy IfNeeded called so far, and those to call again because
    // a later webhook changed the object after them.
    let mut invoked_if_needed: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut reinvoke: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut should_reinvoke = false;
    for round in 0..2 {
        if round == 1 && !should_reinvoke {
            break;
        }
        for hook in &hooks {
            if round == 1 && !reinvoke.contains(&hook.id) {
                continue;
            }
            let Some((version, answer)) = invoke(shared, hook, attrs, obj.as_ref(), old, true).await? else {
                continue;
            };
            warnings.extend(answer.warnings.iter().cloned());
            if !answer.allowed {
                return Err(denial(&hook.name, answer.result.as_ref()));
            }
            let mut changed = false;
            if let Some(patch) = &answer.patch {
                let patch: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
                    calling_failed(
                        &hook.name,
                        &format!("received undecodable patch in webhook response: {e}"),
                    )
                })?;
                if !patch.0.is_empty() {
                    let Some(current) = obj.as_ref() else {
                        return Err(ApiError::Internal(format!(
                            "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                            hook.name
                        )));
                    };
                    let (mut doc, _) = at_version(shared, attrs, &version, Some(current), None).await?;
                    let mut doc = doc.take().unwrap_or(Value::Null);
                    json_patch::patch(&mut doc, &patch).map_err(|e| ApiError::Internal(e.to_string()))?;
                    let back = if version == attrs.version || attrs.is_scale() {
                        doc
                    } else {
                        conversion::one_to_version(shared, &attrs.res, doc, &attrs.version).await?
                    };
                    changed = Some(&back) != obj.as_ref();
                    obj = Some(back);
                }
            }
            if changed {
                reinvoke.extend(invoked_if_needed.iter().cloned());
                should_reinvoke = true;
            }
            if hook.reinvoke_if_needed() {
                invoked_if_needed.insert(hook.id.clone());
            }
        }
    }
    Ok(obj)
}

/// Runs the validating webhooks (in parallel, as kube-apiserver does) on the final object. When
/// several deny, the first in configuration order is reported.
pub(crate) async fn validate(
    shared: &Shared,
    attrs: &Attributes,
    obj: Option<&Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let hooks = hooks(shared, VALIDATING);
    if hooks.is_empty() {
        return Ok(());
    }
    let calls = hooks.iter().map(|h| invoke(shared, h, attrs, obj, old, false));
    let results = futures::future::join_all(calls).await;
    let mut first_error = None;
    for (hook, result) in hooks.iter().zip(results) {
        match result {
            Ok(None) => {}
            Ok(Some((_, answer))) => {
                warnings.extend(answer.warnings.iter().cloned());
                if !answer.allowed && first_error.is_none() {
                    first_error = Some(denial(&hook.name, answer.result.as_ref()));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(op: Operation, sub: &str, namespace: &str) -> Attributes {
        let res = crate::registry::Registry::builtin()
            .get("", "v1", "pods")
            .cloned()
            .expect("pods are built in");
        Attributes {
            op,
            res,
            version: "v1".into(),
            request_version: "v1".into(),
            sub: sub.into(),
            name: "p".into(),
            namespace: namespace.into(),
            dry_run: false,
            options: json!({}),
        }
    }

    #[test]
    fn rules_match_operations_resources_subresources_and_scope() {
        let rule = |ops: Value, res: Value, scope: &str| json!({ "operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": res, "scope": scope });
        let create = attrs(Operation::Create, "", "ns");
        let status = attrs(Operation::Update, "status", "ns");
        assert!(rule_matches(
            &rule(json!(["CREATE"]), json!(["pods"]), "*"),
            &create,
            "v1"
        ));
        assert!(!rule_matches(
            &rule(json!(["UPDATE"]), json!(["pods"]), "*"),
            &create,
            "v1"
        ));
        assert!(rule_matches(
            &rule(json!(["*"]), json!(["*"]), "Namespaced"),
            &create,
            "v1"
        ));
        assert!(!rule_matches(
            &rule(json!(["*"]), json!(["*"]), "Cluster"),
            &create,
            "v1"
        ));
        assert!(!rule_matches(&rule(json!(["*"]), json!(["pods"]), "*"), &status, "v1"));
        assert!(!rule_matches(&rule(json!(["*"]), json!(["*"]), "*"), &status, "v1"));
        assert!(rule_matches(
            &rule(json!(["*"]), json!(["pods/status"]), "*"),
            &status,
            "v1"
        ));
        assert!(rule_matches(&rule(json!(["*"]), json!(["*/*"]), "*"), &status, "v1"));
        assert!(rule_matches(&rule(json!(["*"]), json!(["pods/*"]), "*"), &create, "v1"));
        assert!(!rule_matches(&rule(json!(["*"]), json!(["pods"]), "*"), &create, "v2"));
    }

    #[test]
    fn label_selector_objects_become_selectors() {
        let sel = label_selector(Some(&json!({
            "matchLabels": { "a": "1" },
            "matchExpressions": [{ "key": "b", "operator": "NotIn", "values": ["x"] }, { "key": "c", "operator": "Exists" }],
        })))
        .expect("valid");
        let m = |v: Value| v.as_object().cloned();
        assert!(sel.matches(m(json!({ "a": "1", "c": "" })).as_ref()));
        assert!(!sel.matches(m(json!({ "a": "1", "b": "x", "c": "" })).as_ref()));
        assert!(label_selector(None).expect("empty").is_empty());
        assert!(
            label_selector(Some(
                &json!({ "matchExpressions": [{ "key": "k", "operator": "Near" }] })
            ))
            .is_none()
        );
    }

    #[test]
    fn deeply_nested_conditions_are_errors_not_crashes() {
        let hook = |expr: String| Hook {
            id: ("c".into(), 0),
            name: "h".into(),
            spec: json!({ "matchConditions": [{ "name": "deep", "expression": expr }] }),
        };
        for expr in [
            format!("{}1{} == 1", "(".repeat(5_000), ")".repeat(5_000)),
            format!("{}true", "!".repeat(10_000)),
            format!("true{}", " && true".repeat(20_000)),
        ] {
            assert!(conditions_match(&hook(expr), None, None, &json!({})).is_err());
        }
        let fine = hook("request.operation == 'CREATE'".into());
        assert_eq!(
            conditions_match(&fine, None, None, &json!({ "operation": "CREATE" })),
            Ok(true)
        );
    }

    #[test]
    fn denials_read_as_kube_apiserver_reports_them() {
        // The webhook's status with its message prefixed, nothing more (no "is forbidden").
        let e = denial(
            "deny.example.com",
            Some(&json!({ "code": 403, "reason": "Forbidden", "message": "no" })),
        );
        let s = e.to_status();
        assert_eq!(
            (s["code"].clone(), s["reason"].clone()),
            (json!(403), json!("Forbidden"))
        );
        assert_eq!(
            s["message"],
            "admission webhook \"deny.example.com\" denied the request: no"
        );
        assert!(s.get("details").is_none(), "{s}");
        // A code under 400 is raised to 400; the reason stands in for a missing message.
        let e = denial("w", Some(&json!({ "code": 200, "reason": "Nope" })));
        assert_eq!(
            (e.code().as_u16(), e.to_status()["message"].clone()),
            (400, json!("admission webhook \"w\" denied the request: Nope"))
        );
        // Details, causes included, pass through.
        let details =
            json!({ "name": "web", "kind": "Pod", "causes": [{ "reason": "FieldValueInvalid", "field": "spec" }] });
        let e = denial(
            "w",
            Some(&json!({ "code": 422, "reason": "Invalid", "message": "bad", "details": details })),
        );
        let s = e.to_status();
        assert_eq!((s["code"].clone(), s["details"].clone()), (json!(422), details));
        // kube-apiserver's response writer turns details.retryAfterSeconds into Retry-After.
        let e = denial(
            "w",
            Some(&json!({ "code": 429, "details": { "retryAfterSeconds": 5 } })),
        );
        assert_eq!((e.code().as_u16(), e.retry_after()), (429, Some(5)));
        let e = denial("w", None);
        assert_eq!(e.code().as_u16(), 400);
        assert_eq!(
            e.to_string(),
            "admission webhook \"w\" denied the request without explanation"
        );
        assert!(
            e.to_status().get("reason").is_none_or(|r| r == ""),
            "no reason is made up"
        );
    }
}
