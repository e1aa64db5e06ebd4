use kdev::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct AppSpec {
    #[kdev(list_type = "map", list_map_keys(name, port, name))]
    pub ports: Vec<Port>,
}

#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Port {
    pub name: String,
    pub port: u16,
    #[kdev(list_type = "map", list_map_keys())]
    pub aliases: Vec<Port>,
}

fn main() {}
