//! CustomResourceDefinitions: once written they are established and their custom resources are
//! served; deleting one deletes its custom resources first
//! ([CRDs](https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/)).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::delete::{self, Deletion, Propagation};
use crate::meta;
use crate::registry::{Conversion, CrdVersion, PrinterColumn, Resource, ScalePaths, version_priority};
use crate::schema::Schema;
use crate::store::{State, Stored};

/// The finalizer kube-apiserver puts on every CRD so its custom resources are deleted first.
pub(crate) const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const CRD_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// kube-apiserver's warning for a deprecated version without a `deprecationWarning`
/// (`defaultDeprecationWarning`): it names the highest-priority version served, not deprecated
/// and above the deprecated one, when there is one.
fn default_deprecation_warning(group: &str, kind: &str, deprecated: &str, versions: &[Value]) -> String {
    let message = format!("{group}/{deprecated} {kind} is deprecated");
    let replacement = versions
        .iter()
        .filter(|v| v["served"] == true && v["deprecated"] != true)
        .filter_map(|v| v["name"].as_str())
        .filter(|name| kube_aware_cmp(name, deprecated).is_gt())
        .max_by(|a, b| kube_aware_cmp(a, b));
    match replacement {
        Some(name) => format!("{message}; use {group}/{name} {kind}"),
        None => message,
    }
}

/// `CompareKubeAwareVersionStrings`: `Greater` when `a` ranks above `b`. Kube-like versions
/// (`v2`, `v1beta1`) rank by [`version_priority`] and above any other name; other names rank
/// alphabetically, the earlier above.
fn kube_aware_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (pa, pb) = (version_priority(a), version_priority(b));
    if pa.0 == 0 && pb.0 == 0 { b.cmp(a) } else { pa.cmp(&pb) }
}

/// The served resource a CRD defines.
fn resource_of(crd: &Value) -> Option<Resource> {
    let spec = crd.get("spec")?;
    let group = spec["group"].as_str()?.to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str()?.to_string();
    let kind = names["kind"].as_str()?.to_string();
    let versions = spec["versions"].as_array()?;
    let mut served: Vec<&Value> = versions.iter().filter(|v| v["served"] == true).collect();
    served.sort_by_key(|v| std::cmp::Reverse(version_priority(v["name"].as_str().unwrap_or(""))));
    let storage_version = versions.iter().find(|v| v["storage"] == true)?["name"]
        .as_str()?
        .to_string();
    let storage_def = versions.iter().find(|v| v["storage"] == true)?;
    let mixed_storage = str_list(&crd["status"]["storedVersions"])
        .iter()
        .any(|v| *v != storage_version);
    let sub = |v: &Value, name: &str| {
        v.pointer(&format!("/subresources/{name}"))
            .is_some_and(|s| !s.is_null())
    };
    let status = versions.iter().any(|v| sub(v, "status"));
    let scale = versions
        .iter()
        .find_map(|v| v.pointer("/subresources/scale"))
        .filter(|s| s.is_object())
        .map(|s| ScalePaths {
            spec_replicas: s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .trim_start_matches('.')
                .into(),
            status_replicas: s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .trim_start_matches('.')
                .into(),
            label_selector: s["labelSelectorPath"]
                .as_str()
                .map(|p| p.trim_start_matches('.').to_string()),
            selector_is_object: false,
        });
    let mut per_version = BTreeMap::new();
    for v in &served {
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .and_then(|s| Schema::compile(s).ok())
            .map(Arc::new);
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or("").into(),
                        type_: c["type"].as_str().unwrap_or("string").into(),
                        format: c["format"].as_str().unwrap_or("").into(),
                        description: c["description"].as_str().unwrap_or("").into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or("").into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let deprecation_warning = (v["deprecated"] == true).then(|| {
            v["deprecationWarning"].as_str().map(String::from).unwrap_or_else(|| {
                default_deprecation_warning(&group, &kind, v["name"].as_str().unwrap_or(""), versions)
            })
        });
        let apply = Arc::new(apply_schema(
            v.pointer("/schema/openAPIV3Schema").unwrap_or(&Value::Null),
        ));
        let version = CrdVersion {
            schema,
            columns,
            deprecation_warning,
            apply,
        };
        per_version.insert(v["name"].as_str().unwrap_or("").to_string(), version);
    }
    Some(Resource {
        group: group.clone(),
        versions: served
            .iter()
            .filter_map(|v| v["name"].as_str())
            .map(String::from)
            .collect(),
        storage_version,
        singular: names["singular"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| kind.to_ascii_lowercase()),
        list_kind: names["listKind"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List")),
        short_names: str_list(&names["shortNames"]),
        categories: str_list(&names["categories"]),
        namespaced: spec["scope"] != "Cluster",
        status,
        scale,
        binding: false,
        review: false,
        generation: true,
        name_rule: meta::NameRule::Subdomain,
        storage: format!("{group}/{plural}"),
        conversion: Conversion::None,
        conversion_webhook: spec
            .get("conversion")
            .filter(|c| c["strategy"] == "Webhook")
            .map(|c| Arc::new(c.clone())),
        mixed_storage,
        crd: Some(per_version),
        selectable_fields: storage_def["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default(),
        strategic: false,
        plural,
        kind,
    })
}

/// Server-side apply's view of a CRD version's schema: which lists are sets or maps (and by
/// which keys) and which maps are atomic.
fn apply_schema(openapi: &Value) -> crate::patch::Schema {
    use crate::patch::{ListKey, ListType};
    fn walk(node: &Value, path: &str, out: &mut crate::patch::Schema) {
        let list = match node["x-kubernetes-list-type"].as_str() {
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map(
                str_list(&node["x-kubernetes-list-map-keys"])
                    .into_iter()
                    .map(|name| ListKey { name, default: None })
                    .collect(),
            )),
            _ => None,
        };
        if let Some(list) = list {
            *out = std::mem::take(out).with_list(path, list);
        }
        if node["x-kubernetes-map-type"] == "atomic" || node["x-kubernetes-struct-type"] == "atomic" {
            *out = std::mem::take(out).with_atomic_map(path);
        }
        let entries = node["x-kubernetes-preserve-unknown-fields"] == true
            || matches!(&node["additionalProperties"], Value::Object(_) | Value::Bool(true));
        if entries {
            let mut fields: Vec<String> = node["properties"]
                .as_object()
                .map(|props| props.keys().cloned().collect())
                .unwrap_or_default();
            if path.is_empty() {
                // A custom resource always has these, whatever its schema says.
                fields.extend(["apiVersion", "kind", "metadata"].map(String::from));
            }
            *out = std::mem::take(out).with_map_entries(path, fields);
        }
        if let Some(props) = node["properties"].as_object() {
            for (k, child) in props {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, &p, out);
            }
        }
        if node["items"].is_object() {
            walk(&node["items"], path, out);
        }
    }
    let mut out = crate::patch::Schema::custom();
    walk(openapi, "", &mut out);
    out
}

/// The names every CRD of `group` has been granted (its `status.acceptedNames`): resource
/// names (plural, singular, short names) and kinds (kind, list kind), as the naming controller
/// of kube-apiserver collects them, the CRD being checked included.
fn names_in_use(st: &State, group: &str) -> (Vec<String>, Vec<String>) {
    let (mut resources, mut kinds) = (Vec::new(), Vec::new());
    for crd in st.list(CRD_STORAGE, None) {
        if crd.value["spec"]["group"] != group {
            continue;
        }
        let accepted = &crd.value["status"]["acceptedNames"];
        for key in ["plural", "singular"] {
            resources.extend(accepted[key].as_str().map(String::from));
        }
        resources.extend(str_list(&accepted["shortNames"]));
        for key in ["kind", "listKind"] {
            kinds.extend(accepted[key].as_str().map(String::from));
        }
    }
    (resources, kinds)
}

/// The outcome of checking a CRD's names against its group's.
struct Naming {
    /// The names granted: each requested name that is free or already the CRD's, else the one
    /// granted before.
    accepted: Value,
    /// Why a name was refused (`KindConflict`, ...) and the message; `None` when all were
    /// accepted.
    conflict: Option<(&'static str, String)>,
}

/// kube-apiserver's naming controller (`apiextensions-apiserver/pkg/controller/status`): a name
/// another CRD of the group has been granted is refused, the last conflict found is reported,
/// and the CRD keeps the names it was granted before.
fn check_names(st: &State, crd: &Value) -> Naming {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let (resources, kinds) = names_in_use(st, group);
    // The spec's names, `singular` and `listKind` defaulted on every write (`crd_defaults`).
    let requested = &crd["spec"]["names"];
    let before = &crd["status"]["acceptedNames"];
    let mut accepted = if before.is_object() { before.clone() } else { json!({}) };
    let mut conflict = None;
    let in_use = |name: &str, granted: &Value, used: &[String]| -> Option<String> {
        (granted.as_str() != Some(name) && used.iter().any(|u| u == name))
            .then(|| format!("{name:?} is already in use"))
    };
    let checks: [(&str, &[String], &'static str); 4] = [
        ("plural", &resources, "PluralConflict"),
        ("singular", &resources, "SingularConflict"),
        ("kind", &kinds, "KindConflict"),
        ("listKind", &kinds, "ListKindConflict"),
    ];
    for (key, used, reason) in checks {
        let name = requested[key].as_str().unwrap_or("");
        match in_use(name, &before[key], used) {
            Some(message) => conflict = Some((reason, message)),
            None => accepted[key] = json!(name),
        }
        if key == "singular" {
            // Short names are checked between singular and kind, as kube-apiserver does.
            let wanted = str_list(&requested["shortNames"]);
            let granted = str_list(&before["shortNames"]);
            if wanted != granted {
                let refused: Vec<String> = wanted
                    .iter()
                    .filter(|s| !granted.contains(s))
                    .filter_map(|s| in_use(s, &Value::Null, &resources))
                    .collect();
                match refused.as_slice() {
                    [] => accepted["shortNames"] = json!(wanted),
                    [one] => conflict = Some(("ShortNamesConflict", one.clone())),
                    many => conflict = Some(("ShortNamesConflict", format!("[{}]", many.join(", ")))),
                }
            }
        }
    }
    match requested.get("categories") {
        Some(c) if !c.is_null() => accepted["categories"] = c.clone(),
        _ => {
            if let Some(a) = accepted.as_object_mut() {
                a.remove("categories");
            }
        }
    }
    Naming { accepted, conflict }
}

/// After a CRD is created or updated: add the clean-up finalizer, check its names against the
/// other CRDs of its group, mark it Established once they are accepted, record the stored
/// version, and serve its resource under the names accepted; then settle the group's names.
pub(crate) fn on_written(st: &mut State, stored: &Arc<Stored>) {
    establish(st, stored);
    let group = stored.value["spec"]["group"].as_str().unwrap_or("").to_string();
    settle_names(st, &group);
}

/// Checks again, until nothing changes, every CRD of `group` with a name refused: a write or a
/// removal may have freed names, and a CRD granted a new name may free an old one in turn (its
/// own old singular, say). kube-apiserver's naming controller requeues the group's CRDs after
/// every change the same way. Each round grants at least one name or ends, so it ends.
fn settle_names(st: &mut State, group: &str) {
    for _ in 0..64 {
        let refused: Vec<Arc<Stored>> = st
            .list(CRD_STORAGE, None)
            .into_iter()
            .filter(|c| c.value["spec"]["group"] == group)
            .filter(|c| c.value.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|c| {
                c.value["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "NamesAccepted" && c["status"] == "False")
                })
            })
            .collect();
        let mut changed = false;
        for crd in refused {
            let before = crd.value["status"]["acceptedNames"].clone();
            establish(st, &crd);
            let name = crd.value["metadata"]["name"].as_str().unwrap_or("");
            let after = st
                .get(CRD_STORAGE, "", name)
                .map(|c| c.value["status"]["acceptedNames"].clone());
            changed |= after.is_some_and(|a| a != before);
        }
        if !changed {
            return;
        }
    }
}

fn establish(st: &mut State, stored: &Arc<Stored>) {
    let crd = &stored.value;
    let naming = check_names(st, crd);
    let was_established = crd["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
    let established = was_established || naming.conflict.is_none();
    // The resource is served under the names accepted, which may be older than the spec's.
    let mut served_as = crd.clone();
    if let Some(names) = served_as.pointer_mut("/spec/names") {
        *names = naming.accepted.clone();
    }
    let res = if established { resource_of(&served_as) } else { None };
    if established && res.is_none() {
        return;
    }
    let mut v = crd.clone();
    let now = meta::now();
    // Recorded by the write itself (`PrepareForCreate`, `PrepareForUpdate`); whatever a status
    // write set is kept, as kube-apiserver keeps it.
    let stored_versions = v["status"]["storedVersions"].clone();
    let condition = |ty: &str, status: &str, reason: &str, message: &str| {
        let prev = crd["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == ty && c["status"] == status))
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from));
        json!({ "type": ty, "status": status, "lastTransitionTime": prev.unwrap_or_else(|| now.clone()),
                "reason": reason, "message": message })
    };
    let names_accepted = match &naming.conflict {
        None => condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
        Some((reason, message)) => condition("NamesAccepted", "False", reason, message),
    };
    let established = if established {
        condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        )
    } else {
        condition("Established", "False", "NotAccepted", "not all names are accepted")
    };
    v["status"] = json!({
        "conditions": [names_accepted, established],
        "acceptedNames": naming.accepted,
        "storedVersions": stored_versions,
    });
    if let Some(res) = res {
        // Objects stored before read with the defaults of the storage version's schema now, as
        // kube-apiserver defaults what it reads from etcd.
        if let Some(schema) = res
            .crd
            .as_ref()
            .and_then(|c| c.get(&res.storage_version))
            .and_then(|v| v.schema.clone())
        {
            st.reread(&res.storage, |obj| schema.default(obj));
        }
        st.register(res);
    }
    if v != *crd {
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        st.put(CRD_STORAGE, (String::new(), name), v);
    }
}

/// Deletes every custom resource of a deleting CRD.
pub(crate) fn delete_all_instances(st: &mut State, crd: &Value) {
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
    let Some(res) = st.registry.get_any_version(group, plural).cloned() else {
        return;
    };
    for o in st.list(&res.storage, None) {
        let m = &o.value["metadata"];
        let (ns, name) = (
            m["namespace"].as_str().unwrap_or("").to_string(),
            m["name"].as_str().unwrap_or("").to_string(),
        );
        delete::delete_object(st, &res, &ns, &name, Some(Propagation::Background));
    }
}

/// Removes the clean-up finalizer once no custom resource is left.
pub(crate) fn maybe_finish(st: &mut State, crd_res: &Arc<Resource>, crd: Arc<Stored>) -> Deletion {
    let group = crd.value.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = crd
        .value
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let storage = format!("{group}/{plural}");
    if st.count(&storage, None) > 0 {
        return Deletion::Pending(crd);
    }
    let name = crd
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    delete::remove_finalizer(st, crd_res, &(String::new(), name), CLEANUP_FINALIZER)
}

/// After any removal: a removed CRD stops being served; the last custom resource of a
/// deleting CRD lets the CRD go.
pub(crate) fn after_remove(st: &mut State, storage: &str, last: &Arc<Stored>) {
    if storage == CRD_STORAGE {
        let group = last.value.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
        let plural = last
            .value
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        let cr_storage = format!("{group}/{plural}");
        st.unregister(group, plural);
        st.drop_table(&cr_storage);
        // Its names are free now.
        let group = group.to_string();
        settle_names(st, &group);
        return;
    }
    let Some((group, plural)) = storage.split_once('/') else {
        return;
    };
    if group.is_empty() || st.count(storage, None) > 0 {
        return;
    }
    let is_crd = st
        .registry
        .get_any_version(group, plural)
        .is_some_and(|r| r.crd.is_some());
    let Some(crd) = st.get(CRD_STORAGE, "", &format!("{plural}.{group}")).cloned() else {
        return;
    };
    if is_crd
        && crd.value.pointer("/metadata/deletionTimestamp").is_some()
        && let Some(crd_res) = st
            .registry
            .get_any_version("apiextensions.k8s.io", "customresourcedefinitions")
            .cloned()
    {
        maybe_finish(st, &crd_res, crd);
    }
}
