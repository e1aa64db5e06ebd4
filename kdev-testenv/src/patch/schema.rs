//! Which lists and maps of a kind merge granularly: the data behind the `patchMergeKey` / `listType`
//! markers of [k8s.io/api](https://github.com/kubernetes/api) types, keyed by (group, kind) and JSON path.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One key field of an associative list (`+listMapKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKey {
    /// Field name inside each element.
    pub name: String,
    /// Value used when an element omits the field (e.g. `protocol: TCP` for ports).
    pub default: Option<Value>,
}

impl ListKey {
    /// A key field without default.
    pub fn new(name: &str) -> Self {
        ListKey {
            name: name.to_owned(),
            default: None,
        }
    }
}

/// How a list at some path merges (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "x-kubernetes-list-type")]
pub enum ListType {
    /// Replaced as a whole, owned as one field (`atomic`, the default).
    Atomic,
    /// A set of primitives merged by union (`set`; strategic `patchStrategy: merge` without key).
    Set,
    /// Elements identified by key fields (`map`); the first key is the strategic `patchMergeKey`.
    Map(Vec<ListKey>),
}

/// Merge information for one kind; paths are dotted field names with list elements left out,
/// e.g. `spec.template.spec.containers.env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    builtin: bool,
    lists: BTreeMap<String, ListType>,
    atomic_maps: BTreeSet<String>,
    /// Objects that hold map entries, with the fields they also declare.
    entry_maps: BTreeMap<String, BTreeSet<String>>,
}

/// Groups served by kube-apiserver itself, whose kinds have a strategic merge strategy.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Lists of a pod spec, relative to the pod spec.
const POD_SPEC_LISTS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("volumes", &["name"]),
    ("imagePullSecrets", &["name"]),
    ("hostAliases", &["ip"]),
    ("topologySpreadConstraints", &["topologyKey", "whenUnsatisfiable"]),
    ("resourceClaims", &["name"]),
];

/// Lists of a container, relative to the container.
const CONTAINER_LISTS: &[(&str, &[&str])] = &[
    ("env", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("ports", &["containerPort", "protocol"]),
    ("resizePolicy", &["resourceName"]),
];

/// Map fields that are atomic (`+mapType=atomic` / `+structType=atomic`), relative to the pod spec.
const POD_SPEC_ATOMIC_MAPS: &[&str] = &["nodeSelector"];

/// Field names of non-pointer structs (and lists without `omitempty`) in built-in types: they always
/// exist in Go objects, so kube-apiserver never records the field itself as added.
const ALWAYS_PRESENT: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "resources",
    "containers",
];

/// Path of the pod spec inside built-in kinds that embed one.
fn pod_spec_root(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some("spec"),
        ("", "PodTemplate") => Some("template.spec"),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some("spec.template.spec"),
        ("batch", "CronJob") => Some("spec.jobTemplate.spec.template.spec"),
        _ => None,
    }
}

/// Whether kube-apiserver has a strategic merge strategy for `group`/`kind`: true for the built-in API
/// groups, false for custom resources (the caller answers 415 Unsupported Media Type).
pub fn supports_strategic(group: &str, kind: &str) -> bool {
    !kind.is_empty() && BUILTIN_GROUPS.contains(&group)
}

fn map_keys(names: &[&str]) -> ListType {
    let keys = names
        .iter()
        .map(|name| ListKey {
            name: (*name).to_owned(),
            default: (*name == "protocol").then(|| Value::String("TCP".into())),
        })
        .collect();
    ListType::Map(keys)
}

impl Schema {
    /// Merge information for any object: `metadata.ownerReferences` keyed by `uid` and
    /// `metadata.finalizers` as a set. Every other list is atomic; add more with [`Schema::with_list`].
    pub fn custom() -> Self {
        Schema::default()
            .with_list("metadata.ownerReferences", map_keys(&["uid"]))
            .with_list("metadata.finalizers", ListType::Set)
    }

    /// Merge information for `group`/`kind`: the built-in table for built-in groups, else [`Schema::custom`].
    pub fn for_kind(group: &str, kind: &str) -> Self {
        let mut schema = Schema::custom();
        if !supports_strategic(group, kind) {
            return schema;
        }
        schema.builtin = true;
        schema = schema.with_list("status.conditions", map_keys(&["type"]));
        if let Some(root) = pod_spec_root(group, kind) {
            for (list, keys) in POD_SPEC_LISTS {
                schema = schema.with_list(&format!("{root}.{list}"), map_keys(keys));
            }
            for containers in ["containers", "initContainers", "ephemeralContainers"] {
                for (list, keys) in CONTAINER_LISTS {
                    schema = schema.with_list(&format!("{root}.{containers}.{list}"), map_keys(keys));
                }
            }
            for map in POD_SPEC_ATOMIC_MAPS {
                schema = schema.with_atomic_map(&format!("{root}.{map}"));
            }
        }
        match (group, kind) {
            ("", "Pod") => schema = schema.with_list("status.podIPs", map_keys(&["ip"])),
            ("", "Service") => {
                schema = schema.with_list("spec.ports", map_keys(&["port", "protocol"]));
                schema = schema.with_atomic_map("spec.selector");
            }
            ("", "Node") => schema = schema.with_list("status.addresses", map_keys(&["type"])),
            ("apps", _) | ("batch", "Job") => schema = schema.with_atomic_map("spec.selector"),
            _ => {}
        }
        schema
    }

    /// Declares how the list at `path` merges (the hook for CRD `x-kubernetes-list-type` information).
    #[must_use]
    pub fn with_list(mut self, path: &str, list: ListType) -> Self {
        self.lists.insert(path.to_owned(), list);
        self
    }

    /// Declares the map at `path` atomic (`x-kubernetes-map-type: atomic`): replaced and owned as a whole.
    #[must_use]
    pub fn with_atomic_map(mut self, path: &str) -> Self {
        self.atomic_maps.insert(path.to_owned());
        self
    }

    /// Declares that the object at `path` holds map entries besides its `fields` (a CRD's
    /// `additionalProperties` or `x-kubernetes-preserve-unknown-fields`): its other keys, and
    /// everything below them, are map entries, not named fields.
    #[must_use]
    pub fn with_map_entries<I, S>(mut self, path: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entry_maps
            .insert(path.to_owned(), fields.into_iter().map(Into::into).collect());
        self
    }

    /// Whether `key` of the object at `path` is a named field of its type (a struct field, a
    /// CRD property) rather than a map entry: structured-merge-diff owns a named field's object
    /// through its leaves, and a map entry as a whole.
    ///
    /// Every key is a named field but in the objects [`Schema::with_map_entries`] declares; the
    /// built-in types' maps (labels, data, resource lists) hold scalars, whose entries are leaves
    /// either way.
    pub fn is_field(&self, path: &str, key: &str) -> bool {
        for (map, fields) in &self.entry_maps {
            if path == map {
                return fields.contains(key);
            }
            let below = if map.is_empty() {
                Some(path)
            } else {
                path.strip_prefix(map.as_str()).and_then(|rest| rest.strip_prefix('.'))
            };
            if let Some(entry) = below.and_then(|rest| rest.split('.').next())
                && !fields.contains(entry)
            {
                return false;
            }
        }
        true
    }

    /// How the list at `path` merges; [`ListType::Atomic`] unless declared.
    pub fn list_type(&self, path: &str) -> &ListType {
        self.lists.get(path).unwrap_or(&ListType::Atomic)
    }

    /// Whether the map at `path` is atomic.
    pub fn is_atomic_map(&self, path: &str) -> bool {
        self.atomic_maps.contains(path)
    }

    /// Whether the field at `path` always exists in the Go type of a built-in kind (never recorded as added).
    pub(crate) fn always_present(&self, path: &str) -> bool {
        let last = path.rsplit('.').next().unwrap_or(path);
        path == "metadata" || (self.builtin && ALWAYS_PRESENT.contains(&last))
    }
}

/// Joins a dotted schema path with one more field name.
pub(crate) fn child_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_containers_merge_by_name_inside_the_pod_template() {
        let schema = Schema::for_kind("apps", "Deployment");
        assert_eq!(schema.list_type("spec.template.spec.containers"), &map_keys(&["name"]));
        assert_eq!(
            schema.list_type("spec.template.spec.initContainers.volumeMounts"),
            &map_keys(&["mountPath"])
        );
        assert_eq!(schema.list_type("spec.containers"), &ListType::Atomic);
    }

    #[test]
    fn container_ports_default_their_protocol_key_to_tcp() {
        let schema = Schema::for_kind("", "Pod");
        let ListType::Map(keys) = schema.list_type("spec.containers.ports") else {
            panic!("ports not keyed")
        };
        assert_eq!(keys[0], ListKey::new("containerPort"));
        assert_eq!(keys[1].default, Some(Value::String("TCP".into())));
    }

    #[test]
    fn custom_resources_have_no_strategy_but_keep_metadata_lists() {
        assert!(!supports_strategic("example.com", "Widget"));
        assert!(!supports_strategic("gateway.networking.k8s.io", "Gateway"));
        assert!(supports_strategic("", "ConfigMap"));
        let schema = Schema::for_kind("example.com", "Widget");
        assert_eq!(schema.list_type("metadata.finalizers"), &ListType::Set);
        assert_eq!(schema.list_type("status.conditions"), &ListType::Atomic);
        let with_hook = schema.with_list("spec.items", map_keys(&["id"]));
        assert_eq!(with_hook.list_type("spec.items"), &map_keys(&["id"]));
    }
}
