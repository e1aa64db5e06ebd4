//! Untrusted input: arbitrary bytes and arbitrary JSON (review-shaped or not) into every kind of
//! handler always get a well-formed HTTP answer, never a panic; garbage over the wire leaves
//! the server serving.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::server::InProcess;
use kdev_webhook::tls::ServingCert;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::conversion::widget_converter;
use crate::fixtures::{Backup, Defaults, NoLatest};
use crate::support::{self, Ca};

/// What a path serves, which decides the shape of a well-formed answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Admission,
    Conversion,
}

const PATHS: &[(&str, Kind)] = &[
    ("/validate", Kind::Admission),
    ("/mutate", Kind::Admission),
    ("/validate-cr", Kind::Admission),
    ("/mutate-cr", Kind::Admission),
    ("/raw", Kind::Admission),
    ("/convert", Kind::Conversion),
];

/// A raw handler that uses what it is given, patches config maps and panics on request.
async fn raw(req: Request) -> Response {
    if req.name.as_deref() == Some("panic") {
        panic!("a handler bug, on purpose");
    }
    match req.kind.kind.as_str() {
        "ConfigMap" => {
            let patch = serde_json::from_value(json!([{"op": "add", "path": "/data/seen", "value": "yes"}])).unwrap();
            Response::allowed().with_patch(&patch)
        }
        other => Response::denied(format!("{other} in {:?} is not handled", req.namespace)),
    }
}

fn builder() -> kdev_webhook::server::Builder {
    Server::builder()
        .validating::<Pod, _>("/validate", NoLatest)
        .mutating::<Pod, _>("/mutate", Defaults)
        .validating::<Backup, _>("/validate-cr", NoLatest)
        .mutating::<Backup, _>("/mutate-cr", Defaults)
        .raw_mutating("/raw", raw)
        .conversion("/convert", widget_converter())
}

fn webhooks() -> InProcess {
    builder().build_in_process().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Checks that `(status, body)` is a well-formed answer of a `kind` webhook to `request`.
fn check_answer(kind: Kind, request: &[u8], status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("HTTP {status} body is not JSON: {e}")))?;
    let sent: Option<Value> = serde_json::from_slice(request).ok();
    let sent_uid = sent.as_ref().and_then(|v| v["request"]["uid"].as_str());
    match status {
        200 => {
            let response = &body["response"];
            prop_assert!(response["uid"].is_string(), "no uid: {body}");
            if let Some(uid) = sent_uid {
                prop_assert_eq!(response["uid"].as_str(), Some(uid), "uid not echoed: {}", body);
            }
            match kind {
                Kind::Admission => {
                    prop_assert_eq!(&body["kind"], "AdmissionReview");
                    let allowed = response["allowed"]
                        .as_bool()
                        .ok_or_else(|| TestCaseError::fail(format!("no allowed: {body}")))?;
                    if !allowed {
                        prop_assert!(response["status"]["code"].is_u64(), "denial without a code: {body}");
                        prop_assert!(
                            response["status"]["message"].is_string(),
                            "denial without a message: {body}"
                        );
                    }
                    if let Some(patch) = response.get("patch") {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(patch.as_str().unwrap_or("!"))
                            .map_err(|e| TestCaseError::fail(format!("patch is not base64: {e}")))?;
                        let ops: Result<json_patch::Patch, _> = serde_json::from_slice(&bytes);
                        prop_assert!(ops.is_ok(), "patch is not a JSON patch: {body}");
                        prop_assert_eq!(&response["patchType"], "JSONPatch");
                    }
                }
                Kind::Conversion => {
                    prop_assert_eq!(&body["kind"], "ConversionReview");
                    let converted = response["convertedObjects"]
                        .as_array()
                        .ok_or_else(|| TestCaseError::fail(format!("no convertedObjects: {body}")))?;
                    match response["result"]["status"].as_str() {
                        Some("Success") => {
                            let objects = sent.as_ref().and_then(|v| v["request"]["objects"].as_array());
                            prop_assert_eq!(converted.len(), objects.map_or(0, Vec::len), "{}", body);
                        }
                        Some("Failure") => {
                            prop_assert!(converted.is_empty(), "partial objects: {body}");
                            prop_assert!(response["result"]["message"].is_string(), "{body}");
                        }
                        _ => return Err(TestCaseError::fail(format!("result.status: {body}"))),
                    }
                }
            }
        }
        400 | 413 => {
            prop_assert_eq!(&body["kind"], "Status");
            prop_assert_eq!(body["code"].as_u64(), Some(u64::from(status)));
            prop_assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "no message: {body}"
            );
        }
        other => return Err(TestCaseError::fail(format!("unexpected HTTP {other}: {body}"))),
    }
    Ok(())
}

/// Calls every path with `body` and checks each answer.
fn call_all(rt: &tokio::runtime::Runtime, webhooks: &InProcess, body: &[u8]) -> Result<(), TestCaseError> {
    for &(path, kind) in PATHS {
        let answer = rt.block_on(webhooks.call(path, Bytes::copy_from_slice(body)));
        let content_type = answer.headers().get(http::header::CONTENT_TYPE);
        prop_assert_eq!(content_type.map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        check_answer(kind, body, answer.status().as_u16(), answer.body())
            .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// Strings that steer arbitrary JSON towards what the handlers look at.
const WORDS: &[&str] = &[
    "apiVersion",
    "kind",
    "request",
    "uid",
    "object",
    "oldObject",
    "operation",
    "metadata",
    "name",
    "namespace",
    "labels",
    "spec",
    "containers",
    "image",
    "desiredAPIVersion",
    "objects",
    "dryRun",
    "schedule",
    "admission.k8s.io/v1",
    "AdmissionReview",
    "apiextensions.k8s.io/v1",
    "ConversionReview",
    "CREATE",
    "UPDATE",
    "DELETE",
    "CONNECT",
    "Pod",
    "Widget",
    "ConfigMap",
    "example.com/v1",
    "example.com/v2",
    "panic",
    "nginx:latest",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Well-formed reviews for every handler kind, to be mutated.
fn templates() -> Vec<Value> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
    });
    let backup = json!({
        "apiVersion": "example.com/v1", "kind": "Backup",
        "metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *"},
    });
    let admission = |kind: &str, object: &Value, old: &Value| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "web", "namespace": "default", "operation": "UPDATE",
                "userInfo": {"username": "alice"}, "object": object, "oldObject": old, "dryRun": false,
            },
        })
    };
    let widget = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"}, "spec": {"replicas": 3},
    });
    vec![
        admission("Pod", &pod, &pod),
        admission("Backup", &backup, &backup),
        admission("ConfigMap", &json!({"data": {}}), &Value::Null),
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "c-1", "desiredAPIVersion": "example.com/v2", "objects": [widget.clone(), widget]},
        }),
    ]
}

/// JSON pointers into the templates where mutations land.
const POINTERS: &[&str] = &[
    "",
    "/apiVersion",
    "/kind",
    "/request",
    "/request/uid",
    "/request/kind",
    "/request/kind/kind",
    "/request/operation",
    "/request/name",
    "/request/object",
    "/request/oldObject",
    "/request/dryRun",
    "/request/userInfo",
    "/request/object/metadata",
    "/request/object/metadata/labels",
    "/request/object/spec",
    "/request/object/spec/containers",
    "/request/object/spec/containers/0/image",
    "/request/object/spec/containers/0/ports/0/containerPort",
    "/request/object/spec/schedule",
    "/request/oldObject/metadata/labels",
    "/request/desiredAPIVersion",
    "/request/objects",
    "/request/objects/0",
    "/request/objects/0/apiVersion",
    "/request/objects/0/kind",
    "/request/objects/0/metadata",
    "/request/objects/1/spec/replicas",
];

#[derive(Debug, Clone)]
enum Mutation {
    Remove(&'static str),
    Set(&'static str, Value),
}

fn mutate(mut review: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let (pointer, value) = match m {
            Mutation::Remove(p) => (*p, None),
            Mutation::Set(p, v) => (*p, Some(v.clone())),
        };
        if pointer.is_empty() {
            review = value.unwrap_or(Value::Null);
            continue;
        }
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        match review.pointer_mut(parent) {
            Some(Value::Object(map)) => match value {
                Some(v) => {
                    map.insert(key.to_string(), v);
                }
                None => {
                    map.remove(key);
                }
            },
            Some(Value::Array(items)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < items.len()
                {
                    match value {
                        Some(v) => items[i] = v,
                        None => {
                            items.remove(i);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    review
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pointer = prop::sample::select(POINTERS);
    prop_oneof![
        1 => pointer.clone().prop_map(Mutation::Remove),
        4 => (pointer, arb_json()).prop_map(|(p, v)| Mutation::Set(p, v)),
    ]
}

fn shaped_review() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(templates()),
        prop::collection::vec(mutation(), 0..4),
    )
        .prop_map(|(template, mutations)| serde_json::to_vec(&mutate(template, &mutations)).unwrap())
}

#[test]
fn arbitrary_bytes_get_a_well_formed_answer_from_every_handler() {
    let (rt, webhooks) = (runtime(), webhooks());
    runner(256)
        .run(&prop::collection::vec(any::<u8>(), 0..600), |bytes| {
            call_all(&rt, &webhooks, &bytes)
        })
        .unwrap();
}

#[test]
fn arbitrary_json_gets_a_well_formed_answer_from_every_handler() {
    let (rt, webhooks) = (runtime(), webhooks());
    runner(256)
        .run(&arb_json(), |value| {
            call_all(&rt, &webhooks, &serde_json::to_vec(&value).unwrap())
        })
        .unwrap();
}

#[test]
fn malformed_reviews_get_a_well_formed_answer_from_every_handler() {
    let (rt, webhooks) = (runtime(), webhooks());
    runner(512)
        .run(&shaped_review(), |body| call_all(&rt, &webhooks, &body))
        .unwrap();
}

#[test]
fn truncated_and_corrupted_reviews_get_a_well_formed_answer() {
    let (rt, webhooks) = (runtime(), webhooks());
    let bodies: Vec<Vec<u8>> = templates().iter().map(|t| serde_json::to_vec(t).unwrap()).collect();
    let corrupted = (
        prop::sample::select(bodies),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mut body, at, byte, truncate)| {
            let i = at.index(body.len());
            if truncate {
                body.truncate(i);
            } else {
                body[i] = byte;
            }
            body
        });
    runner(512)
        .run(&corrupted, |body| call_all(&rt, &webhooks, &body))
        .unwrap();
}

/// The admission template with `text` spliced in as raw JSON at `field` of the pod.
fn with_raw_number(text: &str) -> Vec<Vec<u8>> {
    let template = serde_json::to_string(&templates()[0]).unwrap();
    let conversion = serde_json::to_string(&templates()[3]).unwrap();
    vec![
        template.replace("\"containerPort\":80", &format!("\"containerPort\":{text}")),
        template.replace("\"uid\":\"u-1\"", &format!("\"uid\":{text}")),
        template.replace("\"dryRun\":false", &format!("\"dryRun\":{text}")),
        conversion.replace("\"replicas\":3", &format!("\"replicas\":{text}")),
        conversion.replace("\"uid\":\"c-1\"", &format!("\"uid\":{text}")),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[test]
fn huge_numbers_get_a_well_formed_answer() {
    let (rt, webhooks) = (runtime(), webhooks());
    for number in [
        "1e400",
        "-1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "2147483648",
        "1.5",
        "-0",
        "0e0",
    ] {
        for body in with_raw_number(number) {
            call_all(&rt, &webhooks, &body).unwrap_or_else(|e| panic!("{number}: {e}"));
        }
    }
    // A containerPort beyond i32 does not decode into a Pod: a denial with code 400, the uid kept.
    let body = &with_raw_number("2147483648")[0];
    let answer = rt.block_on(webhooks.call("/validate", Bytes::copy_from_slice(body)));
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["status"]["code"], 400, "{answer}");
}

#[test]
fn deep_nesting_gets_400_not_a_stack_overflow() {
    let (rt, webhooks) = (runtime(), webhooks());
    for depth in [200, 10_000, 500_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let bodies = [
            nested.clone().into_bytes(),
            serde_json::to_string(&templates()[0])
                .unwrap()
                .replace("\"labels\":{\"app\":\"web\"}", &format!("\"labels\":{nested}"))
                .into_bytes(),
            serde_json::to_string(&templates()[3])
                .unwrap()
                .replace("\"objects\":[", &format!("\"objects\":[{nested},"))
                .into_bytes(),
        ];
        for body in bodies {
            call_all(&rt, &webhooks, &body).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        }
    }
}

#[test]
fn a_panicking_handler_is_a_denial_with_code_500() {
    let (rt, webhooks) = (runtime(), webhooks());
    let mut review = templates()[2].clone();
    review["request"]["name"] = json!("panic");
    let answer = rt.block_on(webhooks.call("/raw", serde_json::to_vec(&review).unwrap().into()));
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 500);
}

/// A TLS connection to `addr` trusting `ca_pem`, without HTTP on top.
async fn tls_stream(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn garbage_over_the_wire_leaves_the_server_serving() {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(builder().tls(tls)).await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    // Garbage instead of a TLS handshake: the server hangs up.
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(&garbage).await.unwrap();
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink).await;

    // Half a handshake, then nothing: dropped without harm.
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    drop(tcp);

    // Garbage instead of HTTP inside TLS: an HTTP 400 or a hang-up, never a crash.
    let mut stream = tls_stream(running.addr, &ca.pem).await;
    stream.write_all(&garbage).await.unwrap();
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // A keep-alive connection posting bodies that are not reviews, then a real one.
    let mut conn = support::connect(running.addr, &ca.pem).await;
    for &(path, kind) in PATHS {
        for body in [
            &garbage[..],
            b"{",
            b"null",
            b"{\"request\":{\"uid\":7}}",
            &[0xff, 0xfe, 0x00],
        ] {
            let (status, answer) = conn.send("POST", path, "application/json", body.to_vec()).await;
            check_answer(kind, body, status, &answer).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
    let review = support::review(
        "after",
        "CREATE",
        Some(support::pod("nginx:1.27", json!({}))),
        None,
        false,
    );
    let answer = conn.admit("/validate", &review).await;
    assert_eq!(answer["uid"], "after");
    assert_eq!(answer["allowed"], true);
}
