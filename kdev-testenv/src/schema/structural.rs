//! Structural-schema rules a CRD's `openAPIV3Schema` must follow
//! ([structural/validation.go](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/validation.go)
//! and `ValidateCustomResourceDefinitionOpenAPISchema`).

use serde_json::{Map, Value, json};

use super::cause::Cause;
use super::{Node, validate};

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn key(path: &str, k: &str) -> String {
    format!("{path}.properties[{k}]")
}

/// Every cause that makes `schema` (found at field path `path`) unusable as a CRD schema.
pub(crate) fn check(schema: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    openapi(schema, path, &mut out);
    if let Value::Object(s) = schema {
        invariants(s, Level::Root, path, "", &mut out);
    }
    out
}

/// OpenAPI features CRDs do not support, on every node including value validations.
fn openapi(schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let Value::Object(s) = schema else {
        out.push(Cause::invalid_str(path, "", "must be a schema object"));
        return;
    };
    for (kw, what) in [
        ("id", "id"),
        ("additionalItems", "additionalItems"),
        ("patternProperties", "patternProperties"),
        ("definitions", "definitions"),
        ("dependencies", "dependencies"),
        ("$ref", "$ref"),
    ] {
        if s.contains_key(kw) {
            out.push(Cause::forbidden(
                &format!("{path}.{kw}"),
                &format!("{what} is not supported"),
            ));
        }
    }
    if s.get("type").and_then(Value::as_str) == Some("null") {
        out.push(Cause::forbidden(&format!("{path}.type"), "type cannot be set to null"));
    }
    list_and_map_types(s, path, out);
    if s.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push(Cause::forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let props = s.get("properties").and_then(Value::as_object);
    if let Some(additional) = s.get("additionalProperties") {
        if props.is_some_and(|p| !p.is_empty()) && additional != &Value::Bool(true) {
            out.push(Cause::forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if additional.is_object() {
            openapi(additional, &format!("{path}.additionalProperties"), out);
        }
    }
    for (k, child) in props.into_iter().flatten() {
        openapi(child, &key(path, k), out);
    }
    match s.get("items") {
        Some(Value::Array(_)) => out.push(Cause::forbidden(
            &format!("{path}.items"),
            "items must be a schema object and not an array",
        )),
        Some(items) => openapi(items, &format!("{path}.items"), out),
        None => {}
    }
    if let Some(not) = s.get("not") {
        openapi(not, &format!("{path}.not"), out);
    }
    for junctor in ["allOf", "oneOf", "anyOf"] {
        for (i, branch) in s
            .get(junctor)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            openapi(branch, &format!("{path}.{junctor}[{i}]"), out);
        }
    }
}

/// The `x-kubernetes-list-type`, `-list-map-keys`, `-map-type` and `-preserve-unknown-fields`
/// rules of `ValidateCustomResourceDefinitionOpenAPISchema` and `validateMapListKeysMapSet`.
fn list_and_map_types(s: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    let at = |k: &str| format!("{path}.{k}");
    let ty = type_of(s);
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(Cause::invalid(
            &at("x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if let Some(map_type) = s.get("x-kubernetes-map-type") {
        if !matches!(map_type.as_str(), Some("atomic" | "granular")) {
            out.push(Cause::not_supported(
                &at("x-kubernetes-map-type"),
                map_type,
                &["atomic".into(), "granular".into()],
            ));
        }
        match ty {
            "object" => {}
            "" => out.push(Cause::required(
                &at("type"),
                "must be object if x-kubernetes-map-type is specified",
            )),
            other => out.push(Cause::invalid_str(
                &at("type"),
                other,
                "must be object if x-kubernetes-map-type is specified",
            )),
        }
    }
    let list_type = s.get("x-kubernetes-list-type");
    let keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // `XListMapKeys` is a `[]string`: kube prints it as JSON.
    let keys_value = || super::cause::go_json_strings(&keys);
    if let Some(list_type) = list_type {
        if !matches!(list_type.as_str(), Some("atomic" | "set" | "map")) {
            out.push(Cause::not_supported(
                &at("x-kubernetes-list-type"),
                list_type,
                &["atomic".into(), "set".into(), "map".into()],
            ));
        }
        match ty {
            "array" => {}
            "" => out.push(Cause::required(
                &at("type"),
                "must be array if x-kubernetes-list-type is specified",
            )),
            other => out.push(Cause::invalid_str(
                &at("type"),
                other,
                "must be array if x-kubernetes-list-type is specified",
            )),
        }
    }
    let items = s.get("items").and_then(Value::as_object);
    match list_type.and_then(Value::as_str) {
        Some("set") if ty == "array" => {
            if let Some(items) = items {
                let atomic = match type_of(items) {
                    "array" => items
                        .get("x-kubernetes-list-type")
                        .is_none_or(|t| t.as_str() == Some("atomic")),
                    "object" => items.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
                    _ => true,
                };
                if !atomic {
                    let (k, v) = if type_of(items) == "array" {
                        ("x-kubernetes-list-type", items.get("x-kubernetes-list-type"))
                    } else {
                        ("x-kubernetes-map-type", items.get("x-kubernetes-map-type"))
                    };
                    out.push(Cause::invalid_raw(
                        &format!("{path}.items.{k}"),
                        // A `*string`: JSON, `null` when unset.
                        &super::cause::go_json(&v.and_then(Value::as_str).map_or(Value::Null, Value::from)),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                if flag(items, "nullable") {
                    out.push(Cause::forbidden(
                        &format!("{path}.items.nullable"),
                        "cannot be nullable when x-kubernetes-list-type is set",
                    ));
                }
            }
        }
        Some("map") => {
            if keys.is_empty() {
                out.push(Cause::required(
                    &at("x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
            match items {
                None => out.push(Cause::required(
                    &at("items"),
                    "must have a schema if x-kubernetes-list-type is map",
                )),
                Some(items) if type_of(items) != "object" => out.push(Cause::invalid_str(
                    &format!("{path}.items.type"),
                    type_of(items),
                    "must be object if parent array's x-kubernetes-list-type is map",
                )),
                Some(items) => {
                    let props = items.get("properties").and_then(Value::as_object);
                    let required: Vec<&str> = items
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut seen = Vec::new();
                    for k in &keys {
                        let key_path = format!("{path}.items.properties[{k}]");
                        match props.and_then(|p| p.get(*k)).and_then(Value::as_object) {
                            Some(prop) => {
                                if matches!(type_of(prop), "array" | "object") {
                                    out.push(Cause::invalid_str(
                                        &format!("{key_path}.type"),
                                        "object",
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                                if !required.contains(k) && prop.get("default").is_none() {
                                    out.push(Cause::required(
                                        &format!("{key_path}.default"),
                                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                                    ));
                                }
                                if flag(prop, "nullable") {
                                    out.push(Cause::forbidden(
                                        &format!("{key_path}.nullable"),
                                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                                    ));
                                }
                            }
                            None => out.push(Cause::invalid_raw(
                                &at("x-kubernetes-list-map-keys"),
                                &keys_value(),
                                "entries must all be names of item properties",
                            )),
                        }
                        if seen.contains(k) {
                            out.push(Cause::invalid_raw(
                                &at("x-kubernetes-list-map-keys"),
                                &keys_value(),
                                "must not contain duplicate entries",
                            ));
                        }
                        seen.push(*k);
                    }
                    if flag(items, "nullable") {
                        out.push(Cause::forbidden(
                            &format!("{path}.items.nullable"),
                            "cannot be nullable when x-kubernetes-list-type is map",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if !keys.is_empty() {
        match list_type.and_then(Value::as_str) {
            Some("map") => {}
            None => out.push(Cause::required(
                &at("x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(other) => out.push(Cause::invalid_str(
                &at("x-kubernetes-list-type"),
                other,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
}

fn flag(s: &Map<String, Value>, k: &str) -> bool {
    s.get(k) == Some(&Value::Bool(true))
}

fn type_of(s: &Map<String, Value>) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The structural invariants, walking the structural part (properties, items, additionalProperties).
fn invariants(s: &Map<String, Value>, lvl: Level, path: &str, data_path: &str, out: &mut Vec<Cause>) {
    let ty = type_of(s);
    let (int_or_string, preserve, embedded) = (
        flag(s, "x-kubernetes-int-or-string"),
        flag(s, "x-kubernetes-preserve-unknown-fields"),
        flag(s, "x-kubernetes-embedded-resource"),
    );
    if ty == "array" && !s.contains_key("items") {
        out.push(Cause::required(&format!("{path}.items"), "must be specified"));
    }
    if let Some(Value::Object(items)) = s.get("items") {
        invariants(
            items,
            Level::Item,
            &format!("{path}.items"),
            &format!("{data_path}[0]"),
            out,
        );
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, child) in props.into_iter().flatten() {
        if let Value::Object(child) = child {
            let data = if data_path.is_empty() {
                k.clone()
            } else {
                format!("{data_path}.{k}")
            };
            invariants(child, Level::Field, &key(path, k), &data, out);
        }
    }
    if let Some(additional) = s.get("additionalProperties") {
        if lvl == Level::Root {
            out.push(Cause::forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Value::Object(child) = additional {
            invariants(
                child,
                Level::Field,
                &format!("{path}.additionalProperties"),
                &format!("{data_path}[key]"),
                out,
            );
        }
        if embedded {
            let p = format!("{path}.additionalProperties");
            out.push(Cause::forbidden(
                &p,
                "must not be used if x-kubernetes-embedded-resource is set",
            ));
        }
    }
    if int_or_string && preserve {
        let p = format!("{path}.x-kubernetes-preserve-unknown-fields");
        out.push(Cause::invalid(
            &p,
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        let p = format!("{path}.x-kubernetes-embedded-resource");
        out.push(Cause::invalid(
            &p,
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_pair(s.get("anyOf"));
    let skip_first_all_of_any_of = s
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_pair(first.get("anyOf")));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, out);

    let type_path = format!("{path}.type");
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        out.push(if ty.is_empty() {
            Cause::required(&type_path, detail)
        } else {
            Cause::invalid_str(&type_path, ty, detail)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(Cause::required(&type_path, detail));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(Cause::invalid_str(&type_path, ty, "must be object at the root"));
    }
    let check_metadata = lvl == Level::Root || embedded;
    for field in ["kind", "apiVersion"] {
        if let Some(Value::Object(p)) = props.and_then(|p| p.get(field))
            && check_metadata
            && type_of(p) != "string"
        {
            out.push(Cause::invalid_str(
                &format!("{}.type", key(path, field)),
                type_of(p),
                "must be string",
            ));
        }
    }
    if let Some(Value::Object(meta)) = props.and_then(|p| p.get("metadata")) {
        metadata(meta, check_metadata, lvl, &key(path, "metadata"), out);
    }
    if embedded && !preserve && props.is_none_or(Map::is_empty) {
        let detail =
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields";
        out.push(Cause::required(&format!("{path}.properties"), detail));
    }
    if let Some(default) = s.get("default") {
        defaults(s, default, path, data_path, out);
    }
}

fn metadata(meta: &Map<String, Value>, check: bool, lvl: Level, path: &str, out: &mut Vec<Cause>) {
    if check && type_of(meta) != "object" {
        out.push(Cause::invalid_str(
            &format!("{path}.type"),
            type_of(meta),
            "must be object",
        ));
    }
    if lvl != Level::Root {
        return;
    }
    let only_names = |p: &Map<String, Value>| p.keys().all(|k| k == "name" || k == "generateName");
    let extra = meta.iter().any(|(k, v)| match k.as_str() {
        "type" | "default" => false,
        "properties" => !v.as_object().is_some_and(only_names),
        _ => true,
    });
    if extra {
        let detail = "must not specify anything other than name and generateName, but metadata is implicitly specified";
        out.push(Cause::forbidden(path, detail));
    }
}

fn is_int_or_string_pair(any_of: Option<&Value>) -> bool {
    any_of == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

/// Value validations (allOf/anyOf/oneOf/not) may not say anything structural.
fn value_validation(s: &Map<String, Value>, skip_any_of: bool, skip_first: bool, path: &str, out: &mut Vec<Cause>) {
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str).filter(|p| !p.is_empty())
        && let Err(e) = super::goregex::compile(pattern)
    {
        // The wording after "isn't:" is the regex crate's, not Go's.
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
        out.push(Cause::invalid_str(
            &format!("{path}.pattern"),
            pattern,
            &format!("must be a valid regular expression, but isn't: error parsing regexp: {first}"),
        ));
    }
    let branches = |k: &str| {
        s.get(k)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    if !skip_any_of {
        for (i, b) in branches("anyOf").iter().enumerate() {
            nested(b, false, &format!("{path}.anyOf[{i}]"), out);
        }
    }
    for (i, b) in branches("allOf").iter().enumerate() {
        nested(b, skip_first && i == 0, &format!("{path}.allOf[{i}]"), out);
    }
    for (i, b) in branches("oneOf").iter().enumerate() {
        nested(b, false, &format!("{path}.oneOf[{i}]"), out);
    }
    if let Some(not) = s.get("not") {
        nested(not, false, &format!("{path}.not"), out);
    }
}

fn nested(v: &Value, skip_any_of: bool, path: &str, out: &mut Vec<Cause>) {
    let Value::Object(s) = v else { return };
    value_validation(s, skip_any_of, false, path, out);
    if let Some(items) = s.get("items") {
        nested(items, false, &format!("{path}.items"), out);
    }
    for (k, child) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
        nested(child, false, &key(path, k), out);
    }
    let forbid =
        |out: &mut Vec<Cause>, k: &str, detail: &str| out.push(Cause::forbidden(&format!("{path}.{k}"), detail));
    if s.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
        forbid(out, "type", "must be empty to be structural");
    }
    if s.contains_key("additionalProperties") {
        forbid(out, "additionalProperties", "must be undefined to be structural");
    }
    let rules: [(&str, &str); 11] = [
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("externalDocs", "must be undefined to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
    ];
    for (k, detail) in rules {
        let set = match s.get(k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(t)) => !t.is_empty() || k == "x-kubernetes-list-type" || k == "x-kubernetes-map-type",
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            forbid(out, k, detail);
        }
    }
    if s.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        forbid(out, "x-kubernetes-validations", "must be empty to be structural");
    }
    if s.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("metadata"))
    {
        out.push(Cause::forbidden(
            &key(path, "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// A default must validate against the schema it sits in.
fn defaults(s: &Map<String, Value>, default: &Value, path: &str, data_path: &str, out: &mut Vec<Cause>) {
    let Ok(node) = Node::compile(&Value::Object(s.clone()), "") else {
        return;
    };
    let default_path = format!("{path}.default");
    for mut cause in validate::validate_at(&node, default, data_path) {
        let rest = cause.field.strip_prefix(data_path).unwrap_or("");
        cause.field = if cause.field == "<nil>" {
            default_path.clone()
        } else {
            format!("{default_path}{rest}")
        };
        out.push(cause);
    }
}
