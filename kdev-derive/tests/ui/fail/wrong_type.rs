use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct MyAppSpec {
    #[kdev(min_length = 1)]
    pub replicas: i32,
}

fn main() {}
