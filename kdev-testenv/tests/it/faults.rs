//! Fault injection (embedded server only): failed requests, latency, restart with state kept.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_testenv::Failure;
use kube_client::Api;
use kube_client::api::{ListParams, PostParams};

use super::{code, configmap, needs_faults, setup};

#[tokio::test]
async fn planned_failures_hit_the_matching_requests_only() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    env.faults()
        .fail(Failure::new(500).verb("create").resource("configmaps").times(2))
        .expect("plan");
    api.list(&ListParams::default()).await.expect("lists are not affected");
    assert_eq!(code(api.create(&PostParams::default(), &configmap("a")).await), 500);
    assert_eq!(code(api.create(&PostParams::default(), &configmap("a")).await), 500);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("the third create succeeds");
}

#[tokio::test]
async fn an_injected_conflict_looks_like_a_real_one() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    env.faults().fail(Failure::new(409).verb("create")).expect("plan");
    match api.create(&PostParams::default(), &configmap("a")).await {
        Err(kube_client::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_restarted_server_keeps_its_objects() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("kept"))
        .await
        .expect("create");
    env.restart().await.expect("restart");
    let got = tokio::time::timeout(Duration::from_secs(20), api.get("kept"))
        .await
        .expect("in time");
    assert!(got.is_ok(), "{got:?}");
}

#[tokio::test]
async fn latency_delays_requests_but_they_succeed() {
    let (env, ns) = setup().await;
    if !needs_faults(&env) {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    env.faults().set_latency(Duration::from_millis(20)).expect("latency");
    api.create(&PostParams::default(), &configmap("slow"))
        .await
        .expect("create");
    env.faults().clear().expect("clear");
}

#[tokio::test]
async fn fault_injection_is_unsupported_on_a_real_cluster() {
    let (env, _ns) = setup().await;
    if env.is_embedded() {
        assert!(env.faults().compact_history().is_ok());
    } else {
        assert_eq!(
            env.faults().compact_history(),
            Err(kdev_testenv::Unsupported::RealCluster)
        );
    }
}
