//! Lists the API server refuses for their list type build, and `try_crd` says what to fix
//! (`crd()` panics with the same words); their fixed forms assemble. (Here, not in `tests/it`:
//! every derived resource registers itself, and these would make `registered()` fail there.)

use kdev::CustomResource;
use kdev::crd::Error;
use serde::{Deserialize, Serialize};

/// A port whose name, the list's key, may be missing.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OptionalName {
    pub name: Option<String>,
    pub port: u16,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct OptionalKeySpec {
    #[kdev(list_type = "map", list_map_keys(name))]
    pub ports: Vec<OptionalName>,
}

/// A port keyed by an object.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Named {
    pub name: OptionalName,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct ObjectKeySpec {
    #[kdev(list_type = "map", list_map_keys(name))]
    pub ports: Vec<Named>,
}

/// A port whose key is spelled on the wire in camelCase.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct RustKeySpec {
    #[kdev(list_type = "map", list_map_keys(container_port))]
    pub ports: Vec<ContainerPort>,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct ObjectSetSpec {
    #[kdev(list_type = "set")]
    pub ports: Vec<ContainerPort>,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1", status = "UniqueStatus")]
pub struct UniqueSpec {
    pub replicas: i32,
}

/// A status whose list of objects is `unique_items`: a set of objects that are not atomic.
#[kdev::schema]
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UniqueStatus {
    #[kdev(unique_items)]
    pub ports: Vec<ContainerPort>,
}

/// The fixes: a key required by `#[kdev(required)]`, a key with a default, atomic set items.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fixed {
    #[kdev(required)]
    pub name: Option<String>,
    #[kdev(default = "TCP")]
    pub protocol: Option<String>,
}

/// Compared whole.
#[kdev::schema]
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(struct_type = "atomic")]
pub struct Atomic {
    pub a: String,
}

#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "example.com", version = "v1")]
pub struct FixedListsSpec {
    #[kdev(list_type = "map", list_map_keys(name, protocol))]
    pub ports: Vec<Fixed>,
    #[kdev(list_type = "set")]
    pub pairs: Vec<Atomic>,
}

fn main() {
    let err = OptionalKey::try_crd().unwrap_err();
    let message = "OptionalKey: the list spec.properties.ports breaks the rules of its list type: the key \"name\" is \
                   optional and has no default, and every item needs its key: make the key field required \
                   (`#[kdev(required)]`, with `#[kdev::schema]` on the item type, or a field that is neither an \
                   `Option` nor `#[serde(default)]`) or give it a default (`#[kdev(default = ...)]`)";
    assert_eq!(err.to_string(), message);
    assert!(
        matches!(&err, Error::InvalidListType { kind, path, key: Some(key), .. }
            if kind == "OptionalKey" && path == "spec.properties.ports" && key == "name"),
        "{err:?}"
    );
    std::panic::set_hook(Box::new(|_| {}));
    let panic = std::panic::catch_unwind(OptionalKey::crd).unwrap_err();
    let _ = std::panic::take_hook();
    assert_eq!(panic.downcast_ref::<String>().map(String::as_str), Some(message));

    let reason = |err: Error| match err {
        Error::InvalidListType { path, key, reason, .. } => (path, key, reason),
        other => panic!("{other:?}"),
    };
    let (_, key, why) = reason(ObjectKey::try_crd().unwrap_err());
    assert_eq!(key.as_deref(), Some("name"));
    assert!(
        why.starts_with("the key \"name\" is an object: a key is a string, a number or a boolean"),
        "{why}"
    );
    let (_, _, why) = reason(RustKey::try_crd().unwrap_err());
    assert!(why.contains("did you mean \"containerPort\"?"), "{why}");
    let (path, key, why) = reason(ObjectSet::try_crd().unwrap_err());
    assert_eq!((path.as_str(), key), ("spec.properties.ports", None));
    assert!(why.contains("must be scalars or atomic, and they are objects"), "{why}");
    let (path, _, why) = reason(Unique::try_crd().unwrap_err());
    assert_eq!(path, "status.properties.ports");
    assert!(
        why.starts_with("a `set` list (`list_type = \"set\"` or `unique_items`)"),
        "{why}"
    );

    let crd = FixedLists::try_crd().expect("required and defaulted keys, atomic set items");
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let items = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["ports"]["items"];
    assert_eq!(items["required"], serde_json::json!(["name"]));
    assert_eq!(items["properties"]["protocol"]["default"], "TCP");
}
