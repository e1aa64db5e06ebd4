//! kdev's own client gates, as client-go's `features` package has them
//! (`k8s.io/client-go/features`): the behaviours a Go controller lets its operator switch with
//! `KUBE_FEATURE_<Name>` environment variables, which a kdev controller honours the same way.

use std::sync::OnceLock;

use super::{FeatureGate, Spec};

/// Streaming lists (`sendInitialEvents`) for the initial list of every reflector and informer
/// (client-go's `WatchListClient`: beta, on by default since 1.35).
/// `KUBE_FEATURE_WatchListClient=false` makes new reflectors list in pages; see
/// [`reflector::Config::streaming_lists`](crate::reflector::Config::streaming_lists).
pub const WATCH_LIST_CLIENT: &str = "WatchListClient";

/// Where client-go reads its gates' values from.
const ENV_PREFIX: &str = "KUBE_FEATURE_";

/// kdev's client gates: [`WATCH_LIST_CLIENT`], set once from `KUBE_FEATURE_<Name>` variables
/// when first asked for (client-go's `features.FeatureGates()`).
///
/// As in client-go, a variable that is not a boolean, or that asks for a locked feature's
/// other value, is logged at ERROR and the feature keeps its default; the gate may also be set
/// in code (`client_features().set("WatchListClient=false")`), before the reflectors it should
/// affect are made.
pub fn client_features() -> &'static FeatureGate {
    static GATE: OnceLock<FeatureGate> = OnceLock::new();
    GATE.get_or_init(|| with_values_from(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())))
}

/// A client gate with the values `lookup` finds for its variables, one variable at a time so
/// that a bad one does not stop the others.
fn with_values_from(lookup: impl Fn(&str) -> Option<String>) -> FeatureGate {
    let gate = FeatureGate::new();
    gate.add(WATCH_LIST_CLIENT, Spec::beta())
        .expect("a new gate has no features");
    for name in [WATCH_LIST_CLIENT] {
        let Some(value) = lookup(&format!("{ENV_PREFIX}{name}")) else {
            continue;
        };
        match super::parse_bool(&value) {
            None => tracing::error!("cannot set feature gate {name:?} to {value:?}, due to invalid syntax"),
            Some(v) => {
                if let Err(error) = gate.set_from_map([(name, v)]) {
                    tracing::error!(%error, "cannot set feature gate {name:?} from {ENV_PREFIX}{name}");
                }
            }
        }
    }
    gate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_list_client_is_on_unless_a_variable_turns_it_off() {
        assert!(with_values_from(|_| None).enabled(WATCH_LIST_CLIENT));
        let off = with_values_from(|name| (name == "KUBE_FEATURE_WatchListClient").then(|| "false".into()));
        assert!(!off.enabled(WATCH_LIST_CLIENT));
        let bad = with_values_from(|_| Some("nope".into()));
        assert!(bad.enabled(WATCH_LIST_CLIENT), "a bad value keeps the default");
    }
}
