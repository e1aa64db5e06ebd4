//! Built-in objects as kube-apiserver decodes them into their Go types: a field the type does not
//! declare is unknown, and is dropped
//! ([field validation](https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation)).
//!
//! The server keeps objects as JSON. To learn which fields a built-in type declares, an object is
//! decoded into its k8s-openapi type (whose `Deserialize` skips what it does not know, as Go's
//! decoder does) and encoded again: a field of the object that the round trip lost is unknown.
//! Only those fields are removed from the object; the round-tripped form is never stored, since
//! it differs from what Go would write in other ways (timestamps, `null`s).
//!
//! The fields a type declares are those of the k8s-openapi version the build enables, so the
//! server knows the API of that Kubernetes version, as a kube-apiserver of that version would.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview};
use k8s_openapi::api::authorization::v1::{LocalSubjectAccessReview, SelfSubjectAccessReview, SubjectAccessReview};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes into a type and encodes again (the object as the type keeps it, or `Null` if it does
/// not encode): `Err((path, why))` naming the first value of the wrong type.
type Decode = fn(&Value) -> Result<Value, (serde_path_to_error::Path, String)>;

fn decode<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, (serde_path_to_error::Path, String)> {
    serde_path_to_error::deserialize::<_, T>(obj)
        .map(|typed| serde_json::to_value(&typed).unwrap_or(Value::Null))
        .map_err(|e| (e.path().clone(), e.into_inner().to_string()))
}

/// Decodes `obj`, a built-in object of `group`/`version`/`kind`, as kube-apiserver's decoder
/// reads it into its Go type, leaving it as Go would write it back: `Err("path: why")` for a
/// value of the wrong type (a string where an integer belongs, a list where a map does), which
/// kube-apiserver refuses. An object that is not built in is left alone. What it found of the
/// type's fields comes back for [`Unknown::paths`] when the object decodes whole.
///
/// k8s-openapi's types are stricter than Go's in three places, where `obj` is read as Go reads
/// it: a number for a quantity (`cpu: 1`, the quantity "1") becomes that string; a `null` in a
/// string map or list becomes ""; and a missing field k8s-openapi requires, which Go leaves at
/// its zero value for validation to judge, ends the check.
pub(crate) fn go_decode(group: &str, version: &str, kind: &str, obj: &mut Value) -> Result<Option<Unknown>, String> {
    let Some(decode) = decode_for(group, version, kind) else {
        return Ok(None);
    };
    quantities_as_strings(obj, false);
    // Each round fixes one value; a bound keeps a pathological object from looping long.
    for _ in 0..256 {
        let (path, why) = match decode(obj) {
            Ok(known) => return Ok(Some(Unknown { known }).filter(|u| !u.known.is_null())),
            Err((_, why)) if why.starts_with("missing field") => return Ok(None),
            Err(e) => e,
        };
        // A null where a string belongs is Go's "".
        match pointer_of(&path).and_then(|p| obj.pointer_mut(&p)) {
            Some(slot) if slot.is_null() && why.contains("expected a string") => *slot = Value::String(String::new()),
            _ => return Err(format!("{path}: {why}")),
        }
    }
    Ok(None)
}

/// Writes each number given for a quantity as its string, as Go writes a quantity back
/// (k8s-openapi reads either). `quantities` says `v` is a map of quantities.
fn quantities_as_strings(v: &mut Value, quantities: bool) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::Number(n) if quantities || key == "sizeLimit" => *child = Value::String(n.to_string()),
                    _ => quantities_as_strings(child, QUANTITY_MAPS.contains(&key.as_str())),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| quantities_as_strings(i, false)),
        _ => {}
    }
}

/// The keys whose values are maps of quantities in the built-in types served.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "overhead", "capacity", "allocatable"];

/// The JSON pointer of a decoding path, when every step is a key or an index.
fn pointer_of(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { .. } | Segment::Unknown => return None,
        }
    }
    Some(out)
}

/// The fields of one object that its built-in type does not declare.
pub(crate) struct Unknown {
    /// The object as its type keeps it: every field the type declares, and nothing else.
    known: Value,
}

impl Unknown {
    /// Decodes `obj`, a built-in object of `group`/`version`/`kind`, into its type. `None` for a
    /// kind that is not built in, or an object that does not decode (a value of the wrong type:
    /// validation has its say on those, and nothing is dropped).
    pub(crate) fn of(group: &str, version: &str, kind: &str, obj: &Value) -> Option<Unknown> {
        let known = decode_for(group, version, kind)?(obj).ok()?;
        Some(Unknown { known }).filter(|u| !u.known.is_null())
    }

    /// The fields of an object that `known` lacks, where `known` is the object as its schema
    /// keeps it (a custom resource pruned by its structural schema).
    pub(crate) fn with_known(known: Value) -> Unknown {
        Unknown { known }
    }

    /// The paths of the unknown fields of `obj` as kube-apiserver's strict decoder names them
    /// (`spec.template.spec.containers[0].bogus`), object keys in sorted order.
    ///
    /// A field sent as `null` is never reported: the round trip cannot tell it from a declared
    /// field left unset.
    pub(crate) fn paths(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        walk(obj, &self.known, &mut Vec::new(), &mut |steps| {
            let mut path = String::new();
            for step in steps {
                match step {
                    Step::Key(key) if path.is_empty() => path.push_str(key),
                    Step::Key(key) => {
                        path.push('.');
                        path.push_str(key);
                    }
                    Step::Index(i) => path.push_str(&format!("[{i}]")),
                }
            }
            out.push(path);
        });
        out
    }

    /// The paths of the unknown fields of `obj` as server-side apply's typed conversion names
    /// them (`.spec.containers[name="c"].bogus`): list items by their keys where `schema`
    /// declares the list a map, as a value in a set, else by index.
    pub(crate) fn apply_paths(&self, obj: &Value, schema: &crate::patch::Schema) -> Vec<String> {
        let mut out = Vec::new();
        walk(obj, &self.known, &mut Vec::new(), &mut |steps| {
            let mut elements = Vec::new();
            let (mut at, mut dotted) = (obj, String::new());
            for step in steps {
                match step {
                    Step::Key(key) => {
                        elements.push(format!("f:{key}"));
                        if !dotted.is_empty() {
                            dotted.push('.');
                        }
                        dotted.push_str(key);
                        at = &at[*key];
                    }
                    Step::Index(i) => {
                        let item = &at[*i];
                        elements.push(match schema.list_type(&dotted) {
                            crate::patch::ListType::Map(keys) => {
                                let fields: serde_json::Map<String, Value> = keys
                                    .iter()
                                    .filter_map(|k| {
                                        let v = item.get(&k.name).or(k.default.as_ref())?;
                                        Some((k.name.clone(), v.clone()))
                                    })
                                    .collect();
                                format!("k:{}", Value::Object(fields))
                            }
                            crate::patch::ListType::Set => format!("v:{item}"),
                            crate::patch::ListType::Atomic => format!("i:{i}"),
                        });
                        at = item;
                    }
                }
            }
            out.push(crate::patch::path_string(&elements));
        });
        out
    }

    /// Removes the unknown fields from `obj` (the fields [`paths`](Self::paths) reports).
    pub(crate) fn drop_from(&self, obj: &mut Value) {
        strip(obj, &self.known);
    }
}

/// `$f::<T>` as a `$ty` for the type `T` of a built-in kind; every kind `Registry::builtin`
/// serves has one (a unit test holds the two lists together).
macro_rules! for_builtin {
    ($group:expr, $version:expr, $kind:expr, $f:ident as $ty:ty) => {
        Some(match ($group, $version, $kind) {
            ("", "v1", "Namespace") => $f::<Namespace> as $ty,
            ("", "v1", "ConfigMap") => $f::<ConfigMap>,
            ("", "v1", "Secret") => $f::<Secret>,
            ("", "v1", "ServiceAccount") => $f::<ServiceAccount>,
            ("", "v1", "Service") => $f::<Service>,
            ("", "v1", "Pod") => $f::<Pod>,
            ("", "v1", "Node") => $f::<Node>,
            ("", "v1", "Event") => $f::<Event>,
            ("apps", "v1", "Deployment") => $f::<Deployment>,
            ("apps", "v1", "ReplicaSet") => $f::<ReplicaSet>,
            ("apps", "v1", "StatefulSet") => $f::<StatefulSet>,
            ("apps", "v1", "DaemonSet") => $f::<DaemonSet>,
            ("batch", "v1", "Job") => $f::<Job>,
            ("batch", "v1", "CronJob") => $f::<CronJob>,
            ("coordination.k8s.io", "v1", "Lease") => $f::<Lease>,
            ("rbac.authorization.k8s.io", "v1", "ClusterRole") => $f::<ClusterRole>,
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => $f::<ClusterRoleBinding>,
            ("rbac.authorization.k8s.io", "v1", "Role") => $f::<Role>,
            ("rbac.authorization.k8s.io", "v1", "RoleBinding") => $f::<RoleBinding>,
            ("authentication.k8s.io", "v1", "TokenReview") => $f::<TokenReview>,
            ("authentication.k8s.io", "v1", "SelfSubjectReview") => $f::<SelfSubjectReview>,
            ("authorization.k8s.io", "v1", "SubjectAccessReview") => $f::<SubjectAccessReview>,
            ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => $f::<SelfSubjectAccessReview>,
            ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => $f::<LocalSubjectAccessReview>,
            ("events.k8s.io", "v1", "Event") => $f::<EventV1>,
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => $f::<CustomResourceDefinition>,
            ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration") => {
                $f::<ValidatingWebhookConfiguration>
            }
            ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration") => {
                $f::<MutatingWebhookConfiguration>
            }
            _ => return None,
        })
    };
}

/// The decoding into the type of a built-in kind.
fn decode_for(group: &str, version: &str, kind: &str) -> Option<Decode> {
    for_builtin!(group, version, kind, decode as Decode)
}

/// One step of a path into an object.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Calls `found` with the path of every non-null field of `sent` that `known` lacks.
fn walk<'a>(sent: &'a Value, known: &Value, at: &mut Vec<Step<'a>>, found: &mut dyn FnMut(&[Step<'a>])) {
    match (sent, known) {
        (Value::Object(sent), Value::Object(known)) => {
            for (key, value) in sent {
                at.push(Step::Key(key));
                match known.get(key) {
                    Some(k) => walk(value, k, at, found),
                    None if !value.is_null() => found(at),
                    None => {}
                }
                at.pop();
            }
        }
        (Value::Array(sent), Value::Array(known)) if sent.len() == known.len() => {
            for (i, (value, k)) in sent.iter().zip(known).enumerate() {
                at.push(Step::Index(i));
                walk(value, k, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Removes from `sent` every non-null field `known` lacks, at any depth.
fn strip(sent: &mut Value, known: &Value) {
    match (sent, known) {
        (Value::Object(sent), Value::Object(known)) => {
            sent.retain(|key, value| match known.get(key) {
                Some(k) => {
                    strip(value, k);
                    true
                }
                None => value.is_null(),
            });
        }
        (Value::Array(sent), Value::Array(known)) if sent.len() == known.len() => {
            for (value, k) in sent.iter_mut().zip(known) {
                strip(value, k);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    fn unknown(obj: &Value) -> Vec<String> {
        let api_version = obj["apiVersion"].as_str().unwrap_or("");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = obj["kind"].as_str().unwrap_or("");
        Unknown::of(group, version, kind, obj)
            .map(|u| u.paths(obj))
            .unwrap_or_default()
    }

    #[test]
    fn every_builtin_kind_has_a_round_trip() {
        for res in Registry::builtin().all() {
            for version in &res.versions {
                assert!(
                    decode_for(&res.group, version, &res.kind).is_some(),
                    "{}/{version} {}",
                    res.group,
                    res.kind
                );
            }
        }
    }

    #[test]
    fn unknown_fields_are_named_by_their_path_with_list_indexes() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "extra": true,
            "metadata": { "name": "p", "labels": { "any.key/ok": "v" }, "bogusMeta": 1 },
            "spec": { "containers": [
                { "name": "a", "image": "i" },
                { "name": "b", "image": "i", "bogus": { "deep": 1 }, "ports": [{ "containerPort": 80, "nmae": "x" }] },
            ] },
            "status": { "phase": "Running", "whatever": "x" },
        });
        assert_eq!(
            unknown(&pod),
            [
                "extra",
                "metadata.bogusMeta",
                "spec.containers[1].bogus",
                "spec.containers[1].ports[0].nmae",
                "status.whatever",
            ]
        );
    }

    #[test]
    fn apply_names_list_items_by_their_keys() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" },
            "spec": { "selector": {}, "template": { "spec": { "containers": [
                { "name": "c", "image": "i", "ports": [{ "containerPort": 80, "bogus": 1 }] },
            ], "tolerations": [{ "key": "k", "bogus": 2 }] } } },
        });
        let u = Unknown::of("apps", "v1", "Deployment", &deployment).expect("decodes");
        let schema = crate::patch::Schema::for_kind("apps", "Deployment");
        assert_eq!(
            u.apply_paths(&deployment, &schema),
            [
                r#".spec.template.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].bogus"#,
                ".spec.template.spec.tolerations[0].bogus",
            ]
        );
    }

    #[test]
    fn drop_removes_exactly_the_unknown_fields_and_keeps_the_rest_as_sent() {
        let mut cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "bogus": 1, "nothing": null,
            "metadata": { "name": "c", "creationTimestamp": "2024-01-01T00:00:00+00:00", "x": [1] },
            "data": { "k": "v" },
        });
        let u = Unknown::of("", "v1", "ConfigMap", &cm).expect("decodes");
        u.drop_from(&mut cm);
        assert_eq!(
            cm,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap", "nothing": null,
                "metadata": { "name": "c", "creationTimestamp": "2024-01-01T00:00:00+00:00" },
                "data": { "k": "v" },
            })
        );
    }

    #[test]
    fn free_form_values_and_maps_have_no_unknown_fields() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": "ws.example.com" },
            "spec": { "group": "example.com", "scope": "Namespaced",
                "names": { "plural": "ws", "kind": "W" },
                "versions": [{ "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": { "spec": { "type": "object", "default": { "anything": [1, { "goes": true }] },
                        "x-kubernetes-int-or-string": false } },
                } } }] },
        });
        assert!(unknown(&crd).is_empty(), "{:?}", unknown(&crd));
        let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s",
            "managedFields": [{ "manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:data": { "f:a": {} } } }] },
            "data": { "a": "Yg==" }, "stringData": { "b": "c" } });
        assert!(unknown(&secret).is_empty(), "{:?}", unknown(&secret));
    }

    #[test]
    fn a_type_error_names_its_path_and_go_leniencies_are_kept() {
        let decode = |group: &str, kind: &str, mut obj: Value| go_decode(group, "v1", kind, &mut obj).map(|_| obj);
        let err = |kind: &str, obj: Value| decode("", kind, obj).err().unwrap_or_default();
        let cm = |data: Value| json!({ "metadata": { "name": "c" }, "data": data });
        assert!(err("ConfigMap", cm(json!(["x"]))).starts_with("data: "));
        assert!(err("ConfigMap", cm(json!({ "port": 8080 }))).starts_with("data.port: "));
        let finalizers = json!({ "metadata": { "name": "c", "finalizers": "x" } });
        assert!(err("ConfigMap", finalizers).starts_with("metadata.finalizers: "));
        // Go reads a null string as "" and a number for a quantity as the quantity.
        assert_eq!(
            decode("", "ConfigMap", cm(json!({ "a": null }))),
            Ok(cm(json!({ "a": "" })))
        );
        let pod = |limits: Value| {
            json!({ "metadata": { "name": "p" }, "spec": { "containers": [
                { "name": "c", "image": "i", "resources": { "limits": limits } }] } })
        };
        assert_eq!(
            decode("", "Pod", pod(json!({ "cpu": 1, "memory": 1.5 }))),
            Ok(pod(json!({ "cpu": "1", "memory": "1.5" })))
        );
        let pod = json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "ports": "80" }] } });
        assert!(err("Pod", pod).starts_with("spec.containers[0].ports: "));
        let lease = json!({ "metadata": { "name": "l" }, "spec": { "renewTime": "garbage" } });
        assert!(decode("coordination.k8s.io", "Lease", lease.clone()).is_err());
        assert_eq!(decode("example.com", "Widget", lease.clone()), Ok(lease));
    }

    #[test]
    fn an_object_that_does_not_decode_or_is_not_built_in_has_none() {
        let bad = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": 5 }, "bogus": 1 });
        assert!(Unknown::of("", "v1", "ConfigMap", &bad).is_none());
        assert!(Unknown::of("example.com", "v1", "Widget", &bad).is_none());
    }
}
