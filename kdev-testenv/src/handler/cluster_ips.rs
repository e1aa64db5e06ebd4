//! Service cluster IPs, allocated from one service CIDR as kube-apiserver's Service storage
//! allocates them (`pkg/registry/core/service/storage/alloc.go`, `pkg/registry/core/service/ipallocator`):
//! an IP a Service asks for must be in the range and free, a Service that asks for none gets a
//! random free one from the upper part of the range (KEP-3070 keeps the lower part for IPs asked
//! for), and a Service's IP is free again once it is gone or has become an `ExternalName`.
//!
//! As for node ports, the allocation is read from the stored Services under the store's lock, so
//! it cannot disagree with them. Only the primary (IPv4) cluster IP is allocated: kdev-testenv
//! serves single-stack IPv4 Services.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::node_ports::Refused;
use crate::schema::{Cause, go_json_strings};
use crate::store::State;

/// The service CIDR, kubeadm's default `--service-cluster-ip-range` (10.96.0.0/12).
const NETWORK: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const PREFIX: u32 = 12;
/// Addresses in the range, the network and broadcast addresses included.
const SIZE: u32 = 1 << (32 - PREFIX);
/// KEP-3070's static band: `min(max(16, size / 16), 256)` addresses after the network address,
/// handed out at random only once the upper band is full.
const OFFSET: u32 = 256;

/// The range as kube-apiserver prints it.
fn cidr() -> String {
    format!("{}/{PREFIX}", Ipv4Addr::from(NETWORK))
}

/// Whether this Service spec can hold a cluster IP: any type but ExternalName (a headless
/// Service's `None` is no address, so it is never counted as taken).
fn holds_ip(spec: &Value) -> bool {
    spec["type"] != "ExternalName"
}

/// The strings of `clusterIPs`.
fn listed(spec: &Value) -> Vec<&str> {
    let ips = spec["clusterIPs"].as_array().map(Vec::as_slice).unwrap_or_default();
    ips.iter().filter_map(Value::as_str).collect()
}

/// A tentative cluster IP for a Service that gives neither `clusterIP` nor `clusterIPs`, and
/// `clusterIPs` from `clusterIP` when only that is given (kube-apiserver's defaulting of the
/// two fields); a Service that gives `clusterIPs` alone is left to [`validate`].
pub(crate) fn default_ips(spec: &mut Value) {
    let ip = spec["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned);
    let ips_given = listed(spec).first().is_some_and(|ip| !ip.is_empty());
    let Some(m) = spec.as_object_mut() else { return };
    match ip {
        None if !ips_given => {
            let ip = tentative();
            m.insert("clusterIP".into(), json!(ip));
            m.insert("clusterIPs".into(), json!([ip]));
        }
        Some(ip) if !ips_given => {
            m.insert("clusterIPs".into(), json!([ip]));
        }
        _ => {}
    }
}

/// `normalizeClusterIPs`: an update that changes `clusterIP` but leaves `clusterIPs` as it was
/// changes `clusterIPs` with it, so that [`immutable_cause`] sees the change.
pub(crate) fn normalize_update(spec: &mut Value, old: &Value) {
    if spec["clusterIP"] == old["clusterIP"] || spec["clusterIPs"] != old["clusterIPs"] {
        return;
    }
    let ip = spec["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned);
    if let Some(m) = spec.as_object_mut() {
        match ip {
            Some(ip) => m.insert("clusterIPs".into(), json!([ip])),
            None => m.remove("clusterIPs"),
        };
    }
}

/// `dropTypeDependentFields`: a Service that becomes an ExternalName drops the IP fields it
/// kept unchanged (and so gives its IP back).
pub(crate) fn drop_for_external_name(spec: &mut Value, old: &Value) {
    if !holds_ip(old) || holds_ip(spec) {
        return;
    }
    for key in [
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "internalTrafficPolicy",
    ] {
        if spec.get(key) == old.get(key)
            && let Some(m) = spec.as_object_mut()
        {
            m.remove(key);
        }
    }
}

/// `ValidateServiceClusterIPsRelatedFields`, the part about the two fields agreeing.
pub(crate) fn validate(spec: &Value) -> Vec<Cause> {
    if !holds_ip(spec) {
        return Vec::new();
    }
    let ips = listed(spec);
    let ip = spec["clusterIP"].as_str().unwrap_or("");
    let invalid = |detail: &str| Cause::invalid_raw("spec.clusterIPs", &go_json_strings(&ips), detail);
    let mut causes = Vec::new();
    if let Some(first) = ips.first() {
        if ip.is_empty() {
            causes.push(invalid("must be empty when `clusterIP` is not specified"));
        } else if *first != ip {
            causes.push(invalid("first value must match `clusterIP`"));
        }
        if ips.len() > 1 && ips.contains(&"None") {
            causes.push(invalid("'None' must be the first and only value"));
        }
    }
    causes
}

/// The primary cluster IP of a spec: `clusterIPs[0]`, else `clusterIP`; `None` when unset (read
/// before defaults, the IP a write asks for).
pub(crate) fn primary(spec: &Value) -> Option<String> {
    let ip = spec
        .pointer("/clusterIPs/0")
        .and_then(Value::as_str)
        .or_else(|| spec["clusterIP"].as_str())?;
    (!ip.is_empty()).then(|| ip.to_owned())
}

/// The offset of `ip` in the range, when it is an IPv4 address inside it.
fn offset_of(ip: &str) -> Option<u32> {
    let ip: Ipv4Addr = ip.parse().ok()?;
    u32::from(ip).checked_sub(NETWORK).filter(|o| *o < SIZE)
}

/// The cluster IPs of every stored Service but `ns/name`, as offsets in the range.
pub(crate) fn taken(st: &State, storage: &str, except: Option<(&str, &str)>) -> BTreeSet<u32> {
    let services = super::node_ports::others(st, storage, except);
    taken_of(services.iter().map(|s| &s.value["spec"]))
}

/// The cluster IPs these Service specs hold, as offsets in the range.
fn taken_of<'a>(specs: impl IntoIterator<Item = &'a Value>) -> BTreeSet<u32> {
    specs
        .into_iter()
        .filter(|s| holds_ip(s))
        .filter_map(|s| primary(s).as_deref().and_then(offset_of))
        .collect()
}

/// A random address of the upper band, for a Service's defaults before allocation.
pub(crate) fn tentative() -> String {
    Ipv4Addr::from(NETWORK + fastrand::u32(OFFSET + 1..SIZE - 1)).to_string()
}

/// The ipallocator's `Allocate` for an IP a Service asks for: a valid IPv4 address of the
/// range, neither its network nor its broadcast address, and free.
fn allocate(ip: &str, spec: &Value, used: &BTreeSet<u32>) -> Result<(), Refused> {
    let ips = match listed(spec) {
        ips if ips.is_empty() => vec![ip],
        ips => ips,
    };
    let failed = |why: String| {
        Refused::Invalid(Cause::invalid_raw(
            "spec.clusterIPs",
            &go_json_strings(&ips),
            &format!("failed to allocate IP {ip}: {why}"),
        ))
    };
    let Ok(parsed) = ip.parse::<std::net::IpAddr>() else {
        return Err(Refused::Invalid(Cause::invalid_str(
            "spec.clusterIPs[0]",
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )));
    };
    if parsed.is_ipv6() {
        return Err(Refused::Invalid(Cause::invalid_str(
            "spec.clusterIPs[0]",
            ip,
            "IPv6 is not configured on this cluster",
        )));
    }
    let Some(offset) = offset_of(&parsed.to_string()) else {
        return Err(failed(
            "the provided network does not match the current range".to_owned(),
        ));
    };
    if offset == 0 || offset == SIZE - 1 {
        return Err(failed(format!(
            "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
            cidr()
        )));
    }
    if used.contains(&offset) {
        return Err(failed("provided IP is already allocated".to_owned()));
    }
    Ok(())
}

/// The ipallocator's `AllocateNext`: `hint` when it is a free address of the upper band, else a
/// random free one of the upper band, else the lowest free one of the static band.
fn allocate_next(hint: Option<u32>, used: &BTreeSet<u32>) -> Result<u32, Refused> {
    let upper = OFFSET + 1..SIZE - 1;
    let free = |o: &u32| upper.contains(o) && !used.contains(o);
    hint.filter(free)
        .or_else(|| (0..64).map(|_| fastrand::u32(upper.clone())).find(free))
        .or_else(|| upper.clone().find(|o| !used.contains(o)))
        .or_else(|| (1..=OFFSET).find(|o| !used.contains(o)))
        .ok_or_else(|| Refused::Full("failed to allocate a serviceIP: range is full".to_owned()))
}

fn set_ip(spec: &mut Value, offset: u32) {
    let ip = Ipv4Addr::from(NETWORK + offset).to_string();
    if let Some(m) = spec.as_object_mut() {
        m.insert("clusterIP".into(), json!(ip));
        m.insert("clusterIPs".into(), json!([ip]));
    }
}

/// kube's `allocClusterIPs` for a new Service (or one that stops being an `ExternalName`):
/// nothing for an ExternalName or a headless (`None`) Service; the IP it asked for (`requested`,
/// read before defaults) when that is in range and free; else a free one. The caller gives a
/// dry run no taken IPs: as kube-apiserver's dry-run allocator, it checks only the range.
///
/// # Errors
///
/// [`Refused::Invalid`] for an IP asked for that is malformed, out of range or taken,
/// [`Refused::Full`] when no address is free.
pub(crate) fn allocate_on_create(
    spec: &mut Value,
    requested: Option<&str>,
    taken: &BTreeSet<u32>,
) -> Result<(), Refused> {
    if !holds_ip(spec) || primary(spec).as_deref() == Some("None") {
        return Ok(());
    }
    match requested {
        Some("None") => Ok(()),
        Some(ip) => allocate(ip, spec, taken),
        None => {
            let hint = primary(spec).as_deref().and_then(offset_of);
            let offset = allocate_next(hint, taken)?;
            set_ip(spec, offset);
            Ok(())
        }
    }
}

/// kube's `updateClusterIPs`: a Service that was an `ExternalName` and no longer is gets a
/// cluster IP as a new Service does; otherwise the IP it holds stays (changing it is refused by
/// validation, see [`immutable_cause`]).
///
/// # Errors
///
/// As [`allocate_on_create`].
pub(crate) fn allocate_on_update(
    spec: &mut Value,
    old_spec: &Value,
    requested: Option<&str>,
    taken: &BTreeSet<u32>,
) -> Result<(), Refused> {
    if holds_ip(old_spec) {
        return Ok(());
    }
    allocate_on_create(spec, requested, taken)
}

/// `validateUpgradeDowngradeClusterIPs`: the primary cluster IP of a Service that keeps one may
/// not change (`spec.clusterIPs[0]: Invalid value: [...]: may not change once set`).
pub(crate) fn immutable_cause(old_spec: &Value, new_spec: &Value) -> Option<Cause> {
    if !holds_ip(old_spec) || !holds_ip(new_spec) {
        return None;
    }
    let (old, new) = (primary(old_spec)?, primary(new_spec));
    if new.as_deref() == Some(old.as_str()) {
        return None;
    }
    let ips = listed(new_spec);
    Some(match new {
        None => Cause::required("spec.clusterIPs[0]", "primary clusterIP can not be unset"),
        Some(_) => Cause::invalid_raw("spec.clusterIPs[0]", &go_json_strings(&ips), "may not change once set"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(ips: &[&str]) -> BTreeSet<u32> {
        ips.iter().filter_map(|ip| offset_of(ip)).collect()
    }

    fn message(r: Refused) -> String {
        match r {
            Refused::Invalid(c) => format!("{}: {}", c.field, c.message),
            Refused::Full(m) => m,
        }
    }

    #[test]
    fn a_requested_ip_must_be_free_in_range_and_not_the_network_or_broadcast_address() {
        let taken = offsets(&["10.96.0.10"]);
        let mut spec = json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]});
        let err = message(allocate_on_create(&mut spec, Some("10.96.0.10"), &taken).unwrap_err());
        assert_eq!(
            err,
            r#"spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"#
        );
        for (ip, why) in [
            (
                "192.168.0.1",
                "the provided network does not match the current range".to_owned(),
            ),
            (
                "10.96.0.0",
                "the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                    .to_owned(),
            ),
            (
                "10.111.255.255",
                "the provided IP (10.111.255.255) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                    .to_owned(),
            ),
        ] {
            let mut spec = json!({"type": "ClusterIP", "clusterIPs": [ip]});
            let err = message(allocate_on_create(&mut spec, Some(ip), &taken).unwrap_err());
            assert!(err.ends_with(&format!("failed to allocate IP {ip}: {why}")), "{err}");
        }
        let mut spec = json!({"type": "ClusterIP", "clusterIPs": ["2001:db8::1"]});
        let err = message(allocate_on_create(&mut spec, Some("2001:db8::1"), &taken).unwrap_err());
        assert_eq!(
            err,
            r#"spec.clusterIPs[0]: Invalid value: "2001:db8::1": IPv6 is not configured on this cluster"#
        );
        let mut spec = json!({"type": "ClusterIP", "clusterIP": "10.96.300.1"});
        let err = message(allocate_on_create(&mut spec, Some("10.96.300.1"), &taken).unwrap_err());
        assert!(
            err.starts_with(r#"spec.clusterIPs[0]: Invalid value: "10.96.300.1": must be a valid IP"#),
            "{err}"
        );
        // A free IP of the static band, and the last address before the broadcast one.
        for ip in ["10.96.0.11", "10.111.255.254"] {
            let mut spec = json!({"type": "ClusterIP", "clusterIPs": [ip]});
            allocate_on_create(&mut spec, Some(ip), &taken).unwrap();
            assert_eq!(spec["clusterIPs"], json!([ip]));
        }
    }

    #[test]
    fn an_ip_not_asked_for_is_a_free_one_of_the_upper_band() {
        let hint = NETWORK + OFFSET + 5;
        let taken: BTreeSet<u32> = [OFFSET + 5].into();
        let mut spec = json!({"type": "ClusterIP", "clusterIP": Ipv4Addr::from(hint).to_string()});
        allocate_on_create(&mut spec, None, &taken).unwrap();
        let ip = spec["clusterIP"].as_str().unwrap().to_owned();
        let offset = offset_of(&ip).unwrap();
        assert!(offset > OFFSET && offset < SIZE - 1 && offset != OFFSET + 5, "{ip}");
        assert_eq!(spec["clusterIPs"], json!([ip]));
        // The hint is kept when it is free.
        let mut spec = json!({"type": "ClusterIP", "clusterIP": Ipv4Addr::from(hint).to_string()});
        allocate_on_create(&mut spec, None, &BTreeSet::new()).unwrap();
        assert_eq!(offset_of(spec["clusterIP"].as_str().unwrap()), Some(OFFSET + 5));
    }

    #[test]
    fn the_static_band_is_used_once_the_upper_one_is_full_and_then_the_range_is_full() {
        let upper: BTreeSet<u32> = (OFFSET + 1..SIZE - 1).collect();
        assert_eq!(allocate_next(None, &upper).unwrap(), 1);
        let all: BTreeSet<u32> = (1..SIZE - 1).collect();
        assert_eq!(
            message(allocate_next(None, &all).unwrap_err()),
            "failed to allocate a serviceIP: range is full"
        );
    }

    #[test]
    fn headless_and_external_name_services_hold_no_ip() {
        let taken = BTreeSet::new();
        let mut headless = json!({"type": "ClusterIP", "clusterIP": "None"});
        allocate_on_create(&mut headless, Some("None"), &taken).unwrap();
        assert_eq!(headless["clusterIP"], "None");
        let mut external = json!({"type": "ExternalName", "externalName": "example.com"});
        allocate_on_create(&mut external, None, &taken).unwrap();
        assert!(external.get("clusterIP").is_none());
        assert_eq!(taken_of([&headless, &external]), BTreeSet::new());
    }

    #[test]
    fn the_primary_ip_may_not_change_or_be_unset_but_an_external_name_may_gain_one() {
        let old = json!({"type": "ClusterIP", "clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"]});
        let moved = json!({"type": "ClusterIP", "clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.2"]});
        let cause = immutable_cause(&old, &moved).unwrap();
        assert_eq!(
            format!("{}: {}", cause.field, cause.message),
            r#"spec.clusterIPs[0]: Invalid value: ["10.96.1.2"]: may not change once set"#
        );
        assert!(immutable_cause(&old, &old).is_none());
        let to_external = json!({"type": "ExternalName", "externalName": "example.com"});
        assert!(immutable_cause(&old, &to_external).is_none());
        let mut from_external = json!({"type": "ClusterIP"});
        allocate_on_update(&mut from_external, &to_external, None, &BTreeSet::new()).unwrap();
        assert!(offset_of(from_external["clusterIP"].as_str().unwrap()).is_some());
        let mut kept = old.clone();
        allocate_on_update(&mut kept, &old, Some("10.96.1.1"), &offsets(&["10.96.1.1"])).unwrap();
        assert_eq!(kept, old, "an update that keeps its IP re-checks nothing");
    }

    #[test]
    fn defaults_fill_cluster_ips_from_cluster_ip_or_a_tentative_ip_and_validation_makes_them_agree() {
        let mut bare = json!({"type": "ClusterIP"});
        default_ips(&mut bare);
        assert_eq!(bare["clusterIPs"], json!([bare["clusterIP"]]));
        assert!(offset_of(bare["clusterIP"].as_str().unwrap()).is_some_and(|o| o > OFFSET));
        let mut one = json!({"type": "ClusterIP", "clusterIP": "10.96.0.20"});
        default_ips(&mut one);
        assert_eq!(one["clusterIPs"], json!(["10.96.0.20"]));
        assert!(validate(&one).is_empty());
        let mut only_list = json!({"type": "ClusterIP", "clusterIPs": ["10.96.0.20"]});
        default_ips(&mut only_list);
        let said = |spec: &Value| -> Vec<String> {
            validate(spec)
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        };
        assert_eq!(
            said(&only_list),
            [r#"spec.clusterIPs: Invalid value: ["10.96.0.20"]: must be empty when `clusterIP` is not specified"#]
        );
        let apart = json!({"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.21"]});
        assert_eq!(
            said(&apart),
            [r#"spec.clusterIPs: Invalid value: ["10.96.0.21"]: first value must match `clusterIP`"#]
        );
        let none_and_more = json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None", "10.96.0.2"]});
        assert_eq!(
            said(&none_and_more),
            [r#"spec.clusterIPs: Invalid value: ["None","10.96.0.2"]: 'None' must be the first and only value"#]
        );
        assert!(validate(&json!({"type": "ExternalName", "clusterIPs": ["x"]})).is_empty());
    }

    #[test]
    fn an_update_that_changes_cluster_ip_alone_changes_cluster_ips_and_an_external_name_drops_both() {
        let old =
            json!({"type": "ClusterIP", "clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"], "ipFamilies": ["IPv4"]});
        let mut moved = json!({"type": "ClusterIP", "clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.1"]});
        normalize_update(&mut moved, &old);
        assert_eq!(moved["clusterIPs"], json!(["10.96.1.2"]));
        assert!(immutable_cause(&old, &moved).is_some());
        let mut external = old.clone();
        external["type"] = json!("ExternalName");
        drop_for_external_name(&mut external, &old);
        assert_eq!(external, json!({"type": "ExternalName"}));
        let mut kept = old.clone();
        drop_for_external_name(&mut kept, &old);
        assert_eq!(kept, old, "a Service that stays a ClusterIP one keeps its fields");
    }
}
