//! Label and field selectors for list and watch, parsed and matched as kube-apiserver does
//! ([labels](https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors),
//! [fields](https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/);
//! Go: `k8s.io/apimachinery/pkg/labels/selector.go` `Parse` and `pkg/fields/selector.go` `ParseSelector`).
//!
//! # Untrusted input
//! Both parsers take the raw query parameter and never panic: bad input gives an [`Error`] whose
//! message is the one kube-apiserver puts in its 400 `BadRequest`.

use std::fmt;

use serde_json::{Map, Value};

/// Errors from parsing a selector or checking its fields against a resource.
///
/// `Display` gives kube-apiserver's wording, which the server returns in a 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One label requirement is malformed or names an invalid key or value; `detail` is Go's text.
    #[error("unable to parse requirement: {detail}")]
    ParseRequirement {
        /// What was wrong, in Go's words (`found ',', expected: identifier`, a field error...).
        detail: String,
    },
    /// The label selector has a token where a requirement, `,` or the end was expected.
    #[error("found '{found}', expected: {expected}")]
    UnexpectedToken {
        /// The token found (empty at the end of the string).
        found: String,
        /// What the parser wanted instead.
        expected: &'static str,
    },
    /// A field selector term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    SplitFieldTerm {
        /// The whole field selector.
        selector: String,
        /// The term that has no operator.
        term: String,
    },
    /// A field selector value has a backslash before something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {sequence}")]
    InvalidEscape {
        /// The backslash and the character after it (a lone `\` at the end).
        sequence: String,
    },
    /// A field selector value has a bare `,` or `=`; Go prints the character as its code point.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.character))]
    UnescapedCharacter {
        /// The character that should have been escaped.
        character: char,
    },
    /// The field selector names a field the resource cannot be selected by.
    #[error("{message}")]
    UnsupportedField {
        /// The field as the client spelled it.
        field: String,
        /// The resource's own wording of the refusal, as Go words it.
        message: String,
    },
}

/// Result of this module's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An operator of a label requirement (Go's `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value`; matches objects without the key.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`; matches objects without the key.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>5`: the label's value, read as an integer, is greater.
    GreaterThan,
    /// `key<5`: the label's value, read as an integer, is smaller.
    LessThan,
}

/// One requirement of a label selector: a key, an operator and its values (sorted, distinct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and distinct (empty for `Exists` and `DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement, as Go's `Requirement.Matches`.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|labels| labels.get(&self.key)).map(go_string);
        let has = |v: &str| self.values.iter().any(|own| own == v);
        match (self.operator, value) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, Some(v)) => has(&v),
            (Operator::Equals | Operator::DoubleEquals | Operator::In, None) => false,
            (Operator::NotEquals | Operator::NotIn, Some(v)) => !has(&v),
            (Operator::NotEquals | Operator::NotIn, None) => true,
            (Operator::Exists, found) => found.is_some(),
            (Operator::DoesNotExist, found) => found.is_none(),
            (Operator::GreaterThan | Operator::LessThan, None) => false,
            (op @ (Operator::GreaterThan | Operator::LessThan), Some(v)) => {
                let (Ok(have), [want]) = (v.parse::<i64>(), self.values.as_slice()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else { return false };
                if op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Go's `Requirement.String`: `!k`, `k`, `k=v`, `k in (a,b)`, `k>5`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, open, close) = match self.operator {
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Exists => return f.write_str(&self.key),
            Operator::Equals => ("=", "", ""),
            Operator::DoubleEquals => ("==", "", ""),
            Operator::NotEquals => ("!=", "", ""),
            Operator::In => (" in ", "(", ")"),
            Operator::NotIn => (" notin ", "(", ")"),
            Operator::GreaterThan => (">", "", ""),
            Operator::LessThan => ("<", "", ""),
        };
        write!(f, "{}{op}{open}{}{close}", self.key, self.values.join(","))
    }
}

/// A parsed `labelSelector`: the AND of its requirements, sorted by key as Go sorts them.
#[doc(alias = "labels.Selector")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a label selector exactly as Go's `labels.Parse`; `""` selects everything.
    ///
    /// # Errors
    /// [`Error::ParseRequirement`] for a malformed requirement or an invalid key or value,
    /// [`Error::UnexpectedToken`] for a bad token between requirements.
    pub fn parse(s: &str) -> Result<Self> {
        let mut requirements = label_parser::Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with these `metadata.labels` (None when absent) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// Go's `Selector.String`: requirements joined by `,`; parses back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// How a field's value is read from the stored JSON, mirroring each registry's `ToSelectableFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    /// A dotted path; missing is `""`.
    Path(String),
    /// A dotted path to a Go `bool`; missing is `"false"`.
    Bool(&'static str),
    /// A dotted path to a Go integer; missing is `"0"`.
    Int(&'static str),
    /// The first path that gives a non-empty string, else `""`.
    FirstOf(&'static [&'static str]),
    /// Accepted by the conversion but absent from the field set: always `""`.
    Absent,
}

impl Lookup {
    fn read(&self, object: &Value) -> String {
        match self {
            Lookup::Path(path) => lookup_path(object, path).map(go_string).unwrap_or_default(),
            Lookup::Bool(path) => lookup_path(object, path).map_or_else(|| "false".to_owned(), go_string),
            Lookup::Int(path) => lookup_path(object, path).map_or_else(|| "0".to_owned(), go_string),
            Lookup::FirstOf(paths) => paths
                .iter()
                .filter_map(|path| lookup_path(object, path).map(go_string))
                .find(|v| !v.is_empty())
                .unwrap_or_default(),
            Lookup::Absent => String::new(),
        }
    }
}

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    negated: bool,
    value: String,
    lookup: Lookup,
}

impl FieldRequirement {
    /// The field as written in the selector (after resource conversion, Go's converted name).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The unescaped value compared with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the term is `!=`.
    pub fn is_negated(&self) -> bool {
        self.negated
    }

    /// Whether the object's field value satisfies the term.
    pub fn matches(&self, object: &Value) -> bool {
        (self.lookup.read(object) == self.value) != self.negated
    }
}

/// A parsed `fieldSelector`: the AND of `field=value` / `field!=value` terms.
#[doc(alias = "fields.Selector")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses a field selector exactly as Go's `fields.ParseSelector` (terms sorted, `\,` `\=` `\\`
    /// escapes in values); `""` selects everything.
    ///
    /// # Errors
    /// [`Error::SplitFieldTerm`], [`Error::InvalidEscape`] or [`Error::UnescapedCharacter`].
    pub fn parse(s: &str) -> Result<Self> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, op, raw)) = split_term(term) else {
                return Err(Error::SplitFieldTerm {
                    selector: s.to_owned(),
                    term: term.to_owned(),
                });
            };
            let value = unescape_value(raw)?;
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                negated: op == "!=",
                value,
                lookup: Lookup::Path(field.to_owned()),
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The fields this selector names, in term order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// The terms, in Go's (sorted) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the object is selected. Values are read by dotted path (`spec.nodeName`): strings as
    /// is, bools and numbers in their Go form, missing as `""` — except after [`Self::for_resource`],
    /// which reads fields the way that resource's registry does (`spec.hostNetwork` missing is
    /// `"false"`, events' `source` falls back to `reportingComponent`, ...).
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(object))
    }

    /// Checks the fields against what kube-apiserver accepts for `group`/`resource` (plural) and
    /// converts them as its field label conversion does (pods' `spec.host` becomes `spec.nodeName`).
    ///
    /// Unknown resources accept `metadata.name` and `metadata.namespace` only, as Go's
    /// `DefaultMetaV1FieldSelectorConversion`.
    ///
    /// # Errors
    /// [`Error::UnsupportedField`] for the first (in term order) field the resource does not support.
    pub fn for_resource(&self, group: &str, resource: &str) -> Result<Self> {
        let table = resource_fields(group, resource);
        self.convert(|field| {
            let &(name, read) = table.fields.iter().find(|(name, _)| *name == field)?;
            let target = match (group, resource, name) {
                ("", "pods", "spec.host") => "spec.nodeName",
                _ => name,
            };
            Some((target.to_owned(), read.to_lookup(target)))
        })
        .map_err(|field| Error::UnsupportedField {
            message: table.wording.message(&field),
            field,
        })
    }

    /// Checks the fields against a custom resource: `metadata.name`, `metadata.namespace` when
    /// namespaced, and the CRD's `selectableFields` (JSON paths without the leading `.`).
    ///
    /// # Errors
    /// [`Error::UnsupportedField`] (`field label not supported: ...`) for the first unknown field.
    pub fn for_custom_resource(&self, namespaced: bool, selectable_fields: &[&str]) -> Result<Self> {
        self.convert(|field| {
            let known = field == "metadata.name"
                || (namespaced && field == "metadata.namespace")
                || selectable_fields.contains(&field);
            known.then(|| (field.to_owned(), Lookup::Path(field.to_owned())))
        })
        .map_err(|field| Error::UnsupportedField {
            message: format!("field label not supported: {field}"),
            field,
        })
    }

    fn convert(&self, convert: impl Fn(&str) -> Option<(String, Lookup)>) -> Result<Self, String> {
        let requirements = self
            .requirements
            .iter()
            .map(|r| {
                let (field, lookup) = convert(&r.field).ok_or_else(|| r.field.clone())?;
                Ok(FieldRequirement {
                    field,
                    lookup,
                    ..r.clone()
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { requirements })
    }
}

impl fmt::Display for FieldSelector {
    /// Go's `Selector.String`: `field=value` / `field!=value` joined by `,`, values not escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let op = if r.negated { "!=" } else { "=" };
            write!(f, "{sep}{}{op}{}", r.field, r.value)?;
        }
        Ok(())
    }
}

/// Escapes a literal for use as a field selector value (Go's `fields.EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The field labels kube-apiserver accepts in a field selector for `group`/`resource` (plural),
/// from the `AddFieldLabelConversionFunc` registrations in `pkg/apis/*/v1/conversion.go`.
///
/// The list is complete: it includes `metadata.name` and, where accepted, `metadata.namespace`
/// (nodes, namespaces and certificate resources do not accept `metadata.namespace`). Resources
/// without a registration accept `metadata.name` and `metadata.namespace`.
pub fn supported_fields(group: &str, resource: &str) -> &'static [&'static str] {
    resource_fields(group, resource).names
}

/// How a resource's field is read; see [`Lookup`].
#[derive(Clone, Copy)]
enum Read {
    Path,
    Bool,
    Int(&'static str),
    FirstOf(&'static [&'static str]),
    Absent,
}

impl Read {
    fn to_lookup(self, field: &'static str) -> Lookup {
        match self {
            Read::Path => Lookup::Path(field.to_owned()),
            Read::Bool => Lookup::Bool(field),
            Read::Int(path) => Lookup::Int(path),
            Read::FirstOf(paths) => Lookup::FirstOf(paths),
            Read::Absent => Lookup::Absent,
        }
    }
}

/// How a resource's conversion function words a refusal.
#[derive(Clone, Copy)]
enum Wording {
    /// `field label not supported: F` (most built-ins).
    NotSupported,
    /// `field label "F" not supported for batchv1.Job`.
    Job,
    /// `field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: F`.
    ResourceSlice,
    /// `"F" is not a known field selector: only "metadata.name", "metadata.namespace"`.
    Default,
}

impl Wording {
    fn message(self, field: &str) -> String {
        match self {
            Wording::NotSupported => format!("field label not supported: {field}"),
            Wording::Job => format!("field label {} not supported for batchv1.Job", go_quote(field)),
            Wording::ResourceSlice => {
                format!("field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: {field}")
            }
            Wording::Default => format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(field)
            ),
        }
    }
}

struct ResourceFields {
    names: &'static [&'static str],
    fields: &'static [(&'static str, Read)],
    wording: Wording,
}

macro_rules! resource_fields {
    ($wording:ident: $($name:literal => $read:expr),+ $(,)?) => {
        ResourceFields { names: &[$($name),+], fields: &[$(($name, $read)),+], wording: Wording::$wording }
    };
}

fn resource_fields(group: &str, resource: &str) -> ResourceFields {
    use Read::{Absent, Bool, FirstOf, Int, Path};
    match (group, resource) {
        ("", "pods") => resource_fields!(NotSupported:
            "metadata.name" => Path, "metadata.namespace" => Path, "spec.nodeName" => Path,
            "spec.restartPolicy" => Path, "spec.schedulerName" => Path, "spec.serviceAccountName" => Path,
            "spec.hostNetwork" => Bool, "status.phase" => Path,
            "status.podIP" => FirstOf(&["status.podIP", "status.podIPs.0.ip"]),
            "status.podIPs" => Absent, "status.nominatedNodeName" => Path, "spec.host" => Path),
        ("", "nodes") => resource_fields!(NotSupported: "metadata.name" => Path, "spec.unschedulable" => Bool),
        ("", "replicationcontrollers") | ("apps", "replicasets") => resource_fields!(NotSupported:
            "metadata.name" => Path, "metadata.namespace" => Path, "status.replicas" => Int("status.replicas")),
        ("", "events") => resource_fields!(NotSupported:
            "involvedObject.kind" => Path, "involvedObject.namespace" => Path, "involvedObject.name" => Path,
            "involvedObject.uid" => Path, "involvedObject.apiVersion" => Path,
            "involvedObject.resourceVersion" => Path, "involvedObject.fieldPath" => Path, "reason" => Path,
            "reportingComponent" => Path, "source" => FirstOf(&["source.component", "reportingComponent"]),
            "type" => Path, "metadata.namespace" => Path, "metadata.name" => Path),
        ("events.k8s.io", "events") => resource_fields!(NotSupported:
            "reason" => Path, "regarding.kind" => Path, "regarding.namespace" => Path, "regarding.name" => Path,
            "regarding.uid" => Path, "regarding.apiVersion" => Path, "regarding.resourceVersion" => Path,
            "regarding.fieldPath" => Path, "reportingController" => Path,
            "source" => FirstOf(&["deprecatedSource.component", "reportingController"]),
            "type" => Path, "metadata.namespace" => Path, "metadata.name" => Path),
        ("", "namespaces") => resource_fields!(NotSupported: "status.phase" => Path, "metadata.name" => Path),
        ("", "secrets") => resource_fields!(NotSupported:
            "type" => Path, "metadata.namespace" => Path, "metadata.name" => Path),
        ("", "services") => resource_fields!(NotSupported:
            "metadata.namespace" => Path, "metadata.name" => Path, "spec.clusterIP" => Path, "spec.type" => Path),
        ("batch", "jobs") => resource_fields!(Job:
            "metadata.name" => Path, "metadata.namespace" => Path, "status.successful" => Int("status.succeeded")),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            resource_fields!(NotSupported: "metadata.name" => Path, "spec.signerName" => Path)
        }
        ("certificates.k8s.io", "podcertificaterequests") => resource_fields!(NotSupported:
            "metadata.name" => Path, "spec.signerName" => Path, "spec.podName" => Path, "spec.nodeName" => Path),
        ("resource.k8s.io", "resourceslices") => resource_fields!(ResourceSlice:
            "metadata.name" => Path, "spec.nodeName" => Path, "spec.driver" => Path),
        _ => resource_fields!(Default: "metadata.name" => Path, "metadata.namespace" => Path),
    }
}

/// Splits on commas not preceded by a backslash, keeping escapes (Go's `splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or_default());
    terms
}

/// Splits a term at the first operator, trying `!=`, `==`, `=` at each position (Go's `splitTerm`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = term.get(i..)?;
        ["!=", "==", "="].into_iter().find(|op| rest.starts_with(op)).map(|op| {
            (
                term.get(..i).unwrap_or_default(),
                op,
                rest.get(op.len()..).unwrap_or_default(),
            )
        })
    })
}

/// Go's `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(Error::InvalidEscape {
                    sequence: format!("\\{c}"),
                });
            }
            out.push(c);
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if matches!(c, ',' | '=') {
            return Err(Error::UnescapedCharacter { character: c });
        } else {
            out.push(c);
        }
    }
    if in_slash {
        return Err(Error::InvalidEscape {
            sequence: "\\".to_owned(),
        });
    }
    Ok(out)
}

/// Walks a dotted path through objects (and arrays, by decimal index).
fn lookup_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// A JSON value as Go would print the typed field: strings as is, bools and numbers in Go form,
/// null as `""`, and compound values as their JSON text.
fn go_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%q` for a string (`strconv.Quote`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Label keys and values as `k8s.io/apimachinery/pkg/api/validate/content` checks them.
mod validate;

/// Go's `validation.IsQualifiedName` (the rule of label keys, `[prefix/]name`): the problems,
/// empty when `name` is valid.
pub(crate) fn qualified_name(name: &str) -> Vec<String> {
    validate::label_key(name)
}

/// Go's `validation.IsValidLabelValue`: the problems, empty when `value` is valid.
pub(crate) fn label_value_problems(value: &str) -> Vec<String> {
    validate::label_value(value)
}

/// The label selector lexer and parser, token for token as Go's `labels` package.
mod label_parser;

#[cfg(test)]
mod tests;
