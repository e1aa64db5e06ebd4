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

    /// `field.Invalid` whose bad value is already rendered (used for Go structs kube prints with `%#v`).
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
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(_) | Value::Object(_) => go_sharp_v(value),
    }
}

/// Go's `%#v` of an unstructured value (`map[string]interface {}{"a":1}`, `[]interface {}{"a"}`).
fn go_sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp_v(&map[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
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
        assert_eq!(
            Cause::invalid("a", &json!(null), "d").message,
            "Invalid value: \"null\": d"
        );
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
    fn objects_and_arrays_render_as_go_sharp_v() {
        let v = json!({"b": [1, "x"], "a": 1.5});
        assert_eq!(
            go_value(&v),
            r#"map[string]interface {}{"a":1.5, "b":[]interface {}{1, "x"}}"#
        );
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
