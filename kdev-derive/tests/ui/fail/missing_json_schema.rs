//! The spec and the status without `#[derive(schemars::JsonSchema)]`: the error says to add it,
//! instead of naming schemars' bound and listing every type that implements it.

use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize)]
#[kdev(group = "example.com", version = "v1", namespaced, status = "MyAppStatus")]
pub struct MyAppSpec {
    pub replicas: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MyAppStatus {
    pub ready: bool,
}

fn main() {}
