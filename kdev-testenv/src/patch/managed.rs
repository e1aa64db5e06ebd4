//! Server-side apply and `metadata.managedFields` tracking, a subset of
//! [structured-merge-diff](https://github.com/kubernetes-sigs/structured-merge-diff) as wired by
//! [`managedfields`](https://github.com/kubernetes/kubernetes/tree/master/staging/src/k8s.io/apimachinery/pkg/util/managedfields).

use serde_json::{Map, Value, json};

use super::fields::{FieldSet, compare, field, path_string, strip, to_field_set};
use super::merge::{merge_applied, prune};
use super::schema::Schema;
use super::{Error, Result};

/// Manager name kube-apiserver gives the fields of an object first applied without managed fields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Who writes, and through which endpoint: this decides which `metadata.managedFields` entry a write
/// lands in and which fields it can neither own nor conflict on.
///
/// kube-apiserver keys a manager's entry by its name, its operation (and, for updates, the API
/// version) and the subresource the request went through, so a controller applying its status
/// through `/status` and a user applying the spec under the same name own two separate entries.
/// Fields an endpoint's strategy resets (`GetResetFields`: `status` on an object with a status
/// subresource, `spec` on `/status`) are left out of ownership and conflicts.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// The API version of the request, e.g. `apps/v1` (recorded for updates).
    pub api_version: &'a str,
    /// The time to record (RFC 3339).
    pub now: &'a str,
    /// The subresource the request went through (`status`, `scale`), `None` for the object itself.
    pub subresource: Option<&'a str>,
    /// Fields the endpoint resets, as dotted paths: `["status"]`, `["spec", "metadata.labels"]`.
    pub reset: &'a [&'a str],
}

impl<'a> Writer<'a> {
    /// A write by `manager` to the object itself, with nothing reset.
    pub fn new(manager: &'a str, api_version: &'a str, now: &'a str) -> Self {
        Writer {
            manager,
            api_version,
            now,
            subresource: None,
            reset: &[],
        }
    }

    /// This write, through `subresource`.
    pub fn through(self, subresource: Option<&'a str>) -> Self {
        Writer { subresource, ..self }
    }

    /// This write, with `reset` left out of ownership and conflicts.
    pub fn resetting(self, reset: &'a [&'a str]) -> Self {
        Writer { reset, ..self }
    }

    fn owns(&self, entry: &Entry, operation: Operation) -> bool {
        entry.manager == self.manager
            && entry.operation == operation
            && entry.subresource.as_deref() == self.subresource
            && (operation == Operation::Apply || entry.api_version == self.api_version)
    }

    fn entry(&self, operation: Operation, set: FieldSet) -> Entry {
        Entry {
            manager: self.manager.into(),
            operation,
            api_version: self.api_version.into(),
            time: Some(self.now.into()),
            subresource: self.subresource.map(str::to_owned),
            set,
        }
    }

    /// `set` without the fields this endpoint resets.
    fn keep(&self, mut set: FieldSet) -> FieldSet {
        for path in self.reset {
            let path: Vec<String> = path.split('.').map(field).collect();
            set.remove_tree(&path);
        }
        set
    }
}

/// The `operation` of a managed fields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

impl Operation {
    /// The wire spelling, `Apply` or `Update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// A field the applied configuration changes although another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Name of the owning manager.
    pub manager: String,
    /// How the owner got the field.
    pub operation: Operation,
    /// API version of the owner's entry.
    pub api_version: String,
    /// Subresource of the owner's entry, if any.
    pub subresource: Option<String>,
    /// The field, as structured-merge-diff prints it (`.spec.replicas`).
    pub field: String,
}

impl Conflict {
    /// The owner as kube-apiserver prints it: `"mgr"`, or `"mgr" using apps/v1` for updaters.
    pub fn owner(&self) -> String {
        let mut out = json!(self.manager).to_string();
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {}", json!(sub)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The `metav1.StatusCause` kube-apiserver sends: `{"type":"FieldManagerConflict","message":..,"field":..}`.
    pub fn cause(&self) -> Value {
        json!({"type": "FieldManagerConflict", "message": format!("conflict with {}", self.owner()), "field": self.field})
    }
}

/// The `metav1.Status` message of a 409 apply conflict, e.g.
/// `Apply failed with 1 conflict: conflict with "mgr" using apps/v1: .spec.replicas`.
pub fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.field
        );
    }
    let mut owners: Vec<String> = conflicts.iter().map(Conflict::owner).collect();
    owners.sort();
    owners.dedup();
    let mut lines = Vec::new();
    for owner in owners {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(
            conflicts
                .iter()
                .filter(|c| c.owner() == owner)
                .map(|c| format!("- {}", c.field)),
        );
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// The field manager kube-apiserver derives from a `User-Agent` when `fieldManager` is not given: the
/// part before the first `/`, printable characters only, at most 128 bytes.
pub fn default_manager(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix
        .chars()
        .filter(|c| !c.is_control() && (*c == ' ' || !c.is_whitespace()))
    {
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

fn decode_entries(value: Option<&Value>) -> Option<Vec<Entry>> {
    let Some(Value::Array(list)) = value else { return None };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    list.iter()
        .map(|v| {
            Some(Entry {
                manager: text(v, "manager").unwrap_or_default(),
                operation: match v.get("operation")?.as_str()? {
                    "Apply" => Operation::Apply,
                    "Update" => Operation::Update,
                    _ => return None,
                },
                api_version: text(v, "apiVersion").unwrap_or_default(),
                time: text(v, "time"),
                subresource: text(v, "subresource").filter(|s| !s.is_empty()),
                set: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&json!({})))?,
            })
        })
        .collect()
}

/// Writes `entries` (non-empty ones, in kube-apiserver's order) to `metadata.managedFields`.
fn store_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let Value::Object(root) = obj else { return };
    let Value::Object(meta) = root.entry("metadata").or_insert_with(|| Value::Object(Map::new())) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let encoded = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation.as_str()));
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(time) = &e.time {
                m.insert("time".into(), json!(time));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if let Some(sub) = &e.subresource {
                m.insert("subresource".into(), json!(sub));
            }
            Value::Object(m)
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(encoded));
}

/// A copy of `obj` without `metadata.managedFields` (a non-object becomes `{}`).
fn without_managed_fields(obj: Option<&Value>) -> Value {
    let mut out = match obj {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Object(Map::new()),
    };
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

fn group_kind(obj: &Value) -> (&str, &str) {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    (group, obj.get("kind").and_then(Value::as_str).unwrap_or_default())
}

/// Server-side apply of `applied` (from `manager`) onto `live` (`None` to create), with the built-in
/// merge table for the applied `apiVersion`/`kind`; see [`apply_with`].
///
/// # Errors
/// As [`apply_with`].
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
    api_version: &str,
) -> Result<Value> {
    let (group, kind) = group_kind(applied);
    apply_with(
        &Schema::for_kind(group, kind),
        live,
        applied,
        manager,
        force,
        now,
        api_version,
    )
}

/// Server-side apply with explicit list/map information (pass CRD `x-kubernetes-list-type` data here).
///
/// 1. `applied` is merged into `live`: granular maps and keyed lists merge, everything else is replaced.
/// 2. Fields the manager applied last time but not now are removed unless another manager owns them.
/// 3. Fields that change value and belong to another manager are conflicts: an error unless `force`,
///    in which case they move to `manager`.
/// 4. `manager`'s `Apply` entry is set to exactly the applied fields; other managers lose removed fields.
///
/// # Errors
/// [`Error::InvalidApplyConfig`] if `applied` is not an object or sets `metadata.managedFields`;
/// [`Error::Conflicts`] on conflicts without `force`.
pub fn apply_with(
    schema: &Schema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
    api_version: &str,
) -> Result<Value> {
    apply_as(schema, live, applied, force, &Writer::new(manager, api_version, now))
}

/// Server-side apply by `writer`, as [`apply_with`], keyed by the writer's subresource and leaving out
/// the fields its endpoint resets.
///
/// # Errors
/// As [`apply_with`].
pub fn apply_as(schema: &Schema, live: Option<&Value>, applied: &Value, force: bool, writer: &Writer) -> Result<Value> {
    if !applied.is_object() {
        return Err(Error::InvalidApplyConfig(
            "the apply configuration must be an object".into(),
        ));
    }
    if applied.pointer("/metadata/managedFields").is_some_and(|v| !v.is_null()) {
        return Err(Error::InvalidApplyConfig("metadata.managedFields must be nil".into()));
    }
    let live_obj = without_managed_fields(live);
    let mut entries = decode_entries(live.and_then(|l| l.pointer("/metadata/managedFields"))).unwrap_or_default();
    if entries.is_empty() {
        let existing = writer.keep(compare(&json!({}), &live_obj, schema).changed());
        if !existing.is_empty() {
            entries.push(Entry {
                manager: BEFORE_FIRST_APPLY.into(),
                operation: Operation::Update,
                api_version: writer.api_version.into(),
                time: Some(writer.now.into()),
                subresource: None,
                set: existing,
            });
        }
    }
    let mut merged = merge_applied(&live_obj, applied, "", schema);
    let applied_set = writer.keep(strip(&to_field_set(applied, schema)));
    let mine = entries.iter().position(|e| writer.owns(e, Operation::Apply));
    let mut owned = applied_set.clone();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) != mine {
            owned.union(&entry.set);
        }
    }
    if let Some(last) = mine.and_then(|i| entries.get(i)) {
        merged = prune(&merged, &writer.keep(last.set.clone()), &owned, schema);
    }
    let comparison = compare(&live_obj, &merged, schema);
    let changed = writer.keep(comparison.changed());
    let removed = writer.keep(comparison.removed);
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) != mine {
            conflicts.extend(entry.set.intersection(&changed).paths().iter().map(|path| Conflict {
                manager: entry.manager.clone(),
                operation: entry.operation,
                api_version: entry.api_version.clone(),
                subresource: entry.subresource.clone(),
                field: path_string(path),
            }));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(Error::Conflicts(conflicts));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            entry.set = entry.set.difference(&changed).difference(&removed);
        }
    }
    let touched = merged != live_obj;
    match mine.and_then(|i| entries.get_mut(i)) {
        Some(entry) => {
            entry.set = applied_set;
            entry.api_version = writer.api_version.into();
            if touched || entry.time.is_none() {
                entry.time = Some(writer.now.into());
            }
        }
        None => entries.push(writer.entry(Operation::Apply, applied_set)),
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// Records a create/update/patch by `manager` in `new`'s `metadata.managedFields`, with the built-in
/// merge table for `new`'s `apiVersion`/`kind`; see [`record_update_with`].
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, now: &str, api_version: &str) {
    let (group, kind) = group_kind(new);
    let schema = Schema::for_kind(group, kind);
    record_update_with(&schema, old, new, manager, now, api_version);
}

/// Records a create (`old` is `None`), update or non-apply patch by `manager`, as kube-apiserver does:
///
/// 1. The managed fields come from `new`, or from `old` when `new` has none (clients that drop the
///    field do not wipe it); `[{}]` resets them.
/// 2. Every field that `new` adds, changes or removes relative to `old` leaves other managers' sets.
/// 3. `manager`'s `Update` entry for `api_version` gains the added and changed fields and its time
///    becomes `now`; entries left empty are dropped. Server-set fields (`metadata.name`,
///    `resourceVersion`, `uid`, `creationTimestamp`, `generation`, ...) are never recorded.
pub fn record_update_with(
    schema: &Schema,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
    api_version: &str,
) {
    record_update_as(schema, old, new, &Writer::new(manager, api_version, now));
}

/// Records a create, update or non-apply patch by `writer`, as [`record_update_with`], in the
/// writer's entry for its subresource and leaving out the fields its endpoint resets.
pub fn record_update_as(schema: &Schema, old: Option<&Value>, new: &mut Value, writer: &Writer) {
    let requested = new.pointer("/metadata/managedFields");
    let reset =
        matches!(requested, Some(Value::Array(list)) if matches!(list.as_slice(), [only] if *only == json!({})));
    let mut entries = if reset {
        Vec::new()
    } else {
        decode_entries(requested)
            .filter(|e| !e.is_empty())
            .or_else(|| decode_entries(old.and_then(|o| o.pointer("/metadata/managedFields"))))
            .unwrap_or_default()
    };
    let empty = Value::Object(Map::new());
    let comparison = compare(old.filter(|o| o.is_object()).unwrap_or(&empty), new, schema);
    let changed = writer.keep(comparison.changed());
    let removed = writer.keep(comparison.removed);
    for entry in &mut entries {
        entry.set = entry.set.difference(&changed).difference(&removed);
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| writer.owns(e, Operation::Update)) {
            Some(entry) => {
                entry.set.union(&changed);
                entry.time = Some(writer.now.into());
            }
            None => entries.push(writer.entry(Operation::Update, changed)),
        }
    }
    store_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ListKey, ListType};
    use super::*;

    const T0: &str = "2010-10-10T00:00:00Z";
    const T1: &str = "2010-10-10T00:01:00Z";

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}}}})
    }

    fn fields_of<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
            .map(|e| &e["fieldsV1"])
    }

    fn created_by_kubectl_create(replicas: i64) -> Value {
        let mut obj = deployment(replicas);
        record_update(None, &mut obj, "kubectl-create", T0, "apps/v1");
        obj
    }

    #[test]
    fn apply_on_create_matches_the_server_side_apply_docs_configmap() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
            "data": {"key": "some value"}});
        let out = apply(None, &applied, "kubectl", false, T0, "v1").unwrap();
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:test-label": {}}}, "f:data": {"f:key": {}}}}])
        );
        assert_eq!(out["data"], json!({"key": "some value"}));
    }

    #[test]
    fn server_side_apply_of_a_deployment_owns_keyed_items_and_atomic_selector() {
        let out = apply(None, &deployment(1), "kubectl", false, T0, "apps/v1").unwrap();
        let expected = json!({"f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}});
        assert_eq!(fields_of(&out, "kubectl", "Apply"), Some(&expected));
    }

    #[test]
    fn create_records_an_update_entry_with_dot_markers_for_new_maps_and_items() {
        let obj = created_by_kubectl_create(1);
        let expected = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}});
        assert_eq!(fields_of(&obj, "kubectl-create", "Update"), Some(&expected));
        let entry = &obj["metadata"]["managedFields"][0];
        assert_eq!(
            (&entry["apiVersion"], &entry["time"], &entry["fieldsType"]),
            (&json!("apps/v1"), &json!(T0), &json!("FieldsV1"))
        );
    }

    #[test]
    fn applying_a_different_value_for_an_updaters_field_conflicts() {
        let live = created_by_kubectl_create(1);
        let err = apply(Some(&live), &deployment(3), "kubectl", false, T1, "apps/v1").unwrap_err();
        let Error::Conflicts(conflicts) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(err.status_code(), 409);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            conflicts[0].cause(),
            json!({"type": "FieldManagerConflict", "message": "conflict with \"kubectl-create\" using apps/v1", "field": ".spec.replicas"})
        );
        assert_eq!(
            conflicts_message(conflicts),
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let live = created_by_kubectl_create(1);
        let out = apply(Some(&live), &deployment(1), "kubectl", false, T1, "apps/v1").unwrap();
        assert!(
            fields_of(&out, "kubectl", "Apply")
                .and_then(|f| f.pointer("/f:spec/f:replicas"))
                .is_some()
        );
        assert!(
            fields_of(&out, "kubectl-create", "Update")
                .and_then(|f| f.pointer("/f:spec/f:replicas"))
                .is_some()
        );
        let order: Vec<&Value> = out["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["operation"])
            .collect();
        assert_eq!(order, vec!["Apply", "Update"]);
    }

    #[test]
    fn forced_apply_takes_ownership_from_the_other_manager() {
        let live = created_by_kubectl_create(1);
        let out = apply(Some(&live), &deployment(3), "kubectl", true, T1, "apps/v1").unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(
            fields_of(&out, "kubectl", "Apply")
                .and_then(|f| f.pointer("/f:spec/f:replicas"))
                .is_some()
        );
        let theirs = fields_of(&out, "kubectl-create", "Update").unwrap();
        assert!(theirs.pointer("/f:spec/f:replicas").is_none());
        assert!(theirs.pointer("/f:spec/f:template").is_some());
    }

    #[test]
    fn two_appliers_conflict_and_report_each_field() {
        let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": v}}, "data": {"k": v}});
        let live = apply(None, &cm("1"), "alice", false, T0, "v1").unwrap();
        let err = apply(Some(&live), &cm("2"), "bob", false, T1, "v1").unwrap_err();
        let Error::Conflicts(conflicts) = err else {
            panic!("no conflict")
        };
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec![".data.k", ".metadata.labels.x"]);
        assert_eq!(
            conflicts_message(&conflicts),
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.k\n- .metadata.labels.x"
        );
    }

    #[test]
    fn fields_no_longer_applied_are_pruned_unless_someone_else_owns_them() {
        let cm = |labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}});
        let live = apply(
            None,
            &cm(json!({"a": "1", "b": "2", "c": "3"})),
            "alice",
            false,
            T0,
            "v1",
        )
        .unwrap();
        let mut shared = live.clone();
        shared["metadata"]["labels"]["c"] = json!("33");
        record_update(Some(&live), &mut shared, "kubectl-label", T1, "v1");
        let out = apply(Some(&shared), &cm(json!({"a": "1"})), "alice", false, T1, "v1").unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "33"}));
        assert_eq!(
            fields_of(&out, "alice", "Apply"),
            Some(&json!({"f:metadata": {"f:labels": {"f:a": {}}}}))
        );
    }

    #[test]
    fn keyed_list_items_no_longer_applied_are_pruned() {
        let pod = |names: &[&str]| {
            let containers: Vec<Value> = names.iter().map(|n| json!({"name": n, "image": "busybox"})).collect();
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
        };
        let live = apply(None, &pod(&["a", "b"]), "mgr", false, T0, "v1").unwrap();
        let out = apply(Some(&live), &pod(&["a"]), "mgr", false, T1, "v1").unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "a", "image": "busybox"}]));
    }

    #[test]
    fn updates_take_fields_from_appliers_and_keep_managed_fields_clients_drop() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "web", "tier": "fe"}}});
        let live = apply(None, &applied, "kubectl", false, T0, "v1").unwrap();
        let mut labelled = super::super::merge_patch(&live, &json!({"metadata": {"labels": {"app": "api"}}})).unwrap();
        record_update(Some(&live), &mut labelled, "kubectl-label", T1, "v1");
        assert_eq!(
            fields_of(&labelled, "kubectl", "Apply"),
            Some(&json!({"f:metadata": {"f:labels": {"f:tier": {}}}}))
        );
        assert_eq!(
            fields_of(&labelled, "kubectl-label", "Update"),
            Some(&json!({"f:metadata": {"f:labels": {"f:app": {}}}}))
        );

        let mut dropped = labelled.clone();
        dropped["metadata"].as_object_mut().unwrap().remove("managedFields");
        dropped["metadata"]["resourceVersion"] = json!("7");
        record_update(Some(&labelled), &mut dropped, "other", T1, "v1");
        assert_eq!(
            dropped["metadata"]["managedFields"],
            labelled["metadata"]["managedFields"]
        );

        let mut reset = labelled.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&labelled), &mut reset, "other", T1, "v1");
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn custom_resource_lists_are_atomic_unless_the_schema_says_otherwise() {
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["example.com/f"]},
            "spec": {"items": [{"id": 1, "v": "a"}]}});
        let out = apply(None, &cr, "mgr", false, T0, "example.com/v1").unwrap();
        assert_eq!(
            fields_of(&out, "mgr", "Apply"),
            Some(&json!({"f:metadata": {"f:finalizers": {"v:\"example.com/f\"": {}}}, "f:spec": {"f:items": {}}}))
        );
        let schema =
            Schema::for_kind("example.com", "Widget").with_list("spec.items", ListType::Map(vec![ListKey::new("id")]));
        let out = apply_with(&schema, None, &cr, "mgr", false, T0, "example.com/v1").unwrap();
        assert_eq!(
            fields_of(&out, "mgr", "Apply").and_then(|f| f.pointer("/f:spec/f:items")),
            Some(&json!({"k:{\"id\":1}": {".": {}, "f:id": {}, "f:v": {}}}))
        );
    }

    #[test]
    fn invalid_apply_configurations_are_bad_requests() {
        let with_fields =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}});
        for applied in [json!([1]), with_fields] {
            let err = apply(None, &applied, "m", false, T0, "v1").unwrap_err();
            assert_eq!(err.status_code(), 400, "{applied}");
        }
    }

    #[test]
    fn objects_without_managed_fields_get_a_before_first_apply_owner() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}});
        let err = apply(
            Some(&live),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "2"}}),
            "m",
            false,
            T0,
            "v1",
        );
        let Err(Error::Conflicts(conflicts)) = err else {
            panic!("expected a conflict")
        };
        assert_eq!(conflicts[0].manager, "before-first-apply");
    }

    #[test]
    fn a_writer_through_status_owns_neither_its_reset_paths_nor_conflicts_on_them() {
        let schema = Schema::for_kind("apps", "Deployment");
        let live = apply_with(&schema, None, &deployment(1), "user", false, T0, "apps/v1").unwrap();
        let mut status = deployment(5);
        status["metadata"]["labels"] = json!({"app": "other"});
        status["status"] = json!({"replicas": 3});
        let writer = Writer::new("ctl", "apps/v1", T1)
            .through(Some("status"))
            .resetting(&["spec", "metadata.labels"]);
        // The spec and the labels belong to "user", but through /status they are reset: no conflict.
        let out = apply_as(&schema, Some(&live), &status, false, &writer).unwrap();
        let entry = out["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "ctl")
            .unwrap();
        assert_eq!(entry["subresource"], json!("status"));
        assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    }

    #[test]
    fn default_manager_is_the_user_agent_prefix() {
        assert_eq!(
            default_manager("kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b"),
            "kubectl"
        );
        assert_eq!(default_manager("my\u{7}controller"), "mycontroller");
        assert_eq!(default_manager(&"x".repeat(200)).len(), 128);
        assert_eq!(default_manager(&"é".repeat(100)).len(), 128);
    }
}
