//! Feeds arbitrary bytes, as a request body, to every kind of webhook kdev-webhook serves
//! (validating, mutating, raw and conversion) through the in-process call API, and checks that
//! each answer is a well-formed HTTP response: status 200 with a review of the right kind, or
//! 400/413 with a `metav1.Status`. A panic anywhere is a finding.
#![no_main]

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Container, Pod};
use kdev_webhook::Server;
use kdev_webhook::admission::{Defaulter, Request, Response, Validator, Verdict};
use kdev_webhook::conversion::{ConversionError, Convert};
use kdev_webhook::server::InProcess;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Refuses `:latest` images.
struct NoLatest;

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
        let mut images = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| c.image.as_deref());
        match images.find(|i| i.ends_with(":latest")) {
            Some(image) => Verdict::deny(format!("{image} uses :latest")),
            None => Verdict::allow(),
        }
    }

    async fn validate_update(&self, req: &Request, _old: &Pod, new: &Pod) -> Verdict {
        self.validate_create(req, new).await
    }
}

/// Adds a label and a sidecar.
struct Sidecar;

impl Defaulter<Pod> for Sidecar {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.entry("team".into()).or_insert_with(|| "platform".into());
        if let Some(spec) = pod.spec.as_mut() {
            spec.containers.push(Container {
                name: "proxy".into(),
                image: Some("envoyproxy/envoy:v1.31.0".into()),
                ..Container::default()
            });
        }
        Verdict::allow()
    }
}

/// Widgets: v1 `spec.size` is v2 `spec.replicas`.
struct Widgets;

impl Convert for Widgets {
    fn group(&self) -> &str {
        "example.com"
    }
    fn kind(&self) -> &str {
        "Widget"
    }
    fn api_versions(&self) -> Vec<String> {
        vec!["example.com/v1".into(), "example.com/v2".into()]
    }
    fn convert(&self, mut object: Value, desired: &str) -> Result<Value, ConversionError> {
        let (from, to) = match desired {
            "example.com/v1" => ("replicas", "size"),
            "example.com/v2" => ("size", "replicas"),
            other => return Err(ConversionError::new(format!("unknown version {other}"))),
        };
        let spec = object
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ConversionError::new("no spec"))?;
        if let Some(v) = spec.remove(from) {
            spec.insert(to.into(), v);
        }
        object["apiVersion"] = desired.into();
        Ok(object)
    }
}

const PATHS: &[(&str, &str)] = &[
    ("/validate", "AdmissionReview"),
    ("/mutate", "AdmissionReview"),
    ("/raw", "AdmissionReview"),
    ("/convert", "ConversionReview"),
];

fn setup() -> &'static (tokio::runtime::Runtime, InProcess) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, InProcess)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let webhooks = Server::builder()
            .validating::<Pod, _>("/validate", NoLatest)
            .mutating::<Pod, _>("/mutate", Sidecar)
            .raw("/raw", |req: Request| async move {
                match req.namespace.as_deref() {
                    Some("kube-system") => Response::denied("hands off kube-system"),
                    _ => Response::allowed().with_warning(format!("saw {}", req.kind.kind)),
                }
            })
            .conversion("/convert", Widgets)
            .build_in_process()
            .unwrap();
        (runtime, webhooks)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, webhooks) = setup();
    for &(path, kind) in PATHS {
        let answer = runtime.block_on(webhooks.call(path, bytes::Bytes::copy_from_slice(data)));
        let status = answer.status().as_u16();
        let body: Value = serde_json::from_slice(answer.body()).expect("every answer is JSON");
        match status {
            200 => {
                assert_eq!(body["kind"], kind, "{path}: {body}");
                assert!(body["response"]["uid"].is_string(), "{path}: {body}");
            }
            400 | 413 => assert_eq!(body["kind"], "Status", "{path}: {body}"),
            other => panic!("{path}: unexpected HTTP {other}: {body}"),
        }
    }
});
