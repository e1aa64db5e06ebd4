//! Every lesson runs, succeeds and shows what its page says it shows.

use std::process::Command;

mod crd;
mod crd_versions;
mod crdgen;
mod feature_gates;
mod operator_patterns;
mod webhooks;

/// Runs a lesson that needs no cluster or starts the embedded API server itself. `KUBECONFIG`
/// and the in-cluster variables are removed, so a lesson that would otherwise connect to the
/// cluster they name (the operator quickstart) runs on the embedded server.
fn run(bin: &str) -> String {
    let output = Command::new(bin)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("the lesson starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{bin} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.trim_end().ends_with("lesson complete"), "{stdout}");
    stdout
}

/// Runs a lesson that works on a real cluster too: on the embedded API server by default, on the
/// cluster named by `KDEV_TEST_KUBECONFIG` when it is set. Returns its output, which must end in
/// "lesson complete", and whether it ran on a real cluster.
fn run_anywhere(bin: &str) -> (String, bool) {
    run_anywhere_with(bin, &[], &[])
}

/// [`run_anywhere`] with command-line arguments and environment variables.
fn run_anywhere_with(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> (String, bool) {
    let mut cmd = Command::new(bin);
    clear_lesson_features(&mut cmd);
    cmd.args(args).envs(envs.iter().copied());
    let on_cluster = match std::env::var("KDEV_TEST_KUBECONFIG") {
        Ok(path) if !path.is_empty() => {
            cmd.env("KUBECONFIG", path);
            true
        }
        _ => {
            cmd.env_remove("KUBECONFIG").env_remove("KUBERNETES_SERVICE_HOST");
            false
        }
    };
    let output = cmd.output().expect("the lesson starts");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{bin} failed:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.trim_end().ends_with("lesson complete"), "{out}");
    (out, on_cluster)
}

/// Removes the `LESSON_FEATURE_*` variables of the shell running the tests: the
/// `feature_gates` lesson would take them as its gates' values.
fn clear_lesson_features(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LESSON_FEATURE_") {
            cmd.env_remove(name);
        }
    }
}

/// Says, when the tests are pointed at a real cluster, why this lesson still runs on the
/// embedded API server.
fn embedded_only(why: &str) {
    if std::env::var_os("KDEV_TEST_KUBECONFIG").is_some_and(|p| !p.is_empty()) {
        println!("this lesson runs on the embedded API server, not on KDEV_TEST_KUBECONFIG's cluster: {why}");
    }
}

fn assert_shows(stdout: &str, lines: &[&str]) {
    for line in lines {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn the_workqueue_lesson_shows_dedup_requeue_delays_backoff_priorities_and_metrics() {
    let out = run(env!("CARGO_BIN_EXE_workqueue"));
    assert_shows(
        &out,
        &[
            "added default/web 3 times and default/db once: 2 keys ready",
            "after done: 1 ready — the change is not lost",
            "became ready after 20 ms (asked 60 ms, then 20 ms)",
            "attempt 1 failed, retried after 5 ms; requeues so far: 1",
            "attempt 4 failed, retried after 40 ms; requeues so far: 4",
            "forget resets the backoff (requeues: 0)",
            "order: default/changed, default/listed-0, default/listed-1, default/listed-2",
            "3 workers handled 10 reconciles for 30 adds of 10 keys",
            r#"workqueue_adds_total{name="lesson",controller="lesson"} 2"#,
            "3 adds, 2 counted",
        ],
    );
}

#[test]
fn the_delta_fifo_lesson_shows_histories_tombstones_resync_and_the_real_fifo() {
    let out = run(env!("CARGO_BIN_EXE_delta_fifo"));
    assert_shows(
        &out,
        &[
            "has_synced before popping: false",
            "has_synced after popping the whole list: true",
            "    - Updated (resourceVersion 12)\n    - Updated (resourceVersion 14)",
            "Deleted as a DeletedFinalStateUnknown tombstone (last known resourceVersion 11)",
            "    - Sync (resourceVersion 17)",
            "  pop default/a Updated (resourceVersion 4)",
        ],
    );
    assert_eq!(
        out.matches("Deleted (resourceVersion 15)").count(),
        1,
        "the two deletes collapsed"
    );
}

#[test]
fn the_indexer_lesson_shows_indexes_zero_copy_reads_and_replace() {
    let out = run(env!("CARGO_BIN_EXE_indexer"));
    assert_shows(
        &out,
        &[
            "two readers, same object in memory: true",
            r#"on node-a: ["shop/db-0", "shop/web-0"]"#,
            r#"on node-c now: ["shop/db-0"]"#,
            r#"keys: ["shop/web-0", "shop/web-2"]"#,
            r#"error: index "zone" does not exist"#,
        ],
    );
}

#[test]
fn the_client_basics_lesson_shows_discovery_typed_raw_dynamic_and_watch() {
    let (stdout, _) = run_anywhere(env!("CARGO_BIN_EXE_client_basics"));
    assert_shows(
        &stdout,
        &[
            "GVK apps/v1/Deployment is served as GVR apps/v1/deployments",
            "cached discovery resolves apps/v1 Deployment to the plural \"deployments\" without a request",
            "discovery run again resolves kind Note to the resource \"notes\"",
            "updated the image to nginx:1.27 (generation Some(2): spec changes bump it)",
            "pods with tier=front: web-1, web-2",
            "-> kind \"Namespace\", phase \"Active\"",
            "dynamic object first says \"hello, dynamic world\"",
            "ADDED greeting",
            "MODIFIED greeting (hello=kdev)",
        ],
    );
}

#[test]
fn the_reflector_lesson_shows_list_watch_resume_and_relist() {
    embedded_only("it injects faults (a dropped watch, 410 Gone), which a real cluster cannot do");
    let out = run(env!("CARGO_BIN_EXE_reflector"));
    assert_shows(
        &out,
        &[
            "after the first sync: cache = [alpha, beta, kube-root-ca.crt], lists so far: 1",
            "a create arrives through the watch: cache = [alpha, beta, gamma, kube-root-ca.crt], lists so far: 1",
            "after the drop and a delete: cache = [beta, gamma, kube-root-ca.crt], lists so far: 1, watches opened: 2",
            "after 410 Gone: cache = [beta, delta, gamma, kube-root-ca.crt], lists so far: 2",
        ],
    );
}

/// client-go's `KUBE_FEATURE_WatchListClient=false` turns streaming lists off in a kdev program
/// too: the reflector's debug log says how each initial list was made.
#[test]
fn the_reflector_lesson_lists_in_pages_when_kube_feature_watch_list_client_is_false() {
    let listed = |value: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reflector"));
        cmd.env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBE_FEATURE_WatchListClient")
            .env("RUST_LOG", "kdev_core::reflector=debug");
        if let Some(value) = value {
            cmd.env("KUBE_FEATURE_WatchListClient", value);
        }
        let output = cmd.output().expect("the lesson starts");
        assert!(output.status.success(), "{output:?}");
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        log.lines()
            .filter(|l| l.contains(" listed "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let default = listed(None);
    assert!(
        !default.is_empty() && default.iter().all(|l| l.contains("streaming=true")),
        "{default:#?}"
    );
    let off = listed(Some("false"));
    assert!(
        !off.is_empty() && off.iter().all(|l| l.contains("streaming=false")),
        "{off:#?}"
    );
}

#[test]
fn the_informer_lesson_shows_sharing_handlers_listers_late_handlers_dynamic_and_metadata_informers() {
    embedded_only("it always starts its own embedded server, so that it needs no cluster");
    let out = run(env!("CARGO_BIN_EXE_informer"));
    assert_shows(
        &out,
        &[
            "synced: 2 pods cached; asking the factory again gave the same cache: true",
            "update web-1, delete db-1",
            "app=web: web-1, web-2",
            "on node-a (by index): 2 pod(s)",
            "the late handler was replayed 2 cached pod(s)",
            "dynamic ConfigMap informer cached 1 object(s)",
            "PartialObjectMetadata web-1 labels=",
            "PartialObjectMetadata web-2 labels=",
        ],
    );
}

#[test]
fn the_controller_by_hand_lesson_syncs_first_reconciles_retries_with_backoff_and_cleans_up() {
    let (out, _) = run_anywhere(env!("CARGO_BIN_EXE_controller_by_hand"));
    assert_shows(
        &out,
        &[
            "/alpha: Replaced (initial list) -> cache, queued",
            "synced (HasSynced): 2 object(s) cached, 2 key(s) queued; the workers start only now",
            "/alpha: created ConfigMap alpha-mirror",
            "/beta: created ConfigMap beta-mirror",
            "/alpha: updated ConfigMap alpha-mirror",
            "on the server: alpha-mirror has greeting=bonjour",
            "/alpha: alpha-mirror already in step",
            "requeued rate-limited (requeues: 1)",
            "requeued rate-limited (requeues: 2)",
            ": created ConfigMap gamma-mirror; forget (requeues: 0)",
            "/beta: Deleted -> cache, queued",
            "/beta: not in the cache (deleted): deleted ConfigMap beta-mirror",
            "on the server: beta-mirror does not exist",
            "the cache by its namespace index: alpha, gamma",
            "workqueue shut down with drain: every key handed out is done, 2 workers returned",
        ],
    );
    // No worker starts before the sync: the first reconcile comes after the "synced" line.
    let synced = out.find("synced (HasSynced)").expect("synced");
    let first = out.find("[worker ").expect("a reconcile");
    assert!(synced < first, "a worker ran before the cache synced:\n{out}");
    // Each retry waited at least the rate limiter's backoff: 5 ms, then 10 ms.
    let waits: Vec<u128> = out
        .lines()
        .filter_map(|l| l.split_once("/gamma (back after ")?.1.split_once(" ms)"))
        .map(|(ms, _)| ms.parse().expect("milliseconds"))
        .collect();
    assert_eq!(waits.len(), 2, "two retries of gamma:\n{out}");
    assert!(waits[0] >= 5 && waits[1] >= 10, "backed off {waits:?} ms:\n{out}");
}

#[test]
fn the_operator_quickstart_reconciles_scales_records_events_and_cleans_up() {
    embedded_only(
        "the replica counts it checks come from the embedded server's Deployment simulation; on a \
         real cluster they wait for real Pods to pull images and start",
    );
    let out = run(env!("CARGO_BIN_EXE_operator"));
    assert_shows(
        &out,
        &[
            "created CRD myapps.example.com",
            "[reconcile web] Created Deployment web: 2 replicas of nginx:1.27",
            "[reconcile web] Created Service web: port 80",
            "Deployment web: replicas 2, controlled by MyApp web",
            "MyApp web finalizers: [\"example.com/cleanup\"]",
            "MyApp web status: availableReplicas 2, Ready=True (AllReplicasAvailable",
            "[reconcile web] Updated Deployment web: 4 replicas of nginx:1.27",
            "MyApp web status: availableReplicas 4, Ready=True (AllReplicasAvailable",
            "Normal Created: Deployment web: 2 replicas of nginx:1.27 (x1)",
            "Normal Ready: 4 replicas available (x1)",
            "[reconcile web] being deleted: cleanup runs, then the finalizer comes off",
            "MyApp web is gone: the cleanup succeeded and the finalizer came off",
            "Deployment web and Service web are gone: their owner was deleted",
            "controller_runtime_reconcile_total{controller=\"myapp\",result=\"error\"} 0",
            "leader_election_master_status{name=\"myapp-operator\"} 0",
        ],
    );
}

#[test]
fn the_leader_election_lesson_shows_one_leader_failover_after_a_crash_and_release_on_stop() {
    let (out, on_cluster) = run_anywhere(env!("CARGO_BIN_EXE_leader_election"));
    // On a real cluster the lesson uses longer timings (lease 10 s), so that one slow Lease
    // update does not add a leader change.
    let duration = if on_cluster {
        "  leaseDurationSeconds: 10\n"
    } else {
        "  leaseDurationSeconds: 3\n"
    };
    assert_shows(
        &out,
        &[
            "leader elected: ",
            duration,
            "  leaseTransitions:     0\n",
            "renewTime moved on: true (renewed every retry period); acquireTime unchanged: true",
            "failover after a crash: ",
            "leaseTransitions: 1\n",
            "Stopped (its work ended first, then it released the Lease)",
            "released: holderIdentity \"\", leaseDurationSeconds 1, leaseTransitions 1 (kept)",
            "hand-over after a graceful release: ",
            "all stopped: holderIdentity \"\", leaseTransitions 2",
        ],
    );
    // Whichever candidate wins, the one taking over is never the one that crashed.
    for line in out.lines().filter(|l| l.starts_with("failover after a crash: ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_ne!(words[4], words[8], "a crashed leader cannot take over: {line}");
    }
    if out.contains("== 5. skipped") {
        return;
    }
    assert_shows(
        &out,
        &[
            "GET kdev-lesson-election -> {\"holderIdentity\":",
            "leaderTransitions: 1\n",
            "leaderTransitions 0 (the key was deleted and created anew)",
            "all stopped: the key is gone: true",
            "stopped redis-server",
        ],
    );
    assert_eq!(out.matches("failover after a crash: ").count(), 2, "{out}");
}
