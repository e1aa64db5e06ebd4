//! Moving custom resources between versions: by rewriting `apiVersion` (strategy `None`) or by a
//! `ConversionReview` sent to the CRD's conversion webhook (strategy `Webhook`), checked as
//! kube-apiserver checks the answer (uid, count, apiVersion and kind, metadata kept but labels and
//! annotations).

use std::time::Duration;

use serde_json::{Value, json};

use super::client;
use crate::handler::{convert_in, convert_out};
use crate::registry::Resource;
use crate::server::Shared;
use crate::status::ApiError;

/// How long a conversion webhook may take (CRDs carry no timeout; kube-apiserver bounds the call
/// by the request's own deadline; 30 s here).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether objects of `res` served in `version` may need the conversion webhook: `version` is
/// not the storage version, or objects may still be kept in an older storage version.
pub(crate) fn needs_webhook(res: &Resource, version: &str) -> bool {
    res.conversion_webhook.is_some() && (version != res.storage_version || res.mixed_storage)
}

/// `group/version, Kind=Kind`, as Go prints a GroupVersionKind.
fn gvk(api_version: &str, kind: &str) -> String {
    if api_version.contains('/') {
        format!("{api_version}, Kind={kind}")
    } else {
        format!("/{api_version}, Kind={kind}")
    }
}

/// `apiVersion` as Go prints the GroupVersion it parses to: `group/version`, or `version` alone
/// in the core group, and empty when it does not parse (more than one `/`).
fn group_version(api_version: &str) -> &str {
    if api_version.matches('/').count() > 1 {
        ""
    } else {
        api_version
    }
}

/// Converts each object (whatever version it carries) to `version` of `res`.
pub(crate) async fn to_version(
    shared: &Shared,
    res: &Resource,
    mut objs: Vec<Value>,
    version: &str,
) -> Result<Vec<Value>, ApiError> {
    let desired = res.api_version(version);
    let pending: Vec<usize> = objs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.get("apiVersion").and_then(Value::as_str) != Some(desired.as_str()))
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return Ok(objs);
    }
    let Some(conversion) = res.conversion_webhook.clone() else {
        for i in pending {
            let o = std::mem::take(&mut objs[i]);
            objs[i] = convert_out(res, version, &convert_in(res, o));
        }
        return Ok(objs);
    };
    let from = objs[pending[0]]
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // kube-apiserver converts each object on its own as it decodes it (a list's items too: each
    // is decoded into the request's version), so its messages are those `Convert` in
    // webhook_converter.go gives for a single object, naming the object's version and kind. The
    // embedded server sends a list's objects in one review; only the count check shows it.
    // Not a Status error in kube-apiserver: a 500 with no reason, the message as it is.
    let bare = |message: String| ApiError::Status {
        code: 500,
        reason: String::new(),
        message,
        details: None,
    };
    let fail = |what: String| bare(format!("conversion webhook for {} {what}", gvk(&from, &res.kind)));
    let review_versions: Vec<&str> = conversion
        .pointer("/webhook/conversionReviewVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The first version the webhook lists that the server knows, in the webhook's order.
    let review_api = match review_versions.iter().find(|v| matches!(**v, "v1" | "v1beta1")) {
        Some(v) => format!("apiextensions.k8s.io/{v}"),
        None if review_versions.is_empty() => "apiextensions.k8s.io/v1".to_string(),
        None => {
            return Err(fail(format!(
                "failed: webhook does not accept known ConversionReview versions (v1, v1beta1), accepts {review_versions:?}"
            )));
        }
    };
    let review_api = review_api.as_str();
    let uid = crate::meta::uid();
    let inputs: Vec<Value> = pending.iter().map(|i| objs[*i].clone()).collect();
    let review = json!({
        "apiVersion": review_api,
        "kind": "ConversionReview",
        "request": { "uid": uid, "desiredAPIVersion": desired, "objects": inputs },
    });
    let client_config = conversion
        .pointer("/webhook/clientConfig")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let answer = client::post(shared, &client_config, body, TIMEOUT)
        .await
        .map_err(|e| fail(format!("failed: {e}")))?;
    let answer: Value =
        serde_json::from_slice(&answer).map_err(|e| fail(format!("failed: the response could not be decoded: {e}")))?;
    // `getConvertedObjectsFromResponse`: each error `failed: <why>`.
    let failed = |why: String| fail(format!("failed: {why}"));
    // v1 answers are checked for their kind and uid; v1beta1 ones never were (kube-apiserver
    // keeps that for compatibility).
    let v1 = review_api == "apiextensions.k8s.io/v1";
    if v1 {
        let (av, kind) = (
            answer.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            answer.get("kind").and_then(Value::as_str).unwrap_or(""),
        );
        if (av, kind) != (review_api, "ConversionReview") {
            return Err(failed(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {}",
                gvk(av, kind)
            )));
        }
    }
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| failed("no response provided".into()))?;
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if v1 && got_uid != uid {
        return Err(failed(format!("expected response.uid={uid:?}, got {got_uid:?}")));
    }
    let result = response.get("result").cloned().unwrap_or_else(|| json!({}));
    if result.get("status").and_then(Value::as_str) != Some("Success") {
        return Err(
            match result.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                Some(m) => failed(m.to_string()),
                None => failed(format!(
                    "response.result.status was '{}', not 'Success'",
                    result.get("status").and_then(Value::as_str).unwrap_or("")
                )),
            },
        );
    }
    let converted = response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if converted.len() != pending.len() {
        return Err(fail(format!(
            "returned {} objects, expected {}",
            converted.len(),
            pending.len()
        )));
    }
    let desired_gv = group_version(&desired);
    for (i, mut out) in pending.into_iter().zip(converted) {
        // `getRawExtensionObject`: an object without a kind does not decode, and that error is
        // returned as it is.
        let kind = out.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() {
            return Err(bare(format!("Object 'Kind' is missing in '{out}'")));
        }
        let av = out.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if group_version(av) != desired_gv {
            return Err(fail(format!(
                "returned invalid object at index 0: invalid groupVersion (expected {desired_gv}, received {})",
                group_version(av)
            )));
        }
        if kind != res.kind {
            return Err(fail(format!(
                "returned invalid object at index 0: invalid kind (expected {}, received {kind})",
                res.kind
            )));
        }
        // `validateConvertedObject`: the same object, by name, namespace and uid.
        let text = |o: &Value, k: &str| o.pointer(k).and_then(Value::as_str).unwrap_or("").to_string();
        for (what, key) in [
            ("name", "/metadata/name"),
            ("namespace", "/metadata/namespace"),
            ("UID", "/metadata/uid"),
        ] {
            let (want, got) = (text(&objs[i], key), text(&out, key));
            if want != got {
                return Err(fail(format!(
                    "returned invalid object: must have the same {what}: {want} != {got}"
                )));
            }
        }
        // `restoreObjectMeta`: the original metadata, with the webhook's labels and annotations.
        let bad_meta = |why: String| fail(format!("returned invalid metadata: {why}"));
        let om = match out.get("metadata") {
            Some(Value::Object(om)) => om.clone(),
            Some(other) => {
                return Err(bad_meta(format!(
                    "invalid metadata of type {} in converted object",
                    type_name(other)
                )));
            }
            None => return Err(bad_meta("missing metadata in converted object".into())),
        };
        let mut meta = objs[i].get("metadata").cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            for key in ["labels", "annotations"] {
                match om.get(key) {
                    None | Some(Value::Null) => {
                        m.remove(key);
                    }
                    Some(Value::Object(entries)) => {
                        if let Some((k, v)) = entries.iter().find(|(_, v)| !v.is_string()) {
                            return Err(bad_meta(format!(
                                "metadata.{key}[{k}] must be a string, but is {} in converted object",
                                type_name(v)
                            )));
                        }
                        m.insert(key.into(), Value::Object(entries.clone()));
                    }
                    Some(other) => {
                        return Err(bad_meta(format!(
                            "invalid metadata.{key} of type {} in converted object",
                            type_name(other)
                        )));
                    }
                }
            }
        }
        if let Some(o) = out.as_object_mut() {
            o.insert("metadata".into(), meta);
        }
        crate::handler::prune_to_version(res, version, &mut out);
        objs[i] = out;
    }
    Ok(objs)
}

/// Converts one object to `version`.
pub(crate) async fn one_to_version(
    shared: &Shared,
    res: &Resource,
    obj: Value,
    version: &str,
) -> Result<Value, ApiError> {
    Ok(to_version(shared, res, vec![obj], version)
        .await?
        .pop()
        .unwrap_or(Value::Null))
}

/// The Go type a JSON value decodes to, as kube-apiserver's messages print it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        // Unstructured JSON decodes a whole number to an int64, any other to a float64.
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}
