//! Parsing `#[kdev(...)]` (on the spec struct and on its fields) and the serde attributes that
//! decide the fields' names on the wire.

use proc_macro2::Span;
use serde_json::{Map, Number, Value, json};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitStr, Result, Token, UnOp};

/// The struct-level attributes.
const RESOURCE_KEYS: &[&str] = &[
    "crate",
    "group",
    "version",
    "kind",
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
    "deprecated",
    "validation",
];

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
    "min_properties",
    "max_properties",
    "default",
    "default_json",
    "nullable",
    "title",
    "validation",
    "immutable",
    "list_type",
    "list_map_keys",
    "map_type",
    "struct_type",
    "preserve_unknown_fields",
    "embedded_resource",
    "int_or_string",
];

/// Everything the struct-level `#[kdev(...)]` says.
pub(crate) struct Resource {
    pub krate: Option<syn::Path>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
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
    pub deprecated: Option<Option<String>>,
    /// Struct-level schema overrides (CEL rules on the spec).
    pub patch: Map<String, Value>,
}

/// `#[kdev(...)]` on the spec struct.
pub(crate) fn resource(attrs: &[Attribute]) -> Result<Resource> {
    let mut r = Resource {
        krate: None,
        group: None,
        version: None,
        kind: None,
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
        deprecated: None,
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
                "deprecated" => {
                    r.deprecated = Some(if meta.input.peek(Token![=]) {
                        Some(string(&meta)?.value())
                    } else {
                        None
                    })
                }
                _ => push_rule(&mut r.patch, validation(&meta)?),
            }
            Ok(())
        })?;
    }
    Ok(r)
}

/// `#[kdev(...)]` on a field: the schema keywords it sets.
pub(crate) fn field(attrs: &[Attribute]) -> Result<Map<String, Value>> {
    let mut patch = Map::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("kdev")) {
        attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, FIELD_KEYS)?;
            let k = |s: &str| s.to_owned();
            match key.as_str() {
                "minimum" | "maximum" | "multiple_of" => {
                    let n = number(&meta)?;
                    if key == "multiple_of" && n.as_f64().is_none_or(|f| f <= 0.0) {
                        return Err(meta.error("`multiple_of` must be greater than 0"));
                    }
                    patch.insert(camel(&key), Value::Number(n));
                }
                "exclusive_minimum" | "exclusive_maximum" => {
                    patch.insert(camel(&key), Value::Bool(flag(&meta)?));
                }
                "min_length" | "max_length" | "min_items" | "max_items" | "min_properties" | "max_properties" => {
                    let n = number(&meta)?;
                    if n.as_u64().is_none() {
                        return Err(meta.error(format!("`{key}` takes a non-negative integer")));
                    }
                    patch.insert(camel(&key), Value::Number(n));
                }
                "pattern" | "format" | "title" => {
                    patch.insert(k(&key), Value::String(string(&meta)?.value()));
                }
                "default" => {
                    patch.insert(k("default"), literal(&meta.value()?.parse()?)?);
                }
                "default_json" => {
                    let text = string(&meta)?;
                    let value: Value = serde_json::from_str(&text.value())
                        .map_err(|e| syn::Error::new(text.span(), format!("`default_json` is not JSON: {e}")))?;
                    patch.insert(k("default"), value);
                }
                "nullable" => {
                    patch.insert(k("nullable"), Value::Bool(flag(&meta)?));
                }
                "validation" => push_rule(&mut patch, validation(&meta)?),
                "immutable" => {
                    if flag(&meta)? {
                        push_rule(
                            &mut patch,
                            json!({ "rule": "self == oldSelf", "message": "field is immutable" }),
                        );
                    }
                }
                "list_type" => {
                    let v = one_of(&meta, &["atomic", "set", "map"])?;
                    patch.insert(k("x-kubernetes-list-type"), Value::String(v));
                }
                "list_map_keys" => {
                    let mut keys = Vec::new();
                    meta.parse_nested_meta(|key| {
                        let name = key.path.get_ident().map(ToString::to_string);
                        keys.push(Value::String(name.ok_or_else(|| key.error("expected a field name"))?));
                        Ok(())
                    })?;
                    patch.insert(k("x-kubernetes-list-map-keys"), Value::Array(keys));
                }
                "map_type" | "struct_type" => {
                    let v = one_of(&meta, &["atomic", "granular"])?;
                    patch.insert(k("x-kubernetes-map-type"), Value::String(v));
                }
                "preserve_unknown_fields" => {
                    patch.insert(k("x-kubernetes-preserve-unknown-fields"), Value::Bool(flag(&meta)?));
                }
                "embedded_resource" => {
                    if flag(&meta)? {
                        patch.insert(k("type"), json!("object"));
                        patch.insert(k("x-kubernetes-embedded-resource"), Value::Bool(true));
                    }
                }
                _ => {
                    if flag(&meta)? {
                        patch.insert(k("x-kubernetes-int-or-string"), Value::Bool(true));
                    }
                }
            }
            Ok(())
        })?;
    }
    let list_type = patch.get("x-kubernetes-list-type").and_then(Value::as_str);
    let has_keys = patch.contains_key("x-kubernetes-list-map-keys");
    let span = attrs
        .iter()
        .find(|a| a.path().is_ident("kdev"))
        .map_or_else(Span::call_site, |a| a.span());
    if list_type == Some("map") && !has_keys {
        return Err(syn::Error::new(
            span,
            "`list_type = \"map\"` needs the keys that identify an item: add `list_map_keys(name)`",
        ));
    }
    if has_keys && list_type != Some("map") {
        return Err(syn::Error::new(span, "`list_map_keys` needs `list_type = \"map\"`"));
    }
    Ok(patch)
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
        scale.insert(camel(&key), Value::String(json_path(&m)?));
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
    fn unknown_attributes_suggest_the_closest_name() {
        let attr: Attribute = syn::parse_quote!(#[kdev(min_lenght = 1)]);
        let err = field(&[attr]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown kdev attribute `min_lenght`: did you mean `min_length`?")
        );
    }

    #[test]
    fn field_attributes_become_schema_keywords() {
        let attr: Attribute = syn::parse_quote!(#[kdev(minimum = -1.5, exclusive_minimum, default = 3,
            validation(rule = "self > 0", reason = "FieldValueForbidden"), list_type = "map", list_map_keys(name))]);
        let patch = field(&[attr]).map_err(|e| e.to_string());
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
