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
                                    "description": "APIVersion defines the versioned schema of this representation of an object.\nServers should convert recognized schemas to the latest internal value, and\nmay reject unrecognized values.\nMore info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                                    "type": "string"
                                },
                                "kind": {
                                    "description": "Kind is a string value representing the REST resource this object represents.\nServers may infer this from the endpoint the client submits requests to.\nCannot be updated.\nIn CamelCase.\nMore info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
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
                                                "maximum": 2147483647.0,
                                                "minimum": -2147483648.0,
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
                                            "maximum": 2147483647.0,
                                            "minimum": -2147483648.0,
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

/// Compares `actual` with the reviewed snapshot `tests/it/snapshots/<name>.json`; with
/// `KDEV_UPDATE_SNAPSHOTS=1` it rewrites the file instead (review the diff before committing).
fn assert_snapshot(name: &str, actual: &serde_json::Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/it/snapshots/{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("KDEV_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&expected).unwrap(),
        *actual,
        "{name} differs from its snapshot; actual:\n{pretty}"
    );
}

#[test]
fn the_markers_resource_matches_its_snapshot() {
    assert_snapshot("gadget", &serde_json::to_value(crate::markers::Gadget::crd()).unwrap());
}

#[test]
fn the_one_of_helpers_generate_kubebuilders_cel() {
    let crd = serde_json::to_value(crate::markers::Gadget::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["x-kubernetes-validations"],
        json!([
            { "rule": "(has(self.git)?1:0)+(has(self.image)?1:0) == 1",
              "message": "exactly one of the fields in [git image] must be set" },
            { "rule": "(has(self.debug)?1:0)+(has(self.release)?1:0) <= 1",
              "message": "at most one of the fields in [debug release] may be set" },
            { "rule": "(has(self.cpu)?1:0)+(has(self.memory)?1:0) >= 1",
              "message": "at least one of the fields in [cpu memory] must be set" }
        ])
    );
    // Nested: the field names on the wire (serde's camelCase), on the type wherever it is used.
    let nested = json!([
        { "rule": "self.port != 22", "message": "not the ssh port" },
        { "rule": "(has(self.bucketName)?1:0)+(has(self.path)?1:0) <= 1",
          "message": "at most one of the fields in [bucketName path] may be set" }
    ]);
    assert_eq!(spec["properties"]["target"]["x-kubernetes-validations"], nested);
    assert_eq!(
        spec["properties"]["mirrors"]["items"]["x-kubernetes-validations"],
        nested
    );
}

#[test]
fn versions_merge_into_one_crd_with_the_marked_storage_version() {
    use crate::markers::versions::{WidgetV1, WidgetV2};

    let crd = kdev::crd::merge_versions([WidgetV1::crd(), WidgetV2::crd()]).unwrap();
    let crd = serde_json::to_value(crd).unwrap();
    assert_eq!(crd["metadata"], json!({ "name": "widgets.derive.kdev.dev" }));
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["wd"]));
    assert_eq!(crd["spec"]["names"]["categories"], json!(["kdev"]));
    let versions: Vec<_> = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].clone(),
                v["served"].clone(),
                v["storage"].clone(),
                v.get("deprecationWarning").cloned(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (
                json!("v1"),
                json!(true),
                json!(false),
                Some(json!("derive.kdev.dev/v1 Widget is deprecated; use v2"))
            ),
            (json!("v2"), json!(true), json!(true), None),
        ]
    );
    // Alone, each version is its own storage version.
    assert!(WidgetV1::crd().spec.versions[0].storage);
    // Two storage markers in different modules: caught when merging, naming both.
    let mut v1 = WidgetV1::crd();
    v1.metadata.annotations = WidgetV2::crd().metadata.annotations.map(|mut a| {
        a.insert(kdev::crd::STORAGE_VERSION_ANNOTATION.into(), "v1".into());
        a
    });
    let err = kdev::crd::merge_versions([v1, WidgetV2::crd()]).unwrap_err();
    assert!(
        err.to_string().starts_with("Widget has 2 storage versions (v1, v2)"),
        "{err}"
    );
}

#[test]
fn the_conversion_between_versions_goes_through_the_hub() {
    use crate::markers::versions::{WidgetV1, WidgetV1Spec, WidgetV2, WidgetV2Spec};
    use kdev::crd::conversion::{Converter, Convertible};

    let v1 = WidgetV1::new("w", WidgetV1Spec { size: 3 });
    let hub = v1.clone().to_hub().unwrap();
    assert_eq!(hub.spec, WidgetV2Spec { width: 3, height: 3 });
    let back = WidgetV1::from_hub(hub).unwrap();
    assert_eq!((back.metadata, back.spec), (v1.metadata.clone(), v1.spec.clone()));
    let wide = WidgetV2::new("w", WidgetV2Spec { width: 4, height: 2 });
    assert_eq!(
        WidgetV1::from_hub(wide.clone()).unwrap_err().message(),
        "a 4x2 widget is not square: v1 cannot express it"
    );
    let converter = Converter::<WidgetV2>::new().spoke::<WidgetV1>();
    let converted = converter
        .convert(serde_json::to_value(&v1).unwrap(), "derive.kdev.dev/v2")
        .unwrap();
    assert_eq!(converted["spec"], json!({ "width": 3, "height": 3 }));
    assert!(
        converter
            .convert(serde_json::to_value(&wide).unwrap(), "derive.kdev.dev/v1")
            .is_err()
    );
}

#[test]
fn crdgen_lists_every_registered_kind_once_with_its_versions_merged() {
    let crds = kdev::crd::registered().unwrap();
    let names: Vec<_> = crds.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            "catalogs.derive.kdev.dev",
            "gadgets.derive.kdev.dev",
            "pipelines.derive.kdev.dev",
            "webapps.derive.kdev.dev",
            "widgets.derive.kdev.dev"
        ]
    );
    let widget = &crds[4];
    let versions: Vec<_> = widget
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.storage))
        .collect();
    assert_eq!(versions, [("v1", false), ("v2", true)]);
    let yaml = kdev::crd::to_yaml(&crds).unwrap();
    assert_eq!(yaml.matches("\n---\n").count(), 4, "five documents");
    assert!(yaml.starts_with("apiVersion: apiextensions.k8s.io/v1\n"), "{yaml}");
}
