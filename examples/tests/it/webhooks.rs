//! Lessons 13 to 16 (`webhook_by_hand`, `webhook`, `webhook_bare`, `conversion`): the embedded API server
//! calls webhooks served by the lesson itself, as kube-apiserver calls a webhook Service.
//!
//! A real cluster cannot reach a server inside the lesson's process. With
//! `KDEV_TEST_KUBECONFIG` set, each lesson runs against that cluster, must say so and stop
//! cleanly after the parts that need no API server, and the test skips the rest with a reason.

use super::{assert_shows, run_anywhere};

/// The lesson's output, and whether it ran against a real cluster.
fn run_lesson(bin: &str) -> (String, bool) {
    let (out, on_cluster) = run_anywhere(bin);
    if on_cluster {
        assert!(
            out.contains("skipped: KUBECONFIG is set, but a real cluster's API server cannot call a webhook"),
            "{out}"
        );
        eprintln!(
            "skipping the webhook calls: a real cluster's API server cannot reach a webhook served inside the lesson"
        );
    }
    (out, on_cluster)
}

/// The server's answer printed under the line that starts with `case`.
fn answer_to<'a>(out: &'a str, case: &str) -> &'a str {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(case));
    assert!(lines.next().is_some(), "no {case:?} case in:\n{out}");
    lines
        .find_map(|l| l.trim_start().strip_prefix("-> "))
        .unwrap_or_else(|| panic!("no answer to {case:?} in:\n{out}"))
}

#[test]
fn the_webhook_lesson_refuses_latest_images_and_defaults_unlabelled_pods() {
    let (out, on_cluster) = run_lesson(env!("CARGO_BIN_EXE_webhook"));
    // Generated configurations: rules inferred from Pod, the settings the lesson chose.
    assert_shows(
        &out,
        &[
            "wrote ca.crt, ca.key, tls.crt, tls.key into ",
            "kind: ValidatingWebhookConfiguration\nmetadata:\n  name: kdev-lesson\n",
            "kind: MutatingWebhookConfiguration\nmetadata:\n  name: kdev-lesson\n",
            "      name: kdev-lesson-webhook\n      namespace: webhook-system\n      path: /validate-pods\n",
            "  name: no-latest.pods.kdev.dev\n",
            "    - key: kubernetes.io/metadata.name\n      operator: NotIn\n",
            "    resources:\n    - pods\n",
            "  failurePolicy: Fail\n",
        ],
    );
    let generated = out
        .split("== 3.")
        .nth(1)
        .and_then(|s| s.split("== 4.").next())
        .unwrap_or_default();
    assert!(
        !generated.contains("caBundle"),
        "the configurations are generated without a bundle:\n{out}"
    );
    if on_cluster {
        return;
    }

    // Without the CA the API server cannot verify the webhook, and failurePolicy Fail refuses.
    let early = answer_to(&out, "  [before injection] create pod early");
    assert!(early.starts_with("500 InternalError: "), "{early}");
    assert!(
        early.contains("failed calling webhook \"defaults.pods.kdev.dev\""),
        "{early}"
    );
    assert_shows(
        &out,
        &["injected into 2 configurations; clientConfig.caBundle now holds "],
    );

    // The validator refuses :latest and untagged images with the API server's message.
    for image in ["nginx:latest", "nginx"] {
        let answer = answer_to(&out, &format!("  create pod floating ({image})"));
        assert_eq!(
            answer,
            format!(
                "403 Forbidden: admission webhook \"no-latest.pods.kdev.dev\" \
                 denied the request: image \"{image}\" floats (:latest or no tag); pin a version"
            )
        );
    }
    assert_shows(
        &out,
        &[
            "  pod floating exists: false",
            // The defaulter's changes, read back from the API server.
            "  read back, labels: [kdev.dev/defaulted=true, team=platform]",
            "  read back, containers: app (nginx:1.27.2), log-shipper (fluent/fluent-bit:3.1)",
            "created pod billing labelled team=payments -> labels [kdev.dev/defaulted=true, team=payments]",
            "    [defaulter] CREATE pod dry (dryRun true)",
            "dry-run create of pod dry -> labels [kdev.dev/defaulted=true, team=platform]; stored: false",
            "patch pod web to nginx:latest -> 403 admission webhook \"no-latest.pods.kdev.dev\"",
            "stopped the webhook server and removed the configurations",
        ],
    );
    // Every webhook call the API server made was answered (HTTP 200), none failed.
    assert!(
        out.contains("controller_runtime_webhook_requests_total{webhook=\"/validate-pods\",code=\"200\"} 6"),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with("  controller_runtime_webhook_requests_total") && !l.contains("code=\"200\"")),
        "{out}"
    );
}

#[test]
fn the_conversion_lesson_stores_v2_and_converts_both_ways_without_loss() {
    let (out, on_cluster) = run_lesson(env!("CARGO_BIN_EXE_conversion"));
    assert_shows(
        &out,
        &[
            "  version v1: served true, storage false",
            "  version v2: served true, storage true",
            // The conversion functions, called directly.
            r#"  v1 image "registry.example.com:5000/shop:2.1" -> v2 image {"repository":"registry.example.com:5000/shop","tag":"2.1"}"#,
            r#"  and back to v1: "registry.example.com:5000/shop:2.1" (equal: true)"#,
            // The generated stanza.
            "  strategy: Webhook\n  webhook:\n    clientConfig:\n",
            "        name: kdev-lesson-conversion\n        namespace: webhook-system\n        path: /convert\n",
            "    conversionReviewVersions:\n    - v1\n",
        ],
    );
    if on_cluster {
        return;
    }
    // Created in v1, the API server asks the webhook for v2 (the storage version) to store it.
    let create = out
        .split("== 5.")
        .nth(1)
        .and_then(|s| s.split("== 6.").next())
        .unwrap_or_default();
    let first = create.lines().find(|l| l.contains("[conversion webhook]"));
    assert_eq!(
        first,
        Some("    [conversion webhook] web example.com/v1 -> example.com/v2"),
        "{out}"
    );
    assert_shows(
        &out,
        &[
            "CRD webapps.example.com established; status.storedVersions [\"v2\"]",
            "created WebApp web in v1: image \"nginx:1.27\"",
            r#"  v2 read: image {"repository":"nginx","tag":"1.27"}"#,
            "  v1 read: image \"nginx:1.27\"",
            "  same object: true",
            // What only v2 says survives a v1 read-modify-write, through an annotation.
            "  v1 read: image \"nginx:1.28\", annotation example.com/v2-pull-policy=Always",
            r#"  v2 read: image {"repository":"nginx","tag":"1.28","pullPolicy":"Always"}, replicas 3"#,
            "  the v2 object carries the annotation: false",
            "  v1 list: web (nginx:1.28)",
            "deleted the CRD",
        ],
    );
}

#[test]
fn the_webhook_by_hand_lesson_shows_the_review_a_hand_built_patch_and_a_denial() {
    let (out, on_cluster) = run_lesson(env!("CARGO_BIN_EXE_webhook_by_hand"));
    // In process: the review in, the review out, the patch base64 on the wire.
    assert_shows(
        &out,
        &[
            "signed a serving certificate for DNS name kdev-lesson-by-hand.webhook-system.svc",
            r#""response":{"uid":"0b6d3f1e-hand-made","allowed":false,"status":{"status":"Failure","message":"key \"db-password\" looks like a password: put it in a Secret","reason":"Forbidden","code":403}}"#,
            r#""allowed":true,"patch":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zIiwidmFsdWUiOnsia2Rldi5kZXYvY3JlYXRlZC1ieSI6ImFsaWNlIn19XQ==","patchType":"JSONPatch""#,
            r#"  the patch, base64-decoded: [{"op":"add","path":"/metadata/annotations","value":{"kdev.dev/created-by":"alice"}}]"#,
        ],
    );
    if on_cluster {
        return;
    }
    assert_shows(
        &out,
        &[
            // The configuration written by hand, as created.
            "  name: no-passwords.configmaps.kdev.dev\n  namespaceSelector:\n    matchLabels:\n      kubernetes.io/metadata.name: kdev-by-hand-",
            // The review kube-apiserver (here the embedded server) sent.
            "    [mutate] the AdmissionReview the API server sent:\n",
            "          \"name\": \"settings\",\n",
            "          \"operation\": \"CREATE\",\n",
            "            \"kind\": \"CreateOptions\"\n",
            // The two shapes of the patch, and their effect read back.
            r#"    [mutate] CREATE settings: patch [{"op":"add","path":"/metadata/annotations","value":{"kdev.dev/created-by":"#,
            r#"    [mutate] CREATE annotated: patch [{"op":"add","path":"/metadata/annotations/kdev.dev~1created-by","value":"#,
            ", owner=team-a]",
            "  configmap creds exists: false",
            "deleted the configurations and the namespace",
        ],
    );
    assert_eq!(
        out.matches("the AdmissionReview the API server sent").count(),
        1,
        "printed once: {out}"
    );
    let read_back: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  read back: annotations ["))
        .collect();
    assert_eq!(read_back.len(), 2, "{out}");
    assert!(
        read_back.iter().all(|l| l.contains("kdev.dev/created-by=")),
        "{read_back:?}"
    );
    let refused = answer_to(&out, "  create configmap creds (data key db-password)");
    assert_eq!(
        refused,
        "403 Forbidden: admission webhook \"no-passwords.configmaps.kdev.dev\" \
         denied the request: key \"db-password\" looks like a password: put it in a Secret"
    );
}

#[test]
fn the_webhook_bare_lesson_calls_a_url_whose_host_the_self_signed_certificate_names() {
    let (out, on_cluster) = run_lesson(env!("CARGO_BIN_EXE_webhook_bare"));
    assert_shows(
        &out,
        &[
            "self-signed certificate for IP address 127.0.0.1 (no DNS name)",
            "  clientConfig:\n    caBundle: <the certificate's PEM, base64>\n    url: https://localhost:",
            "  name: replica-cap.deployments.kdev.dev\n",
            "    - apps\n    apiVersions:\n    - v1\n",
        ],
    );
    assert!(!out.contains("    service:"), "a URL, no Service: {out}");
    if on_cluster {
        return;
    }
    // The URL's host is not in the certificate: TLS fails and failurePolicy Fail refuses.
    let wrong = answer_to(&out, "created the configuration with url https://localhost:");
    assert!(wrong.starts_with("500 InternalError: "), "{wrong}");
    assert!(
        wrong.contains("failed calling webhook \"replica-cap.deployments.kdev.dev\""),
        "{wrong}"
    );
    assert!(wrong.contains("localhost"), "{wrong}");
    // With the address the certificate names, the webhook decides.
    let after = out.split("== 4.").nth(1).unwrap_or_default();
    assert_eq!(answer_to(after, "  create deployment web (3 replicas)"), "created");
    assert_eq!(
        answer_to(after, "  create deployment huge (20 replicas)"),
        "422 Invalid: admission webhook \"replica-cap.deployments.kdev.dev\" denied the request: \
         Deployment.apps \"huge\" is invalid: spec.replicas: Invalid value: 20: must be at most 10 in this namespace"
    );
    assert_shows(after, &["  deployments now: [web]"]);
}
