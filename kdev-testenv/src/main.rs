//! `kdev-testenv serve`: runs the embedded Kubernetes API server until Ctrl-C, for kubectl,
//! the examples and learners.

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: kdev-testenv serve [--addr 127.0.0.1:PORT] [--kubeconfig FILE] [--plain-http]

Runs an embedded Kubernetes API server on loopback and writes a kubeconfig for it
(default ./kdev-testenv.kubeconfig). Point kubectl at it with
    export KUBECONFIG=$PWD/kdev-testenv.kubeconfig
Stop it with Ctrl-C. The state lives in memory only.";

struct Args {
    addr: SocketAddr,
    kubeconfig: String,
    plain: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let mut out = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
        kubeconfig: "kdev-testenv.kubeconfig".into(),
        plain: false,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--addr" => {
                let v = args.next().ok_or("--addr needs a value")?;
                out.addr = v
                    .parse()
                    .map_err(|_| format!("--addr: {v:?} is not an address like 127.0.0.1:6443"))?;
            }
            "--kubeconfig" => out.kubeconfig = args.next().ok_or("--kubeconfig needs a value")?,
            "--plain-http" => out.plain = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("kdev-testenv: {msg}");
            }
            eprintln!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kdev-testenv: starting the runtime failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut config = kdev_testenv::Config::default().addr(args.addr);
        if args.plain {
            config = config.plain_http();
        }
        let server = match kdev_testenv::Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "kdev-testenv: {e}: {}",
                    std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
                );
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(&args.kubeconfig, server.kubeconfig()) {
            eprintln!("kdev-testenv: writing {} failed: {e}", args.kubeconfig);
            return ExitCode::FAILURE;
        }
        let path = std::fs::canonicalize(&args.kubeconfig)
            .map(|p| p.display().to_string())
            .unwrap_or(args.kubeconfig);
        println!("kdev-testenv: serving the Kubernetes API at {}", server.url());
        println!("kdev-testenv: kubeconfig written to {path}");
        println!("    export KUBECONFIG={path}");
        println!("kdev-testenv: press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
        server.stop().await;
        println!("kdev-testenv: stopped");
        ExitCode::SUCCESS
    })
}
