//! Lesson 10 (`crd_versions`): four releases of one CRD; strategy None, a field only v1 declares
//! pruned by v1beta1, the deprecation warning, a refused removal, the storage version migration.

use super::{assert_shows, run_anywhere};

#[test]
fn the_crd_versions_lesson_moves_the_storage_version_and_migrates_before_removing_v1beta1() {
    let (out, _) = run_anywhere(env!("CARGO_BIN_EXE_crd_versions"));
    assert_shows(
        &out,
        &[
            // Release 1 and 2: one stored version; v1 reads v1beta1 objects as they are.
            "status.storedVersions [\"v1beta1\"]",
            "  version v1       served true  storage false deprecated false",
            "nightly read in v1: apiVersion stable.example.com/v1, spec {\"cronSpec\":\"0 2 * * *\",\"image\":\"backup:1.0\"}",
            "created hourly in v1 with replicas 3; the answer says replicas None",
            // Release 3: the new storage version joins storedVersions; v1beta1 warns and prunes.
            "  version v1beta1  served true  storage false deprecated true",
            "status.storedVersions [\"v1beta1\", \"v1\"]",
            "a v1beta1 request's Warning header: 299 - \"stable.example.com/v1beta1 CronTab is deprecated; use stable.example.com/v1 CronTab\"",
            "hourly read in v1beta1: apiVersion stable.example.com/v1beta1, spec {\"cronSpec\":\"0 * * * *\",\"image\":\"report:2.3\"}",
            "a v1beta1 client patched the image; read in v1: image \"report:2.4\", replicas None",
            // A stored version cannot go before the migration; then it can.
            "refused, 422: ",
            "status.storedVersions[0]: Invalid value: \"v1beta1\": missing from spec.versions; v1beta1 was previously a storage version",
            "rewrote 1 of 2 CronTabs in v1 (nightly was still stored in v1beta1; hourly was written again after release 3)",
            "status.storedVersions [\"v1beta1\", \"v1\"] -> [\"v1\"]",
            "v1beta1 requests: 404 Not Found",
            "v1 list: hourly (report:2.4, replicas 3), nightly (backup:1.0, replicas -)",
        ],
    );
}
