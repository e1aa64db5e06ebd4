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
    propagation: Propagation,
    uid: Option<String>,
    rv: Option<String>,
}

fn options(ctx: &Ctx) -> Result<Options, ApiError> {
    let body: Value = if ctx.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        ctx.body_json()?
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| ctx.query.get("propagationPolicy"))
        .unwrap_or("");
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| ctx.query.get("orphanDependents").map(|v| v == "true"));
    let propagation = match (policy, orphan) {
        ("Foreground", _) => Propagation::Foreground,
        ("Orphan", _) | ("", Some(true)) => Propagation::Orphan,
        ("Background" | "", _) => Propagation::Background,
        (other, _) => {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let pre = body.get("preconditions");
    Ok(Options {
        propagation,
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
    let precondition = |what: &str, want: &str, have: &str| ApiError::Conflict {
        qualified: ctx.res.qualified(),
        name: ctx.name().to_string(),
        detail: format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"),
    };
    if let Some(uid) = &opts.uid
        && uid != old.uid()
    {
        return Err(precondition("UID", uid, old.uid()));
    }
    if let Some(rv) = &opts.rv
        && *rv != old.rv.to_string()
    {
        return Err(precondition("ResourceVersion", rv, &old.rv.to_string()));
    }
    if ctx.dry_run() {
        return Ok(object_response(ctx, StatusCode::OK, &old));
    }
    let outcome = delete_object(&mut st, &ctx.res, ctx.ns(), ctx.name(), opts.propagation);
    drop(st);
    Ok(match outcome {
        Deletion::Pending(obj) => object_response(ctx, StatusCode::OK, &obj),
        Deletion::Gone(last) if returns_object(&ctx.res) => object_response(ctx, StatusCode::OK, &last),
        Deletion::Gone(last) => {
            wire::json_value(StatusCode::OK, &deleted(&ctx.res.qualified(), ctx.name(), last.uid()))
        }
    })
}

/// Pods, namespaces and custom resources answer a delete with the object; the rest with a Status.
fn returns_object(res: &Resource) -> bool {
    res.crd.is_some() || (res.group.is_empty() && matches!(res.plural.as_str(), "pods" | "namespaces"))
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
    let mut items = Vec::new();
    for o in targets {
        let (ns, name) = key_of(&o.value);
        if ctx.dry_run() {
            items.push(o);
            continue;
        }
        match delete_object(&mut st, &ctx.res, &ns, &name, opts.propagation) {
            Deletion::Gone(x) | Deletion::Pending(x) => items.push(x),
        }
    }
    let rv = st.rv();
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
pub(crate) fn delete_object(st: &mut State, res: &Arc<Resource>, ns: &str, name: &str, prop: Propagation) -> Deletion {
    let Some(old) = st.get(&res.storage, ns, name).cloned() else {
        return Deletion::Gone(Stored::new(json!({}), st.rv()));
    };
    let key = (ns.to_string(), name.to_string());
    if res.group.is_empty() && res.plural == "namespaces" {
        return delete_namespace(st, res, name, old);
    }
    let mut fins = finalizers(&old.value);
    let deleting = old.value.pointer("/metadata/deletionTimestamp").is_some();
    let extra = match prop {
        Propagation::Orphan => Some(ORPHAN),
        Propagation::Foreground => Some(FOREGROUND),
        Propagation::Background => None,
    };
    if let Some(f) = extra
        && !fins.iter().any(|x| x == f)
        && !st.dependents_of(old.uid()).is_empty()
    {
        fins.push(f.to_string());
    }
    if fins.is_empty() && !deleting {
        return match remove_now(st, &res.storage, &key) {
            Some(last) => Deletion::Gone(last),
            None => Deletion::Gone(old),
        };
    }
    let mut v = old.value.clone();
    set_finalizers(&mut v, &fins);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut)
        && !deleting
    {
        m.insert("deletionTimestamp".into(), json!(meta::now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        // kube-apiserver's `markAsDeleting`: setting deletionTimestamp bumps the generation of
        // an object that has one, so a controller filtering on generation changes sees it.
        if let Some(generation) = m.get("generation").and_then(Value::as_i64)
            && generation > 0
        {
            m.insert("generation".into(), json!(generation + 1));
        }
    }
    let stored = if v == old.value {
        old
    } else {
        st.put(&res.storage, key, v)
    };
    run_finalizers(st, res, stored)
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
                delete_object(st, &dres, &dkey.0, &dkey.1, Propagation::Foreground);
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
    let (kind, name, uid) = (
        r["kind"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or(""),
        r["uid"].as_str().unwrap_or(""),
    );
    let Some(res) = st.registry.by_kind(group, kind) else {
        return false;
    };
    let ns = if res.namespaced { dep_ns } else { "" };
    st.find_uid(&res.storage, ns, name, uid)
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
            delete_object(st, &dres, &dkey.0, &dkey.1, Propagation::Background);
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
            delete_object(st, &ores, &ons, &oname, Propagation::Background);
        }
    }
    check_namespace_done(st, name);
    match st.get(&res.storage, "", name).cloned() {
        Some(_) => Deletion::Pending(pending),
        None => Deletion::Pending(pending),
    }
}

fn check_namespace_done(st: &mut State, ns: &str) {
    let Some(nsobj) = st.get("/namespaces", "", ns).cloned() else {
        return;
    };
    if nsobj.value.pointer("/metadata/deletionTimestamp").is_none() || !st.storages_with_objects_in(ns).is_empty() {
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
