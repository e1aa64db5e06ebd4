//! Validation of a CustomResourceDefinition on create and update
//! ([apiextensions validation.go](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go)).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::cause::{Cause, go_json};
use super::structural;

static DNS1035: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new("^[a-z]([-a-z0-9]*[a-z0-9])?$").ok());
static DNS1123_SUBDOMAIN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok());

const PRINTER_COLUMN_TYPES: &str = "boolean,date,integer,number,string";
const PRINTER_COLUMN_FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";

/// `IsDNS1035Label`'s errors joined by `,`, or `None` when `s` is a valid label.
pub(crate) fn dns1035_label(s: &str) -> Option<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !DNS1035.as_ref().is_none_or(|r| r.is_match(s)) {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic \
             character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123', regex used for \
             validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    (!errs.is_empty()).then(|| errs.join(","))
}

/// `IsDNS1123Subdomain`'s errors, or `None` when `s` is a valid subdomain.
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !DNS1123_SUBDOMAIN.as_ref().is_none_or(|r| r.is_match(s)) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
             start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    errs
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Everything kube-apiserver rejects in an `apiextensions.k8s.io/v1` CustomResourceDefinition.
///
/// Covers the name (`<plural>.<group>`), group, names, scope, versions (names, uniqueness,
/// exactly one storage version), each version's schema (required, structural, defaults that
/// validate), subresources and printer columns. Returns no causes for a valid CRD.
///
/// # Caveats
///
/// Bad values kube prints as Go structs (the `spec.versions` list) are abbreviated; structural
/// completeness (properties used in `allOf` must exist outside it), conversion webhooks and update
/// rules (immutable group, plural and established scope) are not checked.
pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let plural = str_at(crd, "/spec/names/plural");
    let group = str_at(crd, "/spec/group");
    let name = str_at(crd, "/metadata/name");
    if name.is_empty() && str_at(crd, "/metadata/generateName").is_empty() {
        out.push(Cause::required("metadata.name", "name or generateName is required"));
    } else if !name.is_empty() {
        let mut errs = dns1123_subdomain(name);
        if name != format!("{plural}.{group}") {
            errs.push("must be spec.names.plural+\".\"+spec.group".to_owned());
        }
        out.extend(errs.iter().map(|e| Cause::invalid_str("metadata.name", name, e)));
    }

    if group.is_empty() {
        out.push(Cause::required("spec.group", ""));
    } else if let errs @ [_, ..] = dns1123_subdomain(group).as_slice() {
        out.push(Cause::invalid_str("spec.group", group, &errs.join(",")));
    } else if !group.contains('.') {
        out.push(Cause::invalid_str(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }

    match str_at(crd, "/spec/scope") {
        "" => out.push(Cause::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => out.push(Cause::not_supported(
            "spec.scope",
            &Value::from(other),
            &["Cluster".into(), "Namespaced".into()],
        )),
    }

    versions(crd, &mut out);
    names(crd, &mut out);
    out
}

fn versions(crd: &Value, out: &mut Vec<Cause>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    let mut storage = 0;
    let mut structural_ok = true;
    // kube-apiserver keeps a field every version has alike once, at the top of the spec, and
    // reports its problems there (`spec.validation`, `spec.subresources`,
    // `spec.additionalPrinterColumns`).
    let identical = |field: &str| versions.iter().all(|v| v.get(field) == versions[0].get(field));
    let (same_schema, same_subresources, same_columns) = (
        identical("schema"),
        identical("subresources"),
        identical("additionalPrinterColumns"),
    );
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let name = str_at(version, "/name");
        unique &= !seen.contains(&name);
        seen.push(name);
        storage += usize::from(version.get("storage") == Some(&Value::Bool(true)));
        if let Some(err) = dns1035_label(name) {
            out.push(Cause::invalid_str(&format!("{path}.name"), name, &err));
        }
        let first = i == 0;
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) if !schema.is_null() && (first || !same_schema) => {
                let at = if same_schema {
                    "spec.validation.openAPIV3Schema".to_string()
                } else {
                    format!("{path}.schema.openAPIV3Schema")
                };
                let structural = structural::check(schema, &at);
                structural_ok &= structural.is_empty();
                out.extend(structural);
            }
            Some(schema) if !schema.is_null() => {}
            _ => out.push(Cause::required(
                &format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
        }
        if first || !same_subresources {
            let at = if same_subresources {
                "spec.subresources".to_string()
            } else {
                format!("{path}.subresources")
            };
            subresources(version.get("subresources"), &at, out);
        }
        if first || !same_columns {
            let at = if same_columns {
                "spec.additionalPrinterColumns".to_string()
            } else {
                format!("{path}.additionalPrinterColumns")
            };
            for (j, col) in version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                column(col, &format!("{at}[{j}]"), out);
            }
        }
    }
    if structural_ok {
        rules(versions, out);
    }
    // kube-apiserver 1.34+ prints bad values as JSON: no versions is `null`.
    let rendered = if versions.is_empty() {
        "null"
    } else {
        "[]apiextensions.CustomResourceDefinitionVersion{...}"
    };
    if !unique {
        out.push(Cause::invalid_raw(
            "spec.versions",
            rendered,
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        out.push(Cause::invalid_raw(
            "spec.versions",
            rendered,
            "must have exactly one version marked as storage version",
        ));
    }
}

/// `ValidateCustomResourceDefinitionStoredVersions`, on a CRD's create and main-resource update
/// (not on `/status`, which kube-apiserver lets set any list): `status.storedVersions` is not
/// empty, holds the storage version, and names no version `spec.versions` lacks, since objects
/// may still be stored in it.
pub(crate) fn validate_stored_versions(crd: &Value) -> Vec<Cause> {
    let field = "status.storedVersions";
    let stored = crd.pointer("/status/storedVersions");
    let names: Vec<&str> = stored
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rendered = || go_json(stored.unwrap_or(&Value::Null));
    if names.is_empty() {
        return vec![Cause::invalid_raw(
            field,
            &rendered(),
            "must have at least one stored version",
        )];
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    // The last index of each name, as a Go map from name to index keeps it.
    let mut unmatched: Vec<(usize, &str)> = names
        .iter()
        .enumerate()
        .filter(|(i, name)| !names[i + 1..].contains(name))
        .map(|(i, name)| (i, *name))
        .collect();
    for version in versions {
        let name = str_at(version, "/name");
        let known = unmatched.iter().any(|(_, n)| *n == name);
        if version.get("storage") == Some(&Value::Bool(true)) && !known {
            out.push(Cause::invalid_raw(
                field,
                &rendered(),
                &format!("must have the storage version {name}"),
            ));
        }
        unmatched.retain(|(_, n)| *n != name);
    }
    for (i, name) in unmatched {
        out.push(Cause::invalid_str(
            &format!("{field}[{i}]"),
            name,
            &format!(
                "missing from spec.versions; {name} was previously a storage version, and must remain in \
                 spec.versions until a storage migration ensures no data remains persisted in {name} and \
                 removes {name} from status.storedVersions"
            ),
        ));
    }
    out
}

/// CEL rule checks. kube stores identical per-version schemas once, at `spec.validation`, and
/// reports their problems there.
fn rules(versions: &[Value], out: &mut Vec<Cause>) {
    let schemas: Vec<&Value> = versions
        .iter()
        .filter_map(|v| v.pointer("/schema/openAPIV3Schema"))
        .collect();
    match schemas.as_slice() {
        [first, rest @ ..] if schemas.len() == versions.len() && rest.iter().all(|s| s == first) => {
            out.extend(super::cel::check(first, "spec.validation.openAPIV3Schema"));
        }
        _ => {
            for (i, version) in versions.iter().enumerate() {
                if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
                    out.extend(super::cel::check(
                        schema,
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    ));
                }
            }
        }
    }
}

fn names(crd: &Value, out: &mut Vec<Cause>) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    for field in ["plural", "singular", "kind", "listKind"] {
        if str_at(&names, &format!("/{field}")).is_empty() {
            out.push(Cause::required(&format!("spec.names.{field}"), ""));
        }
    }
    for field in ["plural", "singular"] {
        let value = str_at(&names, &format!("/{field}"));
        if let Some(err) = dns1035_label(value).filter(|_| !value.is_empty()) {
            out.push(Cause::invalid_str(&format!("spec.names.{field}"), value, &err));
        }
    }
    for field in ["kind", "listKind"] {
        let value = str_at(&names, &format!("/{field}"));
        if let Some(err) = dns1035_label(&value.to_lowercase()).filter(|_| !value.is_empty()) {
            let detail = format!("may have mixed case, but should otherwise match: {err}");
            out.push(Cause::invalid_str(&format!("spec.names.{field}"), value, &detail));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, item) in names
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let value = item.as_str().unwrap_or("");
            if let Some(err) = dns1035_label(value) {
                out.push(Cause::invalid_str(&format!("spec.names.{list}[{i}]"), value, &err));
            }
        }
    }
    let kind = str_at(&names, "/kind");
    if !kind.is_empty() && kind == str_at(&names, "/listKind") {
        out.push(Cause::invalid_str(
            "spec.names.listKind",
            kind,
            "kind and listKind may not be the same",
        ));
    }
}

fn subresources(sub: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let Some(scale) = sub.and_then(|s| s.get("scale")).filter(|s| !s.is_null()) else {
        return;
    };
    for (field, prefix, under) in [
        ("specReplicasPath", ".spec.", ".spec"),
        ("statusReplicasPath", ".status.", ".status"),
    ] {
        let value = str_at(scale, &format!("/{field}"));
        let field_path = format!("{path}.scale.{field}");
        if value.is_empty() {
            out.push(Cause::required(&field_path, ""));
        } else if !simple_json_path(value, &field_path, out) && !value.starts_with(prefix) {
            out.push(Cause::invalid_str(
                &field_path,
                value,
                &format!("should be a json path under {under}"),
            ));
        }
    }
    let selector = str_at(scale, "/labelSelectorPath");
    let field_path = format!("{path}.scale.labelSelectorPath");
    if !selector.is_empty() && !simple_json_path(selector, &field_path, out) && !selector.starts_with(".status.") {
        out.push(Cause::invalid_str(
            &field_path,
            selector,
            "should be a json path under .status",
        ));
    }
}

/// Pushes the cause when `s` is not a simple json path and reports whether it did.
fn simple_json_path(s: &str, path: &str, out: &mut Vec<Cause>) -> bool {
    if !s.starts_with('.') {
        out.push(Cause::invalid_str(
            path,
            s,
            "must be a simple json path starting with .",
        ));
        return true;
    }
    false
}

fn column(col: &Value, path: &str, out: &mut Vec<Cause>) {
    if str_at(col, "/name").is_empty() {
        out.push(Cause::required(&format!("{path}.name"), ""));
    }
    let ty = str_at(col, "/type");
    let types_detail = format!("must be one of {PRINTER_COLUMN_TYPES}");
    if ty.is_empty() {
        out.push(Cause::required(&format!("{path}.type"), &types_detail));
    } else if !PRINTER_COLUMN_TYPES.split(',').any(|t| t == ty) {
        out.push(Cause::invalid_str(&format!("{path}.type"), ty, &types_detail));
    }
    let format = str_at(col, "/format");
    if !format.is_empty() && !PRINTER_COLUMN_FORMATS.split(',').any(|f| f == format) {
        out.push(Cause::invalid_str(
            &format!("{path}.format"),
            format,
            &format!("must be one of {PRINTER_COLUMN_FORMATS}"),
        ));
    }
    let json_path = str_at(col, "/jsonPath");
    if json_path.is_empty() {
        out.push(Cause::required(&format!("{path}.jsonPath"), ""));
    } else {
        simple_json_path(json_path, &format!("{path}.jsonPath"), out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::validate_crd;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "myapps.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "myapps", "singular": "myapp", "kind": "MyApp", "listKind": "MyAppList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                        "properties": {"replicas": {"type": "integer", "default": 1},
                                       "port": {"x-kubernetes-int-or-string": true,
                                                "anyOf": [{"type": "integer"}, {"type": "string"}]}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}})
    }

    fn rendered(crd: &Value) -> Vec<String> {
        validate_crd(crd).iter().map(|c| c.to_error_string()).collect()
    }

    #[test]
    fn list_and_map_types_are_checked() {
        let at = |field: Value| {
            let mut c = crd();
            c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["l"] = field;
            rendered(&c)
        };
        let p = "spec.validation.openAPIV3Schema.properties[spec].properties[l]";
        let item = json!({"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer", "default": 80}}});
        assert_eq!(
            at(
                json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "port"], "items": item})
            ),
            [format!(
                "{p}.items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            )]
        );
        let mut required = item.clone();
        required["required"] = json!(["name"]);
        assert_eq!(
            at(
                json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "port"], "items": required})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            at(json!({"type": "array", "x-kubernetes-list-type": "map", "items": required})),
            [format!(
                "{p}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
            )]
        );
        assert_eq!(
            at(
                json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["nope"], "items": required})
            ),
            [format!(
                "{p}.x-kubernetes-list-map-keys: Invalid value: [\"nope\"]: entries must all be names of item properties"
            )]
        );
        assert_eq!(
            at(
                json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object", "properties": {"a": {"type": "string"}}}})
            ),
            [format!(
                "{p}.items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set"
            )]
        );
        assert_eq!(
            at(json!({"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}})),
            [format!(
                "{p}.x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""
            )]
        );
        assert_eq!(
            at(json!({"type": "array", "x-kubernetes-list-map-keys": ["a"], "items": {"type": "string"}})),
            [format!(
                "{p}.x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty"
            )]
        );
        assert_eq!(
            at(json!({"type": "string", "x-kubernetes-map-type": "atomic"})),
            [format!(
                "{p}.type: Invalid value: \"string\": must be object if x-kubernetes-map-type is specified"
            )]
        );
        let bad = at(json!({"type": "string", "pattern": "("}));
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with(&format!(
                "{p}.pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: error parsing regexp: "
            )),
            "{bad:?}"
        );
        // Go reads a brace that repeats nothing as a literal.
        assert_eq!(at(json!({"type": "string", "pattern": "^a{}$"})), Vec::<String>::new());
        assert_eq!(
            at(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false})),
            [format!(
                "{p}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            )]
        );
    }

    #[test]
    fn fields_alike_in_every_version_are_reported_once_at_the_top_of_the_spec() {
        let mut c = crd();
        let mut v2 = c["spec"]["versions"][0].clone();
        v2["name"] = json!("v2");
        v2["storage"] = json!(false);
        c["spec"]["versions"].as_array_mut().unwrap().push(v2);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["a"] = json!({});
        c["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["a"] = json!({});
        let once = "spec.validation.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields";
        assert_eq!(rendered(&c), [once]);
        c["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["b"] = json!({"type": "string"});
        assert_eq!(
            rendered(&c),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields",
                "spec.versions[1].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields",
            ]
        );
    }

    #[test]
    fn a_valid_crd_has_no_causes() {
        assert_eq!(rendered(&crd()), Vec::<String>::new());
    }

    #[test]
    fn name_must_be_plural_dot_group_and_group_needs_a_dot() {
        let mut c = crd();
        c["metadata"]["name"] = json!("other.example.com");
        assert_eq!(
            rendered(&c),
            [r#"metadata.name: Invalid value: "other.example.com": must be spec.names.plural+"."+spec.group"#]
        );
        let mut c = crd();
        c["spec"]["group"] = json!("example");
        c["metadata"]["name"] = json!("myapps.example");
        assert_eq!(
            rendered(&c),
            [r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#]
        );
    }

    #[test]
    fn names_scope_and_storage_versions_are_checked() {
        let mut c = crd();
        c["spec"]["names"]["singular"] = json!("My_App");
        c["spec"]["names"]["kind"] = json!("");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(false);
        let got = rendered(&c);
        assert!(
            got.contains(
                &r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#.to_owned()
            ),
            "{got:?}"
        );
        assert!(got.contains(&"spec.names.kind: Required value".to_owned()));
        assert!(
            got.iter()
                .any(|m| m.starts_with(r#"spec.names.singular: Invalid value: "My_App": a DNS-1035 label"#))
        );
        assert!(got.iter().any(|m| m.starts_with("spec.versions: Invalid value: ")
            && m.ends_with("must have exactly one version marked as storage version")));
    }

    #[test]
    fn schemas_must_be_present_and_structural() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"] = json!({});
        assert_eq!(
            rendered(&c),
            ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );
        let table = [
            (
                json!({"type": "object", "properties": {"spec": {}}}),
                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ),
            (
                json!({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}}),
                "spec.validation.openAPIV3Schema.properties[a].$ref: Forbidden: $ref is not supported",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
                "spec.validation.openAPIV3Schema.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}}}),
                "spec.validation.openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "allOf": [{"description": "d"}]}}}),
                "spec.validation.openAPIV3Schema.properties[a].allOf[0].description: Forbidden: must be empty to be structural",
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
                "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
            ),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                r#"spec.validation.openAPIV3Schema.type: Invalid value: "array": must be object at the root"#,
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array"}}}),
                "spec.validation.openAPIV3Schema.properties[l].items: Required value: must be specified",
            ),
            (
                json!({"type": "object", "properties": {"r": {"type": "integer", "default": "x"}}}),
                r#"spec.validation.openAPIV3Schema.properties[r].default: Invalid value: "string": r in body must be of type integer: "string""#,
            ),
        ];
        for (schema, want) in table {
            let mut c = crd();
            c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = schema;
            assert_eq!(rendered(&c), [want]);
        }
    }

    #[test]
    fn subresources_and_printer_columns_are_checked() {
        let mut c = crd();
        c["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = json!(".status.replicas");
        c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "", "type": "float", "jsonPath": "spec"}]);
        assert_eq!(
            rendered(&c),
            [
                r#"spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#,
                "spec.additionalPrinterColumns[0].name: Required value",
                r#"spec.additionalPrinterColumns[0].type: Invalid value: "float": must be one of boolean,date,integer,number,string"#,
                r#"spec.additionalPrinterColumns[0].jsonPath: Invalid value: "spec": must be a simple json path starting with ."#,
            ]
        );
    }
}
