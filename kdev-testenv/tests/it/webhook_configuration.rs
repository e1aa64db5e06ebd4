//! Validating- and MutatingWebhookConfigurations are defaulted and validated as kube-apiserver's
//! admissionregistration.k8s.io/v1 does. The configurations match only a group no server serves,
//! so they are safe on a shared real cluster.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use kube_client::Api;
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

use super::{causes, setup};
use kdev_testenv::TestEnv;

fn hook(name: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": { "service": { "namespace": "default", "name": "kdev-nowhere", "path": "/validate" } },
        "rules": [{ "operations": ["CREATE"], "apiGroups": ["nothing.kdev.invalid"], "apiVersions": ["v1"], "resources": ["nothings"] }],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    })
}

fn api(env: &TestEnv, mutating: bool) -> (Api<DynamicObject>, ApiResource) {
    let ar = if mutating {
        ApiResource::erase::<MutatingWebhookConfiguration>(&())
    } else {
        ApiResource::erase::<ValidatingWebhookConfiguration>(&())
    };
    (Api::all_with(env.client(), &ar), ar)
}

fn config(ar: &ApiResource, name: &str, webhooks: Vec<Value>) -> DynamicObject {
    let mut obj = DynamicObject::new(name, ar);
    obj.data = json!({ "webhooks": webhooks });
    obj
}

#[tokio::test]
async fn webhook_configurations_get_kube_apiserver_v1_defaults() {
    let (env, ns) = setup().await;
    for mutating in [false, true] {
        let (api, ar) = api(&env, mutating);
        let name = format!("{ns}-defaults");
        env.delete_on_drop(&ar, &name);
        let created = api
            .create(
                &PostParams::default(),
                &config(&ar, &name, vec![hook("a.kdev.example.com")]),
            )
            .await
            .expect("a configuration with the required fields only");
        let h = &created.data["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        if mutating {
            assert_eq!(h["reinvocationPolicy"], "Never");
        } else {
            assert!(h.get("reinvocationPolicy").is_none(), "{h}");
        }

        // An update is defaulted too.
        let mut update = created.clone();
        update.data["webhooks"] = json!([hook("a.kdev.example.com")]);
        let updated = api
            .replace(&name, &PostParams::default(), &update)
            .await
            .expect("update");
        assert_eq!(updated.data["webhooks"][0]["timeoutSeconds"], 10);
        assert_eq!(updated.data["webhooks"][0]["clientConfig"]["service"]["port"], 443);
        api.delete(&name, &DeleteParams::default()).await.expect("delete");
    }
}

#[tokio::test]
async fn invalid_webhook_configurations_are_refused_with_kube_apiserver_causes() {
    let (env, ns) = setup().await;
    type Change = fn(&mut Value);
    // (what, change to a valid webhook, expected field, expected message when it is asserted)
    let cases: Vec<(&str, Change, &str, Option<&str>)> = vec![
        (
            "two-segment name",
            |h| h["name"] = json!("kdev.example"),
            "webhooks[0].name",
            Some("Invalid value: \"kdev.example\": should be a domain with at least three segments separated by dots"),
        ),
        (
            "no sideEffects",
            |h| {
                h.as_object_mut().map(|m| m.remove("sideEffects"));
            },
            "webhooks[0].sideEffects",
            Some("Required value: must specify one of None, NoneOnDryRun"),
        ),
        (
            "sideEffects Some",
            |h| h["sideEffects"] = json!("Some"),
            "webhooks[0].sideEffects",
            Some("Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""),
        ),
        (
            "no admissionReviewVersions",
            |h| {
                h.as_object_mut().map(|m| m.remove("admissionReviewVersions"));
            },
            "webhooks[0].admissionReviewVersions",
            Some("Required value: must specify one of v1, v1beta1"),
        ),
        (
            "unknown admissionReviewVersions",
            |h| h["admissionReviewVersions"] = json!(["v2"]),
            "webhooks[0].admissionReviewVersions",
            None,
        ),
        (
            "timeout 31",
            |h| h["timeoutSeconds"] = json!(31),
            "webhooks[0].timeoutSeconds",
            Some("Invalid value: 31: the timeout value must be between 1 and 30 seconds"),
        ),
        (
            "timeout 0",
            |h| h["timeoutSeconds"] = json!(0),
            "webhooks[0].timeoutSeconds",
            Some("Invalid value: 0: the timeout value must be between 1 and 30 seconds"),
        ),
        (
            "url and service",
            |h| h["clientConfig"]["url"] = json!("https://example.com/validate"),
            "webhooks[0].clientConfig",
            Some("Required value: exactly one of url or service is required"),
        ),
        (
            "http url",
            |h| h["clientConfig"] = json!({ "url": "http://example.com/validate" }),
            "webhooks[0].clientConfig.url",
            Some(
                "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            ),
        ),
        (
            "url with a query",
            |h| h["clientConfig"] = json!({ "url": "https://example.com/validate?x=1" }),
            "webhooks[0].clientConfig.url",
            Some("Invalid value: \"x=1\": query parameters are not permitted in the URL"),
        ),
        (
            "url with a fragment",
            |h| h["clientConfig"] = json!({ "url": "https://example.com/validate#x" }),
            "webhooks[0].clientConfig.url",
            Some("Invalid value: \"x\": fragments are not permitted in the URL"),
        ),
        (
            "url with user information",
            |h| h["clientConfig"] = json!({ "url": "https://me@example.com/validate" }),
            "webhooks[0].clientConfig.url",
            Some("Invalid value: \"me\": user information is not permitted in the URL"),
        ),
        (
            "service port 0",
            |h| h["clientConfig"]["service"]["port"] = json!(0),
            "webhooks[0].clientConfig.service.port",
            Some("Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive"),
        ),
        (
            "relative service path",
            |h| h["clientConfig"]["service"]["path"] = json!("validate"),
            "webhooks[0].clientConfig.service.path",
            Some("Invalid value: \"validate\": must start with a '/'"),
        ),
        (
            "unknown operation",
            |h| h["rules"][0]["operations"] = json!(["PATCH"]),
            "webhooks[0].rules[0].operations[0]",
            Some(
                "Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
            ),
        ),
        (
            "no resources",
            |h| h["rules"][0]["resources"] = json!([]),
            "webhooks[0].rules[0].resources",
            Some("Required value"),
        ),
        (
            "unknown scope",
            |h| h["rules"][0]["scope"] = json!("Global"),
            "webhooks[0].rules[0].scope",
            Some("Unsupported value: \"Global\": supported values: \"*\", \"Cluster\", \"Namespaced\""),
        ),
        (
            "unknown failurePolicy",
            |h| h["failurePolicy"] = json!("Retry"),
            "webhooks[0].failurePolicy",
            Some("Unsupported value: \"Retry\": supported values: \"Fail\", \"Ignore\""),
        ),
        (
            "unknown matchPolicy",
            |h| h["matchPolicy"] = json!("Loose"),
            "webhooks[0].matchPolicy",
            Some("Unsupported value: \"Loose\": supported values: \"Equivalent\", \"Exact\""),
        ),
        (
            "selector In without values",
            |h| h["objectSelector"] = json!({ "matchExpressions": [{ "key": "tier", "operator": "In" }] }),
            "webhooks[0].objectSelector.matchExpressions[0].values",
            Some("Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        ),
        (
            "duplicate match condition names",
            |h| {
                h["matchConditions"] =
                    json!([{ "name": "a", "expression": "true" }, { "name": "a", "expression": "true" }])
            },
            "webhooks[0].matchConditions[1].name",
            Some("Duplicate value: \"a\""),
        ),
        (
            "match condition that does not compile",
            |h| h["matchConditions"] = json!([{ "name": "a", "expression": "object.metadata.(" }]),
            "webhooks[0].matchConditions[0].expression",
            None,
        ),
    ];
    for mutating in [false, true] {
        let (api, ar) = api(&env, mutating);
        for (i, (what, change, field, message)) in cases.iter().enumerate() {
            let mut h = hook("a.kdev.example.com");
            change(&mut h);
            let name = format!("{ns}-invalid-{i}");
            env.delete_on_drop(&ar, &name);
            let found = causes(
                what,
                api.create(&PostParams::default(), &config(&ar, &name, vec![h])).await,
            );
            assert!(found.iter().any(|(f, _)| f == field), "{what}: {found:?}");
            if let Some(message) = message {
                assert!(
                    found.iter().any(|(f, m)| f == field && m == message),
                    "{what}: {found:?}"
                );
            }
        }
        let (f, m) = (
            "webhooks[0].reinvocationPolicy",
            "Unsupported value: \"Always\": supported values: \"IfNeeded\", \"Never\"",
        );
        if mutating {
            let mut h = hook("a.kdev.example.com");
            h["reinvocationPolicy"] = json!("Always");
            let name = format!("{ns}-invalid-reinvocation");
            env.delete_on_drop(&ar, &name);
            let found = causes(
                "reinvocation",
                api.create(&PostParams::default(), &config(&ar, &name, vec![h])).await,
            );
            assert_eq!(found, vec![(f.to_string(), m.to_string())]);
        }

        // Names are unique within a configuration, and an update is validated as a create.
        let name = format!("{ns}-names");
        env.delete_on_drop(&ar, &name);
        let two = vec![hook("a.kdev.example.com"), hook("a.kdev.example.com")];
        let found = causes(
            "duplicate",
            api.create(&PostParams::default(), &config(&ar, &name, two)).await,
        );
        assert_eq!(
            found,
            vec![(
                "webhooks[1].name".to_string(),
                "Duplicate value: \"a.kdev.example.com\"".to_string()
            )]
        );
        let mut created = api
            .create(
                &PostParams::default(),
                &config(&ar, &name, vec![hook("a.kdev.example.com")]),
            )
            .await
            .expect("a valid configuration");
        created.data["webhooks"][0]["timeoutSeconds"] = json!(60);
        let found = causes("update", api.replace(&name, &PostParams::default(), &created).await);
        assert_eq!(
            found,
            vec![(
                "webhooks[0].timeoutSeconds".to_string(),
                "Invalid value: 60: the timeout value must be between 1 and 30 seconds".to_string()
            )]
        );
        api.delete(&name, &DeleteParams::default()).await.expect("delete");
    }
}
