//! batch/v1 Jobs and CronJobs: the defaults and generated selector kube-apiserver gives them, the
//! validation operators meet, a Job's orphaning default delete, discovery and tables.
//!
//! Every Job here is suspended (and every CronJob too, but where a dry run shows a default), so
//! that on a real cluster the Job and CronJob controllers create no pods or Jobs; their status,
//! which those controllers write, is never asserted.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ConfigMap;
use kdev_testenv::{Answer, TestEnv};
use kube_client::Api;
use kube_client::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{causes, eventually, needs_controllers, release, setup};

const ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set \
    propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

/// A suspended Job running one busybox container, with `spec` merged over the defaults.
fn job(name: &str, spec: Value) -> Job {
    let mut body = json!({
        "metadata": { "name": name },
        "spec": {
            "suspend": true,
            "template": {
                "metadata": { "labels": { "app": "batch" } },
                "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox:1.36" }] },
            },
        },
    });
    merge(&mut body["spec"], spec);
    serde_json::from_value(body).expect("a job")
}

/// A suspended CronJob, with `spec` merged over the defaults.
fn cronjob(name: &str, spec: Value) -> CronJob {
    let mut body = json!({
        "metadata": { "name": name },
        "spec": {
            "schedule": "*/5 * * * *",
            "suspend": true,
            "jobTemplate": { "spec": { "template": { "spec": {
                "restartPolicy": "OnFailure", "containers": [{ "name": "c", "image": "busybox:1.36" }] } } } },
        },
    });
    merge(&mut body["spec"], spec);
    serde_json::from_value(body).expect("a cronjob")
}

/// RFC 7386 merge of `patch` into `target`.
fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in p {
                if v.is_null() {
                    if let Some(m) = target.as_object_mut() {
                        m.remove(&k);
                    }
                } else {
                    merge(&mut target[k.as_str()], v);
                }
            }
        }
        other => *target = other,
    }
}

fn value<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("json")
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: None,
    }
}

#[tokio::test]
async fn a_job_gets_its_defaults_and_a_generated_selector() {
    let (env, ns) = setup().await;
    let jobs: Api<Job> = Api::namespaced(env.client(), &ns);
    let created = value(
        &jobs
            .create(&PostParams::default(), &job("pi", json!({})))
            .await
            .expect("create"),
    );
    let uid = created["metadata"]["uid"].as_str().expect("a uid").to_string();
    let spec = &created["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["suspend"], true);
    assert_eq!(
        spec["selector"],
        json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": uid } })
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({ "app": "batch", "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
                "controller-uid": uid, "job-name": "pi" })
    );
    // The Job takes its template's labels as they were sent.
    assert_eq!(created["metadata"]["labels"], json!({ "app": "batch" }));
    assert_eq!(created["metadata"]["generation"], 1);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    let container = &pod["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");

    // A dry run shows the defaults of what would run at once: not suspended; a Job without labels
    // gets its template's, the generated ones included.
    let mut bare = value(&job("bare", json!({ "suspend": null })));
    bare["spec"]["template"]["metadata"] = json!({});
    let bare: Job = serde_json::from_value(bare).expect("a job");
    let shown = value(&jobs.create(&dry_run(), &bare).await.expect("dry run"));
    assert_eq!(shown["spec"]["suspend"], false);
    let uid = shown["metadata"]["uid"].as_str().expect("a uid");
    let generated = json!({ "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "bare",
                            "controller-uid": uid, "job-name": "bare" });
    assert_eq!(shown["spec"]["template"]["metadata"]["labels"], generated);
    assert_eq!(shown["metadata"]["labels"], generated);

    // A manual selector is the client's: nothing is generated.
    let manual = job(
        "manual",
        json!({ "manualSelector": true, "selector": { "matchLabels": { "app": "batch" } } }),
    );
    let shown = value(&jobs.create(&dry_run(), &manual).await.expect("manual selector"));
    assert_eq!(shown["spec"]["selector"], json!({ "matchLabels": { "app": "batch" } }));
    assert_eq!(
        shown["spec"]["template"]["metadata"]["labels"],
        json!({ "app": "batch" })
    );
    let failing = json!({ "podFailurePolicy": { "rules": [{ "action": "FailJob", "onExitCodes": { "operator": "In", "values": [42] } }] } });
    let shown = value(
        &jobs
            .create(&dry_run(), &job("pfp", failing))
            .await
            .expect("pod failure policy"),
    );
    assert_eq!(shown["spec"]["podReplacementPolicy"], "Failed");
}

#[tokio::test]
async fn a_job_pod_template_must_not_restart_always() {
    let (env, ns) = setup().await;
    let jobs: Api<Job> = Api::namespaced(env.client(), &ns);
    let required = (
        "spec.template.spec.restartPolicy".to_string(),
        r#"Required value: valid values: "OnFailure", "Never""#.to_string(),
    );
    for policy in [Value::Null, json!("Always")] {
        let j = job("pi", json!({ "template": { "spec": { "restartPolicy": policy } } }));
        let found = causes("restartPolicy", jobs.create(&PostParams::default(), &j).await);
        assert!(found.contains(&required), "{policy}: {found:?}");
    }
    let j = job("pi", json!({ "template": { "spec": { "containers": [] } } }));
    let found = causes("no containers", jobs.create(&PostParams::default(), &j).await);
    assert!(
        found.contains(&("spec.template.spec.containers".into(), "Required value".into())),
        "{found:?}"
    );
    let j = job("pi", json!({ "backoffLimit": -1 }));
    assert_eq!(
        causes("backoffLimit", jobs.create(&PostParams::default(), &j).await),
        [(
            "spec.backoffLimit".to_string(),
            "Invalid value: -1: must be greater than or equal to 0".to_string()
        )]
    );
    let j = job("pi", json!({ "completionMode": "Sometimes" }));
    let found = causes("completionMode", jobs.create(&PostParams::default(), &j).await);
    assert!(
        found.contains(&(
            "spec.completionMode".into(),
            r#"Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed""#.into()
        )),
        "{found:?}"
    );
    let j = job("pi", json!({ "manualSelector": true }));
    let found = causes("manual selector", jobs.create(&PostParams::default(), &j).await);
    assert!(
        found.contains(&("spec.selector".into(), "Required value".into())),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_job_spec_is_immutable_where_kube_apiserver_says_so() {
    let (env, ns) = setup().await;
    let jobs: Api<Job> = Api::namespaced(env.client(), &ns);
    jobs.create(&PostParams::default(), &job("pi", json!({})))
        .await
        .expect("create");
    let patch = |body: Value| {
        let jobs = jobs.clone();
        async move { jobs.patch("pi", &PatchParams::default(), &Patch::Merge(&body)).await }
    };
    let found = causes("completions", patch(json!({ "spec": { "completions": 2 } })).await);
    assert!(
        found.contains(&("spec.completions".into(), "Invalid value: 2: field is immutable".into())),
        "{found:?}"
    );
    let image =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "busybox:1.37" }] } } } });
    let found = causes("image", patch(image).await);
    assert!(
        found
            .iter()
            .any(|(f, m)| f == "spec.template" && m.ends_with(": field is immutable")),
        "{found:?}"
    );
    let selector = json!({ "spec": { "selector": { "matchLabels": { "app": "batch" } } } });
    let found = causes("selector", patch(selector).await);
    assert!(
        found
            .iter()
            .any(|(f, m)| f == "spec.selector" && m.ends_with(": field is immutable")),
        "{found:?}"
    );
    // A suspended Job that never started may change where its pods would run, and a spec change
    // counts as a new generation; a label change does not.
    let placed = patch(json!({ "spec": { "template": { "spec": { "nodeSelector": { "disk": "ssd" } } } } }))
        .await
        .expect("a suspended job's node selector changes");
    assert_eq!(placed.metadata.generation, Some(2));
    let labelled = patch(json!({ "metadata": { "labels": { "team": "a" } } }))
        .await
        .expect("labels change");
    assert_eq!(labelled.metadata.generation, Some(2));
    let wider = patch(json!({ "spec": { "parallelism": 3 } }))
        .await
        .expect("parallelism changes");
    assert_eq!(wider.metadata.generation, Some(3));
    assert_eq!(value(&wider)["spec"]["parallelism"], 3);
}

#[tokio::test]
async fn a_job_status_is_written_through_its_subresource_only() {
    let (env, ns) = setup().await;
    let jobs: Api<Job> = Api::namespaced(env.client(), &ns);
    jobs.create(&PostParams::default(), &job("pi", json!({})))
        .await
        .expect("create");
    let written = jobs
        .patch(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "succeeded": 5 } })),
        )
        .await
        .expect("the main resource ignores status");
    assert_ne!(value(&written)["status"]["succeeded"], 5);
    let negative = jobs
        .patch_status(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "active": -1 } })),
        )
        .await;
    let found = causes("negative active", negative);
    assert!(
        found.contains(&(
            "status.active".into(),
            "Invalid value: -1: must be greater than or equal to 0".into()
        )),
        "{found:?}"
    );
}

/// A ConfigMap that `owner` owns.
fn owned_by(name: &str, owner: &Job) -> ConfigMap {
    let mut cm = super::configmap(name);
    cm.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job", "name": owner.metadata.name.clone().unwrap_or_default(),
            "uid": owner.metadata.uid.clone().unwrap_or_default(),
        }))
        .expect("an owner reference"),
    ]);
    cm
}

/// A suspended Job `pi` with a ConfigMap `data` it owns: (jobs, configmaps).
async fn job_with_a_dependent(env: &TestEnv, ns: &str) -> (Api<Job>, Api<ConfigMap>) {
    let jobs: Api<Job> = Api::namespaced(env.client(), ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), ns);
    let owner = jobs
        .create(&PostParams::default(), &job("pi", json!({})))
        .await
        .expect("create");
    configmaps
        .create(&PostParams::default(), &owned_by("data", &owner))
        .await
        .expect("dependent");
    (jobs, configmaps)
}

/// A raw DELETE of the Job `name` (with `query` appended), to read the warnings it answers with.
async fn delete_job(env: &TestEnv, ns: &str, name: &str, query: &str) -> Answer {
    let request = http::Request::delete(format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}{query}"))
        .body(Vec::new())
        .expect("request");
    let answer = env.send(request).await.expect("send");
    assert_eq!(answer.status, 200);
    answer
}

#[tokio::test]
async fn a_job_delete_that_names_no_policy_orphans_its_dependents_with_a_warning() {
    let (env, ns) = setup().await;
    let (jobs, configmaps) = job_with_a_dependent(&env, &ns).await;
    let answer = delete_job(&env, &ns, "pi", "").await;
    assert_eq!(answer.warnings(), [ORPHAN_WARNING]);
    let body = answer.json();
    assert_eq!(body["kind"], "Job");
    assert_eq!(body["metadata"]["finalizers"], json!(["orphan"]));
    assert!(body["metadata"]["deletionTimestamp"].is_string(), "{body}");
    if needs_controllers(&env).await {
        eventually("the job is gone", || {
            let jobs = jobs.clone();
            async move { jobs.get_opt("pi").await.expect("get").is_none().then_some(()) }
        })
        .await;
        let kept = eventually("the dependent is orphaned", || {
            let configmaps = configmaps.clone();
            async move {
                let cm = configmaps.get("data").await.expect("the dependent is kept");
                cm.metadata.owner_references.is_none().then_some(cm)
            }
        })
        .await;
        assert_eq!(kept.metadata.name.as_deref(), Some("data"));
    } else {
        release(&jobs, "pi").await;
    }
}

#[tokio::test]
async fn a_job_deleted_in_the_background_takes_its_dependents_and_no_warning() {
    let (env, ns) = setup().await;
    let (jobs, configmaps) = job_with_a_dependent(&env, &ns).await;
    let answer = delete_job(&env, &ns, "pi", "?propagationPolicy=Background").await;
    assert!(answer.warnings().is_empty(), "{:?}", answer.warnings());
    assert!(jobs.get_opt("pi").await.expect("get").is_none());
    if needs_controllers(&env).await {
        eventually("the dependent is collected", || {
            let configmaps = configmaps.clone();
            async move { configmaps.get_opt("data").await.expect("get").is_none().then_some(()) }
        })
        .await;
    }
    // An explicit Orphan policy is silent too.
    jobs.create(&PostParams::default(), &job("quiet", json!({})))
        .await
        .expect("create");
    let answer = delete_job(&env, &ns, "quiet", "?propagationPolicy=Orphan").await;
    assert!(answer.warnings().is_empty(), "{:?}", answer.warnings());
    if !needs_controllers(&env).await {
        release(&jobs, "quiet").await;
    }
}

#[tokio::test]
async fn a_cronjob_gets_its_defaults() {
    let (env, ns) = setup().await;
    let cronjobs: Api<CronJob> = Api::namespaced(env.client(), &ns);
    let created = value(
        &cronjobs
            .create(&PostParams::default(), &cronjob("hello", json!({})))
            .await
            .expect("create"),
    );
    let spec = &created["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert_eq!(created["metadata"]["generation"], 1);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["containers"][0]["terminationMessagePolicy"], "File");
    let shown = value(
        &cronjobs
            .create(
                &dry_run(),
                &cronjob(
                    "later",
                    json!({ "suspend": null, "schedule": "@hourly", "timeZone": "Europe/Paris" }),
                ),
            )
            .await
            .expect("dry run"),
    );
    assert_eq!(shown["spec"]["suspend"], false);
    let changed = cronjobs
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "schedule": "0 * * * *" } })),
        )
        .await
        .expect("schedule changes");
    assert_eq!(changed.metadata.generation, Some(2));
}

#[tokio::test]
async fn a_cronjob_schedule_and_time_zone_are_validated() {
    let (env, ns) = setup().await;
    let cronjobs: Api<CronJob> = Api::namespaced(env.client(), &ns);
    let cases = [
        (json!({ "schedule": "" }), "spec.schedule", "Required value".to_string()),
        (
            json!({ "schedule": "not a cron" }),
            "spec.schedule",
            r#"Invalid value: "not a cron": expected exactly 5 fields, found 3: [not a cron]"#.into(),
        ),
        (
            json!({ "schedule": "61 * * * *" }),
            "spec.schedule",
            r#"Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#.into(),
        ),
        (
            json!({ "schedule": "@fortnightly" }),
            "spec.schedule",
            r#"Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly"#.into(),
        ),
        (
            json!({ "schedule": "TZ=UTC */5 * * * *" }),
            "spec.schedule",
            r#"Invalid value: "TZ=UTC */5 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#
                .into(),
        ),
        (
            json!({ "timeZone": "Mars/Olympus" }),
            "spec.timeZone",
            r#"Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#.into(),
        ),
        (
            json!({ "concurrencyPolicy": "Sometimes" }),
            "spec.concurrencyPolicy",
            r#"Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#.into(),
        ),
        (
            json!({ "jobTemplate": { "spec": { "template": { "spec": { "restartPolicy": "Always" } } } } }),
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            r#"Required value: valid values: "OnFailure", "Never""#.into(),
        ),
    ];
    for (spec, field, message) in cases {
        let found = causes(
            &spec.to_string(),
            cronjobs
                .create(&PostParams::default(), &cronjob("hello", spec.clone()))
                .await,
        );
        assert!(
            found.contains(&(field.to_string(), message.clone())),
            "{spec}: {found:?}"
        );
    }
    let long = "c".repeat(53);
    let found = causes(
        "a long name",
        cronjobs
            .create(&PostParams::default(), &cronjob(&long, json!({})))
            .await,
    );
    assert!(
        found.contains(&(
            "metadata.name".into(),
            format!(r#"Invalid value: "{long}": must be no more than 52 characters"#)
        )),
        "{found:?}"
    );
}

#[tokio::test]
async fn jobs_and_cronjobs_are_discovered_with_their_names() {
    let (env, _ns) = setup().await;
    let request = http::Request::get("/apis/batch/v1").body(Vec::new()).expect("request");
    let list = env.send(request).await.expect("send").json();
    let resource = |name: &str| {
        list["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {list}"))
    };
    let jobs = resource("jobs");
    assert_eq!(
        (&jobs["kind"], &jobs["namespaced"], &jobs["categories"]),
        (&json!("Job"), &json!(true), &json!(["all"]))
    );
    assert!(jobs.get("shortNames").is_none(), "{jobs}");
    assert_eq!(resource("jobs/status")["kind"], "Job");
    let cronjobs = resource("cronjobs");
    assert_eq!(
        (&cronjobs["kind"], &cronjobs["shortNames"], &cronjobs["categories"]),
        (&json!("CronJob"), &json!(["cj"]), &json!(["all"]))
    );
    assert_eq!(resource("cronjobs/status")["kind"], "CronJob");
}

#[tokio::test]
async fn job_and_cronjob_tables_have_kubectl_s_columns() {
    let (env, ns) = setup().await;
    let jobs: Api<Job> = Api::namespaced(env.client(), &ns);
    let cronjobs: Api<CronJob> = Api::namespaced(env.client(), &ns);
    jobs.create(&PostParams::default(), &job("pi", json!({})))
        .await
        .expect("job");
    cronjobs
        .create(&PostParams::default(), &cronjob("hello", json!({})))
        .await
        .expect("cronjob");
    let table = |plural: &str| {
        let request = http::Request::get(format!("/apis/batch/v1/namespaces/{ns}/{plural}"))
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(Vec::new())
            .expect("request");
        let env = &env;
        async move { env.send(request).await.expect("send").json() }
    };
    let columns = |t: &Value| -> Vec<(String, i64)> {
        t["columnDefinitions"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_string(),
                            c["priority"].as_i64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let named = |cols: &[(&str, i64)]| cols.iter().map(|(n, p)| (n.to_string(), *p)).collect::<Vec<_>>();
    let t = table("jobs").await;
    assert_eq!(
        columns(&t),
        named(&[
            ("Name", 0),
            ("Status", 0),
            ("Completions", 0),
            ("Duration", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]),
        "{t}"
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[2], &cells[3]),
        (&json!("pi"), &json!("0/1"), &json!(""))
    );
    assert_eq!((&cells[5], &cells[6]), (&json!("c"), &json!("busybox:1.36")));
    let t = table("cronjobs").await;
    assert_eq!(
        columns(&t),
        named(&[
            ("Name", 0),
            ("Schedule", 0),
            ("Timezone", 0),
            ("Suspend", 0),
            ("Active", 0),
            ("Last Schedule", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]),
        "{t}"
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(
        cells.as_array().map(|c| c[..6].to_vec()),
        Some(vec![
            json!("hello"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("True"),
            json!(0),
            json!("<none>")
        ])
    );
    assert_eq!(cells[9], "<none>");
}
