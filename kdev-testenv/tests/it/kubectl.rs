//! kubectl against the test cluster: get (table, -o yaml, -o json, -w), create -f,
//! apply --server-side, label, annotate, describe, delete, api-resources, custom resources.
//! Each test skips, saying so, when there is no kubectl on PATH.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kdev_testenv::TestEnv;

use super::setup;

/// The kubectl on PATH, if any.
fn kubectl_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// A kubectl bound to one test cluster and namespace.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    ns: String,
    dir: PathBuf,
}

impl Kubectl {
    async fn new(env: &TestEnv, ns: &str) -> Option<Self> {
        let Some(bin) = kubectl_path() else {
            eprintln!("skipping: no kubectl on PATH");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "kdev-kubectl-{}",
            (0..10).map(|_| fastrand::alphanumeric()).collect::<String>()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        // A real cluster's own file (its relative paths resolve against its folder, and its
        // credentials are not copied); the embedded server's text in a file only we can read.
        let kubeconfig = match env.kubeconfig_path() {
            Some(path) => path.to_path_buf(),
            None => {
                let copy = dir.join("kubeconfig");
                let mut file = std::fs::OpenOptions::new();
                file.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
                std::io::Write::write_all(
                    &mut file.open(&copy).expect("create the kubeconfig"),
                    env.kubeconfig().as_bytes(),
                )
                .expect("write the kubeconfig");
                copy
            }
        };
        Some(Kubectl {
            bin,
            kubeconfig,
            ns: ns.to_string(),
            dir,
        })
    }

    /// Writes a manifest into the temp dir and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).expect("write a manifest");
        p.display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c.env_remove("KUBECONFIG").stdin(Stdio::null());
        c
    }

    /// Runs kubectl to completion (off the async runtime) and returns its output.
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("kubectl runs")
    }

    /// Runs kubectl, asserts success, and returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Its pods name a scheduler nobody runs, so on a real cluster they stay Pending: no image is
/// pulled and nothing runs.
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      schedulerName: kdev-test-scheduler
      containers:
      - name: web
        image: nginx:1.27
";

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
";

#[tokio::test]
async fn kubectl_create_from_a_file_and_get_as_a_table() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("deploy.yaml", DEPLOYMENT);
    let out = k.ok(&["create", "-f", &f]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let table = k.ok(&["get", "deployments"]).await;
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("NAME") && header.contains("AGE"), "{table}");
    assert!(lines.any(|l| l.starts_with("web ")), "{table}");
}

#[tokio::test]
async fn kubectl_get_prints_yaml_and_json() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("cm.yaml", CONFIGMAP);
    k.ok(&["create", "-f", &f]).await;
    let yaml = k.ok(&["get", "configmap", "settings", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("mode: fast") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let json = k.ok(&["get", "configmap", "settings", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("kubectl printed JSON");
    assert_eq!(v["data"]["mode"], "fast");
    assert_eq!(v["metadata"]["namespace"], ns.as_str());
}

#[tokio::test]
async fn kubectl_get_watch_shows_new_objects() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let mut watch = k.command(&["get", "configmaps", "--watch", "--request-timeout=20s"]);
    let child = watch
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl -w starts");
    // Give the watch time to start, then create; kubectl prints the new object as it arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f = k.file("cm.yaml", CONFIGMAP);
    k.ok(&["create", "-f", &f]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("settings ")),
        "kubectl -w printed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn kubectl_apply_server_side_creates_then_updates() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("cm.yaml", CONFIGMAP);
    let out = k.ok(&["apply", "--server-side", "-f", &f]).await;
    assert!(out.contains("configmap/settings serverside-applied"), "{out}");
    let f = k.file("cm2.yaml", &CONFIGMAP.replace("mode: fast", "mode: slow"));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    let mode = k
        .ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"])
        .await;
    assert_eq!(mode, "slow");
    let managers = k
        .ok(&[
            "get",
            "configmap",
            "settings",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert_eq!(managers, "kubectl");
}

#[tokio::test]
async fn kubectl_apply_server_side_reports_a_conflict_with_kubectl_create() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("deploy.yaml", DEPLOYMENT);
    k.ok(&["create", "-f", &f]).await;
    let f = k.file("deploy3.yaml", &DEPLOYMENT.replace("replicas: 2", "replicas: 3"));
    let out = k.run(&["apply", "--server-side", "-f", &f]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict with \"kubectl-create\"") && err.contains(".spec.replicas"),
        "{err}"
    );
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]).await;
    assert_eq!(
        k.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "3"
    );
}

#[tokio::test]
async fn kubectl_label_and_annotate_change_metadata() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("cm.yaml", CONFIGMAP);
    k.ok(&["create", "-f", &f]).await;
    k.ok(&["label", "configmap", "settings", "tier=front"]).await;
    k.ok(&["annotate", "configmap", "settings", "owner=team-a"]).await;
    let names = k.ok(&["get", "configmaps", "-l", "tier=front", "-o", "name"]).await;
    assert_eq!(names.trim(), "configmap/settings");
    let owner = k
        .ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.annotations.owner}",
        ])
        .await;
    assert_eq!(owner, "team-a");
}

#[tokio::test]
async fn kubectl_describe_shows_a_deployment() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("deploy.yaml", DEPLOYMENT);
    k.ok(&["create", "-f", &f]).await;
    let out = k.ok(&["describe", "deployment", "web"]).await;
    assert!(
        out.contains("Name:") && out.contains("web") && out.contains("nginx:1.27"),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_delete_waits_until_the_object_is_gone() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let f = k.file("cm.yaml", CONFIGMAP);
    k.ok(&["create", "-f", &f]).await;
    let out = k.ok(&["delete", "configmap", "settings"]).await;
    assert!(out.contains("configmap \"settings\" deleted"), "{out}");
    let after = k.run(&["get", "configmap", "settings"]).await;
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("NotFound"));
}

#[tokio::test]
async fn kubectl_api_resources_lists_the_served_types() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let out = k.ok(&["api-resources"]).await;
    for want in [
        "configmaps",
        "deployments",
        "leases",
        "customresourcedefinitions",
        "pods",
    ] {
        assert!(out.lines().any(|l| l.starts_with(want)), "{want} missing from:\n{out}");
    }
}

#[tokio::test]
async fn kubectl_manages_custom_resources_of_a_new_crd() {
    let (env, ns) = setup().await;
    let Some(k) = Kubectl::new(&env, &ns).await else { return };
    let group = super::unique_group("k");
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
"
    );
    let f = k.file("crd.yaml", &crd);
    env.delete_on_drop(
        &kube_client::discovery::ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
        &format!("gadgets.{group}"),
    );
    k.ok(&["create", "-f", &f]).await;
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=30s",
        &format!("crd/gadgets.{group}"),
    ])
    .await;
    let cr = format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: 7\n");
    let f = k.file("cr.yaml", &cr);
    // On a real cluster discovery publishes the new group a moment after `Established`: until
    // then kubectl cannot map the kind.
    for _ in 0..60 {
        if k.run(&["get", &format!("gadgets.{group}")]).await.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    let table = k.ok(&["get", &format!("gadgets.{group}")]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("SIZE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("g1") && l.contains('7')), "{table}");
    let out = k
        .run(&["delete", &format!("crd/gadgets.{group}"), "--wait=false"])
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
