//! Object metadata the server sets and checks: uids, timestamps, names
//! ([object names and IDs](https://kubernetes.io/docs/concepts/overview/working-with-objects/names/)).

use serde_json::{Map, Value};

use crate::schema::Cause;

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
    if name == "." || name == ".." {
        errs.push(format!("may not be '{name}'"));
        return errs;
    }
    if name.contains('/') {
        errs.push("may not contain '/'".into());
    }
    if name.contains('%') {
        errs.push("may not contain '%'".into());
    }
    match rule {
        NameRule::PathSegment => {}
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

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks labels and annotations keys and label values; returns field causes.
pub fn check_labels_and_annotations(meta: &Map<String, Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = meta.get("labels") {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    check_qualified_name(k, "metadata.labels", &mut causes);
                    match v.as_str() {
                        Some(v) if is_label_value(v) => {}
                        _ => causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric \
                                 characters, '-', '_' or '.', and must start and end with an alphanumeric character \
                                 (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
                                 '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                            ),
                            field: format!("metadata.labels.{k}"),
                        }),
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
                for (k, v) in ann {
                    check_qualified_name(k, "metadata.annotations", &mut causes);
                    if !v.is_string() {
                        causes.push(type_cause(&format!("metadata.annotations.{k}"), "string"));
                    }
                }
            }
            None if ann.is_null() => {}
            None => causes.push(type_cause("metadata.annotations", "object")),
        }
    }
    causes.extend(check_owner_references(meta));
    causes
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

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn check_qualified_name(key: &str, parent: &str, causes: &mut Vec<Cause>) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_label));
    if !name_ok || !prefix_ok {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and \
                 must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', \
                 regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS \
                 subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ),
            field: parent.into(),
        });
    }
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
        assert_eq!(causes[0].field, "metadata.labels.bad");
    }

    #[test]
    fn timestamps_have_seconds_precision() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
