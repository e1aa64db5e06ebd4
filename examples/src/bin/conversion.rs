//! Lesson 16 — a conversion webhook: one kind served in two versions, `v1` with the image as one
//! string and `v2` with it structured, converted hub and spoke, the CRD's `conversion` stanza
//! generated, and the API server asking the webhook for every version change: create in v1, read
//! in v2, write in v2 what v1 cannot say, read it back in v1 and write it again without loss.
//!
//! Run it (no cluster needed: it starts kdev's embedded API server, which calls the conversion
//! webhook served by this very process):
//!
//! ```sh
//! cargo run -p kdev-examples --bin conversion
//! ```
//!
//! With KUBECONFIG set it runs the parts that need no API server and explains why the rest
//! cannot run: a real cluster's API server cannot reach a server inside this process.
//!
//! The page that goes with it: `docs/conversion.md`.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::CancellationToken;
use kdev::CustomResource;
use kdev::crd::conversion::{ConversionError, Convert, Converter, Convertible};
use kdev::testenv::{Config, TestEnv};
use kdev::webhook::Server;
use kdev::webhook::certs::Settings;
use kdev::webhook::config::{ClientConfig, Configurations};
use kdev::webhook::tls::ServingCert;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use kube_core::crd::v1::CustomResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVICE_NAMESPACE: &str = "webhook-system";
const SERVICE_NAME: &str = "kdev-lesson-conversion";
/// Where v1 keeps what only v2 can say, so that a round trip through v1 loses nothing.
const PULL_POLICY_ANNOTATION: &str = "example.com/v2-pull-policy";

// ---------------------------------------------------------------------------------------------
// Two versions of one kind. Each is its own Rust type (`WebAppV1`, `WebAppV2`) derived from its
// spec; both say kind WebApp in group example.com, and `kdev::crd::merge_versions` joins their
// CRDs into one with two entries in spec.versions.

/// A web application, v1: the image is one string, `nginx:1.27`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "example.com",
    version = "v1",
    kind = "WebApp",
    struct = "WebAppV1",
    namespaced
)]
#[serde(rename_all = "camelCase")]
struct WebAppV1Spec {
    /// The container image, `repository[:tag]`.
    image: String,
    /// How many copies run.
    replicas: i32,
}

/// A web application, v2: the image is structured and gained a pull policy. v2 is the storage
/// version (objects are kept in etcd as v2) and the hub (every other version converts to and
/// from it).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "example.com",
    version = "v2",
    kind = "WebApp",
    struct = "WebAppV2",
    namespaced
)]
#[kdev(storage, hub)]
#[serde(rename_all = "camelCase")]
struct WebAppV2Spec {
    /// The container image.
    image: Image,
    /// How many copies run.
    replicas: i32,
}

/// An image, structured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Image {
    /// `nginx`, `registry.example.com:5000/team/app`.
    repository: String,
    /// `1.27`; none means the registry's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`: new in v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pull_policy: Option<String>,
}

// The spoke converts to and from the hub: pure functions of typed objects (kubebuilder's
// ConvertTo / ConvertFrom). With N versions that is 2×(N−1) functions instead of N×(N−1).
impl Convertible<WebAppV2> for WebAppV1 {
    fn to_hub(self) -> Result<WebAppV2, ConversionError> {
        let image = &self.spec.image;
        // The tag is after the last ':' of the last path segment ("host:5000/app" has none).
        let (repository, tag) = match image.rfind(':') {
            Some(i) if !image[i..].contains('/') => (image[..i].to_string(), Some(image[i + 1..].to_string())),
            _ => (image.clone(), None),
        };
        let mut metadata = self.metadata;
        // What v1 could not say came back in an annotation: restore it, drop the annotation.
        let pull_policy = metadata
            .annotations
            .as_mut()
            .and_then(|a| a.remove(PULL_POLICY_ANNOTATION));
        let mut hub = WebAppV2::new(
            "",
            WebAppV2Spec {
                image: Image {
                    repository,
                    tag,
                    pull_policy,
                },
                replicas: self.spec.replicas,
            },
        );
        hub.metadata = metadata;
        Ok(hub)
    }

    fn from_hub(hub: WebAppV2) -> Result<Self, ConversionError> {
        let Image {
            repository,
            tag,
            pull_policy,
        } = hub.spec.image;
        let image = match tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => repository,
        };
        let mut metadata = hub.metadata;
        if let Some(policy) = pull_policy {
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(PULL_POLICY_ANNOTATION.into(), policy);
        }
        let mut spoke = WebAppV1::new(
            "",
            WebAppV1Spec {
                image,
                replicas: hub.spec.replicas,
            },
        );
        spoke.metadata = metadata;
        Ok(spoke)
    }
}

/// The hub-and-spoke converter, printing each conversion the API server asks for.
struct Narrated(Converter<WebAppV2>);

impl Convert for Narrated {
    fn group(&self) -> &str {
        self.0.group()
    }

    fn kind(&self) -> &str {
        self.0.kind()
    }

    fn api_versions(&self) -> Vec<String> {
        self.0.api_versions()
    }

    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
        println!(
            "    [conversion webhook] {} {} -> {desired_api_version}",
            object["metadata"]["name"].as_str().unwrap_or("?"),
            object["apiVersion"].as_str().unwrap_or("?"),
        );
        self.0.convert(object, desired_api_version)
    }
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("== 1. one kind, two versions: the merged CRD");
    let mut crd = kdev::crd::merge_versions([WebAppV1::crd(), WebAppV2::crd()])?;
    for v in &crd.spec.versions {
        println!("  version {}: served {}, storage {}", v.name, v.served, v.storage);
    }

    println!("\n== 2. the conversion functions, called directly");
    let v1 = WebAppV1::new(
        "shop",
        WebAppV1Spec {
            image: "registry.example.com:5000/shop:2.1".into(),
            replicas: 2,
        },
    );
    let hub = v1.clone().to_hub()?;
    println!(
        "  v1 image {:?} -> v2 image {}",
        v1.spec.image,
        serde_json::to_string(&hub.spec.image)?
    );
    let back = WebAppV1::from_hub(hub)?;
    println!(
        "  and back to v1: {:?} (equal: {})",
        back.spec.image,
        back.spec == v1.spec
    );

    println!("\n== 3. the webhook server and the CRD's conversion stanza");
    // A CA and a serving certificate for the Service, in memory this time (lesson 14 writes
    // them to a directory the server reloads).
    let bundle = Settings::for_service(SERVICE_NAMESPACE, SERVICE_NAME).generate()?;
    let server = Server::builder()
        .conversion("/convert", Narrated(Converter::<WebAppV2>::new().spoke::<WebAppV1>()))
        .tls(ServingCert::from_bundle(&bundle)?)
        .build()?;
    let conversion = Configurations::new("kdev-lesson", ClientConfig::service(SERVICE_NAMESPACE, SERVICE_NAME))
        .ca_bundle(bundle.ca_pem().into_bytes())
        // Checked: the converter knows the CRD's kind and each of its versions.
        .conversion_for(&server, "/convert", &crd)?;
    let mut shown = serde_json::to_value(&conversion)?;
    shown["webhook"]["clientConfig"]["caBundle"] = json!("<the CA, base64>");
    print!("conversion:\n{}", indent(&serde_saphyr::to_string(&shown)?));
    crd.spec.conversion = Some(conversion);

    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        println!(
            "\n== 4. skipped: KUBECONFIG is set, but a real cluster's API server cannot call a webhook served \
             inside this process (it needs a Service in front of a pod, or a URL it can reach). \
             Unset KUBECONFIG to run the rest on kdev's embedded API server."
        );
        println!("lesson complete");
        return Ok(());
    }

    println!("\n== 4. serving, and installing the CRD");
    let bound = server.bind("127.0.0.1:0".parse()?).await?;
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let served = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
    // The embedded API server has no pod network: the Service is mapped to the local port.
    let env = TestEnv::embedded(Config::default().webhook_service(SERVICE_NAMESPACE, SERVICE_NAME, 443, addr)).await?;
    println!("serving conversions on https://{addr}; started kdev's embedded API server");
    let ns = env.namespace().await?;
    let result = lesson(&env.client(), &crd, &ns).await;
    stop.cancel();
    served.await??;
    result?;
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, crd: &CustomResourceDefinition, ns: &str) -> Result<(), BoxError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), crd).await?;
    let name = WebAppV2::crd_name();
    let installed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(c) = crds.get(name).await
                && c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await?;
    println!(
        "CRD {name} established; status.storedVersions {:?}",
        installed.status.and_then(|s| s.stored_versions).unwrap_or_default()
    );

    let v1: Api<WebAppV1> = Api::namespaced(client.clone(), ns);
    let v2: Api<WebAppV2> = Api::namespaced(client.clone(), ns);
    let result = conversions(&v1, &v2).await;
    crds.delete(name, &DeleteParams::default()).await?;
    println!("deleted the CRD");
    result
}

async fn conversions(v1: &Api<WebAppV1>, v2: &Api<WebAppV2>) -> Result<(), BoxError> {
    println!("\n== 5. create in v1: stored as v2");
    let pp = PostParams::default();
    let created = v1
        .create(
            &pp,
            &WebAppV1::new(
                "web",
                WebAppV1Spec {
                    image: "nginx:1.27".into(),
                    replicas: 2,
                },
            ),
        )
        .await?;
    println!("created WebApp web in v1: image {:?}", created.spec.image);
    println!("(two conversions: to v2, the storage version, to store it; back to v1 for the answer)");

    println!("\n== 6. read it in v2, and in v1 again");
    let web = v2.get("web").await?;
    println!("  v2 read: image {}", serde_json::to_string(&web.spec.image)?);
    let web1 = v1.get("web").await?;
    println!("  v1 read: image {:?}", web1.spec.image);
    println!("  same object: {}", web.metadata.uid == web1.metadata.uid);

    println!("\n== 7. write in v2 what v1 cannot say, read it in v1, write in v1");
    v2.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "image": { "tag": "1.28", "pullPolicy": "Always" } } })),
    )
    .await?;
    println!("patched in v2: tag 1.28, pullPolicy Always");
    let web1 = v1.get("web").await?;
    let kept = web1
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PULL_POLICY_ANNOTATION))
        .cloned();
    println!(
        "  v1 read: image {:?}, annotation {PULL_POLICY_ANNOTATION}={}",
        web1.spec.image,
        kept.as_deref().unwrap_or("<none>")
    );
    // A client of v1 changes what it knows and writes the whole object back.
    let mut scaled = web1;
    scaled.spec.replicas = 3;
    v1.replace("web", &pp, &scaled).await?;
    println!("replaced in v1 with replicas 3");
    let web = v2.get("web").await?;
    println!(
        "  v2 read: image {}, replicas {}",
        serde_json::to_string(&web.spec.image)?,
        web.spec.replicas
    );
    let annotated = web
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(PULL_POLICY_ANNOTATION));
    println!("  the v2 object carries the annotation: {annotated} (to_hub moved it back into the spec)");

    println!("\n== 8. lists are converted too");
    let names: Vec<String> = v1
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|w| format!("{} ({})", w.metadata.name.unwrap_or_default(), w.spec.image))
        .collect();
    println!("  v1 list: {}", names.join(", "));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
