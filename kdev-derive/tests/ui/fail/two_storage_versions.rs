use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", kind = "Widget", struct = "WidgetV1", storage)]
pub struct WidgetV1Spec {
    pub size: i32,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v2", kind = "Widget", struct = "WidgetV2", storage)]
pub struct WidgetV2Spec {
    pub width: i32,
}

fn main() {}
