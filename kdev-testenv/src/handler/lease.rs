//! coordination.k8s.io/v1 Leases as kube-apiserver's lease strategy treats them
//! (`pkg/registry/coordination/lease/strategy.go`, `pkg/apis/coordination/validation`).

use serde_json::Value;

use crate::schema::Cause;

/// The strategies `ValidateCoordinatedLeaseStrategy` knows by a bare name.
const STRATEGIES: &[&str] = &["OldestEmulationVersion"];

/// The spec fields of the CoordinatedLeaderElection feature (beta, off by default since 1.33).
const GATED: &[&str] = &["strategy", "preferredHolder"];

/// `PrepareForCreate` and `PrepareForUpdate` with the CoordinatedLeaderElection feature gate at
/// its default, off: `spec.strategy` and `spec.preferredHolder` are dropped, on an update unless
/// the Lease it replaces (`old`) already has them.
pub(crate) fn drop_disabled_fields(obj: &mut Value, old: Option<&Value>) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in GATED {
        let kept = old
            .and_then(|o| o.pointer(&format!("/spec/{field}")))
            .is_some_and(|v| !v.is_null());
        if !kept {
            spec.remove(*field);
        }
    }
}

/// `ValidateLeaseSpec`, for a create and an update alike.
pub(crate) fn validate(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        return causes;
    };
    let set = |field: &str| spec.get(field).filter(|v| !v.is_null());
    if let Some(d) = set("leaseDurationSeconds")
        && d.as_i64().is_some_and(|d| d <= 0)
    {
        causes.push(Cause::invalid("spec.leaseDurationSeconds", d, "must be greater than 0"));
    }
    if let Some(t) = set("leaseTransitions")
        && t.as_i64().is_some_and(|t| t < 0)
    {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    let strategy = set("strategy").and_then(Value::as_str);
    if let Some(strategy) = strategy {
        // kube names the field `spec.strategy.strategy`: the strategy check appends the child
        // `strategy` to the path it is given, which already ends in it.
        let field = "spec.strategy.strategy";
        if strategy.contains('/') {
            for problem in crate::meta::qualified_name_errors(strategy) {
                causes.push(Cause::invalid_str(field, strategy, &problem));
            }
        } else if !STRATEGIES.contains(&strategy) {
            let supported: Vec<String> = STRATEGIES.iter().map(|s| (*s).to_owned()).collect();
            causes.push(Cause::not_supported(field, &Value::from(strategy), &supported));
        }
    }
    let preferred = set("preferredHolder").and_then(Value::as_str).unwrap_or("");
    if !preferred.is_empty() && strategy.is_none_or(str::is_empty) {
        causes.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rendered(obj: Value) -> Vec<String> {
        validate(&obj)
            .iter()
            .map(|c| format!("{} {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn durations_must_be_positive_and_transitions_not_negative() {
        assert!(rendered(json!({"spec": {"leaseDurationSeconds": 1, "leaseTransitions": 0}})).is_empty());
        assert!(rendered(json!({"spec": {}})).is_empty());
        assert_eq!(
            rendered(json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})),
            [
                "spec.leaseDurationSeconds Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            rendered(json!({"spec": {"leaseDurationSeconds": -5}})),
            ["spec.leaseDurationSeconds Invalid value: -5: must be greater than 0"]
        );
    }

    #[test]
    fn a_strategy_is_a_known_name_or_a_qualified_one() {
        assert!(rendered(json!({"spec": {"strategy": "OldestEmulationVersion", "preferredHolder": "a"}})).is_empty());
        assert!(rendered(json!({"spec": {"strategy": "example.com/mine"}})).is_empty());
        assert_eq!(
            rendered(json!({"spec": {"strategy": "Newest"}})),
            [r#"spec.strategy.strategy Unsupported value: "Newest": supported values: "OldestEmulationVersion""#]
        );
        let got = rendered(json!({"spec": {"strategy": "a/b/c"}}));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(r#"spec.strategy.strategy Invalid value: "a/b/c": a qualified name must consist"#),
            "{got:?}"
        );
    }

    #[test]
    fn a_preferred_holder_needs_a_strategy() {
        assert_eq!(
            rendered(json!({"spec": {"preferredHolder": "me"}})),
            ["spec.preferredHolder Forbidden: may only be specified if `strategy` is defined"]
        );
        assert!(rendered(json!({"spec": {"preferredHolder": ""}})).is_empty());
    }

    #[test]
    fn gated_fields_are_dropped_unless_the_old_lease_has_them() {
        let mut new =
            json!({"spec": {"holderIdentity": "a", "strategy": "OldestEmulationVersion", "preferredHolder": "b"}});
        drop_disabled_fields(&mut new, None);
        assert_eq!(new, json!({"spec": {"holderIdentity": "a"}}));
        let old = json!({"spec": {"strategy": "OldestEmulationVersion"}});
        let mut new = json!({"spec": {"strategy": "OldestEmulationVersion", "preferredHolder": "b"}});
        drop_disabled_fields(&mut new, Some(&old));
        assert_eq!(new, json!({"spec": {"strategy": "OldestEmulationVersion"}}));
    }
}
