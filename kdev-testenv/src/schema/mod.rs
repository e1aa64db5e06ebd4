//! Structural schemas of CustomResourceDefinitions: CRD validation, and validation, defaulting and
//! pruning of custom resources, as kube-apiserver does them
//! ([apiextensions-apiserver](https://github.com/kubernetes/kubernetes/tree/master/staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema),
//! [kube-openapi validate](https://github.com/kubernetes/kube-openapi/tree/master/pkg/validation/validate)).
//!
//! A [`Schema`] is compiled once per CRD version from its `openAPIV3Schema` (regex patterns are
//! compiled then) and is then used for each request in kube's order: [`Schema::prune`],
//! [`Schema::default`], [`Schema::validate`], [`Schema::validate_rules`]. [`validate_crd`] checks a
//! CRD itself on create and update.
//!
//! # CEL validation rules
//!
//! `x-kubernetes-validations` are compiled with the schema and evaluated on every create and
//! update of a custom resource, its `status` and its `scale` included ([`Schema::validate_rules`],
//! after schema validation), as apiextensions-apiserver's `schema/cel` package does:
//!
//! - `self` is the node's value with the schema's types: integers as `int`, `number` as `double`,
//!   `format: date-time`/`date` strings as `timestamp`, `format: duration` as `duration`,
//!   `format: byte` as `bytes`, objects as maps of their declared properties (names escaped as
//!   kube does: `x-y` is `self.x__dash__y`), `additionalProperties` as maps, lists as lists
//!   (`x-kubernetes-list-type: set` and `map` lists, as the left operand, with their list type's
//!   `==`, which ignores order, and `+`, a union or a merge by key). At the resource root and on
//!   embedded resources, `apiVersion`, `kind`, `metadata.name` and `metadata.generateName` are
//!   visible too. Rules run at nested properties, list items,
//!   `additionalProperties` values and `allOf` branches; null values are not checked.
//! - Transition rules (those that read `oldSelf`) run on updates only, and only where the old
//!   object has a value at that path (map keys, object properties and the items of
//!   `x-kubernetes-list-type: map` lists correlate by key); with `optionalOldSelf: true` they also
//!   run otherwise, `oldSelf` being an optional (`oldSelf.hasValue()`, `oldSelf.value()`).
//!   Rules that do not read `oldSelf` are ratcheted: on an update whose value at that path is
//!   unchanged, their failures are dropped.
//! - A failure is a cause at the node's path plus the rule's `fieldPath`: `reason`
//!   `FieldValueInvalid` (the default; objects and lists omit the value, scalars show it:
//!   `spec.ports[1]: Invalid value: 70000: must be a valid port`, as Kubernetes 1.35 words it;
//!   earlier releases print the schema type instead, `Invalid value: "object"`), `FieldValueForbidden`,
//!   `FieldValueRequired` or `FieldValueDuplicate`. The detail is `messageExpression`'s string,
//!   else `message`, else `failed rule: <rule>`; a rule that errors (`no such key: a`) gives
//!   `<error> evaluating rule: <rule>`. When schema validation already found a blocking cause
//!   (wrong type, required, enum, too long, too many), rules are skipped and kube's `some
//!   validation rules were not checked because the object was invalid...` cause is given.
//! - On CRD create and update, [`validate_crd`] rejects empty rules, bad `message`,
//!   `messageExpression`, `reason`, `fieldPath` and `optionalOldSelf`, `oldSelf` under lists that
//!   are not `x-kubernetes-list-type: map`, and rules that do not compile
//!   (`spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid
//!   value: {"Rule":"self.a ==","Message":"",...}: compilation failed: ...`, the rule printed as
//!   JSON with its Go field names, as kube-apiserver 1.34+ prints it).
//!
//! The functions a rule may call (the [`cel`](https://crates.io/crates/cel) crate's standard
//! library and extensions, plus what kdev-testenv adds from Kubernetes' library):
//!
//! | Functions | Origin |
//! |---|---|
//! | macros `has`, `all`, `exists`, `exists_one`, `map`, `filter`; `cel.bind` | CEL; `cel.bind` added here |
//! | `size`, `matches`, `startsWith`, `endsWith`, `contains`, `in`, operators | CEL standard |
//! | `int`, `uint`, `double`, `string`, `bool`, `bytes`, `dyn`, `type` | CEL standard |
//! | `duration`, `timestamp`, `getHours`, `getMinutes`, `getSeconds`, `getMilliseconds`, `getFullYear`, `getMonth`, `getDate`, `getDayOfMonth`, `getDayOfWeek`, `getDayOfYear` | CEL standard |
//! | `x.?f`, `x[?k]`, `optional.of`, `optional.none`, `optional.ofNonZeroValue`, `hasValue`, `value`, `orValue`, `or` | CEL optionals |
//! | `charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`, `trim`, `split`, `join`, `replace`, `substring`, `reverse`, `format`, `strings.quote` | CEL strings extension |
//! | `slice`, `flatten`, `distinct`, `sort`, `sortBy`, `lists.range` | CEL lists extension |
//! | `math.greatest`, `math.least`, `math.ceil`, `math.floor`, `math.round`, `math.trunc`, `math.abs`, `math.sign`, `math.sqrt`, `math.isInf`, `math.isNaN`, `math.isFinite`, `math.bit*` | CEL math extension |
//! | `base64.encode`, `base64.decode` | CEL encoders extension |
//! | `list.isSorted()`, `list.sum()`, `list.min()`, `list.max()`, `list.indexOf(x)`, `list.lastIndexOf(x)` | Kubernetes lists library, added here |
//! | `string.find(re)`, `string.findAll(re[, n])` | Kubernetes regex library, added here |
//! | `sets.contains`, `sets.equivalent`, `sets.intersects` | Kubernetes sets library, added here |
//!
//! A rule that calls anything else is refused when its CRD is written: a Kubernetes library
//! function kdev-testenv lacks (`url`, `isURL`, `quantity`, `isQuantity`, `ip`, `isIP`, `cidr`,
//! `isCIDR`, `semver`, `isSemver`, the authorizer, ...) with `compilation failed: function
//! 'isURL' is part of the Kubernetes CEL library but is not available in kdev-testenv's embedded
//! API server`, any other name with cel-go's `undeclared reference to 'f'`. So a test never passes
//! because a rule was silently skipped.
//!
//! # Caveats
//!
//! - Rules are only partly type-checked: selecting a field an object's schema does not declare
//!   (`self.typo`, also inside `has()`, through list items bound by macros and map values) is
//!   refused with cel-go's `undefined field 'typo'`, as are unknown functions and identifiers,
//!   and rules whose result is evidently not a bool (`self.name`, `size(self.a)`); but a rule
//!   that compares values of different types compiles here and fails when evaluated (kube
//!   refuses it when the CRD is written). Syntax error messages are the `cel` crate's, not
//!   cel-go's.
//! - Cost is not estimated: CRDs whose rules kube-apiserver refuses as too expensive (`estimated
//!   rule cost exceeds budget`, typically over lists and strings without `maxItems` or
//!   `maxLength`) are accepted. At run time a coarse estimate (the size of `self` to the power
//!   of the rule's comprehension nesting, against kube's per-object budget of 10,000,000) stops
//!   runaway rules with kube's `validation failed due to running out of cost budget` cause;
//!   rules kube would let through may rarely be stopped, and vice versa.
//! - Brackets nested more than 64 deep in a rule are refused (the parser's recursion).
//! - Ratcheting correlates only what `oldSelf` correlates: items of `set` lists are not
//!   ratcheted (kube ratchets them by value).
//!
//! # Untrusted input
//!
//! Schemas and objects may be arbitrary JSON: every function returns causes or an [`Error`],
//! never panics.

mod cause;
mod cel;
mod crd;
mod default;
mod format;
mod goregex;
mod prune;
mod structural;
mod validate;

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

pub use cause::{Cause, go_json, go_json_strings, go_json_struct, go_quote, go_value, status_message};
pub use crd::validate_crd;
pub(crate) use crd::validate_stored_versions;

/// Errors from compiling a schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema node (at a JSON pointer into the schema) is not a JSON object.
    #[error("schema node at {pointer:?} is not an object")]
    NodeNotObject {
        /// JSON pointer of the node.
        pointer: String,
    },
    /// A keyword has a value of the wrong JSON type.
    #[error("schema keyword {keyword:?} at {pointer:?} has the wrong type")]
    KeywordType {
        /// JSON pointer of the node.
        pointer: String,
        /// The keyword.
        keyword: String,
    },
    /// A `pattern` is not a valid regular expression.
    #[error("schema pattern at {pointer:?} does not compile")]
    Pattern {
        /// JSON pointer of the node.
        pointer: String,
        /// Why the regex failed.
        #[source]
        source: Box<regex::Error>,
    },
}

/// A `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an object node says about keys missing from `properties`.
#[derive(Debug, Clone, Default)]
pub(crate) enum Additional {
    /// `additionalProperties` absent.
    #[default]
    Unset,
    /// `additionalProperties: true` or `false`.
    Bool(bool),
    /// `additionalProperties: {schema}`.
    Schema(Box<Node>),
}

/// One compiled schema node. Value-validation branches (`allOf`...) are nodes too.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub(crate) types: Vec<String>,
    pub(crate) format: Option<String>,
    pub(crate) nullable: bool,
    pub(crate) properties: BTreeMap<String, Node>,
    pub(crate) additional: Additional,
    pub(crate) items: Option<Box<Node>>,
    pub(crate) required: Vec<String>,
    pub(crate) enumeration: Option<Vec<Value>>,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_maximum: bool,
    pub(crate) minimum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) pattern: Option<Regex>,
    pub(crate) max_length: Option<i64>,
    pub(crate) min_length: Option<i64>,
    pub(crate) max_items: Option<i64>,
    pub(crate) min_items: Option<i64>,
    pub(crate) unique_items: bool,
    pub(crate) max_properties: Option<i64>,
    pub(crate) min_properties: Option<i64>,
    pub(crate) all_of: Vec<Node>,
    pub(crate) any_of: Vec<Node>,
    pub(crate) one_of: Vec<Node>,
    pub(crate) not: Option<Box<Node>>,
    pub(crate) default: Option<Value>,
    pub(crate) int_or_string: bool,
    pub(crate) preserve_unknown: bool,
    pub(crate) embedded: bool,
    pub(crate) list_type: Option<String>,
    pub(crate) list_map_keys: Vec<String>,
    /// Compiled `x-kubernetes-validations`.
    pub(crate) rules: Vec<std::sync::Arc<cel::Rule>>,
}

/// A compiled structural schema of one CRD version.
///
/// # Examples
///
/// ```
/// # use kdev_testenv::schema::Schema;
/// let schema = Schema::compile(&serde_json::json!({
///     "type": "object",
///     "properties": {"spec": {"type": "object", "properties": {
///         "replicas": {"type": "integer", "maximum": 10, "default": 1}}}}
/// })).unwrap();
/// let mut obj = serde_json::json!({"spec": {"replicas": 11, "junk": true}});
/// schema.prune(&mut obj);
/// schema.default(&mut obj);
/// let causes = schema.validate(&obj);
/// assert_eq!(causes[0].message, "Invalid value: 11: spec.replicas in body should be less than or equal to 10");
/// ```
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
}

impl Schema {
    /// Compiles an `openAPIV3Schema`.
    ///
    /// # Errors
    ///
    /// [`Error::NodeNotObject`] or [`Error::KeywordType`] when the JSON is not shaped like a
    /// schema, [`Error::Pattern`] when a `pattern` is not a valid regular expression. Structural
    /// rules are not checked here: that is [`validate_crd`]'s job.
    pub fn compile(openapi_v3_schema: &Value) -> Result<Schema> {
        Ok(Schema {
            root: Node::compile(openapi_v3_schema, "")?,
        })
    }

    /// Validates a whole custom resource, returning kube-apiserver's causes (empty when valid).
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        validate::validate(&self.root, obj)
    }

    /// Evaluates the CEL rules (`x-kubernetes-validations`) against a whole custom resource, `old`
    /// being the stored object on updates, and returns kube's causes (empty when every rule holds).
    ///
    /// `earlier` are the causes schema and metadata validation found: when one of them is of a
    /// kind kube treats as blocking (a wrong type, a missing required field, an unsupported enum
    /// value, a value too long or too many items), rules are not evaluated and the single cause
    /// kube gives for that is returned instead.
    pub fn validate_rules(&self, obj: &Value, old: Option<&Value>, earlier: &[Cause]) -> Vec<Cause> {
        // kube-apiserver has no CEL validator at all for a schema without rules, so only a
        // schema with rules reports that they were skipped.
        if !cel::has_rules(&self.root, 0) {
            return Vec::new();
        }
        if let Some(cause) = cel::blocking(earlier) {
            return vec![cause];
        }
        cel::validate(&self.root, obj, old)
    }

    /// Applies `default`s to a whole custom resource, as kube does after pruning.
    pub fn default(&self, obj: &mut Value) {
        default::default(obj, Some(&self.root));
    }

    /// Drops fields the schema does not specify, keeping `apiVersion`, `kind` and `metadata` at
    /// the root and everything under `x-kubernetes-preserve-unknown-fields: true`.
    pub fn prune(&self, obj: &mut Value) {
        prune::prune_root(obj, &self.root);
    }

    /// Prunes as [`prune`](Self::prune) does and returns the paths of the fields dropped, as
    /// kube-apiserver reports unknown fields (`spec.ports[0].nmae`), for `fieldValidation`.
    pub fn prune_reporting(&self, obj: &mut Value) -> Vec<String> {
        prune::prune_root_reporting(obj, &self.root)
    }

    /// The `x-kubernetes-list-map-keys` of the list at `path` when that list is
    /// `x-kubernetes-list-type: map`.
    ///
    /// `path` names object fields from the root; lists are stepped through implicitly, so the
    /// ports of every container are `["spec", "containers", "ports"]`.
    pub fn list_map_keys(&self, path: &[&str]) -> Option<&[String]> {
        let node = self.node(path)?;
        (node.list_type.as_deref() == Some("map")).then_some(node.list_map_keys.as_slice())
    }

    /// The `x-kubernetes-list-type` (`atomic`, `set` or `map`) of the list at `path`, if declared.
    pub fn list_type(&self, path: &[&str]) -> Option<&str> {
        self.node(path)?.list_type.as_deref()
    }

    fn node(&self, path: &[&str]) -> Option<&Node> {
        let mut node = &self.root;
        for step in path {
            while let Some(items) = &node.items {
                node = items;
            }
            node = match node.properties.get(*step) {
                Some(child) => child,
                None => match &node.additional {
                    Additional::Schema(child) => child,
                    _ => return None,
                },
            };
        }
        Some(node)
    }
}

impl Node {
    fn compile(value: &Value, pointer: &str) -> Result<Node> {
        let Value::Object(map) = value else {
            return Err(Error::NodeNotObject {
                pointer: pointer.to_owned(),
            });
        };
        let kw = Keywords { map, pointer };
        let mut node = Node {
            nullable: kw.bool("nullable")?,
            required: kw.strings("required")?,
            enumeration: kw.array("enum")?.map(<[Value]>::to_vec),
            maximum: kw.number("maximum")?,
            exclusive_maximum: kw.bool("exclusiveMaximum")?,
            minimum: kw.number("minimum")?,
            exclusive_minimum: kw.bool("exclusiveMinimum")?,
            multiple_of: kw.number("multipleOf")?,
            max_length: kw.int("maxLength")?,
            min_length: kw.int("minLength")?,
            max_items: kw.int("maxItems")?,
            min_items: kw.int("minItems")?,
            unique_items: kw.bool("uniqueItems")?,
            max_properties: kw.int("maxProperties")?,
            min_properties: kw.int("minProperties")?,
            default: map.get("default").cloned(),
            int_or_string: kw.bool("x-kubernetes-int-or-string")?,
            preserve_unknown: kw.bool("x-kubernetes-preserve-unknown-fields")?,
            embedded: kw.bool("x-kubernetes-embedded-resource")?,
            list_type: kw.string("x-kubernetes-list-type")?.map(str::to_owned),
            list_map_keys: kw.strings("x-kubernetes-list-map-keys")?,
            ..Node::default()
        };
        if let Some(t) = kw.string("type")?.filter(|t| !t.is_empty()) {
            node.types.push(t.to_owned());
        }
        if node.int_or_string {
            node.types = vec!["integer".to_owned(), "string".to_owned()];
        }
        node.format = kw.string("format")?.filter(|f| format::supported(f)).map(str::to_owned);
        if let Some(p) = kw.string("pattern")? {
            let compiled = goregex::compile(p).map_err(|e| Error::Pattern {
                pointer: format!("{pointer}/pattern"),
                source: Box::new(e),
            })?;
            node.pattern = Some(compiled);
        }
        if let Some(props) = map.get("properties") {
            let Value::Object(props) = props else {
                return Err(kw.wrong("properties"));
            };
            for (name, child) in props {
                let child_ptr = format!("{pointer}/properties/{}", escape_pointer(name));
                node.properties.insert(name.clone(), Node::compile(child, &child_ptr)?);
            }
        }
        node.additional = match map.get("additionalProperties") {
            None => Additional::Unset,
            Some(Value::Bool(b)) => Additional::Bool(*b),
            Some(child) => Additional::Schema(Box::new(Node::compile(
                child,
                &format!("{pointer}/additionalProperties"),
            )?)),
        };
        if let Some(items) = map.get("items") {
            node.items = Some(Box::new(Node::compile(items, &format!("{pointer}/items"))?));
        }
        node.all_of = kw.branches("allOf")?;
        node.any_of = kw.branches("anyOf")?;
        node.one_of = kw.branches("oneOf")?;
        if let Some(not) = map.get("not") {
            node.not = Some(Box::new(Node::compile(not, &format!("{pointer}/not"))?));
        }
        node.rules = cel::compile_rules(map, &node, pointer.is_empty());
        Ok(node)
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Typed keyword access on one schema node, with errors naming the node.
struct Keywords<'a> {
    map: &'a Map<String, Value>,
    pointer: &'a str,
}

impl<'a> Keywords<'a> {
    fn wrong(&self, keyword: &str) -> Error {
        Error::KeywordType {
            pointer: self.pointer.to_owned(),
            keyword: keyword.to_owned(),
        }
    }

    fn bool(&self, k: &str) -> Result<bool> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(k)),
        }
    }

    fn number(&self, k: &str) -> Result<Option<f64>> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(self.wrong(k)),
        }
    }

    fn int(&self, k: &str) -> Result<Option<i64>> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| self.wrong(k)),
            Some(_) => Err(self.wrong(k)),
        }
    }

    fn string(&self, k: &str) -> Result<Option<&'a str>> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(k)),
        }
    }

    fn array(&self, k: &str) -> Result<Option<&'a [Value]>> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong(k)),
        }
    }

    fn strings(&self, k: &str) -> Result<Vec<String>> {
        let Some(items) = self.array(k)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| self.wrong(k)))
            .collect()
    }

    fn branches(&self, k: &str) -> Result<Vec<Node>> {
        let Some(items) = self.array(k)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| Node::compile(v, &format!("{}/{k}/{i}", self.pointer)))
            .collect()
    }
}

/// Arbitrary JSON for property tests: scalars, arrays and objects up to 4 levels deep, whose
/// object keys are drawn from `keys` (a schema's field names, so the values meet the schema
/// often enough to exercise it).
#[cfg(test)]
pub(crate) fn arb_json(
    keys: impl proptest::strategy::Strategy<Value = String> + Clone + 'static,
) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compile_rejects_a_pattern_that_is_not_a_regex() {
        let err = Schema::compile(&json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}))
            .unwrap_err();
        assert!(matches!(err, Error::Pattern { ref pointer, .. } if pointer == "/properties/a/pattern"));
    }

    #[test]
    fn compile_rejects_keywords_of_the_wrong_type() {
        let err = Schema::compile(&json!({"type": "object", "maxProperties": "3"})).unwrap_err();
        assert!(matches!(err, Error::KeywordType { ref keyword, .. } if keyword == "maxProperties"));
        assert!(matches!(Schema::compile(&json!([1])), Err(Error::NodeNotObject { .. })));
    }

    #[test]
    fn list_map_keys_are_found_through_nested_lists() {
        let schema = Schema::compile(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "containers": {"type": "array", "items": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                          "items": {"type": "object"}},
                "args": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}}}}}}),
        )
        .unwrap();
        let keys = schema.list_map_keys(&["spec", "containers", "ports"]).unwrap();
        assert_eq!(keys, ["containerPort".to_owned(), "protocol".to_owned()]);
        assert_eq!(schema.list_map_keys(&["spec", "containers", "args"]), None);
        assert_eq!(schema.list_type(&["spec", "containers", "args"]), Some("set"));
        assert_eq!(schema.list_type(&["spec", "missing"]), None);
    }
}
