//! Table-driven admission cases from `tests/fixtures/*.json`, answered by sample validators and
//! defaulters over the in-process call API.
//!
//! Each fixture file holds `description`, the `path` to call, the AdmissionReview `review` and
//! the `expect`ed answer: `allowed`, and optionally `code`, `reason`, `message` (a substring),
//! `warnings` (exact), `auditAnnotations` (exact), `patch` (the exact JSON patch operations, or
//! `null` for none) and `patched` (the object once the patch is applied).

use std::borrow::Cow;
use std::path::Path;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kdev_webhook::Server;
use kdev_webhook::admission::{Defaulter, Request, Validator, Verdict};
use kdev_webhook::server::InProcess;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The sidecar every pod gets.
pub const SIDECAR: &str = "proxy";

/// Images ending in `:latest`, or without a tag or digest, among `spec`'s containers.
fn unpinned(spec: &PodSpec) -> Option<&str> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.as_deref())
        .find(|image| {
            let last = image.rsplit('/').next().unwrap_or(image);
            image.ends_with(":latest") || !(last.contains(':') || last.contains('@'))
        })
}

fn labels(meta: &ObjectMeta) -> impl Iterator<Item = (&String, &String)> {
    meta.labels.iter().flatten()
}

fn is_protected(meta: &ObjectMeta) -> bool {
    labels(meta).any(|(k, v)| k == "protected" && v == "true")
}

/// No `:latest` (or untagged) images; the `tier` label is immutable; protected objects cannot be
/// deleted.
pub struct NoLatest;

fn check_images(spec: Option<&PodSpec>) -> Verdict {
    match spec.and_then(unpinned) {
        Some(image) => Verdict::deny(format!("image {image:?} is not pinned: use a tag other than :latest"))
            .with_warning("pin images by tag or digest"),
        None => Verdict::allow(),
    }
}

fn check_tier(old: &ObjectMeta, new: &ObjectMeta) -> Verdict {
    let tier = |m: &ObjectMeta| m.labels.as_ref().and_then(|l| l.get("tier")).cloned();
    if tier(old) != tier(new) {
        Verdict::deny("the tier label is immutable")
            .with_code(422)
            .with_reason("Invalid")
    } else {
        Verdict::allow()
    }
}

fn check_delete(meta: &ObjectMeta, req: &Request) -> Verdict {
    if is_protected(meta) {
        Verdict::deny(format!("{} is protected", meta.name.as_deref().unwrap_or("the object")))
    } else {
        Verdict::allow().with_audit_annotation("deleted-by", req.user_info.username.clone().unwrap_or_default())
    }
}

fn dry_run_note(verdict: Verdict, req: &Request) -> Verdict {
    if req.dry_run {
        verdict.with_audit_annotation("dry-run", "true")
    } else {
        verdict
    }
}

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, req: &Request, pod: &Pod) -> Verdict {
        dry_run_note(check_images(pod.spec.as_ref()), req)
    }

    async fn validate_update(&self, req: &Request, old: &Pod, new: &Pod) -> Verdict {
        let verdict = check_tier(&old.metadata, &new.metadata);
        if !verdict.is_allowed() {
            return verdict;
        }
        dry_run_note(check_images(new.spec.as_ref()), req)
    }

    async fn validate_delete(&self, req: &Request, pod: &Pod) -> Verdict {
        check_delete(&pod.metadata, req)
    }
}

impl Validator<Deployment> for NoLatest {
    async fn validate_create(&self, req: &Request, d: &Deployment) -> Verdict {
        let spec = d.spec.template.spec.as_ref();
        dry_run_note(check_images(spec), req)
    }

    async fn validate_update(&self, req: &Request, old: &Deployment, new: &Deployment) -> Verdict {
        let verdict = check_tier(&old.metadata, &new.metadata);
        if !verdict.is_allowed() {
            return verdict;
        }
        let replicas = new.spec.replicas.unwrap_or(1);
        let verdict = self.validate_create(req, new).await;
        if verdict.is_allowed() && replicas == 0 {
            verdict.with_warning("scaled to zero replicas")
        } else {
            verdict
        }
    }

    async fn validate_delete(&self, req: &Request, d: &Deployment) -> Verdict {
        check_delete(&d.metadata, req)
    }
}

/// Defaults: a `team` label on everything; pods also get the `proxy` sidecar.
pub struct Defaults;

fn default_labels(meta: &mut ObjectMeta, req: &Request) {
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.entry("team".into()).or_insert_with(|| "platform".into());
    if req.dry_run {
        // What a dry run must not do is side effects outside the object; mutating it is fine
        // and shows the caller what a real request would get.
        labels.insert("dry-run".into(), "true".into());
    }
}

impl Defaulter<Pod> for Defaults {
    async fn set_defaults(&self, req: &Request, pod: &mut Pod) -> Verdict {
        default_labels(&mut pod.metadata, req);
        let Some(spec) = pod.spec.as_mut() else {
            return Verdict::deny("a pod needs a spec")
                .with_code(422)
                .with_reason("Invalid");
        };
        if spec.containers.iter().any(|c| c.name == SIDECAR) {
            return Verdict::allow();
        }
        spec.containers.push(Container {
            name: SIDECAR.into(),
            image: Some("envoyproxy/envoy:v1.31.0".into()),
            args: Some(vec!["--config-path".into(), "/etc/envoy/envoy.yaml".into()]),
            ..Container::default()
        });
        Verdict::allow().with_warning("sidecar proxy injected")
    }
}

impl Defaulter<Deployment> for Defaults {
    async fn set_defaults(&self, req: &Request, d: &mut Deployment) -> Verdict {
        default_labels(&mut d.metadata, req);
        d.spec.replicas.get_or_insert(2);
        Verdict::allow()
    }
}

/// A custom resource: `example.com/v1` `Backup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    /// Written by the server (apiVersion and kind).
    #[serde(flatten)]
    pub types: Option<TypeMeta>,
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: BackupSpec,
}

/// `apiVersion` and `kind`, kept through a round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// `example.com/v1`.
    pub api_version: String,
    /// `Backup`.
    pub kind: String,
}

/// A backup's schedule and retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule, five fields.
    pub schedule: String,
    /// Days to keep backups (defaulted to 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

impl kube_core::Resource for Backup {
    type DynamicType = ();
    type Scope = kube_core::NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        "Backup".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "example.com".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "backups".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn check_backup(b: &Backup) -> Verdict {
    let fields = b.spec.schedule.split_whitespace().count();
    if fields != 5 {
        return Verdict::deny(format!(
            "spec.schedule {:?} must have 5 fields, has {fields}",
            b.spec.schedule
        ))
        .with_code(422)
        .with_reason("Invalid");
    }
    match b.spec.retention_days {
        Some(0) => Verdict::deny("spec.retentionDays must be at least 1")
            .with_code(422)
            .with_reason("Invalid"),
        Some(days) if days > 365 => Verdict::allow().with_warning("retention over a year"),
        _ => Verdict::allow(),
    }
}

impl Validator<Backup> for NoLatest {
    async fn validate_create(&self, req: &Request, b: &Backup) -> Verdict {
        dry_run_note(check_backup(b), req)
    }

    async fn validate_update(&self, req: &Request, old: &Backup, new: &Backup) -> Verdict {
        if old.spec.schedule != new.spec.schedule && is_protected(&new.metadata) {
            return Verdict::deny("the schedule of a protected backup cannot change");
        }
        dry_run_note(check_backup(new), req)
    }

    async fn validate_delete(&self, req: &Request, b: &Backup) -> Verdict {
        check_delete(&b.metadata, req)
    }
}

impl Defaulter<Backup> for Defaults {
    async fn set_defaults(&self, req: &Request, b: &mut Backup) -> Verdict {
        default_labels(&mut b.metadata, req);
        b.spec.retention_days.get_or_insert(7);
        Verdict::allow()
    }
}

/// Every sample webhook, for in-process calls.
pub fn webhooks() -> InProcess {
    Server::builder()
        .validating::<Pod, _>("/validate-pods", NoLatest)
        .mutating::<Pod, _>("/mutate-pods", Defaults)
        .validating::<Deployment, _>("/validate-deployments", NoLatest)
        .mutating::<Deployment, _>("/mutate-deployments", Defaults)
        .validating::<Backup, _>("/validate-backups", NoLatest)
        .mutating::<Backup, _>("/mutate-backups", Defaults)
        .build_in_process()
        .unwrap()
}

/// Runs one fixture; a description of every mismatch.
async fn run(webhooks: &InProcess, name: &str, fixture: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{name}: {what}"));
        }
    };
    let path = fixture["path"].as_str().expect("fixture has a path");
    let review = &fixture["review"];
    let expect = &fixture["expect"];
    let answer = webhooks.call(path, serde_json::to_vec(review).unwrap().into()).await;
    let status = answer.status();
    let body: Value = serde_json::from_slice(answer.body()).expect("the answer is JSON");
    if status != 200 {
        return vec![format!("{name}: HTTP {status}: {body}")];
    }
    let response = &body["response"];
    check(body["kind"] == "AdmissionReview", format!("kind {}", body["kind"]));
    check(
        response["uid"] == review["request"]["uid"],
        format!("uid {} echoed as {}", review["request"]["uid"], response["uid"]),
    );
    check(
        response["allowed"] == expect["allowed"],
        format!("allowed {} expected {}", response["allowed"], expect["allowed"]),
    );
    if let Some(code) = expect.get("code") {
        check(
            &response["status"]["code"] == code,
            format!("code {} expected {code}", response["status"]["code"]),
        );
    }
    if let Some(reason) = expect.get("reason") {
        check(
            &response["status"]["reason"] == reason,
            format!("reason {} expected {reason}", response["status"]["reason"]),
        );
    }
    if let Some(message) = expect.get("message").and_then(Value::as_str) {
        let got = response["status"]["message"].as_str().unwrap_or("");
        check(got.contains(message), format!("message {got:?} lacks {message:?}"));
    }
    for field in ["warnings", "auditAnnotations"] {
        if let Some(expected) = expect.get(field) {
            let got = response.get(field).cloned().unwrap_or(Value::Null);
            let empty = |v: &Value| {
                v.is_null() || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|o| o.is_empty())
            };
            check(
                &got == expected || (empty(&got) && empty(expected)),
                format!("{field} {got} expected {expected}"),
            );
        }
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        Some(b64) => {
            check(
                response["patchType"] == "JSONPatch",
                format!("patchType {}", response["patchType"]),
            );
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            Some(serde_json::from_slice::<Value>(&bytes).unwrap())
        }
        None => None,
    };
    if let Some(expected) = expect.get("patch") {
        let got = patch.clone().unwrap_or(Value::Null);
        check(&got == expected, format!("patch {got} expected {expected}"));
    }
    if let Some(expected) = expect.get("patched") {
        let mut object = review["request"]["object"].clone();
        if let Some(ops) = &patch {
            let ops: json_patch::Patch = serde_json::from_value(ops.clone()).unwrap();
            json_patch::patch(&mut object, &ops).unwrap();
        }
        check(
            &object == expected,
            format!("patched object {object} expected {expected}"),
        );
    }
    problems
}

#[tokio::test]
async fn every_fixture_gets_its_expected_answer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "fixtures missing from {}", dir.display());
    let webhooks = webhooks();
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let fixture: Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let request = &fixture["review"]["request"];
        seen.insert((
            request["kind"]["kind"].as_str().unwrap_or("").to_string(),
            request["operation"].as_str().unwrap_or("").to_string(),
        ));
        if request["dryRun"] == true {
            seen.insert(("dryRun".into(), String::new()));
        }
        problems.extend(run(&webhooks, &name, &fixture).await);
    }
    assert!(
        problems.is_empty(),
        "{} fixture mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The table covers every kind and operation it claims to.
    for kind in ["Pod", "Deployment", "Backup"] {
        for op in ["CREATE", "UPDATE", "DELETE"] {
            assert!(
                seen.contains(&(kind.to_string(), op.to_string())),
                "no {kind} {op} fixture"
            );
        }
    }
    assert!(
        seen.contains(&("dryRun".to_string(), String::new())),
        "no dryRun fixture"
    );
}
