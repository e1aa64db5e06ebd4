//! A derived custom resource in two versions: v1 has one `size`, v2 (the storage version and the
//! hub) has `width` and `height`. A gadget that is not square cannot be expressed in v1.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::CustomResource;
use kdev::crd::conversion::{ConversionError, Convert, Converter, Convertible};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A gadget, v1.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "gadgets.kdev.dev",
    version = "v1",
    kind = "Gadget",
    struct = "GadgetV1",
    namespaced
)]
pub struct GadgetV1Spec {
    /// Both sides.
    #[kdev(minimum = 1)]
    pub size: i32,
}

/// A gadget, v2: the storage version and the hub.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "gadgets.kdev.dev",
    version = "v2",
    kind = "Gadget",
    struct = "GadgetV2",
    namespaced
)]
#[kdev(storage, hub)]
pub struct GadgetV2Spec {
    /// The width.
    #[kdev(minimum = 1)]
    pub width: i32,
    /// The height.
    #[kdev(minimum = 1)]
    pub height: i32,
}

impl Convertible<GadgetV2> for GadgetV1 {
    fn to_hub(self) -> Result<GadgetV2, ConversionError> {
        let mut hub = GadgetV2::new(
            "",
            GadgetV2Spec {
                width: self.spec.size,
                height: self.spec.size,
            },
        );
        hub.metadata = self.metadata;
        Ok(hub)
    }

    fn from_hub(hub: GadgetV2) -> Result<Self, ConversionError> {
        if hub.spec.width != hub.spec.height {
            return Err(ConversionError::new(format!(
                "a {}x{} gadget is not square: v1 cannot express it",
                hub.spec.width, hub.spec.height
            )));
        }
        let mut spoke = GadgetV1::new("", GadgetV1Spec { size: hub.spec.width });
        spoke.metadata = hub.metadata;
        Ok(spoke)
    }
}

/// The CRD with both versions (v2 stored).
pub fn crd() -> CustomResourceDefinition {
    kdev::crd::merge_versions([GadgetV1::crd(), GadgetV2::crd()]).expect("one kind, one storage version")
}

/// The hub-and-spoke converter, recording the apiVersion each object was converted to.
pub struct Recording {
    inner: Converter<GadgetV2>,
    desired: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    pub fn new(desired: Arc<Mutex<Vec<String>>>) -> Recording {
        Recording {
            inner: Converter::<GadgetV2>::new().spoke::<GadgetV1>(),
            desired,
        }
    }
}

impl Convert for Recording {
    fn group(&self) -> &str {
        self.inner.group()
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn api_versions(&self) -> Vec<String> {
        self.inner.api_versions()
    }

    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
        self.desired.lock().push(desired_api_version.to_string());
        Convert::convert(&self.inner, object, desired_api_version)
    }
}
