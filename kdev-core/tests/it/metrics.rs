//! The REST-client and process metrics: a manager counts every request of its client under
//! the API server's `host:port` and serves `process_*`; a failed request counts as `<error>`
//! and keeps its error.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::manager::Manager;
use kdev_core::metrics::{RestClientMetrics, host_label};
use kdev_testenv::TestEnv;
use kube_client::api::PostParams;
use kube_client::config::{KubeConfigOptions, Kubeconfig};
use kube_client::{Api, Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    raw
}

#[tokio::test]
async fn a_manager_counts_its_requests_and_serves_process_metrics() {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    // A real cluster's kubeconfig is read from its file, so that relative certificate and
    // key paths in it resolve against its own folder.
    let kubeconfig = match env.kubeconfig_path() {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::from_yaml(env.kubeconfig()),
    }
    .expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let host = host_label(&config.cluster_url);
    assert_ne!(host, "none");

    let manager = Manager::from_config(config)
        .expect("a manager")
        .http_addr("127.0.0.1:0".parse().expect("addr"))
        .handle_signals(false)
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .build();
    let run = tokio::spawn({
        let m = manager.clone();
        async move { m.run().await }
    });

    let api: Api<ConfigMap> = Api::namespaced(manager.client().clone(), &ns);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("counted".into());
    api.create(&PostParams::default(), &cm).await.expect("created");
    assert!(api.get_opt("missing").await.expect("a 404 is None").is_none());
    api.create(&PostParams::default(), &cm).await.expect_err("exists");

    while manager.http_addr().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = scrape(manager.http_addr().expect("bound")).await;
    for line in [
        "# TYPE rest_client_requests counter\n".to_string(),
        format!("rest_client_requests_total{{code=\"201\",method=\"POST\",host=\"{host}\"}} 1\n"),
        format!("rest_client_requests_total{{code=\"404\",method=\"GET\",host=\"{host}\"}} 1\n"),
        format!("rest_client_requests_total{{code=\"409\",method=\"POST\",host=\"{host}\"}} 1\n"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    if cfg!(target_os = "linux") {
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }
    manager.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

/// No server listens on the address: the request fails without a response, counts as
/// `<error>`, and the instrumented client returns the same error as the bare one.
#[tokio::test]
async fn a_request_without_a_response_counts_as_an_error_and_keeps_its_error() {
    // Bind and drop a listener to get a local port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url: http::Uri = format!("http://127.0.0.1:{port}").parse().expect("url");
    let bare = Client::try_from(Config::new(url.clone())).expect("client");
    let metrics = RestClientMetrics::default();
    let counted = metrics.instrument(bare.clone(), host_label(&url));
    assert_eq!(counted.default_namespace(), bare.default_namespace());

    let bare_err = bare.apiserver_version().await.expect_err("nothing listens");
    let counted_err = counted.apiserver_version().await.expect_err("nothing listens");
    let variant = |e: &kube_client::Error| format!("{e:?}").split('(').next().unwrap_or_default().to_string();
    assert_eq!(
        variant(&counted_err),
        variant(&bare_err),
        "{counted_err:?} vs {bare_err:?}"
    );
    assert_eq!(counted_err.to_string(), bare_err.to_string());

    let host = format!("127.0.0.1:{port}");
    assert_eq!(metrics.requests("<error>", "GET", &host), 1);
    assert_eq!(metrics.requests("200", "GET", &host), 0);
}
