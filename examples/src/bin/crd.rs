//! Lesson 9 — a custom resource: derive it from a Rust struct, print its
//! CustomResourceDefinition, install it, create / get / list objects, use the status and scale
//! subresources, and watch the API server reject each kind of invalid object.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin crd
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin crd   # a real cluster
//! ```
//!
//! The page that goes with it: `docs/crd.md`.

use kdev_examples::{connect, create_namespace, delete_namespace, wait};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev::CustomResource;
use kube_client::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use kube_core::crd::v1::CustomResourceExt;
use kube_core::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// The resource. Everything the API server needs to know about `Website` is written on this one
// struct: the Rust fields become the schema (through schemars), doc comments become its
// descriptions, and `#[kdev(...)]` adds what Rust types cannot say (bounds, patterns, CEL
// rules) plus the CRD's own settings (group, scope, subresources, printer columns). The derive
// generates `struct Website { metadata, spec, status }`, its `Resource` impl, `Website::new`
// and `Website::crd()`.

/// A website: `replicas` copies of a web server answering for `domain`.
// Two printer columns of the same type read to clippy as one attribute written twice.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(
    group = "example.com",
    version = "v1",
    kind = "Website",
    namespaced,
    status = "WebsiteStatus"
)]
#[kdev(shortname = "ws", category = "example")]
#[kdev(scale(
    spec_replicas_path = ".spec.replicas",
    status_replicas_path = ".status.replicas",
    label_selector_path = ".status.selector"
))]
#[kdev(printcolumn(name = "Domain", type = "string", json_path = ".spec.domain"))]
#[kdev(printcolumn(name = "Replicas", type = "integer", json_path = ".spec.replicas"))]
#[kdev(printcolumn(name = "TLS", type = "string", json_path = ".spec.tls"))]
#[kdev(printcolumn(name = "Phase", type = "string", json_path = ".status.phase"))]
#[kdev(printcolumn(name = "Age", type = "date", json_path = ".metadata.creationTimestamp"))]
#[kdev(selectable_field = ".spec.tls")]
#[kdev(validation(
    rule = "self.tls == 'Off' || !self.domain.endsWith('.local')",
    message = "TLS needs a public domain: .local names get no certificate"
))]
#[serde(rename_all = "camelCase")]
struct WebsiteSpec {
    /// The DNS name the site answers to. Set once: moving a site is a new site.
    #[kdev(
        max_length = 253,
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        immutable
    )]
    domain: String,
    /// The web server's container image.
    #[kdev(min_length = 1)]
    image: String,
    /// How many copies serve the site.
    #[kdev(minimum = 1, maximum = 10)]
    #[serde(default = "one")]
    replicas: i32,
    /// How the site treats plain HTTP.
    #[serde(default)]
    tls: Tls,
    /// URL path prefixes the site serves (all of them when empty).
    #[kdev(max_items = 4, list_type = "set", items(pattern = "^/"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
}

fn one() -> i32 {
    1
}

/// How a website treats plain HTTP: an enum of strings in the schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
enum Tls {
    /// Plain HTTP only.
    Off,
    /// HTTPS, and plain HTTP redirects to it.
    #[default]
    Redirect,
    /// HTTPS only, with HSTS.
    Strict,
}

/// What the controller of websites reports; written through the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WebsiteStatus {
    /// Copies running.
    #[serde(default)]
    replicas: i32,
    /// The label selector of the copies, as a string (what `kubectl scale` and an HPA read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<String>,
    /// A one-word summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
}

fn site(name: &str, domain: &str, replicas: i32, tls: Tls) -> Website {
    Website::new(
        name,
        WebsiteSpec {
            domain: domain.into(),
            image: "nginx:1.27".into(),
            replicas,
            tls,
            paths: Vec::new(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The lesson.

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("== 1. the CRD that #[derive(CustomResource)] generates, as YAML");
    let crd = Website::crd();
    print!("{}", kdev::crd::to_yaml(&[crd])?);
    println!(
        "(Website is {} {}, plural {:?}, CRD name {})",
        Website::api_version(&()),
        Website::kind(&()),
        Website::plural(&()),
        Website::crd_name()
    );

    println!("\n== 2. connecting: kubeconfig, in-cluster, or the embedded API server");
    let (client, _embedded) = connect().await?;
    let ns = create_namespace(&client, "kdev-crd").await?;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let result = lesson(&client, &crds, &ns).await;
    // Deleting a CRD deletes every object of its kind, in every namespace. Clean up first,
    // then report the lesson's own error before a clean-up one.
    let deleted = crds.delete(Website::crd_name(), &DeleteParams::default()).await;
    delete_namespace(&client, &ns).await?;
    result?;
    deleted?;
    println!("deleted the CRD and the namespace");
    println!("lesson complete");
    Ok(())
}

async fn lesson(client: &Client, crds: &Api<CustomResourceDefinition>, ns: &str) -> Result<(), BoxError> {
    println!("\n== 3. installing the CRD and waiting for it to be Established");
    install(crds).await?;
    let installed = crds.get(Website::crd_name()).await?;
    for c in installed.status.and_then(|s| s.conditions).unwrap_or_default() {
        println!(
            "  condition {}={} ({})",
            c.type_,
            c.status,
            c.reason.unwrap_or_default()
        );
    }
    let sites: Api<Website> = Api::namespaced(client.clone(), ns);
    // Established means the API server serves the new path; a real cluster may need a moment
    // more before every request handler knows it.
    wait("the websites endpoint", || async {
        Ok(sites.list(&ListParams::default()).await.is_ok())
    })
    .await?;
    println!("the API server now serves /apis/example.com/v1/namespaces/{ns}/websites (kubectl get websites, or ws)");

    println!("\n== 4. create, get, list");
    let pp = PostParams::default();
    sites
        .create(&pp, &site("blog", "blog.example.com", 2, Tls::Strict))
        .await?;
    sites
        .create(&pp, &site("shop", "shop.example.com", 3, Tls::Strict))
        .await?;
    println!("created Website blog and Website shop (typed: Api<Website>)");
    // An untyped object can leave fields out and add fields the schema does not know.
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &Website::api_resource());
    let docs = untyped(
        "docs",
        json!({ "domain": "docs.example.com", "image": "nginx:1.27", "colour": "blue" }),
    )?;
    dynamic.create(&pp, &docs).await?;
    println!("created Website docs untyped, without replicas or tls and with an unknown field spec.colour");
    let stored = dynamic.get("docs").await?;
    let spec = &stored.data["spec"];
    println!(
        "read back: replicas {} and tls {} (defaults from the schema); colour {} (pruned: not in the schema)",
        spec["replicas"],
        spec["tls"],
        spec.get("colour")
            .map_or_else(|| "is gone".to_string(), |c| format!("is still {c}"))
    );
    let blog = sites.get("blog").await?;
    println!(
        "get blog: domain {}, {} replicas, tls {:?}, generation {}",
        blog.spec.domain,
        blog.spec.replicas,
        blog.spec.tls,
        blog.metadata.generation.unwrap_or(0)
    );
    let all = sites.list(&ListParams::default()).await?;
    println!("list: {}", names(&all.items));
    let strict = sites.list(&ListParams::default().fields("spec.tls=Strict")).await?;
    println!(
        "list with the field selector spec.tls=Strict (a selectable field): {}",
        names(&strict.items)
    );

    println!("\n== 5. the status subresource");
    let mut blog = sites.get("blog").await?;
    blog.status = Some(WebsiteStatus {
        replicas: 2,
        selector: None,
        phase: Some("Serving".into()),
    });
    let replaced = sites.replace("blog", &pp, &blog).await?;
    println!(
        "PUT websites/blog with a status: the server ignored it (status {:?})",
        replaced.status
    );
    let status = json!({ "status": { "replicas": 2, "selector": "app=blog", "phase": "Serving" } });
    let patched = sites
        .patch_status("blog", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    println!(
        "PATCH websites/blog/status: phase {:?}, status.replicas {}; generation still {} (status is not spec)",
        patched
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        patched.status.as_ref().map_or(0, |s| s.replicas),
        patched.metadata.generation.unwrap_or(0)
    );

    println!("\n== 6. the scale subresource (what kubectl scale and the HorizontalPodAutoscaler use)");
    let scale = sites.get_scale("blog").await?;
    println!(
        "GET websites/blog/scale: spec.replicas {}, status.replicas {}, selector {:?}",
        scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        scale.status.as_ref().map_or(0, |s| s.replicas),
        scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
    );
    let to_three = Patch::Merge(json!({ "spec": { "replicas": 3 } }));
    sites.patch_scale("blog", &PatchParams::default(), &to_three).await?;
    let blog = sites.get("blog").await?;
    println!(
        "PATCH websites/blog/scale to 3: the Website's spec.replicas is now {}, generation {}",
        blog.spec.replicas,
        blog.metadata.generation.unwrap_or(0)
    );

    println!("\n== 7. the printer columns (kubectl get websites)");
    print_table(client, ns).await?;

    println!("\n== 8. invalid objects: the API server checks the schema and answers 422 Invalid");
    let not_enforced = validation_errors(&dynamic).await?;

    println!("\n== 9. CEL rules (x-kubernetes-validations): what this server answers");
    cel_rules(&dynamic, &sites).await?;

    if not_enforced > 0 {
        return Err(format!("{not_enforced} schema validation(s) accepted an invalid object").into());
    }
    Ok(())
}

/// Creates the CRD, or replaces an older one left by an earlier run, then waits until the API
/// server accepted its names and serves it.
async fn install(crds: &Api<CustomResourceDefinition>) -> Result<(), BoxError> {
    let name = Website::crd_name();
    // One left by an earlier run may still be terminating (the API server deletes every
    // Website first): it cannot be replaced then, only waited out.
    wait("an earlier run's CRD to finish terminating", || async {
        Ok(crds
            .get_opt(name)
            .await?
            .is_none_or(|crd| crd.metadata.deletion_timestamp.is_none()))
    })
    .await?;
    match crds.create(&PostParams::default(), &Website::crd()).await {
        Ok(_) => println!("created CRD {name}"),
        Err(kube_client::Error::Api(e)) if e.code == 409 => {
            let mut crd = Website::crd();
            crd.metadata.resource_version = crds.get(name).await?.metadata.resource_version;
            crds.replace(name, &PostParams::default(), &crd).await?;
            println!("replaced the CRD {name} an earlier run left behind");
        }
        Err(e) => return Err(e.into()),
    }
    wait("the CRD to be established", || async {
        let crd = crds.get(name).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await
}

/// A Website as untyped JSON: what `kubectl apply -f` sends, which the Rust type cannot express
/// when it is wrong.
fn untyped(name: &str, spec: Value) -> Result<DynamicObject, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": Website::api_version(&()), "kind": Website::kind(&()),
        "metadata": { "name": name }, "spec": spec
    }))
}

fn names(items: &[Website]) -> String {
    let mut names: Vec<String> = items.iter().map(ResourceExt::name_any).collect();
    names.sort();
    names.join(", ")
}

/// Lists the websites as a Table, the way kubectl asks: the server fills in the columns the
/// CRD's additionalPrinterColumns declare.
async fn print_table(client: &Client, ns: &str) -> Result<(), BoxError> {
    let req = http::Request::get(format!("/apis/example.com/v1/namespaces/{ns}/websites"))
        .header(http::header::ACCEPT, "application/json;as=Table;g=meta.k8s.io;v=v1")
        .body(Vec::new())?;
    let table: Value = serde_json::from_str(&client.request_text(req).await?)?;
    let header: Vec<String> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_uppercase())
        .collect();
    let mut rows: Vec<Vec<String>> = table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    Value::Null => "<none>".into(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    rows.sort();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&header[i]))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("  {}", cells.join("   ").trim_end());
    }
    Ok(())
}

/// One bad object per kind of schema validation. Returns how many the server accepted (none,
/// on kube-apiserver and kdev-testenv alike).
async fn validation_errors(dynamic: &Api<DynamicObject>) -> Result<usize, BoxError> {
    let good = json!({ "domain": "bad.example.com", "image": "nginx:1.27" });
    let cases: Vec<(&str, &str, Value)> = vec![
        ("required", "no spec.image", json!({ "image": null })),
        ("type", "spec.replicas = \"three\"", json!({ "replicas": "three" })),
        ("minimum", "spec.replicas = 0", json!({ "replicas": 0 })),
        ("maximum", "spec.replicas = 11", json!({ "replicas": 11 })),
        ("minLength", "spec.image = \"\"", json!({ "image": "" })),
        (
            "maxLength",
            "spec.domain of 254 characters",
            json!({ "domain": "a".repeat(254) }),
        ),
        ("pattern", "spec.domain = \"My_Site!\"", json!({ "domain": "My_Site!" })),
        ("enum", "spec.tls = \"Sometimes\"", json!({ "tls": "Sometimes" })),
        (
            "maxItems",
            "five spec.paths",
            json!({ "paths": ["/a", "/b", "/c", "/d", "/e"] }),
        ),
        ("items pattern", "spec.paths = [\"blog\"]", json!({ "paths": ["blog"] })),
        (
            "list-type set",
            "spec.paths = [\"/\", \"/\"]",
            json!({ "paths": ["/", "/"] }),
        ),
    ];
    let mut accepted = 0;
    for (kind, what, change) in cases {
        let mut spec = good.clone();
        if let (Value::Object(spec), Value::Object(change)) = (&mut spec, change) {
            for (field, value) in change {
                if value.is_null() {
                    spec.remove(&field);
                } else {
                    spec.insert(field, value);
                }
            }
        }
        let name = format!("bad-{}", kind.to_lowercase().replace(' ', "-"));
        println!("  [{kind}] {what}");
        match dynamic.create(&PostParams::default(), &untyped(&name, spec)?).await {
            Err(kube_client::Error::Api(e)) => println!("      -> {} {}: {}", e.code, e.reason, e.message),
            Err(e) => return Err(e.into()),
            Ok(_) => {
                println!("      -> accepted: the server did not enforce {kind}");
                accepted += 1;
                dynamic.delete(&name, &DeleteParams::default()).await?;
            }
        }
    }
    Ok(accepted)
}

/// The two CEL rules of the schema: one across fields, checked on every write, and one
/// transition rule (`self == oldSelf`), checked on updates. kube-apiserver evaluates both;
/// the lesson prints whatever the server at hand answers.
async fn cel_rules(dynamic: &Api<DynamicObject>, sites: &Api<Website>) -> Result<(), BoxError> {
    println!(
        "  [rule on the spec] tls Strict for intranet.local: self.tls == 'Off' || !self.domain.endsWith('.local')"
    );
    let intranet = site("intranet", "intranet.local", 1, Tls::Strict);
    match sites.create(&PostParams::default(), &intranet).await {
        Err(kube_client::Error::Api(e)) => println!("      -> {} {}: {}", e.code, e.reason, e.message),
        Err(e) => return Err(e.into()),
        Ok(_) => {
            println!("      -> accepted: this server did not evaluate the rule");
            sites.delete("intranet", &DeleteParams::default()).await?;
        }
    }
    println!("  [immutable] moving blog to www.example.com: self == oldSelf on spec.domain");
    let moved = Patch::Merge(json!({ "spec": { "domain": "www.example.com" } }));
    match dynamic.patch("blog", &PatchParams::default(), &moved).await {
        Err(kube_client::Error::Api(e)) => println!("      -> {} {}: {}", e.code, e.reason, e.message),
        Err(e) => return Err(e.into()),
        Ok(o) => println!(
            "      -> accepted: this server did not evaluate the rule (domain is now {})",
            o.data["spec"]["domain"]
        ),
    }
    Ok(())
}
