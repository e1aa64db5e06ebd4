//! A resource with a nested type carrying field attributes, and two versions of one kind.

use kdev::CustomResource;
use serde::{Deserialize, Serialize};

/// A backup.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", namespaced, storage, hub)]
#[kdev(exactly_one_of(target, archive))]
pub struct BackupSpec {
    #[kdev(min_items = 1, items(max_length = 63))]
    pub names: Vec<String>,
    pub target: Option<Target>,
    pub archive: Option<String>,
}

/// Where to.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Target {
    #[kdev(minimum = 1, maximum = 65535)]
    pub port: u16,
}

fn main() {
    let crd = Backup::crd();
    assert_eq!(crd.spec.versions[0].name, "v1");
    assert_eq!(WebApp::crd().spec.names.kind, "Web-App");
}

/// A kind that is no Rust identifier, its struct named apart.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", kind = "Web-App", struct = "WebApp", storage)]
pub struct WebAppSpec {
    pub image: String,
}
