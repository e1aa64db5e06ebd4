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
//!    (externally, internally and adjacently tagged enums) merge into one object with every
//!    variant's properties (a property two variants type differently is joined, or kept as
//!    given) whose `oneOf`/`anyOf` keeps, per variant, its `required` list and its tag's
//!    `enum`, or becomes an `anyOf` when a value of one variant could match two branches; any
//!    other mix (an externally tagged enum with both unit and data variants) becomes
//!    `x-kubernetes-preserve-unknown-fields: true`, which the server stores as given;
//! 4. draft 2020-12 spellings become OpenAPI v3 ones: `const` → `enum`, numeric
//!    `exclusiveMinimum`/`exclusiveMaximum` → `minimum`/`maximum` plus the boolean form,
//!    `examples` → `example`, sized integer formats → `int32`/`int64`, bounded by their Rust
//!    type's range (`u32` gets `maximum: 4294967295`, since the API server does not read
//!    `format` as a limit);
//! 5. maps stay maps: a map's value schema (`additionalProperties`, or the one
//!    `patternProperties` of a map with integer keys, whose key pattern is not checked) becomes
//!    `additionalProperties`, and a struct with a `#[serde(flatten)]` map next to its fields
//!    keeps unknown fields (`x-kubernetes-preserve-unknown-fields: true`), since structural
//!    schemas forbid `properties` next to `additionalProperties`;
//! 6. what structural schemas forbid goes: `additionalProperties: false` (pruning already drops
//!    unknown fields), `uniqueItems: true` (becomes `x-kubernetes-list-type: set` for scalar
//!    items), `default: null`, the `null`s of non-nullable fields inside a serde default, a
//!    serde default that breaks its own node's validations ([`settle_default`]), and every
//!    keyword apiextensions.k8s.io/v1 does not know.
//! 7. overrides that `#[kdev::schema]` left in a type's or a field's schema under [`PATCH`]
//!    are applied ([`apply`]) where the type ends up, after its `$ref` is inlined: the type's
//!    own first, then the field's.

mod list_type;

pub(crate) use list_type::misfit as list_type_misfit;

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
                    if k == PATCH {
                        // The type's own patch first, the field's (already in `m`) after it.
                        let mut patches = patch_list(v.clone());
                        patches.extend(m.remove(PATCH).map(patch_list).unwrap_or_default());
                        m.insert(PATCH.into(), Value::Array(patches));
                    } else {
                        // The referring node's keywords win, but `properties` and `required`
                        // join: an internally tagged newtype variant is the `$ref` to its
                        // struct next to the tag's property.
                        merge_keyword(&mut m, k, v.clone());
                    }
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
        let range = match f.as_str() {
            "int8" => Some((i64::from(i8::MIN), i64::from(i8::MAX))),
            "int16" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
            "int32" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            "uint8" => Some((0, i64::from(u8::MAX))),
            "uint16" => Some((0, i64::from(u16::MAX))),
            "uint32" => Some((0, i64::from(u32::MAX))),
            _ => None,
        };
        if let Some(range) = range.filter(|_| m.get("type") == Some(&json!("integer"))) {
            bound_integer(&mut m, range);
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
    map_values(&mut m, defs, stack);
    if let Some(not) = m.remove("not") {
        m.insert("not".into(), value_validation(not));
    }
    let mut explicit_default = false;
    if let Some(patches) = m.remove(PATCH) {
        for patch in patch_list(patches) {
            if let Value::Object(patch) = patch {
                explicit_default |= patch.contains_key("default");
                apply(&mut m, &patch);
            }
        }
    }
    m.retain(|k, _| k.starts_with("x-kubernetes-") || KNOWN.contains(&k.as_str()));
    well_known(&mut m);
    if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        m.remove("type");
    } else if !m.contains_key("type") && m.contains_key("properties") {
        m.insert("type".into(), json!("object"));
    } else if !m.contains_key("type") && !m.contains_key("x-kubernetes-preserve-unknown-fields") {
        // `{}` or only value validations: the value can be anything.
        m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    }
    if !explicit_default {
        settle_default(&mut m);
    }
    m
}

/// The validations controller-gen gives two apimachinery types that k8s-openapi's schemas
/// describe without them, recognised by their descriptions; what a `#[kdev::schema]` override
/// set already stays:
/// - a `Quantity` (`resource.Quantity`): `anyOf: [integer, string]` and the quantity
///   `pattern`, so the API server refuses `"lots"`;
/// - a `metav1.Condition`: `status` one of True, False, Unknown; `type` a qualified name of at
///   most 316 characters; `reason` 1 to 1024 characters of a CamelCase identifier; `message` at
///   most 32768 characters; `observedGeneration` at least 0.
fn well_known(m: &mut Map<String, Value>) {
    let description = m.get("description").and_then(Value::as_str).unwrap_or("");
    if description.starts_with("Quantity is a fixed-point representation of a number.")
        && flag(m, "x-kubernetes-int-or-string")
    {
        m.entry("anyOf")
            .or_insert_with(|| json!([{ "type": "integer" }, { "type": "string" }]));
        m.entry("pattern").or_insert_with(|| json!(QUANTITY_PATTERN));
        return;
    }
    if !description.starts_with("Condition contains details for one aspect of the current state of this API Resource") {
        return;
    }
    let Some(Value::Object(props)) = m.get_mut("properties") else {
        return;
    };
    let constraints = [
        ("status", json!({ "enum": ["True", "False", "Unknown"] })),
        ("type", json!({ "maxLength": 316, "pattern": CONDITION_TYPE_PATTERN })),
        (
            "reason",
            json!({ "maxLength": 1024, "minLength": 1, "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" }),
        ),
        ("message", json!({ "maxLength": 32768 })),
        ("observedGeneration", json!({ "minimum": 0 })),
    ];
    for (name, extra) in constraints {
        if let (Some(Value::Object(prop)), Value::Object(extra)) = (props.get_mut(name), extra) {
            for (k, v) in extra {
                prop.entry(k).or_insert(v);
            }
        }
    }
}

/// controller-gen's pattern for a `resource.Quantity`.
const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// controller-gen's pattern for a `metav1.Condition`'s `type`: an optional DNS subdomain prefix
/// and `/`, then a qualified name.
const CONDITION_TYPE_PATTERN: &str =
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// Fits a default serde derived (`#[serde(default)]`, which schemars serializes) to its
/// schema: `null`s of fields that are not `nullable` go (an `Option` field without
/// `skip_serializing_if`; the server refuses them as "must be of type ..."), and a default
/// that still breaks its schema's own validations (`""` under `min_length = 1`, `[]` under
/// `min_items = 1`) is dropped, as [`default_misfit`] finds it: the server would refuse the
/// whole CRD, and the Rust side still applies the serde default when it reads an object
/// without the field.
///
/// A default given explicitly (`#[kdev(default = ...)]`) is left as it is, for
/// [`default_misfit`] to report.
pub fn settle_default(schema: &mut Map<String, Value>) {
    let Some(mut default) = schema.remove("default") else {
        return;
    };
    strip_nulls(schema, &mut default);
    if default_misfit(schema, &default).is_none() {
        schema.insert("default".into(), default);
    }
}

/// Removes the `null` members of `value` whose schema (under `schema`) is not `nullable`.
fn strip_nulls(schema: &Map<String, Value>, value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|name, v| !v.is_null() || child(schema, name).is_some_and(|c| flag(c, "nullable")));
            for (name, v) in members.iter_mut() {
                if let Some(c) = child(schema, name) {
                    strip_nulls(c, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(Value::Object(item)) = schema.get("items") {
                for v in items {
                    strip_nulls(item, v);
                }
            }
        }
        _ => {}
    }
}

/// The schema of the member `name` of an object: its property, or the map's value schema.
fn child<'a>(schema: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| schema.get("additionalProperties"))
        .and_then(Value::as_object)
}

/// Why `value` does not fit the structural schema `schema`, if it does not: its type, `enum`,
/// `minLength`/`maxLength`, `minimum`/`maximum` (and their exclusive forms), `multipleOf`,
/// `minItems`/`maxItems`, `minProperties`/`maxProperties`, `required`, and the same for each
/// member and item. `pattern`, `format`, CEL rules and `allOf`/`anyOf`/`oneOf`/`not` are not
/// checked (the API server checks them when the CRD is created).
///
/// The answer names the member first (`.spec.size: must be at least 1`), from `value` down.
pub fn default_misfit(schema: &Map<String, Value>, value: &Value) -> Option<String> {
    let fail = |why: String| Some(format!(": {why}"));
    let number = |k: &str| schema.get(k).and_then(Value::as_f64);
    if value.is_null() {
        return if flag(schema, "nullable") {
            None
        } else {
            fail("must not be null".into())
        };
    }
    if flag(schema, "x-kubernetes-int-or-string") && !(value.is_string() || value.is_i64() || value.is_u64()) {
        return fail("must be an integer or a string".into());
    }
    let fits = match type_of(schema) {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !fits {
        return fail(format!("must be of type {}", type_of(schema).unwrap_or_default()));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        return fail(format!("must be one of {}", Value::Array(allowed.clone())));
    }
    let count = match value {
        Value::String(s) => Some((s.chars().count(), "minLength", "maxLength", "characters")),
        Value::Array(a) => Some((a.len(), "minItems", "maxItems", "items")),
        Value::Object(o) => Some((o.len(), "minProperties", "maxProperties", "properties")),
        _ => None,
    };
    if let Some((n, min, max, what)) = count {
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        if number(min).is_some_and(|m| n < m) {
            return fail(format!("must have at least {} {what}", schema[min]));
        }
        if number(max).is_some_and(|m| n > m) {
            return fail(format!("must have at most {} {what}", schema[max]));
        }
    }
    if let Some(x) = value.as_f64() {
        let exclusive = |k: &str| flag(schema, k);
        if let Some(min) = number("minimum")
            && (x < min || (exclusive("exclusiveMinimum") && x <= min))
        {
            return fail(format!("must be at least {}", schema["minimum"]));
        }
        if let Some(max) = number("maximum")
            && (x > max || (exclusive("exclusiveMaximum") && x >= max))
        {
            return fail(format!("must be at most {}", schema["maximum"]));
        }
        if let Some(step) = number("multipleOf")
            && step != 0.0
            && (x / step).fract() != 0.0
        {
            return fail(format!("must be a multiple of {}", schema["multipleOf"]));
        }
    }
    match value {
        Value::Object(members) => {
            for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !members.contains_key(r)
                {
                    return fail(format!("must have the required field {r:?}"));
                }
            }
            for (name, v) in members {
                if let Some(c) = child(schema, name)
                    && let Some(why) = default_misfit(c, v)
                {
                    return Some(format!(".{name}{why}"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(Value::Object(item)) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    if let Some(why) = default_misfit(item, v) {
                        return Some(format!("[{i}]{why}"));
                    }
                }
            }
        }
        _ => {}
    }
    None
}

/// The schemas directly below a structural schema node, each with its path from the node
/// (`.properties.size`, `.items`, `.additionalProperties`).
pub(crate) fn child_schemas(m: &Map<String, Value>) -> impl Iterator<Item = (String, &Value)> {
    let props = m.get("properties").and_then(Value::as_object).into_iter().flatten();
    props
        .map(|(name, s)| (format!(".properties.{name}"), s))
        .chain(m.get("items").map(|s| (".items".to_owned(), s)))
        .chain(
            m.get("additionalProperties")
                .map(|s| (".additionalProperties".to_owned(), s)),
        )
}

/// The first `default` anywhere in the structural schema `schema` that does not fit its own
/// node ([`default_misfit`]): the node's path (`.properties.size`) and why.
pub fn misfit_default(schema: &Value) -> Option<(String, String)> {
    let Value::Object(m) = schema else { return None };
    if let Some(default) = m.get("default")
        && let Some(why) = default_misfit(m, default)
    {
        return Some((String::new(), format!("default{why}")));
    }
    for (path, s) in child_schemas(m) {
        if let Some((inner, why)) = misfit_default(s) {
            return Some((format!("{path}{inner}"), why));
        }
    }
    None
}

/// A value validation (what `not`, `allOf`, `anyOf` and `oneOf` hold) in structural form: only
/// validations, never what structural schemas forbid there (`type`, `description`, `default`,
/// `nullable`, `title`, `additionalProperties`, `x-kubernetes-*`), and never a `type` or
/// `x-kubernetes-preserve-unknown-fields` added as [`rewrite`] adds them to a node. The
/// NonZero integers' `not: {const: 0}` becomes `not: {enum: [0]}`.
fn value_validation(node: Value) -> Value {
    let Value::Object(mut m) = node else {
        return Value::Object(Map::new());
    };
    if let Some(c) = m.remove("const") {
        m.insert("enum".into(), Value::Array(vec![c]));
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(n @ Value::Number(_)) = m.get(exclusive).cloned() {
            m.insert(bound.into(), n);
            m.insert(exclusive.into(), Value::Bool(true));
        }
    }
    m.retain(|k, _| {
        KNOWN.contains(&k.as_str())
            && !matches!(
                k.as_str(),
                "type"
                    | "format"
                    | "description"
                    | "default"
                    | "nullable"
                    | "title"
                    | "additionalProperties"
                    | "example"
                    | "externalDocs"
            )
    });
    if let Some(Value::Object(props)) = m.remove("properties") {
        let props = props.into_iter().map(|(k, v)| (k, value_validation(v))).collect();
        m.insert("properties".into(), Value::Object(props));
    }
    for key in ["items", "not"] {
        if let Some(v) = m.remove(key) {
            m.insert(key.into(), value_validation(v));
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = m.remove(key) {
            m.insert(key.into(), branches.into_iter().map(value_validation).collect());
        }
    }
    Value::Object(m)
}

/// Keeps an integer field of a sized Rust type within that type's range, which schemars leaves
/// open for 32-bit types (an `i32` has no bounds, a `u32` only `minimum: 0`): the API server
/// reads `format: int32` as a hint, not a limit, so without bounds it stores a value like
/// 5000000000 that the operator's own type then cannot decode, and every cache skips the
/// object. A bound the field sets itself is kept where it is tighter.
fn bound_integer(m: &mut Map<String, Value>, (lo, hi): (i64, i64)) {
    for (key, exclusive, limit) in [("minimum", "exclusiveMinimum", lo), ("maximum", "exclusiveMaximum", hi)] {
        let own = m.get(key).and_then(Value::as_f64);
        let looser = own.is_none_or(|own| {
            if key == "minimum" {
                own < limit as f64
            } else {
                own > limit as f64
            }
        });
        if looser {
            m.insert(key.into(), json!(limit));
            m.remove(exclusive);
        }
    }
}

/// What an object holds besides its `properties`, in structural form: `additionalProperties`
/// (a map's values), or keys that must match a pattern (`patternProperties`, a map with
/// integer keys), or whatever the type does not name (`unevaluatedProperties`, a flattened
/// map). Structural schemas know neither `patternProperties` nor `additionalProperties` next to
/// `properties`: a map's value schema becomes `additionalProperties` (its key pattern is not
/// checked), and a struct that also keeps other keys keeps unknown fields.
fn map_values(m: &mut Map<String, Value>, defs: &Map<String, Value>, stack: &mut Vec<String>) {
    let additional = m.remove("additionalProperties");
    let unevaluated = m.remove("unevaluatedProperties");
    let patterns = match m.remove("patternProperties") {
        Some(Value::Object(p)) if !p.is_empty() => Some(p),
        _ => None,
    };
    let closed = |v: &Option<Value>| matches!(v, None | Some(Value::Bool(false)));
    let mut values = if closed(&additional) { unevaluated } else { additional };
    if let Some(patterns) = patterns {
        let mut patterns = patterns.into_iter().map(|(_, schema)| schema);
        values = match (closed(&values), patterns.next(), patterns.next()) {
            (true, Some(only), None) => Some(only),
            _ => Some(Value::Bool(true)),
        };
    }
    let has_properties = m
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    match values {
        Some(schema @ Value::Object(_)) if !has_properties => {
            m.insert("additionalProperties".into(), rewrite(schema, defs, stack));
        }
        Some(Value::Bool(true) | Value::Object(_)) => {
            m.insert(PRESERVE.into(), Value::Bool(true));
        }
        _ => {}
    }
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
        objects(m, key, branches);
        return;
    }
    m.remove("type");
    m.insert(PRESERVE.into(), Value::Bool(true));
}

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k) == Some(&Value::Bool(true))
}

/// Object alternatives (the variants of a data enum, tagged in any of serde's ways): one object
/// with every variant's properties, and a `oneOf`/`anyOf` (`key`) whose branches tell the
/// variants apart.
///
/// The structural part accepts any variant: a property several variants spell differently is
/// joined ([`join_property`]), a variant that is a map (`additionalProperties`) or keeps unknown
/// fields makes the object keep unknown fields. Each branch holds what distinguishes its
/// variant, as value validations only: its `required` list and the `enum` of each constant
/// property (the tag of an internally or adjacently tagged enum). A `oneOf` whose branches a
/// value of one variant could satisfy twice (a unit variant's `{required: [tag]}` without the
/// tag's value) would reject valid objects: it becomes an `anyOf`; and a branch that
/// constrains nothing drops the junctor altogether.
fn objects(m: &mut Map<String, Value>, key: &str, branches: Vec<Map<String, Value>>) {
    let mut properties = Map::new();
    let mut maps = Vec::new();
    let mut open = false;
    for b in &branches {
        if let Some(Value::Object(props)) = b.get("properties") {
            for (name, schema) in props {
                match properties.get_mut(name) {
                    Some(existing) => join_property(existing, schema),
                    None => {
                        properties.insert(name.clone(), schema.clone());
                    }
                }
            }
        }
        match b.get("additionalProperties") {
            Some(schema @ Value::Object(_)) => maps.push(schema.clone()),
            Some(Value::Bool(true)) => open = true,
            _ => {}
        }
        open |= flag(b, PRESERVE);
    }
    m.insert("type".into(), json!("object"));
    let own = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(own) = own {
        for (name, schema) in properties {
            own.entry(name).or_insert(schema);
        }
    }
    let has_properties = m
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    if !has_properties {
        m.remove("properties");
    }
    if let Some(first) = maps.first() {
        // Structural schemas forbid `properties` next to `additionalProperties`.
        if !open && !has_properties && maps.len() == branches.len() && maps.iter().all(|s| s == first) {
            m.insert("additionalProperties".into(), first.clone());
        } else {
            open = true;
        }
    }
    if open {
        m.remove("additionalProperties");
        m.insert(PRESERVE.into(), Value::Bool(true));
    }
    let validations: Vec<Map<String, Value>> = branches.iter().map(distinguishing).collect();
    if validations.iter().any(Map::is_empty) {
        return;
    }
    let apart = branches
        .iter()
        .enumerate()
        .all(|(i, a)| branches.iter().enumerate().all(|(j, b)| i == j || excludes(a, b)));
    let key = if apart { key } else { "anyOf" };
    if key == "anyOf" && m.contains_key("anyOf") {
        return;
    }
    m.insert(
        key.into(),
        Value::Array(validations.into_iter().map(Value::Object).collect()),
    );
}

/// A variant's value validations: its `required` list and the `enum` of each property that
/// has one (a tag's constant).
fn distinguishing(b: &Map<String, Value>) -> Map<String, Value> {
    let mut v = Map::new();
    if let Some(Value::Array(r)) = b.get("required")
        && !r.is_empty()
    {
        v.insert("required".into(), Value::Array(r.clone()));
    }
    let constants: Map<String, Value> = b
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, schema)| Some((name.clone(), json!({ "enum": schema.get("enum")?.clone() }))))
        .collect();
    if !constants.is_empty() {
        v.insert("properties".into(), Value::Object(constants));
    }
    v
}

/// Whether no value of variant `a` satisfies variant `b`'s distinguishing validations: `b`
/// requires a property `a` never has, or a property `a` requires has disjoint `enum`s in both.
fn excludes(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let required = |m: &Map<String, Value>| -> Vec<String> {
        m.get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let constants = |m: &Map<String, Value>, name: &str| {
        m.get("properties")
            .and_then(|p| p.get(name))
            .and_then(|s| s.get("enum"))
            .and_then(Value::as_array)
            .cloned()
    };
    let a_closed = !flag(a, PRESERVE)
        && !matches!(
            a.get("additionalProperties"),
            Some(Value::Object(_) | Value::Bool(true))
        );
    let a_has = |name: &str| a.get("properties").is_some_and(|p| p.get(name).is_some());
    let missing = a_closed && required(b).iter().any(|r| !a_has(r));
    let disjoint = required(a)
        .iter()
        .any(|r| matches!((constants(a, r), constants(b, r)), (Some(x), Some(y)) if x.iter().all(|v| !y.contains(v))));
    missing || disjoint
}

/// Joins the schemas two variants give one property, so that the result accepts both: equal
/// schemas (up to their descriptions) stay, enums of one type join (an internally tagged
/// enum's tag), an integer and a string become int-or-string, objects join their properties
/// (each required only if both require it), and anything else keeps whatever it is given.
fn join_property(existing: &mut Value, other: &Value) {
    let (Value::Object(a), Value::Object(b)) = (&mut *existing, other) else {
        *existing = Value::Object(preserve());
        return;
    };
    let without_description = |m: &Map<String, Value>| {
        let mut m = m.clone();
        m.remove("description");
        m
    };
    if without_description(a) == without_description(b) {
        return;
    }
    let description = a.get("description").cloned();
    let (ta, tb) = (type_of(a).map(str::to_owned), type_of(b).map(str::to_owned));
    if ta == tb
        && let (Some(Value::Array(x)), Some(Value::Array(y))) = (a.get_mut("enum"), b.get("enum"))
    {
        for v in y {
            if !x.contains(v) {
                x.push(v.clone());
            }
        }
        return;
    }
    let int_or_string = |m: &Map<String, Value>| {
        matches!(type_of(m), Some("integer" | "string")) || flag(m, "x-kubernetes-int-or-string")
    };
    let closed = |m: &Map<String, Value>| !flag(m, PRESERVE) && !m.contains_key("additionalProperties");
    let objects = ta.as_deref() == Some("object") && tb.as_deref() == Some("object");
    let mut joined = if objects && closed(a) && closed(b) {
        let mut props = a
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, schema) in b.get("properties").and_then(Value::as_object).into_iter().flatten() {
            match props.get_mut(name) {
                Some(existing) => join_property(existing, schema),
                None => {
                    props.insert(name.clone(), schema.clone());
                }
            }
        }
        let b_required = b.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        let required: Vec<Value> = a
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| b_required.contains(r))
            .cloned()
            .collect();
        let mut m = Map::new();
        m.insert("type".into(), json!("object"));
        m.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            m.insert("required".into(), Value::Array(required));
        }
        m
    } else if int_or_string(a) && int_or_string(b) && ta != tb {
        let mut m = Map::new();
        m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
        m
    } else if objects {
        let mut m = preserve();
        m.insert("type".into(), json!("object"));
        m
    } else {
        preserve()
    };
    if let Some(d) = description {
        joined.insert("description".into(), d);
    }
    *existing = Value::Object(joined);
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
        if k == PATCH
            && let Some(own) = to.get_mut(&k)
        {
            let mut patches = patch_list(v);
            patches.extend(patch_list(own.take()));
            *own = Value::Array(patches);
        } else {
            merge_keyword(to, &k, v);
        }
    }
}

/// Merges one keyword into `to`: `properties` and `required` (and CEL rules) are joined, with
/// `to`'s schema of a property winning; for any other keyword `to` wins.
fn merge_keyword(to: &mut Map<String, Value>, k: &str, v: Value) {
    match (k, to.get_mut(k), v) {
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
            to.insert(k.to_owned(), v);
        }
    }
}

/// The schema keyword under which `#[kdev::schema]` leaves a field's or a type's overrides
/// for [`structural`]: a JSON text (or a list of them) of a patch for [`apply`].
pub const PATCH: &str = "x-kdev-patch";

/// The patches stored under [`PATCH`]: one JSON text, an object, or a list of either.
fn patch_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(list) => list.into_iter().flat_map(patch_list).collect(),
        Value::String(text) => serde_json::from_str(&text).map_or_else(|_| Vec::new(), |v| vec![v]),
        object @ Value::Object(_) => vec![object],
        _ => Vec::new(),
    }
}

/// The keywords that belong to one JSON type, dropped when a patch sets another `type`.
fn keywords_of(t: &str) -> &'static [&'static str] {
    match t {
        "object" => &[
            "properties",
            "required",
            "additionalProperties",
            "minProperties",
            "maxProperties",
            "x-kubernetes-map-type",
            "x-kubernetes-embedded-resource",
            "oneOf",
            "anyOf",
        ],
        "array" => &[
            "items",
            "minItems",
            "maxItems",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
        ],
        "string" => &["minLength", "maxLength", "pattern"],
        "integer" | "number" => &[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        ],
        _ => &[],
    }
}

/// Applies overrides (a field's or a type's `#[kdev(...)]`) to a structural schema.
///
/// Every key of `patch` replaces the schema's, except:
///
/// - `x-kubernetes-validations`: the rules are appended;
/// - `items`: the patch applies to the item schema, recursively (`items(...)`);
/// - `type`: keywords of the old type that the new one cannot carry go (`schema_type`), as
///   does `x-kubernetes-preserve-unknown-fields` unless the new type is `object`;
/// - `x-kubernetes-int-or-string: true` removes `type` and `format`;
/// - `uniqueItems: true`, which structural schemas forbid, becomes
///   `x-kubernetes-list-type: set` (unless the list already has a list type);
/// - `x-kdev-schemaless: true` first replaces the schema by one that accepts anything (keeping
///   its description), as kubebuilder's `Schemaless`;
/// - `x-kdev-require` / `x-kdev-optional` (lists of property names) add to or remove from
///   `required` (`#[kdev(required)]`, `#[kdev(optional)]`).
///
/// # Examples
///
/// ```
/// use serde_json::json;
///
/// let mut schema = json!({ "type": "array", "items": { "type": "string" } });
/// let patch = json!({ "maxItems": 3, "items": { "maxLength": 5 } });
/// kdev_crd::schema::apply(schema.as_object_mut().unwrap(), patch.as_object().unwrap());
/// assert_eq!(schema, json!({ "type": "array", "maxItems": 3, "items": { "type": "string", "maxLength": 5 } }));
/// ```
pub fn apply(schema: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.get("x-kdev-schemaless") == Some(&Value::Bool(true)) {
        schema.retain(|k, _| k == "description");
        schema.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    }
    // `type` first: it drops the old type's keywords, not the ones the patch sets.
    let ordered = patch
        .get_key_value("type")
        .into_iter()
        .chain(patch.iter().filter(|(k, _)| *k != "type"));
    for (k, v) in ordered {
        match (k.as_str(), schema.get_mut(k), v) {
            ("x-kdev-schemaless", _, _) => {}
            ("x-kubernetes-validations", Some(Value::Array(own)), Value::Array(more)) => {
                own.extend(more.iter().cloned());
            }
            ("items", Some(Value::Object(own)), Value::Object(more)) => apply(own, more),
            ("type", _, Value::String(new)) => {
                if let Some(Value::String(old)) = schema.get("type")
                    && old != new
                {
                    for key in keywords_of(&old.clone()) {
                        schema.remove(*key);
                    }
                    schema.remove("format");
                }
                if new != "object" {
                    schema.remove("x-kubernetes-preserve-unknown-fields");
                }
                schema.remove("x-kubernetes-int-or-string");
                schema.insert(k.clone(), v.clone());
            }
            ("x-kubernetes-int-or-string", _, Value::Bool(true)) => {
                schema.remove("type");
                schema.remove("format");
                schema.insert(k.clone(), v.clone());
            }
            // Structural schemas forbid `uniqueItems: true` (quadratic); a set says the same.
            ("uniqueItems", _, Value::Bool(unique)) => {
                if *unique {
                    schema.entry("x-kubernetes-list-type").or_insert(json!("set"));
                }
            }
            ("x-kdev-require", _, Value::Array(names)) => {
                let required = schema.entry("required").or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(required) = required {
                    for name in names {
                        if !required.contains(name) {
                            required.push(name.clone());
                        }
                    }
                }
            }
            ("x-kdev-optional", _, Value::Array(names)) => {
                if let Some(Value::Array(required)) = schema.get_mut("required") {
                    required.retain(|r| !names.contains(r));
                    if required.is_empty() {
                        schema.remove("required");
                    }
                }
            }
            _ => {
                schema.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Types whose schema is a string: what `min_length`, `max_length` and `pattern` apply to.
///
/// `#[derive(CustomResource)]` and `#[kdev::schema]` check it at compile time, so a string
/// validation on a number fails to build instead of producing a CRD the API server rejects.
/// Implement it for your own type whose schema is a string (a newtype over `String`, a type
/// with a custom `JsonSchema`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a string: `min_length`, `max_length` and `pattern` apply to string fields",
    label = "this field's schema is not a string",
    note = "string validations apply to `String`, `&str`, `Cow<str>`, `Box<str>`, `Quantity`, `Time` and `Option`s of them; \
            numbers take `minimum`/`maximum`, lists `min_items`/`max_items`, lists of strings `items(max_length = ...)`",
    note = "for your own string type, implement `kdev::crd::schema::StringSchema` for it"
)]
pub trait StringSchema {}

/// Types whose schema is a number: what `minimum`, `maximum`, `exclusive_minimum`,
/// `exclusive_maximum` and `multiple_of` apply to (checked at compile time, like
/// [`StringSchema`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number: `minimum`, `maximum`, `exclusive_minimum`, `exclusive_maximum` and `multiple_of` apply to numeric fields",
    label = "this field's schema is not a number",
    note = "numeric validations apply to integers, floats and `Option`s of them; \
            strings take `min_length`/`max_length`, lists `min_items`/`max_items`, lists of numbers `items(maximum = ...)`",
    note = "for your own numeric type, implement `kdev::crd::schema::NumberSchema` for it"
)]
pub trait NumberSchema {}

/// Types whose schema is an array: what `min_items`, `max_items`, `unique_items`, `list_type`,
/// `list_map_keys` and `items(...)` apply to (checked at compile time, like [`StringSchema`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a list: `min_items`, `max_items`, `unique_items`, `list_type`, `list_map_keys` and `items(...)` apply to list fields",
    label = "this field's schema is not an array",
    note = "list validations apply to `Vec`, `VecDeque`, arrays, slices, `BTreeSet`, `HashSet` and `Option`s of them; \
            maps and objects take `min_properties`/`max_properties`",
    note = "for your own list type, implement `kdev::crd::schema::ArraySchema` for it"
)]
pub trait ArraySchema {}

macro_rules! marks {
    ($trait:ident: $($t:ty),*) => { $(impl $trait for $t {})* };
}
marks!(StringSchema: String, str, std::ffi::OsString, std::path::PathBuf, char);
marks!(NumberSchema: i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);
marks!(NumberSchema: std::num::NonZeroI8, std::num::NonZeroI16, std::num::NonZeroI32, std::num::NonZeroI64);
marks!(NumberSchema: std::num::NonZeroU8, std::num::NonZeroU16, std::num::NonZeroU32, std::num::NonZeroU64);

macro_rules! wrappers {
    ($trait:ident) => {
        impl<T: $trait> $trait for Option<T> {}
        impl<T: $trait + ?Sized> $trait for Box<T> {}
        impl<T: $trait + ?Sized> $trait for std::rc::Rc<T> {}
        impl<T: $trait + ?Sized> $trait for std::sync::Arc<T> {}
        impl<T: $trait + ?Sized> $trait for &T {}
    };
}
wrappers!(StringSchema);
wrappers!(NumberSchema);
wrappers!(ArraySchema);
impl StringSchema for std::borrow::Cow<'_, str> {}
impl StringSchema for k8s_openapi::apimachinery::pkg::api::resource::Quantity {}
impl StringSchema for k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {}
impl StringSchema for k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime {}
impl<T> ArraySchema for Vec<T> {}
impl<T> ArraySchema for [T] {}
impl<T, const N: usize> ArraySchema for [T; N] {}
impl<T> ArraySchema for std::collections::VecDeque<T> {}
impl<T> ArraySchema for std::collections::BTreeSet<T> {}
impl<T, S> ArraySchema for std::collections::HashSet<T, S> {}
impl<T: Clone> ArraySchema for std::borrow::Cow<'_, [T]> {}

/// The compile-time checks the derive emits: one function per bound, so an error names it.
#[doc(hidden)]
pub mod check {
    /// Asserts `T: StringSchema`.
    pub const fn string<T: super::StringSchema + ?Sized>() {}
    /// Asserts `T: NumberSchema`.
    pub const fn number<T: super::NumberSchema + ?Sized>() {}
    /// Asserts `T: ArraySchema`.
    pub const fn array<T: super::ArraySchema + ?Sized>() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn quantities_and_conditions_get_controller_gen_s_validations() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let quantity = schema_for::<Quantity>();
        assert_eq!(quantity["x-kubernetes-int-or-string"], true);
        assert_eq!(quantity["anyOf"], json!([{ "type": "integer" }, { "type": "string" }]));
        let pattern = regex::Regex::new(quantity["pattern"].as_str().expect("a pattern")).expect("a regex");
        for good in ["1", "1Gi", "500m", "1.5", "2e3", "+1k"] {
            assert!(pattern.is_match(good), "{good}");
        }
        for bad in ["lots", "1 Gi", "1GB", ""] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
        let condition = schema_for::<Condition>();
        let props = &condition["properties"];
        assert_eq!(props["status"]["enum"], json!(["True", "False", "Unknown"]));
        assert_eq!(
            (
                props["reason"]["minLength"].clone(),
                props["reason"]["maxLength"].clone()
            ),
            (json!(1), json!(1024))
        );
        assert_eq!(props["type"]["maxLength"], 316);
        assert_eq!(props["message"]["maxLength"], 32768);
        assert_eq!(props["observedGeneration"]["minimum"], 0);
    }

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
    fn patches_carried_in_the_schema_apply_through_refs_and_options() {
        // What `#[kdev::schema]` leaves: a type-level patch on the definition and a field-level
        // one next to the `$ref` (behind an Option's `anyOf`).
        let root = json!({
            "type": "object",
            "properties": {
                "inner": { "anyOf": [{ "$ref": "#/$defs/Inner" }, { "type": "null" }],
                           "x-kdev-patch": r#"{"x-kubernetes-validations":[{"rule":"field"}]}"# },
                "direct": { "$ref": "#/$defs/Inner", "x-kdev-patch": r#"{"minProperties":1}"# }
            },
            "$defs": {
                "Inner": {
                    "type": "object",
                    "properties": { "names": { "type": "array", "items": { "type": "string" },
                                               "x-kdev-patch": r#"{"items":{"maxLength":5},"maxItems":2}"# } },
                    "required": ["names"],
                    "x-kdev-patch": r#"{"x-kubernetes-validations":[{"rule":"type"}],"x-kdev-optional":["names"]}"#
                }
            }
        });
        let schema = structural(Schema::try_from(root).unwrap());
        let inner = json!({
            "type": "object",
            "properties": { "names": { "type": "array", "items": { "type": "string", "maxLength": 5 }, "maxItems": 2 } },
        });
        let mut with_both = inner.clone();
        with_both["x-kubernetes-validations"] = json!([{ "rule": "type" }, { "rule": "field" }]);
        assert_eq!(schema["properties"]["inner"], with_both);
        let mut direct = inner;
        direct["x-kubernetes-validations"] = json!([{ "rule": "type" }]);
        direct["minProperties"] = json!(1);
        assert_eq!(schema["properties"]["direct"], direct);
    }

    #[test]
    fn type_schemaless_and_required_patches() {
        let mut schema = json!({ "type": "object", "properties": { "a": {} }, "required": ["a"], "description": "d" });
        apply(
            schema.as_object_mut().unwrap(),
            json!({ "type": "string" }).as_object().unwrap(),
        );
        assert_eq!(schema, json!({ "type": "string", "description": "d" }));
        let mut schema = json!({ "type": "object", "properties": { "a": {} }, "description": "d" });
        apply(
            schema.as_object_mut().unwrap(),
            json!({ "x-kdev-schemaless": true, "x-kubernetes-embedded-resource": true, "type": "object" })
                .as_object()
                .unwrap(),
        );
        assert_eq!(
            schema,
            json!({ "type": "object", "description": "d", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true })
        );
        let mut schema = json!({ "type": "object", "required": ["a"] });
        apply(
            schema.as_object_mut().unwrap(),
            json!({ "x-kdev-require": ["b"], "x-kdev-optional": ["a"] })
                .as_object()
                .unwrap(),
        );
        assert_eq!(schema, json!({ "type": "object", "required": ["b"] }));
        let mut schema = json!({ "type": "array", "items": { "type": "string" } });
        apply(
            schema.as_object_mut().unwrap(),
            json!({ "uniqueItems": true }).as_object().unwrap(),
        );
        assert_eq!(
            schema,
            json!({ "type": "array", "items": { "type": "string" }, "x-kubernetes-list-type": "set" })
        );
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

    /// The structural-schema rules on value validations (allOf/anyOf/oneOf/not): no `type`,
    /// `description`, `default`, `additionalProperties`, `nullable`, `title` or `x-kubernetes-*`
    /// in them, and each property they name also in the structural part next to them.
    fn assert_structural(schema: &Value, path: &str) {
        let Value::Object(m) = schema else { return };
        for (name, child) in m.get("properties").and_then(Value::as_object).into_iter().flatten() {
            assert_structural(child, &format!("{path}.{name}"));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = m.get(key) {
                assert_structural(child, &format!("{path}.{key}"));
            }
        }
        assert!(
            !(m.contains_key("properties") && m.get("additionalProperties").is_some_and(Value::is_object)),
            "{path}: properties and additionalProperties"
        );
        for (key, branch) in junctors(m) {
            assert_value_validation(branch, m, &format!("{path}.{key}"));
        }
    }

    fn junctors(m: &Map<String, Value>) -> Vec<(&'static str, &Value)> {
        let mut out = Vec::new();
        for key in ["allOf", "anyOf", "oneOf"] {
            for b in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                out.push((key, b));
            }
        }
        if let Some(not) = m.get("not") {
            out.push(("not", not));
        }
        out
    }

    fn assert_value_validation(v: &Value, structural: &Map<String, Value>, path: &str) {
        let Value::Object(v) = v else {
            panic!("{path}: not a schema")
        };
        for k in v.keys() {
            assert!(
                ![
                    "type",
                    "description",
                    "default",
                    "additionalProperties",
                    "nullable",
                    "title"
                ]
                .contains(&k.as_str())
                    && !k.starts_with("x-kubernetes-"),
                "{path}: {k} in a value validation: {v:?}"
            );
        }
        let props = structural.get("properties").and_then(Value::as_object);
        for (name, child) in v.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let Some(Value::Object(outer)) = props.and_then(|p| p.get(name)) else {
                panic!("{path}: property {name} is not in the structural part")
            };
            assert_value_validation(child, outer, &format!("{path}.{name}"));
        }
        for (key, branch) in junctors(v) {
            assert_value_validation(branch, structural, &format!("{path}.{key}"));
        }
    }

    /// How many of the `oneOf` branches of `schema` (`required` lists and property `enum`s
    /// only) `value` satisfies.
    fn one_of_matches(schema: &Value, value: &Value) -> usize {
        let branches = schema["oneOf"].as_array().cloned().unwrap_or_default();
        branches
            .iter()
            .filter(|b| {
                let required = b["required"].as_array().cloned().unwrap_or_default();
                let enums = b["properties"].as_object().cloned().unwrap_or_default();
                required.iter().all(|r| value.get(r.as_str().unwrap()).is_some())
                    && enums.iter().all(|(name, s)| {
                        value
                            .get(name)
                            .is_none_or(|v| s["enum"].as_array().unwrap().contains(v))
                    })
            })
            .count()
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct GitSource {
        url: String,
        rev: Option<String>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(tag = "type")]
    enum Internal {
        Git(GitSource),
        Empty,
        Inline { image: String, size: u32 },
        Named { size: String },
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        Git(GitSource),
        Empty,
        Num(u32),
        Text(String),
        Inline { image: String },
    }

    #[test]
    fn an_internally_tagged_enum_keeps_every_variant_s_fields_and_tells_variants_apart_by_the_tag() {
        let schema = schema_for::<Internal>();
        assert_structural(&schema, "");
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "type": { "type": "string", "enum": ["Git", "Empty", "Inline", "Named"] },
                    "url": { "type": "string" },
                    "rev": { "type": "string" },
                    "image": { "type": "string" },
                    "size": { "x-kubernetes-int-or-string": true }
                },
                "oneOf": [
                    { "required": ["type", "url"], "properties": { "type": { "enum": ["Git"] } } },
                    { "required": ["type"], "properties": { "type": { "enum": ["Empty"] } } },
                    { "required": ["type", "image", "size"], "properties": { "type": { "enum": ["Inline"] } } },
                    { "required": ["type", "size"], "properties": { "type": { "enum": ["Named"] } } }
                ]
            })
        );
        for value in [
            json!({ "type": "Git", "url": "u", "rev": "r" }),
            json!({ "type": "Empty" }),
            json!({ "type": "Inline", "image": "i", "size": 3 }),
            json!({ "type": "Named", "size": "big" }),
        ] {
            assert_eq!(one_of_matches(&schema, &value), 1, "{value}");
        }
    }

    #[test]
    fn an_adjacently_tagged_enum_keeps_content_of_every_shape() {
        let schema = schema_for::<Adjacent>();
        assert_structural(&schema, "");
        assert_eq!(
            schema["properties"],
            json!({
                "t": { "type": "string", "enum": ["Git", "Empty", "Num", "Text", "Inline"] },
                "c": { "x-kubernetes-preserve-unknown-fields": true }
            }),
            "the content differs in type between variants: it is kept as given"
        );
        for value in [
            json!({ "t": "Git", "c": { "url": "u" } }),
            json!({ "t": "Empty" }),
            json!({ "t": "Num", "c": 1 }),
            json!({ "t": "Text", "c": "x" }),
            json!({ "t": "Inline", "c": { "image": "i" } }),
        ] {
            assert_eq!(one_of_matches(&schema, &value), 1, "{value}");
        }
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(tag = "t", content = "c")]
    enum AdjacentObjects {
        Git(GitSource),
        Inline { image: String, url: String },
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(untagged)]
    enum Loose {
        Source { url: String, rev: Option<String> },
        Pinned { url: String, rev: String },
    }

    #[test]
    fn object_contents_of_several_variants_join_and_indistinct_variants_use_any_of() {
        let schema = schema_for::<AdjacentObjects>();
        assert_structural(&schema, "");
        assert_eq!(
            schema["properties"]["c"],
            json!({
                "type": "object",
                "properties": { "url": { "type": "string" }, "rev": { "type": "string" }, "image": { "type": "string" } },
                "required": ["url"]
            })
        );
        let overlapping = json!({ "oneOf": [
            { "type": "object", "properties": { "a": { "type": "string" } }, "required": ["a"] },
            { "type": "object", "properties": { "a": { "type": "string" }, "b": { "type": "string" } }, "required": ["a", "b"] }
        ] });
        let schema = structural(Schema::try_from(overlapping).unwrap());
        assert!(schema.get("oneOf").is_none(), "{{a, b}} matches both branches");
        assert_eq!(
            schema["anyOf"],
            json!([{ "required": ["a"] }, { "required": ["a", "b"] }])
        );
        // A `Pinned` value is also a valid `Source`: a oneOf would reject it.
        let schema = schema_for::<Loose>();
        assert_structural(&schema, "");
        assert!(schema.get("oneOf").is_none());
        assert_eq!(
            schema["anyOf"],
            json!([{ "required": ["url"] }, { "required": ["url", "rev"] }])
        );
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Flattened {
        name: String,
        #[serde(flatten)]
        extra: BTreeMap<String, serde_json::Value>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct FlattenedStrings {
        name: String,
        #[serde(flatten)]
        extra: BTreeMap<String, String>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(untagged)]
    enum MapOrSource {
        Map(BTreeMap<String, String>),
        Source(GitSource),
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Maps {
        ports: std::collections::HashMap<u16, String>,
        sources: BTreeMap<i32, GitSource>,
        sizes: Option<BTreeMap<i64, u8>>,
        either: MapOrSource,
    }

    #[test]
    fn maps_keep_their_entries_whatever_their_keys_and_wherever_they_are() {
        let object_with_name = json!({
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
            "x-kubernetes-preserve-unknown-fields": true
        });
        assert_eq!(
            schema_for::<Flattened>(),
            object_with_name,
            "a flattened map keeps its keys"
        );
        assert_eq!(schema_for::<FlattenedStrings>(), object_with_name);
        let schema = schema_for::<Maps>();
        assert_structural(&schema, "");
        let props = &schema["properties"];
        assert_eq!(
            props["ports"],
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
            "a map with integer keys is a map of its values"
        );
        assert_eq!(
            props["sources"]["additionalProperties"]["properties"]["url"],
            json!({ "type": "string" })
        );
        assert_eq!(
            props["sizes"],
            json!({ "type": "object", "additionalProperties": { "type": "integer", "format": "int32", "minimum": 0, "maximum": 255 } })
        );
        assert_eq!(
            props["either"],
            json!({
                "type": "object",
                "properties": { "url": { "type": "string" }, "rev": { "type": "string" } },
                "x-kubernetes-preserve-unknown-fields": true
            }),
            "an untagged map variant keeps its entries next to the other variant's fields"
        );
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct NonZeros {
        a: std::num::NonZeroI32,
        b: Option<std::num::NonZeroI64>,
        c: std::num::NonZeroI8,
        d: std::num::NonZeroU16,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Widths {
        unsigned: u32,
        signed: i32,
        #[schemars(range(min = 1, max = 10))]
        small: u32,
        #[schemars(range(max = 1e12))]
        loose: u32,
        wide: u64,
    }

    #[test]
    fn thirty_two_bit_integers_are_bounded_by_their_rust_type() {
        let schema = schema_for::<Widths>();
        let props = &schema["properties"];
        assert_eq!(
            props["unsigned"],
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295_u64 })
        );
        assert_eq!(
            props["signed"],
            json!({ "type": "integer", "format": "int32", "minimum": -2147483648, "maximum": 2147483647 })
        );
        assert_eq!(
            props["small"],
            json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 10 }),
            "a tighter bound of the field's own is kept"
        );
        assert_eq!(props["loose"]["maximum"], json!(4294967295_u64), "a looser one is not");
        assert_eq!(
            props["wide"]["maximum"],
            Value::Null,
            "64-bit types keep what schemars gives"
        );
    }

    #[test]
    fn non_zero_integers_exclude_zero_in_a_structural_not() {
        let schema = schema_for::<NonZeros>();
        assert_structural(&schema, "");
        let props = &schema["properties"];
        assert_eq!(
            props["a"],
            json!({
                "type": "integer", "format": "int32", "minimum": -2147483648, "maximum": 2147483647,
                "not": { "enum": [0] }
            })
        );
        assert_eq!(
            props["b"],
            json!({ "type": "integer", "format": "int64", "not": { "enum": [0] } })
        );
        assert_eq!(props["c"]["not"], json!({ "enum": [0] }));
        assert_eq!(props["d"]["minimum"], json!(1));
        let not = value_validation(json!({
            "type": "object", "description": "d", "default": {}, "x-kubernetes-preserve-unknown-fields": true,
            "properties": { "n": { "type": "string", "const": "x", "nullable": true } },
            "anyOf": [{ "title": "t", "exclusiveMinimum": 3 }]
        }));
        assert_eq!(
            not,
            json!({ "properties": { "n": { "enum": ["x"] } }, "anyOf": [{ "minimum": 3, "exclusiveMinimum": true }] })
        );
    }

    #[derive(Default, JsonSchema, serde::Serialize)]
    struct Probe {
        timeout: Option<u32>,
        period: u32,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct WithDefaults {
        #[serde(default)]
        probe: Probe,
        #[serde(default)]
        probes: Vec<Probe>,
    }

    #[test]
    fn a_serde_default_loses_the_nulls_its_schema_does_not_allow() {
        let schema = schema_for::<WithDefaults>();
        assert_eq!(schema["properties"]["probe"]["default"], json!({ "period": 0 }));
        assert_eq!(schema["properties"]["probes"]["default"], json!([]));
        assert_eq!(misfit_default(&schema), None);
    }

    #[test]
    fn a_serde_default_that_breaks_its_field_s_validations_is_dropped_and_an_explicit_one_reported() {
        let root = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "default": "", "x-kdev-patch": r#"{"minLength":1}"# },
                "hosts": { "type": "array", "items": { "type": "string" }, "default": [],
                           "x-kdev-patch": r#"{"minItems":1}"# },
                "size": { "type": "integer", "default": 0, "x-kdev-patch": r#"{"default":0,"minimum":1}"# },
                "mode": { "type": "string", "default": "b", "enum": ["a", "b"] }
            }
        });
        let schema = structural(Schema::try_from(root).unwrap());
        let props = &schema["properties"];
        assert!(props["name"].get("default").is_none(), "{}", props["name"]);
        assert!(props["hosts"].get("default").is_none(), "{}", props["hosts"]);
        assert_eq!(props["mode"]["default"], "b", "a default that fits stays");
        assert_eq!(props["size"]["default"], 0, "an explicit default stays, to be reported");
        assert_eq!(
            misfit_default(&schema),
            Some((".properties.size".to_owned(), "default: must be at least 1".to_owned()))
        );
    }

    #[test]
    fn default_misfit_checks_the_node_s_own_keywords_down_to_members_and_items() {
        let misfit = |schema: Value, value: Value| default_misfit(schema.as_object().unwrap(), &value);
        assert_eq!(
            misfit(json!({ "type": "string", "maxLength": 2 }), json!("abc")).as_deref(),
            Some(": must have at most 2 characters")
        );
        assert_eq!(
            misfit(json!({ "type": "integer" }), json!("1")).as_deref(),
            Some(": must be of type integer")
        );
        assert_eq!(
            misfit(
                json!({ "type": "number", "maximum": 1, "exclusiveMaximum": true }),
                json!(1.0)
            )
            .as_deref(),
            Some(": must be at most 1")
        );
        assert_eq!(
            misfit(json!({ "type": "integer", "multipleOf": 5 }), json!(7)).as_deref(),
            Some(": must be a multiple of 5")
        );
        assert_eq!(
            misfit(json!({ "type": "string", "enum": ["a"] }), json!("b")).as_deref(),
            Some(r#": must be one of ["a"]"#)
        );
        let object = json!({
            "type": "object", "required": ["a"],
            "properties": { "a": { "type": "array", "maxItems": 1, "items": { "type": "integer", "minimum": 0 } } }
        });
        assert_eq!(
            misfit(object.clone(), json!({})).as_deref(),
            Some(r#": must have the required field "a""#)
        );
        assert_eq!(
            misfit(object.clone(), json!({ "a": [-1] })).as_deref(),
            Some(".a[0]: must be at least 0")
        );
        assert_eq!(
            misfit(object.clone(), json!({ "a": [1, 2] })).as_deref(),
            Some(".a: must have at most 1 items")
        );
        assert_eq!(misfit(object, json!({ "a": [1] })), None);
        assert_eq!(
            misfit(json!({ "x-kubernetes-int-or-string": true }), json!(true)).as_deref(),
            Some(": must be an integer or a string")
        );
        assert_eq!(
            misfit(json!({ "type": "integer" }), json!(null)).as_deref(),
            Some(": must not be null")
        );
        assert_eq!(
            misfit(json!({ "type": "integer", "nullable": true }), json!(null)),
            None
        );
    }
}
