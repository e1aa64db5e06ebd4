//! Bad input never panics the server or drops the connection: every malformed request gets a
//! `metav1.Status` with a 4xx code.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::setup;

fn methods() -> impl Strategy<Value = http::Method> {
    prop_oneof![
        Just(http::Method::POST),
        Just(http::Method::PUT),
        Just(http::Method::PATCH)
    ]
}

fn content_types() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("application/json"),
        Just("application/merge-patch+json"),
        Just("application/json-patch+json"),
        Just("application/strategic-merge-patch+json"),
        Just("application/apply-patch+yaml"),
    ]
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[ -~]{0,64}".prop_map(String::into_bytes),
        Just(b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":[]}".to_vec()),
        Just(b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":7}}".to_vec()),
        Just(b"[{\"op\":\"move\",\"from\":\"/nope\",\"path\":\"/x\"}]".to_vec()),
        Just(b"{\"data\":{\"$patch\":\"nonsense\"}}".to_vec()),
        Just(b"null".to_vec()),
    ]
}

#[tokio::test]
async fn malformed_writes_get_a_status_and_never_break_the_server() {
    let (env, ns) = setup().await;
    let client = env.client();
    let embedded = env.is_embedded();
    let cases = {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            ..Config::default()
        });
        let strategy = (
            methods(),
            content_types(),
            bodies(),
            prop_oneof![Just("c"), Just("Bad%20Name"), Just("x%2Fy")],
        );
        (0..64)
            .map(|_| strategy.new_tree(&mut runner).map(|t| t.current()))
            .collect::<Result<Vec<_>, _>>()
            .expect("cases")
    };
    for (method, ct, body, name) in cases {
        let path = if method == http::Method::POST {
            format!("/api/v1/namespaces/{ns}/configmaps")
        } else {
            format!("/api/v1/namespaces/{ns}/configmaps/{name}")
        };
        let req = http::Request::builder()
            .method(method.clone())
            .uri(&path)
            .header("Content-Type", ct)
            .body(body.clone())
            .expect("a request");
        match client.request_text(req).await {
            Ok(_) => {}
            Err(kube_client::Error::Api(s)) => {
                // kube-apiserver answers a few malformed patches with 500; the embedded server
                // always blames the request.
                let ok = if embedded {
                    (400..500).contains(&s.code)
                } else {
                    s.code >= 400
                };
                assert!(
                    ok,
                    "{method} {path} {ct} {:?}: {} {}",
                    String::from_utf8_lossy(&body),
                    s.code,
                    s.message
                );
            }
            Err(other) => panic!("{method} {path} {ct}: transport error {other}"),
        }
    }
    env.client()
        .apiserver_version()
        .await
        .expect("the server still answers");
}

#[tokio::test]
async fn unknown_paths_and_verbs_get_a_status() {
    let (env, ns) = setup().await;
    for (method, path) in [
        (http::Method::GET, "/api/v1/nosuchresource".to_string()),
        (http::Method::GET, "/apis/nosuch.group/v1/things".to_string()),
        (
            http::Method::GET,
            format!("/api/v1/namespaces/{ns}/configmaps/a/nosuchsub"),
        ),
        (http::Method::POST, format!("/api/v1/namespaces/{ns}/configmaps/a")),
        (http::Method::GET, "/api/v1/namespaces/a/b/c/d/e/f".to_string()),
        (http::Method::GET, "/apis".to_string() + &"/x".repeat(50)),
    ] {
        let req = http::Request::builder()
            .method(method.clone())
            .uri(&path)
            .body(Vec::new())
            .expect("a request");
        match env.client().request_text(req).await {
            Err(kube_client::Error::Api(s)) => assert!((400..500).contains(&s.code), "{method} {path}: {}", s.code),
            other => panic!("{method} {path}: expected an error status, got {other:?}"),
        }
    }
}
