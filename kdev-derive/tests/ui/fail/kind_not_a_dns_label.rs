use kdev::CustomResource;
use serde::{Deserialize, Serialize};

// Lowercased, a kind must be a DNS-1035 label: no `_`.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", kind = "Web_App", struct = "WebApp")]
pub struct WebAppSpec {
    pub image: String,
}

fn main() {}
