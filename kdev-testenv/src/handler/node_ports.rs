//! Service node ports, allocated cluster-wide as kube-apiserver's Service storage allocates them
//! (`pkg/registry/core/service/storage/alloc.go`, `pkg/registry/core/service/portallocator`):
//! a port a Service asks for must be free, a port it does not ask for is picked among the free
//! ones, and a Service's ports are free again once it is gone or no longer of a node-port type.
//!
//! The allocation is read from the stored Services (under the store's lock) rather than kept
//! apart from them, so it can never disagree with them: a dry run checks without allocating, and
//! a delete frees a Service's ports when the Service leaves the store.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::schema::Cause;
use crate::store::{State, Stored};

/// kube-apiserver's default `--service-node-port-range`.
pub(crate) const RANGE: RangeInclusive<u64> = 30000..=32767;

/// Why node ports could not be allocated.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A requested port is taken or out of range: kube's 422 with this one cause.
    Invalid(Cause),
    /// Every port of the range is taken: kube's 500 with this message.
    Full(String),
}

/// Whether a Service of this spec holds node ports (`NodePort` and `LoadBalancer` types).
fn holds_node_ports(spec: &Value) -> bool {
    spec["type"] == "NodePort" || spec["type"] == "LoadBalancer"
}

/// kube's `shouldAllocateNodePorts`: a NodePort Service, or a LoadBalancer one that does not set
/// `allocateLoadBalancerNodePorts: false`. The others keep only the ports they ask for.
pub(crate) fn should_allocate(spec: &Value) -> bool {
    spec["type"] == "NodePort" || (spec["type"] == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] != false)
}

/// The `nodePort` of a port entry, 0 when unset (or not a port number).
fn node_port_of(port: &Value) -> u64 {
    port["nodePort"].as_u64().unwrap_or(0)
}

/// The node ports a Service spec holds: its ports' and its `healthCheckNodePort`.
fn held_by(spec: &Value) -> Vec<u64> {
    if !holds_node_ports(spec) {
        return Vec::new();
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    ports
        .iter()
        .map(node_port_of)
        .chain(spec["healthCheckNodePort"].as_u64())
        .filter(|p| *p != 0)
        .collect()
}

/// Every stored Service but `ns/name`: what a write's allocations must not take.
pub(crate) fn others(st: &State, storage: &str, except: Option<(&str, &str)>) -> Vec<Arc<Stored>> {
    let mut services = st.list(storage, None);
    services.retain(|s| {
        let at = |p: &str| s.value.pointer(p).and_then(Value::as_str).unwrap_or("");
        except != Some((at("/metadata/namespace"), at("/metadata/name")))
    });
    services
}

/// The node ports of every stored Service but `ns/name`.
pub(crate) fn taken(st: &State, storage: &str, except: Option<(&str, &str)>) -> BTreeSet<u64> {
    others(st, storage, except)
        .iter()
        .flat_map(|s| held_by(&s.value["spec"]))
        .collect()
}

/// The node ports one write allocates: those other Services hold, plus its own so far.
struct Allocation {
    used: BTreeSet<u64>,
    /// A dry run's allocator only checks that a port is free, not that it is in range.
    dry_run: bool,
}

impl Allocation {
    /// The portallocator's `Allocate`: `port` in range and free, for the port at `index`.
    fn allocate(&mut self, port: u64, index: usize) -> Result<(), Refused> {
        let detail = if !self.dry_run && !RANGE.contains(&port) {
            format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                RANGE.start(),
                RANGE.end()
            )
        } else if !self.used.insert(port) {
            "provided port is already allocated".to_owned()
        } else {
            return Ok(());
        };
        Err(Refused::Invalid(Cause::invalid(
            &format!("spec.ports[{index}].nodePort"),
            &json!(port),
            &detail,
        )))
    }

    /// The portallocator's `AllocateNext`: `hint` if it is free, else a random free port.
    fn allocate_next(&mut self, hint: u64) -> Result<u64, Refused> {
        let free = |p: &u64| RANGE.contains(p) && !self.used.contains(p);
        let picked = Some(hint)
            .filter(free)
            .or_else(|| (0..64).map(|_| fastrand::u64(RANGE)).find(free))
            .or_else(|| RANGE.clone().find(free));
        match picked {
            Some(p) => {
                self.used.insert(p);
                Ok(p)
            }
            None => Err(Refused::Full("failed to allocate a nodePort: range is full".to_owned())),
        }
    }
}

fn set_node_port(port: &mut Value, node_port: u64) {
    if let Some(m) = port.as_object_mut() {
        m.insert("nodePort".into(), json!(node_port));
    }
}

/// The node ports a create asks for, one per port (0: none), read before defaults fill them in.
pub(crate) fn requested(spec: &Value) -> Vec<u64> {
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    ports.iter().map(node_port_of).collect()
}

/// Tentative node ports for a new Service's ports that have none, so that the object admission
/// sees is complete; [`allocate_on_create`] replaces the ones that turn out to be taken.
pub(crate) fn tentative(spec: &mut Value) {
    if !should_allocate(spec) {
        return;
    }
    for port in spec["ports"].as_array_mut().into_iter().flatten() {
        if node_port_of(port) == 0 {
            set_node_port(port, fastrand::u64(RANGE));
        }
    }
}

/// kube's `initNodePorts`, for a new Service whose ports asked for `requested` (see
/// [`requested`]; the ports' current node ports are hints for those that asked for none): ports
/// with the same port number share one node port; a requested port must be free and in range; the
/// others get a free one. A dry run (`dry_run`) checks requested ports are free but, as kube's
/// dry-run allocator, not that they are in range.
///
/// # Errors
///
/// [`Refused::Invalid`] for a requested port that is taken or out of range (the first such
/// port), [`Refused::Full`] when no port is free.
pub(crate) fn allocate_on_create(
    spec: &mut Value,
    requested: &[u64],
    taken: BTreeSet<u64>,
    dry_run: bool,
) -> Result<(), Refused> {
    if !holds_node_ports(spec) {
        return Ok(());
    }
    let allocate_missing = should_allocate(spec);
    let mut alloc = Allocation { used: taken, dry_run };
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let asked = |i: usize| requested.get(i).copied().unwrap_or(0);
    let numbers: Vec<Value> = ports.iter().map(|p| p["port"].clone()).collect();
    // Node ports by port number.
    let mut by_number: BTreeMap<String, u64> = BTreeMap::new();
    for (i, port) in ports.iter_mut().enumerate() {
        let hint = node_port_of(port);
        let wanted = asked(i);
        if wanted == 0 && !allocate_missing {
            if let Some(m) = port.as_object_mut() {
                m.remove("nodePort");
            }
            continue;
        }
        let number = numbers.get(i).map(Value::to_string).unwrap_or_default();
        match by_number.get(&number).copied() {
            None => {
                // The first port asked for by any port of this number, from here on.
                let ask = (i..numbers.len())
                    .find(|&j| numbers.get(j).map(Value::to_string) == Some(number.clone()) && asked(j) != 0)
                    .map_or(0, asked);
                let node_port = if ask != 0 {
                    alloc.allocate(ask, i)?;
                    ask
                } else {
                    alloc.allocate_next(hint)?
                };
                set_node_port(port, node_port);
                by_number.insert(number, node_port);
            }
            Some(shared) if wanted != shared => {
                if wanted == 0 {
                    set_node_port(port, shared);
                } else {
                    alloc.allocate(wanted, i)?;
                    set_node_port(port, wanted);
                }
            }
            Some(_) => set_node_port(port, wanted),
        }
    }
    Ok(())
}

/// kube's `updateNodePorts`, for an update of a Service from `old_spec` (whose allocated values
/// the update already kept where it left them out): a port the Service did not hold before must
/// be free and in range, a port without one gets a free one. Ports the update drops, or all of
/// them when the Service stops being of a node-port type, are free again once it is stored.
///
/// # Errors
///
/// As [`allocate_on_create`].
pub(crate) fn allocate_on_update(
    spec: &mut Value,
    old_spec: &Value,
    taken: BTreeSet<u64>,
    dry_run: bool,
) -> Result<(), Refused> {
    if !holds_node_ports(spec) {
        return Ok(());
    }
    let allocate_missing = should_allocate(spec);
    let held_before = held_by(old_spec);
    let mut alloc = Allocation { used: taken, dry_run };
    let mut allocated_here = BTreeSet::new();
    for (i, port) in spec["ports"].as_array_mut().into_iter().flatten().enumerate() {
        let wanted = node_port_of(port);
        if wanted == 0 {
            if allocate_missing {
                let node_port = alloc.allocate_next(0)?;
                set_node_port(port, node_port);
            }
        } else if !held_before.contains(&wanted) && !allocated_here.contains(&wanted) {
            alloc.allocate(wanted, i)?;
            allocated_here.insert(wanted);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_ports(spec: &Value) -> Vec<u64> {
        spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(node_port_of)
            .collect()
    }

    fn refused_field(r: Result<(), Refused>) -> String {
        match r {
            Err(Refused::Invalid(c)) => format!("{} {}", c.field, c.message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_requested_port_held_by_another_service_is_refused() {
        let mut spec = json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]});
        let asked = requested(&spec);
        let got = allocate_on_create(&mut spec, &asked, BTreeSet::from([30080]), false);
        assert_eq!(
            refused_field(got),
            "spec.ports[1].nodePort Invalid value: 30080: provided port is already allocated"
        );
    }

    #[test]
    fn a_requested_port_out_of_range_is_refused() {
        let mut spec = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]});
        let asked = requested(&spec);
        assert_eq!(
            refused_field(allocate_on_create(&mut spec, &asked, BTreeSet::new(), false)),
            "spec.ports[0].nodePort Invalid value: 80: provided port is not in the valid range. The range of valid \
             ports is 30000-32767"
        );
        allocate_on_create(&mut spec, &asked, BTreeSet::new(), true).expect("a dry run does not check the range");
    }

    #[test]
    fn assigned_ports_avoid_taken_ones_and_keep_free_hints() {
        let mut spec =
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30002}]});
        allocate_on_create(&mut spec, &[0, 0], BTreeSet::from([30001]), false).expect("free ports");
        let got = node_ports(&spec);
        assert_ne!(got[0], 30001, "the taken hint is replaced");
        assert!(RANGE.contains(&got[0]));
        assert_eq!(got[1], 30002, "a free hint is kept");
    }

    #[test]
    fn ports_of_one_number_share_a_node_port() {
        let mut spec = json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053}]});
        let asked = requested(&spec);
        allocate_on_create(&mut spec, &asked, BTreeSet::new(), false).expect("allocated");
        assert_eq!(node_ports(&spec), [30053, 30053]);
    }

    #[test]
    fn two_ports_of_one_service_cannot_ask_for_the_same_node_port() {
        let mut spec = json!({"type": "NodePort", "ports": [
            {"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30080}]});
        let asked = requested(&spec);
        assert_eq!(
            refused_field(allocate_on_create(&mut spec, &asked, BTreeSet::new(), true)),
            "spec.ports[1].nodePort Invalid value: 30080: provided port is already allocated"
        );
    }

    #[test]
    fn a_full_range_is_an_internal_error() {
        let mut spec = json!({"type": "NodePort", "ports": [{"port": 80}]});
        let all: BTreeSet<u64> = RANGE.collect();
        assert!(matches!(
            allocate_on_create(&mut spec, &[0], all, false),
            Err(Refused::Full(_))
        ));
    }

    #[test]
    fn load_balancers_that_decline_node_ports_keep_only_requested_ones() {
        let mut spec = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "nodePort": 31000}, {"port": 81, "nodePort": 31001}]});
        allocate_on_create(&mut spec, &[31000, 0], BTreeSet::new(), false).expect("allocated");
        assert_eq!(node_ports(&spec), [31000, 0]);
    }

    #[test]
    fn an_update_checks_only_ports_the_service_did_not_hold() {
        let old = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]});
        let mut kept = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]});
        allocate_on_update(&mut kept, &old, BTreeSet::from([30081]), false).expect("its own port is kept");
        let got = node_ports(&kept);
        assert_eq!(got[0], 30080);
        assert!(RANGE.contains(&got[1]) && got[1] != 30081, "{got:?}");
        let mut moved = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]});
        assert_eq!(
            refused_field(allocate_on_update(&mut moved, &old, BTreeSet::from([30081]), false)),
            "spec.ports[0].nodePort Invalid value: 30081: provided port is already allocated"
        );
    }

    #[test]
    fn only_node_port_types_hold_ports() {
        assert_eq!(
            held_by(&json!({"type": "ClusterIP", "ports": [{"nodePort": 30000}]})),
            Vec::<u64>::new()
        );
        assert_eq!(
            held_by(&json!({"type": "LoadBalancer", "healthCheckNodePort": 30001, "ports": [{"nodePort": 30000}]})),
            [30000, 30001]
        );
    }
}
