//! Delegated authentication and authorization: ServiceAccount tokens (TokenRequest), whose they
//! are (TokenReview), and what RBAC lets a user do (SubjectAccessReview and its kin), as a
//! metrics endpoint or an extension API server asks kube-apiserver.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview,
    SelfSubjectAccessReviewSpec, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube_client::Api;
use kube_client::api::{ApiResource, DeleteParams, PostParams};

use super::{causes, code, setup};

async fn service_account(env: &kdev_testenv::TestEnv, ns: &str, name: &str) -> Api<ServiceAccount> {
    let api: Api<ServiceAccount> = Api::namespaced(env.client(), ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &sa)
        .await
        .expect("create the ServiceAccount");
    api
}

async fn token(api: &Api<ServiceAccount>, name: &str, audiences: &[&str]) -> String {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token");
    assert_eq!(issued.spec.and_then(|s| s.expiration_seconds), Some(3600));
    issued.status.and_then(|s| s.token).expect("a token")
}

async fn review(env: &kdev_testenv::TestEnv, token: &str, audiences: &[&str]) -> TokenReview {
    let api: Api<TokenReview> = Api::all(env.client());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.into(),
            audiences: (!audiences.is_empty()).then(|| audiences.iter().map(|a| a.to_string()).collect()),
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &review)
        .await
        .expect("a token review")
}

fn non_resource(user: &str, groups: &[&str], path: &str, verb: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.into()),
                verb: Some(verb.into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A client acting as `user` through impersonation headers, as `kubectl --as` does.
async fn impersonating(env: &kdev_testenv::TestEnv, user: &str) -> kube_client::Client {
    use kube_client::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = match env.kubeconfig_path() {
        Some(path) => Kubeconfig::read_from(path).expect("the kubeconfig file"),
        None => Kubeconfig::from_yaml(env.kubeconfig()).expect("the kubeconfig"),
    };
    let mut config = kube_client::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config");
    config.auth_info.impersonate = Some(user.to_string());
    kube_client::Client::try_from(config).expect("a client")
}

async fn allowed(env: &kdev_testenv::TestEnv, review: &SubjectAccessReview) -> (bool, String) {
    let api: Api<SubjectAccessReview> = Api::all(env.client());
    let status = api
        .create(&PostParams::default(), review)
        .await
        .expect("a subject access review")
        .status
        .expect("status");
    (status.allowed, status.reason.unwrap_or_default())
}

#[tokio::test]
async fn a_service_account_token_reviews_as_its_account_until_the_account_is_gone() {
    let (env, ns) = setup().await;
    let sas = service_account(&env, &ns, "scraper").await;
    let uid = sas.get("scraper").await.expect("get").metadata.uid.expect("uid");
    let token = token(&sas, "scraper", &[]).await;

    let status = review(&env, &token, &[]).await.status.expect("status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:scraper").as_str())
    );
    assert_eq!(user.uid.as_deref(), Some(uid.as_str()));
    let groups = user.groups.unwrap_or_default();
    for g in [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{ns}"),
        "system:authenticated",
    ] {
        assert!(groups.iter().any(|x| x == g), "{g} in {groups:?}");
    }
    let credential = user
        .extra
        .unwrap_or_default()
        .remove("authentication.kubernetes.io/credential-id")
        .unwrap_or_default();
    assert!(credential.iter().any(|c| c.starts_with("JTI=")), "{credential:?}");

    // Not a token, or a token altered: not authenticated, with the reason in `error`.
    for bad in ["not-a-token".to_string(), format!("{token}x")] {
        let status = review(&env, &bad, &[]).await.status.expect("status");
        assert_ne!(status.authenticated, Some(true), "{bad}");
        assert!(status.error.is_some_and(|e| !e.is_empty()));
    }

    // Deleting the account ends its tokens.
    sas.delete("scraper", &DeleteParams::default()).await.expect("delete");
    super::eventually("the token to stop authenticating", || async {
        let status = review(&env, &token, &[]).await.status.expect("status");
        (status.authenticated != Some(true)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_token_is_good_only_for_its_audiences() {
    let (env, ns) = setup().await;
    let sas = service_account(&env, &ns, "aud").await;
    let token = token(&sas, "aud", &["metrics.kdev.dev"]).await;

    let status = review(&env, &token, &["metrics.kdev.dev", "other.kdev.dev"])
        .await
        .status
        .expect("status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(status.audiences, Some(vec!["metrics.kdev.dev".to_string()]));
    let status = review(&env, &token, &["other.kdev.dev"]).await.status.expect("status");
    assert_ne!(status.authenticated, Some(true));
    // Without audiences the API server's own are meant, which this token is not for.
    let status = review(&env, &token, &[]).await.status.expect("status");
    assert_ne!(status.authenticated, Some(true));
}

#[tokio::test]
async fn a_token_request_is_refused_for_a_short_life_or_a_missing_account() {
    let (env, ns) = setup().await;
    let sas = service_account(&env, &ns, "short").await;
    let short = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(599),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        causes(
            "599 s",
            sas.create_token_request("short", &PostParams::default(), &short).await
        ),
        [(
            "spec.expirationSeconds".to_string(),
            "Invalid value: 599: may not specify a duration less than 10 minutes".to_string()
        )]
    );
    let request = TokenRequest::default();
    assert_eq!(
        code(
            sas.create_token_request("nobody", &PostParams::default(), &request)
                .await
        ),
        404
    );
    // Reviews are only created.
    let reviews: Api<TokenReview> = Api::all(env.client());
    assert_eq!(code(reviews.list(&Default::default()).await), 405);
}

#[tokio::test]
async fn access_reviews_decide_by_the_rbac_objects() {
    let (env, ns) = setup().await;
    let suffix: String = (0..6).map(|_| fastrand::lowercase()).collect();
    let name = format!("kdev-metrics-reader-{suffix}");
    let sa_user = format!("system:serviceaccount:{ns}:prom");
    let sa_groups = ["system:serviceaccounts", "system:authenticated"];

    // No binding yet: the account may not read /metrics.
    let metrics = non_resource(&sa_user, &sa_groups, "/metrics", "get");
    assert!(!allowed(&env, &metrics).await.0);

    let roles: Api<ClusterRole> = Api::all(env.client());
    let bindings: Api<ClusterRoleBinding> = Api::all(env.client());
    env.delete_on_drop(&ApiResource::erase::<ClusterRole>(&()), &name);
    env.delete_on_drop(&ApiResource::erase::<ClusterRoleBinding>(&()), &name);
    let mut role = ClusterRole::default();
    role.metadata.name = Some(name.clone());
    role.rules = Some(vec![PolicyRule {
        verbs: vec!["get".into()],
        non_resource_urls: Some(vec!["/metrics".into()]),
        ..Default::default()
    }]);
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: kube_client::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "prom".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the ClusterRoleBinding");

    let (yes, reason) = super::eventually("the binding to take effect", || async {
        let decision = allowed(&env, &metrics).await;
        decision.0.then_some(decision)
    })
    .await;
    assert!(yes);
    assert!(reason.contains(&name), "{reason}");
    // Only what the role grants: another verb, another path, another account.
    assert!(
        !allowed(&env, &non_resource(&sa_user, &sa_groups, "/metrics", "put"))
            .await
            .0
    );
    assert!(
        !allowed(&env, &non_resource(&sa_user, &sa_groups, "/debug", "get"))
            .await
            .0
    );
    let other = format!("system:serviceaccount:{ns}:other");
    assert!(
        !allowed(&env, &non_resource(&other, &sa_groups, "/metrics", "get"))
            .await
            .0
    );

    // A Role in the namespace, bound to a user, checked with a local review.
    let role_api: Api<Role> = Api::namespaced(env.client(), &ns);
    let mut reader = Role::default();
    reader.metadata.name = Some("cm-reader".into());
    reader.rules = Some(vec![PolicyRule {
        verbs: vec!["get".into(), "list".into()],
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        ..Default::default()
    }]);
    role_api
        .create(&PostParams::default(), &reader)
        .await
        .expect("create the Role");
    let rb_api: Api<RoleBinding> = Api::namespaced(env.client(), &ns);
    let rb = RoleBinding {
        metadata: kube_client::api::ObjectMeta {
            name: Some("cm-reader".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "cm-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: format!("kdev-alice-{suffix}"),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    rb_api
        .create(&PostParams::default(), &rb)
        .await
        .expect("create the RoleBinding");
    let local = |verb: &str, resource: &str| LocalSubjectAccessReview {
        metadata: kube_client::api::ObjectMeta {
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec: SubjectAccessReviewSpec {
            user: Some(format!("kdev-alice-{suffix}")),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.clone()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    };
    let locals: Api<LocalSubjectAccessReview> = Api::namespaced(env.client(), &ns);
    let decide = |review: LocalSubjectAccessReview| {
        let locals = locals.clone();
        async move {
            let created = locals
                .create(&PostParams::default(), &review)
                .await
                .expect("a local review");
            created.status.expect("status").allowed
        }
    };
    super::eventually("the role binding to take effect", || async {
        decide(local("list", "configmaps")).await.then_some(())
    })
    .await;
    assert!(!decide(local("delete", "configmaps")).await);
    assert!(!decide(local("get", "secrets")).await);

    // `kubectl auth can-i --as`: a self review made while impersonating the account answers for it.
    let as_prom = impersonating(&env, &sa_user).await;
    let as_other = impersonating(&env, &other).await;
    for (client, expected) in [(as_prom, true), (as_other, false)] {
        let selves: Api<SelfSubjectAccessReview> = Api::all(client);
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                non_resource_attributes: metrics.spec.non_resource_attributes.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let status = selves
            .create(&PostParams::default(), &review)
            .await
            .expect("a self review")
            .status;
        assert_eq!(status.expect("status").allowed, expected);
    }

    // The test's own user, which administers the cluster, may do anything.
    let selves: Api<SelfSubjectAccessReview> = Api::all(env.client());
    let mine = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/metrics".into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let status = selves
        .create(&PostParams::default(), &mine)
        .await
        .expect("a self review")
        .status;
    assert!(status.expect("status").allowed);

    // A review must name a user or a group, and exactly one kind of attributes.
    let api: Api<SubjectAccessReview> = Api::all(env.client());
    let mut nobody = metrics.clone();
    nobody.spec.user = None;
    nobody.spec.groups = None;
    assert_eq!(code(api.create(&PostParams::default(), &nobody).await), 422);
    let mut neither = metrics.clone();
    neither.spec.non_resource_attributes = None;
    assert_eq!(code(api.create(&PostParams::default(), &neither).await), 422);
}
