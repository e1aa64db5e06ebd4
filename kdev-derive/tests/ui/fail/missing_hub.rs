//! Two versions of one kind, converted hub and spoke, but the hub's spec struct lacks
//! `#[kdev(hub)]`: the error says to add it, instead of naming a bare trait bound.

use kdev::CustomResource;
use kdev::crd::conversion::{ConversionError, Converter, Convertible};
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;

    #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
    #[kdev(group = "example.com", version = "v1", kind = "Widget", namespaced)]
    pub struct WidgetSpec {
        pub size: u32,
    }
}

mod v2 {
    use super::*;

    #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
    #[kdev(group = "example.com", version = "v2", kind = "Widget", namespaced, storage)]
    pub struct WidgetSpec {
        pub millis: u64,
    }
}

impl Convertible<v2::Widget> for v1::Widget {
    fn to_hub(self) -> Result<v2::Widget, ConversionError> {
        Ok(v2::Widget::new("x", v2::WidgetSpec { millis: u64::from(self.spec.size) * 1000 }))
    }

    fn from_hub(hub: v2::Widget) -> Result<Self, ConversionError> {
        Ok(v1::Widget::new("x", v1::WidgetSpec { size: (hub.spec.millis / 1000) as u32 }))
    }
}

fn main() {
    let _ = Converter::<v2::Widget>::default().spoke::<v1::Widget>();
}
