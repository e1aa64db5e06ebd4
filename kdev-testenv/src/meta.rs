//! Object metadata the server sets and checks: uids, timestamps, names
//! ([object names and IDs](https://kubernetes.io/docs/concepts/overview/working-with-objects/names/)).

use serde_json::{Map, Value};

use crate::schema::{Cause, go_json_strings, go_quote};

/// The current time as an RFC 3339 timestamp with seconds precision, as `metav1.Time` renders it.
pub fn now() -> String {
    let ts = jiff::Timestamp::now();
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random version-4 UUID in its canonical text form.
pub fn uid() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// A name generated from `generateName`, as kube-apiserver's `SimpleNameGenerator`: the prefix cut
/// to 58 bytes (on a character boundary), then five random characters, so the name fits 63.
pub fn generated_name(prefix: &str) -> String {
    const MAX_PREFIX: usize = 63 - 5;
    let mut end = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &prefix[..end], name_suffix())
}

/// The five-character suffix kube-apiserver appends to `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// Which rule an object's name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253 characters.
    Subdomain,
    /// RFC 1123 label: lowercase alphanumerics and `-`, at most 63 characters (namespaces).
    Label,
    /// RFC 1035 label: like a label but starting with a letter (services).
    Rfc1035Label,
    /// Path segment: anything but `/`, `%`, `.` and `..` (events, the generic rule).
    PathSegment,
}

/// Checks `name` against `rule`; returns the detail messages kube-apiserver gives.
pub fn check_name(name: &str, rule: NameRule) -> Vec<String> {
    let mut errs = Vec::new();
    match rule {
        // `IsValidPathSegmentName`; the DNS rules below need no such checks, their patterns
        // already exclude these characters.
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errs.push(format!("may not be '{name}'"));
                return errs;
            }
            errs.extend(path_segment_prefix_errors(name));
        }
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".into());
            }
            let ok = name.split('.').all(is_label);
            if !ok {
                errs.push(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
                     and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
                     validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                        .into(),
                );
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".into());
            }
            if !is_label(name) {
                errs.push(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
                     start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for \
                     validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                        .into(),
                );
            }
        }
        NameRule::Rfc1035Label => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".into());
            }
            if !is_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                errs.push(
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
                     alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
                     regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                        .into(),
                );
            }
        }
    }
    errs
}

/// Checks a `generateName` prefix against `rule`, as the name functions do with `prefix` set:
/// a path segment prefix may be `.` or `..` (`IsValidPathSegmentPrefix`), and for the DNS rules a
/// trailing `-` is masked first (`maskTrailingDash`, which replaces the last two characters by
/// `a`, as upstream does), since the random suffix follows it.
pub fn check_generate_name(prefix: &str, rule: NameRule) -> Vec<String> {
    match rule {
        NameRule::PathSegment => path_segment_prefix_errors(prefix),
        _ if prefix.len() > 1 && prefix.ends_with('-') => {
            let cut = prefix.len() - 2;
            let masked = format!("{}a", prefix.get(..cut).unwrap_or(""));
            check_name(&masked, rule)
        }
        _ => check_name(prefix, rule),
    }
}

fn path_segment_prefix_errors(value: &str) -> Vec<String> {
    ['/', '%']
        .into_iter()
        .filter(|c| value.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// Removes the empty (or `null`) maps and lists of an object's metadata (`labels: {}`,
/// `finalizers: []`), as
/// kube-apiserver's decoding does: a built-in object's `metav1.ObjectMeta` is encoded back with
/// its `omitempty` fields left out, and a custom resource's metadata is round-tripped through
/// that type (`objectmeta.SetObjectMeta`). `managedFields` is left to the write's bookkeeping.
pub fn drop_empty_metadata(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
        let empty = match meta.get(key) {
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(key);
        }
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks labels (`ValidateLabels`), annotations (`ValidateAnnotations`: qualified keys in any
/// case, 256 KiB in all), owner references (`ValidateOwnerReferences`) and finalizers
/// (`ValidateFinalizers`: qualified names, not both `orphan` and `foregroundDeletion`) as
/// apimachinery does, in its order; returns field causes.
pub fn check_labels_and_annotations(meta: &Map<String, Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = meta.get("labels") {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    for msg in qualified_name_errors(k) {
                        causes.push(Cause::invalid_str("metadata.labels", k, &msg));
                    }
                    match v.as_str() {
                        Some(v) => {
                            for msg in label_value_errors(v) {
                                causes.push(Cause::invalid_str("metadata.labels", v, &msg));
                            }
                        }
                        None => causes.push(type_cause(&format!("metadata.labels.{k}"), "string")),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(type_cause("metadata.labels", "object")),
        }
    }
    if let Some(ann) = meta.get("annotations") {
        match ann.as_object() {
            Some(ann) => {
                let mut size = 0;
                for (k, v) in ann {
                    for msg in qualified_name_errors(&k.to_ascii_lowercase()) {
                        causes.push(Cause::invalid_str("metadata.annotations", k, &msg));
                    }
                    match v.as_str() {
                        Some(v) => size += k.len() + v.len(),
                        None => causes.push(type_cause(&format!("metadata.annotations.{k}"), "string")),
                    }
                }
                if size > ANNOTATIONS_MAX_BYTES {
                    causes.push(Cause {
                        reason: "FieldValueTooLong".into(),
                        message: format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
                        field: "metadata.annotations".into(),
                    });
                }
            }
            None if ann.is_null() => {}
            None => causes.push(type_cause("metadata.annotations", "object")),
        }
    }
    causes.extend(check_owner_references(meta));
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
        for f in &names {
            causes.extend(finalizer_name_causes(f, "metadata.finalizers"));
        }
        if names.contains(&ORPHAN) && names.contains(&FOREGROUND) {
            causes.push(Cause::invalid_raw(
                "metadata.finalizers",
                &go_json_strings(&names),
                &format!("finalizer {ORPHAN} and {FOREGROUND} cannot be both set"),
            ));
        }
    }
    causes
}

/// The finalizers the garbage collector acts on (`metav1.FinalizerOrphanDependents`,
/// `metav1.FinalizerDeleteDependents`).
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// Finalizer names that need no domain on built-in types (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", ORPHAN, FOREGROUND];

/// The stricter finalizer rule of the types validated by `pkg/apis/core/validation`'s
/// `ValidateObjectMeta` (core and apps types): a finalizer without a `/` must be one of the
/// standard ones (`validateKubeFinalizerName`). One cause per bad finalizer, at its index.
pub fn check_kube_finalizers(meta: &Map<String, Value>) -> Vec<Cause> {
    let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) else {
        return Vec::new();
    };
    finalizers
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.as_str()?)))
        .filter_map(|(i, f)| kube_finalizer_cause(f, &format!("metadata.finalizers[{i}]")))
        .collect()
}

/// `validateKubeFinalizerName` for one finalizer at `field`.
pub fn kube_finalizer_cause(name: &str, field: &str) -> Option<Cause> {
    (!name.contains('/') && !STANDARD_FINALIZERS.contains(&name)).then(|| {
        Cause::invalid_str(
            field,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )
    })
}

/// apimachinery's `IsQualifiedName` for a finalizer at `field` (`ValidateFinalizerName`).
pub fn finalizer_name_causes(name: &str, field: &str) -> Vec<Cause> {
    qualified_name_errors(name)
        .iter()
        .map(|msg| Cause::invalid_str(field, name, msg))
        .collect()
}

/// A list of strings as Go's `%#v` prints a `[]string` (`[]string{"a", "b"}`), for the details
/// Go formats itself (`ValidateNoNewFinalizers`). A `[]string` bad value of a field error prints
/// as JSON instead: see [`go_json_strings`].
pub fn go_string_slice(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// The most annotations may hold, keys and values together (`TotalAnnotationSizeLimitB`).
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// apimachinery's `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 alphanumerics, `-`, `_` and `.` starting and ending alphanumeric.
pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    const NAME: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                        alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                        validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(subdomain_errors(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {NAME} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !is_label_value(name) || name.is_empty() {
        errs.push(format!("name part {NAME}"));
    }
    errs
}

/// apimachinery's `IsDNS1123Subdomain`.
fn subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".into());
    }
    if !value.split('.').all(is_label) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
             must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    errs
}

/// apimachinery's `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !is_label_value(value) {
        errs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and \
             must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex \
             used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .into(),
        );
    }
    errs
}

/// apimachinery's `ValidateOwnerReferences`: each reference names an apiVersion with a version,
/// a kind, a name and a uid, and at most one is the controller.
fn check_owner_references(meta: &Map<String, Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) else {
        return causes;
    };
    let field = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for r in refs {
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let (api_version, kind, name) = (text("apiVersion"), text("kind"), text("name"));
        let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
        for (key, value, what) in [
            ("apiVersion", version, "version"),
            ("kind", kind, "kind"),
            ("name", name, "name"),
            ("uid", text("uid"), "uid"),
        ] {
            if value.is_empty() {
                let shown = if key == "apiVersion" { api_version } else { value };
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: \"{shown}\": {what} must not be empty"),
                    field: format!("{field}.{key}"),
                });
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{kind}/{name}");
            match &controller {
                Some(first) => causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: \"\": Only one reference can have Controller set to true. Found \"true\" in \
                         references for {first} and {this}"
                    ),
                    field: field.into(),
                }),
                None => controller = Some(this),
            }
        }
    }
    causes
}

fn type_cause(field: &str, ty: &str) -> Cause {
    Cause {
        reason: "FieldValueTypeInvalid".into(),
        message: format!("Invalid value: must be of type {ty}"),
        field: field.into(),
    }
}

/// The label value pattern, `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, whatever the length.
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4_uuids() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uid(), u);
    }

    #[test]
    fn subdomain_names_reject_upper_case_and_accept_dots() {
        assert!(check_name("web.example", NameRule::Subdomain).is_empty());
        assert!(!check_name("Web", NameRule::Subdomain).is_empty());
        assert!(!check_name("a..b", NameRule::Subdomain).is_empty());
        assert!(!check_name(&"a".repeat(254), NameRule::Subdomain).is_empty());
    }

    #[test]
    fn namespace_names_are_labels() {
        assert!(check_name("team-a", NameRule::Label).is_empty());
        assert!(!check_name("team.a", NameRule::Label).is_empty());
        assert!(!check_name("-a", NameRule::Label).is_empty());
    }

    #[test]
    fn service_names_start_with_a_letter() {
        assert!(check_name("web", NameRule::Rfc1035Label).is_empty());
        assert!(!check_name("1web", NameRule::Rfc1035Label).is_empty());
    }

    #[test]
    fn label_values_follow_the_label_value_rule() {
        let mut m = Map::new();
        m.insert(
            "labels".into(),
            serde_json::json!({ "app": "web", "example.com/tier": "", "bad": "-x" }),
        );
        let causes = check_labels_and_annotations(&m);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.labels");
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"-x\": a valid label must be"),
            "{}",
            causes[0].message
        );
    }

    #[test]
    fn qualified_names_report_each_part_as_apimachinery_does() {
        assert!(qualified_name_errors("example.com/app").is_empty());
        assert_eq!(
            qualified_name_errors(&"a".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
        let bad_prefix = qualified_name_errors("Example.com/app");
        assert_eq!(bad_prefix.len(), 1);
        assert!(
            bad_prefix[0].starts_with("prefix part a lowercase RFC 1123 subdomain"),
            "{bad_prefix:?}"
        );
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(qualified_name_errors("/app"), ["prefix part must be non-empty"]);
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            ["must be no more than 63 characters"]
        );
        let mut m = Map::new();
        m.insert(
            "annotations".into(),
            serde_json::json!({ "Example.com/Note": "x".repeat(300 * 1024) }),
        );
        m.insert("finalizers".into(), serde_json::json!(["example.com/done", " bad"]));
        let causes = check_labels_and_annotations(&m);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.annotations", "metadata.finalizers"], "{causes:?}");
        assert_eq!(causes[0].message, "Too long: may not be more than 262144 bytes");
    }

    #[test]
    fn dns_names_get_only_their_pattern_message_for_slashes_and_dots() {
        assert_eq!(check_name("a/b", NameRule::Subdomain).len(), 1);
        assert_eq!(check_name(".", NameRule::Label).len(), 1);
        assert_eq!(check_name("..", NameRule::PathSegment), ["may not be '..'"]);
        assert_eq!(
            check_name("a/b%", NameRule::PathSegment),
            ["may not contain '/'", "may not contain '%'"]
        );
    }

    #[test]
    fn generate_name_prefixes_mask_a_trailing_dash() {
        assert!(check_generate_name("job-", NameRule::Subdomain).is_empty());
        assert!(check_generate_name("web-", NameRule::Rfc1035Label).is_empty());
        assert!(!check_generate_name("Job-", NameRule::Subdomain).is_empty());
        // A lone dash is not masked, and upstream's mask drops two characters for one.
        assert!(!check_generate_name("-", NameRule::Subdomain).is_empty());
        assert!(check_generate_name("a.-", NameRule::Subdomain).is_empty());
        assert!(check_generate_name(".", NameRule::PathSegment).is_empty());
        assert_eq!(
            check_generate_name("a/", NameRule::PathSegment),
            ["may not contain '/'"]
        );
    }

    #[test]
    fn finalizers_follow_apimachinery_and_the_core_rule() {
        let meta = |f: serde_json::Value| {
            let mut m = Map::new();
            m.insert("finalizers".into(), f);
            m
        };
        let both = check_labels_and_annotations(&meta(serde_json::json!(["orphan", "foregroundDeletion"])));
        assert_eq!(both.len(), 1);
        assert_eq!(
            both[0].message,
            r#"Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan and foregroundDeletion cannot be both set"#
        );
        let core = check_kube_finalizers(&meta(serde_json::json!(["kubernetes", "example.com/x", "mine"])));
        assert_eq!(core.len(), 1);
        assert_eq!(core[0].field, "metadata.finalizers[2]");
        assert!(kube_finalizer_cause("orphan", "f").is_none());
        assert_eq!(go_string_slice(&[]), "[]string{}");
    }

    #[test]
    fn timestamps_have_seconds_precision() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
