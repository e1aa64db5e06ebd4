//! `batch/v1` Jobs and CronJobs as kube-apiserver's registry strategies shape them: the
//! defaults (`pkg/apis/batch/v1/defaults.go`), a Job's generated selector and pod labels, the
//! validation of `pkg/apis/batch/validation` that operators meet, a cron schedule parsed as
//! `robfig/cron/v3`'s `ParseStandard` parses it, the `kubectl get` columns, and a batch/v1 Job's
//! default delete, which orphans its dependents
//! ([Jobs](https://kubernetes.io/docs/concepts/workloads/controllers/job/),
//! [CronJobs](https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/)).
//!
//! Nothing runs them: there is no Job or CronJob controller, so no Pod or Job is ever created and
//! no status is ever written but by the clients.

use serde_json::{Map, Value, json};

use super::Ctx;
use super::delete::Propagation;
use super::prepare::{go_label_selector, pod_spec_defaults};
use crate::registry::Resource;
use crate::schema::{Cause, go_json};

/// The label that carries the Job's uid on its pods and in its generated selector.
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label that carries the Job's name on its pods.
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The unprefixed labels kube-apiserver still adds for compatibility.
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// The warning kube-apiserver sends with a batch/v1 Job delete that names no policy
/// (`pkg/registry/batch/job/storage`).
pub(crate) const ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set \
     propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn is_jobs(res: &Resource) -> bool {
    res.group == "batch" && res.plural == "jobs"
}

/// Sets `path` (relative to `obj`) to `value` when it is missing or `null`, creating the
/// objects on the way; a non-object on the way stops it.
fn default_at(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let Some(m) = cur.as_object_mut() else { return };
        let next = m.entry(p.to_string()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        cur = next;
    }
    if let Some(m) = cur.as_object_mut()
        && m.get(*last).is_none_or(Value::is_null)
    {
        m.insert(last.to_string(), value);
    }
}

fn present<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

/// Create-time behaviour: defaults, a Job's generated selector and pod labels
/// (`generateSelectorIfNeeded`), and an empty status.
pub(super) fn on_create(res: &Resource, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    if is_jobs(res) {
        job_defaults(obj);
        if present(obj, "/spec/manualSelector") != Some(&Value::Bool(true)) {
            generate_selector(obj);
        }
        // The object kube-apiserver answers with is decoded from storage, defaulted again: a Job
        // that had no labels now gets its template's, the generated ones included.
        copy_template_labels(obj);
    } else {
        cronjob_defaults(obj);
    }
    obj["status"] = json!({});
}

/// The defaults re-applied to every update, as kube-apiserver applies them on decoding.
pub(super) fn on_update(res: &Resource, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    if is_jobs(res) {
        job_defaults(obj);
    } else {
        cronjob_defaults(obj);
    }
}

/// `SetDefaults_Job` and the pod template's defaults.
fn job_defaults(obj: &mut Value) {
    default_at(obj, &["spec"], json!({}));
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if present(spec, "/completions").is_none() && present(spec, "/parallelism").is_none() {
        default_at(spec, &["completions"], json!(1));
    }
    default_at(spec, &["parallelism"], json!(1));
    let backoff = if present(spec, "/backoffLimitPerIndex").is_some() {
        i32::MAX
    } else {
        6
    };
    default_at(spec, &["backoffLimit"], json!(backoff));
    default_at(spec, &["completionMode"], json!("NonIndexed"));
    default_at(spec, &["suspend"], json!(false));
    let replacement = if present(spec, "/podFailurePolicy").is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default_at(spec, &["podReplacementPolicy"], json!(replacement));
    default_at(spec, &["manualSelector"], json!(false));
    job_spec_defaults(spec);
    copy_template_labels(obj);
}

/// The defaults every JobSpec gets, in a Job or a CronJob's job template: the pod template's and
/// a pod failure policy pattern's status.
fn job_spec_defaults(spec: &mut Value) {
    if let Some(rules) = spec
        .pointer_mut("/podFailurePolicy/rules")
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            if let Some(patterns) = rule.get_mut("onPodConditions").and_then(Value::as_array_mut) {
                for p in patterns.iter_mut().filter(|p| p.is_object()) {
                    if p.get("status").and_then(Value::as_str).is_none_or(str::is_empty) {
                        p["status"] = json!("True");
                    }
                }
            }
        }
    }
    default_at(spec, &["template", "spec"], json!({}));
    if let Some(pod) = spec.pointer_mut("/template/spec").filter(|p| p.is_object()) {
        pod_spec_defaults(pod);
    }
}

/// `SetDefaults_Job`: a Job without labels takes its pod template's.
fn copy_template_labels(obj: &mut Value) {
    let template = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let has_own = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_some_and(|l| !l.is_empty());
    if let (Some(labels), false) = (template, has_own)
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("labels".into(), Value::Object(labels));
    }
}

/// `generateSelector`: the pod template gets the Job's name and uid as labels (the legacy
/// unprefixed ones too), the selector matches the uid. Labels the client set are kept (a
/// conflict is validation's to refuse).
fn generate_selector(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_at(obj, &["spec", "template", "metadata", "labels"], json!({}));
    if let Some(labels) = obj
        .pointer_mut("/spec/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for (key, value) in [
            (LEGACY_JOB_NAME, &name),
            (JOB_NAME, &name),
            (LEGACY_CONTROLLER_UID, &uid),
            (CONTROLLER_UID, &uid),
        ] {
            labels.entry(key).or_insert_with(|| json!(value));
        }
    }
    default_at(obj, &["spec", "selector", "matchLabels"], json!({}));
    if let Some(labels) = obj
        .pointer_mut("/spec/selector/matchLabels")
        .and_then(Value::as_object_mut)
    {
        labels.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
    }
}

/// `SetDefaults_CronJob` and the job template's pod defaults.
fn cronjob_defaults(obj: &mut Value) {
    default_at(obj, &["spec"], json!({}));
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if spec.get("concurrencyPolicy").and_then(Value::as_str) == Some("") {
        spec["concurrencyPolicy"] = Value::Null;
    }
    default_at(spec, &["concurrencyPolicy"], json!("Allow"));
    default_at(spec, &["suspend"], json!(false));
    default_at(spec, &["successfulJobsHistoryLimit"], json!(3));
    default_at(spec, &["failedJobsHistoryLimit"], json!(1));
    default_at(spec, &["jobTemplate", "spec"], json!({}));
    if let Some(job) = spec.pointer_mut("/jobTemplate/spec").filter(|s| s.is_object()) {
        job_spec_defaults(job);
    }
}

/// The checks of `ValidateJob` and `ValidateCronJobCreate` (or, on an update, the parts that do
/// not compare with the old object; [`validate_update`] does those).
pub(super) fn validate(res: &Resource, obj: &Value, updating: bool) -> Vec<Cause> {
    if is_jobs(res) {
        validate_job(obj, updating)
    } else {
        validate_cronjob(obj, updating)
    }
}

fn validate_job(obj: &Value, updating: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    // An update's generated selector depends on the old Job: see `validate_update`.
    if !updating {
        causes.extend(generated_selector_causes(obj, true));
    }
    causes.extend(job_spec_causes(spec, "spec"));
    match present(spec, "/selector") {
        None => causes.push(Cause::required("spec.selector", "")),
        Some(sel) => causes.extend(selector_operator_causes(sel, "spec.selector")),
    }
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    if selector_matches(present(spec, "/selector"), labels) == Some(false) {
        causes.push(Cause::invalid_raw(
            "spec.template.metadata.labels",
            &labels.map_or_else(|| "null".to_string(), |l| go_json(&Value::Object(l.clone()))),
            "`selector` does not match template `labels`",
        ));
    }
    let completions = spec.get("completions").and_then(Value::as_i64);
    if spec.get("completionMode").and_then(Value::as_str) == Some("Indexed")
        && let Some(completions) = completions.filter(|c| *c > 0)
    {
        let hostname = format!("{name}-{}", completions - 1);
        if !crate::meta::check_name(&hostname, crate::meta::NameRule::Label).is_empty() {
            causes.push(Cause::invalid_str(
                "metadata.name",
                name,
                &format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    if updating {
        for key in ["active", "succeeded", "failed", "ready", "terminating"] {
            causes.extend(non_negative(
                obj.pointer(&format!("/status/{key}")),
                &format!("status.{key}"),
            ));
        }
    }
    causes
}

/// `validateGeneratedSelector`: unless the selector is manual, the pod template carries the
/// Job's name and uid (the prefixed labels too when `prefixed`), and the selector selects them.
fn generated_selector_causes(obj: &Value, prefixed: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    if spec.get("manualSelector") == Some(&Value::Bool(true)) || present(spec, "/selector").is_none() {
        return causes;
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let mut expected = vec![(LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)];
    if prefixed {
        expected.extend([(CONTROLLER_UID, uid), (JOB_NAME, name)]);
    }
    for (key, value) in &expected {
        causes.extend(has_label(spec, "spec.template.metadata", key, value));
    }
    let expected: Map<String, Value> = expected.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    if selector_matches(spec.get("selector"), Some(&expected)) == Some(false) {
        causes.push(Cause::invalid_raw(
            "spec.selector",
            &selector_text(spec.get("selector")),
            "`selector` not auto-generated",
        ));
    }
    causes
}

/// `ValidateHasLabel`.
fn has_label(spec: &Value, at: &str, key: &str, expected: &str) -> Option<Cause> {
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    let field = format!("{at}.labels[{key}]");
    match labels.and_then(|l| l.get(key)) {
        None => Some(Cause::required(&field, expected)),
        Some(v) if v.as_str() == Some(expected) => None,
        Some(_) => Some(Cause::invalid_raw(
            &field,
            &labels.map_or_else(|| "null".to_string(), |l| go_json(&Value::Object(l.clone()))),
            &format!("must be '{expected}'"),
        )),
    }
}

/// A label selector as a field error prints it (`null` when there is none).
fn selector_text(sel: Option<&Value>) -> String {
    match sel.filter(|s| !s.is_null()) {
        Some(sel) => go_label_selector(sel),
        None => "null".to_string(),
    }
}

/// Whether a `metav1.LabelSelector` matches `labels`, as `LabelSelectorAsSelector(...).Matches`:
/// `None` when the selector does not convert (an unknown operator), a missing selector matches
/// nothing, an empty one everything.
fn selector_matches(sel: Option<&Value>, labels: Option<&Map<String, Value>>) -> Option<bool> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return Some(false);
    };
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut ok = true;
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        ok &= m.iter().all(|(k, v)| label(k) == v.as_str());
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        ok &= match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => return None,
        };
    }
    Some(ok)
}

/// The operators of a selector's expressions (`ValidateLabelSelectorRequirement`).
fn selector_operator_causes(sel: &Value, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, e) in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        super::webhook_configuration::requirement_operator(e, &format!("{at}.matchExpressions[{i}]"), &mut causes);
    }
    causes
}

/// `ValidateNonnegativeField` of an optional integer.
fn non_negative(v: Option<&Value>, field: &str) -> Option<Cause> {
    let n = v.and_then(Value::as_i64)?;
    (n < 0).then(|| Cause::invalid(field, &json!(n), "must be greater than or equal to 0"))
}

/// `validateJobSpec`: the counts, the completion mode, the replacement policy, the pod template
/// (its containers) and its restart policy.
fn job_spec_causes(spec: &Value, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let f = |name: &str| format!("{at}.{name}");
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        causes.extend(non_negative(spec.get(key), &f(key)));
        if key == "maxFailedIndexes"
            && present(spec, "/maxFailedIndexes").is_some()
            && present(spec, "/backoffLimitPerIndex").is_none()
        {
            causes.push(Cause::required(
                &f("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    let mode = present(spec, "/completionMode");
    let indexed = mode.and_then(Value::as_str) == Some("Indexed");
    if let Some(mode) = mode
        && !matches!(mode.as_str(), Some("NonIndexed" | "Indexed"))
    {
        causes.push(Cause::not_supported(
            &f("completionMode"),
            mode,
            &["NonIndexed".into(), "Indexed".into()],
        ));
    }
    if indexed {
        if present(spec, "/completions").is_none() {
            causes.push(Cause::required(&f("completions"), "when completion mode is Indexed"));
        }
        if let Some(p) = spec.get("parallelism").and_then(Value::as_i64).filter(|p| *p > 100_000) {
            causes.push(Cause::invalid(
                &f("parallelism"),
                &json!(p),
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
    } else {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = present(spec, &format!("/{key}")) {
                causes.push(Cause::invalid(&f(key), v, "requires indexed completion mode"));
            }
        }
    }
    if let Some(policy) = present(spec, "/successPolicy")
        && !indexed
    {
        causes.push(Cause::invalid_raw(
            &f("successPolicy"),
            &go_json(policy),
            "requires indexed completion mode",
        ));
    }
    if let Some(policy) = present(spec, "/podReplacementPolicy") {
        let supported: &[&str] = if present(spec, "/podFailurePolicy").is_some() {
            &["Failed"]
        } else {
            &["Failed", "TerminatingOrFailed"]
        };
        if !policy.as_str().is_some_and(|p| supported.contains(&p)) {
            let supported: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
            causes.push(Cause::not_supported(&f("podReplacementPolicy"), policy, &supported));
        }
    }
    // `ValidatePodTemplateSpec`, as far as this server checks pod specs.
    let containers = spec.pointer("/template/spec/containers").and_then(Value::as_array);
    let containers_at = f("template.spec.containers");
    if containers.is_none_or(Vec::is_empty) {
        causes.push(Cause::required(&containers_at, ""));
    }
    for (i, c) in containers.map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        for key in ["name", "image"] {
            if c.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::required(&format!("{containers_at}[{i}].{key}"), ""));
            }
        }
    }
    let restart_at = f("template.spec.restartPolicy");
    let restart = present(spec, "/template/spec/restartPolicy");
    match restart.and_then(Value::as_str) {
        None | Some("" | "Always") => {
            if let Some(v) = restart.filter(|v| !v.is_string()) {
                causes.push(Cause::not_supported(
                    &restart_at,
                    v,
                    &["Always".into(), "OnFailure".into(), "Never".into()],
                ));
            }
            causes.push(Cause::required(&restart_at, r#"valid values: "OnFailure", "Never""#));
        }
        Some("OnFailure" | "Never") => {
            if present(spec, "/podFailurePolicy").is_some() && restart.and_then(Value::as_str) != Some("Never") {
                causes.push(Cause::invalid_str(
                    &restart_at,
                    "OnFailure",
                    r#"only "Never" is supported when podFailurePolicy is specified"#,
                ));
            }
        }
        Some(other) => {
            // The pod's own check, then the Job's.
            let v = json!(other);
            causes.push(Cause::not_supported(
                &restart_at,
                &v,
                &["Always".into(), "OnFailure".into(), "Never".into()],
            ));
            causes.push(Cause::not_supported(
                &restart_at,
                &v,
                &["OnFailure".into(), "Never".into()],
            ));
        }
    }
    causes
}

fn validate_cronjob(obj: &Value, updating: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    match spec.get("schedule").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => causes.push(Cause::required("spec.schedule", "")),
        Some(schedule) => {
            if let Err(e) = parse_standard(schedule) {
                causes.push(Cause::invalid_str("spec.schedule", schedule, &e));
            }
            if !updating && schedule.contains("TZ") {
                causes.push(Cause::invalid_str(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
    }
    causes.extend(non_negative(
        spec.get("startingDeadlineSeconds"),
        "spec.startingDeadlineSeconds",
    ));
    if !updating {
        causes.extend(time_zone_causes(present(spec, "/timeZone")));
    }
    match present(spec, "/concurrencyPolicy") {
        Some(Value::String(p)) if matches!(p.as_str(), "Allow" | "Forbid" | "Replace") => {}
        None => causes.push(Cause::required("spec.concurrencyPolicy", "")),
        Some(Value::String(p)) if p.is_empty() => causes.push(Cause::required("spec.concurrencyPolicy", "")),
        Some(other) => causes.push(Cause::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow".into(), "Forbid".into(), "Replace".into()],
        )),
    }
    // `ValidateJobTemplateSpec`.
    let job = spec.pointer("/jobTemplate/spec").unwrap_or(&empty);
    causes.extend(job_spec_causes(job, "spec.jobTemplate.spec"));
    if let Some(sel) = present(job, "/selector") {
        causes.push(Cause::invalid_raw(
            "spec.jobTemplate.spec.selector",
            &go_label_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if job.get("manualSelector") == Some(&Value::Bool(true)) {
        causes.push(Cause::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &json!(true),
            &["nil".into(), "false".into()],
        ));
    }
    for key in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        causes.extend(non_negative(spec.get(key), &format!("spec.{key}")));
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !updating && name.len() > 52 {
        causes.push(Cause::invalid_str(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    causes
}

/// `validateTimeZone`: an IANA name this server's time zone database knows (any well-formed
/// name when the database is missing).
fn time_zone_causes(tz: Option<&Value>) -> Vec<Cause> {
    let Some(tz) = tz else { return Vec::new() };
    let Some(name) = tz.as_str() else {
        return vec![Cause::invalid("spec.timeZone", tz, "must be a string")];
    };
    let invalid = |detail: &str| Cause::invalid_str("spec.timeZone", name, detail);
    if name.is_empty() {
        return vec![invalid("timeZone must be nil or non-empty string")];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    let unknown = format!("unknown time zone {name}");
    if !name.split('/').all(part_ok) {
        return vec![invalid(&unknown)];
    }
    let mut causes = Vec::new();
    if name.eq_ignore_ascii_case("local") {
        causes.push(invalid(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if !known_time_zone(name) {
        causes.push(invalid(&unknown));
    }
    causes
}

/// Whether Go's `time.LoadLocation` (with the embedded tzdata kube-apiserver carries) finds `name`.
fn known_time_zone(name: &str) -> bool {
    if name == "UTC" {
        return true;
    }
    if name.eq_ignore_ascii_case("local") {
        return false;
    }
    let db = jiff::tz::db();
    if db.is_definitively_empty() {
        return true;
    }
    match db.get(name) {
        // Go's lookup is case-sensitive; jiff's is not.
        Ok(tz) => tz.iana_name().is_none_or(|n| n == name),
        Err(_) => false,
    }
}

/// The checks that compare an update with the object it replaces: `ValidateJobSpecUpdate`'s
/// immutable fields, the prefixed pod labels of a Job that had them, a CronJob's schedule and
/// time zone as `validateCronJobSpec` checks them given the old spec.
pub(super) fn validate_update(res: &Resource, old: &Value, new: &Value) -> Vec<Cause> {
    if is_jobs(res) {
        job_update_causes(old, new)
    } else {
        cronjob_update_causes(old, new)
    }
}

/// A value as `ValidateImmutableField` compares it: `null`, empty lists and empty objects are
/// absent (Go's semantic equality takes nil and empty alike).
fn normalized(v: Option<&Value>) -> Option<Value> {
    fn strip(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Array(a) if a.is_empty() => None,
            Value::Array(a) => Some(Value::Array(
                a.iter().map(|x| strip(x).unwrap_or(Value::Null)).collect(),
            )),
            Value::Object(m) => {
                let m: Map<String, Value> = m.iter().filter_map(|(k, x)| Some((k.clone(), strip(x)?))).collect();
                (!m.is_empty()).then_some(Value::Object(m))
            }
            other => Some(other.clone()),
        }
    }
    v.and_then(strip)
}

fn job_update_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = json!({});
    let (os, ns) = (old.get("spec").unwrap_or(&empty), new.get("spec").unwrap_or(&empty));
    // `validationOptionsForJob`: the prefixed labels are required once the Job had them.
    let old_labels = os.pointer("/template/metadata/labels").and_then(Value::as_object);
    let had_prefixed = old_labels.is_some_and(|l| l.contains_key(JOB_NAME) && l.contains_key(CONTROLLER_UID));
    causes.extend(generated_selector_causes(new, had_prefixed));
    let changed = |key: &str| normalized(os.get(key)) != normalized(ns.get(key));
    // `validateCompletions`: an Indexed Job scales completions with parallelism (elastic Indexed
    // Jobs, GA); otherwise completions are immutable.
    let indexed = ns.get("completionMode").and_then(Value::as_str) == Some("Indexed");
    if changed("completions") {
        match (indexed, present(ns, "/completions")) {
            (true, None) => {}
            (true, Some(c)) => {
                if Some(c) != present(ns, "/parallelism") {
                    causes.push(Cause::invalid(
                        "spec.completions",
                        c,
                        "can only be modified in tandem with spec.parallelism",
                    ));
                }
            }
            (false, c) => causes.push(Cause::invalid(
                "spec.completions",
                c.unwrap_or(&Value::Null),
                "field is immutable",
            )),
        }
    }
    if changed("selector") {
        causes.push(Cause::invalid_raw(
            "spec.selector",
            &selector_text(ns.get("selector")),
            "field is immutable",
        ));
    }
    // `validatePodTemplateUpdate`: a suspended Job that never started may change where its pods
    // would run.
    let scheduling_mutable =
        os.get("suspend") == Some(&Value::Bool(true)) && present(old, "/status/startTime").is_none();
    let template = |spec: &Value| {
        let mut t = spec.get("template").cloned().unwrap_or(Value::Null);
        if scheduling_mutable {
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(m) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for key in ["nodeSelector", "tolerations", "schedulingGates"] {
                    m.remove(key);
                }
                if let Some(a) = m.get_mut("affinity").and_then(Value::as_object_mut) {
                    a.remove("nodeAffinity");
                }
            }
        }
        normalized(Some(&t))
    };
    if template(os) != template(ns) {
        causes.push(Cause::invalid_raw(
            "spec.template",
            &go_json(ns.get("template").unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if changed(key) {
            causes.push(Cause::invalid(
                &format!("spec.{key}"),
                ns.get(key).unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    causes
}

fn cronjob_update_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let old_schedule = old.pointer("/spec/schedule").and_then(Value::as_str).unwrap_or("");
    let allow_tz = old_schedule.contains("TZ");
    let tz = present(new, "/spec/timeZone");
    if let Some(schedule) = new
        .pointer("/spec/schedule")
        .and_then(Value::as_str)
        .filter(|s| s.contains("TZ"))
    {
        if allow_tz && tz.is_some() {
            causes.push(Cause::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz {
            causes.push(Cause::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if present(old, "/spec/timeZone") != tz {
        causes.extend(time_zone_causes(tz));
    }
    causes
}

/// The propagation a delete that names none gets: a batch/v1 Job's default garbage collection
/// policy is `OrphanDependents` (for compatibility), unless its finalizers already say how its
/// dependents go. `None` for everything else.
pub(super) fn default_propagation(res: &Resource, obj: &Value) -> Option<Propagation> {
    if !is_jobs(res) {
        return None;
    }
    let decided = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == "orphan" || f == "foregroundDeletion"));
    (!decided).then_some(Propagation::Orphan)
}

/// The warning of a batch/v1 Job delete (or collection delete) whose options name no policy.
pub(super) fn delete_warning(ctx: &Ctx, verb: &str) -> Option<&'static str> {
    if !matches!(verb, "delete" | "deletecollection") || !is_jobs(&ctx.res) || ctx.version() != "v1" {
        return None;
    }
    let options = super::delete::options_value(ctx).ok()?;
    let named = |key: &str| options.get(key).is_some_and(|v| !v.is_null());
    (!named("propagationPolicy") && !named("orphanDependents")).then_some(ORPHAN_WARNING)
}

/// Parses a schedule as `cron.ParseStandard` (robfig/cron v3) does: five fields or a descriptor,
/// an optional `TZ=`/`CRON_TZ=` prefix. `Err` carries the parser's message.
pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let end = spec.find(' ').unwrap_or(spec.len());
        let name = spec.get(eq + 1..end).unwrap_or("");
        if !(name.is_empty() || known_time_zone(name)) {
            return Err(format!("provided bad location {name}: unknown time zone {name}"));
        }
        spec = spec.get(end..).unwrap_or("").trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    // minute, hour, day of month, month, day of week.
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u64, u64, &[&str], u64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            cron_range(expr, min, max, names, first)?;
        }
    }
    Ok(())
}

/// `getRange`: `*`, `?`, `n`, `a-b`, each with an optional `/step`.
fn cron_range(expr: &str, min: u64, max: u64, names: &[&str], first: u64) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (min, max)
    } else {
        let start = int_or_name(low_and_high[0], names, first)?;
        match low_and_high.len() {
            1 => (start, start),
            2 => (start, int_or_name(low_and_high[1], names, first)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            if low_and_high.len() == 1 {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn int_or_name(expr: &str, names: &[&str], first: u64) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    match names.iter().position(|n| *n == lower) {
        Some(i) => Ok(first + i as u64),
        None => cron_int(expr),
    }
}

/// `mustParseInt`, with `strconv.Atoi`'s errors.
fn cron_int(expr: &str) -> Result<u64, String> {
    let quoted = crate::schema::go_quote(expr);
    let num: i64 = expr.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("failed to parse int from {expr}: strconv.Atoi: parsing {quoted}: {why}")
    })?;
    u64::try_from(num).map_err(|_| format!("negative number ({num}) not allowed: {expr}"))
}

/// `parseDescriptor`: the `@` macros and `@every <duration>`.
fn parse_descriptor(spec: &str) -> Result<(), String> {
    match spec {
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => Ok(()),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => go_duration(d).map_err(|e| format!("failed to parse duration {spec}: {e}")),
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
    }
}

/// Checks a duration as Go's `time.ParseDuration` reads it (`1h30m`, `1.5s`, `-2m`).
fn go_duration(s: &str) -> Result<(), String> {
    let quoted = crate::schema::go_quote(s);
    let invalid = || format!("time: invalid duration {quoted}");
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return Ok(());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let int_len = digits(rest);
        let (int, after) = rest.split_at(int_len);
        let (frac_len, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = digits(f);
                (n, &f[n..])
            }
            None => (0, after),
        };
        if int.is_empty() && frac_len == 0 {
            return Err(invalid());
        }
        if !int.is_empty() && int.parse::<u64>().is_err() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {quoted}"));
        }
        if !matches!(unit, "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h") {
            return Err(format!(
                "time: unknown unit {} in duration {quoted}",
                crate::schema::go_quote(unit)
            ));
        }
        rest = next;
    }
    Ok(())
}

/// The status, completions and duration cells of a Job row (`printJob`).
pub(super) fn job_cells(o: &Value) -> Vec<Value> {
    let succeeded = o.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0);
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let time = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    let duration = match (time("/status/startTime"), time("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => super::table::human_duration(jiff::Timestamp::now().duration_since(start).as_secs()),
        (Some(start), Some(end)) => super::table::human_duration(end.duration_since(start).as_secs()),
    };
    let has = |kind: &str| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind && c["status"] == "True"))
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    vec![json!(status), json!(completions), json!(duration)]
}

/// The schedule, time zone, suspend, active and last schedule cells of a CronJob row
/// (`printCronJob`).
pub(super) fn cronjob_cells(o: &Value) -> Vec<Value> {
    let text = |p: &str| o.pointer(p).and_then(Value::as_str);
    let last = match text("/status/lastScheduleTime").and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => super::table::human_duration(jiff::Timestamp::now().duration_since(t).as_secs()),
        None => "<none>".into(),
    };
    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    vec![
        json!(text("/spec/schedule").unwrap_or("")),
        json!(text("/spec/timeZone").unwrap_or("<none>")),
        json!(suspend),
        json!(
            o.pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        json!(last),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn res(plural: &str) -> std::sync::Arc<Resource> {
        match Registry::builtin().get("batch", "v1", plural) {
            Some(r) => r.clone(),
            None => panic!("no {plural}"),
        }
    }

    #[test]
    fn a_job_gets_its_defaults_selector_and_pod_labels() {
        let mut job = json!({ "metadata": { "name": "pi", "uid": "u-1" },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "perl:5" }] } } } });
        on_create(&res("jobs"), &mut job);
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["selector"], json!({ "matchLabels": { CONTROLLER_UID: "u-1" } }));
        let labels = json!({ CONTROLLER_UID: "u-1", JOB_NAME: "pi", "controller-uid": "u-1", "job-name": "pi" });
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(job["metadata"]["labels"], labels);
        assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(validate(&res("jobs"), &job, false).is_empty());
    }

    #[test]
    fn schedules_parse_as_robfig_cron_parses_them() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 jan-mar mon",
            "@hourly",
            "@every 1h30m",
            "TZ=UTC 0 * * * *",
            "1,,2 * * * ?",
        ] {
            assert_eq!(parse_standard(ok), Ok(()), "{ok}");
        }
        let err = |s: &str| parse_standard(s).err().unwrap_or_default();
        assert_eq!(err("not a cron"), "expected exactly 5 fields, found 3: [not a cron]");
        assert_eq!(err("61 * * * *"), "end of range (61) above maximum (59): 61");
        assert_eq!(
            err("x * * * *"),
            r#"failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(err("*/0 * * * *"), "step of range should be a positive number: */0");
        assert_eq!(
            err("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(err("@often"), "unrecognized descriptor: @often");
        assert_eq!(
            err("@every 5"),
            r#"failed to parse duration @every 5: time: missing unit in duration "5""#
        );
        assert_eq!(err("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
    }

    #[test]
    fn job_rows_read_as_kubectl_prints_them() {
        let job = json!({ "spec": { "completions": 3 }, "status": { "succeeded": 1 } });
        assert_eq!(job_cells(&job), [json!("Running"), json!("1/3"), json!("")]);
        let cj = json!({ "spec": { "schedule": "@hourly", "suspend": true } });
        assert_eq!(
            cronjob_cells(&cj),
            [
                json!("@hourly"),
                json!("<none>"),
                json!("True"),
                json!(0),
                json!("<none>")
            ]
        );
    }
}
