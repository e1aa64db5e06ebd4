//! Lesson 9 (`crd`): the derived CRD, installed; objects created, read and listed; the status and
//! scale subresources; every schema validation and both CEL rules rejecting their bad objects.

use super::{assert_shows, run_anywhere};

#[test]
fn the_crd_lesson_installs_the_derived_crd_and_shows_each_validation_error() {
    let (out, _) = run_anywhere(env!("CARGO_BIN_EXE_crd"));
    assert_shows(
        &out,
        &[
            // The YAML the derive generated.
            "kind: CustomResourceDefinition\nmetadata:\n  name: websites.example.com\n",
            "  scope: Namespaced\n",
            "                maxLength: 253\n",
            "                x-kubernetes-list-type: set\n",
            "            - message: \"TLS needs a public domain: .local names get no certificate\"\n",
            "        specReplicasPath: .spec.replicas\n",
            // Installed and served.
            "  condition Established=True",
            // Defaulting and pruning, get and list, a field selector.
            "read back: replicas 1 and tls \"Redirect\" (defaults from the schema); colour is gone (pruned",
            "get blog: domain blog.example.com, 2 replicas, tls Strict, generation 1",
            "list: blog, docs, shop",
            "spec.tls=Strict (a selectable field): blog, shop",
            // The subresources.
            "PUT websites/blog with a status: the server ignored it (status None)",
            "PATCH websites/blog/status: phase \"Serving\", status.replicas 2; generation still 1",
            "GET websites/blog/scale: spec.replicas 2, status.replicas 2, selector \"app=blog\"",
            "the Website's spec.replicas is now 3, generation 2",
            // The printer columns.
            "  NAME   DOMAIN             REPLICAS   TLS        PHASE     AGE",
            "  blog   blog.example.com   3          Strict     Serving   ",
            "  docs   docs.example.com   1          Redirect   <none>    ",
        ],
    );

    // Every schema validation rejected its object with 422 and the message kube-apiserver gives.
    let cases = [
        ("required", "spec.image: Required value"),
        ("type", "spec.replicas in body must be of type integer: \"string\""),
        ("minimum", "spec.replicas in body should be greater than or equal to 1"),
        ("maximum", "spec.replicas in body should be less than or equal to 10"),
        ("minLength", "spec.image in body should be at least 1 chars long"),
        ("maxLength", "spec.domain: Too long"),
        ("pattern", "spec.domain in body should match '^[a-z0-9]"),
        ("enum", "spec.tls: Unsupported value: \"Sometimes\""),
        ("maxItems", "spec.paths: Too many: 5: must have at most 4 items"),
        ("items pattern", "spec.paths[0] in body should match '^/'"),
        ("list-type set", "spec.paths[1]: Duplicate value: \"/\""),
    ];
    for (kind, message) in cases {
        let answer = answer_to(&out, &format!("  [{kind}] "));
        assert!(answer.starts_with("422 Invalid: "), "[{kind}] got {answer:?}");
        assert!(answer.contains(message), "[{kind}] {answer:?} lacks {message:?}");
    }

    // CEL rules: kube-apiserver and kdev-testenv both evaluate them.
    for (case, message) in [
        (
            "  [rule on the spec] ",
            "TLS needs a public domain: .local names get no certificate",
        ),
        ("  [immutable] ", "field is immutable"),
    ] {
        let answer = answer_to(&out, case);
        assert!(answer.starts_with("422 Invalid: "), "{case} got {answer:?}");
        assert!(answer.contains(message), "{case} {answer:?} lacks {message:?}");
    }
}

/// The server's answer printed under the line that starts with `case`.
fn answer_to<'a>(out: &'a str, case: &str) -> &'a str {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(case));
    assert!(lines.next().is_some(), "no {case:?} case in:\n{out}");
    lines
        .next()
        .and_then(|l| l.trim_start().strip_prefix("-> "))
        .unwrap_or_else(|| panic!("no answer to {case:?} in:\n{out}"))
}
