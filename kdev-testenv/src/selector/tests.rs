use proptest::prelude::*;
use serde_json::json;

use super::*;

fn labels(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn label_error(s: &str) -> String {
    LabelSelector::parse(s)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| format!("{s:?} parsed"))
}

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with \
                         an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                         validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

#[test]
fn label_selector_valid_syntax_parses_to_go_canonical_form() {
    let cases = [
        ("", ""),
        ("   ", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x=", "x="),
        (" x = a ", "x=a"),
        ("x", "x"),
        ("!x", "!x"),
        ("! x", "!x"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("x in ()", "x in ()"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("x in (in,notin)", "x in (in,notin)"),
        ("in=notin", "in=notin"),
        ("x>1", "x>1"),
        ("x<10", "x<10"),
        ("z=1,a,!b", "a,!b,z=1"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("example.com/key=v", "example.com/key=v"),
        ("a=b\0,c", "a=b,c"),
    ];
    for (input, canonical) in cases {
        let parsed = LabelSelector::parse(input).map(|sel| sel.to_string());
        assert_eq!(parsed, Ok(canonical.to_owned()), "input {input:?}");
    }
}

#[test]
fn label_selector_syntax_errors_are_worded_as_go() {
    let cases = [
        ("x=a,", "found '', expected: identifier after ','"),
        (",x", "found ',', expected: !, identifier, or 'end of string'"),
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        ("a=b\tc", "found 'c', expected: ',' or 'end of string'"),
        (
            "a\0b=c",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("x=a=b", "found '=', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (
            "x y",
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        (
            "x in (a b)",
            "unable to parse requirement: found 'b', expected: ',' or ')'",
        ),
        (
            "x in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "x in (a,=)",
            "unable to parse requirement: found '=', expected: ',', or identifier",
        ),
        ("x==!", "unable to parse requirement: found '!', expected: identifier"),
        ("!!x", "unable to parse requirement: found '!', expected: identifier"),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, \
                 the value must be an integer",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(label_error(input), message, "input {input:?}");
    }
}

#[test]
fn label_selector_rejects_invalid_keys_with_field_error_text() {
    assert_eq!(
        label_error("a@b=c"),
        format!("unable to parse requirement: <nil>: Invalid value: \"a@b\": name part {NAME_RULE}")
    );
    assert_eq!(
        label_error("/a"),
        "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
    );
    let long = "k".repeat(64);
    assert_eq!(
        label_error(&long),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 bytes"
        )
    );
    assert!(label_error("a/b/c").contains("\"a/b/c\": a valid label key must consist of"));
    assert!(label_error("Example.com/a").contains("prefix part a lowercase RFC 1123 subdomain"));
    assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
}

#[test]
fn label_selector_rejects_invalid_values_with_indexed_path() {
    assert_eq!(
        label_error("k=-a"),
        "unable to parse requirement: values[0][k]: Invalid value: \"-a\": a valid label must be an empty \
         string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    let many = label_error("k in (ok,-b,-a)");
    assert!(
        many.starts_with("unable to parse requirement: [values[0][k]: Invalid value: \"-a\""),
        "{many}"
    );
    assert!(many.contains(", values[1][k]: Invalid value: \"-b\""), "{many}");
    assert!(label_error(&format!("k={}", "v".repeat(64))).contains("must be no more than 63 bytes"));
}

#[test]
fn label_selector_equality_needs_the_key_and_inequality_accepts_its_absence() {
    let sel = LabelSelector::parse("app=web").unwrap();
    assert!(sel.matches(Some(&labels(json!({"app": "web"})))));
    assert!(!sel.matches(Some(&labels(json!({"app": "db"})))));
    assert!(!sel.matches(None));
    let sel = LabelSelector::parse("app!=web").unwrap();
    assert!(sel.matches(None));
    assert!(sel.matches(Some(&labels(json!({"other": "x"})))));
    assert!(!sel.matches(Some(&labels(json!({"app": "web"})))));
    let sel = LabelSelector::parse("app=").unwrap();
    assert!(sel.matches(Some(&labels(json!({"app": ""})))));
    assert!(!sel.matches(None));
}

#[test]
fn label_selector_in_matches_any_listed_value_and_notin_accepts_absence() {
    let sel = LabelSelector::parse("tier in (web, db)").unwrap();
    assert!(sel.matches(Some(&labels(json!({"tier": "db"})))));
    assert!(!sel.matches(Some(&labels(json!({"tier": "cache"})))));
    assert!(!sel.matches(None));
    let sel = LabelSelector::parse("tier notin (web,db)").unwrap();
    assert!(sel.matches(Some(&labels(json!({"tier": "cache"})))));
    assert!(!sel.matches(Some(&labels(json!({"tier": "web"})))));
    assert!(sel.matches(None));
}

#[test]
fn label_selector_exists_and_does_not_exist_look_only_at_the_key() {
    let present = labels(json!({"gpu": ""}));
    assert!(LabelSelector::parse("gpu").unwrap().matches(Some(&present)));
    assert!(!LabelSelector::parse("gpu").unwrap().matches(None));
    assert!(!LabelSelector::parse("!gpu").unwrap().matches(Some(&present)));
    assert!(LabelSelector::parse("!gpu").unwrap().matches(None));
}

#[test]
fn label_selector_gt_and_lt_compare_integers_and_fail_on_non_integers() {
    let gt = LabelSelector::parse("n>5").unwrap();
    let lt = LabelSelector::parse("n<5").unwrap();
    assert!(gt.matches(Some(&labels(json!({"n": "6"})))));
    assert!(!gt.matches(Some(&labels(json!({"n": "5"})))));
    assert!(lt.matches(Some(&labels(json!({"n": "-3"})))));
    assert!(!lt.matches(Some(&labels(json!({"n": "x"})))));
    assert!(!lt.matches(None));
}

#[test]
fn label_selector_is_the_and_of_its_requirements() {
    let sel = LabelSelector::parse("a=1,b").unwrap();
    assert!(sel.matches(Some(&labels(json!({"a": "1", "b": "x"})))));
    assert!(!sel.matches(Some(&labels(json!({"a": "1"})))));
    assert!(LabelSelector::parse("").unwrap().is_empty());
    assert!(LabelSelector::parse("").unwrap().matches(None));
}

#[test]
fn field_selector_parses_operators_and_escapes_like_go() {
    let sel = FieldSelector::parse("b!=x,a==y,c=p\\,q\\=r\\\\s").unwrap();
    assert_eq!(sel.to_string(), "a=y,b!=x,c=p,q=r\\s");
    assert_eq!(sel.fields().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(FieldSelector::parse("").unwrap().is_empty());
    assert!(FieldSelector::parse(",,").unwrap().is_empty());
    assert_eq!(FieldSelector::parse("a=").unwrap().requirements()[0].value(), "");
    assert_eq!(FieldSelector::parse("a=!b").unwrap().requirements()[0].value(), "!b");
    assert_eq!(FieldSelector::parse(" a = b").unwrap().to_string(), " a = b");
}

#[test]
fn field_selector_errors_are_worded_as_go() {
    let err = |s: &str| FieldSelector::parse(s).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
    assert_eq!(err("z\\x=1,a"), "invalid selector: 'z\\x=1,a'; can't understand 'a'");
    assert_eq!(err("a=b=c"), "invalid field selector: unescaped character in value: 61");
    assert_eq!(err("a=b\\x"), "invalid field selector: invalid escape sequence: \\x");
    assert_eq!(err("a=b\\"), "invalid field selector: invalid escape sequence: \\");
}

#[test]
fn field_selector_reads_nested_bool_number_and_missing_fields() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "hostNetwork": true, "prio": 7}});
    let yes = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
    assert!(yes("spec.nodeName=n1"));
    assert!(yes("spec.hostNetwork=true"));
    assert!(yes("spec.prio=7"));
    assert!(yes("status.phase="));
    assert!(yes("status.phase!=Running"));
    assert!(!yes("spec.nodeName!=n1"));
    assert!(yes("metadata.name=p,spec.nodeName=n1"));
    assert!(!yes("metadata.name=p,spec.nodeName=n2"));
}

#[test]
fn field_selector_for_pods_reads_fields_as_the_pod_registry_does() {
    let pod = json!({"spec": {}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}});
    let sel = |s: &str| FieldSelector::parse(s).unwrap().for_resource("", "pods").unwrap();
    assert!(sel("spec.hostNetwork=false").matches(&pod));
    assert!(sel("status.podIP=10.0.0.1").matches(&pod));
    assert!(sel("status.podIPs=").matches(&pod));
    let host = sel("spec.host=n1");
    assert_eq!(host.fields().collect::<Vec<_>>(), ["spec.nodeName"]);
    assert!(host.matches(&json!({"spec": {"nodeName": "n1"}})));
}

#[test]
fn field_selector_for_resource_rejects_unsupported_fields_in_each_resources_words() {
    let err = |s: &str, g: &str, r: &str| {
        FieldSelector::parse(s)
            .unwrap()
            .for_resource(g, r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(err("spec.foo=1", "", "pods"), "field label not supported: spec.foo");
    assert_eq!(
        err("metadata.namespace=x", "", "nodes"),
        "field label not supported: metadata.namespace"
    );
    assert_eq!(
        err("status.succeeded=1", "batch", "jobs"),
        "field label \"status.succeeded\" not supported for batchv1.Job"
    );
    assert_eq!(
        err("spec.replicas=1", "apps", "deployments"),
        "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    // ReplicaSets select on their replica count (`ReplicaSetToSelectableFields`), an absent
    // count reading as 0.
    let replicas = FieldSelector::parse("status.replicas=0")
        .unwrap()
        .for_resource("apps", "replicasets")
        .unwrap();
    assert!(replicas.matches(&json!({"status": {}})));
    assert!(!replicas.matches(&json!({"status": {"replicas": 2}})));
    assert_eq!(
        err("spec.replicas=1", "apps", "replicasets"),
        "field label not supported: spec.replicas"
    );
    let jobs = FieldSelector::parse("status.successful=0")
        .unwrap()
        .for_resource("batch", "jobs")
        .unwrap();
    assert!(jobs.matches(&json!({"status": {}})));
    assert!(supported_fields("", "secrets").contains(&"type"));
    assert!(!supported_fields("", "namespaces").contains(&"metadata.namespace"));
}

#[test]
fn field_selector_for_events_falls_back_from_source_to_reporting_component() {
    let event = json!({"reportingComponent": "kubelet", "source": {}});
    let sel = FieldSelector::parse("source=kubelet")
        .unwrap()
        .for_resource("", "events")
        .unwrap();
    assert!(sel.matches(&event));
}

#[test]
fn field_selector_for_custom_resources_accepts_selectable_fields_only() {
    let sel = FieldSelector::parse("spec.color=red").unwrap();
    assert!(sel.for_custom_resource(true, &["spec.color"]).is_ok());
    let err = sel.for_custom_resource(true, &[]).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("field label not supported: spec.color"));
    let ns = FieldSelector::parse("metadata.namespace=a").unwrap();
    assert!(ns.for_custom_resource(false, &[]).is_err());
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let key = "([a-z]{1,3}\\.)?[a-z]{1,3}/[A-Za-z0-9]([-_.A-Za-z0-9]{0,4}[A-Za-z0-9])?|[a-c]";
    let value = "|[a-c]|[A-Za-z0-9]([-_.A-Za-z0-9]{0,3}[A-Za-z0-9])?";
    let values = prop::collection::btree_set(value, 1..4).prop_map(|s| s.into_iter().collect::<Vec<_>>());
    let one = value.prop_map(|v| vec![v]);
    let int = (0i64..20).prop_map(|n| vec![n.to_string()]);
    let op = prop_oneof![
        one.clone().prop_map(|v| (Operator::Equals, v)),
        one.clone().prop_map(|v| (Operator::DoubleEquals, v)),
        one.prop_map(|v| (Operator::NotEquals, v)),
        values.clone().prop_map(|v| (Operator::In, v)),
        values.prop_map(|v| (Operator::NotIn, v)),
        Just((Operator::Exists, Vec::new())),
        Just((Operator::DoesNotExist, Vec::new())),
        int.clone().prop_map(|v| (Operator::GreaterThan, v)),
        int.prop_map(|v| (Operator::LessThan, v)),
    ];
    (key, op).prop_map(|(key, (operator, values))| Requirement { key, operator, values })
}

/// The documented semantics, written independently of `Requirement::matches`.
fn reference(r: &Requirement, labels: &Map<String, Value>) -> bool {
    let got = labels.get(&r.key).and_then(Value::as_str);
    let listed = got.is_some_and(|v| r.values.iter().any(|w| w == v));
    let int = |s: &str| s.parse::<i64>().ok();
    let cmp = |f: fn(i64, i64) -> bool| matches!((got.and_then(int), r.values.first().and_then(|w| int(w))), (Some(a), Some(b)) if f(a, b));
    match r.operator {
        Operator::Equals | Operator::DoubleEquals | Operator::In => listed,
        Operator::NotEquals | Operator::NotIn => !listed,
        Operator::Exists => got.is_some(),
        Operator::DoesNotExist => got.is_none(),
        Operator::GreaterThan => cmp(|a, b| a > b),
        Operator::LessThan => cmp(|a, b| a < b),
    }
}

proptest! {
    #[test]
    fn rendered_label_selectors_parse_back_and_match_the_same_label_sets(
        reqs in prop::collection::vec(requirement(), 0..4),
        sets in prop::collection::vec(prop::collection::btree_map("[a-c]|x/[a-c]", "|[a-c0-9]|1[0-9]", 0..4), 1..6),
    ) {
        let rendered = reqs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let parsed = LabelSelector::parse(&rendered).map_err(|e| TestCaseError::fail(format!("{rendered}: {e}")))?;
        let mut sorted = reqs.clone();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        prop_assert_eq!(parsed.requirements(), sorted.as_slice());
        prop_assert_eq!(LabelSelector::parse(&parsed.to_string()).ok(), Some(parsed.clone()));
        for set in sets {
            let map: Map<String, Value> = set.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let expected = reqs.iter().all(|r| reference(r, &map));
            prop_assert_eq!(parsed.matches(Some(&map)), expected, "{} on {:?}", rendered, map);
        }
    }

    #[test]
    fn escaped_field_values_parse_back_to_the_literal(field in "[a-z.]{1,8}", value in "\\PC{0,12}") {
        let sel = FieldSelector::parse(&format!("{field}={}", escape_value(&value)));
        let sel = sel.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sel.requirements()[0].value(), value.as_str());
    }

    #[test]
    fn arbitrary_input_never_panics_either_parser(s in "\\PC{0,40}|[a-z=!(),<> \\\\\u{0}]{0,40}") {
        let _ = LabelSelector::parse(&s);
        let _ = FieldSelector::parse(&s);
    }
}
