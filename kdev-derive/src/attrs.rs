//! Parsing `#[kdev(...)]` (on the spec struct and on its fields) and the serde attributes that
//! decide the fields' names on the wire.

use proc_macro2::Span;
use serde_json::{Map, Number, Value, json};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitStr, Result, Token, UnOp};

/// The struct-level attributes.
const RESOURCE_KEYS: &[&str] = &[
    "crate",
    "group",
    "version",
    "kind",
    "struct",
    "namespaced",
    "plural",
    "singular",
    "shortname",
    "category",
    "status",
    "scale",
    "printcolumn",
    "selectable_field",
    "served",
    "storage",
    "hub",
    "deprecated",
    "annotation",
    "label",
    "validation",
    "exactly_one_of",
    "at_most_one_of",
    "at_least_one_of",
    "external_docs",
    "min_properties",
    "max_properties",
    "preserve_unknown_fields",
    "struct_type",
    "title",
];

/// The one-of helpers, on a type only.
const ONE_OF_KEYS: &[&str] = &["exactly_one_of", "at_most_one_of", "at_least_one_of"];

/// The field-level attributes.
const FIELD_KEYS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusive_minimum",
    "exclusive_maximum",
    "multiple_of",
    "min_length",
    "max_length",
    "pattern",
    "format",
    "min_items",
    "max_items",
    "unique_items",
    "min_properties",
    "max_properties",
    "enum_values",
    "schema_type",
    "default",
    "default_json",
    "example",
    "example_json",
    "nullable",
    "title",
    "external_docs",
    "validation",
    "immutable",
    "list_type",
    "list_map_keys",
    "map_type",
    "struct_type",
    "preserve_unknown_fields",
    "embedded_resource",
    "int_or_string",
    "schemaless",
    "items",
    "required",
    "optional",
];

/// What `items(...)` accepts: the validations of one array item (kubebuilder's
/// `+kubebuilder:validation:items:<Name>`).
const ITEM_KEYS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusive_minimum",
    "exclusive_maximum",
    "multiple_of",
    "min_length",
    "max_length",
    "pattern",
    "format",
    "min_items",
    "max_items",
    "unique_items",
    "min_properties",
    "max_properties",
    "enum_values",
    "schema_type",
    "nullable",
    "validation",
    "preserve_unknown_fields",
    "embedded_resource",
    "int_or_string",
];

/// A field type an attribute needs, checked at compile time (kdev-crd's marker traits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// `min_length`, `max_length`, `pattern`.
    String,
    /// `minimum`, `maximum`, their exclusive forms, `multiple_of`.
    Number,
    /// `min_items`, `max_items`, `unique_items`, `list_type`, `list_map_keys`, `items(...)`.
    Array,
}

impl Needs {
    fn of(key: &str) -> Option<Needs> {
        match key {
            "min_length" | "max_length" | "pattern" => Some(Needs::String),
            "minimum" | "maximum" | "exclusive_minimum" | "exclusive_maximum" | "multiple_of" => Some(Needs::Number),
            "min_items" | "max_items" | "unique_items" | "list_type" | "list_map_keys" | "items" => Some(Needs::Array),
            _ => None,
        }
    }
}

/// Everything the struct-level `#[kdev(...)]` says.
pub(crate) struct Resource {
    pub krate: Option<syn::Path>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub struct_name: Option<syn::Ident>,
    pub namespaced: bool,
    pub plural: Option<String>,
    pub singular: Option<String>,
    pub shortnames: Vec<String>,
    pub categories: Vec<String>,
    pub status: Option<syn::Type>,
    pub scale: Option<Value>,
    pub printcolumns: Vec<Value>,
    pub selectable_fields: Vec<String>,
    pub served: bool,
    /// `storage`, with the attribute's span (for the compile-time duplicate check).
    pub storage: Option<Span>,
    pub hub: bool,
    pub deprecated: Option<Option<String>>,
    pub annotations: Map<String, Value>,
    pub labels: Map<String, Value>,
    /// Struct-level schema overrides (CEL rules on the spec, ...).
    pub patch: Map<String, Value>,
}

/// `#[kdev(...)]` on the spec struct.
pub(crate) fn resource(attrs: &[Attribute]) -> Result<Resource> {
    let mut r = Resource {
        krate: None,
        group: None,
        version: None,
        kind: None,
        struct_name: None,
        namespaced: false,
        plural: None,
        singular: None,
        shortnames: Vec::new(),
        categories: Vec::new(),
        status: None,
        scale: None,
        printcolumns: Vec::new(),
        selectable_fields: Vec::new(),
        served: true,
        storage: None,
        hub: false,
        deprecated: None,
        annotations: Map::new(),
        labels: Map::new(),
        patch: Map::new(),
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("kdev")) {
        attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, RESOURCE_KEYS)?;
            match key.as_str() {
                "crate" => r.krate = Some(string(&meta)?.parse()?),
                "group" => r.group = Some(string(&meta)?.value()),
                "version" => r.version = Some(string(&meta)?.value()),
                "kind" => r.kind = Some(string(&meta)?.value()),
                "struct" => r.struct_name = Some(string(&meta)?.parse()?),
                "namespaced" => r.namespaced = flag(&meta)?,
                "plural" => r.plural = Some(string(&meta)?.value()),
                "singular" => r.singular = Some(string(&meta)?.value()),
                "shortname" => r.shortnames.push(string(&meta)?.value()),
                "category" => r.categories.push(string(&meta)?.value()),
                "status" => r.status = Some(string(&meta)?.parse()?),
                "scale" => r.scale = Some(scale(&meta)?),
                "printcolumn" => r.printcolumns.push(printcolumn(&meta)?),
                "selectable_field" => r.selectable_fields.push(json_path(&meta)?),
                "served" => r.served = flag(&meta)?,
                "storage" => {
                    let span = meta.path.span();
                    r.storage = flag(&meta)?.then_some(span);
                }
                "hub" => r.hub = flag(&meta)?,
                "deprecated" => {
                    r.deprecated = Some(if meta.input.peek(Token![=]) {
                        Some(string(&meta)?.value())
                    } else {
                        None
                    })
                }
                "annotation" => {
                    let (k, v) = key_value(&meta)?;
                    r.annotations.insert(k, Value::String(v));
                }
                "label" => {
                    let (k, v) = key_value(&meta)?;
                    r.labels.insert(k, Value::String(v));
                }
                _ => type_schema_key(&meta, &key, &mut r.patch)?,
            }
            Ok(())
        })?;
    }
    Ok(r)
}

/// `#[kdev(...)]` on a nested type (`#[kdev::schema]`): its type-level schema keywords (any
/// field attribute, as kubebuilder's markers on a type, and the one-of helpers), and the crate
/// path if given.
pub(crate) fn type_schema(attrs: &[Attribute]) -> Result<(Option<syn::Path>, Map<String, Value>)> {
    let mut krate = None;
    let mut patch = Map::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("kdev")) {
        attr.parse_nested_meta(|meta| {
            // Every field attribute but `required`/`optional` (which belong to a field of the
            // parent), the one-of helpers, and `crate`.
            let known: Vec<&str> = FIELD_KEYS
                .iter()
                .chain(ONE_OF_KEYS)
                .chain(&["crate"])
                .copied()
                .filter(|k| !["required", "optional"].contains(k))
                .collect();
            let key = key_of(&meta, &known)?;
            if key == "crate" {
                krate = Some(string(&meta)?.parse()?);
                return Ok(());
            }
            type_schema_key(&meta, &key, &mut patch)
        })?;
    }
    if let Some(attr) = attrs.iter().find(|a| a.path().is_ident("kdev")) {
        check_list_keys(&patch, attr.span())?;
    }
    Ok((krate, patch))
}

/// One type-level schema attribute into `patch`.
fn type_schema_key(meta: &ParseNestedMeta<'_>, key: &str, patch: &mut Map<String, Value>) -> Result<()> {
    match key {
        "exactly_one_of" | "at_most_one_of" | "at_least_one_of" => {
            let fields = idents(meta)?;
            if fields.len() < 2 {
                return Err(meta.error(format!("`{key}` names at least two fields, e.g. {key}(a, b)")));
            }
            // Resolved into a CEL rule once the fields' names on the wire are known.
            let pending = patch.entry(ONE_OF).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(pending) = pending {
                pending.push(json!({ "key": key, "fields": fields }));
            }
            Ok(())
        }
        _ => schema_key(meta, key, patch, &mut Vec::new(), &mut None),
    }
}

/// Where a type-level patch keeps its one-of helpers until [`resolve_one_of`].
const ONE_OF: &str = "x-kdev-one-of";

/// Turns the pending one-of helpers of a type-level patch into CEL rules, naming each field by
/// its name on the wire (`wire` maps a Rust field name to it).
pub(crate) fn resolve_one_of(
    patch: &mut Map<String, Value>,
    span: Span,
    wire: impl Fn(&str) -> Option<(String, bool)>,
) -> Result<()> {
    let Some(Value::Array(pending)) = patch.remove(ONE_OF) else {
        return Ok(());
    };
    for one in pending {
        let key = one["key"].as_str().unwrap_or_default().to_owned();
        let mut names = Vec::new();
        for field in one["fields"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let (name, may_be_absent) = wire(field).ok_or_else(|| {
                syn::Error::new(
                    span,
                    format!("`{key}` names `{field}`, which is not a field of this struct"),
                )
            })?;
            if !may_be_absent {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "`{key}` names `{field}`, which is always set: a field of a one-of must be able to be absent, \
                         make it an `Option<T>` (or give it `#[serde(skip_serializing_if = \"...\")]`) and do not mark it `required`"
                    ),
                ));
            }
            if cel_field(&name).is_none() {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "`{key}` names `{field}`, whose name on the wire, {name:?}, a CEL rule cannot name \
                         (Kubernetes allows `[a-zA-Z_.-/][a-zA-Z0-9_.-/]*`): rename it with #[serde(rename = \"...\")]"
                    ),
                ));
            }
            names.push(name);
        }
        push_rule(patch, one_of_rule(&key, &names));
    }
    Ok(())
}

/// CEL's reserved words, which a field name is escaped from as `__{word}__`.
const CEL_RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// How a CEL rule names the field `name`, as Kubernetes escapes property names: a reserved
/// word as `__{word}__`; `__` as `__underscores__`, `.` as `__dot__`, `-` as `__dash__`, `/` as
/// `__slash__`. `None` for a name no rule can reach (empty, starting with a digit, or with
/// other characters).
pub(crate) fn cel_field(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-/".contains(c);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || !name.chars().all(allowed) {
        return None;
    }
    if CEL_RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// The CEL rule kubebuilder generates for `ExactlyOneOf`, `AtMostOneOf` and `AtLeastOneOf`
/// (fields named by their name on the wire, escaped as Kubernetes requires).
pub(crate) fn one_of_rule(key: &str, fields: &[String]) -> Value {
    let count = fields
        .iter()
        .map(|f| format!("(has(self.{})?1:0)", cel_field(f).unwrap_or_else(|| f.clone())))
        .collect::<Vec<_>>()
        .join("+");
    let list = fields.join(" ");
    let (op, message) = match key {
        "exactly_one_of" => ("==", format!("exactly one of the fields in [{list}] must be set")),
        "at_most_one_of" => ("<=", format!("at most one of the fields in [{list}] may be set")),
        _ => (">=", format!("at least one of the fields in [{list}] must be set")),
    };
    json!({ "rule": format!("{count} {op} 1"), "message": message })
}

/// What `#[kdev(...)]` on one field says.
pub(crate) struct Field {
    /// The schema keywords it sets on the field's schema.
    pub patch: Map<String, Value>,
    /// The field types its attributes need, each with the attribute's name.
    pub needs: Vec<(Needs, String)>,
    /// `required` (true) or `optional` (false), overriding what the type says.
    pub required: Option<bool>,
}

/// `#[kdev(...)]` on a field.
pub(crate) fn field(attrs: &[Attribute]) -> Result<Field> {
    let mut out = Field {
        patch: Map::new(),
        needs: Vec::new(),
        required: None,
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("kdev")) {
        attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, FIELD_KEYS)?;
            schema_key(&meta, &key, &mut out.patch, &mut out.needs, &mut out.required)
        })?;
    }
    let span = attrs
        .iter()
        .find(|a| a.path().is_ident("kdev"))
        .map_or_else(Span::call_site, |a| a.span());
    check_list_keys(&out.patch, span)?;
    if out.required == Some(true) && out.patch.contains_key("default") {
        return Err(syn::Error::new(
            span,
            "a `required` field with a `default` is never missing: drop one of them",
        ));
    }
    Ok(out)
}

/// What the attributes alone show a list's type breaks: keys without a `map` list or a `map`
/// list without keys, nullable items of a `set` or `map` list (`list_map_keys` itself refuses
/// no key and a key named twice). (What needs the item type's
/// schema, that each key is a required or defaulted scalar field of the items and that a set's
/// items are atomic, kdev-crd checks when it assembles the CRD: `Error::InvalidListType`.)
fn check_list_keys(patch: &Map<String, Value>, span: Span) -> Result<()> {
    let list_type = patch.get("x-kubernetes-list-type").and_then(Value::as_str);
    let has_keys = patch.contains_key("x-kubernetes-list-map-keys");
    if list_type == Some("map") && !has_keys {
        return Err(syn::Error::new(
            span,
            "`list_type = \"map\"` needs the keys that identify an item: add `list_map_keys(name)`",
        ));
    }
    if has_keys && list_type != Some("map") {
        return Err(syn::Error::new(span, "`list_map_keys` needs `list_type = \"map\"`"));
    }
    if let Some(t @ ("set" | "map")) = list_type
        && patch.get("items").and_then(|i| i.get("nullable")) == Some(&Value::Bool(true))
    {
        return Err(syn::Error::new(
            span,
            format!("the items of a `list_type = \"{t}\"` list cannot be `nullable`: drop it from `items(...)`"),
        ));
    }
    Ok(())
}

/// One schema attribute (`key`, already checked against its position's list) into `patch`.
fn schema_key(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    patch: &mut Map<String, Value>,
    needs: &mut Vec<(Needs, String)>,
    required: &mut Option<bool>,
) -> Result<()> {
    if let Some(n) = Needs::of(key) {
        needs.push((n, key.to_owned()));
    }
    let k = |s: &str| s.to_owned();
    match key {
        "minimum" | "maximum" | "multiple_of" => {
            let n = number(meta)?;
            if key == "multiple_of" && n.as_f64().is_none_or(|f| f <= 0.0) {
                return Err(meta.error("`multiple_of` must be greater than 0"));
            }
            patch.insert(camel(key), Value::Number(n));
        }
        "exclusive_minimum" | "exclusive_maximum" | "unique_items" => {
            patch.insert(camel(key), Value::Bool(flag(meta)?));
        }
        "min_length" | "max_length" | "min_items" | "max_items" | "min_properties" | "max_properties" => {
            let n = number(meta)?;
            if n.as_u64().is_none() {
                return Err(meta.error(format!("`{key}` takes a non-negative integer")));
            }
            patch.insert(camel(key), Value::Number(n));
        }
        "pattern" | "format" | "title" => {
            patch.insert(k(key), Value::String(string(meta)?.value()));
        }
        "schema_type" => {
            let t = one_of(meta, &["string", "integer", "number", "boolean", "object", "array"])?;
            patch.insert(k("type"), Value::String(t));
        }
        "enum_values" => {
            let list: syn::ExprArray = meta.value()?.parse()?;
            let values = list.elems.iter().map(literal).collect::<Result<Vec<_>>>()?;
            if values.is_empty() {
                return Err(meta.error("`enum_values` lists the allowed values, e.g. enum_values = [\"a\", \"b\"]"));
            }
            patch.insert(k("enum"), Value::Array(values));
        }
        "default" | "example" => {
            patch.insert(k(key), literal(&meta.value()?.parse()?)?);
        }
        "default_json" | "example_json" => {
            let text = string(meta)?;
            let value: Value = serde_json::from_str(&text.value())
                .map_err(|e| syn::Error::new(text.span(), format!("`{key}` is not JSON: {e}")))?;
            patch.insert(k(key.trim_end_matches("_json")), value);
        }
        "nullable" => {
            patch.insert(k("nullable"), Value::Bool(flag(meta)?));
        }
        "external_docs" => {
            let mut docs = Map::new();
            meta.parse_nested_meta(|m| {
                let key = key_of(&m, &["url", "description"])?;
                docs.insert(key, Value::String(string(&m)?.value()));
                Ok(())
            })?;
            if !docs.contains_key("url") {
                return Err(meta.error("`external_docs` needs a `url`: external_docs(url = \"https://...\")"));
            }
            patch.insert(k("externalDocs"), Value::Object(docs));
        }
        "validation" => push_rule(patch, validation(meta)?),
        "immutable" => {
            if flag(meta)? {
                push_rule(
                    patch,
                    json!({ "rule": "self == oldSelf", "message": "field is immutable" }),
                );
            }
        }
        "list_type" => {
            let v = one_of(meta, &["atomic", "set", "map"])?;
            patch.insert(k("x-kubernetes-list-type"), Value::String(v));
        }
        "list_map_keys" => {
            let keys = list_map_keys(meta)?;
            patch.insert(
                k("x-kubernetes-list-map-keys"),
                Value::Array(keys.into_iter().map(Value::String).collect()),
            );
        }
        "map_type" | "struct_type" => {
            let v = one_of(meta, &["atomic", "granular"])?;
            patch.insert(k("x-kubernetes-map-type"), Value::String(v));
        }
        "preserve_unknown_fields" => {
            patch.insert(k("x-kubernetes-preserve-unknown-fields"), Value::Bool(flag(meta)?));
        }
        "embedded_resource" => {
            if flag(meta)? {
                patch.insert(k("type"), json!("object"));
                patch.insert(k("x-kubernetes-embedded-resource"), Value::Bool(true));
            }
        }
        "int_or_string" => {
            if flag(meta)? {
                patch.insert(k("x-kubernetes-int-or-string"), Value::Bool(true));
            }
        }
        "schemaless" => {
            if flag(meta)? {
                patch.insert(k(SCHEMALESS), Value::Bool(true));
            }
        }
        "required" => *required = Some(flag(meta)?),
        "optional" => *required = Some(!flag(meta)?),
        _ => {
            // items(...)
            let mut item = Map::new();
            meta.parse_nested_meta(|m| {
                let key = key_of(&m, ITEM_KEYS)?;
                schema_key(&m, &key, &mut item, &mut Vec::new(), &mut None)
            })?;
            if item.is_empty() {
                return Err(meta.error("`items(...)` holds the validations of each item, e.g. items(max_length = 63)"));
            }
            patch.insert(k("items"), Value::Object(item));
        }
    }
    Ok(())
}

/// kdev-crd's patch keyword for `schemaless` (see `kdev_crd::schema::apply`).
const SCHEMALESS: &str = "x-kdev-schemaless";

/// `(a, b, c)`: field names.
fn idents(meta: &ParseNestedMeta<'_>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    meta.parse_nested_meta(|key| {
        let name = key.path.get_ident().map(ToString::to_string);
        names.push(name.ok_or_else(|| key.error("expected a field name"))?);
        Ok(())
    })?;
    Ok(names)
}

/// `(name, protocol)`: the keys of a `map` list, at least one, each once.
fn list_map_keys(meta: &ParseNestedMeta<'_>) -> Result<Vec<String>> {
    let content;
    syn::parenthesized!(content in meta.input);
    let keys = Punctuated::<syn::Ident, Token![,]>::parse_terminated_with(&content, syn::Ident::parse_any)?;
    if keys.is_empty() {
        return Err(meta.error(
            "`list_map_keys()` names no key: name the fields that identify an item, e.g. `list_map_keys(name)`",
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for key in keys {
        let name = key.to_string().trim_start_matches("r#").to_owned();
        if names.contains(&name) {
            return Err(syn::Error::new(
                key.span(),
                format!("`list_map_keys` names `{name}` twice: name each key once"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// `"key=value"` (kubebuilder's `metadata:annotations=k=v`).
fn key_value(meta: &ParseNestedMeta<'_>) -> Result<(String, String)> {
    let s = string(meta)?;
    match s.value().split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(syn::Error::new(
            s.span(),
            "expected \"key=value\", e.g. annotation = \"example.com/owner=team-a\"",
        )),
    }
}

/// The attribute's name, or an error naming the closest known one.
fn key_of(meta: &ParseNestedMeta<'_>, known: &[&str]) -> Result<String> {
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .ok_or_else(|| meta.error("expected an attribute name"))?;
    let key = key.trim_start_matches("r#").to_owned();
    if known.contains(&key.as_str()) {
        return Ok(key);
    }
    let closest = known
        .iter()
        .map(|k| (distance(k, &key), *k))
        .filter(|(d, _)| *d <= 3)
        .min();
    Err(match closest {
        Some((_, k)) => meta.error(format!("unknown kdev attribute `{key}`: did you mean `{k}`?")),
        None => meta.error(format!(
            "unknown kdev attribute `{key}`; known here: {}",
            known.join(", ")
        )),
    })
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn camel(snake: &str) -> String {
    rename(snake, "camelCase")
}

fn string(meta: &ParseNestedMeta<'_>) -> Result<LitStr> {
    meta.value()?.parse()
}

/// A bare flag (`namespaced`) or an explicit `= true`/`= false`.
fn flag(meta: &ParseNestedMeta<'_>) -> Result<bool> {
    if meta.input.peek(Token![=]) {
        Ok(meta.value()?.parse::<syn::LitBool>()?.value)
    } else {
        Ok(true)
    }
}

fn one_of(meta: &ParseNestedMeta<'_>, allowed: &[&str]) -> Result<String> {
    let s = string(meta)?;
    if allowed.contains(&s.value().as_str()) {
        Ok(s.value())
    } else {
        Err(syn::Error::new(
            s.span(),
            format!("expected one of: {}", allowed.join(", ")),
        ))
    }
}

fn json_path(meta: &ParseNestedMeta<'_>) -> Result<String> {
    let s = string(meta)?;
    if s.value().starts_with('.') {
        Ok(s.value())
    } else {
        Err(syn::Error::new(
            s.span(),
            "a JSON path starts with `.`, e.g. \".spec.replicas\"",
        ))
    }
}

fn number(meta: &ParseNestedMeta<'_>) -> Result<Number> {
    let expr: Expr = meta.value()?.parse()?;
    match literal(&expr)? {
        Value::Number(n) => Ok(n),
        _ => Err(syn::Error::new(expr.span(), "expected a number")),
    }
}

/// A Rust literal (optionally negated) as JSON.
fn literal(expr: &Expr) -> Result<Value> {
    let (negative, lit) = match expr {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), expr, ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            other => return Err(syn::Error::new(other.span(), "expected a literal")),
        },
        other => {
            return Err(syn::Error::new(
                other.span(),
                "expected a literal (a string, number or bool); use `default_json = \"...\"` for objects and arrays",
            ));
        }
    };
    let sign = if negative { "-" } else { "" };
    let number = |text: String| {
        serde_json::from_str::<Number>(&text).map_err(|_| syn::Error::new(lit.span(), "not a JSON number"))
    };
    match lit {
        Lit::Int(i) => number(format!("{sign}{}", i.base10_digits())).map(Value::Number),
        Lit::Float(f) => number(format!("{sign}{}", f.base10_digits())).map(Value::Number),
        Lit::Bool(b) if !negative => Ok(Value::Bool(b.value)),
        Lit::Str(s) if !negative => Ok(Value::String(s.value())),
        other => Err(syn::Error::new(other.span(), "expected a string, number or bool")),
    }
}

fn push_rule(patch: &mut Map<String, Value>, rule: Value) {
    let rules = patch
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(rules) = rules {
        rules.push(rule);
    }
}

/// `validation(rule = "...", message = "...", message_expression = "...", reason = "...",
/// field_path = "...", optional_old_self)`.
fn validation(meta: &ParseNestedMeta<'_>) -> Result<Value> {
    let mut rule = Map::new();
    meta.parse_nested_meta(|m| {
        let key = key_of(
            &m,
            &[
                "rule",
                "message",
                "message_expression",
                "reason",
                "field_path",
                "optional_old_self",
            ],
        )?;
        match key.as_str() {
            "optional_old_self" => {
                rule.insert(camel(&key), Value::Bool(flag(&m)?));
            }
            "reason" => {
                let reason = one_of(
                    &m,
                    &[
                        "FieldValueInvalid",
                        "FieldValueForbidden",
                        "FieldValueRequired",
                        "FieldValueDuplicate",
                    ],
                )?;
                rule.insert(key, Value::String(reason));
            }
            _ => {
                rule.insert(camel(&key), Value::String(string(&m)?.value()));
            }
        }
        Ok(())
    })?;
    if !rule.contains_key("rule") {
        return Err(meta.error("a validation needs its CEL expression: `validation(rule = \"self.x > 0\")`"));
    }
    Ok(Value::Object(rule))
}

/// `scale(spec_replicas_path = "...", status_replicas_path = "...", label_selector_path = "...")`.
fn scale(meta: &ParseNestedMeta<'_>) -> Result<Value> {
    let mut scale = Map::new();
    meta.parse_nested_meta(|m| {
        let key = key_of(
            &m,
            &["spec_replicas_path", "status_replicas_path", "label_selector_path"],
        )?;
        let path = json_path(&m)?;
        // kube-apiserver's rules for the scale subresource's paths.
        let (ok, under) = match key.as_str() {
            "spec_replicas_path" => (path.starts_with(".spec."), "`.spec.`"),
            "status_replicas_path" => (path.starts_with(".status."), "`.status.`"),
            _ => (
                path.starts_with(".spec.") || path.starts_with(".status."),
                "`.spec.` or `.status.`",
            ),
        };
        if !ok {
            return Err(m.error(format!(
                "`{key}` must be a path under {under}, e.g. \"{}\"",
                match key.as_str() {
                    "status_replicas_path" => ".status.replicas",
                    "label_selector_path" => ".status.selector",
                    _ => ".spec.replicas",
                }
            )));
        }
        scale.insert(camel(&key), Value::String(path));
        Ok(())
    })?;
    for required in ["specReplicasPath", "statusReplicasPath"] {
        if !scale.contains_key(required) {
            return Err(meta.error(
                "the scale subresource needs `spec_replicas_path` and `status_replicas_path`, \
                 e.g. scale(spec_replicas_path = \".spec.replicas\", status_replicas_path = \".status.replicas\")",
            ));
        }
    }
    Ok(Value::Object(scale))
}

/// `printcolumn(name = "...", type = "...", json_path = "...", format, description, priority)`.
fn printcolumn(meta: &ParseNestedMeta<'_>) -> Result<Value> {
    let mut column = Map::new();
    meta.parse_nested_meta(|m| {
        let key = key_of(&m, &["name", "type", "json_path", "format", "description", "priority"])?;
        let value = match key.as_str() {
            "type" => Value::String(one_of(&m, &["integer", "number", "string", "boolean", "date"])?),
            "format" => Value::String(one_of(
                &m,
                &[
                    "int32",
                    "int64",
                    "float",
                    "double",
                    "byte",
                    "date",
                    "date-time",
                    "password",
                ],
            )?),
            "json_path" => Value::String(json_path(&m)?),
            "priority" => {
                let n = number(&m)?;
                if n.as_i64().is_none_or(|p| p < 0 || p > i64::from(i32::MAX)) {
                    return Err(m.error("`priority` is a non-negative integer"));
                }
                Value::Number(n)
            }
            _ => Value::String(string(&m)?.value()),
        };
        column.insert(camel(&key), value);
        Ok(())
    })?;
    for required in ["name", "type", "jsonPath"] {
        if !column.contains_key(required) {
            return Err(meta.error(
                "a printer column needs `name`, `type` and `json_path`, \
                 e.g. printcolumn(name = \"Replicas\", type = \"integer\", json_path = \".spec.replicas\")",
            ));
        }
    }
    Ok(Value::Object(column))
}

/// What serde says about a field: its name on the wire, or that it is not a plain field.
pub(crate) struct SerdeField {
    pub rename: Option<String>,
    pub skipped: bool,
    pub flattened: bool,
    /// `skip_serializing_if`: the field can be absent from what a typed client sends.
    pub skip_if: bool,
}

/// `#[serde(rename_all = "...")]` on the struct (the deserialize side is what the schema follows).
pub(crate) fn serde_rename_all(attrs: &[Attribute]) -> Option<String> {
    let mut out = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                if meta.input.peek(Token![=]) {
                    out = Some(string(&meta)?.value());
                } else {
                    meta.parse_nested_meta(|m| {
                        let v = string(&m)?.value();
                        if m.path.is_ident("deserialize") {
                            out = Some(v);
                        }
                        Ok(())
                    })?;
                }
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        });
    }
    out
}

/// The serde attributes of one field that change its place in the schema.
pub(crate) fn serde_field(attrs: &[Attribute]) -> SerdeField {
    let mut out = SerdeField {
        rename: None,
        skipped: false,
        flattened: false,
        skip_if: false,
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") && meta.input.peek(Token![=]) {
                out.rename = Some(string(&meta)?.value());
            } else if meta.path.is_ident("rename") {
                meta.parse_nested_meta(|m| {
                    let v = string(&m)?.value();
                    if m.path.is_ident("deserialize") {
                        out.rename = Some(v);
                    }
                    Ok(())
                })?;
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                out.skipped = true;
            } else if meta.path.is_ident("flatten") {
                out.flattened = true;
            } else if meta.path.is_ident("skip_serializing_if") {
                out.skip_if = true;
                skip_value(&meta)?;
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        });
    }
    out
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|m| skip_value(&m))?;
    }
    Ok(())
}

/// A snake_case field name under serde's `rename_all` rule.
pub(crate) fn rename(field: &str, rule: &str) -> String {
    let words: Vec<&str> = field.split('_').filter(|w| !w.is_empty()).collect();
    let capitalize = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
    };
    match rule {
        "lowercase" => field.to_lowercase(),
        "UPPERCASE" => field.to_uppercase(),
        "PascalCase" => words.iter().map(|w| capitalize(w)).collect(),
        "camelCase" => words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { (*w).to_owned() } else { capitalize(w) })
            .collect(),
        "SCREAMING_SNAKE_CASE" => field.to_uppercase(),
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.replace('_', "-").to_uppercase(),
        _ => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_rename_rules_match_serde() {
        assert_eq!(rename("image_pull_policy", "camelCase"), "imagePullPolicy");
        assert_eq!(rename("image_pull_policy", "PascalCase"), "ImagePullPolicy");
        assert_eq!(rename("image_pull_policy", "kebab-case"), "image-pull-policy");
        assert_eq!(rename("image_pull_policy", "SCREAMING_SNAKE_CASE"), "IMAGE_PULL_POLICY");
        assert_eq!(rename("replicas", "camelCase"), "replicas");
    }

    #[test]
    fn cel_rules_name_fields_as_kubernetes_escapes_them() {
        assert_eq!(cel_field("image").as_deref(), Some("image"));
        assert_eq!(cel_field("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(cel_field("my-field").as_deref(), Some("my__dash__field"));
        assert_eq!(cel_field("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(cel_field("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(cel_field("snake_case").as_deref(), Some("snake_case"));
        assert_eq!(cel_field("1st"), None);
        assert_eq!(cel_field("a b"), None);
        let rule = one_of_rule("exactly_one_of", &["namespace".into(), "git-repo".into()]);
        assert_eq!(
            rule["rule"],
            "(has(self.__namespace__)?1:0)+(has(self.git__dash__repo)?1:0) == 1"
        );
    }

    #[test]
    fn unknown_attributes_suggest_the_closest_name() {
        let attr: Attribute = syn::parse_quote!(#[kdev(min_lenght = 1)]);
        let err = field(&[attr]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown kdev attribute `min_lenght`: did you mean `min_length`?")
        );
    }

    #[test]
    fn list_map_keys_name_each_key_once_and_list_items_are_not_nullable() {
        let err = |attr: Attribute| field(&[attr]).err().map(|e| e.to_string());
        assert_eq!(
            err(syn::parse_quote!(#[kdev(list_type = "map", list_map_keys())])).as_deref(),
            Some("`list_map_keys()` names no key: name the fields that identify an item, e.g. `list_map_keys(name)`")
        );
        assert_eq!(
            err(syn::parse_quote!(#[kdev(list_type = "map", list_map_keys(name, port, name))])).as_deref(),
            Some("`list_map_keys` names `name` twice: name each key once")
        );
        assert_eq!(
            err(syn::parse_quote!(#[kdev(list_type = "set", items(nullable))])).as_deref(),
            Some("the items of a `list_type = \"set\"` list cannot be `nullable`: drop it from `items(...)`")
        );
        assert_eq!(
            err(syn::parse_quote!(#[kdev(list_type = "atomic", items(nullable))])),
            None
        );
        let attr: Attribute = syn::parse_quote!(#[kdev(list_type = "map", list_map_keys(type, r#port))]);
        let keys = field(&[attr]).map(|f| f.patch["x-kubernetes-list-map-keys"].clone());
        assert_eq!(
            keys.ok(),
            Some(json!(["type", "port"])),
            "keywords and raw identifiers name keys"
        );
    }

    #[test]
    fn field_attributes_become_schema_keywords() {
        let attr: Attribute = syn::parse_quote!(#[kdev(minimum = -1.5, exclusive_minimum, default = 3,
            validation(rule = "self > 0", reason = "FieldValueForbidden"), list_type = "map", list_map_keys(name))]);
        let patch = field(&[attr]).map(|f| f.patch).map_err(|e| e.to_string());
        assert_eq!(
            patch.map(Value::Object),
            Ok(json!({
                "minimum": -1.5, "exclusiveMinimum": true, "default": 3,
                "x-kubernetes-validations": [{ "rule": "self > 0", "reason": "FieldValueForbidden" }],
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]
            }))
        );
    }
}
