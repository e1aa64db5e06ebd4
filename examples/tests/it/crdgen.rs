//! `crdgen` prints the CRDs of the `crd` and `operator` lessons, as YAML the API server accepts.

use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{Patch, PatchParams};

#[test]
fn crdgen_prints_every_crd_of_the_crate_as_yaml_the_server_accepts() {
    let output = Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .output()
        .expect("crdgen starts");
    assert!(
        output.status.success(),
        "crdgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("UTF-8");
    let crds: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&yaml).expect("YAML documents of CRDs");
    let names: Vec<_> = crds.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    assert_eq!(names, ["myapps.example.com", "websites.example.com"], "{yaml}");
    for crd in &crds {
        let storage: Vec<_> = crd.spec.versions.iter().filter(|v| v.storage).collect();
        assert_eq!(storage.len(), 1, "one storage version");
    }

    // The server validates each one: a dry-run server-side apply, which neither needs the CRD
    // absent nor changes it (the lessons install these CRDs themselves, and on a shared cluster
    // they may be running right now).
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let env = TestEnv::start().await.expect("a cluster");
        let api: Api<CustomResourceDefinition> = Api::all(env.client());
        let params = PatchParams::apply("kdev-crdgen-test").force().dry_run();
        for crd in &crds {
            let name = crd.metadata.name.as_deref().unwrap_or_default();
            api.patch(name, &params, &Patch::Apply(crd))
                .await
                .unwrap_or_else(|e| panic!("{name} is rejected: {e}"));
        }
    });
}
