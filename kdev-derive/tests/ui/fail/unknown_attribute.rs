use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct MyAppSpec {
    #[kdev(min_lenght = 1)]
    pub image: String,
}

fn main() {}
