//! Field-level validation causes, worded as kube-apiserver words them in a `metav1.Status`
//! ([`field.Error`](https://github.com/kubernetes/apimachinery/blob/master/pkg/util/validation/field/errors.go)).

use serde_json::Value;

/// One field-level reason a request was rejected: a `metav1.StatusCause`.
///
/// `message` is what Go's `field.Error.ErrorBody()` returns (the type, the bad value and the
/// detail, without the field), which is what kube-apiserver puts into `status.details.causes`.
#[doc(alias = "StatusCause")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The `metav1.CauseType`, such as `FieldValueRequired` or `FieldValueInvalid`.
    pub reason: String,
    /// The error body, such as `Invalid value: 11: spec.replicas in body should be less than or equal to 10`.
    pub message: String,
    /// The field path, such as `spec.items[2].name`.
    pub field: String,
}

impl Cause {
    fn new(reason: &str, field: &str, message: String) -> Self {
        Cause {
            reason: reason.to_owned(),
            message,
            field: field.to_owned(),
        }
    }

    /// A cause whose message is already rendered.
    pub(crate) fn with_message(reason: &str, field: &str, message: String) -> Self {
        Self::new(reason, field, message)
    }

    /// `field.Required`: `Required value` plus the detail when there is one.
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueRequired",
            field,
            with_detail("Required value".to_owned(), detail),
        )
    }

    /// `field.Forbidden`: `Forbidden` plus the detail.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueForbidden",
            field,
            with_detail("Forbidden".to_owned(), detail),
        )
    }

    /// `field.Invalid` with a JSON bad value, rendered as Go prints an unstructured value.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            with_detail(format!("Invalid value: {}", go_value(value)), detail),
        )
    }

    /// `field.Invalid` with a string bad value (printed quoted, as Go's `%q`).
    pub fn invalid_str(field: &str, value: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            with_detail(format!("Invalid value: {}", go_quote(value)), detail),
        )
    }

    /// `field.Invalid` whose bad value is already rendered (a Go struct or slice, rendered with
    /// [`go_json_struct`] or [`go_json_strings`]).
    pub fn invalid_raw(field: &str, rendered: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            with_detail(format!("Invalid value: {rendered}"), detail),
        )
    }

    /// `field.TypeInvalid`: the bad value is the JSON type name the data had.
    pub fn type_invalid(field: &str, value: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueTypeInvalid",
            field,
            with_detail(format!("Invalid value: {}", go_quote(value)), detail),
        )
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[String]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            "FieldValueNotSupported",
            field,
            with_detail(format!("Unsupported value: {}", go_value(value)), &detail),
        )
    }

    /// `field.TooLong`: the value is omitted, the limit is given in bytes (as kube words it).
    pub fn too_long(field: &str, max: i64) -> Self {
        let detail = match max {
            1 => "may not be more than 1 byte".to_owned(),
            m if m >= 0 => format!("may not be more than {m} bytes"),
            _ => "value is too long".to_owned(),
        };
        Self::new("FieldValueTooLong", field, with_detail("Too long".to_owned(), &detail))
    }

    /// `field.TooMany`: `Too many: 5: must have at most 3 items` (kube says items for properties too).
    pub fn too_many(field: &str, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_owned()
        };
        let head = if actual >= 0 {
            format!("Too many: {actual}")
        } else {
            "Too many".to_owned()
        };
        Self::new("FieldValueTooMany", field, with_detail(head, &detail))
    }

    /// `field.Duplicate`: `Duplicate value: "a"`.
    pub fn duplicate(field: &str, value: &Value) -> Self {
        Self::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", go_value(value)),
        )
    }

    /// The Go `field.Error.Error()` rendering: `field: message`.
    pub fn to_error_string(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn with_detail(mut head: String, detail: &str) -> String {
    if !detail.is_empty() {
        head.push_str(": ");
        head.push_str(detail);
    }
    head
}

/// Renders the `message` of an `Invalid` Status: `Kind.group "name" is invalid: ...`.
///
/// Mirrors `apierrors.NewInvalid`: duplicate causes are dropped, one cause is printed bare and
/// several are printed as `[a, b]`; with no causes the message ends after `is invalid`.
pub fn status_message(qualified_kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for cause in causes {
        let rendered = cause.to_error_string();
        if !seen.contains(&rendered) {
            seen.push(rendered);
        }
    }
    let head = format!("{qualified_kind} {} is invalid", go_quote(name));
    match seen.as_slice() {
        [] => head,
        [one] => format!("{head}: {one}"),
        many => format!("{head}: [{}]", many.join(", ")),
    }
}

/// Quotes a string as Go's `%q` (`strconv.Quote`) does for printable text.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prints a float as Go's `%v` does: shortest digits, exponent form when the exponent is below -4
/// or at least 6 (`1e+06`, `1.5e-05`), as `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".to_owned()
        } else {
            "0".to_owned()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Go's 'g' with precision -1.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        go_exp(mantissa, exp)
    } else {
        format!("{f}")
    }
}

fn go_exp(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Prints a JSON number as Go prints the `int64` or `float64` the unstructured decoder made of it.
pub fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Renders a JSON value as `field.Error.ErrorBody()` renders an unstructured bad value.
///
/// Scalars print as Go's `%v` (numbers, booleans) and `%q` (strings) print them. Since
/// Kubernetes 1.34 anything else (`nil`, maps, slices) is printed as `json.Marshal` prints it:
/// `null`, `{"a":1}`, `["x"]` (see [`go_json`]).
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Null | Value::Array(_) | Value::Object(_) => go_json(value),
    }
}

/// Renders a JSON value as Go's `json.Marshal` renders the unstructured value (or the map,
/// slice or scalar) it decodes to: compact, object keys sorted (Go sorts map keys), `<`, `>` and
/// `&` escaped as `\u003c`, `\u003e` and `\u0026`, numbers as Go encodes an `int64` or a
/// `float64`.
///
/// This is how kube-apiserver 1.34 and later print a composite bad value in a field error
/// (`Invalid value: ["None"]`). A Go struct keeps its fields in declaration order: render one
/// with [`go_json_struct`].
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(&mut out, value);
    out
}

/// Renders a Go struct as `json.Marshal` does: its fields in declaration order, each already
/// rendered (by [`go_json`] or a nested [`go_json_struct`]). Leave out the fields Go omits
/// (`omitempty` ones that are empty); internal types without json tags use their Go field names.
pub fn go_json_struct(fields: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, rendered)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_go_json_string(&mut out, name);
        out.push(':');
        out.push_str(rendered);
    }
    out.push('}');
    out
}

/// Renders a list of strings as `json.Marshal` prints a Go `[]string`: `["a","b"]`.
pub fn go_json_strings(items: &[&str]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_go_json_string(&mut out, item);
    }
    out.push(']');
    out
}

fn write_go_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_number(n)),
        Value::String(s) => write_go_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go sorts a map's keys by their bytes, as Rust orders strings.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(out, key);
                out.push(':');
                write_go_json(out, item);
            }
            out.push('}');
        }
    }
}

/// A string as `encoding/json` writes it with HTML escaping on (`json.Marshal`'s default).
fn write_go_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(char::from(HEX[(b >> 4) as usize & 0xf]));
                out.push(char::from(HEX[b as usize & 0xf]));
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as `encoding/json` writes the `int64` or `float64` the unstructured decoder
/// made of it: a float in plain decimal, or exponent form below 1e-6 or from 1e21 on (`1e-7`,
/// `1e+21`), shortest digits.
fn go_json_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if !f.is_finite() {
        // json.Marshal refuses these; JSON input cannot hold them.
        return go_float(f);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        // Go prints at least two exponent digits, then trims `e-09` to `e-9`.
        if exp < 0 {
            format!("{mantissa}e-{}", exp.unsigned_abs())
        } else {
            format!("{mantissa}e+{exp:02}")
        }
    } else {
        // Rust's `Display` gives the shortest round-tripping digits without an exponent.
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_cause_prints_integer_values_bare_and_strings_quoted() {
        let c = Cause::invalid(
            "spec.replicas",
            &json!(11),
            "spec.replicas in body should be less than or equal to 10",
        );
        assert_eq!(
            c.message,
            "Invalid value: 11: spec.replicas in body should be less than or equal to 10"
        );
        assert_eq!(c.reason, "FieldValueInvalid");
        assert_eq!(Cause::invalid("a", &json!("x"), "").message, "Invalid value: \"x\"");
        assert_eq!(Cause::invalid("a", &json!(null), "d").message, "Invalid value: null: d");
    }

    #[test]
    fn not_supported_lists_quoted_values() {
        let c = Cause::not_supported("spec.mode", &json!("x"), &["a".into(), "b".into()]);
        assert_eq!(c.message, "Unsupported value: \"x\": supported values: \"a\", \"b\"");
        assert_eq!(c.reason, "FieldValueNotSupported");
    }

    #[test]
    fn required_too_long_and_too_many_render_like_kube() {
        assert_eq!(Cause::required("spec.a", "").message, "Required value");
        assert_eq!(
            Cause::required("spec.a", "must be set").message,
            "Required value: must be set"
        );
        assert_eq!(
            Cause::too_long("a", 5).message,
            "Too long: may not be more than 5 bytes"
        );
        assert_eq!(Cause::too_long("a", 1).message, "Too long: may not be more than 1 byte");
        assert_eq!(
            Cause::too_many("a", 5, 3).message,
            "Too many: 5: must have at most 3 items"
        );
    }

    #[test]
    fn objects_and_arrays_render_as_go_json_marshal() {
        let v = json!({"b": [1, "x", null, true], "a": 1.5, "c": {"z": {}, "y": []}});
        assert_eq!(go_value(&v), r#"{"a":1.5,"b":[1,"x",null,true],"c":{"y":[],"z":{}}}"#);
        assert_eq!(go_value(&json!(["None"])), r#"["None"]"#);
        assert_eq!(go_value(&json!(null)), "null");
        // Scalars keep Go's `%v` / `%q`.
        assert_eq!(go_value(&json!(1e6)), "1e+06");
        assert_eq!(go_value(&json!("a<b")), r#""a<b""#);
    }

    #[test]
    fn go_json_escapes_as_encoding_json_does() {
        assert_eq!(
            go_json(&json!("<a&b>\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}é\u{2028}")),
            "\"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\r\\t\\b\\f\\u0001\u{7f}é\\u2028\""
        );
        assert_eq!(go_json(&json!({"<": 1})), r#"{"\u003c":1}"#);
        assert_eq!(go_json_strings(&["a", "b\"c"]), r#"["a","b\"c"]"#);
        assert_eq!(go_json_strings(&[]), "[]");
    }

    #[test]
    fn go_json_prints_floats_as_encoding_json_does() {
        let cases = [
            (json!(1.0), "1"),
            (json!(1.5), "1.5"),
            (json!(1e6), "1000000"),
            (json!(123456789.0), "123456789"),
            (json!(1e20), "100000000000000000000"),
            (json!(1e21), "1e+21"),
            (json!(1.5e300), "1.5e+300"),
            (json!(0.000001), "0.000001"),
            (json!(1e-7), "1e-7"),
            (json!(-2.5e-10), "-2.5e-10"),
            (json!(0.0), "0"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709552000"),
        ];
        for (value, want) in cases {
            assert_eq!(go_json(&value), want, "{value}");
        }
    }

    #[test]
    fn go_json_struct_keeps_declaration_order() {
        let rendered = go_json_struct(&[
            ("matchLabels", go_json(&json!({"tier": "front", "app": "web"}))),
            (
                "matchExpressions",
                go_json(&json!([{"key": "k", "operator": "Exists"}])),
            ),
        ]);
        assert_eq!(
            rendered,
            r#"{"matchLabels":{"app":"web","tier":"front"},"matchExpressions":[{"key":"k","operator":"Exists"}]}"#
        );
        assert_eq!(go_json_struct(&[]), "{}");
    }

    #[test]
    fn floats_print_like_go_percent_v() {
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(123456789.0), "1.23456789e+08");
    }

    #[test]
    fn go_quote_escapes_quotes_and_control_characters() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }

    #[test]
    fn status_message_brackets_only_several_distinct_causes() {
        let a = Cause::required("spec.a", "");
        let b = Cause::invalid("spec.b", &json!(1), "bad");
        assert_eq!(
            status_message("MyApp.example.com", "x", &[]),
            "MyApp.example.com \"x\" is invalid"
        );
        assert_eq!(
            status_message("MyApp.example.com", "x", &[a.clone(), a.clone()]),
            "MyApp.example.com \"x\" is invalid: spec.a: Required value"
        );
        assert_eq!(
            status_message("MyApp.example.com", "x", &[a, b]),
            "MyApp.example.com \"x\" is invalid: [spec.a: Required value, spec.b: Invalid value: 1: bad]"
        );
    }
}
