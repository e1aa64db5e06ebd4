//! Structural schemas: schemars' JSON Schema rewritten into what a CRD's `openAPIV3Schema`
//! accepts ([structural schemas](https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema)).
//!
//! schemars describes Rust types in JSON Schema 2020-12; the API server wants OpenAPI v3
//! restricted to a *structural* subset. [`structural`] bridges the two:
//!
//! 1. every `$ref` is inlined and `$defs`/`definitions` are removed; a recursive type, which a
//!    structural schema cannot spell, becomes `type: object` with
//!    `x-kubernetes-preserve-unknown-fields: true` at the point where it recurses;
//! 2. `Option<T>` loses its `null` (`type: [T, "null"]`, `anyOf: [T, {type: null}]`): the
//!    field is optional because it is not `required`, and never `nullable` unless asked;
//! 3. `anyOf`/`oneOf` are resolved: string constants become one `enum` of strings (Rust unit
//!    enums), integer-or-string becomes `x-kubernetes-int-or-string: true`, object variants
//!    merge into one object whose `oneOf`/`anyOf` keeps only their `required` lists; any
//!    other mix (an enum with both unit and data variants) becomes
//!    `x-kubernetes-preserve-unknown-fields: true`, which the server stores as given;
//! 4. draft 2020-12 spellings become OpenAPI v3 ones: `const` → `enum`, numeric
//!    `exclusiveMinimum`/`exclusiveMaximum` → `minimum`/`maximum` plus the boolean form,
//!    `examples` → `example`, sized integer formats → `int32`/`int64`;
//! 5. what structural schemas forbid goes: `additionalProperties: false` (pruning already drops
//!    unknown fields), `uniqueItems: true` (becomes `x-kubernetes-list-type: set` for scalar
//!    items), `default: null`, and every keyword apiextensions.k8s.io/v1 does not know.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

/// The keywords of apiextensions.k8s.io/v1 `JSONSchemaProps` (besides `x-kubernetes-*`).
const KNOWN: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "nullable",
    "example",
    "externalDocs",
];

/// The structural schema of `T`: schemars' schema for it, rewritten by [`structural`].
///
/// # Examples
///
/// ```
/// #[derive(schemars::JsonSchema)]
/// struct Spec {
///     /// How many copies to run.
///     replicas: Option<u16>,
///     image: String,
/// }
///
/// let schema = kdev_crd::schema::schema_for::<Spec>();
/// assert_eq!(
///     schema,
///     serde_json::json!({
///         "type": "object",
///         "properties": {
///             "replicas": {
///                 "type": "integer", "format": "int32", "minimum": 0, "maximum": 65535,
///                 "description": "How many copies to run."
///             },
///             "image": { "type": "string" }
///         },
///         "required": ["image"]
///     })
/// );
/// ```
pub fn schema_for<T: JsonSchema + ?Sized>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.meta_schema = None)
        .into_generator();
    structural(generator.into_root_schema_for::<T>())
}

/// Rewrites a schemars schema (with its `$defs` at the root) into a structural schema, as the
/// [module documentation](self) lists.
pub fn structural(schema: Schema) -> Value {
    let mut root = schema.to_value();
    let mut defs = Map::new();
    if let Value::Object(m) = &mut root {
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(d)) = m.remove(key) {
                defs.extend(d);
            }
        }
    }
    let mut stack = Vec::new();
    let mut out = rewrite(root, &defs, &mut stack);
    if let Value::Object(m) = &mut out {
        m.remove("title"); // schemars' Rust type name: noise in a CRD
    }
    out
}

/// A schema that accepts and keeps anything: the server stores such a field as given.
fn preserve() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    m
}

fn rewrite(node: Value, defs: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    let mut m = match node {
        Value::Object(m) => m,
        // `true` (anything, e.g. `serde_json::Value`) and the unusable `false`.
        _ => return Value::Object(preserve()),
    };
    let depth = stack.len();
    while let Some(reference) = m.remove("$ref") {
        let name = reference
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default();
        match defs.get(name) {
            Some(Value::Object(target)) if !stack.iter().any(|s| s == name) => {
                stack.push(name.to_owned());
                for (k, v) in target {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            // A recursive type (or a dangling reference): keep whatever the object holds.
            _ => {
                let mut out = preserve();
                out.insert("type".into(), json!("object"));
                if let Some(d) = m.remove("description") {
                    out.insert("description".into(), d);
                }
                stack.truncate(depth);
                return Value::Object(out);
            }
        }
    }
    let out = rewrite_object(m, defs, stack);
    stack.truncate(depth);
    Value::Object(out)
}

fn rewrite_object(mut m: Map<String, Value>, defs: &Map<String, Value>, stack: &mut Vec<String>) -> Map<String, Value> {
    // allOf: schemars uses it to combine (flatten); merge every branch into this node.
    if let Some(Value::Array(branches)) = m.remove("allOf") {
        for branch in branches {
            if let Value::Object(b) = rewrite(branch, defs, stack) {
                merge_into(&mut m, b);
            }
        }
    }
    if let Some(c) = m.remove("const") {
        m.insert("enum".into(), Value::Array(vec![c]));
    }
    if let Some(Value::Array(examples)) = m.remove("examples")
        && let Some(first) = examples.into_iter().next()
    {
        m.entry("example").or_insert(first);
    }
    fix_type(&mut m);
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = m.remove(key) {
            let branches: Vec<Map<String, Value>> = branches
                .into_iter()
                .filter(|b| !is_null(b))
                .filter_map(|b| match rewrite(b, defs, stack) {
                    Value::Object(b) => Some(b),
                    _ => None,
                })
                .collect();
            resolve_alternatives(&mut m, key, branches);
        }
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(n @ Value::Number(_)) = m.get(exclusive).cloned() {
            m.insert(bound.into(), n);
            m.insert(exclusive.into(), Value::Bool(true));
        }
    }
    if let Some(Value::String(f)) = m.get("format") {
        let fixed = match f.as_str() {
            "int8" | "int16" | "uint8" | "uint16" => Some("int32"),
            "uint32" | "uint64" | "uint" | "int" | "uint128" | "int128" | "usize" | "isize" => Some("int64"),
            _ => None,
        };
        if let Some(fixed) = fixed {
            m.insert("format".into(), json!(fixed));
        }
    }
    if m.get("default") == Some(&Value::Null) && m.get("nullable") != Some(&Value::Bool(true)) {
        m.remove("default");
    }
    if let Some(Value::Object(props)) = m.remove("properties") {
        let props = props.into_iter().map(|(k, v)| (k, rewrite(v, defs, stack))).collect();
        m.insert("properties".into(), Value::Object(props));
    }
    items(&mut m, defs, stack);
    match m.remove("additionalProperties") {
        Some(Value::Bool(true)) if !m.contains_key("properties") => {
            m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
        }
        Some(schema @ Value::Object(_)) if !m.contains_key("properties") => {
            m.insert("additionalProperties".into(), rewrite(schema, defs, stack));
        }
        _ => {}
    }
    if let Some(Value::Object(not)) = m.remove("not") {
        m.insert("not".into(), Value::Object(rewrite_object(not, defs, stack)));
    }
    m.retain(|k, _| k.starts_with("x-kubernetes-") || KNOWN.contains(&k.as_str()));
    if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        m.remove("type");
    } else if !m.contains_key("type") && m.contains_key("properties") {
        m.insert("type".into(), json!("object"));
    } else if !m.contains_key("type") && !m.contains_key("x-kubernetes-preserve-unknown-fields") {
        // `{}` or only value validations: the value can be anything.
        m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    }
    m
}

/// `type: [T, "null"]` → `type: T`; `[integer, string]` → int-or-string; anything else → any.
fn fix_type(m: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = m.get("type") else {
        if m.get("type") == Some(&json!("null")) {
            m.remove("type");
        }
        return;
    };
    let mut types: Vec<&str> = types
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| *t != "null")
        .collect();
    types.sort_unstable();
    match types.as_slice() {
        [one] => {
            let one = json!(one);
            m.insert("type".into(), one);
        }
        ["integer", "string"] => {
            m.remove("type");
            m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
        }
        _ => {
            m.remove("type");
            m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
        }
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("null")) || schema.get("const") == Some(&Value::Null)
}

fn type_of(m: &Map<String, Value>) -> Option<&str> {
    m.get("type").and_then(Value::as_str)
}

/// Turns the alternatives of an `anyOf`/`oneOf` (`key`) into structural form on `m`.
fn resolve_alternatives(m: &mut Map<String, Value>, key: &str, mut branches: Vec<Map<String, Value>>) {
    if branches.is_empty() {
        return;
    }
    if branches.len() == 1 {
        let only = branches.remove(0);
        merge_into(m, only);
        return;
    }
    let all = |t: &str| branches.iter().all(|b| type_of(b) == Some(t));
    if all("string") && branches.iter().all(|b| b.contains_key("enum")) {
        let mut values = Vec::new();
        for b in &branches {
            if let Some(Value::Array(e)) = b.get("enum") {
                values.extend(e.iter().cloned());
            }
        }
        m.insert("type".into(), json!("string"));
        m.insert("enum".into(), Value::Array(values));
        return;
    }
    let mut kinds: Vec<&str> = branches.iter().filter_map(type_of).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds == ["integer", "string"] && branches.iter().all(|b| type_of(b).is_some()) {
        m.remove("type");
        m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
        return;
    }
    if all("object") {
        let mut properties = Map::new();
        let mut requirements = Vec::new();
        let mut every_branch_requires = true;
        for b in branches {
            if let Some(Value::Object(props)) = b.get("properties") {
                for (name, schema) in props {
                    match properties.get_mut(name) {
                        Some(existing) => union_enums(existing, schema),
                        None => {
                            properties.insert(name.clone(), schema.clone());
                        }
                    }
                }
            }
            match b.get("required") {
                Some(Value::Array(r)) if !r.is_empty() => requirements.push(json!({ "required": r })),
                _ => every_branch_requires = false,
            }
        }
        m.insert("type".into(), json!("object"));
        let own = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(own) = own {
            for (name, schema) in properties {
                own.entry(name).or_insert(schema);
            }
        }
        if every_branch_requires {
            m.insert(key.into(), Value::Array(requirements));
        }
        return;
    }
    m.remove("type");
    m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
}

/// Two variants' schemas of one property (an internally tagged enum's tag): join string enums.
fn union_enums(existing: &mut Value, other: &Value) {
    if let (Some(Value::Array(a)), Some(Value::Array(b))) = (existing.get_mut("enum"), other.get("enum")) {
        for v in b {
            if !a.contains(v) {
                a.push(v.clone());
            }
        }
    }
}

/// `items` (and 2020-12's `prefixItems` for tuples) into one structural `items` schema.
fn items(m: &mut Map<String, Value>, defs: &Map<String, Value>, stack: &mut Vec<String>) {
    let prefix = m.remove("prefixItems");
    let items = match m.remove("items") {
        Some(schema @ Value::Object(_)) => Some(rewrite(schema, defs, stack)),
        _ => None,
    };
    let items = items.or_else(|| {
        let Some(Value::Array(tuple)) = prefix else { return None };
        let tuple: Vec<Value> = tuple.into_iter().map(|s| rewrite(s, defs, stack)).collect();
        match tuple.first() {
            Some(first) if tuple.iter().all(|s| s == first) => Some(first.clone()),
            _ => Some(Value::Object(preserve())),
        }
    });
    if let Some(items) = items {
        if m.remove("uniqueItems") == Some(Value::Bool(true))
            && matches!(
                items.get("type").and_then(Value::as_str),
                Some("string" | "integer" | "number" | "boolean")
            )
        {
            m.entry("x-kubernetes-list-type").or_insert(json!("set"));
        }
        m.insert("items".into(), items);
    }
    m.remove("uniqueItems");
}

/// Merges `from` into `to`: properties and required lists are joined, `to` wins elsewhere.
fn merge_into(to: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (k.as_str(), to.get_mut(&k), v) {
            ("properties", Some(Value::Object(own)), Value::Object(more)) => {
                for (name, schema) in more {
                    own.entry(name).or_insert(schema);
                }
            }
            ("required" | "x-kubernetes-validations", Some(Value::Array(own)), Value::Array(more)) => {
                for r in more {
                    if !own.contains(&r) {
                        own.push(r);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                to.insert(k, v);
            }
        }
    }
}

/// Applies field-level overrides to a structural schema: every key of `patch` replaces the
/// schema's, except `x-kubernetes-validations`, whose rules are appended.
pub fn apply(schema: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match (k.as_str(), schema.get_mut(k), v) {
            ("x-kubernetes-validations", Some(Value::Array(own)), Value::Array(more)) => {
                own.extend(more.iter().cloned());
            }
            ("x-kubernetes-int-or-string", _, Value::Bool(true)) => {
                schema.remove("type");
                schema.remove("format");
                schema.insert(k.clone(), v.clone());
            }
            _ => {
                schema.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(rename_all = "camelCase")]
    enum Phase {
        Pending,
        /// Documented variants make schemars emit `oneOf` of `const`s.
        Running,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    enum Source {
        Git { url: String },
        Image { name: String },
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    enum Mixed {
        Nothing,
        Something(String),
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Tree {
        children: Vec<Tree>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(untagged)]
    enum Port {
        Number(i32),
        Name(String),
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Spec {
        phase: Option<Phase>,
        source: Source,
        mixed: Mixed,
        tree: Option<Tree>,
        port: Port,
        tags: BTreeSet<String>,
        labels: BTreeMap<String, String>,
        any: serde_json::Value,
        small: u8,
        pair: (String, String),
        target: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    }

    #[test]
    fn schemars_output_becomes_a_structural_schema() {
        let schema = schema_for::<Spec>();
        let props = &schema["properties"];
        assert_eq!(schema["type"], "object");
        assert!(schema.get("additionalProperties").is_none());
        assert!(schema.get("$defs").is_none());
        assert_eq!(
            props["phase"],
            json!({ "type": "string", "enum": ["pending", "running"] }),
            "an Option<unit enum> is one enum of strings"
        );
        assert_eq!(
            props["source"],
            json!({
                "type": "object",
                "properties": {
                    "Git": { "type": "object", "properties": { "url": { "type": "string" } }, "required": ["url"] },
                    "Image": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] }
                },
                "oneOf": [{ "required": ["Git"] }, { "required": ["Image"] }]
            })
        );
        assert_eq!(props["mixed"], json!({ "x-kubernetes-preserve-unknown-fields": true }));
        assert_eq!(
            props["tree"],
            json!({
                "type": "object",
                "properties": {
                    "children": {
                        "type": "array",
                        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
                    }
                },
                "required": ["children"]
            })
        );
        assert_eq!(props["port"], json!({ "x-kubernetes-int-or-string": true }));
        assert_eq!(
            props["target"]["x-kubernetes-int-or-string"], true,
            "k8s-openapi's IntOrString"
        );
        assert!(props["target"].get("type").is_none());
        assert_eq!(
            props["tags"],
            json!({ "type": "array", "items": { "type": "string" }, "x-kubernetes-list-type": "set" })
        );
        assert_eq!(
            props["labels"],
            json!({ "type": "object", "additionalProperties": { "type": "string" } })
        );
        assert_eq!(props["any"], json!({ "x-kubernetes-preserve-unknown-fields": true }));
        assert_eq!(
            props["small"],
            json!({ "type": "integer", "format": "int32", "minimum": 0, "maximum": 255 })
        );
        assert_eq!(
            props["pair"],
            json!({ "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 2 })
        );
        let required = schema["required"].as_array().unwrap();
        assert!(!required.contains(&json!("phase")), "Option fields are not required");
        assert!(required.contains(&json!("port")));
    }

    #[test]
    fn applying_a_patch_appends_rules_and_replaces_the_rest() {
        let mut schema = json!({ "type": "string", "x-kubernetes-validations": [{ "rule": "a" }] });
        let patch = json!({ "maxLength": 3, "x-kubernetes-validations": [{ "rule": "b" }] });
        apply(schema.as_object_mut().unwrap(), patch.as_object().unwrap());
        assert_eq!(
            schema,
            json!({ "type": "string", "maxLength": 3, "x-kubernetes-validations": [{ "rule": "a" }, { "rule": "b" }] })
        );
        let mut schema = json!({ "type": "string" });
        apply(
            schema.as_object_mut().unwrap(),
            json!({ "x-kubernetes-int-or-string": true }).as_object().unwrap(),
        );
        assert_eq!(schema, json!({ "x-kubernetes-int-or-string": true }));
    }
}
