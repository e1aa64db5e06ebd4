//! delete and deletecollection, finalizers, ownerReference garbage collection (background,
//! foreground, orphan), and namespace and CRD clean-up
//! ([garbage collection](https://kubernetes.io/docs/concepts/architecture/garbage-collection/),
//! [finalizers](https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/)).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::read::Filter;
use super::{Ctx, crd, object_response, read, render};
use crate::meta;
use crate::registry::Resource;
use crate::schema::Cause;
use crate::status::{ApiError, deleted};
use crate::store::{ObjKey, State, Stored};
use crate::wire::{self, Body};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The result of a delete.
pub(crate) enum Deletion {
    /// Gone; the last state.
    Gone(Arc<Stored>),
    /// Still there with a deletionTimestamp, waiting for finalizers.
    Pending(Arc<Stored>),
}

struct Options {
    /// The policy the request names; `None` keeps the finalizers the object has.
    propagation: Option<Propagation>,
    /// `orphanDependents`, deprecated but still honoured.
    orphan_dependents: Option<bool>,
    dry_run: bool,
    uid: Option<String>,
    rv: Option<String>,
}

/// The `DeleteOptions` of a request as JSON: the body when there is one, else built from the
/// query, as kube-apiserver's `handlers/delete.go` reads them (the query is ignored when there
/// is a body).
pub(crate) fn options_value(ctx: &Ctx) -> Result<Value, ApiError> {
    if !ctx.body.iter().all(u8::is_ascii_whitespace) {
        return ctx.body_json();
    }
    let mut o = json!({});
    if let Some(v) = ctx.query.get("propagationPolicy") {
        o["propagationPolicy"] = json!(v);
    }
    if let Some(v) = ctx.query.get("orphanDependents") {
        o["orphanDependents"] = json!(crate::request::is_true(v));
    }
    if let Some(v) = ctx.query.get("gracePeriodSeconds") {
        o["gracePeriodSeconds"] = v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n));
    }
    if let Some(v) = ctx.query.get("dryRun") {
        o["dryRun"] = json!([v]);
    }
    Ok(o)
}

/// The `DeleteOptions` of a request ([`options_value`]), checked as `ValidateDeleteOptions`.
fn options(ctx: &Ctx) -> Result<Options, ApiError> {
    let body = options_value(ctx)?;
    let policy = body.get("propagationPolicy").and_then(Value::as_str);
    let orphan_dependents = body.get("orphanDependents").and_then(Value::as_bool);
    let dry_run: Vec<&str> = body
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut causes = Vec::new();
    if let (Some(p), Some(_)) = (policy, orphan_dependents) {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {p:?}: orphanDependents and deletionPropagation cannot be both set"),
            field: "propagationPolicy".into(),
        });
    }
    let propagation = match policy {
        None => orphan_dependents.map(|o| {
            if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Background") => Some(Propagation::Background),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
                field: "propagationPolicy".into(),
            });
            None
        }
    };
    causes.extend(super::options::dry_run(dry_run.iter().copied()));
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            kind: "DeleteOptions".into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
            causes,
        });
    }
    let pre = body.get("preconditions");
    Ok(Options {
        propagation,
        orphan_dependents,
        dry_run: !dry_run.is_empty(),
        uid: pre.and_then(|p| p.get("uid")).and_then(Value::as_str).map(String::from),
        rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// DELETE of one object.
pub(crate) fn delete(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    if ctx.route.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    let opts = options(ctx)?;
    let mut st = ctx.shared.state.lock();
    let old = st
        .get(ctx.storage(), ctx.ns(), ctx.name())
        .cloned()
        .ok_or_else(|| read::not_found(ctx))?;
    // `rest.BeforeDelete`'s early precondition check, against the kind.
    let kind = match ctx.res.group.as_str() {
        "" => ctx.res.kind.clone(),
        group => format!("{}.{group}", ctx.res.kind),
    };
    let precondition = |detail: String| ApiError::Conflict {
        qualified: kind.clone(),
        name: ctx.name().to_string(),
        detail,
    };
    if let Some(uid) = &opts.uid
        && uid != old.uid()
    {
        return Err(precondition(format!(
            "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been \
             deleted and then recreated",
            old.uid()
        )));
    }
    if let Some(rv) = &opts.rv
        && *rv != old.rv.to_string()
    {
        return Err(precondition(format!(
            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The \
             object might have been modified",
            old.rv
        )));
    }
    let outcome = if opts.dry_run {
        preview(&st, &ctx.res, &old, &opts)
    } else {
        delete_object(&mut st, &ctx.res, ctx.ns(), ctx.name(), opts.propagation)
    };
    drop(st);
    Ok(match outcome {
        Deletion::Pending(obj) => {
            // kube-apiserver answers 202 only to a cascading delete asked for the deprecated way.
            let code = if opts.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            object_response(ctx, code, &obj)
        }
        Deletion::Gone(last) if returns_object(&ctx.res) => object_response(ctx, StatusCode::OK, &last),
        Deletion::Gone(last) => {
            wire::json_value(StatusCode::OK, &deleted(&ctx.res.qualified(), ctx.name(), last.uid()))
        }
    })
}

/// What deleting `old` would answer, changing nothing (`dryRun=All`): the object marked for
/// deletion when finalizers would hold it, else its last state.
fn preview(st: &State, res: &Arc<Resource>, old: &Arc<Stored>, opts: &Options) -> Deletion {
    let propagation = opts
        .propagation
        .or_else(|| super::batch::default_propagation(res, &old.value));
    let fins = gc_finalizers(&finalizers(&old.value), propagation);
    let deleting = old.value.pointer("/metadata/deletionTimestamp").is_some();
    let is_namespace = res.group.is_empty() && res.plural == "namespaces";
    if fins.is_empty() && !deleting && !is_namespace {
        return Deletion::Gone(old.clone());
    }
    let mut v = old.value.clone();
    set_finalizers(&mut v, &fins);
    if !deleting {
        mark(&mut v);
        if is_namespace {
            v["status"]["phase"] = json!("Terminating");
        }
    }
    Deletion::Pending(Stored::new(v, st.rv()))
}

/// Pods, namespaces, Services, ServiceAccounts and custom resources answer a delete with the
/// object (their stores' `ReturnDeletedObject`); the rest with a Status.
fn returns_object(res: &Resource) -> bool {
    res.crd.is_some()
        || (res.group.is_empty()
            && matches!(
                res.plural.as_str(),
                "pods" | "namespaces" | "services" | "serviceaccounts"
            ))
}

/// The finalizers after a delete asking for `policy`, as kube-apiserver's
/// `deletionFinalizersForGarbageCollection`: an explicit policy replaces the orphan and foreground
/// finalizers with its own (none for background); no policy keeps them.
fn gc_finalizers(current: &[String], policy: Option<Propagation>) -> Vec<String> {
    let Some(policy) = policy else {
        return current.to_vec();
    };
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    match policy {
        Propagation::Orphan => out.push(ORPHAN.into()),
        Propagation::Foreground => out.push(FOREGROUND.into()),
        Propagation::Background => {}
    }
    out
}

/// Sets the deletionTimestamp (kube-apiserver's `markAsDeleting`): setting it bumps the generation
/// of an object that has one, so a controller filtering on generation changes sees it.
fn mark(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("deletionTimestamp".into(), json!(meta::now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if let Some(generation) = m.get("generation").and_then(Value::as_i64)
            && generation > 0
        {
            m.insert("generation".into(), json!(generation + 1));
        }
    }
}

/// DELETE of a collection, with selectors.
pub(crate) fn delete_collection(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let opts = options(ctx)?;
    let filter = Filter::from_ctx(ctx)?;
    let mut st = ctx.shared.state.lock();
    let targets: Vec<Arc<Stored>> = st
        .list(ctx.storage(), ctx.route.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(&ctx.res, ctx.version(), &o.value))
        .collect();
    // The answer is the list as it was before the deletes, as kube-apiserver's DeleteCollection.
    let rv = st.rv();
    if !opts.dry_run {
        for o in &targets {
            let (ns, name) = key_of(&o.value);
            delete_object(&mut st, &ctx.res, &ns, &name, opts.propagation);
        }
    }
    let items = targets;
    drop(st);
    let mut buf = BytesMut::new();
    buf.put_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[",
            ctx.res.list_kind,
            ctx.res.api_version(ctx.version())
        )
        .as_bytes(),
    );
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(&render(&ctx.res, ctx.version(), o));
    }
    buf.put_slice(b"]}");
    Ok(wire::json(StatusCode::OK, buf.freeze()))
}

fn key_of(v: &Value) -> ObjKey {
    let m = &v["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

fn set_finalizers(v: &mut Value, f: &[String]) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if f.is_empty() {
            m.remove("finalizers");
        } else {
            m.insert("finalizers".into(), json!(f));
        }
    }
}

/// Deletes one object under the lock: immediately when nothing holds it, otherwise by setting
/// its deletionTimestamp and letting the finalizers run.
pub(crate) fn delete_object(
    st: &mut State,
    res: &Arc<Resource>,
    ns: &str,
    name: &str,
    prop: Option<Propagation>,
) -> Deletion {
    let Some(old) = st.get(&res.storage, ns, name).cloned() else {
        return Deletion::Gone(Stored::new(json!({}), st.rv()));
    };
    let key = (ns.to_string(), name.to_string());
    if res.group.is_empty() && res.plural == "namespaces" {
        return delete_namespace(st, res, name, old);
    }
    // A type's default garbage collection policy (a batch/v1 Job orphans its dependents).
    let prop = prop.or_else(|| super::batch::default_propagation(res, &old.value));
    let mut fins = gc_finalizers(&finalizers(&old.value), prop);
    let deleting = old.value.pointer("/metadata/deletionTimestamp").is_some();
    // A CRD gets its clean-up finalizer on the first request to delete it, not before
    // (apiextensions-apiserver's `REST.Delete`): its custom resources go first.
    if res.group == "apiextensions.k8s.io" && !deleting && !fins.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
        fins.push(crd::CLEANUP_FINALIZER.to_string());
    }
    if fins.is_empty() && !deleting {
        return match remove_now(st, &res.storage, &key) {
            Some(last) => Deletion::Gone(last),
            None => Deletion::Gone(old),
        };
    }
    let mut v = old.value.clone();
    set_finalizers(&mut v, &fins);
    if !deleting {
        mark(&mut v);
    }
    let stored = if v == old.value {
        old
    } else {
        st.put(&res.storage, key, v)
    };
    // The garbage collector's finalizers run at once here; the answer is still the object as
    // marked, as kube-apiserver answers before its garbage collector acts.
    match run_finalizers(st, res, stored.clone()) {
        Deletion::Gone(_) if !deleting => Deletion::Pending(stored),
        other => other,
    }
}

/// The server-side finalizers: orphan, foregroundDeletion, and the CRD clean-up.
fn run_finalizers(st: &mut State, res: &Arc<Resource>, obj: Arc<Stored>) -> Deletion {
    let fins = finalizers(&obj.value);
    let uid = obj.uid().to_string();
    let key = key_of(&obj.value);
    if fins.iter().any(|f| f == ORPHAN) {
        for (storage, dkey) in st.dependents_of(&uid) {
            if let Some(dep) = st.get(&storage, &dkey.0, &dkey.1).cloned() {
                let mut v = dep.value.clone();
                if let Some(refs) = v.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                    refs.retain(|r| r["uid"] != uid.as_str());
                    if refs.is_empty()
                        && let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut)
                    {
                        m.remove("ownerReferences");
                    }
                }
                st.put(&storage, dkey, v);
            }
        }
        return remove_finalizer(st, res, &key, ORPHAN);
    }
    if fins.iter().any(|f| f == FOREGROUND) {
        for (storage, dkey) in st.dependents_of(&uid) {
            if let Some(dres) = resource_of_storage(st, &storage) {
                delete_object(st, &dres, &dkey.0, &dkey.1, Some(Propagation::Foreground));
            }
        }
        return check_foreground(st, res, &key);
    }
    if res.group == "apiextensions.k8s.io" && fins.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
        crd::delete_all_instances(st, &obj.value);
        if let Some(latest) = st.get(&res.storage, &key.0, &key.1).cloned() {
            return crd::maybe_finish(st, res, latest);
        }
        return Deletion::Gone(obj);
    }
    match st.get(&res.storage, &key.0, &key.1).cloned() {
        Some(o) => Deletion::Pending(o),
        None => Deletion::Gone(obj),
    }
}

/// Removes one finalizer; removes the object when it was the last one of a deleting object.
pub(crate) fn remove_finalizer(st: &mut State, res: &Arc<Resource>, key: &ObjKey, f: &str) -> Deletion {
    let Some(cur) = st.get(&res.storage, &key.0, &key.1).cloned() else {
        return Deletion::Gone(Stored::new(json!({}), st.rv()));
    };
    let mut fins = finalizers(&cur.value);
    fins.retain(|x| x != f);
    let mut v = cur.value.clone();
    set_finalizers(&mut v, &fins);
    let stored = st.put(&res.storage, key.clone(), v);
    finish_if_done(st, res, stored)
}

fn check_foreground(st: &mut State, res: &Arc<Resource>, key: &ObjKey) -> Deletion {
    let Some(cur) = st.get(&res.storage, &key.0, &key.1).cloned() else {
        return Deletion::Gone(Stored::new(json!({}), st.rv()));
    };
    let uid = cur.uid().to_string();
    let blocking = st.dependents_of(&uid).into_iter().any(|(s, k)| {
        st.get(&s, &k.0, &k.1).is_some_and(|d| {
            d.value
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid.as_str() && r["blockOwnerDeletion"] == true)
                })
        })
    });
    if blocking {
        Deletion::Pending(cur)
    } else {
        remove_finalizer(st, res, key, FOREGROUND)
    }
}

/// After an update: a deleting object whose finalizers are all gone is removed.
pub(crate) fn after_update(st: &mut State, res: &Arc<Resource>, stored: Arc<Stored>) -> Arc<Stored> {
    if res.group == "apiextensions.k8s.io" && stored.value.pointer("/metadata/deletionTimestamp").is_none() {
        crd::on_written(st, &stored);
    }
    collect_if_dangling(st, res, &stored);
    match finish_if_done(st, res, stored) {
        Deletion::Gone(x) | Deletion::Pending(x) => x,
    }
}

fn finish_if_done(st: &mut State, res: &Arc<Resource>, stored: Arc<Stored>) -> Deletion {
    let deleting = stored.value.pointer("/metadata/deletionTimestamp").is_some();
    if deleting && finalizers(&stored.value).is_empty() {
        let key = key_of(&stored.value);
        if res.group.is_empty() && res.plural == "namespaces" {
            // A namespace also waits for its spec.finalizers (the namespace controller's).
            if stored
                .value
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Deletion::Pending(stored);
            }
        }
        return match remove_now(st, &res.storage, &key) {
            Some(last) => Deletion::Gone(last),
            None => Deletion::Gone(stored),
        };
    }
    Deletion::Pending(stored)
}

/// After a create: what controllers of a fresh cluster add (a namespace's default
/// ServiceAccount and root CA ConfigMap) and CRD establishment.
pub(crate) fn after_create(st: &mut State, res: &Arc<Resource>, stored: &Arc<Stored>) {
    if res.group.is_empty() && res.plural == "namespaces" {
        let ns = stored
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let sa = json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": "default", "namespace": ns, "uid": meta::uid(), "creationTimestamp": meta::now() } });
        st.put("/serviceaccounts", (ns.clone(), "default".into()), sa);
        let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "kube-root-ca.crt", "namespace": ns, "uid": meta::uid(), "creationTimestamp": meta::now(),
                          "annotations": { "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters." } },
            "data": { "ca.crt": "" } });
        st.put("/configmaps", (ns, "kube-root-ca.crt".into()), cm);
    }
    if res.group == "apiextensions.k8s.io" {
        crd::on_written(st, stored);
    }
    collect_if_dangling(st, res, stored);
}

/// What the garbage collector finds at the other end of an ownerReference.
#[derive(PartialEq)]
enum Owner {
    /// An object with the reference's uid exists.
    Alive,
    /// None does (none of that name, or one of another uid).
    Gone,
    /// The reference cannot be resolved: an unknown kind, or a namespaced owner of a
    /// cluster-scoped object. kube's garbage collector retries such a reference and never acts
    /// on it.
    Unresolvable,
}

fn owner_of(st: &State, dep_ns: &str, r: &Value) -> Owner {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(res) = st.registry.by_kind(group, r["kind"].as_str().unwrap_or("")) else {
        return Owner::Unresolvable;
    };
    // A version no longer served cannot be mapped: kube's collector leaves the object alone.
    if !res.versions.iter().any(|v| v == version) || (res.namespaced && dep_ns.is_empty()) {
        return Owner::Unresolvable;
    }
    if holds_owner(st, res, dep_ns, r) {
        Owner::Alive
    } else {
        Owner::Gone
    }
}

/// Whether `res` holds the owner `r` names (by name and uid), in the dependent's namespace when
/// `res` is namespaced.
fn holds_owner(st: &State, res: &Resource, dep_ns: &str, r: &Value) -> bool {
    let ns = if res.namespaced { dep_ns } else { "" };
    let (name, uid) = (r["name"].as_str().unwrap_or(""), r["uid"].as_str().unwrap_or(""));
    st.find_uid(&res.storage, ns, name, uid)
}

/// The garbage collector on a written object whose owners are gone (kube's
/// `attemptToDeleteItem`): with no owner left it is deleted, in the background unless its
/// finalizers ask for orphaning or foreground deletion; with some owners left it only loses
/// the references to the gone ones. A reference that cannot be resolved stops both.
fn collect_if_dangling(st: &mut State, res: &Arc<Resource>, stored: &Arc<Stored>) {
    // The object as stored now: the write's own follow-ups (a CRD's status) may have changed it.
    let (ns, name) = key_of(&stored.value);
    let Some(current) = st.get(&res.storage, &ns, &name).cloned() else {
        return;
    };
    let v = &current.value;
    let Some(refs) = v
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return;
    };
    if v.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let owners: Vec<Owner> = refs.iter().map(|r| owner_of(st, &ns, r)).collect();
    if owners.contains(&Owner::Unresolvable) || !owners.contains(&Owner::Gone) {
        return;
    }
    if owners.contains(&Owner::Alive) {
        let mut kept = v.clone();
        if let Some(list) = kept
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            let mut states = owners.iter();
            list.retain(|_| states.next() == Some(&Owner::Alive));
        }
        st.put(&res.storage, (ns, name), kept);
        return;
    }
    let fins = finalizers(v);
    let policy = if fins.iter().any(|f| f == ORPHAN) {
        Propagation::Orphan
    } else if fins.iter().any(|f| f == FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    delete_object(st, res, &ns, &name, Some(policy));
}

/// Removes an object now, then collects what depended on it.
pub(crate) fn remove_now(st: &mut State, storage: &str, key: &ObjKey) -> Option<Arc<Stored>> {
    let last = st.remove(storage, key)?;
    after_remove(st, storage, &last);
    Some(last)
}

fn resource_of_storage(st: &State, storage: &str) -> Option<Arc<Resource>> {
    st.registry
        .all()
        .find(|r| r.storage == storage && r.conversion == crate::registry::Conversion::None)
        .cloned()
}

/// Whether an ownerReference's owner still exists (matched by uid).
fn owner_alive(st: &State, dep_ns: &str, r: &Value) -> bool {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    st.registry
        .by_kind(group, r["kind"].as_str().unwrap_or(""))
        .is_some_and(|res| holds_owner(st, res, dep_ns, r))
}

fn after_remove(st: &mut State, storage: &str, last: &Arc<Stored>) {
    let uid = last.uid().to_string();
    // Garbage collection: dependents whose every owner is gone are deleted (in the background);
    // dependents with other live owners only lose the dangling reference.
    for (dstorage, dkey) in st.dependents_of(&uid) {
        let Some(dep) = st.get(&dstorage, &dkey.0, &dkey.1).cloned() else {
            continue;
        };
        let refs = dep
            .value
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let others_alive = refs
            .iter()
            .filter(|r| r["uid"] != uid.as_str())
            .any(|r| owner_alive(st, &dkey.0, r));
        if others_alive {
            let mut v = dep.value.clone();
            if let Some(refs) = v.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                refs.retain(|r| r["uid"] != uid.as_str());
            }
            st.put(&dstorage, dkey, v);
        } else if let Some(dres) = resource_of_storage(st, &dstorage) {
            delete_object(st, &dres, &dkey.0, &dkey.1, Some(Propagation::Background));
        }
    }
    // An owner waiting in foreground deletion may now be free to go.
    let refs = last
        .value
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ns = last
        .value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for r in refs {
        let group = r["apiVersion"]
            .as_str()
            .and_then(|a| a.rsplit_once('/'))
            .map_or("", |(g, _)| g)
            .to_string();
        let Some(ores) = st.registry.by_kind(&group, r["kind"].as_str().unwrap_or("")).cloned() else {
            continue;
        };
        let ons = if ores.namespaced { ns.clone() } else { String::new() };
        let name = r["name"].as_str().unwrap_or("").to_string();
        if let Some(owner) = st.get(&ores.storage, &ons, &name).cloned()
            && owner.uid() == r["uid"].as_str().unwrap_or("")
            && finalizers(&owner.value).iter().any(|f| f == FOREGROUND)
        {
            check_foreground(st, &ores, &(ons, name));
        }
    }
    // A terminating namespace goes once it is empty.
    if !ns.is_empty() {
        check_namespace_done(st, &ns);
    }
    // Custom resources of a deleting CRD; the CRD itself.
    crd::after_remove(st, storage, last);
}

fn delete_namespace(st: &mut State, res: &Arc<Resource>, name: &str, old: Arc<Stored>) -> Deletion {
    let mut v = old.value.clone();
    if v.pointer("/metadata/deletionTimestamp").is_none() {
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("deletionTimestamp".into(), json!(meta::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        v["status"]["phase"] = json!("Terminating");
        st.put(&res.storage, (String::new(), name.to_string()), v);
    }
    let pending = st.get(&res.storage, "", name).cloned().unwrap_or(old);
    for storage in st.storages_with_objects_in(name) {
        let Some(ores) = resource_of_storage(st, &storage) else {
            continue;
        };
        for o in st.list(&storage, Some(name)) {
            let (ons, oname) = key_of(&o.value);
            delete_object(st, &ores, &ons, &oname, Some(Propagation::Background));
        }
    }
    check_namespace_done(st, name);
    match st.get(&res.storage, "", name).cloned() {
        Some(_) => Deletion::Pending(pending),
        None => Deletion::Pending(pending),
    }
}

/// The namespace controller's conditions on a terminating namespace whose content is not all
/// gone (`NamespaceContentRemaining`, `NamespaceFinalizersRemaining`, and the three failure
/// conditions false), with its messages.
fn report_remaining(st: &mut State, nsobj: &Arc<Stored>, storages: &[String]) {
    let ns = key_of(&nsobj.value).1;
    let mut resources: Vec<String> = Vec::new();
    let mut finalizers_left: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for storage in storages {
        let objects = st.list(storage, Some(&ns));
        if objects.is_empty() {
            continue;
        }
        // `"%s.%s", gvr.Resource, gvr.Group`: the core group leaves a trailing dot (`pods.`).
        let resource = resource_of_storage(st, storage).map_or_else(
            || {
                let (group, plural) = storage.split_once('/').unwrap_or(("", storage));
                format!("{plural}.{group}")
            },
            |r| format!("{}.{}", r.plural, r.group),
        );
        resources.push(format!("{resource} has {} resource instances", objects.len()));
        for o in &objects {
            for f in finalizers(&o.value) {
                *finalizers_left.entry(f).or_default() += 1;
            }
        }
    }
    resources.sort();
    let now = meta::now();
    let condition = |ty: &str, status: &str, reason: &str, message: String| json!({ "type": ty, "status": status, "lastTransitionTime": now, "reason": reason, "message": message });
    let mut conditions = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        condition(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        ),
        condition(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", resources.join(", ")),
        ),
    ];
    conditions.push(if finalizers_left.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let each: Vec<String> = finalizers_left
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                each.join(", ")
            ),
        )
    });
    // A condition that did not change keeps its transition time.
    let before = nsobj.value["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &mut conditions {
        if let Some(b) = before
            .iter()
            .find(|b| b["type"] == c["type"] && b["status"] == c["status"])
        {
            c["lastTransitionTime"] = b["lastTransitionTime"].clone();
        }
    }
    let same = |a: &[Value], b: &[Value]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x["type"] == y["type"] && x["status"] == y["status"] && x["message"] == y["message"])
    };
    if same(&conditions, &before) {
        return;
    }
    let mut v = nsobj.value.clone();
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("conditions".into(), json!(conditions));
        st.put("/namespaces", (String::new(), ns), v);
    }
}

fn check_namespace_done(st: &mut State, ns: &str) {
    let Some(nsobj) = st.get("/namespaces", "", ns).cloned() else {
        return;
    };
    if nsobj.value.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let remaining = st.storages_with_objects_in(ns);
    if !remaining.is_empty() {
        report_remaining(st, &nsobj, &remaining);
        return;
    }
    let mut v = nsobj.value.clone();
    v["spec"]["finalizers"] = json!([]);
    let Some(res) = st.registry.get_any_version("", "namespaces").cloned() else {
        return;
    };
    let stored = st.put("/namespaces", (String::new(), ns.to_string()), v);
    finish_if_done(st, &res, stored);
}
