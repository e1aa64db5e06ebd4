use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", status = "AppStatus")]
#[kdev(scale(spec_replicas_path = ".status.replicas", status_replicas_path = ".status.replicas"))]
pub struct AppSpec {
    pub replicas: i32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppStatus {
    pub replicas: i32,
}

fn main() {}
