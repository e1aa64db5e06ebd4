//! Defaults and validation of admissionregistration.k8s.io/v1 Validating- and
//! MutatingWebhookConfigurations, as kube-apiserver applies them on create and update
//! (`pkg/apis/admissionregistration/v1/defaults.go`,
//! `pkg/apis/admissionregistration/validation/validation.go`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::schema::{Cause, go_json_strings};

/// The AdmissionReview versions this server (as kube-apiserver) speaks.
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook`, `SetDefaults_Rule` and
/// `SetDefaults_ServiceReference` of the v1 API: applied to every create and update body.
pub(crate) fn set_defaults(obj: &mut Value, mutating: bool) {
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        let mut default = |k: &str, v: Value| {
            if hook.get(k).is_none_or(Value::is_null) {
                hook.insert(k.to_string(), v);
            }
        };
        default("failurePolicy", json!("Fail"));
        default("matchPolicy", json!("Equivalent"));
        default("namespaceSelector", json!({}));
        default("objectSelector", json!({}));
        default("timeoutSeconds", json!(10));
        if mutating {
            default("reinvocationPolicy", json!("Never"));
        }
        for rule in hook
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            if rule.get("scope").is_none_or(Value::is_null) {
                rule.insert("scope".into(), json!("*"));
            }
        }
        if let Some(service) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
            && service.get("port").is_none_or(Value::is_null)
        {
            service.insert("port".into(), json!(443));
        }
    }
}

/// `ValidateValidatingWebhookConfiguration` / `ValidateMutatingWebhookConfiguration` with the
/// options kube-apiserver uses for a create (on update it relaxes a rule only for webhooks the
/// old object already broke it in, which this server never stores).
pub(crate) fn validate(obj: &Value, mutating: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    let hooks = obj
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, hook) in hooks.iter().enumerate() {
        let path = format!("webhooks[{i}]");
        validate_webhook(hook, mutating, &path, &mut causes);
        review_versions(
            hook.get("admissionReviewVersions"),
            &format!("{path}.admissionReviewVersions"),
            &mut causes,
        );
        let name = str_of(hook, "name");
        if !name.is_empty() && !names.insert(name) {
            causes.push(Cause::duplicate(&format!("{path}.name"), &json!(name)));
        }
    }
    causes
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The strings of a list field, non-strings read as empty.
fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or("")).collect())
        .unwrap_or_default()
}

fn supported(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// An optional enum field: unset is fine (the defaults ran first), anything else must be listed.
fn one_of(hook: &Value, key: &str, values: &[&str], path: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = hook.get(key).filter(|v| !v.is_null())
        && !v.as_str().is_some_and(|s| values.contains(&s))
    {
        causes.push(Cause::not_supported(&format!("{path}.{key}"), v, &supported(values)));
    }
}

fn validate_webhook(hook: &Value, mutating: bool, path: &str, causes: &mut Vec<Cause>) {
    fully_qualified_name(str_of(hook, "name"), &format!("{path}.name"), causes);
    for (j, rule) in hook
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_rule(rule, &format!("{path}.rules[{j}]"), causes);
    }
    one_of(hook, "failurePolicy", &["Fail", "Ignore"], path, causes);
    one_of(hook, "matchPolicy", &["Equivalent", "Exact"], path, causes);
    const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
    match hook.get("sideEffects").filter(|v| !v.is_null()) {
        None => causes.push(Cause::required(
            &format!("{path}.sideEffects"),
            &format!("must specify one of {}", NO_SIDE_EFFECTS.join(", ")),
        )),
        Some(_) => one_of(hook, "sideEffects", NO_SIDE_EFFECTS, path, causes),
    }
    if let Some(t) = hook.get("timeoutSeconds").filter(|v| !v.is_null())
        && !t.as_i64().is_some_and(|t| (1..=30).contains(&t))
    {
        causes.push(Cause::invalid(
            &format!("{path}.timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    for key in ["namespaceSelector", "objectSelector"] {
        if let Some(sel) = hook.get(key).filter(|v| !v.is_null()) {
            label_selector(sel, &format!("{path}.{key}"), causes);
        }
    }
    if mutating {
        one_of(hook, "reinvocationPolicy", &["IfNeeded", "Never"], path, causes);
    }
    client_config(hook.get("clientConfig"), &format!("{path}.clientConfig"), causes);
    match_conditions(hook.get("matchConditions"), &format!("{path}.matchConditions"), causes);
}

/// `metav1validation.ValidateLabelSelector` (label values in selectors must be valid).
fn label_selector(sel: &Value, path: &str, causes: &mut Vec<Cause>) {
    let labels_at = format!("{path}.matchLabels");
    for (k, v) in sel.get("matchLabels").and_then(Value::as_object).into_iter().flatten() {
        for e in crate::selector::qualified_name(k) {
            causes.push(Cause::invalid_str(&labels_at, k, &e));
        }
        let v = v.as_str().unwrap_or("");
        for e in crate::selector::label_value_problems(v) {
            causes.push(Cause::invalid_str(&labels_at, v, &e));
        }
    }
    for (i, req) in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = strs(req.get("values"));
        requirement_operator(req, &at, causes);
        let key = str_of(req, "key");
        for e in crate::selector::qualified_name(key) {
            causes.push(Cause::invalid_str(&format!("{at}.key"), key, &e));
        }
        for (j, v) in values.iter().enumerate() {
            for e in crate::selector::label_value_problems(v) {
                causes.push(Cause::invalid_str(&format!("{at}.values[{j}]"), v, &e));
            }
        }
    }
}

/// The operator of one selector requirement at `at` and whether it may have values
/// (`ValidateLabelSelectorRequirement`).
pub(super) fn requirement_operator(req: &Value, at: &str, causes: &mut Vec<Cause>) {
    let has_values = req
        .get("values")
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty());
    match str_of(req, "operator") {
        "In" | "NotIn" if !has_values => causes.push(Cause::required(
            &format!("{at}.values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if has_values => causes.push(Cause::forbidden(
            &format!("{at}.values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        op => causes.push(Cause::invalid_str(
            &format!("{at}.operator"),
            op,
            "not a valid selector operator",
        )),
    }
}

/// `utilvalidation.IsFullyQualifiedName`: a DNS subdomain of at least three labels.
fn fully_qualified_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    if name.is_empty() {
        causes.push(Cause::required(path, ""));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = crate::meta::check_name(name, crate::meta::NameRule::Subdomain);
    if !errs.is_empty() {
        causes.push(Cause::invalid_str(path, name, &errs.join(",")));
    } else if name.split('.').count() < 3 {
        causes.push(Cause::invalid_str(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

/// `validateAdmissionReviewVersions` with a recognized version required.
fn review_versions(versions: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let versions = strs(versions);
    if versions.is_empty() {
        causes.push(Cause::required(
            path,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !seen.insert(*v) {
            causes.push(Cause::invalid_str(&at, v, "duplicate version"));
            continue;
        }
        for e in crate::meta::check_name(v, crate::meta::NameRule::Rfc1035Label) {
            causes.push(Cause::invalid_str(&at, v, &e));
        }
    }
    if !versions.iter().any(|v| REVIEW_VERSIONS.contains(v)) {
        causes.push(Cause::invalid_raw(
            path,
            &go_json_strings(&versions),
            &format!("must include at least one of {}", REVIEW_VERSIONS.join(", ")),
        ));
    }
}

/// `validateRuleWithOperations` (subresources allowed).
fn validate_rule(rule: &Value, path: &str, causes: &mut Vec<Cause>) {
    const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
    let ops = strs(rule.get("operations"));
    if ops.is_empty() {
        causes.push(Cause::required(&format!("{path}.operations"), ""));
    }
    if ops.len() > 1 && ops.contains(&"*") {
        causes.push(Cause::invalid_raw(
            &format!("{path}.operations"),
            &go_json_strings(&ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            causes.push(Cause::not_supported(
                &format!("{path}.operations[{i}]"),
                &json!(op),
                &supported(OPERATIONS),
            ));
        }
    }
    let groups = strs(rule.get("apiGroups"));
    if groups.is_empty() {
        causes.push(Cause::required(&format!("{path}.apiGroups"), ""));
    }
    if groups.len() > 1 && groups.contains(&"*") {
        causes.push(Cause::invalid_raw(
            &format!("{path}.apiGroups"),
            &go_json_strings(&groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = strs(rule.get("apiVersions"));
    if versions.is_empty() {
        causes.push(Cause::required(&format!("{path}.apiVersions"), ""));
    }
    if versions.len() > 1 && versions.contains(&"*") {
        causes.push(Cause::invalid_raw(
            &format!("{path}.apiVersions"),
            &go_json_strings(&versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            causes.push(Cause::required(&format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    resources(&strs(rule.get("resources")), &format!("{path}.resources"), causes);
    one_of(rule, "scope", &["*", "Cluster", "Namespaced"], path, causes);
}

/// `validateResources`: `resource`, `resource/subresource`, and the wildcard combinations.
fn resources(list: &[&str], path: &str, causes: &mut Vec<Cause>) {
    if list.is_empty() {
        causes.push(Cause::required(path, ""));
    }
    let (mut any_sub_of, mut any_res_with) = (BTreeSet::new(), BTreeSet::new());
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, item) in list.iter().enumerate() {
        if item.is_empty() {
            causes.push(Cause::required(&format!("{path}[{i}]"), ""));
            continue;
        }
        double |= *item == "*/*";
        single |= *item == "*";
        let Some((res, sub)) = item.split_once('/') else {
            // As kube: the last resource without a subresource decides.
            plain = *item != "*";
            continue;
        };
        if any_sub_of.contains(res) {
            causes.push(Cause::invalid_str(
                &format!("{path}[{i}]"),
                item,
                &format!("if '{res}/*' is present, must not specify {item}"),
            ));
        }
        if any_res_with.contains(sub) {
            causes.push(Cause::invalid_str(
                &format!("{path}[{i}]"),
                item,
                &format!("if '*/{sub}' is present, must not specify {item}"),
            ));
        }
        if sub == "*" {
            any_sub_of.insert(res);
        }
        if res == "*" {
            any_res_with.insert(sub);
        }
    }
    if list.len() > 1 && double {
        causes.push(Cause::invalid_raw(
            path,
            &go_json_strings(list),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        causes.push(Cause::invalid_raw(
            path,
            &go_json_strings(list),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// Exactly one of `url` (`webhook.ValidateWebhookURL`, https only) and `service`
/// (`webhook.ValidateWebhookService`).
fn client_config(cc: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let present = |k: &str| cc.and_then(|c| c.get(k)).filter(|v| !v.is_null());
    match (present("url"), present("service")) {
        (Some(url), None) => webhook_url(url.as_str().unwrap_or(""), &format!("{path}.url"), causes),
        (None, Some(service)) => webhook_service(service, &format!("{path}.service"), causes),
        _ => causes.push(Cause::required(path, "exactly one of url or service is required")),
    }
}

fn webhook_url(url: &str, path: &str, causes: &mut Vec<Cause>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", url),
    };
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = if scheme.is_empty() {
        ""
    } else {
        rest.split('/').next().unwrap_or("")
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if scheme != "https" {
        causes.push(Cause::invalid_str(
            path,
            scheme,
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if host.is_empty() {
        causes.push(Cause::invalid_str(path, host, &format!("host must be specified{FORM}")));
    }
    if let Some(user) = user {
        // Go's `url.Userinfo.String()` hides nothing: the user (and `:password`) as written.
        causes.push(Cause::invalid_str(
            path,
            user,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        causes.push(Cause::invalid_str(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        causes.push(Cause::invalid_str(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
}

fn webhook_service(service: &Value, path: &str, causes: &mut Vec<Cause>) {
    for key in ["name", "namespace"] {
        if str_of(service, key).is_empty() {
            causes.push(Cause::required(&format!("{path}.{key}"), ""));
        }
    }
    if let Some(port) = service.get("port").filter(|p| !p.is_null())
        && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
    {
        causes.push(Cause::invalid(
            &format!("{path}.port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let url_path = str_of(service, "path");
    let at = format!("{path}.path");
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    if url_path == "//" {
        causes.push(Cause::invalid_str(&at, url_path, "segment[0] may not be empty"));
        return;
    }
    if !url_path.starts_with('/') {
        causes.push(Cause::invalid_str(&at, url_path, "must start with a '/'"));
    }
    // As kube: the first character is dropped whatever it is, and one trailing '/' is allowed.
    let mut rest = url_path.get(1..).unwrap_or("");
    rest = rest.strip_suffix('/').unwrap_or(rest);
    for (i, step) in rest.split('/').enumerate() {
        if step.is_empty() {
            causes.push(Cause::invalid_str(
                &at,
                url_path,
                &format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for e in crate::meta::check_name(step, crate::meta::NameRule::Subdomain) {
            causes.push(Cause::invalid_str(&at, url_path, &format!("segment[{i}]: {e}")));
        }
    }
}

/// `validateMatchConditions`: at most 64, names unique qualified names, expressions that
/// compile.
fn match_conditions(conditions: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let conditions = conditions
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if conditions.len() > 64 {
        causes.push(Cause::too_many(path, conditions.len() as i64, 64));
    }
    let mut names = BTreeSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let expr = str_of(c, "expression").trim();
        if expr.is_empty() {
            causes.push(Cause::required(&format!("{at}.expression"), ""));
        } else if let Err(e) = crate::webhook::admission::compile_condition(expr) {
            causes.push(Cause::invalid_str(
                &format!("{at}.expression"),
                str_of(c, "expression"),
                &format!("compilation failed: {e}"),
            ));
        }
        let name = str_of(c, "name");
        if name.is_empty() {
            causes.push(Cause::required(&format!("{at}.name"), ""));
        } else {
            for e in crate::selector::qualified_name(name) {
                causes.push(Cause::invalid_str(&format!("{at}.name"), name, &e));
            }
            if !names.insert(name) {
                causes.push(Cause::duplicate(&format!("{at}.name"), &json!(name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Value {
        json!({
            "name": "pods.validate.example.com",
            "clientConfig": { "service": { "namespace": "default", "name": "hook", "path": "/validate" } },
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"] }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    /// The causes of one webhook changed by `f`, after the defaults, as `(field, message)`.
    fn causes_of(mutating: bool, f: impl FnOnce(&mut Value)) -> Vec<(String, String)> {
        let mut h = hook();
        f(&mut h);
        let mut config = json!({ "metadata": { "name": "c" }, "webhooks": [h] });
        set_defaults(&mut config, mutating);
        validate(&config, mutating)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    fn one(mutating: bool, f: impl FnOnce(&mut Value)) -> (String, String) {
        let causes = causes_of(mutating, f);
        assert_eq!(causes.len(), 1, "{causes:?}");
        causes.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn a_complete_webhook_is_valid_and_gets_kube_apiserver_v1_defaults() {
        assert_eq!(causes_of(false, |_| {}), vec![]);
        assert_eq!(causes_of(true, |_| {}), vec![]);
        let mut config = json!({ "webhooks": [hook()] });
        set_defaults(&mut config, true);
        let h = &config["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        let mut config = json!({ "webhooks": [hook()] });
        set_defaults(&mut config, false);
        assert!(config["webhooks"][0].get("reinvocationPolicy").is_none());
    }

    #[test]
    fn defaults_keep_what_was_set_and_add_no_service_to_a_url() {
        let mut h = hook();
        h["clientConfig"] = json!({ "url": "https://example.com/x" });
        h["timeoutSeconds"] = json!(3);
        h["failurePolicy"] = json!("Ignore");
        let mut config = json!({ "webhooks": [h] });
        set_defaults(&mut config, false);
        let h = &config["webhooks"][0];
        assert_eq!(h["clientConfig"], json!({ "url": "https://example.com/x" }));
        assert_eq!(h["timeoutSeconds"], 3);
        assert_eq!(h["failurePolicy"], "Ignore");
    }

    #[test]
    fn webhook_names_are_fully_qualified_and_unique() {
        let (f, m) = one(false, |h| h["name"] = json!("validate.example"));
        assert_eq!(f, "webhooks[0].name");
        assert_eq!(
            m,
            "Invalid value: \"validate.example\": should be a domain with at least three segments separated by dots"
        );
        let (f, m) = one(false, |h| h["name"] = json!(""));
        assert_eq!((f.as_str(), m.as_str()), ("webhooks[0].name", "Required value"));
        let (_, m) = one(false, |h| h["name"] = json!("Pods.example.com"));
        assert!(m.contains("RFC 1123 subdomain"), "{m}");
        assert_eq!(causes_of(false, |h| h["name"] = json!("a.b.c.")), vec![]);

        let mut config = json!({ "webhooks": [hook(), hook()] });
        set_defaults(&mut config, false);
        let causes = validate(&config, false);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "webhooks[1].name");
        assert_eq!(causes[0].message, "Duplicate value: \"pods.validate.example.com\"");
    }

    #[test]
    fn side_effects_must_be_none_or_none_on_dry_run() {
        let (f, m) = one(false, |h| h["sideEffects"] = Value::Null);
        assert_eq!(f, "webhooks[0].sideEffects");
        assert_eq!(m, "Required value: must specify one of None, NoneOnDryRun");
        let (_, m) = one(true, |h| h["sideEffects"] = json!("Unknown"));
        assert_eq!(
            m,
            "Unsupported value: \"Unknown\": supported values: \"None\", \"NoneOnDryRun\""
        );
        assert_eq!(causes_of(false, |h| h["sideEffects"] = json!("NoneOnDryRun")), vec![]);
    }

    #[test]
    fn admission_review_versions_need_one_the_server_knows() {
        let (f, m) = one(false, |h| h["admissionReviewVersions"] = json!([]));
        assert_eq!(f, "webhooks[0].admissionReviewVersions");
        assert_eq!(m, "Required value: must specify one of v1, v1beta1");
        let (_, m) = one(false, |h| h["admissionReviewVersions"] = json!(["v2"]));
        assert_eq!(m, r#"Invalid value: ["v2"]: must include at least one of v1, v1beta1"#);
        let (f, m) = one(false, |h| h["admissionReviewVersions"] = json!(["v1", "v1"]));
        assert_eq!(f, "webhooks[0].admissionReviewVersions[1]");
        assert_eq!(m, "Invalid value: \"v1\": duplicate version");
        assert_eq!(
            causes_of(false, |h| h["admissionReviewVersions"] = json!(["v2", "v1beta1"])),
            vec![]
        );
    }

    #[test]
    fn timeouts_are_between_1_and_30_seconds() {
        for bad in [0, 31, -1] {
            let (f, m) = one(false, |h| h["timeoutSeconds"] = json!(bad));
            assert_eq!(f, "webhooks[0].timeoutSeconds");
            assert_eq!(
                m,
                format!("Invalid value: {bad}: the timeout value must be between 1 and 30 seconds")
            );
        }
        assert_eq!(causes_of(false, |h| h["timeoutSeconds"] = json!(30)), vec![]);
    }

    #[test]
    fn policies_are_checked_against_their_values() {
        let (f, m) = one(false, |h| h["failurePolicy"] = json!("Retry"));
        assert_eq!(f, "webhooks[0].failurePolicy");
        assert_eq!(
            m,
            "Unsupported value: \"Retry\": supported values: \"Fail\", \"Ignore\""
        );
        let (f, _) = one(false, |h| h["matchPolicy"] = json!("Loose"));
        assert_eq!(f, "webhooks[0].matchPolicy");
        let (f, m) = one(true, |h| h["reinvocationPolicy"] = json!("Always"));
        assert_eq!(f, "webhooks[0].reinvocationPolicy");
        assert_eq!(
            m,
            "Unsupported value: \"Always\": supported values: \"IfNeeded\", \"Never\""
        );
        // A validating webhook has no reinvocationPolicy: kube-apiserver drops the unknown field.
        assert_eq!(causes_of(false, |h| h["reinvocationPolicy"] = json!("Always")), vec![]);
    }

    #[test]
    fn client_config_is_exactly_one_https_url_or_one_service() {
        let (f, m) = one(false, |h| h["clientConfig"] = json!({}));
        assert_eq!(f, "webhooks[0].clientConfig");
        assert_eq!(m, "Required value: exactly one of url or service is required");
        let (f, _) = one(false, |h| h["clientConfig"]["url"] = json!("https://example.com"));
        assert_eq!(f, "webhooks[0].clientConfig");

        let url = |u: &str| causes_of(false, |h| h["clientConfig"] = json!({ "url": u }));
        assert_eq!(url("https://example.com:8443/validate"), vec![]);
        let http = url("http://example.com/validate");
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].0, "webhooks[0].clientConfig.url");
        assert_eq!(
            http[0].1,
            "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]"
        );
        assert_eq!(
            url("https://me:pw@example.com/")[0].1,
            "Invalid value: \"me:pw\": user information is not permitted in the URL"
        );
        assert_eq!(
            url("https://example.com/#x")[0].1,
            "Invalid value: \"x\": fragments are not permitted in the URL"
        );
        assert_eq!(
            url("https://example.com/?a=b")[0].1,
            "Invalid value: \"a=b\": query parameters are not permitted in the URL"
        );
        assert_eq!(url("https:///x").len(), 1);

        let service = |s: Value| causes_of(false, |h| h["clientConfig"] = json!({ "service": s }));
        let missing = service(json!({}));
        let fields: Vec<&str> = missing.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "webhooks[0].clientConfig.service.name",
                "webhooks[0].clientConfig.service.namespace"
            ]
        );
        for port in [0, 65536] {
            let c = service(json!({ "name": "a", "namespace": "b", "port": port }));
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].0, "webhooks[0].clientConfig.service.port");
            assert_eq!(
                c[0].1,
                format!("Invalid value: {port}: port is not valid: must be between 1 and 65535, inclusive")
            );
        }
        let c = service(json!({ "name": "a", "namespace": "b", "path": "validate" }));
        assert_eq!(c[0].1, "Invalid value: \"validate\": must start with a '/'");
        let c = service(json!({ "name": "a", "namespace": "b", "path": "/a//b" }));
        assert_eq!(c[0].1, "Invalid value: \"/a//b\": segment[1] may not be empty");
        assert_eq!(
            service(json!({ "name": "a", "namespace": "b", "path": "/a/b-c/" })),
            vec![]
        );
    }

    #[test]
    fn rules_need_operations_groups_versions_and_resources() {
        let (f, m) = one(false, |h| h["rules"][0]["operations"] = json!(["PATCH"]));
        assert_eq!(f, "webhooks[0].rules[0].operations[0]");
        assert_eq!(
            m,
            "Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""
        );
        let (f, _) = one(false, |h| h["rules"][0]["operations"] = json!(["*", "CREATE"]));
        assert_eq!(f, "webhooks[0].rules[0].operations");
        let fields: Vec<String> = causes_of(false, |h| h["rules"] = json!([{}]))
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(
            fields,
            [
                "webhooks[0].rules[0].operations",
                "webhooks[0].rules[0].apiGroups",
                "webhooks[0].rules[0].apiVersions",
                "webhooks[0].rules[0].resources"
            ]
        );
        let (f, m) = one(false, |h| h["rules"][0]["resources"] = json!(["*", "pods"]));
        assert_eq!(f, "webhooks[0].rules[0].resources");
        assert!(
            m.ends_with("if '*' is present, must not specify other resources without subresources"),
            "{m}"
        );
        let (f, _) = one(false, |h| h["rules"][0]["resources"] = json!(["pods/*", "pods/status"]));
        assert_eq!(f, "webhooks[0].rules[0].resources[1]");
        assert_eq!(
            causes_of(false, |h| h["rules"][0]["resources"] = json!(["*", "pods/status"])),
            vec![]
        );
        let (f, m) = one(false, |h| h["rules"][0]["scope"] = json!("Global"));
        assert_eq!(f, "webhooks[0].rules[0].scope");
        assert_eq!(
            m,
            "Unsupported value: \"Global\": supported values: \"*\", \"Cluster\", \"Namespaced\""
        );
    }

    #[test]
    fn selectors_are_valid_label_selectors() {
        let ok = json!({ "matchLabels": { "example.com/team": "a" },
                         "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["web"] },
                                              { "key": "x", "operator": "Exists" }] });
        assert_eq!(causes_of(false, |h| h["objectSelector"] = ok), vec![]);
        let bad = json!({ "matchLabels": { "team": "not valid" },
                          "matchExpressions": [{ "key": "tier", "operator": "In" },
                                               { "key": "x", "operator": "Exists", "values": ["a"] },
                                               { "key": "bad key", "operator": "Near", "values": ["-a"] }] });
        let fields: Vec<String> = causes_of(false, |h| h["namespaceSelector"] = bad)
            .into_iter()
            .map(|c| c.0)
            .collect();
        let at = |s: &str| format!("webhooks[0].namespaceSelector.{s}");
        assert_eq!(
            fields,
            [
                at("matchLabels"),
                at("matchExpressions[0].values"),
                at("matchExpressions[1].values"),
                at("matchExpressions[2].operator"),
                at("matchExpressions[2].key"),
                at("matchExpressions[2].values[0]"),
            ]
        );
    }

    #[test]
    fn match_conditions_have_unique_qualified_names_and_expressions_that_compile() {
        let conditions = |c: Value| causes_of(false, |h| h["matchConditions"] = c);
        assert_eq!(conditions(json!([{ "name": "a", "expression": "true" }])), vec![]);
        let c = conditions(json!([{ "name": "a", "expression": "true" }, { "name": "a", "expression": "true" }]));
        assert_eq!(
            c,
            vec![(
                "webhooks[0].matchConditions[1].name".into(),
                "Duplicate value: \"a\"".into()
            )]
        );
        let c = conditions(json!([{ "name": "not a name", "expression": " " }]));
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            c[0],
            (
                "webhooks[0].matchConditions[0].expression".into(),
                "Required value".into()
            )
        );
        assert_eq!(c[1].0, "webhooks[0].matchConditions[0].name");
        let c = conditions(json!([{ "name": "a", "expression": "object.metadata.(" }]));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "webhooks[0].matchConditions[0].expression");
        assert!(
            c[0].1
                .starts_with("Invalid value: \"object.metadata.(\": compilation failed: "),
            "{c:?}"
        );
        let many: Vec<Value> = (0..65)
            .map(|i| json!({ "name": format!("c{i}"), "expression": "true" }))
            .collect();
        let c = conditions(json!(many));
        assert_eq!(
            c,
            vec![(
                "webhooks[0].matchConditions".into(),
                "Too many: 65: must have at most 64 items".into()
            )]
        );
    }
}
