use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(version = "v1")]
pub struct MyAppSpec {
    pub image: String,
}

fn main() {}
