//! Conversion webhooks over HTTPS: a hub/spoke pair served from kdev-crd's `Converter`.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kdev_webhook::Server;
use kdev_webhook::conversion::{ConversionError, Convert, Converter, Convertible, Hub};
use kdev_webhook::tls::ServingCert;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{self, Ca, Conn, Running};

macro_rules! widget {
    ($t:ident, $v:literal, $spec:ident) => {
        #[derive(Serialize, Deserialize)]
        pub struct $t {
            metadata: ObjectMeta,
            spec: $spec,
        }

        impl kube_core::Resource for $t {
            type DynamicType = ();
            type Scope = kube_core::NamespaceResourceScope;
            fn kind(_: &()) -> Cow<'_, str> {
                "Widget".into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                "example.com".into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                $v.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                "widgets".into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// v2, the hub: `spec.scale.replicas`.
#[derive(Serialize, Deserialize)]
pub struct SpecV2 {
    scale: Scale,
}

#[derive(Serialize, Deserialize)]
struct Scale {
    replicas: i32,
}

/// v1, a spoke: `spec.replicas`.
#[derive(Serialize, Deserialize)]
pub struct SpecV1 {
    replicas: i32,
}

widget!(WidgetV2, "v2", SpecV2);
widget!(WidgetV1, "v1", SpecV1);

impl Hub for WidgetV2 {}

impl Convertible<WidgetV2> for WidgetV1 {
    fn to_hub(self) -> Result<WidgetV2, ConversionError> {
        if self.spec.replicas < 0 {
            return Err(ConversionError::new(format!(
                "replicas {} is negative",
                self.spec.replicas
            )));
        }
        Ok(WidgetV2 {
            metadata: self.metadata,
            spec: SpecV2 {
                scale: Scale {
                    replicas: self.spec.replicas,
                },
            },
        })
    }

    fn from_hub(hub: WidgetV2) -> Result<Self, ConversionError> {
        Ok(WidgetV1 {
            metadata: hub.metadata,
            spec: SpecV1 {
                replicas: hub.spec.scale.replicas,
            },
        })
    }
}

/// Widgets v1 and v2 around the v2 hub.
pub fn widget_converter() -> Converter<WidgetV2> {
    Converter::<WidgetV2>::new().spoke::<WidgetV1>()
}

/// A converter with a bug: it panics on every object.
struct Panics;

impl Convert for Panics {
    fn group(&self) -> &str {
        "example.com"
    }
    fn kind(&self) -> &str {
        "Widget"
    }
    fn api_versions(&self) -> Vec<String> {
        vec!["example.com/v1".into()]
    }
    fn convert(&self, _object: Value, _desired: &str) -> Result<Value, ConversionError> {
        panic!("a converter bug")
    }
}

fn v1(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": name}},
        "spec": {"replicas": replicas},
    })
}

fn v2(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "example.com/v2", "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": name}},
        "spec": {"scale": {"replicas": replicas}},
    })
}

fn review(uid: &str, desired: &str, objects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    })
}

async fn setup() -> (Running, Conn) {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(
        Server::builder()
            .conversion("/convert", widget_converter())
            .conversion("/panics", Panics)
            .tls(tls),
    )
    .await;
    let conn = support::connect(running.addr, &ca.pem).await;
    (running, conn)
}

/// Posts a review that must be answered with HTTP 200; the ConversionReview's `response`.
async fn convert(conn: &mut Conn, path: &str, review: &Value) -> Value {
    let (status, body) = conn.post(path, review).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "ConversionReview");
    body["response"].clone()
}

#[tokio::test]
async fn every_object_is_converted_to_the_desired_version_in_order() {
    let (_server, mut conn) = setup().await;
    let objects = vec![v1("a", 1), v2("b", 2), v1("c", 3)];
    let answer = convert(&mut conn, "/convert", &review("conv-1", "example.com/v2", objects)).await;
    assert_eq!(answer["uid"], "conv-1");
    assert_eq!(answer["result"]["status"], "Success");
    assert_eq!(answer["convertedObjects"], json!([v2("a", 1), v2("b", 2), v2("c", 3)]));

    let back = convert(
        &mut conn,
        "/convert",
        &review("conv-2", "example.com/v1", vec![v2("a", 1), v1("b", 2)]),
    )
    .await;
    assert_eq!(back["uid"], "conv-2");
    assert_eq!(back["convertedObjects"], json!([v1("a", 1), v1("b", 2)]));
}

#[tokio::test]
async fn no_objects_is_a_success_with_none() {
    let (_server, mut conn) = setup().await;
    let answer = convert(&mut conn, "/convert", &review("empty", "example.com/v1", vec![])).await;
    assert_eq!(answer["result"]["status"], "Success");
    assert_eq!(answer["convertedObjects"], json!([]));
}

#[tokio::test]
async fn one_failing_object_fails_the_review_naming_it_without_partial_results() {
    let (_server, mut conn) = setup().await;
    let objects = vec![v1("good", 1), v1("bad", -4), v1("never", 2)];
    let answer = convert(&mut conn, "/convert", &review("conv-3", "example.com/v2", objects)).await;
    assert_eq!(answer["uid"], "conv-3");
    assert_eq!(answer["result"]["status"], "Failure");
    let message = answer["result"]["message"].as_str().unwrap();
    assert!(message.contains("object 1 (default/bad)"), "{message}");
    assert!(message.contains("example.com/v2"), "{message}");
    assert!(message.contains("replicas -4 is negative"), "{message}");
    assert_eq!(answer["convertedObjects"], json!([]));
}

#[tokio::test]
async fn unknown_versions_and_kinds_fail_the_review() {
    let (_server, mut conn) = setup().await;
    let answer = convert(&mut conn, "/convert", &review("v9", "example.com/v9", vec![v1("a", 1)])).await;
    assert_eq!(answer["result"]["status"], "Failure");
    assert!(
        answer["result"]["message"]
            .as_str()
            .unwrap()
            .contains("example.com/v9 is not a version of Widget"),
        "{answer}"
    );

    let mut gadget = v1("g", 1);
    gadget["kind"] = json!("Gadget");
    let answer = convert(&mut conn, "/convert", &review("kind", "example.com/v2", vec![gadget])).await;
    assert_eq!(answer["uid"], "kind");
    assert_eq!(answer["result"]["status"], "Failure");
    assert!(
        answer["result"]["message"]
            .as_str()
            .unwrap()
            .contains("object 0 (default/g)"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_panicking_converter_fails_the_review_and_the_connection_stays_up() {
    let (_server, mut conn) = setup().await;
    let answer = convert(
        &mut conn,
        "/panics",
        &review("boom", "example.com/v1", vec![v1("a", 1)]),
    )
    .await;
    assert_eq!(answer["uid"], "boom");
    assert_eq!(answer["result"]["status"], "Failure");
    assert!(
        answer["result"]["message"]
            .as_str()
            .unwrap()
            .starts_with("internal error occurred during conversion"),
        "{answer}"
    );
    let answer = convert(
        &mut conn,
        "/convert",
        &review("after", "example.com/v2", vec![v1("a", 1)]),
    )
    .await;
    assert_eq!(answer["result"]["status"], "Success");
}

#[tokio::test]
async fn unreadable_bodies_get_400_and_readable_uids_a_failure() {
    let (_server, mut conn) = setup().await;
    let (status, body) = conn
        .send("POST", "/convert", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["kind"], "Status");
    assert!(
        body["message"].as_str().unwrap().contains("not a ConversionReview"),
        "{body}"
    );

    let (status, body) = conn
        .post(
            "/convert",
            &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "the ConversionReview has no request");

    // The uid is readable: the answer is a Failure review carrying it.
    let mut malformed = review("bad-objects", "example.com/v2", vec![]);
    malformed["request"]["objects"] = json!("not a list");
    let answer = convert(&mut conn, "/convert", &malformed).await;
    assert_eq!(answer["uid"], "bad-objects");
    assert_eq!(answer["result"]["status"], "Failure");
    assert!(
        answer["result"]["message"]
            .as_str()
            .unwrap()
            .contains("the ConversionReview is malformed"),
        "{answer}"
    );

    // An AdmissionReview sent to a conversion path.
    let mut admission = review("wrong-type", "example.com/v2", vec![]);
    admission["apiVersion"] = json!("admission.k8s.io/v1");
    admission["kind"] = json!("AdmissionReview");
    let answer = convert(&mut conn, "/convert", &admission).await;
    assert_eq!(answer["uid"], "wrong-type");
    assert_eq!(answer["result"]["status"], "Failure");
}

#[tokio::test]
async fn a_v1beta1_review_is_answered_in_v1beta1() {
    let (_server, mut conn) = setup().await;
    let mut beta = review("beta", "example.com/v2", vec![v1("a", 1)]);
    beta["apiVersion"] = json!("apiextensions.k8s.io/v1beta1");
    let (status, body) = conn.post("/convert", &beta).await;
    assert_eq!(status, 200);
    assert_eq!(body["apiVersion"], "apiextensions.k8s.io/v1beta1");
    assert_eq!(body["response"]["convertedObjects"], json!([v2("a", 1)]));
}

#[tokio::test]
async fn a_conversion_review_of_a_long_list_is_not_held_to_the_admission_limit() {
    let (_server, mut conn) = setup().await;
    // kube-apiserver converts a whole list in one review: 12 objects of 1 MiB each.
    let note = "n".repeat(1024 * 1024);
    let objects: Vec<Value> = (0..12)
        .map(|i| {
            let mut object = v1(&format!("w{i}"), i);
            object["metadata"]["annotations"] = json!({"note": note});
            object
        })
        .collect();
    let answer = convert(&mut conn, "/convert", &review("list", "example.com/v2", objects)).await;
    assert_eq!(answer["result"]["status"], "Success");
    assert_eq!(answer["convertedObjects"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn the_conversion_limit_is_set_apart_from_the_admission_limit() {
    let server = Server::builder()
        .conversion("/convert", widget_converter())
        .max_body_size(64 * 1024)
        .max_conversion_body_size(1024)
        .build_in_process()
        .unwrap();
    let mut object = v1("a", 1);
    object["metadata"]["annotations"] = json!({"note": "n".repeat(2048)});
    let body = serde_json::to_vec(&review("big", "example.com/v2", vec![object])).unwrap();
    assert_eq!(server.call("/convert", body.into()).await.status(), 413);
}
