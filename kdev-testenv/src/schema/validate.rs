//! Validation of a custom resource against its compiled schema, with kube-openapi's messages
//! (`kube-openapi/pkg/validation/validate`, mapped to causes as `kubeOpenAPIResultToFieldErrors`
//! does, then `listtype` and embedded-resource checks).

use serde_json::Value;

use super::cause::{Cause, go_float, go_quote};
use super::{Additional, Node};

/// Validates `data` against `root`: schema causes first, then list-type and embedded-resource causes.
pub(crate) fn validate(root: &Node, data: &Value) -> Vec<Cause> {
    validate_at(root, data, "")
}

/// Validates `data` as if it sat at `path` of a resource (the root of a resource when empty).
pub(crate) fn validate_at(root: &Node, data: &Value, path: &str) -> Vec<Cause> {
    let mut v = Validator::default();
    v.node(root, data, path, path.is_empty(), true);
    v.causes.extend(v.extra);
    v.causes
}

#[derive(Default)]
struct Validator {
    causes: Vec<Cause>,
    /// Causes of the passes kube runs after the OpenAPI validator.
    extra: Vec<Cause>,
}

/// The field of a cause: kube builds it from a nil root path, which prints as `<nil>`.
fn field_of(path: &str) -> &str {
    if path.is_empty() { "<nil>" } else { path }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type kube-openapi infers for decoded data (`int64` is `integer`, `float64` is `number`).
fn json_type(data: &Value) -> &'static str {
    match data {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The format kube-openapi infers for decoded data.
fn data_format(data: &Value) -> &'static str {
    match data {
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        _ => "",
    }
}

fn is_whole(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0
}

impl Validator {
    fn node(&mut self, n: &Node, data: &Value, path: &str, root: bool, structural: bool) {
        let field = field_of(path).to_owned();
        if data.is_null() {
            self.type_check(n, data, path, &field);
            self.enumeration(n, data, &field);
            return;
        }
        self.type_check(n, data, path, &field);
        self.junctors(n, data, path);
        match data {
            Value::String(s) => self.string(n, s, path, &field),
            Value::Number(num) => self.number(n, data, num.as_f64().unwrap_or(f64::NAN), path, &field),
            Value::Array(items) => self.array(n, items, path, &field, structural),
            _ => {}
        }
        self.enumeration(n, data, &field);
        if let Value::Object(map) = data {
            self.object(n, map, path, &field, root, structural);
        }
    }

    fn type_check(&mut self, n: &Node, data: &Value, path: &str, field: &str) {
        if n.types.is_empty() && n.format.is_none() {
            return;
        }
        let joined = n.types.join(",");
        if data.is_null() {
            if !n.types.is_empty() && !n.types.iter().any(|t| t == "null") && !n.nullable {
                self.type_fail(field, path, &joined, "null");
            }
            return;
        }
        let has = |t: &str| n.types.iter().any(|x| x == t);
        let sch = json_type(data);
        let float_int = sch == "number" && data.as_f64().is_some_and(is_whole) && has("integer");
        let int_float = sch == "integer" && has("number");
        let textual = matches!(data, Value::String(_) | Value::Array(_));
        if let Some(format) = &n.format {
            let fmt_ok = has(sch) || data_format(data) == format || float_int || int_float;
            if !textual && !fmt_ok {
                self.type_fail(field, path, format, data_format(data));
                return;
            }
            if !has("number") && !has("integer") && textual {
                return;
            }
        }
        if !(has(sch) || float_int || int_float) {
            self.type_fail(field, path, &joined, sch);
        }
    }

    fn type_fail(&mut self, field: &str, path: &str, expected: &str, got: &str) {
        let msg = format!("{path} in body must be of type {expected}: {}", go_quote(got));
        self.causes.push(Cause::type_invalid(field, got, &msg));
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: branch results are counted, not reported, except allOf's.
    fn junctors(&mut self, n: &Node, data: &Value, path: &str) {
        let quoted = go_quote(path);
        let composite = |msg: String| Cause::invalid_str("<nil>", "", &msg);
        if !n.all_of.is_empty() {
            let mut valid = 0;
            for branch in &n.all_of {
                let sub = self.branch(branch, data, path);
                valid += usize::from(sub.is_empty());
                self.causes.extend(sub);
            }
            if valid != n.all_of.len() {
                let extra = if valid == 0 { ". Found none valid" } else { "" };
                self.causes.push(composite(format!(
                    "{quoted} must validate all the schemas (allOf){extra}"
                )));
            }
        }
        if !n.any_of.is_empty() && !n.any_of.iter().any(|b| self.branch(b, data, path).is_empty()) {
            self.causes
                .push(composite(format!("{quoted} must validate at least one schema (anyOf)")));
        }
        if !n.one_of.is_empty() {
            let valid = n
                .one_of
                .iter()
                .filter(|b| self.branch(b, data, path).is_empty())
                .count();
            if valid != 1 {
                let extra = if valid == 0 {
                    "Found none valid".to_owned()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                self.causes.push(composite(format!(
                    "{quoted} must validate one and only one schema (oneOf). {extra}"
                )));
            }
        }
        if let Some(not) = &n.not
            && self.branch(not, data, path).is_empty()
        {
            self.causes
                .push(composite(format!("{quoted} must not validate the schema (not)")));
        }
    }

    fn branch(&self, n: &Node, data: &Value, path: &str) -> Vec<Cause> {
        let mut sub = Validator::default();
        sub.node(n, data, path, false, false);
        sub.causes
    }

    fn string(&mut self, n: &Node, s: &str, path: &str, field: &str) {
        let chars = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
        if let Some(max) = n.max_length
            && chars > max
        {
            self.causes.push(Cause::too_long(field, max));
        }
        if let Some(min) = n.min_length
            && chars < min
        {
            let msg = format!("{path} in body should be at least {min} chars long");
            self.causes.push(Cause::invalid_str(field, s, &msg));
        }
        if let Some(re) = &n.pattern
            && !re.is_match(s)
        {
            let msg = format!("{path} in body should match '{}'", re.as_str());
            self.causes.push(Cause::invalid_str(field, s, &msg));
        }
        if let Some(format) = &n.format
            && !super::format::valid(format, s)
        {
            let msg = format!("{path} in body must be of type {format}: {}", go_quote(s));
            self.causes.push(Cause::type_invalid(field, s, &msg));
        }
    }

    fn number(&mut self, n: &Node, data: &Value, x: f64, path: &str, field: &str) {
        if let Some(factor) = n.multiple_of {
            if factor <= 0.0 {
                let msg = format!(
                    "factor MultipleOf declared for {path} must be positive: {}",
                    go_float(factor)
                );
                self.causes.push(Cause::invalid(field, data, &msg));
            } else {
                let mult = if factor < 1.0 { (1.0 / factor) * x } else { x / factor };
                if !is_whole(mult) {
                    let msg = format!("{path} in body should be a multiple of {}", go_float(factor));
                    self.causes.push(Cause::invalid(field, data, &msg));
                }
            }
        }
        if let Some(max) = n.maximum {
            let (bad, word) = if n.exclusive_maximum {
                (x >= max, "less than")
            } else {
                (x > max, "less than or equal to")
            };
            if bad {
                let msg = format!("{path} in body should be {word} {}", go_float(max));
                self.causes.push(Cause::invalid(field, data, &msg));
            }
        }
        if let Some(min) = n.minimum {
            let (bad, word) = if n.exclusive_minimum {
                (x <= min, "greater than")
            } else {
                (x < min, "greater than or equal to")
            };
            if bad {
                let msg = format!("{path} in body should be {word} {}", go_float(min));
                self.causes.push(Cause::invalid(field, data, &msg));
            }
        }
    }

    fn array(&mut self, n: &Node, items: &[Value], path: &str, field: &str, structural: bool) {
        let size = i64::try_from(items.len()).unwrap_or(i64::MAX);
        if let Some(min) = n.min_items
            && size < min
        {
            let msg = format!("{path} in body should have at least {min} items");
            self.causes.push(Cause::invalid(field, &Value::from(size), &msg));
        }
        if let Some(max) = n.max_items
            && size > max
        {
            self.causes.push(Cause::too_many(field, size, max));
        }
        if n.unique_items && first_duplicates(items).next().is_some() {
            let msg = format!("{path} in body shouldn't contain duplicates");
            self.causes.push(Cause::invalid_str(field, "", &msg));
        }
        if let Some(item_schema) = &n.items {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{path}[{i}]"), false, structural);
            }
        }
        if structural {
            self.list_type(n, items, path);
        }
    }

    fn enumeration(&mut self, n: &Node, data: &Value, field: &str) {
        let Some(values) = &n.enumeration else { return };
        if values.is_empty() || values.iter().any(|e| enum_matches(e, data)) {
            return;
        }
        let supported: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        self.causes.push(Cause::not_supported(field, data, &supported));
    }

    fn object(
        &mut self,
        n: &Node,
        map: &serde_json::Map<String, Value>,
        path: &str,
        field: &str,
        root: bool,
        structural: bool,
    ) {
        let keys = i64::try_from(map.len()).unwrap_or(i64::MAX);
        if let Some(min) = n.min_properties
            && keys < min
        {
            let msg = format!("{path} in body should have at least {min} properties");
            self.causes.push(Cause::invalid(field, &Value::from(keys), &msg));
        }
        if let Some(max) = n.max_properties
            && keys > max
        {
            self.causes.push(Cause::too_many(field, keys, max));
        }
        for key in &n.required {
            if !map.contains_key(key) {
                self.causes.push(Cause::required(&child(path, key), ""));
            }
        }
        for (key, value) in map {
            let implicit = root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
            if let Some(prop) = n.properties.get(key) {
                self.node(prop, value, &child(path, key), false, structural);
                continue;
            }
            match &n.additional {
                Additional::Bool(false) if !implicit && key != "$schema" && key != "id" => {
                    let msg = format!("{path}.{key} in body is a forbidden property");
                    self.causes.push(Cause::invalid_str(field, key, &msg));
                }
                Additional::Schema(extra) => self.node(extra, value, &child(path, key), false, structural),
                _ => {}
            }
        }
        if structural && n.embedded && !root {
            self.embedded(map, path);
        }
    }

    /// `x-kubernetes-embedded-resource`: apiVersion and kind are required and checked.
    fn embedded(&mut self, map: &serde_json::Map<String, Value>, path: &str) {
        for key in ["apiVersion", "kind"] {
            let field = child(path, key);
            match map.get(key) {
                None => self.extra.push(Cause::required(&field, "must not be empty")),
                Some(Value::String(s)) if s.is_empty() => {
                    self.extra.push(Cause::invalid_str(&field, s, "must not be empty"));
                }
                Some(Value::String(s)) if key == "apiVersion" && s.matches('/').count() > 1 => {
                    let msg = format!("unexpected GroupVersion string: {s}");
                    self.extra.push(Cause::invalid_str(&field, s, &msg));
                }
                Some(Value::String(s)) if key == "kind" => {
                    if let Some(msg) = super::crd::dns1035_label(&s.to_lowercase()) {
                        let msg = format!("may have mixed case, but should otherwise match: {msg}");
                        self.extra.push(Cause::invalid_str(&field, s, &msg));
                    }
                }
                Some(Value::String(_)) => {}
                Some(other) => self.extra.push(Cause::invalid(&field, other, "must be a string")),
            }
        }
    }

    /// `x-kubernetes-list-type: set|map` uniqueness (`apiextensions-apiserver/.../listtype`).
    fn list_type(&mut self, n: &Node, items: &[Value], path: &str) {
        match n.list_type.as_deref() {
            Some("set") => {
                for i in first_duplicates(items) {
                    self.extra.push(Cause::duplicate(&format!("{path}[{i}]"), &items[i]));
                }
            }
            Some("map") => {
                let mut seen: Vec<Value> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(obj) = item else { continue };
                    let mut key = serde_json::Map::new();
                    for k in &n.list_map_keys {
                        if let Some(v) = obj.get(k) {
                            key.insert(k.clone(), v.clone());
                        }
                    }
                    let key = Value::Object(key);
                    if seen.contains(&key) {
                        self.extra.push(Cause::duplicate(&format!("{path}[{i}]"), &key));
                    } else {
                        seen.push(key);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Indexes of items equal to an earlier item.
fn first_duplicates(items: &[Value]) -> impl Iterator<Item = usize> + '_ {
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| items[..*i].contains(item))
        .map(|(i, _)| i)
}

/// Go's enum check: the data converted to the enum value's type must be deeply equal to it.
fn enum_matches(allowed: &Value, data: &Value) -> bool {
    match (allowed, data) {
        (Value::Number(a), Value::Number(d)) => match (a.as_i64(), a.as_f64(), d.as_f64()) {
            // Go converts float64 data to int64 by truncation before comparing.
            (Some(ai), _, Some(df)) => df.is_finite() && df.trunc() == ai as f64,
            (None, Some(af), Some(df)) => af == df,
            _ => false,
        },
        _ => allowed == data,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::schema::Schema;

    /// Validates `{"spec": {"f": value}}` where `f` has `field_schema`; returns `(reason, field, message)`.
    fn check(field_schema: Value, value: Value) -> Vec<(String, String, String)> {
        let schema =
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"f": field_schema}}}});
        let schema = Schema::compile(&schema).unwrap();
        schema
            .validate(&json!({"spec": {"f": value}}))
            .into_iter()
            .map(|c| (c.reason, c.field, c.message))
            .collect()
    }

    fn one(field_schema: Value, value: Value) -> String {
        let causes = check(field_schema, value);
        assert_eq!(causes.len(), 1, "{causes:?}");
        causes[0].2.clone()
    }

    #[test]
    fn type_keyword_accepts_matching_values_and_follows_kube_for_whole_floats() {
        for (ty, ok) in [
            ("integer", json!(3)),
            ("integer", json!(3.0)),
            ("number", json!(3)),
            ("number", json!(2.5)),
            ("string", json!("")),
            ("boolean", json!(false)),
            ("array", json!([])),
            ("object", json!({})),
        ] {
            assert!(check(json!({"type": ty}), ok.clone()).is_empty(), "{ty} {ok}");
        }
        let causes = check(json!({"type": "integer"}), json!("string"));
        assert_eq!(causes[0].0, "FieldValueTypeInvalid");
        assert_eq!(causes[0].1, "spec.f");
        assert_eq!(
            causes[0].2,
            r#"Invalid value: "string": spec.f in body must be of type integer: "string""#
        );
        assert_eq!(
            one(json!({"type": "integer"}), json!(2.5)),
            r#"Invalid value: "number": spec.f in body must be of type integer: "number""#
        );
    }

    #[test]
    fn null_is_allowed_only_when_nullable() {
        assert_eq!(
            one(json!({"type": "string"}), Value::Null),
            r#"Invalid value: "null": spec.f in body must be of type string: "null""#
        );
        assert!(check(json!({"type": "string", "nullable": true}), Value::Null).is_empty());
    }

    #[test]
    fn numeric_bounds_report_the_value_and_the_limit() {
        let table = [
            (
                json!({"type": "integer", "maximum": 10}),
                json!(11),
                "Invalid value: 11: spec.f in body should be less than or equal to 10",
            ),
            (
                json!({"type": "integer", "maximum": 10, "exclusiveMaximum": true}),
                json!(10),
                "Invalid value: 10: spec.f in body should be less than 10",
            ),
            (
                json!({"type": "number", "minimum": 1.5}),
                json!(1),
                "Invalid value: 1: spec.f in body should be greater than or equal to 1.5",
            ),
            (
                json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}),
                json!(0),
                "Invalid value: 0: spec.f in body should be greater than 0",
            ),
            (
                json!({"type": "integer", "multipleOf": 3}),
                json!(7),
                "Invalid value: 7: spec.f in body should be a multiple of 3",
            ),
        ];
        for (schema, value, want) in table {
            assert_eq!(one(schema, value), want);
        }
        assert!(
            check(
                json!({"type": "integer", "maximum": 10, "minimum": 0, "multipleOf": 5}),
                json!(10)
            )
            .is_empty()
        );
        assert!(check(json!({"type": "number", "multipleOf": 0.1}), json!(0.3)).is_empty());
    }

    #[test]
    fn string_keywords_count_unicode_characters() {
        assert!(check(json!({"type": "string", "maxLength": 2}), json!("éé")).is_empty());
        let causes = check(json!({"type": "string", "maxLength": 2}), json!("abc"));
        assert_eq!(
            (causes[0].0.as_str(), causes[0].2.as_str()),
            ("FieldValueTooLong", "Too long: may not be more than 2 bytes")
        );
        assert_eq!(
            one(json!({"type": "string", "minLength": 3}), json!("ab")),
            r#"Invalid value: "ab": spec.f in body should be at least 3 chars long"#
        );
        assert_eq!(
            one(json!({"type": "string", "pattern": "^[a-z]+$"}), json!("A1")),
            r#"Invalid value: "A1": spec.f in body should match '^[a-z]+$'"#
        );
        assert_eq!(
            one(json!({"type": "string", "format": "date-time"}), json!("noon")),
            r#"Invalid value: "noon": spec.f in body must be of type date-time: "noon""#
        );
        assert!(check(json!({"type": "string", "format": "int32"}), json!("not checked")).is_empty());
    }

    #[test]
    fn enum_reports_unsupported_values_with_the_supported_list() {
        let causes = check(json!({"type": "string", "enum": ["a", "b"]}), json!("x"));
        assert_eq!(causes[0].0, "FieldValueNotSupported");
        assert_eq!(causes[0].2, r#"Unsupported value: "x": supported values: "a", "b""#);
        assert_eq!(
            one(json!({"type": "integer", "enum": [1, 2]}), json!(3)),
            r#"Unsupported value: 3: supported values: "1", "2""#
        );
        assert!(check(json!({"type": "integer", "enum": [1, 2]}), json!(2)).is_empty());
    }

    #[test]
    fn array_keywords_check_size_uniqueness_and_items() {
        assert_eq!(
            one(
                json!({"type": "array", "items": {"type": "string"}, "minItems": 2}),
                json!(["a"])
            ),
            "Invalid value: 1: spec.f in body should have at least 2 items"
        );
        let causes = check(
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 1}),
            json!(["a", "b"]),
        );
        assert_eq!(
            (causes[0].0.as_str(), causes[0].2.as_str()),
            ("FieldValueTooMany", "Too many: 2: must have at most 1 items")
        );
        assert_eq!(
            one(
                json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}),
                json!(["a", "a"])
            ),
            r#"Invalid value: "": spec.f in body shouldn't contain duplicates"#
        );
        let causes = check(
            json!({"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
            json!([{}, {}, {"name": 1}]),
        );
        assert_eq!(causes[0].1, "spec.f[2].name");
    }

    #[test]
    fn object_keywords_check_required_properties_and_additional_properties() {
        let causes = check(
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}),
            json!({}),
        );
        assert_eq!(
            causes,
            [("FieldValueRequired".into(), "spec.f.a".into(), "Required value".into())]
        );
        assert_eq!(
            one(json!({"type": "object", "minProperties": 1}), json!({})),
            "Invalid value: 0: spec.f in body should have at least 1 properties"
        );
        assert_eq!(
            one(json!({"type": "object", "maxProperties": 1}), json!({"a": 1, "b": 2})),
            "Too many: 2: must have at most 1 items"
        );
        let causes = check(
            json!({"type": "object", "additionalProperties": {"type": "integer"}}),
            json!({"x": "s"}),
        );
        assert_eq!(causes[0].1, "spec.f.x");
        assert_eq!(
            one(
                json!({"type": "object", "additionalProperties": false}),
                json!({"x": 1})
            ),
            r#"Invalid value: "x": spec.f.x in body is a forbidden property"#
        );
    }

    #[test]
    fn junctors_report_composite_causes() {
        let any = json!({"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]});
        assert!(check(any.clone(), json!("bx")).is_empty());
        let causes = check(any, json!("cx"));
        assert_eq!(causes[0].1, "<nil>");
        assert_eq!(
            causes[0].2,
            r#"Invalid value: "": "spec.f" must validate at least one schema (anyOf)"#
        );
        let one_of = json!({"type": "string", "oneOf": [{"pattern": "a"}, {"pattern": "b"}]});
        assert_eq!(
            one(one_of, json!("ab")),
            r#"Invalid value: "": "spec.f" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        );
        assert_eq!(
            one(json!({"type": "string", "not": {"enum": ["x"]}}), json!("x")),
            r#"Invalid value: "": "spec.f" must not validate the schema (not)"#
        );
        let all = check(json!({"type": "integer", "allOf": [{"minimum": 5}]}), json!(1));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn int_or_string_accepts_both_and_names_both_types() {
        assert!(check(json!({"x-kubernetes-int-or-string": true}), json!(80)).is_empty());
        assert!(check(json!({"x-kubernetes-int-or-string": true}), json!("http")).is_empty());
        assert_eq!(
            one(json!({"x-kubernetes-int-or-string": true}), json!(true)),
            r#"Invalid value: "boolean": spec.f in body must be of type integer,string: "boolean""#
        );
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let schema = json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true});
        assert!(check(schema.clone(), json!({"apiVersion": "v1", "kind": "Pod"})).is_empty());
        let causes = check(schema, json!({"kind": ""}));
        assert_eq!(
            causes[0],
            (
                "FieldValueRequired".into(),
                "spec.f.apiVersion".into(),
                "Required value: must not be empty".into()
            )
        );
        assert_eq!(causes[1].2, r#"Invalid value: "": must not be empty"#);
    }

    #[test]
    fn list_types_set_and_map_reject_duplicates() {
        let set = json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert_eq!(
            check(set, json!(["a", "b", "a"])),
            [(
                "FieldValueDuplicate".into(),
                "spec.f[2]".into(),
                r#"Duplicate value: "a""#.into()
            )]
        );
        let map = json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}});
        let causes = check(
            map,
            json!([{"name": "a", "v": 1}, {"name": "b"}, {"name": "a", "v": 2}]),
        );
        assert_eq!(causes[0].1, "spec.f[2]");
        assert_eq!(causes[0].2, r#"Duplicate value: {"name":"a"}"#);
    }

    #[test]
    fn root_resource_fields_are_implicitly_allowed() {
        let schema = Schema::compile(&json!({"type": "object", "additionalProperties": false})).unwrap();
        assert!(
            schema
                .validate(&json!({"apiVersion": "a/v1", "kind": "K", "metadata": {}}))
                .is_empty()
        );
    }

    fn rich_schema() -> Schema {
        Schema::compile(&json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
            "minProperties": 1, "maxProperties": 8, "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]", "enum": ["a", "ab"]},
            "n": {"type": "number", "minimum": -1, "maximum": 1e300, "multipleOf": 0.5, "nullable": true},
            "i": {"type": "integer", "format": "int32", "exclusiveMinimum": true, "minimum": 0},
            "t": {"type": "string", "format": "date-time"},
            "port": {"x-kubernetes-int-or-string": true},
            "list": {"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": true, "x-kubernetes-list-type": "map",
                     "x-kubernetes-list-map-keys": ["k"], "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "m": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "e": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "x": {"type": "integer", "allOf": [{"minimum": 1}], "anyOf": [{"maximum": 5}], "oneOf": [{"multipleOf": 2}], "not": {"enum": [4]}}}}}}))
        .unwrap()
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            let keys = prop_oneof![
                Just("spec".to_owned()),
                Just("name".to_owned()),
                Just("n".to_owned()),
                Just("i".to_owned()),
                Just("t".to_owned()),
                Just("port".to_owned()),
                Just("list".to_owned()),
                Just("m".to_owned()),
                Just("e".to_owned()),
                Just("x".to_owned()),
                Just("k".to_owned()),
                "[a-z]{1,3}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn validate_never_panics_on_arbitrary_json_against_a_rich_schema(obj in arb_json()) {
            let schema = rich_schema();
            let causes = schema.validate(&obj);
            prop_assert!(causes.iter().all(|c| !c.reason.is_empty() && !c.message.is_empty()));
        }
    }
}
