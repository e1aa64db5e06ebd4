//! Request paths and query parameters, parsed as kube-apiserver's request-info resolver does
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`).

use std::collections::HashMap;

use crate::status::ApiError;

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/api`.
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3,
    /// `/openapi/v3/{api/v1 | apis/group/version}`.
    OpenApiV3Doc(String, String),
    /// A resource endpoint.
    Resource(Route),
}

/// The resource part of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// API group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Resource plural.
    pub plural: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`), if any.
    pub subresource: Option<String>,
    /// Whether the legacy `/watch/` prefix was used.
    pub watch_prefix: bool,
}

/// Parses a request path (without the query).
pub fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Ok(Target::Version),
        ["healthz" | "livez" | "readyz", ..] => Ok(Target::Health),
        ["api"] => Ok(Target::Api),
        ["apis"] => Ok(Target::Apis),
        ["apis", g] => Ok(Target::Group(g.to_string())),
        ["api", v] => Ok(Target::GroupVersion(String::new(), v.to_string())),
        ["apis", g, v] => Ok(Target::GroupVersion(g.to_string(), v.to_string())),
        ["openapi", "v2"] => Ok(Target::OpenApiV2),
        ["openapi", "v3"] => Ok(Target::OpenApiV3),
        ["openapi", "v3", "api", v] => Ok(Target::OpenApiV3Doc(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Ok(Target::OpenApiV3Doc(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Err(ApiError::NoRoute),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let route = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Target::Resource(Route {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(String::from),
            plural: plural.to_string(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
            watch_prefix,
        })
    };
    Ok(match rest {
        // The namespace object itself and its subresources.
        ["namespaces", name] if group.is_empty() => route(None, "namespaces", Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            route(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => route(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => route(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => route(Some(ns), plural, Some(name), Some(sub)),
        [plural] => route(None, plural, None, None),
        [plural, name] => route(None, plural, Some(name), None),
        [plural, name, sub] => route(None, plural, Some(name), Some(sub)),
        _ => return Err(ApiError::NoRoute),
    })
}

/// Query parameters, decoded; a repeated key keeps its first value.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d`.
    pub fn parse(q: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(percent_decode(&k.replace('+', " ")))
                .or_insert_with(|| percent_decode(&v.replace('+', " ")));
        }
        Query(m)
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter's value, or "" when absent.
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// A boolean parameter, read as kube-apiserver's `Convert_Slice_string_To_bool` reads it:
    /// present and neither `0` nor `false` (in any case) is true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_true)
    }

    /// A non-negative integer parameter.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid {key} {v:?}"))),
        }
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A query parameter's truth as kube-apiserver's parameter codec reads it: anything but `0` and
/// `false` (in any case).
pub(crate) fn is_true(v: &str) -> bool {
    v != "0" && !v.eq_ignore_ascii_case("false")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        match parse_path(path) {
            Ok(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths_resolve_to_their_parts() {
        let r = route("/apis/apps/v1/namespaces/team/deployments/web/scale");
        assert_eq!(
            (
                r.group.as_str(),
                r.version.as_str(),
                r.namespace.as_deref(),
                r.plural.as_str()
            ),
            ("apps", "v1", Some("team"), "deployments")
        );
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_deref()),
            (Some("web"), Some("scale"))
        );
    }

    #[test]
    fn a_namespace_path_names_the_namespace_object() {
        let r = route("/api/v1/namespaces/team");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("team"), None)
        );
        let r = route("/api/v1/namespaces/team/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = route("/api/v1/namespaces/team/pods");
        assert_eq!((r.plural.as_str(), r.namespace.as_deref()), ("pods", Some("team")));
    }

    #[test]
    fn the_legacy_watch_prefix_is_understood() {
        let r = route("/api/v1/watch/namespaces/team/pods");
        assert!(r.watch_prefix);
        assert_eq!(r.plural, "pods");
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        let flags = Query::parse(Some("a=True&b=t&c=FALSE&d=0&e=yes"));
        assert_eq!(
            ["a", "b", "c", "d", "e", "f"].map(|k| flags.flag(k)),
            [true, true, false, false, true, false]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
