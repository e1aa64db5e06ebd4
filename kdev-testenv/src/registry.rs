//! The resources the server serves: the built-in types and every established CRD
//! ([API discovery](https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api)).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::meta::NameRule;
use crate::schema::Schema;

/// Where the `scale` subresource reads and writes replicas.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// Dotted path of the desired replicas (`spec.replicas`).
    pub spec_replicas: String,
    /// Dotted path of the observed replicas (`status.replicas`).
    pub status_replicas: String,
    /// Dotted path of the label selector, when there is one.
    pub label_selector: Option<String>,
    /// Whether the selector is a `metav1.LabelSelector` object (built-ins) rather than a string (CRDs).
    pub selector_is_object: bool,
}

/// A printer column of a CRD version (`additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// integer, number, string, boolean or date.
    pub type_: String,
    /// Optional format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 shows by default; higher shows with `-o wide`.
    pub priority: i64,
    /// Simple JSONPath such as `.spec.replicas`.
    pub json_path: String,
}

/// What a served version of a CRD carries.
#[derive(Debug, Clone, Default)]
pub struct CrdVersion {
    /// The compiled structural schema.
    pub schema: Option<Arc<Schema>>,
    /// Printer columns for tables.
    pub columns: Vec<PrinterColumn>,
    /// Whether this version is deprecated, and the warning.
    pub deprecation_warning: Option<String>,
    /// List and map types for server-side apply (`x-kubernetes-list-type`, `x-kubernetes-map-type`).
    pub apply: Arc<crate::patch::Schema>,
}

/// How objects of one resource are converted to and from their storage form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Stored as served (only `apiVersion` changes between CRD versions).
    None,
    /// events.k8s.io/v1 events, stored as core/v1 events.
    EventsV1,
}

/// One resource (group + plural), with everything the handlers need.
#[derive(Debug, Clone)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: String,
    /// Served versions, most preferred first.
    pub versions: Vec<String>,
    /// The version objects are stored in.
    pub storage_version: String,
    /// Plural, lowercase (`deployments`).
    pub plural: String,
    /// Singular, lowercase.
    pub singular: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// List kind (`DeploymentList`).
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl get` short names.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Whether `/status` is served (and the main endpoint ignores status).
    pub status: bool,
    /// The `/scale` subresource, when served.
    pub scale: Option<ScalePaths>,
    /// Whether `/binding` is served (pods).
    pub binding: bool,
    /// A review (TokenReview, SubjectAccessReview and their kin): only `create` is served, and
    /// what is created is answered, never stored.
    pub review: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Which rule names follow.
    pub name_rule: NameRule,
    /// Storage key shared by resources stored together (core and events.k8s.io events).
    pub storage: String,
    /// Conversion between served and stored form.
    pub conversion: Conversion,
    /// A CRD's `spec.conversion` when its strategy is `Webhook`: objects move between versions
    /// through the conversion webhook rather than by rewriting `apiVersion`.
    pub conversion_webhook: Option<Arc<Value>>,
    /// Whether objects may be kept in a version other than the storage version (a CRD's
    /// `status.storedVersions` lists another one).
    pub mixed_storage: bool,
    /// CRD data per served version, for custom resources.
    pub crd: Option<BTreeMap<String, CrdVersion>>,
    /// Extra selectable fields of a CRD (`selectableFields` json paths, without the leading dot).
    pub selectable_fields: Vec<String>,
    /// Whether strategic merge patch is available.
    pub strategic: bool,
}

impl Resource {
    /// Whether a PUT without a resourceVersion replaces whatever is stored (kube-apiserver's
    /// `AllowUnconditionalUpdate`): not for custom resources, Leases, CRDs and webhook
    /// configurations, whose strategies require the version an update replaces.
    pub fn allows_unconditional_update(&self) -> bool {
        self.crd.is_none()
            && !matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("coordination.k8s.io", "leases")
                    | ("apiextensions.k8s.io", "customresourcedefinitions")
                    | (
                        "admissionregistration.k8s.io",
                        "validatingwebhookconfigurations" | "mutatingwebhookconfigurations"
                    )
            )
    }

    /// Whether a PUT to a missing object creates it (kube-apiserver's `AllowCreateOnUpdate`): of
    /// the types served here, Services, Events (both groups) and Leases, whose strategies say so
    /// (as do Endpoints, LimitRanges and RuntimeClasses, which are not served) and RBAC roles and
    /// bindings. Custom resources never.
    pub fn allows_create_on_update(&self) -> bool {
        self.crd.is_none()
            && matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("", "services" | "events")
                    | ("events.k8s.io", "events")
                    | ("coordination.k8s.io", "leases")
                    | (
                        "rbac.authorization.k8s.io",
                        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings"
                    )
            )
    }

    /// `deployments.apps`, or `configmaps` in the core group: how errors name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version` or `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The verbs discovery advertises. Namespaces have no collection delete in kube-apiserver;
    /// reviews are only created.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.review {
            return vec!["create"];
        }
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if !self.serves_delete_collection() {
            verbs.retain(|v| *v != "deletecollection");
        }
        verbs
    }

    /// Whether a collection delete is served: for every resource but namespaces, as in
    /// kube-apiserver (whose namespace storage does not implement it).
    pub fn serves_delete_collection(&self) -> bool {
        !(self.group.is_empty() && self.plural == "namespaces")
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    generation: bool,
    all: bool,
    review: bool,
    rule: NameRule,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status: false,
        scale: false,
        generation: false,
        all: false,
        review: false,
        rule: NameRule::Subdomain,
    }
}

impl Builtin {
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn review(mut self) -> Self {
        self.review = true;
        self
    }
    const fn rule(mut self, rule: NameRule) -> Self {
        self.rule = rule;
        self
    }
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, &["ns"])
        .status()
        .rule(NameRule::Label),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    b("", "v1", "secrets", "Secret", true, &[]),
    b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    b("", "v1", "services", "Service", true, &["svc"])
        .status()
        .all()
        .rule(NameRule::Rfc1035Label),
    b("", "v1", "pods", "Pod", true, &["po"]).status().generation().all(),
    b("", "v1", "nodes", "Node", false, &["no"]).status(),
    b("", "v1", "events", "Event", true, &["ev"]).rule(NameRule::PathSegment),
    b("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .status()
        .scale()
        .generation()
        .all(),
    b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        .status()
        .scale()
        .generation()
        .all(),
    b("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
        .status()
        .scale()
        .generation()
        .all(),
    b("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
        .status()
        .generation()
        .all(),
    b("batch", "v1", "jobs", "Job", true, &[]).status().generation().all(),
    b("batch", "v1", "cronjobs", "CronJob", true, &["cj"])
        .status()
        .generation()
        .all(),
    b("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    )
    .rule(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    )
    .rule(NameRule::PathSegment),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]).rule(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    )
    .rule(NameRule::PathSegment),
    b("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, &[]).review(),
    b(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
    )
    .review(),
    b(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        &[],
    )
    .review(),
    b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
    )
    .review(),
    b(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
        &[],
    )
    .review(),
    b("events.k8s.io", "v1", "events", "Event", true, &["ev"]).rule(NameRule::PathSegment),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )
    .status()
    .generation(),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        &[],
    )
    .generation(),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        &[],
    )
    .generation(),
];

/// Every resource the server knows, looked up by group and plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_group_plural: BTreeMap<(String, String), Arc<Resource>>,
    /// Group names in discovery order (core first, built-ins, then CRD groups by name).
    group_order: Vec<String>,
    /// Counts changes, so clients caching discovery and OpenAPI documents see new versions.
    generation: u64,
}

impl Registry {
    /// The built-in resources.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for b in BUILTINS {
            let storage = if b.group == "events.k8s.io" {
                "/events".to_string()
            } else {
                format!("{}/{}", b.group, b.plural)
            };
            let scale = b.scale.then(|| ScalePaths {
                spec_replicas: "spec.replicas".into(),
                status_replicas: "status.replicas".into(),
                label_selector: Some("spec.selector".into()),
                selector_is_object: true,
            });
            r.insert(Resource {
                group: b.group.into(),
                versions: vec![b.version.into()],
                storage_version: b.version.into(),
                plural: b.plural.into(),
                singular: b.kind.to_ascii_lowercase(),
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if b.all { vec!["all".into()] } else { vec![] },
                status: b.status,
                scale,
                binding: b.plural == "pods",
                review: b.review,
                generation: b.generation,
                name_rule: b.rule,
                storage,
                conversion: if b.group == "events.k8s.io" {
                    Conversion::EventsV1
                } else {
                    Conversion::None
                },
                conversion_webhook: None,
                mixed_storage: false,
                crd: None,
                selectable_fields: vec![],
                strategic: true,
            });
        }
        r
    }

    /// Adds or replaces a resource.
    pub fn insert(&mut self, res: Resource) {
        self.generation += 1;
        if !self.group_order.contains(&res.group) {
            self.group_order.push(res.group.clone());
        }
        self.by_group_plural
            .insert((res.group.clone(), res.plural.clone()), Arc::new(res));
    }

    /// Removes a custom resource's entry (its CRD was deleted).
    pub fn remove(&mut self, group: &str, plural: &str) {
        self.generation += 1;
        self.by_group_plural.remove(&(group.to_string(), plural.to_string()));
        if !self.by_group_plural.keys().any(|(g, _)| g == group) {
            self.group_order.retain(|g| g != group);
        }
    }

    /// How many times the registry has changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The resource served at `group`/`version`/`plural`, if any.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Resource>> {
        self.by_group_plural
            .get(&(group.to_string(), plural.to_string()))
            .filter(|r| r.versions.iter().any(|v| v == version))
    }

    /// The resource for `group` and `plural`, whatever the version.
    pub fn get_any_version(&self, group: &str, plural: &str) -> Option<&Arc<Resource>> {
        self.by_group_plural.get(&(group.to_string(), plural.to_string()))
    }

    /// The resource of a kind within a group.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&Arc<Resource>> {
        self.by_group_plural
            .iter()
            .find(|((g, _), r)| g == group && r.kind == kind)
            .map(|(_, r)| r)
    }

    /// All resources.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_group_plural.values()
    }

    /// Groups with their served versions (preferred first), in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.group_order
            .iter()
            .map(|g| {
                let mut versions: Vec<String> = Vec::new();
                for r in self.by_group_plural.values().filter(|r| &r.group == g) {
                    for v in &r.versions {
                        if !versions.contains(v) {
                            versions.push(v.clone());
                        }
                    }
                }
                versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                (g.clone(), versions)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Resources of one group-version.
    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Arc<Resource>> {
        self.by_group_plural
            .values()
            .filter(move |r| r.group == group && r.versions.iter().any(|v| v == version))
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, then by number (`v2` > `v1` > `v1beta2`).
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let parse = |s: &str| -> Option<(u8, u64, u64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((level, major, num.parse().ok()?))
    };
    parse(v).unwrap_or((0, 0, 0))
}

/// Reads a dotted path (`spec.replicas`) out of an object.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, seg| v.get(seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        v.sort_by_key(|b| std::cmp::Reverse(version_priority(b)));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn builtins_are_served_at_their_group_version_only() {
        let r = Registry::builtin();
        assert!(r.get("apps", "v1", "deployments").is_some());
        assert!(r.get("apps", "v2", "deployments").is_none());
        assert!(r.get("", "v1", "deployments").is_none());
        assert_eq!(r.get("", "v1", "pods").map(|p| p.qualified()), Some("pods".into()));
    }
}
