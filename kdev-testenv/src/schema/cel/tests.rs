use serde_json::{Value, json};

use super::super::Schema;
use super::super::cause::Cause;
use super::check;

fn schema(spec: Value) -> Schema {
    Schema::compile(&json!({"type": "object", "properties": {"spec": spec}})).unwrap()
}

fn rendered(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{} {}", c.reason, c.to_error_string()))
        .collect()
}

fn eval(spec: Value, obj: Value) -> Vec<String> {
    rendered(&schema(spec).validate_rules(&json!({"spec": obj}), None, &[]))
}

fn eval_update(spec: Value, obj: Value, old: Value) -> Vec<String> {
    rendered(&schema(spec).validate_rules(&json!({"spec": obj}), Some(&json!({"spec": old})), &[]))
}

fn holds(rule: &str, mut ty: Value, value: Value) -> bool {
    ty["x-kubernetes-validations"] = json!([{"rule": rule}]);
    let spec = json!({"type": "object", "properties": {"v": ty}});
    let got = eval(spec, json!({"v": value}));
    assert!(got.iter().all(|g| g.contains("failed rule")), "{rule}: {got:?}");
    got.is_empty()
}

fn obj_ab() -> Value {
    json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "has(self.a) != has(self.b)", "message": "must have exactly one of a or b"}]})
}

#[test]
fn a_failing_rule_on_an_object_omits_the_value() {
    assert_eq!(eval(obj_ab(), json!({"a": "x"})), Vec::<String>::new());
    assert_eq!(
        eval(obj_ab(), json!({"a": "x", "b": "y"})),
        ["FieldValueInvalid spec: Invalid value: must have exactly one of a or b"]
    );
}

#[test]
fn the_default_message_names_the_rule_and_scalars_print_their_value() {
    let spec = json!({"type": "object", "properties": {"n": {"type": "integer",
        "x-kubernetes-validations": [{"rule": "self < 10"}]},
        "s": {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}]}}});
    assert_eq!(
        eval(spec, json!({"n": 11, "s": "b"})),
        [
            "FieldValueInvalid spec.n: Invalid value: 11: failed rule: self < 10",
            r#"FieldValueInvalid spec.s: Invalid value: "b": failed rule: self.startsWith('a')"#
        ]
    );
}

#[test]
fn rules_run_on_list_items_and_map_values() {
    let spec = json!({"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= 0", "message": "negative"}]}},
        "m": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''", "message": "empty"}]}}}});
    assert_eq!(
        eval(spec, json!({"l": [1, -1], "m": {"k": ""}})),
        [
            "FieldValueInvalid spec.l[1]: Invalid value: -1: negative",
            r#"FieldValueInvalid spec.m[k]: Invalid value: "": empty"#
        ]
    );
}

#[test]
fn transition_rules_need_an_old_value_unless_old_self_is_optional() {
    let spec = json!({"type": "object", "properties": {"name": {"type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]}}});
    assert!(eval(spec.clone(), json!({"name": "a"})).is_empty());
    assert!(eval_update(spec.clone(), json!({"name": "a"}), json!({"name": "a"})).is_empty());
    assert_eq!(
        eval_update(spec.clone(), json!({"name": "b"}), json!({"name": "a"})),
        [r#"FieldValueInvalid spec.name: Invalid value: "b": name is immutable"#]
    );
    // No old value at that path: not evaluated.
    assert!(eval_update(spec, json!({"name": "b"}), json!({})).is_empty());

    let optional = json!({"type": "object", "properties": {"name": {"type": "string",
        "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || self == oldSelf.value()",
            "optionalOldSelf": true, "message": "may only be set once"}]},
        "x": {"type": "string", "x-kubernetes-validations": [{"rule": "oldSelf.hasValue() || self == 'first'",
            "optionalOldSelf": true, "message": "must start as first"}]}}});
    assert!(eval(optional.clone(), json!({"name": "a", "x": "first"})).is_empty());
    assert_eq!(
        eval(optional.clone(), json!({"x": "second"})),
        [r#"FieldValueInvalid spec.x: Invalid value: "second": must start as first"#]
    );
    assert_eq!(
        eval_update(optional, json!({"name": "b"}), json!({"name": "a"})),
        [r#"FieldValueInvalid spec.name: Invalid value: "b": may only be set once"#]
    );
}

#[test]
fn list_map_items_correlate_by_key_for_old_self() {
    let spec = json!({"type": "object", "properties": {"l": {"type": "array",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
        "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "v may not decrease"}]}}}});
    let old = json!({"l": [{"k": "a", "v": 5}, {"k": "b", "v": 1}]});
    assert!(
        eval_update(
            spec.clone(),
            json!({"l": [{"k": "b", "v": 2}, {"k": "a", "v": 5}]}),
            old.clone()
        )
        .is_empty()
    );
    assert_eq!(
        eval_update(
            spec,
            json!({"l": [{"k": "b", "v": 1}, {"k": "a", "v": 4}, {"k": "c", "v": 0}]}),
            old
        ),
        ["FieldValueInvalid spec.l[1]: Invalid value: v may not decrease"]
    );
}

#[test]
fn message_expression_reason_and_field_path() {
    let spec = json!({"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)",
             "fieldPath": ".max", "reason": "FieldValueForbidden"},
            {"rule": "self.min != 3", "message": "fallback", "messageExpression": "self.nothere"},
            {"rule": "self.min != 3", "reason": "FieldValueRequired", "message": "req"},
            {"rule": "self.min != 3", "reason": "FieldValueDuplicate"}]});
    assert_eq!(
        eval(spec, json!({"min": 3, "max": 1})),
        [
            "FieldValueForbidden spec.max: Forbidden: min 3 exceeds max 1",
            "FieldValueInvalid spec: Invalid value: fallback",
            "FieldValueRequired spec: Required value: req",
            "FieldValueDuplicate spec: Duplicate value",
        ]
    );
}

#[test]
fn runtime_errors_become_causes_with_the_schema_type() {
    let spec = json!({"type": "object", "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.a == 'x'"}]});
    assert_eq!(
        eval(spec, json!({})),
        [r#"FieldValueInvalid spec: Invalid value: "object": no such key: a evaluating rule: self.a == 'x'"#]
    );
}

#[test]
fn blocking_schema_errors_skip_rules() {
    let s = schema(obj_ab());
    let earlier = [Cause::type_invalid(
        "spec.a",
        "integer",
        "spec.a in body must be of type string: \"integer\"",
    )];
    assert_eq!(
        rendered(&s.validate_rules(&json!({"spec": {"a": 1, "b": "y"}}), None, &earlier)),
        [
            "FieldValueInvalid <nil>: Invalid value: null: some validation rules were not checked because the \
             object was invalid; correct the existing errors to complete validation"
        ]
    );
}

#[test]
fn unchanged_values_ratchet_non_transition_rules() {
    let spec = json!({"type": "object", "properties": {"n": {"type": "integer",
        "x-kubernetes-validations": [{"rule": "self < 10"}]}}});
    assert!(eval_update(spec.clone(), json!({"n": 11}), json!({"n": 11})).is_empty());
    assert_eq!(eval_update(spec, json!({"n": 12}), json!({"n": 11})).len(), 1);
}

#[test]
fn the_standard_and_kubernetes_library_functions_evaluate() {
    let s = json!({"type": "string"});
    let l = json!({"type": "array", "items": {"type": "integer"}});
    let ls = json!({"type": "array", "items": {"type": "string"}});
    let cases: &[(&str, &Value, Value)] = &[
        ("self.matches('^[a-z]+$')", &s, json!("abc")),
        ("self.endsWith('c') && self.contains('b')", &s, json!("abc")),
        ("size(self) == 3 && self.size() == 3", &s, json!("abc")),
        (
            "self.lowerAscii() == 'abc' && self.upperAscii() == 'ABC'",
            &s,
            json!("aBc"),
        ),
        ("self.trim() == 'a'", &s, json!("  a ")),
        ("self.split(',') == ['a', 'b']", &s, json!("a,b")),
        ("self.replace('a', 'x') == 'xbx'", &s, json!("aba")),
        (
            "self.substring(1, 3) == 'bc' && self.indexOf('c') == 2 && self.lastIndexOf('a') == 3",
            &s,
            json!("abca"),
        ),
        (
            "self.find('[0-9]+') == '123' && self.findAll('[0-9]') == ['1', '2', '3']",
            &s,
            json!("ab123"),
        ),
        (
            "int(self) == 42 && string(int(self)) == '42' && double(self) == 42.0",
            &s,
            json!("42"),
        ),
        ("duration(self) == duration('90m')", &s, json!("1h30m")),
        (
            "timestamp(self) > timestamp('2020-01-01T00:00:00Z')",
            &s,
            json!("2024-05-01T10:00:00Z"),
        ),
        (
            "self.all(x, x > 0) && self.exists(x, x == 2) && self.exists_one(x, x == 3)",
            &l,
            json!([1, 2, 3]),
        ),
        (
            "self.map(x, x * 2) == [2, 4, 6] && self.filter(x, x > 1) == [2, 3]",
            &l,
            json!([1, 2, 3]),
        ),
        (
            "self.isSorted() && self.sum() == 6 && self.min() == 1 && self.max() == 3",
            &l,
            json!([1, 2, 3]),
        ),
        (
            "self.indexOf(2) == 1 && self.lastIndexOf(2) == 3 && self.indexOf(9) == -1",
            &l,
            json!([1, 2, 3, 2]),
        ),
        (
            "self.join('-') == 'a-b' && sets.contains(self, ['a']) && !sets.intersects(self, ['c'])",
            &ls,
            json!(["a", "b"]),
        ),
        ("cel.bind(n, size(self), n == 2)", &ls, json!(["a", "b"])),
        ("!self.isSorted()", &ls, json!(["b", "a"])),
    ];
    for (rule, ty, value) in cases {
        assert!(
            holds(rule, (*ty).clone(), value.clone()),
            "{rule} should hold for {value}"
        );
    }
    assert!(!holds("self.matches('^[a-z]+$')", s.clone(), json!("ab1")));
}

#[test]
fn formats_give_typed_values() {
    let dt = json!({"type": "string", "format": "date-time"});
    assert!(holds(
        "self > timestamp('2020-01-01T00:00:00Z')",
        dt.clone(),
        json!("2024-01-01T00:00:00Z")
    ));
    assert!(!holds(
        "self > timestamp('2030-01-01T00:00:00Z')",
        dt,
        json!("2024-01-01T00:00:00Z")
    ));
    let d = json!({"type": "string", "format": "duration"});
    assert!(holds("self < duration('1h')", d, json!("30m")));
    let n = json!({"type": "number"});
    assert!(holds("self == 2.0", n, json!(2)));
}

#[test]
fn optional_field_selection_and_escaped_names() {
    let spec = json!({"type": "object", "properties": {"a": {"type": "string"}, "x-y": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.?a.orValue('none') == 'none' && self.x__dash__y == 'z'"}]});
    assert!(eval(spec.clone(), json!({"x-y": "z"})).is_empty());
    assert_eq!(eval(spec, json!({"a": "q", "x-y": "z"})).len(), 1);
}

fn crd_causes(rule: Value) -> Vec<String> {
    let spec = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"a": {"type": "string"}}, "x-kubernetes-validations": [rule]}}});
    rendered(&check(&spec, "spec.versions[0].schema.openAPIV3Schema"))
}

#[test]
fn crd_rules_that_do_not_compile_are_rejected() {
    assert!(crd_causes(json!({"rule": "has(self.a)"})).is_empty());
    let got = crd_causes(json!({"rule": "self.a ==="}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "FieldValueInvalid spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: \
             Invalid value: {\"Rule\":\"self.a ===\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\
             \"FieldPath\":\"\",\"OptionalOldSelf\":null}: compilation failed: "
        ),
        "{got:?}"
    );
    assert!(got[0].contains(": compilation failed: "), "{got:?}");
    let got = crd_causes(json!({"rule": "isURL(self.a)"}));
    assert!(
        got[0].contains("function 'isURL' is part of the Kubernetes CEL library but is not available"),
        "{got:?}"
    );
    let got = crd_causes(json!({"rule": "nosuch(self.a)"}));
    assert!(got[0].contains("undeclared reference to 'nosuch'"), "{got:?}");
    let got = crd_causes(json!({"rule": "other.a == 1"}));
    assert!(got[0].contains("undeclared reference to 'other'"), "{got:?}");
}

#[test]
fn crd_rule_fields_are_checked() {
    assert_eq!(
        crd_causes(json!({"rule": "true", "reason": "Bad"})),
        [
            "FieldValueNotSupported spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].reason: \
             Unsupported value: \"Bad\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \
             \"FieldValueInvalid\", \"FieldValueRequired\""
        ]
    );
    assert_eq!(
        crd_causes(json!({"rule": "true", "fieldPath": ".nope"})),
        [
            "FieldValueInvalid spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].fieldPath: \
             Invalid value: \".nope\": fieldPath must be a valid path"
        ]
    );
    assert_eq!(
        crd_causes(json!({"rule": ""})),
        [
            "FieldValueRequired spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: \
             Required value: rule is not specified"
        ]
    );
    assert_eq!(crd_causes(json!({"rule": "true", "optionalOldSelf": true})).len(), 1);
}

#[test]
fn runaway_comprehensions_are_stopped_by_the_budget() {
    let spec = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, self.all(z, x + y + z >= 0)))"}]}}});
    let big: Vec<i64> = (0..1000).collect();
    let got = eval(spec, json!({"l": big}));
    assert_eq!(
        got,
        [
            "FieldValueInvalid spec.l: Invalid value: \"array\": validation failed due to running out of cost budget, no \
          further validation rules will be run"
        ]
    );
}

#[test]
fn arbitrary_rules_and_values_never_panic() {
    let rules = [
        "self",
        "1/0 == 1",
        "self.a.b.c",
        "[1,2][5] == 1",
        "size(self) / 0 > 1",
        "self.matches('(')",
        "9223372036854775807 + 1 > 0",
        "'a' + 1 == 'a1'",
        "self.?x.y",
        "duration('nope') > duration('1s')",
    ];
    for rule in rules {
        let spec = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-validations": [{"rule": rule}]});
        let _ = eval(spec, json!({"a": [1, {"b": null}], "x": "y"}));
    }
}

#[test]
fn deeply_nested_and_very_long_rules_are_errors_not_crashes() {
    let long_chain = format!("true{}", " && true".repeat(5_000));
    let parens = format!("{}1{} == 1", "(".repeat(5_000), ")".repeat(5_000));
    let nots = format!("{}true", "!".repeat(10_000));
    let negs = format!("{}1 == 1", "-".repeat(10_000));
    let lists = format!("{}1{} == []", "[".repeat(5_000), "]".repeat(5_000));
    let calls = format!("{}self{}", "size(".repeat(3_000), ")".repeat(3_000));
    let at_limit = format!("{}1{} == 1", "(".repeat(64), ")".repeat(64));
    let mixed = format!("{}1{}", "[(".repeat(32), ")]".repeat(32));
    assert!(crd_causes(json!({ "rule": at_limit.clone() })).is_empty());
    let too_deep = crd_causes(json!({ "rule": parens.clone() }));
    assert!(
        too_deep[0].contains("brackets are nested more than 64 deep"),
        "{too_deep:?}"
    );
    for rule in [long_chain, parens, nots, negs, lists, calls, at_limit, mixed] {
        let causes = crd_causes(json!({ "rule": rule }));
        let spec = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": rule}]});
        let _ = eval(spec, json!({"a": "x"}));
        let _ = causes;
    }
}

#[test]
fn kubebuilder_one_of_helpers_and_object_immutability() {
    let spec = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"},
        "cfg": {"type": "object", "properties": {"x": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "cfg is immutable"}]}},
        "x-kubernetes-validations": [
            {"rule": "(has(self.a)?1:0)+(has(self.b)?1:0)+(has(self.c)?1:0) == 1", "message": "exactly one of the fields in [a b c] must be set"},
            {"rule": "(has(self.a)?1:0)+(has(self.b)?1:0) <= 1", "message": "at most one of the fields in [a b] may be set"}]});
    assert!(eval(spec.clone(), json!({"a": "x"})).is_empty());
    assert_eq!(
        eval(spec.clone(), json!({"a": "x", "b": "y"})),
        [
            "FieldValueInvalid spec: Invalid value: exactly one of the fields in [a b c] must be set",
            "FieldValueInvalid spec: Invalid value: at most one of the fields in [a b] may be set"
        ]
    );
    assert!(
        eval_update(
            spec.clone(),
            json!({"a": "x", "cfg": {"x": 1}}),
            json!({"a": "x", "cfg": {"x": 1}})
        )
        .is_empty()
    );
    assert_eq!(
        eval_update(
            spec,
            json!({"a": "x", "cfg": {"x": 2}}),
            json!({"a": "x", "cfg": {"x": 1}})
        ),
        ["FieldValueInvalid spec.cfg: Invalid value: cfg is immutable"]
    );
}

#[test]
fn the_root_sees_name_and_kind_and_int_or_string_is_dynamic() {
    let s = Schema::compile(&json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('ok-') && self.kind == 'Gadget'", "message": "bad name"}],
        "properties": {"spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true,
                "x-kubernetes-validations": [{"rule": "type(self) == int ? self > 0 : self.matches('^[a-z]+$')"}]}}}}}))
    .unwrap();
    let obj = |name: &str, port: Value| json!({"kind": "Gadget", "metadata": {"name": name, "labels": {"a": "b"}}, "spec": {"port": port}});
    assert!(s.validate_rules(&obj("ok-1", json!(80)), None, &[]).is_empty());
    assert!(s.validate_rules(&obj("ok-1", json!("http")), None, &[]).is_empty());
    assert_eq!(
        rendered(&s.validate_rules(&obj("no", json!("HTTP")), None, &[])),
        [
            "FieldValueInvalid <nil>: Invalid value: bad name",
            r#"FieldValueInvalid spec.port: Invalid value: "HTTP": failed rule: type(self) == int ? self > 0 : self.matches('^[a-z]+$')"#
        ]
    );
}

#[test]
fn selecting_an_undeclared_field_does_not_compile() {
    let got = crd_causes(json!({"rule": "has(self.b) || self.a == 'x'"}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("undefined field 'b'"), "{got:?}");
    let got = crd_causes(json!({"rule": "self.a == 'x' ||\n self.b == 'y'", "message": "m"}));
    assert_eq!(got.len(), 1, "{got:?}");
    let (_, detail) = got[0].split_once("}: ").unwrap();
    let (head, snippet) = detail.split_once('\n').unwrap();
    assert!(head.starts_with("compilation failed: ERROR: <input>:2:"), "{head}");
    assert!(head.ends_with(": undefined field 'b'"), "{head}");
    assert!(snippet.starts_with(" |  self.b == 'y'\n | ."), "{snippet}");
    let list = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"k": {"type": "string"}}}}},
        "x-kubernetes-validations": [
            {"rule": "self.l.all(i, i.n > 0) && self.m.all(k, self.m[k].k != '') && self.m.anykey.k != ''"},
            {"rule": "self.l.all(i, i.q > 0)"}]}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name != '' && self.metadata.labels.size() > 0"}]});
    let got = rendered(&check(&list, "p"));
    assert_eq!(got.len(), 2, "{got:?}");
    // Nested schemas are reported before the node that holds them, as kube recurses first.
    assert!(
        got[0].starts_with("FieldValueInvalid p.properties[spec].x-kubernetes-validations[1].rule: "),
        "{got:?}"
    );
    assert!(
        got[0].ends_with("undefined field 'q'\n | self.l.all(i, i.q > 0)\n | ...............^"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("FieldValueInvalid p.x-kubernetes-validations[0].rule: "),
        "{got:?}"
    );
    assert!(got[1].contains("undefined field 'labels'"), "{got:?}");
}

#[test]
fn every_documented_extension_function_compiles_and_evaluates() {
    let l = json!({"type": "array", "items": {"type": "integer"}});
    let s = json!({"type": "string"});
    let cases: &[(&str, &Value, Value)] = &[
        (
            "math.greatest(self) == 3 && math.least(1, 2) == 1 && math.ceil(1.2) == 2.0",
            &l,
            json!([1, 3, 2]),
        ),
        (
            "math.abs(-1) == 1 && math.sign(-5) == -1 && math.floor(1.5) == 1.0 && math.round(1.5) == 2.0",
            &l,
            json!([]),
        ),
        (
            "math.bitAnd(3, 1) == 1 && math.isNaN(0.0 / 0.0) && math.sqrt(4) == 2.0",
            &l,
            json!([]),
        ),
        (
            "self.slice(1, 2) == [2] && [[1], [2]].flatten() == [1, 2] && self.distinct() == [3, 2, 1]",
            &l,
            json!([3, 2, 1]),
        ),
        (
            "self.sort() == [1, 2, 3] && self.sortBy(x, -x) == [3, 2, 1] && lists.range(2) == [0, 1]",
            &l,
            json!([3, 1, 2]),
        ),
        (
            "self.reverse() == [2, 1] && self.map(x, x > 1, x * 10) == [20] && self.filter(x, x > 1).size() == 1",
            &l,
            json!([1, 2]),
        ),
        (
            "base64.decode(base64.encode(bytes(self))) == bytes(self) && strings.quote(self) == '\"ab\"'",
            &s,
            json!("ab"),
        ),
        (
            "self.charAt(1) == 'b' && self.reverse() == 'ba' && '%s-%d'.format([self, 1]) == 'ab-1'",
            &s,
            json!("ab"),
        ),
        (
            "optional.of(self).orValue('x') == 'ab' && optional.none().orValue('y') == 'y'",
            &s,
            json!("ab"),
        ),
        (
            "optional.ofNonZeroValue('').hasValue() == false && optional.of(1).value() == 1",
            &s,
            json!("ab"),
        ),
        ("optional.none().or(optional.of(self)).value() == 'ab'", &s, json!("ab")),
        (
            "sets.equivalent(self, [2, 1]) && self.exists(x, x in [2])",
            &l,
            json!([1, 2]),
        ),
        (
            "timestamp('2024-01-02T03:04:05Z').getFullYear() == 2024 && duration('1h').getMinutes() == 60",
            &s,
            json!(""),
        ),
        (
            "uint(1) == 1u && bool('true') && type(self) == string && dyn(1) == 1",
            &s,
            json!(""),
        ),
    ];
    for (rule, ty, value) in cases {
        let mut ty = (*ty).clone();
        ty["x-kubernetes-validations"] = json!([{ "rule": rule }]);
        let crd =
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"v": ty.clone()}}}});
        assert_eq!(
            rendered(&check(&crd, "p")),
            Vec::<String>::new(),
            "{rule} should compile"
        );
        let got = eval(json!({"type": "object", "properties": {"v": ty}}), json!({"v": value}));
        assert_eq!(got, Vec::<String>::new(), "{rule} should hold");
    }
}

#[test]
fn old_self_under_lists_that_do_not_correlate_is_refused() {
    let crd = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "atomic": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.n == oldSelf.n"}]}},
        "keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["n"],
            "items": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.n == oldSelf.n"}]}}}}}});
    assert_eq!(
        rendered(&check(&crd, "p")),
        [
            "FieldValueInvalid p.properties[spec].properties[atomic].items.x-kubernetes-validations[0].rule: Invalid \
             value: \"self.n == oldSelf.n\": oldSelf cannot be used on the uncorrelatable portion of the schema within \
             p.properties[spec].properties[atomic]"
        ]
    );
}

mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const TOKENS: &[&str] = &[
        "self",
        "oldSelf",
        ".",
        "a",
        "b",
        "l",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "?",
        "==",
        "!=",
        "<",
        "+",
        "-",
        "*",
        "/",
        "%",
        "&&",
        "||",
        "!",
        "has(",
        "size(",
        ".all(x,",
        ".map(x,",
        ".exists(x,",
        "x",
        "1",
        "0",
        "-1",
        "9223372036854775807",
        "1.5",
        "'s'",
        "\"q\"",
        "true",
        "null",
        "[]",
        "{}",
        ".?",
        "int(",
        "string(",
        "duration(",
        "timestamp(",
        ".matches(",
        ".split(",
        ".sum()",
        ".min()",
        ".indexOf(",
        "cel.bind(v,",
        "v",
    ];

    fn rule() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 1..24).prop_map(|t| t.join(" "))
    }

    fn value() -> impl Strategy<Value = Value> {
        crate::schema::arb_json("[abl]")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Any rule over any object gives causes, never a panic.
        #[test]
        fn arbitrary_rules_over_arbitrary_objects_never_panic(rule in rule(), new in value(), old in value()) {
            let spec = json!({"type": "object", "properties": {
                "a": {"type": "string"}, "b": {"type": "integer"}, "l": {"type": "array", "items": {"type": "integer"}}},
                "x-kubernetes-validations": [{"rule": rule.clone(), "messageExpression": rule}]});
            let crd = json!({"type": "object", "properties": {"spec": spec.clone()}});
            let _ = super::check(&crd, "p");
            let schema = super::super::super::Schema::compile(&crd).unwrap();
            let _ = schema.validate_rules(&json!({"spec": new}), Some(&json!({"spec": old})), &[]);
        }
    }
}

#[test]
fn message_expressions_of_optional_old_self_rules_see_a_plain_old_self() {
    let spec = json!({"type": "object", "properties": {"name": {"type": "string",
        "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || self == oldSelf.value()", "optionalOldSelf": true,
            "message": "immutable", "messageExpression": "'was ' + oldSelf + ', now ' + self"}]}}});
    assert_eq!(
        eval_update(spec, json!({"name": "b"}), json!({"name": "a"})),
        [r#"FieldValueInvalid spec.name: Invalid value: "b": was a, now b"#]
    );
}

#[test]
fn rules_that_evidently_are_not_bool_do_not_compile() {
    for rule in ["self.a", "1 + 2", "'x'", "size(self.a)", "self.a + 'x'", "true ? 1 : 2"] {
        let got = crd_causes(json!({"rule": rule}));
        assert_eq!(got.len(), 1, "{rule}: {got:?}");
        assert!(
            got[0].ends_with("}: compilation failed: cel expression must evaluate to a bool"),
            "{got:?}"
        );
    }
    for rule in [
        "has(self.a)",
        "self.a == 'x'",
        "self.a in ['x']",
        "!has(self.a) || self.a.startsWith('x')",
    ] {
        assert!(crd_causes(json!({"rule": rule})).is_empty(), "{rule}");
    }
    let got = crd_causes(json!({"rule": "true", "messageExpression": "size(self.a)"}));
    assert!(
        got[0].ends_with("}: messageExpression compilation failed: messageExpression must evaluate to a string"),
        "{got:?}"
    );
    assert!(crd_causes(json!({"rule": "true", "messageExpression": "'a is ' + self.a"})).is_empty());
}

fn set_of(items: &str) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": items}})
}

/// A map list of `{k, v}` objects keyed by `k`.
fn keyed() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
        "items": {"type": "object", "required": ["k"],
            "properties": {"k": {"type": "string"}, "v": {"type": "integer"}}}})
}

/// Whether `rule`, written on the spec, holds for `spec` under a schema of these properties.
fn spec_holds(properties: Value, rule: &str, spec: Value) -> bool {
    let schema = json!({"type": "object", "properties": properties,
        "x-kubernetes-validations": [{"rule": rule}]});
    let got = eval(schema, spec);
    assert!(got.iter().all(|g| g.contains("failed rule")), "{rule}: {got:?}");
    got.is_empty()
}

#[test]
fn set_and_map_lists_are_equal_whatever_their_order() {
    assert!(holds("self == [2, 1]", set_of("integer"), json!([1, 2])));
    assert!(holds("self != [2, 1, 3]", set_of("integer"), json!([1, 2])));
    assert!(!holds("self == [2, 3]", set_of("integer"), json!([1, 2])));
    assert!(holds("self == ['b', 'a']", set_of("string"), json!(["a", "b"])));
    // Atomic lists (no list type, or `atomic`) keep positional equality.
    let atomic = json!({"type": "array", "items": {"type": "integer"}});
    assert!(!holds("self == [2, 1]", atomic.clone(), json!([1, 2])));
    assert!(holds("self == [1, 2]", atomic, json!([1, 2])));
    let explicit = json!({"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "integer"}});
    assert!(!holds("self == [2, 1]", explicit, json!([1, 2])));
    // The left operand decides, as in cel-go: a literal list on the left compares by position.
    assert!(!holds("[2, 1] == self", set_of("integer"), json!([1, 2])));

    let two = json!({"x": keyed(), "y": keyed()});
    let spec = json!({"x": [{"k": "a", "v": 1}, {"k": "b", "v": 2}], "y": [{"k": "b", "v": 2}, {"k": "a", "v": 1}]});
    assert!(spec_holds(two.clone(), "self.x == self.y", spec));
    let differs = json!({"x": [{"k": "a", "v": 1}, {"k": "b", "v": 2}], "y": [{"k": "b", "v": 3}, {"k": "a", "v": 1}]});
    assert!(!spec_holds(two.clone(), "self.x == self.y", differs));
    let other_key = json!({"x": [{"k": "a", "v": 1}], "y": [{"k": "c", "v": 1}]});
    assert!(!spec_holds(two, "self.x == self.y", other_key));
}

#[test]
fn reordering_a_set_or_map_list_keeps_an_object_equal_to_its_old_self() {
    let spec = json!({"type": "object",
        "properties": {"s": set_of("string"), "m": keyed(), "l": {"type": "array", "items": {"type": "string"}}},
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]});
    let old = json!({"s": ["a", "b"], "m": [{"k": "a", "v": 1}, {"k": "b", "v": 2}], "l": ["x", "y"]});
    let reordered = json!({"s": ["b", "a"], "m": [{"k": "b", "v": 2}, {"k": "a", "v": 1}], "l": ["x", "y"]});
    assert!(eval_update(spec.clone(), reordered, old.clone()).is_empty());
    let atomic_reordered = json!({"s": ["a", "b"], "m": [{"k": "a", "v": 1}, {"k": "b", "v": 2}], "l": ["y", "x"]});
    assert_eq!(
        eval_update(spec, atomic_reordered, old),
        ["FieldValueInvalid spec: Invalid value: immutable"]
    );
}

#[test]
fn concatenating_a_set_list_is_a_union_in_order() {
    let s = set_of("string");
    // X's elements keep their positions; Y's new ones follow in their order, once each.
    assert!(holds(
        "(self + ['d', 'a', 'c', 'd']).join(',') == 'b,a,d,c'",
        s.clone(),
        json!(["b", "a"])
    ));
    assert!(holds("size(self + ['a']) == 2", s.clone(), json!(["b", "a"])));
    // The union is a set again; a plain list on the left concatenates as usual.
    assert!(holds("self + ['c'] == ['c', 'a', 'b']", s.clone(), json!(["b", "a"])));
    assert!(holds(
        "(['a'] + self).join(',') == 'a,b,a'",
        s.clone(),
        json!(["b", "a"])
    ));
    assert!(!holds("['c'] + self == ['b', 'a', 'c']", s, json!(["b", "a"])));
}

#[test]
fn concatenating_a_map_list_merges_by_key() {
    let two = json!({"x": keyed(), "y": keyed()});
    let spec = json!({"x": [{"k": "a", "v": 1}, {"k": "b", "v": 2}], "y": [{"k": "c", "v": 3}, {"k": "a", "v": 9}]});
    // X's keys keep their positions with Y's values; Y's other elements follow in their order.
    assert!(spec_holds(
        two.clone(),
        "(self.x + self.y).map(e, e.k + string(e.v)).join(',') == 'a9,b2,c3'",
        spec.clone()
    ));
    assert!(spec_holds(
        two.clone(),
        "(self.y + self.x).map(e, e.k + string(e.v)).join(',') == 'c3,a1,b2'",
        spec.clone()
    ));
    assert!(spec_holds(two, "size(self.x + self.y) == 3", spec));
}

#[test]
fn library_functions_take_set_and_map_lists() {
    let ints = set_of("integer");
    for rule in [
        "self.sum() == 6",
        "self.max() == 3 && self.min() == 1",
        "!self.isSorted() && self.sort() == [1, 2, 3]",
        "self.indexOf(1) == 1",
        "sets.equivalent(self, [1, 2, 3])",
        "sets.contains(self, [3])",
        "2 in self && !(4 in self)",
        "self[0] == 3 && self.exists(x, x == 2) && self.all(x, x > 0)",
        "self.map(x, x * 2) == [6, 2, 4]",
        "self.filter(x, x > 1) == [3, 2]",
        "type(self) == list && size(self) == 3",
        "self.slice(0, 2) == [3, 1]",
        "self.reverse() == [2, 1, 3]",
        "self.distinct() == [3, 1, 2]",
    ] {
        assert!(holds(rule, ints.clone(), json!([3, 1, 2])), "{rule}");
    }
    assert!(holds(
        "self.exists(e, e.k == 'b' && e.v == 2)",
        keyed(),
        json!([{"k": "a", "v": 1}, {"k": "b", "v": 2}])
    ));
}
