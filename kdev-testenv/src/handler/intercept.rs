//! Pausing a write where its object is known, so admission webhooks can be called between the
//! steps of kube-apiserver's write path without holding the state lock across a network call.
//!
//! A write with admission runs the (synchronous) verb up to three times:
//! 1. **capture**: the verb computes the incoming object (the body, the patched object, the
//!    applied configuration) and stops; the mutating webhooks then run on it;
//! 2. **finalize**: the verb runs again with the mutated object in place of its own, applies the
//!    server's defaults and validation, and stops before storing; the validating webhooks then
//!    see that final object;
//! 3. **commit**: the verb runs again with the mutated object and stores it.
//!
//! A custom resource whose CRD converts through a webhook, written in a version other than the
//! storage version, is handled in the request's version as kube-apiserver handles it: the verb
//! sees the stored object it replaces already converted to that version ([`Intercept::converting`]),
//! and never stores: it stops before storing (a **prepare**, or the finalize above) and its caller
//! converts the final object to the storage version and stores it.
//!
//! The old object must keep its resourceVersion between the steps; when another write slipped in,
//! the step reports `stale` and the whole write starts over (as kube-apiserver's
//! `GuaranteedUpdate` retries). The interception is per thread and covers exactly one synchronous
//! call (there is no await inside a verb), and only the first object the verb writes.

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::Value;

use crate::registry::Resource;
use crate::status::ApiError;
use crate::store::Stored;

/// What the interception does at the write's object.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Record the incoming object and stop.
    Capture,
    /// Use this object, compute the final one, record it and stop before storing.
    Finalize { obj: Value, old_rv: Option<u64> },
    /// Use this object and store it.
    Commit { obj: Value, old_rv: Option<u64> },
    /// Use the verb's own object, compute the final one, record it (and the incoming object and
    /// the old one, as a capture does) and stop before storing.
    Prepare,
}

/// What one write was found to be.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    /// The object the request would write (before defaults and validation), in the request's
    /// version; `None` never happens for create and update.
    pub obj: Value,
    /// The object as stored before the write (`None` for a create).
    pub old: Option<Arc<Stored>>,
}

/// What a finalize gave a new object that its commit must keep: the validating webhooks saw
/// them, and kube-apiserver stores the very object they validated.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// The name (generated, for `generateName`).
    pub name: String,
    /// The uid.
    pub uid: String,
    /// The creationTimestamp.
    pub created: String,
}

impl Stamp {
    /// The stamp of a finalized new object, if it has all three.
    pub(crate) fn of(obj: &Value) -> Option<Stamp> {
        let text = |k: &str| obj.pointer(k).and_then(Value::as_str).map(str::to_owned);
        Some(Stamp {
            name: text("/metadata/name")?,
            uid: text("/metadata/uid")?,
            created: text("/metadata/creationTimestamp")?,
        })
    }
}

/// One interception and what it found.
#[derive(Debug)]
pub(crate) struct Intercept {
    step: Step,
    stamp: Option<Stamp>,
    hit: bool,
    finalizing: bool,
    /// Set by a capture.
    pub captured: Option<Captured>,
    /// Set by a finalize: the object that would be stored, in the request's version.
    pub finalized: Option<Value>,
    /// The old object changed between the steps.
    pub stale: bool,
    /// Set by [`Intercept::converting`]: the stored object the write replaces, in the request's
    /// version, with its resourceVersion (`None`: there was none).
    converting: Option<Option<(u64, Value)>>,
}

impl Intercept {
    pub(crate) fn new(step: Step) -> Self {
        Intercept {
            step,
            stamp: None,
            hit: false,
            finalizing: false,
            captured: None,
            finalized: None,
            stale: false,
            converting: None,
        }
    }
}

impl Intercept {
    /// This interception, committing a new object with what its finalize gave it.
    pub(crate) fn stamped(mut self, stamp: Option<Stamp>) -> Self {
        self.stamp = stamp;
        self
    }

    /// This interception, for a write in a version whose objects reach the storage version only
    /// through the conversion webhook: the verb sees `old` (the stored object and its
    /// resourceVersion, converted to the request's version) as the object it replaces; when it
    /// finds another one, the write is `stale`.
    pub(crate) fn converting(mut self, old: Option<(u64, Value)>) -> Self {
        self.converting = Some(old);
        self
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Intercept>> = const { RefCell::new(None) };
}

/// Runs `f` with `intercept` active on this thread and hands it back with `f`'s result.
pub(crate) fn run<T>(intercept: Intercept, f: impl FnOnce() -> T) -> (T, Intercept) {
    CURRENT.with(|c| *c.borrow_mut() = Some(intercept));
    let out = f();
    let back = CURRENT
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| Intercept::new(Step::Capture));
    (out, back)
}

/// The error a verb returns when the interception stopped it; callers look at the intercept.
fn stop() -> ApiError {
    ApiError::Internal("the write was paused for admission".into())
}

/// Called by a verb where its incoming object is known: returns the object to continue with.
pub(crate) fn at_object(old: Option<&Arc<Stored>>, obj: Value) -> Result<Value, ApiError> {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        let Some(i) = slot.as_mut().filter(|i| !i.hit) else {
            return Ok(obj);
        };
        i.hit = true;
        let old_rv = old.map(|o| o.rv);
        match &i.step {
            Step::Capture => {
                i.captured = Some(Captured { obj, old: old.cloned() });
                Err(stop())
            }
            Step::Finalize { obj: m, old_rv: want } | Step::Commit { obj: m, old_rv: want } => {
                if *want != old_rv {
                    i.stale = true;
                    return Err(stop());
                }
                i.finalizing = matches!(i.step, Step::Finalize { .. });
                Ok(m.clone())
            }
            Step::Prepare => {
                i.captured = Some(Captured {
                    obj: obj.clone(),
                    old: old.cloned(),
                });
                i.finalizing = true;
                Ok(obj)
            }
        }
    })
}

/// The stored object `old` as the verb sees it in `version`: converted by its caller when the
/// write is [converting](Intercept::converting) (a stale write stops here), else by
/// [`convert_out`](super::convert_out).
pub(crate) fn old_in(res: &Resource, version: &str, old: &Stored) -> Result<Value, ApiError> {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        let Some(i) = slot.as_mut() else {
            return Ok(super::convert_out(res, version, &old.value));
        };
        match &i.converting {
            None => Ok(super::convert_out(res, version, &old.value)),
            Some(Some((rv, view))) if *rv == old.rv => Ok(view.clone()),
            Some(_) => {
                i.stale = true;
                Err(stop())
            }
        }
    })
}

/// Called by a verb just before it stores `obj` (in the request's version): a finalize records
/// it and stops the verb.
pub(crate) fn before_store(obj: &Value) -> Result<(), ApiError> {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        match slot.as_mut() {
            Some(i) if i.finalizing => {
                i.finalizing = false;
                i.finalized = Some(obj.clone());
                Err(stop())
            }
            _ => Ok(()),
        }
    })
}

/// The name, uid and creationTimestamp a commit must keep from its finalize, if any.
pub(crate) fn stamp() -> Option<Stamp> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|i| matches!(i.step, Step::Commit { .. }))
            .and_then(|i| i.stamp.clone())
    })
}
