//! Per-type behaviour kube-apiserver's registry strategies give the built-in types: defaults,
//! what counts as a spec change, field checks, and the events.k8s.io/v1 ↔ core/v1 conversion
//! (`pkg/registry/*/strategy.go`, `pkg/apis/*/v1/defaults.go`).

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{event, lease, node_ports, webhook_configuration};
use crate::registry::Resource;
use crate::schema::{Cause, go_json, go_json_strings, go_json_struct};

/// Defaults and status resets applied when an object is created (`PrepareForCreate` + defaulting).
pub(crate) fn on_create(res: &Resource, obj: &mut Value) {
    if res.status
        && res.crd.is_some()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            set_default(obj, &["metadata", "labels", "kubernetes.io/metadata.name"], name);
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            obj["status"] = json!({ "phase": "Active" });
        }
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec_defaults(spec);
                set_default(spec, &["serviceAccountName"], json!("default"));
                let sa = spec["serviceAccountName"].clone();
                set_default(spec, &["serviceAccount"], sa);
            }
            obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
        }
        ("apps", kind @ ("deployments" | "replicasets" | "statefulsets" | "daemonsets")) => {
            if let Some(spec) = obj.get_mut("spec") {
                workload_defaults(kind, spec);
            }
            obj["status"] = json!({});
        }
        ("", "services") => {
            if let Some(spec) = obj.get_mut("spec") {
                service_defaults(spec, None);
                node_ports::tentative(spec);
            }
            obj["status"] = json!({ "loadBalancer": {} });
        }
        ("", "secrets") => set_default(obj, &["type"], json!("Opaque")),
        ("coordination.k8s.io", "leases") => lease::drop_disabled_fields(obj, None),
        ("apiextensions.k8s.io", _) => {
            crd_defaults(obj);
            // `PrepareForCreate`: a CRD's status is the server's (its names are checked anew),
            // and its storage version is the first stored one.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
            record_storage_version(obj);
        }
        ("admissionregistration.k8s.io", plural) => {
            webhook_configuration::set_defaults(obj, plural == "mutatingwebhookconfigurations");
        }
        ("batch", _) => super::batch::on_create(res, obj),
        _ => {}
    }
    if res.group.is_empty() && res.plural == "secrets" {
        fold_string_data(obj);
    }
}

/// Defaults on update: what kube-apiserver re-applies to every write of these types, and what
/// their `PrepareForUpdate` resets given `old`, the object the update replaces.
pub(crate) fn on_update(res: &Resource, obj: &mut Value, old: &Value, sub: Option<&str>) {
    if (res.group.as_str(), res.plural.as_str()) == ("coordination.k8s.io", "leases") {
        lease::drop_disabled_fields(obj, Some(old));
    }
    if let ("apps", kind @ ("deployments" | "replicasets" | "statefulsets" | "daemonsets")) =
        (res.group.as_str(), res.plural.as_str())
        && let Some(spec) = obj.get_mut("spec")
    {
        workload_defaults(kind, spec);
    }
    if res.group.is_empty() && res.plural == "secrets" {
        set_default(obj, &["type"], json!("Opaque"));
        fold_string_data(obj);
    }
    if res.group == "apiextensions.k8s.io" {
        crd_defaults(obj);
        // `PrepareForUpdate`: a new storage version joins status.storedVersions (the status
        // strategy takes the list it is given).
        if sub.is_none() {
            record_storage_version(obj);
        }
    }
    if res.group == "admissionregistration.k8s.io" {
        webhook_configuration::set_defaults(obj, res.plural == "mutatingwebhookconfigurations");
    }
    if res.group == "batch" {
        super::batch::on_update(res, obj);
    }
}

/// The defaults of an apps/v1 workload's spec (`pkg/apis/apps/v1/defaults.go`), on every write
/// as kube-apiserver applies them when it decodes one.
fn workload_defaults(kind: &str, spec: &mut Value) {
    if kind != "daemonsets" {
        set_default(spec, &["replicas"], json!(1));
    }
    set_default(spec, &["revisionHistoryLimit"], json!(10));
    match kind {
        "deployments" => {
            set_default(spec, &["progressDeadlineSeconds"], json!(600));
            set_default(
                spec,
                &["strategy"],
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } }),
            );
        }
        "statefulsets" => {
            set_default(spec, &["podManagementPolicy"], json!("OrderedReady"));
            set_default(
                spec,
                &["updateStrategy"],
                json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }),
            );
        }
        "daemonsets" => set_default(
            spec,
            &["updateStrategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } }),
        ),
        _ => {}
    }
    if let Some(pod) = spec.pointer_mut("/template/spec") {
        pod_spec_defaults(pod);
    }
}

/// A Service's defaults and allocated values: the type, session affinity, IP families and
/// traffic policies, and a tentative cluster IP ([`cluster_ips`](super::cluster_ips) allocates
/// the real one). Node ports are [`node_ports`]' to allocate. On
/// an update, `old` is the Service it replaces: a value the update leaves out is kept from it,
/// as kube-apiserver's `patchAllocatedValues` keeps it (node ports matched by port name, unless
/// the update gives that port to another), and only what is still missing is allocated.
pub(crate) fn service_defaults(spec: &mut Value, old: Option<&Value>) {
    set_default(spec, &["type"], json!("ClusterIP"));
    set_default(spec, &["sessionAffinity"], json!("None"));
    if let Some(old) = old {
        if old["type"] != "ExternalName" && spec["type"] != "ExternalName" {
            for key in ["clusterIP", "clusterIPs"] {
                let missing = spec
                    .get(key)
                    .is_none_or(|v| v.is_null() || v == "" || v.as_array().is_some_and(Vec::is_empty));
                if missing && let Some(kept) = old.get(key) {
                    set_default(spec, &[key], kept.clone());
                }
            }
            super::cluster_ips::normalize_update(spec, old);
        }
        super::cluster_ips::drop_for_external_name(spec, old);
        if node_ports::should_allocate(old) && node_ports::should_allocate(spec) {
            let node_port = |p: &Value| p["nodePort"].as_u64().unwrap_or(0);
            let ports_of = |s: &Value| s["ports"].as_array().cloned().unwrap_or_default();
            let given: Vec<u64> = ports_of(spec).iter().map(node_port).collect();
            // Old node ports by port name (an unnamed port is named "").
            let kept: Vec<(String, u64)> = ports_of(old)
                .iter()
                .map(|p| (p["name"].as_str().unwrap_or("").to_string(), node_port(p)))
                .collect();
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter(|p| node_port(p) == 0) {
                    let name = p["name"].as_str().unwrap_or("");
                    if let Some((_, port)) = kept.iter().find(|(n, _)| n == name)
                        && *port != 0
                        && !given.contains(port)
                        && let Some(m) = p.as_object_mut()
                    {
                        m.insert("nodePort".into(), json!(port));
                    }
                }
            }
        }
    }
    if spec["type"] != "ExternalName" {
        super::cluster_ips::default_ips(spec);
        set_default(spec, &["ipFamilies"], json!(["IPv4"]));
        set_default(spec, &["ipFamilyPolicy"], json!("SingleStack"));
        set_default(spec, &["internalTrafficPolicy"], json!("Cluster"));
    }
    if spec["type"] == "NodePort" || spec["type"] == "LoadBalancer" {
        set_default(spec, &["externalTrafficPolicy"], json!("Cluster"));
    }
    if spec["type"] == "LoadBalancer" {
        set_default(spec, &["allocateLoadBalancerNodePorts"], json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, &["protocol"], json!("TCP"));
            let port = p["port"].clone();
            set_default(p, &["targetPort"], port);
        }
    }
}

/// A CRD's defaults (`SetDefaults_CustomResourceDefinitionSpec`): listKind, singular, the None
/// conversion strategy.
fn crd_defaults(obj: &mut Value) {
    let kind = obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !kind.is_empty()
        && let Some(names) = obj.pointer_mut("/spec/names").and_then(Value::as_object_mut)
    {
        // `SetDefaults_CustomResourceDefinitionSpec` fills an empty name as a missing one.
        for (key, value) in [
            ("listKind", format!("{kind}List")),
            ("singular", kind.to_ascii_lowercase()),
        ] {
            if names.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                names.insert(key.into(), json!(value));
            }
        }
    }
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        set_default(spec, &["conversion"], json!({ "strategy": "None" }));
    }
}

/// Adds a CRD's storage version (the first version marked `storage`) to its
/// `status.storedVersions` when it is not there yet.
fn record_storage_version(crd: &mut Value) {
    let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v["name"].as_str())
        .map(String::from)
    else {
        return;
    };
    let Some(m) = crd.as_object_mut() else {
        return;
    };
    let status = m.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let stored = &mut status["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let Some(list) = stored.as_array_mut()
        && !list.iter().any(|v| v == storage.as_str())
    {
        list.push(json!(storage));
    }
}

pub(super) fn pod_spec_defaults(spec: &mut Value) {
    set_default(spec, &["restartPolicy"], json!("Always"));
    set_default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    set_default(spec, &["schedulerName"], json!("default-scheduler"));
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
    set_default(spec, &["securityContext"], json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or("");
                let tagged = image
                    .rsplit('/')
                    .next()
                    .is_some_and(|last| last.contains(':') || last.contains('@'));
                let policy = if !tagged || image.ends_with(":latest") {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                set_default(c, &["imagePullPolicy"], json!(policy));
                set_default(c, &["terminationMessagePath"], json!("/dev/termination-log"));
                set_default(c, &["terminationMessagePolicy"], json!("File"));
                set_default(c, &["resources"], json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, &["protocol"], json!("TCP"));
                    }
                }
            }
        }
    }
}

/// A Secret's `stringData` is write-only: it is folded into `data`, base64-encoded.
fn fold_string_data(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(d) = data.as_object_mut() {
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            d.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(s)));
        }
    }
}

fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur.is_object() {
            return;
        }
        let Some(m) = cur.as_object_mut() else { return };
        cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
        if !cur.is_object() {
            return;
        }
    }
    if let Some(m) = cur.as_object_mut()
        && m.get(*last).is_none_or(Value::is_null)
    {
        m.insert(last.to_string(), value);
    }
}

/// Whether a write changes what `metadata.generation` counts: everything but metadata (and
/// status, when status is a subresource).
pub(crate) fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let skip = |k: &str| k == "metadata" || k == "apiVersion" || k == "kind" || (res.status && k == "status");
    let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).filter(|k| !skip(k)).collect();
    if keys.into_iter().any(|k| o.get(k) != n.get(k)) {
        return true;
    }
    // A Deployment's annotations are copied to its ReplicaSets, so kube-apiserver's deployment
    // strategy counts them as desired state too (no annotations and `{}` are the same).
    let annotations = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .filter(|a| !a.is_empty())
            .cloned()
    };
    res.group == "apps" && res.plural == "deployments" && annotations(old) != annotations(new)
}

/// Whether a type's metadata is validated by `pkg/apis/core/validation`'s `ValidateObjectMeta`
/// (the core and apps types served here, and events.k8s.io/v1 Events, which
/// `ValidateEventCreate` holds to it), which adds the rule that a finalizer without a domain be
/// a standard one; core/v1 Events, Leases, CRDs, webhook configurations and custom resources
/// use apimachinery's, which does not.
pub(crate) fn core_object_meta(res: &Resource) -> bool {
    res.crd.is_none()
        && (res.group == "apps"
            || res.group == "batch"
            || (res.group.is_empty() && res.plural != "events")
            || res.group == "events.k8s.io")
}

/// Checks built-in types need for the examples and controllers to behave (a small subset of
/// kube-apiserver's validation; see the README's list of differences).
pub(crate) fn validate(res: &Resource, obj: &Value, updating: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let required = |field: &str| Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    };
    match (res.group.as_str(), res.plural.as_str()) {
        // `ValidateNamespace`: each of `spec.finalizers` is a qualified name and, without a
        // domain, a standard one (an update keeps the stored ones).
        ("", "namespaces") if !updating => {
            let finalizers = obj.pointer("/spec/finalizers").and_then(Value::as_array);
            for f in finalizers.into_iter().flatten().filter_map(Value::as_str) {
                causes.extend(crate::meta::finalizer_name_causes(f, "spec.finalizers"));
                causes.extend(crate::meta::kube_finalizer_cause(f, "spec.finalizers"));
            }
        }
        ("", "pods") => {
            if obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                causes.push(required("spec.containers"));
            }
            check_containers(obj.pointer("/spec/containers"), "spec.containers", &mut causes);
        }
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            match obj.pointer("/spec/selector") {
                None | Some(Value::Null) => causes.push(required("spec.selector")),
                Some(sel) => {
                    let labels = obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
                    let ok = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .is_none_or(|ml| ml.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)));
                    if !ok {
                        causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                serde_json::to_string(&labels).unwrap_or_default()
                            ),
                            field: "spec.template.metadata.labels".into(),
                        });
                    }
                }
            }
            check_containers(
                obj.pointer("/spec/template/spec/containers"),
                "spec.template.spec.containers",
                &mut causes,
            );
        }
        ("", "events") => causes.extend(event::validate_core(obj)),
        ("", "services") => causes.extend(super::cluster_ips::validate(&obj["spec"])),
        ("batch", _) => causes.extend(super::batch::validate(res, obj, updating)),
        ("coordination.k8s.io", "leases") => causes.extend(lease::validate(obj)),
        // The strict checks of a create; an update gets `legacyValidateEvent` only, and
        // [`validate_update`]'s comparisons (`ValidateEventUpdate`).
        ("events.k8s.io", "events") if updating => causes.extend(event::validate_core(&v1_event_to_core(obj))),
        ("events.k8s.io", "events") => causes.extend(event::validate_v1_create(&v1_event_to_core(obj))),
        ("admissionregistration.k8s.io", plural) => causes.extend(webhook_configuration::validate(
            obj,
            plural == "mutatingwebhookconfigurations",
        )),
        _ => {}
    }
    causes
}

/// The checks of an update that compare it with the object it replaces (kube-apiserver's
/// `ValidateEventUpdate` for events.k8s.io/v1 Events: a changed series validated again and the
/// immutable fields kept).
pub(crate) fn validate_update(res: &Resource, old: &Value, new: &Value) -> Vec<Cause> {
    // A field's value, with `null` as absent.
    let at = |v: &'_ Value, p: &str| v.pointer(p).filter(|x| !x.is_null()).cloned();
    match (res.group.as_str(), res.plural.as_str()) {
        // `validateUpgradeDowngradeClusterIPs`: a Service's primary cluster IP stays.
        ("", "services") => super::cluster_ips::immutable_cause(&old["spec"], &new["spec"])
            .into_iter()
            .collect(),
        // `ValidateConfigMapUpdate` and `ValidateSecretUpdate`.
        ("", plural @ ("configmaps" | "secrets")) => {
            let mut causes = Vec::new();
            if plural == "secrets" && at(old, "/type") != at(new, "/type") {
                let kind = new["type"].as_str().unwrap_or("");
                causes.push(Cause::invalid_str("type", kind, "field is immutable"));
            }
            if old["immutable"] == true {
                let forbidden = |field: &str| Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: field is immutable when `immutable` is set".into(),
                    field: field.into(),
                };
                if new["immutable"] != true {
                    causes.push(forbidden("immutable"));
                }
                let fields: &[&str] = if plural == "secrets" {
                    &["data"]
                } else {
                    &["data", "binaryData"]
                };
                for field in fields {
                    if at(old, &format!("/{field}")) != at(new, &format!("/{field}")) {
                        causes.push(forbidden(field));
                    }
                }
            }
            causes
        }
        // `ValidateStatefulSetUpdate`: only some of the spec may change.
        ("apps", "statefulsets") => {
            let frozen = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or_else(|| json!({}));
                if let Some(m) = spec.as_object_mut() {
                    for mutable in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "revisionHistoryLimit",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.remove(mutable);
                    }
                    m.retain(|_, v| !v.is_null());
                }
                spec
            };
            if frozen(old) == frozen(new) {
                Vec::new()
            } else {
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                              'template', 'updateStrategy', 'revisionHistoryLimit', \
                              'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
                        .into(),
                    field: "spec".into(),
                }]
            }
        }
        // apps/v1 `ValidateDeploymentUpdate` and its siblings: the selector is immutable.
        ("apps", "deployments" | "replicasets" | "daemonsets") => {
            match (at(old, "/spec/selector"), at(new, "/spec/selector")) {
                (Some(was), Some(now)) if was != now => vec![Cause::invalid_raw(
                    "spec.selector",
                    &go_label_selector(&now),
                    "field is immutable",
                )],
                _ => Vec::new(),
            }
        }
        // `ValidateNamespaceStatusUpdate` (an empty phase defaults to Active).
        ("", "namespaces") => {
            let phase = new.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Active");
            let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
            match (deleting, phase) {
                (false, "Active") | (true, "Terminating") => Vec::new(),
                (false, _) => vec![Cause::invalid_str(
                    "status.Phase",
                    phase,
                    "may only be 'Active' if `deletionTimestamp` is empty",
                )],
                (true, _) => vec![Cause::invalid_str(
                    "status.Phase",
                    phase,
                    "may only be in terminating phase if `deletionTimestamp` is not empty",
                )],
            }
        }
        ("events.k8s.io", "events") => event::validate_v1_update(&v1_event_to_core(new), &v1_event_to_core(old)),
        ("batch", _) => super::batch::validate_update(res, old, new),
        _ => Vec::new(),
    }
}

/// A `metav1.LabelSelector` as a field error prints it since Kubernetes 1.34: `json.Marshal`'s
/// output, `{"matchLabels":{"app":"web"}}` (both fields and a requirement's `values` are
/// `omitempty`; a requirement's `key` and `operator` are not).
pub(super) fn go_label_selector(sel: &Value) -> String {
    let mut fields = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object)
        && !labels.is_empty()
    {
        fields.push(("matchLabels", go_json(&Value::Object(labels.clone()))));
    }
    if let Some(reqs) = sel.get("matchExpressions").and_then(Value::as_array)
        && !reqs.is_empty()
    {
        let reqs: Vec<String> = reqs
            .iter()
            .map(|r| {
                let text = |key: &str| go_json(&Value::from(r.get(key).and_then(Value::as_str).unwrap_or("")));
                let mut req = vec![("key", text("key")), ("operator", text("operator"))];
                if let Some(values) = r.get("values").and_then(Value::as_array)
                    && !values.is_empty()
                {
                    let values: Vec<&str> = values.iter().map(|v| v.as_str().unwrap_or("")).collect();
                    req.push(("values", go_json_strings(&values)));
                }
                go_json_struct(&req)
            })
            .collect();
        fields.push(("matchExpressions", format!("[{}]", reqs.join(","))));
    }
    go_json_struct(&fields)
}

fn check_containers(cs: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    for (i, c) in cs
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if c["name"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: format!("{field}[{i}].name"),
            });
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: format!("{field}[{i}].image"),
            });
        }
    }
}

const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// A stored core/v1 Event as events.k8s.io/v1 serves it.
pub(crate) fn core_event_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert(
        "metadata".into(),
        core.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    for (c, v1) in EVENT_FIELDS {
        if let Some(val) = core.get(*c).filter(|v| !v.is_null()) {
            out.insert(v1.to_string(), val.clone());
        }
    }
    if let Some(series) = core.get("series").filter(|s| s.is_object()) {
        out.insert(
            "series".into(),
            json!({ "count": series.get("count").cloned().unwrap_or(json!(0)),
                    "lastObservedTime": series.get("lastObservedTime").cloned().unwrap_or(Value::Null) }),
        );
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event in its core/v1 storage form.
pub(crate) fn v1_event_to_core(v1: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert(
        "metadata".into(),
        v1.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    for (c, f) in EVENT_FIELDS {
        if let Some(val) = v1.get(*f).filter(|v| !v.is_null()) {
            out.insert(c.to_string(), val.clone());
        }
    }
    if let Some(series) = v1.get("series").filter(|s| s.is_object()) {
        out.insert("series".into(), series.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn events_round_trip_between_the_two_api_groups() {
        let v1 = json!({ "kind": "Event", "metadata": { "name": "e" }, "regarding": { "name": "p" }, "note": "hi",
                         "reason": "Started", "type": "Normal", "reportingController": "kdev", "deprecatedCount": 2 });
        let core = v1_event_to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["count"], 2);
        assert_eq!(core_event_to_v1(&core), v1);
    }

    #[test]
    fn a_label_change_is_not_a_spec_change_but_a_replica_change_is() {
        let reg = Registry::builtin();
        let Some(res) = reg.get("apps", "v1", "deployments") else {
            panic!("no deployments")
        };
        let a = json!({ "metadata": { "labels": {} }, "spec": { "replicas": 1 }, "status": { "replicas": 0 } });
        let mut b = a.clone();
        b["metadata"]["labels"]["x"] = json!("y");
        b["status"]["replicas"] = json!(1);
        assert!(!spec_changed(res, &a, &b));
        b["spec"]["replicas"] = json!(2);
        assert!(spec_changed(res, &a, &b));
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let reg = Registry::builtin();
        let Some(res) = reg.get("", "v1", "secrets") else {
            panic!("no secrets")
        };
        let mut s = json!({ "metadata": {}, "stringData": { "user": "admin" } });
        on_create(res, &mut s);
        assert_eq!(s["data"]["user"], "YWRtaW4=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
    }
}
