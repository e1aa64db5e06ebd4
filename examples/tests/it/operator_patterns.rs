//! Lesson 12 (`operator_patterns`): a Pod operator and a Deployment-extending operator under one
//! manager — predicates, server-side apply and create-or-update, `owns`, backoff, a terminal
//! error and `requeue_after`.

use super::{assert_shows, embedded_only, run};

#[test]
fn the_operator_patterns_lesson_filters_events_puts_children_back_backs_off_and_requeues() {
    embedded_only(
        "it counts every Pod event and reconcile, and plays the kubelet's status updates; on a real \
         cluster the scheduler and the kubelet write the Pods on their own schedule",
    );
    let out = run(env!("CARGO_BIN_EXE_operator_patterns"));
    assert_shows(
        &out,
        &[
            // The Pod operator: server-side apply of one label, for the Pods that ask.
            "[pod-labeller] web-1: applied label kdev.dev/pod-name=web-1",
            "web-1 labels: app=web, kdev.dev/pod-name=web-1",
            "plain labels: app=plain\n",
            "kdev.dev/pod-name on web-1: owned by field manager pod-labeller (Apply)",
            "Pod events: 5 seen by the predicate, 4 passed; reconciles: web-1 2, web-2 2, plain 0",
            // Status updates and changes to a Pod that did not opt in are filtered.
            "Pod events: 9 seen by the predicate, 4 passed; reconciles: web-1 2, web-2 2, plain 0",
            // A label removed by hand comes back; opting out removes it (apply prunes it).
            "[user] web-1: removed label kdev.dev/pod-name\n  [pod-labeller] web-1: applied label kdev.dev/pod-name=web-1",
            "[pod-labeller] web-2: no longer asks: applied without the label, which removes it",
            "web-2 labels: app=web\n",
            "Pod events: 13 seen by the predicate, 8 passed; reconciles: web-1 4, web-2 4, plain 0",
            // The Deployment operator: backoff on a transient error, then create-or-update.
            "api: registering api.kdev.test failed: the DNS provider answered 503 Service Unavailable (attempt 1): \
             returned as an error, retried with backoff",
            "api: attempt 2 (ctx.retries() = 1), at least 100 ms after the failure",
            "api: attempt 3 (ctx.retries() = 2), at least 200 ms after the failure",
            "api: attempt 4 (ctx.retries() = 3), at least 400 ms after the failure\n  [deployment-exposer] api: registered api.kdev.test\n  [deployment-exposer] api: Created Service api: port 8080 -> 8080",
            "Service api: port 8080 -> targetPort 8080, selector app=api, controlled by Deployment api",
            "Deployment internal (no annotation): reconciles 0, Service internal exists: false",
            // owns(Service).
            "[deployment-exposer] api: Updated Service api: port 8080 -> 8080",
            "Service api is on port 8080 again, before the next periodic check: true",
            "Service api exists again, before the next periodic check: true",
            // requeue_after.
            "api: api.kdev.test was missing at the provider: registered it again",
            // A terminal error waits for a change.
            "bad: kdev.dev/expose=\"http\" is not a port number: a terminal error, not retried (attempt 1)",
            "reconciles of bad after 800 ms: 1 (a terminal error waits for a change)",
            "Service bad: port 80 -> targetPort 80, selector app=bad, controlled by Deployment bad",
            // Clean-up by the operator and by the garbage collector.
            "bad: no longer exposed: deleted Service bad and removed bad.kdev.test",
            "api: the Deployment is gone: removed api.kdev.test",
            "Service api is gone: the garbage collector followed its owner reference",
            "controller_runtime_reconcile_total{controller=\"pod-labeller\",result=\"success\"} 8",
            "controller_runtime_reconcile_errors_total{controller=\"deployment-exposer\"} 4",
            "controller_runtime_terminal_reconcile_errors_total{controller=\"deployment-exposer\"} 1",
        ],
    );
    // Nothing the operator made outlived its Deployment, and no retry came before its backoff.
    let after_delete = out.split("[user] deleted Deployment api").nth(1).unwrap_or_default();
    assert!(!after_delete.contains("Created Service api"), "{out}");
    assert!(!out.contains("before its"), "a retry came early:\n{out}");
}
