use kdev::CustomResource;
use serde::{Deserialize, Serialize};

// `Web-App` is a kind Kubernetes accepts, but it cannot name a Rust struct.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", kind = "Web-App")]
pub struct WebAppSpec {
    pub image: String,
}

fn main() {}
