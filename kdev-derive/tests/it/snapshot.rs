//! The generated CRD, compared with the JSON it must be.

use kube_core::Resource;
use kube_core::crd::v1::CustomResourceExt;
use serde_json::json;

use crate::resource::{Tier, WebApp, WebAppSpec};

#[test]
fn the_generated_crd_is_exactly_the_expected_json() {
    let expected = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "webapps.derive.kdev.dev"
        },
        "spec": {
            "group": "derive.kdev.dev",
            "names": {
                "categories": [
                    "all",
                    "kdev"
                ],
                "kind": "WebApp",
                "listKind": "WebAppList",
                "plural": "webapps",
                "shortNames": [
                    "wa"
                ],
                "singular": "webapp"
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "additionalPrinterColumns": [
                        {
                            "description": "wanted copies",
                            "jsonPath": ".spec.replicas",
                            "name": "Replicas",
                            "type": "integer"
                        },
                        {
                            "format": "float",
                            "jsonPath": ".spec.ratio",
                            "name": "Ratio",
                            "priority": 1,
                            "type": "number"
                        }
                    ],
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A web application.",
                            "properties": {
                                "apiVersion": {
                                    "type": "string"
                                },
                                "kind": {
                                    "type": "string"
                                },
                                "metadata": {
                                    "type": "object"
                                },
                                "spec": {
                                    "description": "A web application.",
                                    "properties": {
                                        "extra": {
                                            "description": "Anything the app wants.",
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": true
                                        },
                                        "hosts": {
                                            "description": "Host names.",
                                            "items": {
                                                "type": "string"
                                            },
                                            "type": "array",
                                            "x-kubernetes-list-type": "set"
                                        },
                                        "image": {
                                            "description": "The container image.",
                                            "maxLength": 64,
                                            "minLength": 3,
                                            "pattern": "^[a-z0-9./:-]+$",
                                            "type": "string"
                                        },
                                        "labels": {
                                            "additionalProperties": {
                                                "type": "string"
                                            },
                                            "description": "Free-form labels, at most two.",
                                            "maxProperties": 2,
                                            "minProperties": 1,
                                            "type": "object"
                                        },
                                        "owner": {
                                            "description": "Set once at creation.",
                                            "format": "email",
                                            "type": "string",
                                            "x-kubernetes-validations": [
                                                {
                                                    "message": "field is immutable",
                                                    "rule": "self == oldSelf"
                                                }
                                            ]
                                        },
                                        "ports": {
                                            "description": "Where it listens.",
                                            "items": {
                                                "description": "A named port.",
                                                "properties": {
                                                    "name": {
                                                        "description": "The key of the list.",
                                                        "type": "string"
                                                    },
                                                    "port": {
                                                        "description": "The port number.",
                                                        "format": "int32",
                                                        "maximum": 65535.0,
                                                        "minimum": 0.0,
                                                        "type": "integer"
                                                    }
                                                },
                                                "required": [
                                                    "name",
                                                    "port"
                                                ],
                                                "type": "object"
                                            },
                                            "maxItems": 3,
                                            "minItems": 1,
                                            "type": "array",
                                            "x-kubernetes-list-map-keys": [
                                                "name"
                                            ],
                                            "x-kubernetes-list-type": "map"
                                        },
                                        "ratio": {
                                            "description": "A share of traffic, in (0, 1).",
                                            "exclusiveMaximum": true,
                                            "exclusiveMinimum": true,
                                            "format": "double",
                                            "maximum": 1.0,
                                            "minimum": 0.0,
                                            "type": "number"
                                        },
                                        "replicas": {
                                            "default": 1,
                                            "description": "Copies to run.",
                                            "format": "int32",
                                            "maximum": 10.0,
                                            "minimum": 0.0,
                                            "type": "integer"
                                        },
                                        "settings": {
                                            "additionalProperties": {
                                                "format": "int32",
                                                "type": "integer"
                                            },
                                            "default": {
                                                "a": 1
                                            },
                                            "description": "Nullable on request.",
                                            "nullable": true,
                                            "type": "object",
                                            "x-kubernetes-map-type": "atomic"
                                        },
                                        "step": {
                                            "description": "Granularity of scaling steps.",
                                            "format": "int64",
                                            "multipleOf": 5.0,
                                            "type": "integer"
                                        },
                                        "target": {
                                            "description": "A port number or name.",
                                            "x-kubernetes-int-or-string": true
                                        },
                                        "template": {
                                            "description": "An object template.",
                                            "type": "object",
                                            "x-kubernetes-embedded-resource": true,
                                            "x-kubernetes-preserve-unknown-fields": true
                                        },
                                        "tier": {
                                            "default": "small",
                                            "description": "Size class.",
                                            "enum": [
                                                "small",
                                                "large"
                                            ],
                                            "type": "string"
                                        }
                                    },
                                    "required": [
                                        "image",
                                        "ports"
                                    ],
                                    "type": "object",
                                    "x-kubernetes-validations": [
                                        {
                                            "message": "only large apps run more than 5",
                                            "rule": "self.replicas <= 5 || self.tier == 'large'"
                                        }
                                    ]
                                },
                                "status": {
                                    "description": "What the controller reports.",
                                    "properties": {
                                        "replicas": {
                                            "description": "Running copies.",
                                            "format": "int32",
                                            "type": "integer"
                                        }
                                    },
                                    "required": [
                                        "replicas"
                                    ],
                                    "type": "object"
                                }
                            },
                            "required": [
                                "spec"
                            ],
                            "type": "object"
                        }
                    },
                    "selectableFields": [
                        {
                            "jsonPath": ".spec.tier"
                        }
                    ],
                    "served": true,
                    "storage": true,
                    "subresources": {
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas"
                        },
                        "status": {}
                    }
                }
            ]
        }
    });
    let actual = serde_json::to_value(WebApp::crd()).unwrap();
    assert_eq!(actual, expected, "{}", serde_json::to_string_pretty(&actual).unwrap());
}

#[test]
fn the_typed_resource_speaks_the_kubernetes_wire_format() {
    let spec = WebAppSpec {
        image: "nginx".into(),
        ..WebAppSpec::default()
    };
    let app = WebApp::new("web", spec.clone());
    assert_eq!(
        (WebApp::group(&()), WebApp::version(&()), WebApp::kind(&())),
        ("derive.kdev.dev".into(), "v1".into(), "WebApp".into())
    );
    assert_eq!(WebApp::api_version(&()), "derive.kdev.dev/v1");
    assert_eq!(WebApp::crd_name(), "webapps.derive.kdev.dev");
    assert_eq!(WebApp::shortnames(), &["wa"]);
    let wire = serde_json::to_value(&app).unwrap();
    assert_eq!(wire["apiVersion"], "derive.kdev.dev/v1");
    assert_eq!(wire["kind"], "WebApp");
    assert_eq!(wire["metadata"]["name"], "web");
    assert!(wire.get("status").is_none(), "no status until one is set");
    let back: WebApp = serde_json::from_value(json!({
        "apiVersion": "derive.kdev.dev/v1", "kind": "WebApp", "metadata": { "name": "web" },
        "spec": { "image": "nginx", "ports": [], "tier": "large" },
        "status": { "replicas": 2 }
    }))
    .unwrap();
    assert_eq!(back.spec.tier, Tier::Large);
    assert_eq!(back.status.map(|s| s.replicas), Some(2));
}
