use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev::schema]
struct Retention {
    #[kdev(minimum = 1, maximum = 365)]
    days: u32,
}

fn main() {}
