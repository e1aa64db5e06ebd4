//! Status conditions: set, find and remove entries of a `status.conditions` list of
//! [`metav1.Condition`](Condition), with apimachinery's
//! [`meta.SetStatusCondition`](https://pkg.go.dev/k8s.io/apimachinery/pkg/api/meta#SetStatusCondition)
//! semantics (the [API conventions](https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties)
//! explain what a condition is).
//!
//! A condition says one thing about an object — `Ready`, `Progressing`, `Degraded` — as
//! `True`, `False` or `Unknown`, with a machine-readable `reason`, a human `message`, the
//! `observedGeneration` it was computed from, and `lastTransitionTime`, the last time the
//! *status* changed. [`set`] keeps that last promise: a reconcile may set the same
//! condition on every run, and the transition time moves only when the status flips.
//!
//! # Example
//!
//! ```
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
//! use kdev_core::condition::{self, Status};
//!
//! let mut conditions: Vec<Condition> = Vec::new();
//! let ready = condition::new("Ready", Status::False, "Provisioning", "waiting for the volume").observed_generation(3);
//! assert!(condition::set(&mut conditions, ready.build()));
//! let since = conditions[0].last_transition_time.clone();
//!
//! // Same status, new message: updated, but the transition time stays.
//! let ready = condition::new("Ready", Status::False, "Provisioning", "volume bound, starting");
//! assert!(condition::set(&mut conditions, ready.build()));
//! assert_eq!(conditions[0].last_transition_time, since);
//! assert_eq!(conditions[0].observed_generation, None);
//!
//! // Setting it again changes nothing.
//! let ready = condition::new("Ready", Status::False, "Provisioning", "volume bound, starting");
//! assert!(!condition::set(&mut conditions, ready.build()));
//!
//! assert!(condition::is_false(&conditions, "Ready"));
//! assert!(!condition::is_true(&conditions, "Ready"));
//! assert!(condition::is_unknown(&conditions, "Degraded")); // absent counts as Unknown
//! ```

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube_core::Resource;

/// The status of a condition: `True`, `False` or `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell (yet).
    Unknown,
}

impl Status {
    /// The wire form: `"True"`, `"False"` or `"Unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// `True` for `true`, `False` for `false`.
    pub fn from_bool(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        Status::from_bool(b)
    }
}

/// Builds a [`Condition`]; start with [`new`] or [`for_object`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    condition: Condition,
}

/// A condition of `type_` with `status`, `reason` (CamelCase, machine-readable) and
/// `message` (for humans), and no observed generation. Its `lastTransitionTime` is left
/// unset (the Unix epoch), so [`set`] stamps it with the current time when the status changes.
pub fn new(type_: impl Into<String>, status: Status, reason: impl Into<String>, message: impl Into<String>) -> Builder {
    Builder {
        condition: Condition {
            type_: type_.into(),
            status: status.as_str().to_string(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        },
    }
}

/// Like [`new`], with `observedGeneration` set to `obj`'s `metadata.generation`: the
/// condition says which spec it was computed from.
pub fn for_object<K: Resource>(
    obj: &K,
    type_: impl Into<String>,
    status: Status,
    reason: impl Into<String>,
    message: impl Into<String>,
) -> Builder {
    let generation = obj.meta().generation;
    let mut b = new(type_, status, reason, message);
    b.condition.observed_generation = generation;
    b
}

impl Builder {
    /// Sets `observedGeneration`.
    pub fn observed_generation(mut self, generation: i64) -> Self {
        self.condition.observed_generation = Some(generation);
        self
    }

    /// Sets `lastTransitionTime` explicitly; [`set`] uses it instead of the current time
    /// when the status changes.
    pub fn last_transition_time(mut self, time: Timestamp) -> Self {
        self.condition.last_transition_time = Time(time);
        self
    }

    /// The condition.
    pub fn build(self) -> Condition {
        self.condition
    }
}

impl From<Builder> for Condition {
    fn from(b: Builder) -> Self {
        b.build()
    }
}

fn is_unset(t: &Time) -> bool {
    t.0 == Timestamp::UNIX_EPOCH
}

fn now() -> Time {
    // metav1.Time has second precision on the wire; keep it so a round trip compares equal.
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Sets `new` in `conditions` and returns whether anything changed (apimachinery's
/// `meta.SetStatusCondition`):
///
/// 1. No condition of `new.type_` yet: `new` is appended; an unset `lastTransitionTime`
///    becomes now.
/// 2. Otherwise the existing entry is updated in place. Its `lastTransitionTime` changes only
///    when its `status` changes (to `new`'s time if set, else now). `reason`, `message` and
///    `observedGeneration` are copied when they differ.
pub fn set(conditions: &mut Vec<Condition>, new: impl Into<Condition>) -> bool {
    let mut new = new.into();
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        if is_unset(&new.last_transition_time) {
            new.last_transition_time = now();
        }
        conditions.push(new);
        return true;
    };
    let mut changed = false;
    if existing.status != new.status {
        existing.status = new.status;
        existing.last_transition_time = if is_unset(&new.last_transition_time) {
            now()
        } else {
            new.last_transition_time
        };
        changed = true;
    }
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    if existing.observed_generation != new.observed_generation {
        existing.observed_generation = new.observed_generation;
        changed = true;
    }
    changed
}

/// The condition of `type_`, if present (apimachinery's `meta.FindStatusCondition`).
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Removes the condition of `type_` and returns whether it was present
/// (apimachinery's `meta.RemoveStatusCondition`).
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// Whether the condition of `type_` is present with `status`
/// (apimachinery's `meta.IsStatusConditionPresentAndEqual`).
pub fn has_status(conditions: &[Condition], type_: &str, status: Status) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == status.as_str())
}

/// Whether the condition of `type_` is `True` (absent: `false`).
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    has_status(conditions, type_, Status::True)
}

/// Whether the condition of `type_` is `False` (absent: `false`).
pub fn is_false(conditions: &[Condition], type_: &str) -> bool {
    has_status(conditions, type_, Status::False)
}

/// Whether the condition of `type_` is `Unknown` or absent: neither `True` nor `False`.
pub fn is_unknown(conditions: &[Condition], type_: &str) -> bool {
    !is_true(conditions, type_) && !is_false(conditions, type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut cs = Vec::new();
        assert!(set(
            &mut cs,
            new("Ready", Status::False, "Starting", "a").last_transition_time(at(100))
        ));
        assert_eq!(cs[0].last_transition_time.0, at(100));

        // Same status, other reason, message and generation: all copied, time kept.
        let same = new("Ready", Status::False, "Waiting", "b")
            .observed_generation(2)
            .last_transition_time(at(200));
        assert!(set(&mut cs, same));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time.0, at(100));
        assert_eq!((cs[0].reason.as_str(), cs[0].message.as_str()), ("Waiting", "b"));
        assert_eq!(cs[0].observed_generation, Some(2));

        // Status flips: the time moves to the given one.
        let flip = new("Ready", Status::True, "Running", "c")
            .observed_generation(2)
            .last_transition_time(at(300));
        assert!(set(&mut cs, flip));
        assert_eq!(cs[0].last_transition_time.0, at(300));
        assert!(is_true(&cs, "Ready"));
    }

    #[test]
    fn setting_an_identical_condition_reports_no_change() {
        let mut cs = Vec::new();
        let c = new("Ready", Status::True, "Running", "ok")
            .observed_generation(1)
            .build();
        assert!(set(&mut cs, c.clone()));
        let stamped = cs.clone();
        assert!(!set(&mut cs, c));
        assert_eq!(cs, stamped);
    }

    #[test]
    fn an_unset_transition_time_is_stamped_with_now() {
        let mut cs = Vec::new();
        set(&mut cs, new("Ready", Status::Unknown, "Init", ""));
        assert!(cs[0].last_transition_time.0 > at(1_700_000_000));
        let first = cs[0].last_transition_time.clone();
        set(
            &mut cs,
            new("Ready", Status::True, "Up", "").last_transition_time(at(5)),
        );
        assert_eq!(cs[0].last_transition_time.0, at(5));
        set(&mut cs, new("Ready", Status::False, "Down", ""));
        assert!(cs[0].last_transition_time >= first);
    }

    #[test]
    fn get_remove_and_status_predicates() {
        let mut cs = Vec::new();
        set(&mut cs, new("Ready", Status::True, "Up", ""));
        set(&mut cs, new("Degraded", Status::False, "Fine", ""));
        assert_eq!(get(&cs, "Degraded").map(|c| c.reason.as_str()), Some("Fine"));
        assert!(is_true(&cs, "Ready") && !is_false(&cs, "Ready") && !is_unknown(&cs, "Ready"));
        assert!(is_false(&cs, "Degraded"));
        assert!(is_unknown(&cs, "Missing"));
        assert!(remove(&mut cs, "Ready"));
        assert!(!remove(&mut cs, "Ready"));
        assert_eq!(cs.len(), 1);
        assert!(get(&cs, "Ready").is_none());
    }

    #[test]
    fn for_object_records_the_generation() {
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.generation = Some(7);
        let c = for_object(&cm, "Ready", Status::from(true), "Up", "").build();
        assert_eq!(c.observed_generation, Some(7));
        assert_eq!(c.status, "True");
    }
}
