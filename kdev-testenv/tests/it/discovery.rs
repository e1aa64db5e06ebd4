//! Discovery: /version, groups, resources and subresources, legacy and aggregated.

use kube_client::discovery::{Discovery, Scope, verbs};

use super::setup;

#[tokio::test]
async fn the_server_reports_a_kubernetes_version() {
    let (env, _ns) = setup().await;
    let info = env.client().apiserver_version().await.expect("version");
    assert_eq!(info.major, "1");
    assert!(
        info.minor.trim_end_matches('+').parse::<u32>().is_ok_and(|m| m >= 33),
        "{}",
        info.minor
    );
}

/// The groups every cluster serves that the discovery tests check.
const BUILTIN_GROUPS: [&str; 5] = [
    "",
    "apps",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "events.k8s.io",
];

async fn check_builtins(discovery: &Discovery) {
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in BUILTIN_GROUPS {
        assert!(groups.iter().any(|x| x == g), "group {g:?} missing from {groups:?}");
    }
    let core = discovery.get("").expect("the core group");
    let (pods, caps) = core
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.plural == "pods")
        .expect("pods");
    assert_eq!(pods.kind, "Pod");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::WATCH));
    assert!(
        caps.subresources.iter().any(|(r, _)| r.plural == "status"),
        "pods/status is served"
    );
    let apps = discovery.get("apps").expect("apps");
    let (_, caps) = apps
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.plural == "deployments")
        .expect("deployments");
    assert!(
        caps.subresources.iter().any(|(r, _)| r.plural == "scale"),
        "deployments/scale is served"
    );
    let (ns, caps) = core
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.plural == "namespaces")
        .expect("namespaces");
    assert_eq!((ns.kind.as_str(), caps.scope), ("Namespace", Scope::Cluster));
}

#[tokio::test]
async fn discovery_lists_the_builtin_groups_and_resources() {
    let (env, _ns) = setup().await;
    // On a real cluster only the groups checked: kube-client's legacy discovery fails as a whole
    // when one group does not answer, and there some may not (a CRD another test is creating
    // or deleting is listed under /apis before its version is served; an aggregated API whose
    // backend is down answers 503). The embedded server must answer for every group.
    let discovery = Discovery::new(env.client());
    let discovery = if env.is_embedded() {
        discovery
    } else {
        discovery.filter(&BUILTIN_GROUPS)
    };
    let discovery = discovery.run().await.expect("discovery");
    check_builtins(&discovery).await;
}

#[tokio::test]
async fn aggregated_discovery_agrees_with_the_legacy_endpoints() {
    let (env, _ns) = setup().await;
    let discovery = Discovery::new(env.client())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    check_builtins(&discovery).await;
}
