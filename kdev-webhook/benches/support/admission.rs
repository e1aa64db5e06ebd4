//! The admission bench, shared by `admission` (mimalloc) and `admission_system_alloc`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Pod};
use kdev_webhook::admission::{Defaulter, Request, Validator, Verdict};
use kdev_webhook::server::{self, InProcess};
use kdev_webhook::{Server, tls::ServingCert};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CONNECTIONS: usize = 64;

/// Refuses `:latest` and untagged images.
struct NoLatest;

impl Validator<Pod> for NoLatest {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
        let images = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| c.image.as_deref());
        for image in images {
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.ends_with(":latest") || !(last.contains(':') || last.contains('@')) {
                return Verdict::deny(format!("image {image} is not pinned"));
            }
        }
        Verdict::allow()
    }
}

/// Adds a team label and a proxy sidecar.
struct Sidecar;

impl Defaulter<Pod> for Sidecar {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.entry("team".into()).or_insert_with(|| "platform".into());
        if let Some(spec) = pod.spec.as_mut()
            && !spec.containers.iter().any(|c| c.name == "proxy")
        {
            spec.containers.push(Container {
                name: "proxy".into(),
                image: Some("envoyproxy/envoy:v1.31.0".into()),
                args: Some(vec!["--config-path".into(), "/etc/envoy/envoy.yaml".into()]),
                ..Container::default()
            });
        }
        Verdict::allow()
    }
}

fn container(name: &str, image: &str, port: u16) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "APP_ENV", "value": "production"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/live", "port": port, "scheme": "HTTP"}, "initialDelaySeconds": 10},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": true},
            {"name": "data", "mountPath": "/var/lib/app"},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true},
    })
}

/// A Pod as kube-apiserver sends it after defaulting: four containers, about 5 KB.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "checkout-7d9c6b5f4-x2x8q",
            "generateName": "checkout-7d9c6b5f4-",
            "namespace": "shop",
            "labels": {
                "app.kubernetes.io/name": "checkout",
                "app.kubernetes.io/part-of": "shop",
                "app.kubernetes.io/version": "3.14.1",
                "pod-template-hash": "7d9c6b5f4",
                "tier": "backend",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
                "kubectl.kubernetes.io/default-container": "checkout",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9c6b5f4",
                "uid": "5f0d2a43-61b3-4c9e-8a57-1c2d3e4f5a6b", "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "containers": [
                container("checkout", "registry.example.com/shop/checkout:3.14.1", 8080),
                container("cache", "registry.example.com/shop/redis:7.2.4", 6379),
                container("metrics", "registry.example.com/observability/exporter:1.8.0", 9090),
                container("log-shipper", "registry.example.com/observability/fluent-bit:3.0.7", 2020),
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "checkout",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": true,
        },
    })
}

fn review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "checkout-7d9c6b5f4-x2x8q",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "a1b2c3d4-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
            },
            "object": pod(),
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

fn builder() -> server::Builder {
    Server::builder()
        .validating::<Pod, _>("/validate", NoLatest)
        .mutating::<Pod, _>("/mutate", Sidecar)
}

/// A TLS connection to the server, without Nagle's delay.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// One TLS keep-alive connection, as a hyper HTTP/1 client.
async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tls = tls_connect(addr, config).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn request(path: &str, body: &Bytes) -> http::Request<Full<Bytes>> {
    http::Request::post(path)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))
        .unwrap()
}

/// What one load run measured.
struct Load {
    reviews: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// CPU time of the whole process (client and server) while measuring, when known.
    cpu: Option<Duration>,
}

/// CPU time (user and system, every thread) of this process so far, from `/proc/self/stat`
/// (Linux; ticks of 1/100 s, the fixed USER_HZ).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

impl Load {
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// One keep-alive TLS connection of the load generator: a minimal HTTP/1.1 client that writes
/// a request prepared once (head and body in one buffer, so one TLS record and one write) and
/// reads the answer's head and `Content-Length` body into a buffer it reuses. It is kept this
/// small so the client's share of the two cores is as small as a load generator's (wrk,
/// h2load) would be; the answers are parsed in full by `check` before measuring.
struct LoadClient {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: Vec<u8>,
}

impl LoadClient {
    async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Self {
        LoadClient {
            tls: tls_connect(addr, config).await,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Appends what the connection has to the buffer.
    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 8192];
        let n = self.tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads the answer; its status code.
    async fn exchange(&mut self, request: &[u8]) -> u16 {
        use tokio::io::AsyncWriteExt as _;
        self.tls.write_all(request).await.unwrap();
        self.tls.flush().await.unwrap();
        self.buf.clear();
        loop {
            self.read_more().await;
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.buf).unwrap() {
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .expect("a Content-Length");
                let status = response.code.unwrap();
                while self.buf.len() < head + length {
                    self.read_more().await;
                }
                black_box(&self.buf[head..]);
                return status;
            }
        }
    }
}

/// `body` posted to `path`, as the bytes of an HTTP/1.1 request.
fn raw_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Posts `body` to `path` on `CONNECTIONS` connections for `warmup + measure`; what happened
/// during `measure`.
async fn load(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &'static str, body: Bytes) -> Load {
    let warmup = Duration::from_millis(700);
    let measure = Duration::from_secs_f64(
        std::env::var("KDEV_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(LoadClient::connect(addr, config.clone()).await);
    }
    let request: Arc<[u8]> = raw_request(path, &body).into();
    let start = Instant::now() + warmup;
    let end = start + measure;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = process_cpu();
        tokio::time::sleep_until(end.into()).await;
        Some(process_cpu()?.saturating_sub(before?))
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(16 * 1024);
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    assert_eq!(client.exchange(&request).await, 200);
                    let done = Instant::now();
                    if sent >= start && done <= end {
                        latencies.push(u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX));
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap());
    }
    latencies_us.sort_unstable();
    Load {
        reviews: latencies_us.len(),
        elapsed: measure,
        latencies_us,
        cpu: cpu.await.unwrap(),
    }
}

/// Checks one answer of each webhook in full before measuring.
async fn check(addr: SocketAddr, config: Arc<rustls::ClientConfig>, body: &Bytes) {
    let mut sender = connect(addr, config).await;
    for (path, patched) in [("/validate", false), ("/mutate", true)] {
        let response = sender.send_request(request(path, body)).await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert_eq!(answer["response"].get("patch").is_some(), patched, "{answer}");
    }
}

fn load_tests(runtime: &tokio::runtime::Runtime, body: &Bytes, allocator: &str) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.cert.pem().as_bytes()).unwrap())
        .unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = builder().tls(tls).build().unwrap();
        let running = tokio::spawn(
            server.serve_with_incoming_shutdown(server::tcp_incoming(listener), stop.clone().cancelled_owned()),
        );
        check(addr, config.clone(), body).await;
        println!("AdmissionReview body: {} bytes; allocator: {allocator}", body.len());
        let only = std::env::var("KDEV_BENCH_LOAD").unwrap_or_default();
        for (name, path) in [("validating", "/validate"), ("mutating", "/mutate")] {
            if !only.is_empty() && only != name {
                continue;
            }
            let load = load(addr, config.clone(), path, body.clone()).await;
            println!(
                "{name}: {CONNECTIONS} connections, {:.0} reviews/s, p50 {:.2} ms, p99 {:.2} ms ({:.1} s, {} reviews)",
                load.reviews as f64 / load.elapsed.as_secs_f64(),
                load.percentile(0.50),
                load.percentile(0.99),
                load.elapsed.as_secs_f64(),
                load.reviews,
            );
            if let Some(cpu) = load.cpu.filter(|_| load.reviews > 0) {
                let per_review = cpu.as_secs_f64() / load.reviews as f64;
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                println!(
                    "{name}: CPU {:.1} µs per review (client and server), {:.2} of {cores} cores busy; \
                     ≈ {:.0} reviews/s with the cores to itself",
                    per_review * 1e6,
                    cpu.as_secs_f64() / load.elapsed.as_secs_f64(),
                    cores as f64 / per_review,
                );
            }
        }
        stop.cancel();
        running.await.unwrap().unwrap();
    });
}

fn in_process(c: &mut Criterion, runtime: &tokio::runtime::Runtime, body: &Bytes) {
    let webhooks: InProcess = builder().build_in_process().unwrap();
    let mut group = c.benchmark_group("in_process");
    group.throughput(Throughput::Elements(1));
    for (name, path) in [("validating", "/validate"), ("mutating", "/mutate")] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let answer = runtime.block_on(webhooks.call(path, body.clone()));
                assert_eq!(answer.status(), 200);
                black_box(answer)
            });
        });
    }
    group.finish();
}

/// Runs the load tests and the in-process measurements; `allocator` names the process' global
/// allocator in the output.
pub fn run(allocator: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(serde_json::to_vec(&review()).unwrap());
    load_tests(&runtime, &body, allocator);
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    in_process(&mut criterion, &runtime, &body);
    criterion.final_summary();
}
